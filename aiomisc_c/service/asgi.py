"""An ASGI application served by aiohttp (mirror of ``aiomisc.service.asgi``;
needs the ``asgi`` and ``aiohttp`` extras).

The ASGI application from :meth:`create_asgi_app` answers every path and
receives the lifespan startup/shutdown events with the aiohttp application.
"""
from __future__ import annotations

from abc import abstractmethod
from typing import Tuple

try:
    from aiohttp.web import Application
    from aiohttp_asgi import ASGIResource
    from aiohttp_asgi.resource import (
        ASGIApplicationType,
        ASGIContext,
        ASGIMatchInfo,
        ASGIReceiveType,
        ASGIScopeType,
        ASGISendType,
    )
except ImportError as e:  # pragma: no cover - exercised in a subprocess
    raise ImportError(
        "aiomisc_c.service.asgi needs aiohttp-asgi: "
        "pip install 'aiomisc_c[asgi]'",
    ) from e

from .aiohttp import AIOHTTPService, AIOHTTPSSLService

__all__ = (
    "ASGIApplicationType",
    "ASGIContext",
    "ASGIHTTPService",
    "ASGIMatchInfo",
    "ASGIReceiveType",
    "ASGIResource",
    "ASGIScopeType",
    "ASGISendType",
)

_NOT_IMPLEMENTED = 'You must implement "create_asgi_app" method'


def _aiohttp_application(asgi_app: ASGIApplicationType) -> Application:
    """An aiohttp application that hands every request to ``asgi_app``."""
    application = Application()
    resource = ASGIResource(asgi_app, root_path="/")
    application.router.register_resource(resource)
    resource.lifespan_mount(application)
    return application


class ASGIHTTPService(AIOHTTPService):
    """Serves the ASGI application returned by :meth:`create_asgi_app`."""

    __async_required__: Tuple[str, ...] = (
        "start", "create_application", "create_asgi_app",
    )

    async def create_asgi_app(self) -> ASGIApplicationType:
        """Hook: the ASGI application to serve."""
        raise NotImplementedError(_NOT_IMPLEMENTED)

    async def create_application(self) -> Application:
        return _aiohttp_application(await self.create_asgi_app())


class ASGIHTTPSSLService(AIOHTTPSSLService):
    """:class:`ASGIHTTPService` over TLS; :meth:`create_asgi_app` is
    abstract here."""

    __async_required__: Tuple[str, ...] = (
        "start", "create_application", "create_asgi_app",
    )

    @abstractmethod
    async def create_asgi_app(self) -> ASGIApplicationType:
        raise NotImplementedError(_NOT_IMPLEMENTED)

    async def create_application(self) -> Application:
        return _aiohttp_application(await self.create_asgi_app())
