"""Sends log records to Sentry with ``raven``, over ``aiohttp`` (mirror of
``aiomisc.service.raven``).  Needs ``pip install 'aiomisc_c[raven]'``.

The transports follow the design of ``raven-aiohttp`` (BSD licensed, by
Functional Software, Inc and contributors): raven hands an event to
``async_send`` from any thread, the transport posts it on the loop.
"""
from __future__ import annotations

import abc
import asyncio
import logging
import socket
import warnings
from collections.abc import Awaitable, Callable, Iterable, Mapping
from http import HTTPStatus
from types import MappingProxyType
from typing import Any, Optional, Set

try:
    import aiohttp
    import yarl
    from raven import Client
    from raven.conf import defaults
    from raven.exceptions import APIError, RateLimited
    from raven.handlers.logging import SentryHandler
    from raven.transport import Transport
    from raven.transport.base import AsyncTransport
    from raven.transport.http import HTTPTransport
except ImportError as exc:  # pragma: no cover - both are in the test extra
    raise ImportError(
        "aiomisc_c.service.raven needs raven and aiohttp: "
        "pip install 'aiomisc_c[raven]'",
        name=exc.name,
    ) from exc

from ..utils import TimeoutType
from .base import Service

__all__ = ("RavenSender",)

log = logging.getLogger(__name__)

SuccessCallback = Callable[[], Any]
FailureCallback = Callable[[Any], Any]


def _current_loop() -> asyncio.AbstractEventLoop:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.get_event_loop()


class DummyTransport(Transport):  # type: ignore[misc]
    """Drops every event (used once the sender is stopped)."""

    def send(self, url: str, data: Any, headers: Mapping[str, Any]) -> None:
        pass


class AioHttpTransportBase(
    AsyncTransport, HTTPTransport, metaclass=abc.ABCMeta,  # type: ignore[misc]
):
    def __init__(
        self,
        parsed_url: Optional[str] = None,
        *,
        verify_ssl: bool = True,
        timeout: TimeoutType = defaults.TIMEOUT,
        keepalive: bool = True,
        family: socket.AddressFamily = socket.AddressFamily.AF_INET,
    ):
        self._keepalive = keepalive
        self._family = family
        self._loop = _current_loop()

        if parsed_url is not None:
            raise TypeError(
                "Transport accepts no URLs for this version of raven.",
            )
        super().__init__(timeout, verify_ssl)

        if self.keepalive:
            self._client_session = self._client_session_factory()
        self._closing = False

    @property
    def keepalive(self) -> bool:
        return self._keepalive

    @property
    def family(self) -> socket.AddressFamily:
        return self._family

    def _client_session_factory(self) -> aiohttp.ClientSession:
        connector = aiohttp.TCPConnector(
            ssl=bool(self.verify_ssl), family=self.family,
        )
        return aiohttp.ClientSession(connector=connector)

    async def _do_send(
        self, url: str, data: Any, headers: Mapping[str, Any],
        callback: SuccessCallback, errorback: FailureCallback,
    ) -> None:
        session = (
            self._client_session if self.keepalive
            else self._client_session_factory()
        )
        response = None
        try:
            response = await session.post(
                url, data=data, compress=False, headers=headers,
                timeout=aiohttp.ClientTimeout(total=float(self.timeout)),
            )
            code = response.status
            if code == HTTPStatus.OK:
                callback()
                return
            message = response.headers.get("x-sentry-error")
            if code == HTTPStatus.TOO_MANY_REQUESTS:
                try:
                    retry_after = int(response.headers.get("retry-after", "0"))
                except (ValueError, TypeError):
                    retry_after = 0
                errorback(RateLimited(message, retry_after))
            else:
                errorback(APIError(message, code))
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            errorback(exc)
        finally:
            if response is not None:
                response.release()
            if not self.keepalive:
                await session.close()

    @abc.abstractmethod
    def _async_send(
        self, url: str, data: Any, headers: Mapping[str, Any],
        success_cb: SuccessCallback, failure_cb: FailureCallback,
    ) -> None:  # pragma: no cover
        ...

    @abc.abstractmethod
    async def _close(self) -> None:  # pragma: no cover
        ...

    def async_send(
        self, url: str, data: Any, headers: Mapping[str, Any],
        success_cb: SuccessCallback, failure_cb: FailureCallback,
    ) -> None:
        if self._closing:
            failure_cb(RuntimeError(f"{self.__class__.__name__} is closed"))
            return
        # raven may call from any thread.
        self._loop.call_soon_threadsafe(
            self._async_send, url, data, headers, success_cb, failure_cb,
        )

    async def _close_coro(self, *, timeout: Optional[TimeoutType] = None) -> None:
        try:
            await asyncio.wait_for(self._close(), timeout=timeout)
        except asyncio.TimeoutError:
            pass
        finally:
            if self.keepalive:
                await self._client_session.close()

    def close(self, *, timeout: Optional[TimeoutType] = None) -> Awaitable[Any]:
        if self._closing:
            return asyncio.sleep(0)
        self._closing = True
        return self._loop.create_task(self._close_coro(timeout=timeout))


class AioHttpTransport(AioHttpTransportBase):
    """One task per event."""

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self._tasks: Set[asyncio.Task[Any]] = set()

    def _async_send(
        self, url: str, data: Any, headers: Mapping[str, Any],
        success_cb: SuccessCallback, failure_cb: FailureCallback,
    ) -> None:
        task = self._loop.create_task(
            self._do_send(url, data, headers, success_cb, failure_cb),
        )
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _close(self) -> None:
        await asyncio.gather(*self._tasks, return_exceptions=True)


_STOP = ...     # the queue item that stops the workers


class QueuedAioHttpTransport(AioHttpTransportBase):
    """``workers`` tasks send the events of a queue of ``qsize``; when it is
    full the oldest event is dropped (its failure callback is told)."""

    def __init__(
        self, *args: Any, workers: int = 1, qsize: int = 1000, **kwargs: Any,
    ):
        super().__init__(*args, **kwargs)
        self._queue: asyncio.Queue[Any] = asyncio.Queue(maxsize=qsize)
        self._workers: Set[asyncio.Task[Any]] = set()
        for _ in range(workers):
            worker = self._loop.create_task(self._worker())
            self._workers.add(worker)
            worker.add_done_callback(self._workers.discard)

    async def _worker(self) -> None:
        while True:
            item = await self._queue.get()
            try:
                if item is _STOP:
                    self._queue.put_nowait(_STOP)   # for the next worker
                    return
                await self._do_send(*item)
            finally:
                self._queue.task_done()

    def _drop_oldest(self, message: str) -> None:
        skipped = self._queue.get_nowait()
        self._queue.task_done()
        if skipped is not _STOP:
            skipped[-1](RuntimeError(message))

    def _async_send(
        self, url: str, data: Any, headers: Mapping[str, Any],
        callback: SuccessCallback, errorback: FailureCallback,
    ) -> None:
        payload = (url, data, headers, callback, errorback)
        try:
            self._queue.put_nowait(payload)
        except asyncio.QueueFull:
            self._drop_oldest("QueuedAioHttpTransport internal queue is full")
            self._queue.put_nowait(payload)

    async def _close(self) -> None:
        try:
            self._queue.put_nowait(_STOP)
        except asyncio.QueueFull:
            self._drop_oldest("QueuedAioHttpTransport internal queue was full")
            self._queue.put_nowait(_STOP)
        await asyncio.gather(*self._workers, return_exceptions=True)


class QueuedKeepaliveAioHttpTransport(QueuedAioHttpTransport):
    """The queued transport over one keep-alive connection pool."""

    DNS_CACHE_TTL = 600
    DNS_CACHE = True
    TCP_CONNECTION_LIMIT = 32
    TCP_CONNECTION_LIMIT_HOST = 8
    WORKERS = 1
    QUEUE_SIZE = 1000

    def __init__(
        self,
        *args: Any,
        family: int = socket.AF_UNSPEC,
        dns_cache: bool = DNS_CACHE,
        dns_cache_ttl: int = DNS_CACHE_TTL,
        connection_limit: int = TCP_CONNECTION_LIMIT,
        connection_limit_host: int = TCP_CONNECTION_LIMIT_HOST,
        workers: int = WORKERS,
        qsize: int = QUEUE_SIZE,
        **kwargs: Any,
    ):
        self.connection_limit = connection_limit
        self.connection_limit_host = connection_limit_host
        self.dns_cache = dns_cache
        self.dns_cache_ttl = dns_cache_ttl
        super().__init__(
            *args, family=family, keepalive=True, workers=workers,
            qsize=qsize, **kwargs,
        )

    def _client_session_factory(self) -> aiohttp.ClientSession:
        self.connector = aiohttp.TCPConnector(
            family=self.family,
            limit=self.connection_limit,
            limit_per_host=self.connection_limit_host,
            ttl_dns_cache=self.dns_cache_ttl,
            use_dns_cache=self.dns_cache,
            ssl=bool(self.verify_ssl),
        )
        return aiohttp.ClientSession(
            connector=self.connector, connector_owner=False,
        )

    async def _close(self) -> None:
        await super()._close()
        await self.connector.close()


class RavenSender(Service):
    """Sends the log records of level ``min_level`` and above to the Sentry
    project of ``sentry_dsn`` (a ``SentryHandler`` on the root logger)."""

    __required__ = ("sentry_dsn",)

    sentry_dsn: yarl.URL
    min_level: int = logging.WARNING
    client_options: Mapping[str, Any] = MappingProxyType({})
    client: Client
    filters: Iterable[logging.Filter] = ()

    async def start(self) -> None:
        # raven 6, no longer maintained, calls datetime.utcfromtimestamp()
        # for every record, deprecated since Python 3.12.  (Not at import:
        # a filter added later goes first.)
        warnings.filterwarnings(
            "ignore", category=DeprecationWarning, module=r"raven(\.|$)",
            message=r"datetime\.datetime\.utcfromtimestamp",
        )
        self.client = Client(
            str(self.sentry_dsn),
            transport=QueuedKeepaliveAioHttpTransport,
            **self.client_options,
        )
        # Make the transport now, on this loop.
        self.client.remote.get_transport()

        # The credentials must not reach the logs.
        self.sentry_dsn = (
            yarl.URL(str(self.sentry_dsn)).with_user(None)
        )
        log.info("Starting Raven for %r", self.sentry_dsn)

        self.handler = SentryHandler(client=self.client, level=self.min_level)
        for log_filter in self.filters:
            self.handler.addFilter(log_filter)
        logging.getLogger().handlers.append(self.handler)

    async def stop(self, *_: Any) -> None:
        # Unlike aiomisc 17, the handler leaves the root logger.
        handler = self.__dict__.get("handler")
        if handler is not None and handler in logging.getLogger().handlers:
            logging.getLogger().removeHandler(handler)
        transport = self.client.remote.get_transport()
        self.client.set_dsn("", transport=DummyTransport)
        await transport.close()
        log.info("Stopping Raven client for %r", self.sentry_dsn)
