"""Utilities (mirror of ``aiomisc.utils``).

Event-loop setup (``create_default_event_loop``, ``new_event_loop``) is a
twinned primitive: C in ``aiomisc_c._loop``, Python in ``aiomisc_c._loop_py``.
Everything else here is plain Python.
"""
from __future__ import annotations

import asyncio
import itertools
import logging
import socket
from collections.abc import (
    Awaitable, Callable, Collection, Coroutine, Generator, Iterable, Iterator,
)
from functools import wraps
from typing import (
    TYPE_CHECKING, Any, Optional, ParamSpec, Set, Tuple, TypeVar, overload,
)

from . import _compat
from ._backoff_base import iscoroutinefunction
from .compat import sock_set_nodelay, sock_set_reuseport, time_ns

__all__ = (
    "OptionsType",
    "SelectAwaitable",
    "SelectResult",
    "TimeoutType",
    "awaitable",
    "bind_socket",
    "cancel_tasks",
    "chunk_list",
    "create_default_event_loop",
    "fast_uuid1",
    "fast_uuid4",
    "new_event_loop",
    "pending_futures",
    "select",
    "set_exception",
    "shield",
)

# The Python twin is what a type checker sees; the C twin runs when built.
_c_twin = _compat.import_c_module("_loop")
if TYPE_CHECKING or _c_twin is None:
    from ._loop_py import create_default_event_loop, new_event_loop
else:
    create_default_event_loop = _c_twin.create_default_event_loop
    new_event_loop = _c_twin.new_event_loop

_compat.bind_twins(
    "loop", globals(), _compat.lazy_module("aiomisc_c._loop_py"), _c_twin,
    ["create_default_event_loop", "new_event_loop"],
)
del _c_twin

T = TypeVar("T")
P = ParamSpec("P")
TimeoutType = int | float
OptionsType = Iterable[Tuple[int, int, int]]

log = logging.getLogger(__name__)


# --------------------------------------------------------------------------
# Identifiers.  ``uuid`` is imported on first use: it is not needed by
# ``import aiomisc_c`` otherwise.

_node_id: Optional[int] = None


def fast_uuid4() -> Any:
    """A UUID4-shaped identifier from 128 random bits (not cryptographic)."""
    import uuid
    from random import getrandbits

    return uuid.UUID(int=getrandbits(128), version=4)


def fast_uuid1() -> Any:
    """A UUID1-style identifier: ``time_ns()``, 16 random bits, node id."""
    import uuid
    from random import getrandbits

    global _node_id
    if _node_id is None:
        # uuid.getnode() may be slow the first time; do it once, lazily.
        _node_id = uuid.getnode()
    value = (time_ns() << 16) | getrandbits(16)
    return uuid.UUID(int=(value << 48) | _node_id, version=1)


# --------------------------------------------------------------------------
# chunk_list


def chunk_list(iterable: Iterable[T], size: int) -> Iterator[list[T]]:
    """Lazily split ``iterable`` into lists of at most ``size`` items."""
    if isinstance(size, bool) or not isinstance(size, int):
        raise TypeError(f"'size' must be an int, not {type(size).__name__}")
    if size < 1:
        raise ValueError(f"'size' must be positive, got {size!r}")
    return _chunks(iter(iterable), size)


def _chunks(iterator: Iterator[T], size: int) -> Iterator[list[T]]:
    while True:
        chunk = list(itertools.islice(iterator, size))
        if not chunk:
            return
        yield chunk


# --------------------------------------------------------------------------
# bind_socket

_AF_UNIX = getattr(socket, "AF_UNIX", None)


def bind_socket(
    *args: Any,
    address: str,
    port: int = 0,
    options: OptionsType = (),
    reuse_addr: bool = True,
    reuse_port: bool = True,
    proto_name: Optional[str] = None,
) -> socket.socket:
    """Create a non-blocking socket, configure it and bind it (not listen).

    Without ``args`` the family follows ``address``: IPv6 when it contains
    ``":"``, IPv4 otherwise; the type is ``SOCK_STREAM``.
    """
    if not args:
        family = socket.AF_INET6 if ":" in address else socket.AF_INET
        args = (family, socket.SOCK_STREAM)

    sock = socket.socket(*args)
    try:
        sock.setblocking(False)
        is_unix = sock.family == _AF_UNIX

        if reuse_addr:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        # SO_REUSEPORT makes no sense for Unix sockets.
        if reuse_port and not is_unix:
            sock_set_reuseport(sock, True)
        sock_set_nodelay(sock)
        for level, option, value in options:
            sock.setsockopt(level, option, value)

        bind_to = address if is_unix else (address, port)
        try:
            sock.bind(bind_to)
        except OSError as error:
            # The bare error does not say which address was taken.
            raise OSError(
                error.errno,
                f"error while attempting to bind on address {bind_to!r}: "
                f"{error.strerror}",
            ) from error
    except BaseException:
        sock.close()
        raise

    bound = sock.getsockname()
    if is_unix:
        log.info("Listening %s://%s", proto_name or "unix", bound)
    elif sock.family == socket.AF_INET6:
        log.info("Listening %s://[%s]:%s", proto_name or "tcp", *bound[:2])
    else:
        log.info("Listening %s://%s:%s", proto_name or "tcp", *bound[:2])
    return sock


# --------------------------------------------------------------------------
# shield and awaitable


def _check_callable(func: Any, decorator: str) -> None:
    if not callable(func):
        raise TypeError(
            f"{decorator}(): 'func' must be callable, not {type(func).__name__}",
        )


def shield(
    func: Callable[P, Coroutine[Any, Any, T]],
) -> Callable[P, Coroutine[Any, Any, T]]:
    """Decorator: the call runs under ``asyncio.shield``, so cancelling the
    caller does not cancel the inner coroutine.  The inner task starts when
    the wrapper is *called*."""
    _check_callable(func, "shield")

    async def await_shielded(shielded: Awaitable[T]) -> T:
        return await shielded

    # The returned coroutine carries the wrapped function's name (reprs,
    # task names, tracebacks).
    for attr in ("__name__", "__qualname__"):
        name = getattr(func, attr, None)
        if isinstance(name, str):
            setattr(await_shielded, attr, name)

    @wraps(func)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> Coroutine[Any, Any, T]:
        return await_shielded(asyncio.shield(func(*args, **kwargs)))

    return wrapper


# A function returning an awaitable keeps its type; any other function's
# result becomes awaitable.
@overload
def awaitable(
    func: Callable[P, Awaitable[T]],
) -> Callable[P, Awaitable[T]]:
    ...


@overload
def awaitable(func: Callable[P, T]) -> Callable[P, Awaitable[T]]:
    ...


def awaitable(func: Callable[P, Any]) -> Callable[P, Awaitable[Any]]:
    """Decorator: the wrapper always returns something awaitable.

    Coroutine functions are returned unchanged; an awaitable result (future,
    coroutine, any object with ``__await__``) is returned as is; any other
    value is wrapped in a coroutine that returns it.
    """
    _check_callable(func, "awaitable")
    if iscoroutinefunction(func):
        return func

    @wraps(func)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> Awaitable[Any]:
        result = func(*args, **kwargs)
        if hasattr(result, "__await__"):
            return result  # type: ignore[no-any-return]
        return _ready(result)

    return wrapper


async def _ready(value: T) -> T:
    return value


# --------------------------------------------------------------------------
# cancel_tasks


def pending_futures(futures: Iterable[Any]) -> Iterator[Any]:
    """The not-done items of ``futures`` (iterates over a snapshot, so the
    collection may change meanwhile)."""
    for future in tuple(futures):
        if not future.done():
            yield future


def set_exception(
    futures: Iterable[Any],
    exc: Optional[BaseException] = None,
) -> Set[asyncio.Task[Any]]:
    """Finish every pending item: tasks are cancelled (and returned), plain
    futures get ``exc`` (a fresh ``CancelledError`` by default); anything
    else is skipped with a warning."""
    if exc is None:
        exc = asyncio.CancelledError()
    cancelled: Set[asyncio.Task[Any]] = set()
    for future in tuple(futures):
        if not isinstance(future, asyncio.Future):
            log.warning(
                "Skipping object %r because it's not a Task or Future", future,
            )
            continue
        if future.done():
            continue
        if isinstance(future, asyncio.Task):
            future.cancel()
            cancelled.add(future)
        else:
            future.set_exception(exc)
    return cancelled


def cancel_tasks(tasks: Iterable[Any]) -> asyncio.Future[Any]:
    """Cancel ``tasks``; the returned future resolves once the cancelled tasks
    have finished (it is already resolved when there was nothing to wait for).
    Needs a current event loop."""
    loop = asyncio.get_event_loop()
    cancelled = set_exception(tasks, asyncio.CancelledError()) if tasks else ()
    if not cancelled:
        done = loop.create_future()
        done.set_result(None)
        return done
    return asyncio.gather(*cancelled, return_exceptions=True)


# --------------------------------------------------------------------------
# select


class SelectResult(Collection[Any]):
    """Outcome of :class:`SelectAwaitable`: the first value (or exception),
    at its position among ``length`` slots."""

    __slots__ = ("is_exception", "length", "result_idx", "value")

    def __init__(self, length: int):
        self.length = length
        self.result_idx: Optional[int] = None
        self.is_exception: Optional[bool] = None
        self.value: Any = None

    def __len__(self) -> int:
        return self.length

    def __contains__(self, item: Any) -> bool:
        return item is self.value

    def __iter__(self) -> Iterator[Any]:
        for idx in range(self.length):
            yield self.value if idx == self.result_idx else None

    def set_result(self, idx: int, value: Any, is_exception: bool) -> None:
        # The first outcome wins.
        if self.result_idx is not None:
            return
        self.result_idx = idx
        self.value = value
        self.is_exception = is_exception

    def result(self) -> Any:
        if self.is_exception:
            raise self.value
        return self.value

    def done(self) -> bool:
        return self.result_idx is not None

    def __repr__(self) -> str:
        return (
            f"<{type(self).__name__} length={self.length} "
            f"result_idx={self.result_idx} is_exception={self.is_exception}>"
        )


class SelectAwaitable:
    """Await the first of several awaitables (awaitable once).

    Each awaitable runs in its own task; the first outcome is recorded in a
    :class:`SelectResult`.  With ``cancel`` the others are cancelled (and,
    with ``wait``, awaited).  A recorded exception is raised unless
    ``return_exceptions``.  A ``timeout`` raises nothing: the result is
    simply not ``done()``.
    """

    __slots__ = (
        "_awaitables", "_cancel", "_loop", "_result", "_return_exceptions",
        "_timeout", "_wait",
    )

    def __init__(
        self,
        *awaitables: Awaitable[Any],
        return_exceptions: bool = False,
        cancel: bool = True,
        timeout: Optional[TimeoutType] = None,
        wait: bool = True,
        loop: Optional[asyncio.AbstractEventLoop] = None,
    ):
        self._awaitables: Optional[Tuple[Awaitable[Any], ...]] = awaitables
        self._return_exceptions = return_exceptions
        self._cancel = cancel
        self._timeout = timeout
        self._wait = wait
        self._loop = loop

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        if self._loop is None:
            self._loop = asyncio.get_running_loop()
        return self._loop

    async def _record(self, idx: int, aw: Awaitable[Any]) -> None:
        try:
            value = await aw
        except asyncio.CancelledError:
            raise
        except Exception as e:
            self._result.set_result(idx, e, is_exception=True)
        else:
            self._result.set_result(idx, value, is_exception=False)

    async def _select(self, tasks: list[Any]) -> SelectResult:
        try:
            _, pending = await asyncio.wait(
                tasks, timeout=self._timeout,
                return_when=asyncio.FIRST_COMPLETED,
            )
        except asyncio.CancelledError:
            # The selecting task itself is cancelled: take every inner task
            # down with it before propagating.
            await cancel_tasks(tasks)
            raise

        # _record() keeps every Exception; a task that died of another
        # BaseException (not a cancellation) passes it on unchanged.
        for task in tasks:
            if task.done() and not task.cancelled():
                error = task.exception()
                if error is not None:
                    await cancel_tasks(tasks)
                    raise error

        if self._cancel and pending:
            cancelling = cancel_tasks(pending)
            if self._wait:
                try:
                    await cancelling
                except asyncio.CancelledError:
                    await cancel_tasks(tasks)
                    raise

        if self._result.is_exception and not self._return_exceptions:
            self._result.result()
        return self._result

    def __await__(self) -> Generator[Any, None, SelectResult]:
        awaitables = self._awaitables
        if awaitables is None:
            raise RuntimeError("select() object can be awaited only once")
        self._awaitables = None
        if not awaitables:
            raise ValueError("select() needs at least one awaitable")
        self._result = SelectResult(len(awaitables))
        loop = self.loop
        tasks = [
            loop.create_task(self._record(idx, aw))
            for idx, aw in enumerate(awaitables)
        ]
        return self._select(tasks).__await__()


select = SelectAwaitable
