"""The helpers of ``aiomisc_c.pytest`` used directly (the plugin itself is
tested through pytester in test_pytest_plugin.py)."""
import asyncio
import os
import socket
import subprocess
import sys
import unittest.mock

import pytest
from helpers.childproc import NEUTRAL_CWD, child_env

import aiomisc_c
from aiomisc_c import pytest as plugin
from aiomisc_c.pytest import _proxy


@pytest.fixture
def loop(plain_loop):
    return plain_loop


def test_isasyncgenerator():
    async def agen():
        yield

    async def coro():
        pass

    def plain():
        pass

    assert plugin.isasyncgenerator(agen) is True
    assert plugin.isasyncgenerator(coro) is False
    assert plugin.isasyncgenerator(unittest.mock.AsyncMock()) is False
    assert plugin.isasyncgenerator(plain) is None


def test_mock_get_event_loop_passes_through_and_restores(loop):
    original = asyncio.get_event_loop
    with plugin.mock_get_event_loop() as getter:
        assert asyncio.get_event_loop is getter
        assert asyncio.get_event_loop() is loop
        assert getter.call_count == 1
        getter.side_effect = RuntimeError("forbidden")
        with pytest.raises(RuntimeError, match="forbidden"):
            asyncio.get_event_loop()
    assert asyncio.get_event_loop is original


def test_unused_port_and_deprecated_alias():
    port = plugin.unused_port()
    assert 0 < port < 65536
    with pytest.warns(DeprecationWarning, match="aiomisc_unused_port_factory"):
        udp_port = plugin.get_unused_port(socket.AF_INET, socket.SOCK_DGRAM)
    assert 0 < udp_port < 65536


def test_socket_wrapper_reserves_a_bindable_port():
    assert plugin.socket_wrapper is plugin.SocketWrapperUnix
    wrapper = plugin.socket_wrapper()
    wrapper.prepare("127.0.0.1")
    assert wrapper.address == "127.0.0.1"
    assert wrapper.fd >= 0
    # The port stays reserved but bind_socket (SO_REUSEPORT) can take it.
    sock = aiomisc_c.bind_socket(address="127.0.0.1", port=wrapper.port)
    sock.close()
    wrapper.close()
    assert wrapper.fd == -1
    wrapper.close()  # idempotent


def test_socket_wrapper_is_abstract():
    with pytest.raises(TypeError):
        plugin.SocketWrapper()
    windows = plugin.SocketWrapperWindows()
    windows.prepare("127.0.0.1")
    assert windows.address == "127.0.0.1" and windows.port > 0
    windows.close()


def test_port_socket_is_a_named_tuple():
    with socket.socket() as sock:
        port_socket = plugin.PortSocket(port=1, socket=sock)
        assert port_socket == (1, sock)
        assert port_socket.port == 1 and port_socket.socket is sock


def test_delayed_future(loop):
    async def main():
        started = loop.time()
        assert await plugin.delayed_future(0.05, result="done") == "done"
        assert loop.time() - started >= 0.04
        # Cancelling the future cancels its timer.
        future = plugin.delayed_future(3600)
        future.cancel()
        await asyncio.sleep(0)
        assert not [h for h in getattr(loop, "_scheduled", []) if not h.cancelled()]

    loop.run_until_complete(main())


def test_delay(loop):
    async def main():
        delay = plugin.Delay()
        assert delay.timeout == 0
        await asyncio.wait_for(delay.wait(), 1)      # returns at once
        delay.timeout = 3600
        waiting = asyncio.ensure_future(delay.wait())
        await asyncio.sleep(0.01)
        assert delay.future is not None and not waiting.done()
        delay.timeout = 0                             # releases the wait
        await asyncio.wait_for(waiting, 5)
        assert delay.future is None

    loop.run_until_complete(main())
    with pytest.raises(AssertionError):
        plugin.Delay().timeout = -1
    with pytest.raises(AssertionError):
        plugin.Delay().timeout = "1"


def test_proxy_client_processors(loop):
    async def main():
        reader = asyncio.StreamReader()
        client = plugin.TCPProxyClient(reader, unittest.mock.Mock())
        assert client.loop is loop
        assert not client.buffered and client.chunk_size == 65536
        assert await client.read_processor(b"x") == b"x"
        client.read_processor = bytes.upper
        assert await client.read_processor(b"x") == b"X"
        client.write_processor = None
        assert client.write_processor is _proxy._identity
        assert "TCPProxyClient" in repr(client)
        await client.close()
        assert client.closing.done()
        await client.close()  # idempotent

    loop.run_until_complete(main())


def test_tcp_proxy_attributes():
    proxy = plugin.TCPProxy("127.0.0.1", 1234)
    assert proxy.DEFAULT_TIMEOUT == 30
    assert (proxy.proxy_host, proxy.target_host, proxy.target_port) == (
        "127.0.0.1", "127.0.0.1", 1234,
    )
    assert proxy.proxy_port > 0 and proxy.buffered is True
    assert proxy.server is None and proxy.clients == set()
    assert repr(proxy) == (
        f"<TCPProxy[{id(proxy):x}]: tcp://127.0.0.1:{proxy.proxy_port} "
        f"=> tcp://127.0.0.1:1234>"
    )
    with proxy.slowdown(1, 2):
        assert (proxy.read_delay, proxy.write_delay) == (1, 2)
    assert (proxy.read_delay, proxy.write_delay) == (0, 0)


@pytest.mark.subprocess
@pytest.mark.parametrize("env, expected", [
    ({}, "True True"),
    ({"AIOMISC_LOOP_AUTOUSE": "0", "AIOMISC_USE_UVLOOP": "yes"}, "False True"),
    # Only "1", "yes" and "true" turn uvloop on; only "1" autouse.
    ({"AIOMISC_LOOP_AUTOUSE": "true", "AIOMISC_USE_UVLOOP": "enable"}, "False False"),
    ({"AIOMISC_USE_UVLOOP": "TRUE"}, "True True"),
])
def test_environment(env, expected):
    code = (
        "from aiomisc_c import pytest as p; "
        "print(p.loop_autouse, p.USE_UVLOOP, p.uvloop_module is None)"
    )
    base = {
        k: v for k, v in os.environ.items()
        if k not in ("AIOMISC_LOOP_AUTOUSE", "AIOMISC_USE_UVLOOP")
    }
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=NEUTRAL_CWD,
        env=child_env(base, **env), capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 0, result.stderr
    autouse, use_uvloop, no_module = result.stdout.split()
    assert f"{autouse} {use_uvloop}" == expected
    if use_uvloop == "False":
        assert no_module == "True"
