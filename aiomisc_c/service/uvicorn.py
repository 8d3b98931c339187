"""An ASGI application served by uvicorn (mirror of
``aiomisc.service.uvicorn``; needs the ``uvicorn`` extra).

Every ``uvicorn.Config`` setting is a class attribute (override it in a
subclass or pass it as a keyword).  ``start()`` returns once uvicorn has run
the application's lifespan startup and listens; ``stop()`` asks the server
to exit and waits for its graceful shutdown.
"""
from __future__ import annotations

import abc
import asyncio
import logging
import os
import socket
import ssl
from collections.abc import Awaitable, Callable
from typing import Any, List, Optional, Tuple, Type, Union

try:
    from asgiref.typing import ASGIApplication
    from uvicorn.config import (
        SSL_PROTOCOL_VERSION,
        Config,
        HTTPProtocolType,
        InterfaceType,
        LifespanType,
        WSProtocolType,
    )
    from uvicorn.server import Server
except ImportError as e:  # pragma: no cover - exercised in a subprocess
    raise ImportError(
        "aiomisc_c.service.uvicorn needs uvicorn and asgiref: "
        "pip install 'aiomisc_c[uvicorn]'",
    ) from e

from .base import Service

# No __all__: a star import gives every public name, as aiomisc's module does.

log = logging.getLogger(__name__)

UvicornApplication = Union[ASGIApplication, Callable]  # type: ignore[type-arg]

_STARTUP_FAILED = "uvicorn could not start the application"

# Attributes passed to uvicorn.Config under the same name.
_CONFIG_ATTRIBUTES = (
    "host", "port", "uds", "fd", "http", "ws", "ws_max_size",
    "ws_ping_interval", "ws_ping_timeout", "ws_per_message_deflate",
    "lifespan", "access_log", "interface", "proxy_headers", "server_header",
    "date_header", "forwarded_allow_ips", "root_path", "limit_concurrency",
    "limit_max_requests", "backlog", "timeout_keep_alive", "timeout_notify",
    "timeout_graceful_shutdown", "callback_notify", "ssl_keyfile",
    "ssl_certfile", "ssl_keyfile_password", "ssl_version", "ssl_cert_reqs",
    "ssl_ca_certs", "ssl_ciphers", "headers", "factory",
    "h11_max_incomplete_event_size",
)


def _bind_socket(config: Config) -> socket.socket:
    """The socket uvicorn would bind for ``config``, except that a failure
    raises ``OSError`` naming the address (uvicorn itself exits the
    process)."""
    if config.fd is not None:
        return socket.fromfd(config.fd, socket.AF_UNIX, socket.SOCK_STREAM)

    target: Union[str, Tuple[str, int]]
    if config.uds is not None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        target, url = config.uds, f"unix://{config.uds}"
    else:
        host = config.host
        family = socket.AF_INET6 if host and ":" in host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        target = (host, config.port)
        url = f"[{host}]" if family == socket.AF_INET6 else host
    try:
        sock.bind(target)
        if config.uds is not None:
            os.chmod(config.uds, 0o666)
    except OSError as e:
        sock.close()
        raise OSError(
            e.errno,
            f"error while attempting to bind on address {target!r}: "
            f"{(e.strerror or str(e)).lower()}",
        ) from None

    if config.uds is None:
        scheme = "https" if config.is_ssl else "http"
        url = f"{scheme}://{url}:{sock.getsockname()[1]}"
    log.info("Listening %s", url)
    return sock


class _Server(Server):
    """A uvicorn server that resolves ``ready`` when its startup is over."""

    def __init__(self, config: Config, ready: asyncio.Future[None]):
        super().__init__(config)
        self._ready = ready

    async def startup(self, sockets: Optional[List[socket.socket]] = None) -> None:
        await super().startup(sockets=sockets)
        if not self._ready.done():
            self._ready.set_result(None)


class UvicornService(Service, abc.ABC):
    """Serves the ASGI application returned by :meth:`create_application`
    with uvicorn, on ``sock`` or on the socket ``host``/``port``/``uds``/
    ``fd`` describe (bound by ``start()`` and kept in ``sock``)."""

    __async_required__: Tuple[str, ...] = ("start", "stop", "create_application")

    sock: Optional[socket.socket] = None

    host: str = "127.0.0.1"
    port: int = 8080
    uds: Optional[str] = None
    fd: Optional[int] = None
    http: Union[Type[asyncio.Protocol], HTTPProtocolType] = "auto"
    ws: Union[Type[asyncio.Protocol], WSProtocolType] = "auto"
    ws_max_size: int = 16 * 1024 * 1024
    ws_ping_interval: Optional[float] = 20.0
    ws_ping_timeout: Optional[float] = 20.0
    ws_per_message_deflate: bool = True
    lifespan: LifespanType = "auto"
    access_log: bool = True
    interface: InterfaceType = "auto"
    proxy_headers: bool = True
    server_header: bool = True
    date_header: bool = True
    forwarded_allow_ips: Union[List[str], str, None] = None
    root_path: str = ""
    limit_concurrency: Optional[int] = None
    limit_max_requests: Optional[int] = None
    backlog: int = 2048
    timeout_keep_alive: int = 5
    timeout_notify: int = 30
    timeout_graceful_shutdown: Optional[int] = None
    callback_notify: Optional[Callable[..., Awaitable[None]]] = None
    ssl_keyfile: Optional[str] = None
    ssl_certfile: Union[str, os.PathLike[str], None] = None
    ssl_keyfile_password: Optional[str] = None
    ssl_version: int = SSL_PROTOCOL_VERSION
    ssl_cert_reqs: int = ssl.CERT_NONE
    ssl_ca_certs: Optional[str] = None
    ssl_ciphers: str = "TLSv1"
    headers: Optional[List[Tuple[str, str]]] = None
    factory: bool = False
    h11_max_incomplete_event_size: Optional[int] = None

    @abc.abstractmethod
    async def create_application(self) -> UvicornApplication:
        """Hook: the ASGI application (or, with ``factory=True``, a
        function returning it)."""
        raise NotImplementedError

    def _config(self, application: UvicornApplication) -> Config:
        settings = {name: getattr(self, name) for name in _CONFIG_ATTRIBUTES}
        # The entrypoint owns logging: uvicorn must not reconfigure it.
        return Config(application, log_config=None, use_colors=False, **settings)

    async def start(self) -> Any:
        application = await self.create_application()
        config = self._config(application)
        if not self.sock:
            self.sock = _bind_socket(config)

        ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.server = _Server(config, ready)
        self.serve_task = asyncio.create_task(self._serve(ready))
        await ready
        if not self.server.started:
            # The serve task ended before uvicorn listened (older uvicorn
            # returns instead of exiting when the lifespan startup fails).
            await self.serve_task
            raise RuntimeError(_STARTUP_FAILED)

    async def _serve(self, ready: asyncio.Future[None]) -> None:
        sock = self.sock
        assert sock is not None  # bound by start()
        try:
            await self.server.serve(sockets=[sock])
        except SystemExit as e:
            # uvicorn exits the process when the application fails to start;
            # here that fails start() instead.
            error = RuntimeError(_STARTUP_FAILED, e.code)
            error.__cause__ = e.__context__   # what uvicorn logged, if any
            if ready.done():
                raise error from None
            ready.set_exception(error)
        finally:
            if not self.server.started:
                sock.close()   # never served: uvicorn did not take it over
            if not ready.done():
                ready.set_result(None)

    async def stop(self, exception: Optional[Exception] = None) -> None:
        server = self.__dict__.get("server")
        if server is None:
            return
        server.should_exit = True
        await self.serve_task
