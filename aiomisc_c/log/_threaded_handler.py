"""``ThreadedHandler``: hands records to another handler from its own thread.

Guarantees (see docs/logging.rst):

* ``emit`` never waits in buffered mode: it appends to a deque and, at most
  once per batch, wakes the delivery thread.  A cross-thread wake-up costs
  ~50 us on these machines, so the thread normally wakes on its own every
  ``flush_interval`` seconds and only earlier when ``queue_size`` records
  (1024 when unbounded) are pending.  ``queue_size`` is therefore a wake-up
  threshold, never a reason to drop, raise or block.
* No record is lost on a normal exit: ``close()`` (called by
  ``logging.shutdown`` at exit and by a re-configuration) lets the thread
  deliver everything queued, then delivers in the caller whatever arrived
  late; a closed handler delivers synchronously.
* No record is lost on SIGTERM when nobody handles it: while buffered
  handlers are running and SIGTERM has its default action, a handler is
  installed that flushes them and then dies by SIGTERM as before.  The
  main thread, which runs it, may be asleep in a blocking call the signal
  did not interrupt: ``_signal_wakeup`` wakes it.
* In a forked child the delivery thread does not exist: the child forgets
  the parent's pending records (the parent delivers them) and delivers its
  own synchronously (children often leave through ``os._exit``).

The delivery thread never takes the handler's own lock (``Handler.lock``,
held by ``Handler.handle`` around ``emit`` and by ``logging.shutdown``
around ``flush``/``close``), so waiting for it from those places is safe.
"""
import logging
import os
import signal
import sys
import threading
import weakref
from collections import deque
from typing import Any, Deque, Optional, Union

from .. import _signal_wakeup
from .._compat import process_signals_blocked
from ..counters import Statistic

__all__ = ("ThreadedHandler", "ThreadedHandlerStatistic")


class ThreadedHandlerStatistic(Statistic):
    threads: int    # delivery threads running
    records: int    # records accepted by emit()
    errors: int     # exceptions raised by the target handler
    flushes: int    # flush() calls


class _FlushMarker:
    """Queued by flush(): set once every record queued before it is handled."""

    __slots__ = ("done",)

    def __init__(self) -> None:
        self.done = threading.Event()


_STOP = object()    # queued by close(): the thread delivers up to it and ends

# Pending records that wake the thread early when the queue is unbounded.
DEFAULT_WAKE_THRESHOLD = 1024
# How long a flush from a signal handler waits for the delivery thread.
SIGNAL_FLUSH_TIMEOUT = 5.0

Item = Union[logging.LogRecord, _FlushMarker, object]


class ThreadedHandler(logging.Handler):
    """Deliver records to ``target`` from a daemon thread.

    ``buffered=True``: ``emit`` only queues; records reach ``target`` at
    least every ``flush_interval`` seconds (promptly when it is 0).
    ``buffered=False``: every record wakes the thread at once, and with a
    positive ``queue_size`` ``emit`` waits while that many are pending.
    """

    def __init__(
        self,
        target: logging.Handler,
        flush_interval: float = 0.1,
        buffered: bool = True,
        queue_size: int = 0,
    ):
        if flush_interval < 0:
            raise ValueError(
                f"flush_interval must not be negative, got {flush_interval!r}",
            )
        super().__init__()
        self._target = target
        self._flush_interval = flush_interval
        self._buffered = buffered
        self._queue_size = max(int(queue_size), 0)
        self._wake_threshold = self._queue_size or DEFAULT_WAKE_THRESHOLD
        # Wake the thread for every record instead of once per batch.
        self._prompt = not buffered or flush_interval == 0

        self._queue: Deque[Item] = deque()
        self._wakeup = threading.Event()
        # Unbuffered, bounded mode: emit() waits on it for free space.
        self._space = threading.Condition(threading.Lock())
        self._space_waiters = 0
        # Serialises deliveries made outside the thread (after close, in a
        # forked child, before start) so they keep their order.
        self._caller_lock = threading.RLock()
        self._thread: Optional[threading.Thread] = None
        self._closed = False
        # In a forked child: no thread, deliver in emit().
        self._synchronous = False
        self._statistic = ThreadedHandlerStatistic()
        # (buffer, index) of the per-record counter: cheaper than the
        # attribute on the hot path
        self._records_slot = self._statistic._counter_slot("records")

    # -- public API ----------------------------------------------------------

    def start(self) -> None:
        if self._thread is not None:
            raise RuntimeError("ThreadedHandler can only be started once")
        self._thread = threading.Thread(
            target=self._deliver_forever,
            name=f"ThreadedHandler({type(self._target).__name__})",
            daemon=True,
        )
        self._statistic.threads += 1
        with process_signals_blocked():
            self._thread.start()
        _LIVE_HANDLERS.add(self)
        if self._buffered:
            _install_sigterm_flush()

    def emit(self, record: logging.LogRecord) -> None:
        if self._synchronous or (self._closed and not self._thread_running()):
            # Nobody else would deliver it: do it now, in order.
            with self._caller_lock:
                self._drain_here()
                self._deliver(record)
            counters, index = self._records_slot
            counters[index] += 1
            return

        queue = self._queue
        if (
            self._queue_size and not self._buffered
            and len(queue) >= self._queue_size
        ):
            self._wait_for_space()
        queue.append(record)
        counters, index = self._records_slot
        counters[index] += 1
        if self._closed and not self._thread_running():
            # close() finished between the check above and the append: its
            # final drain may have missed this record, so deliver it here.
            # (While the thread runs, only the thread and close() consume
            # the queue: a caller must not take close()'s stop item.)
            with self._caller_lock:
                self._drain_here()
        elif self._prompt or len(queue) >= self._wake_threshold:
            if not self._wakeup.is_set():
                self._wakeup.set()

    def flush(self) -> None:
        """Return once every record emitted before the call is delivered."""
        self._statistic.flushes += 1
        self._flush(timeout=None)

    def close(self) -> None:
        """Deliver everything queued, stop the thread, then deliver any
        later record synchronously."""
        # The delivery thread never takes _caller_lock, so holding it while
        # joining cannot deadlock; it makes a concurrent close() wait too.
        with self._caller_lock:
            if not self._closed:
                self._closed = True
                thread = self._thread
                if thread is not None and thread.is_alive():
                    self._queue.append(_STOP)
                    self._wakeup.set()
                    if thread is not threading.current_thread():
                        thread.join()
                        self._drain_here()
                    # else: closed by the target while delivering; the
                    # thread itself delivers up to the stop item.
                else:
                    self._drain_here()
                _LIVE_HANDLERS.discard(self)
                _uninstall_sigterm_flush_if_idle()
        super().close()

    def _thread_running(self) -> bool:
        thread = self._thread
        return thread is not None and thread.is_alive()

    @property
    def target(self) -> logging.Handler:
        return self._target

    def __repr__(self) -> str:
        return (
            f"<{type(self).__name__} target={self._target!r} "
            f"buffered={self._buffered} pending={len(self._queue)}>"
        )

    # -- delivery --------------------------------------------------------------

    def _deliver(self, record: logging.LogRecord) -> None:
        target = self._target
        try:
            # Logger.callHandlers checks the level of the handler it calls,
            # which is this wrapper: check the target's own level here.
            if record.levelno >= target.level:
                target.handle(record)
        except Exception:
            self._statistic.errors += 1

    def _flush_target(self) -> None:
        try:
            self._target.flush()
        except Exception:
            self._statistic.errors += 1

    def _drain(self) -> bool:
        """Deliver everything queued; False once the stop item is reached."""
        queue = self._queue
        popleft = queue.popleft
        delivered = False
        try:
            while True:
                try:
                    item = popleft()
                except IndexError:
                    return True
                if type(item) is _FlushMarker:
                    self._flush_target()
                    item.done.set()  # type: ignore[union-attr, unused-ignore]
                elif item is _STOP:
                    return False
                else:
                    self._deliver(item)  # type: ignore[arg-type]
                    delivered = True
        finally:
            if delivered and self._space_waiters:
                with self._space:
                    self._space.notify_all()

    def _drain_here(self) -> None:
        # Caller holds _caller_lock.  A stop item left behind by a close()
        # that raced the thread's end is simply skipped.
        while not self._drain():
            pass

    def _deliver_forever(self) -> None:
        wakeup = self._wakeup
        timeout = self._flush_interval or None
        try:
            while True:
                wakeup.wait(timeout)
                # Clear before draining: a record queued after the clear is
                # either drained now or wakes the next wait.
                wakeup.clear()
                if not self._drain():
                    return
        finally:
            self._statistic.threads -= 1
            if self._space_waiters:
                with self._space:
                    self._space.notify_all()

    def _wait_for_space(self) -> None:
        thread = self._thread
        if thread is None or thread is threading.current_thread():
            return      # nobody would make room: queue over the bound
        with self._space:
            self._space_waiters += 1
            try:
                while (
                    len(self._queue) >= self._queue_size
                    and thread.is_alive() and not self._closed
                ):
                    self._wakeup.set()
                    self._space.wait(0.5)
            finally:
                self._space_waiters -= 1

    def _flush(self, timeout: Optional[float]) -> None:
        thread = self._thread
        if thread is None or not thread.is_alive() or self._synchronous:
            with self._caller_lock:
                self._drain_here()
            self._flush_target()
            return
        if thread is threading.current_thread():
            return      # called by the target while delivering
        marker = _FlushMarker()
        self._queue.append(marker)
        self._wakeup.set()
        # Poll the thread's liveness so a dead thread cannot hang us.
        waited = 0.0
        while not marker.done.wait(0.5):
            waited += 0.5
            if not thread.is_alive():
                with self._caller_lock:
                    self._drain_here()
                return
            if timeout is not None and waited >= timeout:
                return

    def _after_fork_in_child(self) -> None:
        # The parent still owns (and delivers) the records queued before the
        # fork; the child has no delivery thread.
        self._queue = deque()
        self._wakeup = threading.Event()
        self._space = threading.Condition(threading.Lock())
        self._space_waiters = 0
        self._caller_lock = threading.RLock()
        self._synchronous = True
        self._statistic.threads = 0


# Started, not yet closed handlers: flushed on SIGTERM, switched to
# synchronous delivery in forked children.
_LIVE_HANDLERS: "weakref.WeakSet[ThreadedHandler]" = weakref.WeakSet()


def _after_fork_in_child() -> None:
    # The SIGTERM disposition is inherited; with no live handler left the
    # flush handler just dies by the signal, as SIG_DFL would.
    for handler in list(_LIVE_HANDLERS):
        handler._after_fork_in_child()
    _LIVE_HANDLERS.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


# -- SIGTERM ---------------------------------------------------------------------


def _flush_on_sigterm(signum: int, frame: Any) -> None:
    """Flush buffered handlers, then die by the signal as SIG_DFL would.

    SIGTERM is ignored while flushing (at most ``SIGNAL_FLUSH_TIMEOUT`` per
    handler): a late wake-up nudge must not kill the process halfway.
    """
    global _SIGTERM_FLUSHING
    if _SIGTERM_FLUSHING:
        return      # a nudge that arrived once this call had started
    _SIGTERM_FLUSHING = True
    signal.signal(signum, signal.SIG_IGN)
    for handler in list(_LIVE_HANDLERS):
        handler._flush(timeout=SIGNAL_FLUSH_TIMEOUT)
    for stream in (sys.stdout, sys.stderr):
        try:
            if stream is not None:
                stream.flush()
        except Exception:
            pass
    signal.signal(signum, signal.SIG_DFL)
    os.kill(os.getpid(), signum)


_SIGTERM_FLUSHING = False


def _nudge_sigterm_flush() -> None:
    # Called by the wake-up watcher when SIGTERM arrived: wake the main
    # thread while the flush handler is still installed and has not run.
    if signal.getsignal(signal.SIGTERM) is _flush_on_sigterm:
        _signal_wakeup.nudge_main_thread(signal.SIGTERM)


def _can_touch_signals() -> bool:
    return (
        hasattr(signal, "SIGTERM")
        and threading.current_thread() is threading.main_thread()
    )


def _install_sigterm_flush() -> None:
    """Install the SIGTERM flush when SIGTERM still has its default action.

    A handler installed by the application (the entrypoint's graceful
    shutdown, for one) is left alone: its exit path closes the handlers.
    """
    if not _can_touch_signals():
        return
    try:
        if signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
            signal.signal(signal.SIGTERM, _flush_on_sigterm)
            # Without it a SIGTERM can wait for the next loop wake-up.
            _signal_wakeup.watch(signal.SIGTERM, _nudge_sigterm_flush)
    except (ValueError, OSError):   # not the main interpreter
        pass


def _uninstall_sigterm_flush_if_idle() -> None:
    """Give SIGTERM its default action back once no handler runs."""
    if _LIVE_HANDLERS or not _can_touch_signals():
        return
    try:
        if signal.getsignal(signal.SIGTERM) is _flush_on_sigterm:
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
    except (ValueError, OSError):
        pass
    # Also when the application replaced the handler meanwhile.
    _signal_wakeup.unwatch(signal.SIGTERM, _nudge_sigterm_flush)
