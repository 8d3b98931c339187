"""Make sure a Python signal handler runs even when the main thread sleeps.

CPython runs a Python-level signal handler in the main thread, between two
bytecodes; the C-level handler only marks the signal as pending.  When the
signal lands while the main thread is on its way into a blocking call
(having released the GIL, or waiting to hand the GIL over to a busy thread,
but not yet inside ``epoll_wait``), nothing interrupts that call: the
handler waits for the next wake-up, which for an idle event loop may never
come.  A busy delivery thread makes the window wide enough to hit on a loaded
machine (SIGTERM then hung the process instead of flushing the logs).

CPython's remedy is ``signal.set_wakeup_fd``: the C-level handler writes the
signal number to that fd.  When nobody owns it (an asyncio loop with
``add_signal_handler`` or a running uvloop loop do, and wake themselves),
this module points it at a pipe read by a watcher thread.  For each signal
number read, the watcher calls the ``nudge`` registered for it, which wakes
the main thread (re-sends the signal to it, or wakes its loop) so that the
pending handler runs.  A nudge must be harmless when the handler has run.
"""
from __future__ import annotations

import os
import signal
import threading
import time
from typing import Callable, Dict, List, Optional, Tuple

from ._compat import process_signals_blocked

__all__ = ("watch", "unwatch", "nudge_main_thread")

# Pause between two nudges of one signal: a nudge that lands in the same
# window is lost again, and its own wake-up byte asks for another one.
NUDGE_INTERVAL = 0.02
# A signal whose handler still has not run after this long is given up on
# (the main thread is stuck in a call that never checks for signals).
NUDGE_PERIOD = 10.0
# How long stop() waits for the watcher thread.
STOP_TIMEOUT = 1.0

Nudge = Callable[[], None]


class _Watcher:
    """The pipe, its watcher thread and the nudges, for one process."""

    def __init__(self) -> None:
        self.nudges: Dict[int, List[Nudge]] = {}
        self.read_fd = -1
        self.write_fd = -1
        self.installed = False      # the wakeup fd is our pipe
        self.thread: Optional[threading.Thread] = None
        self.lock = threading.Lock()

    def start(self) -> None:
        """Own the wakeup fd unless somebody does already (main thread)."""
        if self.thread is not None:
            return
        read_fd, write_fd = os.pipe()
        os.set_blocking(write_fd, False)
        try:
            previous = signal.set_wakeup_fd(write_fd, warn_on_full_buffer=False)
        except (ValueError, OSError):    # not the main thread/interpreter
            os.close(read_fd)
            os.close(write_fd)
            return
        if previous != -1:
            # A loop wakes itself on signals through it: leave it alone.
            signal.set_wakeup_fd(previous)
            os.close(read_fd)
            os.close(write_fd)
            return
        self.read_fd, self.write_fd, self.installed = read_fd, write_fd, True
        self.thread = threading.Thread(
            target=self.run, args=(read_fd,),
            name="aiomisc_c-signal-wakeup", daemon=True,
        )
        with process_signals_blocked():
            self.thread.start()

    def stop(self) -> None:
        """Give the wakeup fd back (main thread); the thread then ends."""
        if self.thread is None or not self._release_wakeup_fd():
            return
        # Closing the write end makes the thread read EOF and leave (later,
        # if a child forked outside os.fork() holds a copy: no waiting).
        os.close(self.write_fd)
        self.write_fd = -1
        self.thread.join(STOP_TIMEOUT)
        self.thread = None

    def _release_wakeup_fd(self) -> bool:
        """Make sure the wakeup fd is not our pipe (which is then safe to
        close: the C-level handler would write to whatever reuses its fd)."""
        if not self.installed:
            return True
        try:
            current = signal.set_wakeup_fd(-1)
            if current != self.write_fd:
                # Somebody took it over meanwhile: theirs to keep.
                signal.set_wakeup_fd(current)
        except (ValueError, OSError):
            return False
        self.installed = False
        return True

    def run(self, read_fd: int) -> None:
        # signum -> (first, last) arrival of its current burst of bytes
        bursts: Dict[int, Tuple[float, float]] = {}
        try:
            while True:
                data = os.read(read_fd, 512)
                if not data:
                    return                  # stop() closed the write end
                now = time.monotonic()
                signums = []
                for signum in set(data):
                    first, last = bursts.get(signum, (now, now))
                    if now - last > 1.0:
                        first = now         # after a quiet second: anew
                    bursts[signum] = (first, now)
                    if now - first <= NUDGE_PERIOD:
                        signums.append(signum)
                with self.lock:
                    nudges = [
                        nudge for signum in signums
                        for nudge in self.nudges.get(signum, ())
                    ]
                for nudge in nudges:
                    try:
                        nudge()
                    except Exception:
                        pass
                if nudges:
                    time.sleep(NUDGE_INTERVAL)
        finally:
            os.close(read_fd)

    def after_fork_in_child(self) -> None:
        # The pipe is shared with the parent: a signal of ours must not
        # wake the parent's watcher.  The thread does not exist here.
        if self.thread is None or not self._release_wakeup_fd():
            return
        for fd in (self.read_fd, self.write_fd):
            if fd != -1:
                os.close(fd)
        self.read_fd = self.write_fd = -1
        self.thread = None
        self.lock = threading.Lock()
        self.nudges.clear()


_WATCHER = _Watcher()

if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_WATCHER.after_fork_in_child)


def watch(signum: int, nudge: Nudge) -> None:
    """Call ``nudge()`` from the watcher thread whenever ``signum`` arrives
    (and again while it keeps arriving).  Main thread only; does nothing
    where ``signal.set_wakeup_fd`` is unavailable or owned by a loop."""
    if (
        not hasattr(signal, "pthread_kill")
        or threading.current_thread() is not threading.main_thread()
    ):
        return
    with _WATCHER.lock:
        nudges = _WATCHER.nudges.setdefault(signum, [])
        if nudge not in nudges:
            nudges.append(nudge)
    _WATCHER.start()


def unwatch(signum: int, nudge: Nudge) -> None:
    """Forget ``nudge``; the last one gone releases the wakeup fd."""
    with _WATCHER.lock:
        nudges = _WATCHER.nudges.get(signum, [])
        if nudge in nudges:
            nudges.remove(nudge)
        if not nudges:
            _WATCHER.nudges.pop(signum, None)
        idle = not _WATCHER.nudges
    if idle and threading.current_thread() is threading.main_thread():
        _WATCHER.stop()


def nudge_main_thread(signum: int) -> None:
    """Send ``signum`` to the main thread again: its blocking call fails
    with EINTR and the pending handler runs (once, signals coalesce)."""
    signal.pthread_kill(threading.main_thread().ident or 0, signum)
