"""aiomisc_c._signal_wakeup: the watcher that wakes the main thread when a
signal did not interrupt its wait (child-process cases of the lost wake-up
itself: test_log_process.py and test_entrypoint_process.py)."""
import signal
import sys
import threading

import pytest

from aiomisc_c import _signal_wakeup

pytestmark = pytest.mark.skipif(
    not hasattr(signal, "pthread_kill"), reason="POSIX signals",
)

WATCHER_NAME = "aiomisc_c-signal-wakeup"


@pytest.fixture
def loop(plain_loop):
    return plain_loop


def current_wakeup_fd():
    fd = signal.set_wakeup_fd(-1)
    signal.set_wakeup_fd(fd)
    return fd


def watcher_threads():
    return [t for t in threading.enumerate() if t.name == WATCHER_NAME]


@pytest.fixture
def sigusr1_handled(monkeypatch):
    """SIGUSR1 gets a Python handler that counts calls; a fresh watcher
    with nobody owning the wakeup fd (logging configured by other tests
    may have a watcher running: it is put back afterwards)."""
    monkeypatch.setattr(_signal_wakeup, "_WATCHER", _signal_wakeup._Watcher())
    others = watcher_threads()
    previous_fd = signal.set_wakeup_fd(-1)
    calls = []
    previous = signal.signal(signal.SIGUSR1, lambda *_: calls.append(1))
    try:
        yield calls
        assert [t for t in watcher_threads() if t not in others] == []
    finally:
        signal.signal(signal.SIGUSR1, previous)
        _signal_wakeup._WATCHER.stop()
        signal.set_wakeup_fd(previous_fd)


def test_watch_owns_a_free_wakeup_fd_and_gives_it_back(sigusr1_handled):
    nudged = threading.Event()
    _signal_wakeup.watch(signal.SIGUSR1, nudged.set)
    try:
        assert current_wakeup_fd() != -1
        watcher = _signal_wakeup._WATCHER.thread
        assert watcher.name == WATCHER_NAME and watcher.daemon
        # The watcher never takes the signals whose handlers it helps.
        signal.pthread_kill(threading.get_ident(), signal.SIGUSR1)
        assert nudged.wait(10)
        assert sigusr1_handled
    finally:
        _signal_wakeup.unwatch(signal.SIGUSR1, nudged.set)
    assert current_wakeup_fd() == -1
    watcher.join(10)
    assert not watcher.is_alive()


def test_a_failing_nudge_does_not_stop_the_others(sigusr1_handled):
    def failing():
        raise RuntimeError("nudge failed")

    nudged = threading.Event()
    _signal_wakeup.watch(signal.SIGUSR1, failing)
    _signal_wakeup.watch(signal.SIGUSR1, nudged.set)
    _signal_wakeup.watch(signal.SIGUSR1, nudged.set)    # once only
    try:
        signal.pthread_kill(threading.get_ident(), signal.SIGUSR1)
        assert nudged.wait(10)
        assert _signal_wakeup._WATCHER.nudges[signal.SIGUSR1] == [
            failing, nudged.set,
        ]
    finally:
        _signal_wakeup.unwatch(signal.SIGUSR1, failing)
        _signal_wakeup.unwatch(signal.SIGUSR1, nudged.set)
    assert current_wakeup_fd() == -1
    assert signal.SIGUSR1 not in _signal_wakeup._WATCHER.nudges


@pytest.mark.skipif(sys.platform == "win32", reason="add_signal_handler")
def test_a_wakeup_fd_owned_by_a_loop_is_left_alone(loop, sigusr1_handled):
    # A running loop with a signal handler (uvloop: any running loop) owns
    # the wakeup fd and wakes itself on signals.
    def noop():
        pass

    async def watch_while_running():
        owned = current_wakeup_fd()
        _signal_wakeup.watch(signal.SIGUSR1, noop)
        return owned, current_wakeup_fd()

    loop.add_signal_handler(signal.SIGUSR2, noop)
    try:
        owned, after_watch = loop.run_until_complete(watch_while_running())
        assert owned != -1
        assert after_watch == owned
        assert _signal_wakeup._WATCHER.thread is None
    finally:
        _signal_wakeup.unwatch(signal.SIGUSR1, noop)
        loop.remove_signal_handler(signal.SIGUSR2)
    assert current_wakeup_fd() == -1


def test_watch_outside_the_main_thread_does_nothing(sigusr1_handled):
    def noop():
        pass

    thread = threading.Thread(
        target=_signal_wakeup.watch, args=(signal.SIGUSR1, noop),
    )
    thread.start()
    thread.join()
    assert signal.SIGUSR1 not in _signal_wakeup._WATCHER.nudges
    assert current_wakeup_fd() == -1
