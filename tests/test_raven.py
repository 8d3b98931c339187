"""``aiomisc_c.service.raven.RavenSender``: log records reach a local
aiohttp server standing in for the Sentry endpoint."""
import asyncio
import json
import logging
import zlib

import pytest
from aiohttp import web
from helpers.quiet_entrypoint import ep, reset_loop_state  # noqa: F401 - autouse
from helpers.waiting import wait_until

from aiomisc_c.service import raven as raven_module
from aiomisc_c.service.raven import (
    AioHttpTransport,
    QueuedAioHttpTransport,
    QueuedKeepaliveAioHttpTransport,
    RavenSender,
)


# raven's client patches process-wide state for good: the methods of
# logging.Logger (every later log call records a breadcrumb that keeps its
# arguments alive), sys.excepthook, and http.client.  The rest of the suite
# must not run under those patches, so this module puts them back.
_LOGGER_METHODS = (
    "debug", "info", "warning", "warn", "error", "exception", "critical",
    "fatal", "log",
)


@pytest.fixture(autouse=True, scope="module")
def restore_what_raven_patches():
    import http.client
    import sys

    logger_methods = {
        name: vars(logging.Logger)[name] for name in _LOGGER_METHODS
        if name in vars(logging.Logger)
    }
    excepthook = sys.excepthook
    http_request = vars(http.client.HTTPConnection).get("request")
    yield
    for name, method in logger_methods.items():
        setattr(logging.Logger, name, method)
    sys.excepthook = excepthook
    if http_request is not None:
        http.client.HTTPConnection.request = http_request


class FakeSentry:
    """POST /api/<project>/store/ of a Sentry server."""

    def __init__(self, status=200):
        self.events = []
        self.status = status
        self.app = web.Application()
        self.app.router.add_post("/api/{project}/store/", self.store)
        self.runner = None
        self.port = None

    async def store(self, request):
        body = await request.read()     # aiohttp inflates "deflate" bodies
        if body[:1] != b"{":
            body = zlib.decompress(body)
        self.events.append({
            "project": request.match_info["project"],
            "auth": request.headers.get("X-Sentry-Auth", ""),
            "event": json.loads(body),
        })
        if self.status == 429:
            return web.Response(status=429, headers={"Retry-After": "7"})
        return web.json_response({"id": "1"}, status=self.status)

    async def __aenter__(self):
        self.runner = web.AppRunner(self.app)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *_):
        await self.runner.cleanup()

    def dsn(self):
        return f"http://public:secret@127.0.0.1:{self.port}/42"


def test_log_record_reaches_sentry(plain_loop, policy):
    async def body():
        async with FakeSentry() as sentry:
            sender = RavenSender(sentry_dsn=sentry.dsn(), min_level=logging.ERROR)
            async with ep(sender, policy=policy):
                handler = sender.handler
                assert handler in logging.getLogger().handlers
                # Credentials do not stay in the attribute (it is logged).
                assert str(sender.sentry_dsn) == f"http://127.0.0.1:{sentry.port}/42"
                logging.getLogger("app").warning("below the level")
                logging.getLogger("app").error("it broke: %s", 42)
                await wait_until(lambda: sentry.events, message="an event")
            assert handler not in logging.getLogger().handlers
            return sentry.events

    events = plain_loop.run_until_complete(body())
    assert len(events) == 1
    (event,) = events
    assert event["project"] == "42"
    assert "sentry_key=public" in event["auth"]
    assert event["event"]["message"] == "it broke: 42"
    assert event["event"]["logger"] == "app"
    assert event["event"]["level"] == logging.ERROR


@pytest.mark.parametrize("status", [429, 500])
def test_server_errors_go_to_the_failure_callback(plain_loop, policy, status):
    async def body():
        failures, successes = [], []
        async with FakeSentry(status=status) as sentry:
            transport = QueuedAioHttpTransport(timeout=5)
            url = f"http://127.0.0.1:{sentry.port}/api/1/store/"
            transport.async_send(
                url, b"{}", {}, lambda: successes.append(1), failures.append,
            )
            await wait_until(lambda: failures or successes, message="a reply")
            await transport.close()
        return failures, successes

    failures, successes = plain_loop.run_until_complete(body())
    assert successes == []
    if status == 429:
        assert type(failures[0]).__name__ == "RateLimited"
        assert failures[0].retry_after == 7
    else:
        assert type(failures[0]).__name__ == "APIError"
        assert failures[0].code == 500


def test_transports(plain_loop, policy):
    async def body():
        async with FakeSentry() as sentry:
            url = f"http://127.0.0.1:{sentry.port}/api/1/store/"
            done = []
            for factory in (
                AioHttpTransport,
                lambda: AioHttpTransport(keepalive=False),
                QueuedKeepaliveAioHttpTransport,
            ):
                transport = factory()
                transport.async_send(url, b"{}", {}, lambda: done.append(1), done.append)
                await wait_until(lambda: len(done) == len(sentry.events) and done,
                                 message="a send")
                await transport.close()
                # Closed: the event fails at once.
                failed = []
                transport.async_send(url, b"{}", {}, lambda: None, failed.append)
                assert isinstance(failed[0], RuntimeError)
                assert str(failed[0]).endswith("is closed")
                done.clear()
                sentry.events.clear()

    plain_loop.run_until_complete(body())


def test_full_queue_drops_the_oldest(plain_loop, policy):
    async def body():
        transport = QueuedAioHttpTransport(qsize=2, workers=1)
        failures = []
        # The worker cannot run before we yield: fill beyond the queue size.
        for index in range(4):
            transport._async_send(
                "http://127.0.0.1:1/", b"", {}, lambda: None,
                lambda exc, index=index: failures.append((index, exc)),
            )
        assert [index for index, _ in failures] == [0, 1]
        assert all(isinstance(exc, RuntimeError) for _, exc in failures)
        await transport.close(timeout=5)

    plain_loop.run_until_complete(body())


def test_transport_takes_no_url():
    async def body():
        with pytest.raises(TypeError) as info:
            AioHttpTransport("http://example.com")
        assert str(info.value) == "Transport accepts no URLs for this version of raven."

    asyncio.run(body())


def test_module_names():
    assert raven_module.__all__ == ("RavenSender",)
    assert RavenSender.__required__ == frozenset({"sentry_dsn"})
    with pytest.raises(AttributeError):
        RavenSender()
    defaults = QueuedKeepaliveAioHttpTransport
    assert (defaults.DNS_CACHE, defaults.DNS_CACHE_TTL, defaults.WORKERS,
            defaults.QUEUE_SIZE, defaults.TCP_CONNECTION_LIMIT,
            defaults.TCP_CONNECTION_LIMIT_HOST) == (True, 600, 1, 1000, 32, 8)
