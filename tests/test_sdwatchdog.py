"""``aiomisc_c.service.sdwatchdog``: the systemd notify protocol over a
real unix datagram socket standing in for systemd's ``NOTIFY_SOCKET``."""
import asyncio
import logging
import os
import socket
import subprocess
import sys
import textwrap
import threading
import time
import uuid

import pytest
from helpers.childproc import NEUTRAL_CWD, child_env
from helpers.quiet_entrypoint import ep, reset_loop_state  # noqa: F401 - autouse

from aiomisc_c.entrypoint import Entrypoint
from aiomisc_c.service import sdwatchdog
from aiomisc_c.service.sdwatchdog import SDWatchdogService


@pytest.fixture
def plugin():
    """The plugin's receivers on the entrypoint signals (as when the
    installed entry point is loaded); removed again unless they were there."""
    receivers = {
        Entrypoint.PRE_START: sdwatchdog._pre_start,
        Entrypoint.POST_START: sdwatchdog._post_start,
        Entrypoint.PRE_STOP: sdwatchdog._pre_stop,
        Entrypoint.POST_STOP: sdwatchdog._post_stop,
    }
    already = {s for s, r in receivers.items() if r in s._receivers}
    sdwatchdog.setup()
    yield
    for signal, receiver in receivers.items():
        if signal not in already:
            signal.disconnect(receiver)


class NotifySocket:
    """A bound unix datagram socket; a thread receives (and timestamps)
    what the service sends."""

    def __init__(self, path):
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(path)
        self.sock.settimeout(0.02)
        self.messages = []      # (monotonic time, text)
        self.closed = threading.Event()
        self.thread = threading.Thread(target=self._receive)
        self.thread.start()

    def _receive(self):
        while not self.closed.is_set():
            try:
                data = self.sock.recv(4096)
            except (socket.timeout, OSError):
                continue
            self.messages.append((time.monotonic(), data.decode()))

    def drain(self):
        """Every message so far (waits for the ones in flight)."""
        time.sleep(0.1)
        return [text for _, text in self.messages]

    def close(self):
        if not self.closed.is_set():
            self.closed.set()
            self.thread.join()
            self.sock.close()


@pytest.fixture
def notify_socket(tmp_path, monkeypatch):
    notify = NotifySocket(str(tmp_path / "notify.sock"))
    monkeypatch.setenv("NOTIFY_SOCKET", notify.path)
    yield notify
    notify.close()


def without_pings(messages):
    return [m for m in messages if m != "WATCHDOG=1"]


def test_environment_helpers(monkeypatch):
    monkeypatch.delenv("WATCHDOG_USEC", raising=False)
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    assert sdwatchdog._get_watchdog_interval() is None
    assert sdwatchdog._get_socket_addr() is None
    monkeypatch.setenv("WATCHDOG_USEC", "2500000")
    monkeypatch.setenv("NOTIFY_SOCKET", "@abstract/name")
    assert sdwatchdog._get_watchdog_interval() == 2.5
    assert sdwatchdog._get_socket_addr() == "\0abstract/name"
    monkeypatch.setenv("NOTIFY_SOCKET", "/run/systemd/notify")
    assert sdwatchdog._get_socket_addr() == "/run/systemd/notify"
    assert sdwatchdog.__all__ == ("SDWatchdogService",)
    assert sdwatchdog.__doc__ == "Adds SystemD watchdog support to the entrypoint."


def test_notifications_and_pings(plugin, notify_socket, policy):
    service = SDWatchdogService(watchdog_interval=0.1)
    assert service.name == "systemd-watchdog"
    assert service.socket_addr == notify_socket.path
    assert not service.is_connected

    with ep(service, policy=policy) as loop:
        assert service.is_connected
        started = time.monotonic()
        loop.run_until_complete(asyncio.sleep(1))
        running_for = time.monotonic() - started
        during = notify_socket.drain()
    after = notify_socket.drain()

    assert not service.is_connected
    assert without_pings(during) == [
        "STATUS=Starting 1 services",
        "WATCHDOG_USEC=100000",
        "STATUS=Started 1 services",
        "READY=1",
    ]
    assert without_pings(after) == [
        "STATUS=Starting 1 services",
        "WATCHDOG_USEC=100000",
        "STATUS=Started 1 services",
        "READY=1",
        "STATUS=Stopping 1 services",
        "STOPPING=1",
    ]
    assert after[-1] == "STOPPING=1"
    # A ping every interval / 2 = 0.05 s: about 20 in a second, with room
    # for a loaded machine.
    pings = [t for t, text in notify_socket.messages if text == "WATCHDOG=1"]
    assert 5 <= len(pings) <= 25 * max(1.0, running_for), len(pings)
    gaps = sorted(b - a for a, b in zip(pings, pings[1:]))
    assert 0.02 < gaps[len(gaps) // 2] < 0.5


def test_status_counts_every_service(plugin, notify_socket, policy):
    class Noop(SDWatchdogService.__mro__[1]):     # a plain Service
        async def start(self):
            pass

    service = SDWatchdogService(watchdog_interval=None)
    with ep(service, Noop(), Noop(), policy=policy):
        pass
    # No interval: no pings and no WATCHDOG_USEC, but the status goes out.
    assert notify_socket.drain() == [
        "STATUS=Starting 3 services",
        "STATUS=Started 3 services",
        "READY=1",
        "STATUS=Stopping 3 services",
        "STOPPING=1",
    ]


@pytest.mark.skipif(
    not sys.platform.startswith("linux"),
    reason="abstract unix sockets are Linux-only",
)
def test_abstract_namespace_socket(plugin, monkeypatch, policy):
    name = f"aiomisc_c-test-{uuid.uuid4().hex}"
    notify = NotifySocket("\0" + name)
    monkeypatch.setenv("NOTIFY_SOCKET", "@" + name)
    try:
        with ep(SDWatchdogService(watchdog_interval=None), policy=policy):
            pass
        assert "READY=1" in notify.drain()
    finally:
        notify.close()


def test_without_notify_socket_nothing_happens(plugin, monkeypatch, policy, caplog):
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    service = SDWatchdogService(watchdog_interval=0.05)
    with caplog.at_level(logging.DEBUG, logger=sdwatchdog.__name__):
        with ep(service, policy=policy) as loop:
            loop.run_until_complete(asyncio.sleep(0.1))
            assert not service.is_connected
    assert any("NOTIFY_SOCKET not exported" in m for m in caplog.messages)


def test_unreachable_notify_socket_is_logged(plugin, tmp_path, monkeypatch, policy, caplog):
    monkeypatch.setenv("NOTIFY_SOCKET", str(tmp_path / "nobody-listens"))
    service = SDWatchdogService(watchdog_interval=0.05)
    with caplog.at_level(logging.WARNING, logger=sdwatchdog.__name__):
        with ep(service, policy=policy) as loop:
            loop.run_until_complete(asyncio.sleep(0.1))
            assert not service.is_connected
    assert any("not reachable" in m for m in caplog.messages)


def test_systemd_going_away_is_logged(plugin, notify_socket, policy, caplog):
    service = SDWatchdogService(watchdog_interval=0.05)
    with caplog.at_level(logging.WARNING, logger=sdwatchdog.__name__):
        with ep(service, policy=policy) as loop:
            notify_socket.close()
            os.unlink(notify_socket.path)
            loop.run_until_complete(asyncio.sleep(0.2))
            assert service.is_connected         # still running
    assert any("communication problem" in m for m in caplog.messages)


def test_send_without_connection_is_a_noop(plain_loop, monkeypatch):
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    service = SDWatchdogService(watchdog_interval=None)
    service.set_loop(plain_loop)
    plain_loop.run_until_complete(service.send("READY=1"))
    assert plain_loop.run_until_complete(service.connect()) is False
    plain_loop.run_until_complete(service.disconnect())
    assert not service.is_connected
    # stop() before start() is harmless.
    plain_loop.run_until_complete(service.stop())


CHILD = textwrap.dedent("""\
    import asyncio
    from aiomisc_c import entrypoint
    from aiomisc_c.service import sdwatchdog

    sdwatchdog.setup()      # as the installed entry point does
    service = sdwatchdog.SDWatchdogService()
    print(sdwatchdog.WATCHDOG_INTERVAL, service.watchdog_interval, flush=True)
    with entrypoint(service, log_config=False, catch_signals=()) as loop:
        loop.run_until_complete(asyncio.sleep(0.5))
""")


@pytest.mark.subprocess
def test_interval_from_the_environment(tmp_path):
    notify = NotifySocket(str(tmp_path / "notify.sock"))
    try:
        result = subprocess.run(
            [sys.executable, "-c", CHILD], cwd=NEUTRAL_CWD,
            env=child_env(
                NOTIFY_SOCKET=notify.path, WATCHDOG_USEC="100000",
                AIOMISC_NO_PLUGINS="1",
            ),
            capture_output=True, text=True, timeout=120,
        )
        assert result.returncode == 0, result.stderr
        assert result.stdout.split() == ["0.1", "0.1"]
        messages = notify.drain()
    finally:
        notify.close()
    # The interval systemd gave is not sent back.
    assert without_pings(messages) == [
        "STATUS=Starting 1 services",
        "STATUS=Started 1 services",
        "READY=1",
        "STATUS=Stopping 1 services",
        "STOPPING=1",
    ]
    assert 3 <= messages.count("WATCHDOG=1") <= 40


HOOKS_BEFORE_ENTRYPOINT = textwrap.dedent("""\
    import sys
    from aiomisc_c.service import sdwatchdog

    sdwatchdog.setup()
    # The plugin hook does not import the entrypoint (it would slow every
    # "import aiomisc_c" down) ...
    assert "aiomisc_c.entrypoint" not in sys.modules
    from aiomisc_c.entrypoint import Entrypoint

    # ... its receivers are connected once the entrypoint loads.
    for signal, receiver in (
        (Entrypoint.PRE_START, sdwatchdog._pre_start),
        (Entrypoint.POST_START, sdwatchdog._post_start),
        (Entrypoint.PRE_STOP, sdwatchdog._pre_stop),
        (Entrypoint.POST_STOP, sdwatchdog._post_stop),
    ):
        assert receiver in signal._receivers, signal
    print("connected")
""")


def test_setup_before_the_entrypoint_is_imported():
    result = subprocess.run(
        [sys.executable, "-c", HOOKS_BEFORE_ENTRYPOINT],
        capture_output=True, text=True, timeout=60, cwd=NEUTRAL_CWD,
        env=child_env(AIOMISC_NO_PLUGINS="1"),
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "connected"
