"""``aiomisc_c.service.asgi``: an ASGI application behind aiohttp, over TCP,
a Unix socket and TLS, on both loops."""
import asyncio
import socket

import aiohttp
import pytest
from helpers.quiet_entrypoint import reset_loop_state  # noqa: F401 - autouse
from helpers.tls_certs import certs  # noqa: F401 - fixture
from helpers.webtools import client_ssl_context, import_without, port_of, serve

from aiomisc_c.service import asgi
from aiomisc_c.service.aiohttp import AIOHTTPService, AIOHTTPSSLService
from aiomisc_c.service.asgi import (
    ASGIApplicationType, ASGIHTTPService, ASGIHTTPSSLService,
)
from aiomisc_c.utils import bind_socket


def make_asgi_app(events):
    """A raw ASGI application: echoes method, path and body; records the
    lifespan events it receives in ``events``."""

    async def app(scope, receive, send):
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                events.append(message["type"])
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                else:
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        reply = f"{scope['method']} {scope['path']} ".encode() + body
        await send({
            "type": "http.response.start", "status": 200,
            "headers": [(b"content-type", b"text/plain")],
        })
        await send({"type": "http.response.body", "body": reply})

    return app


class Echo(ASGIHTTPService):
    async def create_asgi_app(self) -> ASGIApplicationType:
        return make_asgi_app(self.events)


class EchoTLS(ASGIHTTPSSLService):
    async def create_asgi_app(self) -> ASGIApplicationType:
        return make_asgi_app(self.events)


async def request(method, url, connector=None, **kwargs):
    async with aiohttp.ClientSession(connector=connector) as session:
        async with session.request(method, url, **kwargs) as response:
            return response.status, await response.text()


def test_serves_http_and_lifespan(policy):
    sock = bind_socket(address="127.0.0.1", port=0)
    port = port_of(sock)
    events = []
    service = Echo(sock=sock, events=events)

    async def client():
        started = list(events)
        base = f"http://127.0.0.1:{port}"
        return started, [
            await request("GET", f"{base}/a/b?x=1"),
            await request("POST", f"{base}/post", data=b"payload"),
        ]

    started, answers = serve(policy, service, client=client)
    assert started == ["lifespan.startup"]
    assert answers == [(200, "GET /a/b "), (200, "POST /post payload")]
    assert events == ["lifespan.startup", "lifespan.shutdown"]
    assert isinstance(service, AIOHTTPService)


def test_unix_socket(policy, tmp_path):
    path = str(tmp_path / "asgi.sock")
    sock = bind_socket(socket.AF_UNIX, socket.SOCK_STREAM, address=path)
    service = Echo(sock=sock, events=[])

    async def client():
        return await request(
            "GET", "http://localhost/unix", connector=aiohttp.UnixConnector(path),
        )

    assert serve(policy, service, client=client) == (200, "GET /unix ")


def test_tls(policy, certs):
    sock = bind_socket(address="127.0.0.1", port=0)
    port = port_of(sock)
    service = EchoTLS(
        certs.server_cert, certs.server_key, sock=sock, events=[],
    )
    context = client_ssl_context(certs)

    async def client():
        connector = aiohttp.TCPConnector(ssl=context)
        return await request(
            "GET", f"https://localhost:{port}/secure", connector=connector,
        )

    assert serve(policy, service, client=client) == (200, "GET /secure ")
    assert isinstance(service, AIOHTTPSSLService)


def test_default_hook_is_not_implemented(policy):
    sock = bind_socket(address="127.0.0.1", port=0)
    with pytest.raises(NotImplementedError) as info:
        serve(policy, ASGIHTTPService(sock=sock), client=lambda: asyncio.sleep(0))
    assert info.value.args == ('You must implement "create_asgi_app" method',)
    assert sock.fileno() == -1


def test_tls_hook_is_abstract(certs):
    with pytest.raises(TypeError, match="create_asgi_app"):
        ASGIHTTPSSLService(certs.server_cert, certs.server_key, port=1)


def test_sync_hook_rejected():
    with pytest.raises(TypeError) as info:
        class Sync(ASGIHTTPService):
            def create_asgi_app(self):
                return make_asgi_app([])

    assert info.value.args[0] == "Following methods must be coroutine functions"
    assert "Sync.create_asgi_app" in info.value.args[1]
    assert ASGIHTTPService.__async_required__ == frozenset(
        {"start", "create_application", "create_asgi_app"},
    )


def test_module_names():
    assert set(asgi.__all__) == {
        "ASGIApplicationType", "ASGIContext", "ASGIHTTPService",
        "ASGIMatchInfo", "ASGIReceiveType", "ASGIResource", "ASGIScopeType",
        "ASGISendType",
    }
    import aiohttp_asgi

    assert asgi.ASGIResource is aiohttp_asgi.ASGIResource
    assert not hasattr(asgi, "ASGIService")


def test_import_error_names_the_extra():
    stderr = import_without("aiomisc_c.service.asgi", ["aiohttp_asgi"])
    assert "pip install 'aiomisc_c[asgi]'" in stderr
