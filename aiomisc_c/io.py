"""Asynchronous file objects (mirror of ``aiomisc.io``).

Every blocking file operation is one call into an executor: ``executor``
when given, else the loop's default executor (the package's thread pool
when the loop comes from :func:`aiomisc_c.new_event_loop` or an
entrypoint).  One call per operation keeps the cost of a read at one
cross-thread round trip, and many concurrent operations share the pool's
batched completions.
"""
from __future__ import annotations

import asyncio
import bz2
import gzip
import lzma
import sys
from concurrent.futures import Executor
from enum import Enum
from functools import partial, total_ordering
from pathlib import Path
from typing import (
    IO, Any, AnyStr, Awaitable, Callable, Generator, Generic, List, Literal,
    Optional, TextIO, TypeVar, Union, overload,
)

from . import _compat
from ._thread_pool_base import ThreadPoolExecutorBase
from .compat import EventLoopMixin

__all__ = (
    "AsyncBinaryIO",
    "AsyncBz2BinaryIO",
    "AsyncBz2TextIO",
    "AsyncFileIO",
    "AsyncFileType",
    "AsyncGzipBinaryIO",
    "AsyncGzipTextIO",
    "AsyncLzmaBinaryIO",
    "AsyncLzmaTextIO",
    "AsyncTextIO",
    "Compression",
    "async_open",
)

T = TypeVar("T")
# The class of the object itself, for "async with" to keep it.
_SelfFile = TypeVar("_SelfFile", bound="AsyncFileIO[Any]")
FilePath = Union[str, Path]


_PoolLookup = Callable[
    [asyncio.AbstractEventLoop], Optional[ThreadPoolExecutorBase],
]


def _pick_default_pool() -> _PoolLookup:
    """The default-pool lookup of the C thread pool when it is built, else
    of the Python twin (the same behaviour)."""
    c_module = _compat.import_c_module("_thread_pool")
    c_lookup: Optional[_PoolLookup] = getattr(c_module, "default_pool", None)
    if c_lookup is not None:
        return c_lookup
    from ._thread_pool_py import default_pool
    return default_pool


# Finds the pool uvloop hides too, sparing a read uvloop's run_in_executor
# (whose checks cost more than the submit itself).
_default_pool = _pick_default_pool()


def _submit(
    loop: asyncio.AbstractEventLoop, executor: Optional[Executor],
    func: Callable[..., T], *args: Any,
) -> "asyncio.Future[T]":
    """Start ``func(*args)`` in ``executor`` (``None``: the loop's default).

    The package's pools return a loop future from ``submit`` directly, so
    the loop's ``run_in_executor`` wrapping is skipped for them.
    """
    if executor is None:
        pool = _default_pool(loop)
        if pool is not None:
            return pool.submit(func, *args)
    elif isinstance(executor, ThreadPoolExecutorBase):
        return executor.submit(func, *args)
    return loop.run_in_executor(executor, func, *args)


def proxy_method_async(name: str, in_executor: bool = True) -> Callable[..., Any]:
    """An async method calling ``self.fp.<name>(*args, **kwargs)``, in the
    executor or (``in_executor=False``) on the loop."""

    async def method(self: Any, *args: Any, **kwargs: Any) -> Any:
        func = getattr(self.fp, name)
        if in_executor:
            return await _submit(
                self.loop, self.executor, partial(func, *args, **kwargs),
            )
        future = self.loop.create_future()

        def call() -> None:
            try:
                future.set_result(func(*args, **kwargs))
            except Exception as e:
                future.set_exception(e)

        self.loop.call_soon(call)
        return await future

    method.__name__ = name
    return method


@total_ordering
class AsyncFileIO(EventLoopMixin, Generic[AnyStr]):
    """A file whose blocking operations run in an executor.

    Nothing is opened by the constructor: ``await afp``, ``await
    afp.open()`` or ``async with afp`` opens it.
    """

    __slots__ = ("_fp", "executor", "_open_args", "_iterator_lock")

    _fp: Optional[IO[AnyStr]]

    @staticmethod
    def get_opener() -> Callable[..., IO[Any]]:
        return open

    def __init__(
        self,
        fname: FilePath,
        mode: str = "r",
        executor: Optional[Executor] = None,
        *args: Any,
        loop: Optional[asyncio.AbstractEventLoop] = None,
        **kwargs: Any,
    ):
        self._fp = None
        if not isinstance(mode, str):
            raise TypeError(f"mode must be a str, not {type(mode).__name__}")
        if executor is not None and not isinstance(executor, Executor):
            raise TypeError(
                "executor must be a concurrent.futures.Executor or None, "
                f"not {type(executor).__name__}",
            )
        self.executor = executor
        self._loop = loop
        self._open_args = (str(fname), mode, *args), kwargs
        self._iterator_lock = asyncio.Lock()

    @classmethod
    def open_fp(
        cls,
        fp: IO[Any],
        executor: Optional[Executor] = None,
        loop: Optional[asyncio.AbstractEventLoop] = None,
    ) -> "AsyncFileIO[Any]":
        """Wrap the already open file ``fp``."""
        async_fp = cls(fp.name, mode=fp.mode, executor=executor, loop=loop)
        async_fp._fp = fp
        return async_fp

    def _run(self, func: Callable[..., T], *args: Any) -> "asyncio.Future[T]":
        return _submit(self._loop or self.loop, self.executor, func, *args)

    async def open(self) -> None:
        if self._fp is not None:
            return
        args, kwargs = self._open_args
        self._fp = await self._run(partial(self.get_opener(), *args, **kwargs))

    @property
    def fp(self) -> IO[AnyStr]:
        if self._fp is not None:
            return self._fp
        raise RuntimeError("file is not opened")

    def closed(self) -> bool:
        return self.fp.closed

    def __await__(self) -> Generator[Any, Any, "AsyncFileIO[AnyStr]"]:
        yield from self.open().__await__()
        return self

    async def __aenter__(self: _SelfFile) -> _SelfFile:
        await self.open()
        return self

    async def __aexit__(self, exc_type: Any, exc_val: Any, exc_tb: Any) -> None:
        fp = self.fp
        if fp is None:
            raise RuntimeError("file is not opened")
        # As in aiomisc, the file is closed in the loop's default executor.
        await self.loop.run_in_executor(None, fp.__exit__, exc_type, exc_val, exc_tb)

    def __del__(self) -> None:
        fp = getattr(self, "_fp", None)
        if fp is None or fp.closed:
            return
        fp.close()

    def __aiter__(self) -> "AsyncFileIO[AnyStr]":
        return self

    async def __anext__(self) -> AnyStr:
        # The lock hands each line to exactly one of several readers.
        async with self._iterator_lock:
            line = await self.readline()
        if not len(line):
            raise StopAsyncIteration
        return line

    # aiomisc's comparisons, kept as they are: objects of one class are
    # equal, ordering compares the raw files (a TypeError), and the hash
    # depends on the raw file.
    def __eq__(self, other: Any) -> bool:
        return (self.__class__, self.fp.__eq__(other)) == (
            other.__class__, self.fp.__eq__(other),
        )

    def __lt__(self, other: Any) -> bool:
        less: bool = self.fp < other.fp
        return less

    def __hash__(self) -> int:
        return hash((self.__class__, self.fp))

    @property
    def mode(self) -> str:
        return self.fp.mode

    @property
    def name(self) -> str:
        return self.fp.name

    def fileno(self) -> int:
        return self.fp.fileno()

    def isatty(self) -> bool:
        return self.fp.isatty()

    async def close(self) -> None:
        return await self._run(self.fp.close)

    def __getattr__(self, name: str) -> Callable[..., Awaitable[Any]]:
        # Private and special names are never file methods (and an unset
        # slot must read as missing, not as a method).
        if name.startswith("_"):
            raise AttributeError(name)

        async def method(*args: Any) -> Any:
            getter = getattr(self.fp, name)
            if callable(getter):
                return await self._run(getter, *args)
            return getter

        method.__name__ = name
        return method

    async def tell(self) -> int:
        return self.fp.tell()

    async def readable(self) -> bool:
        return self.fp.readable()

    async def seekable(self) -> bool:
        return self.fp.seekable()

    async def writable(self) -> bool:
        return self.fp.writable()

    async def flush(self) -> None:
        await self._run(self.fp.flush)

    # The hot operations call _submit themselves: one Python frame less.
    async def read(self, n: int = -1) -> AnyStr:
        return await _submit(
            self._loop or self.loop, self.executor, self.fp.read, n,
        )

    async def readline(self, limit: int = -1) -> AnyStr:
        return await _submit(
            self._loop or self.loop, self.executor, self.fp.readline, limit,
        )

    async def readlines(self, limit: int = -1) -> List[AnyStr]:
        return await self._run(self.fp.readlines, limit)

    async def seek(self, offset: int, whence: int = 0) -> int:
        return await self._run(self.fp.seek, offset, whence)

    async def truncate(self, size: Optional[int] = None) -> int:
        return await self._run(self.fp.truncate, size)

    async def write(self, s: AnyStr) -> int:
        return await _submit(
            self._loop or self.loop, self.executor, self.fp.write, s,
        )

    async def writelines(self, lines: List[AnyStr]) -> None:
        await self._run(self.fp.writelines, lines)


AsyncFileIOBase = AsyncFileIO


class AsyncBinaryIO(AsyncFileIO[bytes]):
    __slots__ = ()


class AsyncTextIO(AsyncFileIO[str]):
    __slots__ = ()

    @property
    def fp(self) -> TextIO:
        # As in aiomisc: None (not an error) before the file is opened.
        return self._fp  # type: ignore[return-value]

    @property
    def newlines(self) -> Any:
        return self.fp.newlines

    @property
    def errors(self) -> Optional[str]:
        return self.fp.errors

    @property
    def line_buffering(self) -> bool:
        return self.fp.line_buffering  # type: ignore[return-value]

    @property
    def encoding(self) -> str:
        return self.fp.encoding

    def buffer(self) -> AsyncBinaryIO:
        return AsyncBinaryIO.open_fp(  # type: ignore[return-value]
            self.fp.buffer, executor=self.executor, loop=self._loop,
        )


AsyncBytesFileIO = AsyncBinaryIO
AsyncTextFileIO = AsyncTextIO


class AsyncGzipBinaryIO(AsyncBytesFileIO):
    __slots__ = ()

    @staticmethod
    def get_opener() -> Callable[..., IO[Any]]:
        return gzip.open


class AsyncGzipTextIO(AsyncTextFileIO):
    __slots__ = ()

    @staticmethod
    def get_opener() -> Callable[..., IO[Any]]:
        return gzip.open


class AsyncBz2BinaryIO(AsyncBytesFileIO):
    __slots__ = ()

    @staticmethod
    def get_opener() -> Callable[..., IO[Any]]:
        return bz2.open


class AsyncBz2TextIO(AsyncTextFileIO):
    __slots__ = ()

    @staticmethod
    def get_opener() -> Callable[..., IO[Any]]:
        return bz2.open


class AsyncLzmaBinaryIO(AsyncBytesFileIO):
    __slots__ = ()

    @staticmethod
    def get_opener() -> Callable[..., IO[Any]]:
        return lzma.open


class AsyncLzmaTextIO(AsyncTextFileIO):
    __slots__ = ()

    @staticmethod
    def get_opener() -> Callable[..., IO[Any]]:
        return lzma.open


class Compression(Enum):
    NONE = (AsyncBinaryIO, AsyncTextIO)
    GZIP = (AsyncGzipBinaryIO, AsyncGzipTextIO)
    BZ2 = (AsyncBz2BinaryIO, AsyncBz2TextIO)
    LZMA = (AsyncLzmaBinaryIO, AsyncLzmaTextIO)


AsyncFileType = Union[AsyncFileIO[AnyStr], AsyncTextIO, AsyncBinaryIO]

BinaryModes = Literal[
    "rb", "wb", "ab", "xb", "rb+", "wb+", "ab+", "xb+",
    "br", "br+", "bw+", "ba+", "bx+",
]
TextModes = Literal["r", "w", "a", "x", "r+", "w+", "a+", "x+"]


@overload
def async_open(
    fname: FilePath, mode: BinaryModes,
    compression: Compression = Compression.NONE,
    encoding: str = sys.getdefaultencoding(), *args: Any, **kwargs: Any,
) -> AsyncBinaryIO: ...


@overload
def async_open(
    fname: FilePath, mode: TextModes = "r",
    compression: Compression = Compression.NONE,
    encoding: str = sys.getdefaultencoding(), *args: Any, **kwargs: Any,
) -> AsyncTextIO: ...


@overload
def async_open(
    fname: FilePath, mode: str,
    compression: Compression = Compression.NONE,
    encoding: str = sys.getdefaultencoding(), *args: Any, **kwargs: Any,
) -> AsyncFileIO[Any]: ...   # a mode only known at run time


def async_open(
    fname: FilePath,
    mode: str = "r",
    compression: Compression = Compression.NONE,
    encoding: str = sys.getdefaultencoding(),
    *args: Any,
    **kwargs: Any,
) -> Any:
    """An async file object for ``fname`` (not opened yet).

    A mode containing ``"b"`` gives the binary class of ``compression``;
    otherwise the text class, with ``encoding``.  ``loop=`` and
    ``executor=`` go to the class; other keywords go to the opener
    (``open``, ``gzip.open``, ...).
    """
    if not isinstance(compression, Compression):
        raise TypeError(
            "compression must be a Compression member, not "
            f"{type(compression).__name__}",
        )
    if not isinstance(mode, str):
        raise TypeError(f"mode must be a str, not {type(mode).__name__}")
    binary_io_class, text_io_class = compression.value
    if "b" in mode:
        return binary_io_class(fname, mode, *args, **kwargs)
    if "t" not in mode:
        mode = f"t{mode}"
    return text_io_class(fname, mode, *args, encoding=encoding, **kwargs)
