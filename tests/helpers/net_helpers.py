"""Helpers of the socket-service tests: run a body inside an entrypoint,
find out whether IPv6 works, make Unix socket paths short enough."""
import asyncio
import gc
import os
import socket
import tempfile

import pytest
from .quiet_entrypoint import ep


def ipv6_available():
    if not socket.has_ipv6:
        return False
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as probe:
            probe.bind(("::1", 0))
    except OSError:
        return False
    return True


needs_ipv6 = pytest.mark.skipif(
    not ipv6_available(), reason="IPv6 loopback (::1) is unavailable here",
)
needs_unix = pytest.mark.skipif(
    not hasattr(socket, "AF_UNIX"), reason="no Unix sockets on this platform",
)


def run_services(policy, *services, body, timeout=30, **kwargs):
    """Start ``services`` in an entrypoint on a loop of ``policy``, await
    ``body()`` (with a timeout), shut down; then collect garbage so that an
    unclosed transport or socket shows up in this test, and check that the
    loop reported no error meanwhile."""
    errors = []
    with ep(*services, policy=policy, **kwargs) as loop:
        # "exception was never retrieved", errors in callbacks, ...
        loop.set_exception_handler(lambda _, context: errors.append(context))
        result = loop.run_until_complete(asyncio.wait_for(body(), timeout))
    gc.collect()
    assert errors == [], errors
    return result


@pytest.fixture
def unix_path():
    """A socket path short enough for sun_path (tmp_path may be too long)."""
    directory = tempfile.mkdtemp(prefix="aiomisc-c-")
    path = os.path.join(directory, "sock")
    yield path
    if os.path.exists(path):
        os.unlink(path)
    os.rmdir(directory)


async def close_writer(writer):
    writer.close()
    try:
        await writer.wait_closed()
    except OSError:
        pass
