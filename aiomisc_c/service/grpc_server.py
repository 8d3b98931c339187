"""A ``grpc.aio`` server as a service (mirror of
``aiomisc.service.grpc_server``; needs the ``grpc`` extra).

The service stands in for the server while it is configured: generated
``add_XxxServicer_to_server(servicer, service)`` functions register their
handlers on it, and ``add_insecure_port``/``add_secure_port`` return futures
that resolve with the bound port once ``start()`` has bound it (so
``"127.0.0.1:0"`` works).
"""
from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping, Sequence
from concurrent.futures import Executor
from types import MappingProxyType
from typing import Any, Dict, List, Optional, Tuple

try:
    import grpc
    import grpc.aio
    from grpc_reflection.v1alpha import reflection
except ImportError as e:  # pragma: no cover - exercised in a subprocess
    raise ImportError(
        "aiomisc_c.service.grpc_server needs grpcio and grpcio-reflection: "
        "pip install 'aiomisc_c[grpc]'",
    ) from e

from .base import Service

# No __all__: a star import gives every public name, as aiomisc's module does.

log = logging.getLogger(__name__)

PortFuture = asyncio.Future[int]  # resolves with the bound port


def _host_of(address: str) -> str:
    """``"[::1]:50051"`` → ``"[::1]"``; ``"localhost:0"`` → ``"localhost"``."""
    host, separator, _ = address.rpartition(":")
    return host if separator else address


class GRPCService(Service):
    """Serves the registered gRPC handlers on the added ports."""

    # Seconds that in-flight RPCs get to finish when the service stops.
    GRACEFUL_STOP_TIME: float = 60.0

    _server: grpc.aio.Server
    _server_args: MappingProxyType[str, Any]

    def __init__(
        self,
        *,
        migration_thread_pool: Optional[Executor] = None,
        handlers: Optional[Sequence[grpc.GenericRpcHandler]] = None,
        interceptors: Optional[Sequence[Any]] = None,
        options: Optional[Sequence[Tuple[str, Any]]] = None,
        maximum_concurrent_rpcs: Optional[int] = None,
        compression: Optional[grpc.Compression] = None,
        reflection: bool = False,
        **kwds: Any,
    ):
        # The keyword arguments of grpc.aio.server(), used by start().
        self._server_args = MappingProxyType({
            "compression": compression,
            "handlers": handlers,
            "interceptors": interceptors,
            "maximum_concurrent_rpcs": maximum_concurrent_rpcs,
            "migration_thread_pool": migration_thread_pool,
            "options": options,
        })
        self._services: List[grpc.GenericRpcHandler] = []
        self._insecure_ports: List[Tuple[str, PortFuture]] = []
        self._secure_ports: List[
            Tuple[str, grpc.ServerCredentials, PortFuture]
        ] = []
        self._reflection = reflection
        self._registered_services: Dict[str, Dict[str, grpc.RpcMethodHandler]] = {}
        super().__init__(**kwds)

    # -------------------------------------------------- server-like methods

    def add_generic_rpc_handlers(
        self, generic_rpc_handlers: Sequence[grpc.GenericRpcHandler],
    ) -> None:
        for handler in generic_rpc_handlers:
            if handler not in self._services:
                self._services.append(handler)

    def add_registered_method_handlers(
        self, name: str, handlers: Mapping[str, grpc.RpcMethodHandler],
    ) -> None:
        self._registered_services.setdefault(name, {}).update(handlers)

    def add_insecure_port(self, address: str) -> PortFuture:
        """Listen on ``address`` at start; the future gives the port."""
        future: PortFuture = asyncio.Future()
        self._insecure_ports.append((address, future))
        return future

    def add_secure_port(
        self, address: str, server_credentials: grpc.ServerCredentials,
    ) -> PortFuture:
        """Listen with TLS on ``address`` at start; the future gives the
        port."""
        future: PortFuture = asyncio.Future()
        self._secure_ports.append((address, server_credentials, future))
        return future

    # ------------------------------------------------------------ lifecycle

    def _service_names(self) -> List[str]:
        names = [handler.service_name() for handler in self._services]
        names += [name for name in self._registered_services if name not in names]
        names.append(reflection.SERVICE_NAME)
        return names

    def _bind_ports(self, server: grpc.aio.Server) -> None:
        for address, future in self._insecure_ports:
            port = server.add_insecure_port(address)
            if not future.done():
                future.set_result(port)
            log.info(
                "Listening insecure address: grpc://%s:%s", _host_of(address), port,
            )
        for address, credentials, future in self._secure_ports:
            port = server.add_secure_port(address, credentials)
            if not future.done():
                future.set_result(port)
            log.info(
                "Listening secure address: grpc://%s:%s", _host_of(address), port,
            )

    def _cancel_port_futures(self) -> None:
        # Nobody waiting for a port may hang once start() has failed.
        for *_, future in self._insecure_ports + self._secure_ports:
            future.cancel()

    async def start(self) -> None:
        server = self._server = grpc.aio.server(**self._server_args)
        try:
            self._bind_ports(server)
            if self._reflection:
                reflection.enable_server_reflection(self._service_names(), server)
            for name, handlers in self._registered_services.items():
                server.add_registered_method_handlers(name, handlers)
            server.add_generic_rpc_handlers(tuple(self._services))
            await server.start()
        except BaseException:
            self._cancel_port_futures()
            await server.stop(None)
            raise

    async def stop(self, exception: Optional[Exception] = None) -> None:
        server = self.__dict__.get("_server")
        if server is not None:
            await server.stop(self.GRACEFUL_STOP_TIME)
