"""HTTP through ``AIOHTTPService``: GET round trips on one keep-alive
connection, and the start+stop of the service.

* The service serves a one-route aiohttp application on a socket bound to
  127.0.0.1:0; the client is an ``aiohttp.ClientSession`` (one connection,
  kept alive) on the same loop, so a round trip is client and server work
  on one thread.
* Start+stop: a new service on a fresh socket per iteration, ``start()``
  then ``stop()`` (the runner setup, the site, the shutdown).
* Both libraries hand the socket to aiohttp's ``AppRunner``/``SockSite``:
  the target is no regression; the ratio is bounded by aiohttp itself.
  There is no C twin here, so only the package as imported is measured.

Run alone: ``python -m benchmarks --only web``.
"""
import asyncio
from typing import Any, Dict

from ._harness import (
    AIOMISC, AIOMISC_C, Case, Fixture, Subject, aiomisc_c_facts, describe_loop,
    import_peer, install_loop,
)

TITLE = "HTTP service (aiohttp)"

SUBJECTS = (
    Subject("aiomisc_c", "aiomisc_c", "aiomisc_c", env=AIOMISC_C.env),
    AIOMISC,
)
BASELINE = AIOMISC.name
REFERENCES = ()
LOOPS = ("asyncio", "uvloop")

CASES = (
    Case("get_round_trip", "GET round trip through AIOHTTPService (keep-alive)",
         iterations=1000, short="HTTP GET round trip"),
    Case("start_stop", "AIOHTTPService start() + stop()", iterations=200,
         short="service start+stop"),
)


def _service_class(library: Any) -> Any:
    from aiohttp import web

    service_module = __import__(
        f"{library.__name__}.service.aiohttp", fromlist=["AIOHTTPService"],
    )

    async def hello(request: web.Request) -> web.Response:
        return web.Response(text="hello")

    class Hello(service_module.AIOHTTPService):
        async def create_application(self) -> web.Application:
            app = web.Application()
            app.router.add_get("/", hello)
            return app

    return Hello


def setup(subject: str, loop_kind: str) -> Fixture:
    facts: Dict[str, Any] = {"loop_kind": loop_kind}
    aiohttp, facts["aiohttp"] = import_peer("aiohttp")
    if subject == AIOMISC.name:
        library, facts["version"] = import_peer("aiomisc")
    else:
        import aiomisc_c as library

        facts.update(aiomisc_c_facts("loop"))

    loop = install_loop(loop_kind)
    service_class = _service_class(library)

    async def started() -> Any:
        sock = library.bind_socket(address="127.0.0.1", port=0)
        service = service_class(sock=sock)
        service.set_loop(loop)
        await service.start()
        return service, sock.getsockname()[1]

    service, port = loop.run_until_complete(started())
    url = f"http://127.0.0.1:{port}/"
    session = loop.run_until_complete(_session(aiohttp))

    async def get_round_trip(iterations: int) -> None:
        for _ in range(iterations):
            async with session.get(url) as response:
                await response.read()

    async def start_stop(iterations: int) -> None:
        for _ in range(iterations):
            other, _ = await started()
            await other.stop()

    def close() -> None:
        loop.run_until_complete(session.close())
        loop.run_until_complete(service.stop())
        loop.close()

    facts["loop"] = describe_loop(loop)
    return Fixture(
        loop=loop,
        bodies={"get_round_trip": get_round_trip, "start_stop": start_stop},
        close=close, facts=facts,
    )


async def _session(aiohttp: Any) -> Any:
    connector = aiohttp.TCPConnector(limit=1)
    return aiohttp.ClientSession(connector=connector)
