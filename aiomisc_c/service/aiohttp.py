"""An aiohttp web application served as a service (mirror of
``aiomisc.service.aiohttp``; needs the ``aiohttp`` extra).

The listening socket is bound when the service is constructed (so a port
clash shows up at once); ``start()`` returns once the site accepts
connections.
"""
from __future__ import annotations

import asyncio
import socket
import ssl
from collections.abc import Iterable, Mapping
from typing import Any, Optional, Tuple, Union

try:
    from aiohttp.web import Application, AppRunner, BaseRunner, SockSite
except ImportError as e:  # pragma: no cover - exercised in a subprocess
    raise ImportError(
        "aiomisc_c.service.aiohttp needs aiohttp: "
        "pip install 'aiomisc_c[aiohttp]'",
    ) from e

try:
    from aiohttp.web_log import AccessLogger
except ImportError:  # pragma: no cover - aiohttp before 3.8 kept it elsewhere
    from aiohttp.helpers import AccessLogger  # type: ignore[no-redef,attr-defined]

from ..utils import bind_socket
from .base import Service
from .tls import PathOrStr, SSLOptions

# No __all__: a star import gives every public name, as aiomisc's module does.

RunnerKwargsType = Union[Mapping[str, Any], Iterable[Tuple[str, Any]]]

_NO_ADDRESS = 'You should pass socket instance or "address" and "port" couple'


def _listening_socket(
    address: Optional[str], port: Optional[int], sock: Optional[socket.socket],
) -> socket.socket:
    """The socket to serve on: ``sock`` itself, or a new bound one."""
    if not sock:
        # A falsy port (None or 0) counts as absent, as in aiomisc; pass a
        # socket bound to port 0 to serve on a free port.
        if not (address and port):
            raise RuntimeError(_NO_ADDRESS)
        return bind_socket(address=address, port=port, proto_name="http")
    if not isinstance(sock, socket.socket):
        raise ValueError("sock must be socket instance")
    return sock


class AIOHTTPService(Service):
    """Serves the application returned by :meth:`create_application`."""

    __async_required__: Tuple[str, ...] = ("start", "create_application")

    site: SockSite
    runner: BaseRunner
    handler_cancellation: bool = True

    def __init__(
        self,
        address: Optional[str] = "localhost",
        port: Optional[int] = None,
        sock: Optional[socket.socket] = None,
        shutdown_timeout: int = 5,
        handler_cancellation: bool = handler_cancellation,
        runner_kwargs: Optional[RunnerKwargsType] = None,
        **kwds: Any,
    ):
        self.socket = _listening_socket(address, port, sock)
        self.shutdown_timeout = shutdown_timeout

        self.runner_kwargs: dict[str, Any] = dict(runner_kwargs or {})
        self.runner_kwargs.setdefault("access_log_class", AccessLogger)
        self.runner_kwargs.setdefault("access_log_format", AccessLogger.LOG_FORMAT)
        self.runner_kwargs.setdefault("handler_cancellation", handler_cancellation)

        super().__init__(**kwds)

    async def create_application(self) -> Application:
        """Hook: the application to serve (an empty one by default)."""
        return Application()

    async def create_site(self) -> SockSite:
        if getattr(self, "runner", None) is None:
            # The message is aiomisc's, even though the runner is missing.
            raise RuntimeError("runner already created")
        return SockSite(self.runner, self.socket)

    async def make_runner(self, application: Application) -> AppRunner:
        return AppRunner(
            application, shutdown_timeout=self.shutdown_timeout,
            **self.runner_kwargs,
        )

    async def start(self) -> None:
        if hasattr(self, "runner"):
            raise RuntimeError("Can not start twice")

        application = await self.create_application()
        self.runner = await self.make_runner(application)
        await self.runner.setup()

        self.site = await self.create_site()
        await self.site.start()

    async def stop(self, exception: Optional[Exception] = None) -> None:
        if self.__dict__.get("_stopped"):
            return  # a second stop (e.g. stop_services, then shutdown)
        self._stopped = True
        site = getattr(self, "site", None)
        try:
            if site is not None:
                await site.stop()
        finally:
            # Let handlers of connections accepted just now begin first.
            await asyncio.sleep(0)
            runner = getattr(self, "runner", None)
            try:
                if runner is not None:
                    await runner.cleanup()
            finally:
                # The server closed it already unless the start failed
                # before it listened; closing twice is harmless.
                self.socket.close()


class AIOHTTPSSLService(AIOHTTPService):
    """:class:`AIOHTTPService` over TLS (HTTPS)."""

    def __init__(
        self,
        cert: PathOrStr,
        key: PathOrStr,
        ca: Optional[PathOrStr] = None,
        address: Optional[str] = None,
        port: Optional[int] = None,
        verify: bool = True,
        sock: Optional[socket.socket] = None,
        shutdown_timeout: int = 5,
        require_client_cert: bool = False,
        **kwds: Any,
    ):
        super().__init__(
            address=address, port=port, sock=sock,
            shutdown_timeout=shutdown_timeout, **kwds,
        )
        self.__ssl_options = SSLOptions(
            cert, key, ca, verify, require_client_cert, ssl.Purpose.CLIENT_AUTH,
        )

    async def create_site(self) -> SockSite:
        if getattr(self, "runner", None) is None:
            raise RuntimeError("runner already created")
        # Reading the certificate files may block: do it off the loop.
        context = await self.loop.run_in_executor(
            None, self.__ssl_options.create_context,
        )
        return SockSite(self.runner, self.socket, ssl_context=context)
