"""``aiomisc_c.service.uvicorn``: an ASGI application served by uvicorn
over TCP (port 0, a given socket) and a Unix socket, on both loops."""
import asyncio
import pickle
import socket
import ssl

import aiohttp
import pytest
from helpers.quiet_entrypoint import ep, reset_loop_state  # noqa: F401 - autouse
from helpers.tls_certs import certs  # noqa: F401 - fixture
from helpers.webtools import (
    client_ssl_context, import_without, port_of, refuses_connections, serve,
)

from aiomisc_c.service.uvicorn import UvicornApplication, UvicornService
from aiomisc_c.utils import bind_socket


def make_asgi_app(events):
    """A raw ASGI application answering ``<root_path>|<path>`` and
    recording its lifespan events."""

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
        await receive()
        body = f"{scope['root_path']}|{scope['path']}".encode()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": body})

    return app


class Echo(UvicornService):
    async def create_application(self) -> UvicornApplication:
        return make_asgi_app(self.events)


async def get(url, connector=None):
    async with aiohttp.ClientSession(connector=connector) as session:
        async with session.get(url) as response:
            return response.status, await response.text(), response.headers


def test_port_zero_lifespan_and_stop(policy):
    events = []
    service = Echo(port=0, events=events)

    async def client():
        port = port_of(service.sock)
        startup = list(events)
        status, text, _ = await get(f"http://127.0.0.1:{port}/path")
        return port, startup, status, text

    port, startup, status, text = serve(policy, service, client=client)
    assert startup == ["lifespan.startup"]
    assert (status, text) == (200, "|/path")
    assert events == ["lifespan.startup", "lifespan.shutdown"]
    assert service.serve_task.done()
    assert service.sock.fileno() == -1
    assert refuses_connections(port)


def test_given_socket(policy):
    sock = bind_socket(address="127.0.0.1", port=0)
    port = port_of(sock)
    service = Echo(sock=sock, events=[])

    async def client():
        return (await get(f"http://127.0.0.1:{port}/given"))[:2]

    assert serve(policy, service, client=client) == (200, "|/given")
    assert service.sock is sock and sock.fileno() == -1


def test_unix_socket(policy, tmp_path):
    path = str(tmp_path / "uvicorn.sock")
    service = Echo(uds=path, events=[])

    async def client():
        connector = aiohttp.UnixConnector(path)
        return (await get("http://localhost/unix", connector=connector))[:2]

    assert serve(policy, service, client=client) == (200, "|/unix")
    assert service.sock.family == socket.AF_UNIX


def test_config_passthrough(policy):
    class Factory(UvicornService):
        async def create_application(self):
            return lambda: make_asgi_app([])

    service = Factory(
        port=0, factory=True, root_path="/root", server_header=False,
        headers=[("x-served-by", "aiomisc_c")], lifespan="off",
    )

    async def client():
        config = service.server.config
        status, text, headers = await get(
            f"http://127.0.0.1:{port_of(service.sock)}/x",
        )
        return config, status, text, headers

    config, status, text, headers = serve(policy, service, client=client)
    assert (status, text) == (200, "/root|/root/x")
    assert headers["x-served-by"] == "aiomisc_c"
    assert "server" not in headers
    assert config.log_config is None and config.use_colors is False
    assert config.ssl_ciphers == "TLSv1"
    assert config.backlog == 2048 and config.timeout_keep_alive == 5


def test_failed_lifespan_startup_fails_start(policy):
    class Failing(UvicornService):
        lifespan = "on"

        async def create_application(self):
            async def app(scope, receive, send):
                await receive()
                await send({"type": "lifespan.startup.failed", "message": "no"})

            return app

    service = Failing(port=0)
    with pytest.raises(RuntimeError, match="could not start"):
        serve(policy, service, client=lambda: asyncio.sleep(0))
    assert service.sock.fileno() == -1


def test_port_in_use(policy):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(OSError) as info:
            serve(policy, Echo(port=port, events=[]), client=lambda: asyncio.sleep(0))
    assert f"('127.0.0.1', {port})" in str(info.value)


def test_stop_without_start(loop):
    loop.run_until_complete(Echo(events=[]).stop())


@pytest.fixture
def loop(plain_loop):
    return plain_loop


# ------------------------------------------------------------- the class


def test_hook_is_abstract_and_async():
    with pytest.raises(TypeError):
        UvicornService()
    with pytest.raises(TypeError) as info:
        class Sync(UvicornService):
            def create_application(self):
                return make_asgi_app([])

    assert "Sync.create_application" in info.value.args[1]
    assert UvicornService.__async_required__ == frozenset(
        {"start", "stop", "create_application"},
    )


def test_defaults():
    import uvicorn.config

    expected = {
        "sock": None, "host": "127.0.0.1", "port": 8080, "uds": None,
        "fd": None, "http": "auto", "ws": "auto", "ws_max_size": 16 * 1024 * 1024,
        "ws_ping_interval": 20.0, "ws_ping_timeout": 20.0,
        "ws_per_message_deflate": True, "lifespan": "auto", "access_log": True,
        "interface": "auto", "proxy_headers": True, "server_header": True,
        "date_header": True, "forwarded_allow_ips": None, "root_path": "",
        "limit_concurrency": None, "limit_max_requests": None, "backlog": 2048,
        "timeout_keep_alive": 5, "timeout_notify": 30,
        "timeout_graceful_shutdown": None, "callback_notify": None,
        "ssl_keyfile": None, "ssl_certfile": None, "ssl_keyfile_password": None,
        "ssl_version": uvicorn.config.SSL_PROTOCOL_VERSION,
        "ssl_cert_reqs": ssl.CERT_NONE, "ssl_ca_certs": None,
        "ssl_ciphers": "TLSv1", "headers": None, "factory": False,
        "h11_max_incomplete_event_size": None,
    }
    assert {name: getattr(UvicornService, name) for name in expected} == expected


def test_keywords_and_pickle():
    service = Echo(port=0, host="::1", events=[1, 2])
    assert (service.port, service.host) == (0, "::1")
    clone = pickle.loads(pickle.dumps(service))
    assert (clone.port, clone.host, clone.events) == (0, "::1", [1, 2])
    assert Echo.port == 8080


def test_import_error_names_the_extra():
    stderr = import_without("aiomisc_c.service.uvicorn", ["uvicorn"])
    assert "pip install 'aiomisc_c[uvicorn]'" in stderr


def test_tls_settings_pass_through(policy, certs):
    service = Echo(
        port=0, host="127.0.0.1", events=[],
        ssl_certfile=str(certs.server_cert), ssl_keyfile=str(certs.server_key),
    )
    context = client_ssl_context(certs)

    async def client():
        port = port_of(service.sock)
        connector = aiohttp.TCPConnector(ssl=context)
        return (await get(f"https://localhost:{port}/tls", connector=connector))[:2]

    assert serve(policy, service, client=client) == (200, "|/tls")


def test_added_to_a_running_entrypoint(policy):
    instance = ep(policy=policy)
    events = []

    async def main():
        service = Echo(port=0, events=events)
        await instance.start_services(service)
        port = port_of(service.sock)
        answer = (await get(f"http://127.0.0.1:{port}/late"))[:2]
        await instance.stop_services(service)
        return answer, refuses_connections(port)

    with instance as loop:
        answer, refused = loop.run_until_complete(asyncio.wait_for(main(), 30))
    assert answer == (200, "|/late") and refused
    assert events == ["lifespan.startup", "lifespan.shutdown"]
