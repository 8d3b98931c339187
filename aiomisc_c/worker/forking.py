"""The POSIX supervisor: ``python -m aiomisc_c.worker``.

It reads its settings from stdin (frames of
:class:`~aiomisc_c.worker.protocol.FileIOProtocol`, written by the pool),
runs the initializer once, forks one worker per id (the workers share the
initializer's state copy-on-write) and re-forks a worker that dies while the
pool still runs.  SIGINT (or SIGTERM) stops it: the workers get SIGTERM and
are reaped before it exits, so no process outlives the pool.
"""
from __future__ import annotations

import gc
import os
import signal
import sys
import time
import traceback
from contextlib import suppress
from threading import Event, Lock
from typing import Any, Dict, MutableMapping, Tuple

from . import INT_SIGNAL, SIGNAL, AddressType, log
from .protocol import FileIOProtocol
from .worker import bad_initializer, worker

PROCESSES: MutableMapping[int, bytes] = {}
STOPPING = Event()
EXIT_LOCK = Lock()
DEFAULT_SIGNAL_HANDLER = signal.getsignal(INT_SIGNAL)
STOP_SIGNALS = frozenset({INT_SIGNAL, signal.SIGTERM})
# How long the workers get to exit after SIGTERM before SIGKILL.
WORKER_EXIT_TIMEOUT = 2.0


def _reap(deadline: float) -> None:
    """Wait for the workers until ``deadline``; SIGKILL the rest."""
    while PROCESSES and time.monotonic() < deadline:
        for pid in tuple(PROCESSES):
            try:
                done, _ = os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                done = pid
            if done:
                PROCESSES.pop(pid, None)
        if PROCESSES:
            time.sleep(0.005)
    for pid in tuple(PROCESSES):
        with suppress(OSError):
            os.kill(pid, signal.SIGKILL)
        with suppress(ChildProcessError):
            os.waitpid(pid, 0)
        PROCESSES.pop(pid, None)


def at_exit() -> None:
    """Terminate and reap every worker."""
    with EXIT_LOCK:
        for pid in tuple(PROCESSES):
            log.debug("Terminating PID: %d", pid)
            with suppress(OSError):
                os.kill(pid, signal.SIGTERM)
        _reap(time.monotonic() + WORKER_EXIT_TIMEOUT)


def handle_interrupt(*_: Any) -> None:
    STOPPING.set()
    raise KeyboardInterrupt


def _exit_code(exc: SystemExit) -> int:
    # A job that calls exit() must never look like a clean stop (status 0
    # means "the pool closed my connection"), so it is respawned.
    code = exc.code
    if isinstance(code, int) and code != 0:
        return code & 0xFF or 1
    return 1


def fork(worker_id: bytes, cookie: bytes, address: AddressType) -> None:
    # The stop signals stay blocked across fork(): until the child has set
    # its own handlers it runs the supervisor's, which raise
    # KeyboardInterrupt (a SIGTERM sent by at_exit() to a worker forked a
    # moment earlier printed a traceback).  The parent unblocks only once
    # the pid is recorded, so a stop signal taken then still reaps it.
    mask = signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
    gc.disable()
    try:
        pid = os.fork()
    except BaseException:
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)
        raise
    finally:
        gc.enable()

    if pid != 0:
        PROCESSES[pid] = worker_id
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)
        log.debug("Started child process PID: %d", pid)
        return

    # The worker: never returns into the supervisor's code.
    code = 0
    try:
        PROCESSES.clear()
        signal.signal(INT_SIGNAL, DEFAULT_SIGNAL_HANDLER)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)
        worker(address, cookie, worker_id)
    except SystemExit as e:
        code = _exit_code(e)
    except BaseException:
        traceback.print_exc()
        code = 1
    finally:
        with suppress(Exception):
            sys.stdout.flush()
            sys.stderr.flush()
        os._exit(code)


def _read_settings() -> Tuple[Any, ...]:
    proto = FileIOProtocol(sys.stdin.buffer)
    log_level, log_format = proto.receive()
    address: AddressType = proto.receive()
    cookie: bytes = proto.receive()
    worker_ids: Tuple[bytes, ...] = proto.receive()
    # The parent's import path, before the initializer is unpickled: it
    # may come from a module only the parent's path reaches.
    path = proto.receive()
    sys.path[:] = list(dict.fromkeys([*path, *sys.path]))
    initializer = proto.receive()
    sys.stdin.close()
    return log_level, log_format, address, cookie, worker_ids, initializer


def _exit_now(*_: Any) -> None:
    os._exit(0)


def main() -> int:
    # Until the workers exist, SIGINT/SIGTERM mean "stop now, quietly".
    signal.signal(INT_SIGNAL, _exit_now)
    signal.signal(signal.SIGTERM, _exit_now)
    # The pool may start this process from a thread that blocks these
    # signals, and exec keeps the mask.
    if hasattr(signal, "pthread_sigmask"):
        signal.pthread_sigmask(
            signal.SIG_UNBLOCK, {INT_SIGNAL, signal.SIGTERM, SIGNAL},
        )
    (
        log_level, log_format, address, cookie, worker_ids,
        (initializer, initializer_args, initializer_kwargs),
    ) = _read_settings()

    from ..log.core import basic_config

    basic_config(level=log_level, log_format=log_format)

    if initializer is not None:
        try:
            initializer(*initializer_args, **initializer_kwargs)
        except BaseException as e:
            log.exception("WorkerPool initializer %r has been failed", initializer)
            bad_initializer(address, cookie, worker_ids[0], e)
            return 0

    signal.signal(INT_SIGNAL, handle_interrupt)
    signal.signal(signal.SIGTERM, handle_interrupt)
    try:
        log.debug("Forking %d processes", len(worker_ids))
        for worker_id in worker_ids:
            fork(worker_id, cookie, address)
        _supervise(cookie, address)
    except KeyboardInterrupt:
        pass
    finally:
        signal.signal(INT_SIGNAL, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        at_exit()
    return 0


def _supervise(cookie: bytes, address: AddressType) -> None:
    while not STOPPING.is_set():
        try:
            pid, status = os.wait()
        except ChildProcessError:
            return   # every worker left: the pool is gone
        worker_id = PROCESSES.pop(pid, None)
        if status == 0:
            log.debug("Worker PID: %d exited", pid)
            continue
        log.warning("Worker PID: %d exited with status %d", pid, status)
        if worker_id is not None and not STOPPING.is_set():
            fork(worker_id, cookie, address)
