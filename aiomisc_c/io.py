"""Asynchronous file objects (mirror of ``aiomisc.io``).

Every blocking file operation is one call into an executor: ``executor``
when given, else the loop's default executor (the package's thread pool
when the loop comes from :func:`aiomisc_c.new_event_loop` or an
entrypoint).  One call per operation keeps the cost of a read at one
cross-thread round trip, and many concurrent operations share the pool's
batched completions.

Reads of cached data skip the thread.  On Linux, a binary file opened
for reading only (``"rb"``: an ``io.BufferedReader``, or an ``io.FileIO``
with ``buffering=0``) on a regular file reads ``n <= 64 KiB`` bytes on the
loop itself with ``preadv(..., RWF_NOWAIT)``, which the kernel answers
from the page cache or refuses at once (``EAGAIN``) instead of waiting for
the disk; a refused read goes to the executor as before.  ``seek`` (whence
0, 1 or 2) on such a file runs on the loop too: it is an ``lseek``, which
never waits.  The result is exactly the executor's (``fp.read(n)``: the
file position moves the same way, a short read means the end of the
file), with one difference: bytes a ``BufferedReader`` holds in its buffer
(after a ``readline``, say) are read again from the file, so a change made
to them by another writer since shows, where ``fp.read`` would return the
old bytes.  This only happens while none of the object's own executor
operations is in flight (the file object's lock would make the loop wait
for them); operations on ``afp.fp`` made from other threads, or through
another object wrapping the same file (``open_fp``), are not tracked, so
do not mix them with this object's.  An inline read does not suspend the
calling task, so every 32nd inline read of an object yields to the loop
once (after reading) to let other tasks run, as a thread read always did.

Everything else uses the executor: objects made by ``open_fp``, text and
compressed files, files on a filesystem without ``RWF_NOWAIT`` (procfs,
sysfs, tmpfs on some kernels; probed when the file is opened), reads of a
negative or larger ``n``, and objects whose ``executor`` is a foreign
executor (not one of the package's thread pools: its owner may count on
seeing every call).  ``AIOMISC_C_IO_NO_INLINE=1`` turns the inline reads
off.
"""
from __future__ import annotations

import asyncio
import bz2
import gzip
import io
import lzma
import os
import stat
import sys
from concurrent.futures import Executor
from enum import Enum
from functools import partial, total_ordering
from pathlib import Path
from typing import (
    IO, Any, AnyStr, Awaitable, Callable, Generator, Generic, List, Literal,
    Optional, Set, TextIO, Tuple, TypeVar, Union, overload,
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


# Inline reads of cached data (see the module docstring).
_RWF_NOWAIT: int = getattr(os, "RWF_NOWAIT", 0)
_preadv = getattr(os, "preadv", None)
_INLINE_READS: bool = (
    bool(_RWF_NOWAIT) and _preadv is not None
    and not _compat.env_bool("AIOMISC_C_IO_NO_INLINE")
)
# Larger reads go to a thread: their copy would hold the loop for longer.
_INLINE_READ_MAX = 64 * 1024
# An object's inline reads let other tasks run once per this many reads.
_INLINE_READS_PER_YIELD = 32
# ``AsyncFileIO._inline_fd`` when the object never reads on the loop.
_NO_INLINE = -1


def _inline_executor(executor: Optional[Executor]) -> bool:
    """Whether reads meant for ``executor`` may be done on the loop: the
    loop's default executor or one of the package's pools, never a foreign
    executor (its owner may count on seeing every call)."""
    return executor is None or isinstance(executor, ThreadPoolExecutorBase)


def _open_probed(opener: Callable[[], IO[Any]]) -> Tuple[IO[Any], int]:
    """(In the executor.) Open the file; also return its descriptor when
    it can be read on the loop (else ``_NO_INLINE``): a read-only binary
    file object whose ``read`` is the plain read system call, on a regular
    file of a filesystem that answers ``RWF_NOWAIT`` (procfs, sysfs and,
    on some kernels, tmpfs refuse it).  ``fstat`` and the probe may wait on some
    filesystems, hence here; the probe's ``pread`` of one byte leaves the
    position alone."""
    fp: Any = opener()
    kind = type(fp)
    if not (
        (kind is io.BufferedReader and type(fp.raw) is io.FileIO)
        or (kind is io.FileIO and fp.readable() and not fp.writable())
    ):
        return fp, _NO_INLINE
    try:
        fd = fp.fileno()
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return fp, _NO_INLINE
        try:
            _preadv(fd, (bytearray(1),), 0, _RWF_NOWAIT)  # type: ignore[misc]
        except BlockingIOError:
            pass    # supported; that page is just not cached
    except OSError:
        return fp, _NO_INLINE
    return fp, fd


def _read_cached(fp: Any, fd: int, n: int) -> bytes:
    """``fp.read(n)`` done here from the page cache; ``BlockingIOError``
    (nothing read, the position unchanged) when a part is not cached.

    ``fp`` is a read-only ``BufferedReader``/``FileIO`` on a regular file,
    so ``fp.read(n)`` returns ``n`` bytes, or what is left before the end
    of the file: the bytes ``preadv`` gives at ``fp.tell()``.  Moving the
    position first (``seek(n, 1)``, which also tells where the read
    starts) costs one ``lseek``, or none inside a ``BufferedReader``'s
    buffer; it is moved back when the read falls short.
    """
    end = fp.seek(n, 1)
    pos = end - n
    buffer = bytearray(n)
    try:
        got = _preadv(fd, (buffer,), pos, _RWF_NOWAIT)  # type: ignore[misc]
        while got < n:
            # The end of the file, or only the first pages were cached.
            with memoryview(buffer) as view:
                more = _preadv(  # type: ignore[misc]
                    fd, (view[got:],), pos + got, _RWF_NOWAIT,
                )
            if not more:
                del buffer[got:]
                fp.seek(pos + got)
                break
            got += more
    except BaseException:
        fp.seek(pos)
        raise
    return bytes(buffer)


def _call_tracked(
    in_flight: Set[object], pending: Set[object], token: object,
    func: Callable[..., T], *args: Any,
) -> Optional[T]:
    """(In the executor.) ``func(*args)``, unless the caller gave up first.

    ``pending.remove`` is atomic: exactly one of this thread and the
    caller's give-up (``AsyncFileIO._run_tracked``) claims ``token``.
    ``token`` leaves ``in_flight`` when ``func`` has really returned.
    """
    try:
        pending.remove(token)
    except KeyError:
        return None     # the caller has given up: it is not in flight
    try:
        return func(*args)
    finally:
        in_flight.discard(token)


def proxy_method_async(name: str, in_executor: bool = True) -> Callable[..., Any]:
    """An async method calling ``self.fp.<name>(*args, **kwargs)``, in the
    executor or (``in_executor=False``) on the loop."""

    async def method(self: Any, *args: Any, **kwargs: Any) -> Any:
        func = getattr(self.fp, name)
        if in_executor:
            if isinstance(self, AsyncFileIO):
                return await self._run(partial(func, *args, **kwargs))
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

    __slots__ = (
        "_fp", "_executor", "_open_args", "_iterator_lock",
        "_inline_fd", "_pool_in_flight", "_pool_pending", "_inline_reads",
    )

    _fp: Optional[IO[AnyStr]]
    # The descriptor read on the loop (see the module docstring), or
    # _NO_INLINE; set by ``open``.
    _inline_fd: int
    # Tokens of this object's executor operations not finished yet, and
    # of those not started yet (tracked only while _inline_fd >= 0).
    _pool_in_flight: Set[object]
    _pool_pending: Set[object]
    # Inline reads since this object last let the loop run other tasks.
    _inline_reads: int

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
        self._inline_fd = _NO_INLINE
        self._pool_in_flight = set()
        self._pool_pending = set()
        self._inline_reads = 0
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

    @property
    def executor(self) -> Optional[Executor]:
        return self._executor

    @executor.setter
    def executor(self, executor: Optional[Executor]) -> None:
        self._executor = executor
        if not _inline_executor(executor):
            # For good: operations started from now on are not tracked.
            self._inline_fd = _NO_INLINE

    def _run(self, func: Callable[..., T], *args: Any) -> Awaitable[T]:
        loop = self._loop or self.loop
        if self._inline_fd < 0:
            return _submit(loop, self._executor, func, *args)
        return self._run_tracked(loop, self._executor, func, args)

    async def _run_tracked(
        self, loop: asyncio.AbstractEventLoop, executor: Optional[Executor],
        func: Callable[..., T], args: Tuple[Any, ...],
    ) -> T:
        """``func(*args)`` in ``executor``, counted in ``_pool_in_flight``
        until it has returned in its thread, or for sure never runs: no
        read is done on the loop meanwhile."""
        token = object()
        in_flight, pending = self._pool_in_flight, self._pool_pending
        in_flight.add(token)
        pending.add(token)
        try:
            future: "asyncio.Future[Optional[T]]" = _submit(
                loop, executor, _call_tracked,
                in_flight, pending, token, func, *args,
            )
            # None only reaches a caller that has given up already.
            return await future  # type: ignore[return-value]
        except BaseException:
            # Cancelled, refused, or func raised: if no thread has claimed
            # the call yet, none ever will run it.
            try:
                pending.remove(token)
            except KeyError:
                pass    # a thread runs (or ran) it and discards the token
            else:
                in_flight.discard(token)
            raise

    async def open(self) -> None:
        if self._fp is not None:
            return
        args, kwargs = self._open_args
        opener = partial(self.get_opener(), *args, **kwargs)
        if not (_INLINE_READS and _inline_executor(self._executor)):
            self._fp = await self._run(opener)
            return
        fp, fd = await self._run(partial(_open_probed, opener))
        self._fp = fp
        if _inline_executor(self._executor):   # unless changed meanwhile
            self._inline_fd = fd

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
        if self._inline_fd < 0:
            await self.loop.run_in_executor(
                None, fp.__exit__, exc_type, exc_val, exc_tb,
            )
        else:
            await self._run_tracked(
                self.loop, None, fp.__exit__, (exc_type, exc_val, exc_tb),
            )

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
        fd = self._inline_fd
        if fd >= 0:
            if (
                not self._pool_in_flight and type(n) is int
                and 0 <= n <= _INLINE_READ_MAX
            ):
                try:
                    data = _read_cached(self._fp, fd, n)
                except BlockingIOError:
                    pass    # not cached: the executor waits for the disk
                except OSError:
                    # Refused after all (the open probed it): threads from
                    # now on, which report the error if there is one.
                    self._inline_fd = _NO_INLINE
                except ValueError:
                    pass    # closed or detached: the executor's error
                else:
                    reads = self._inline_reads + 1
                    if reads < _INLINE_READS_PER_YIELD:
                        self._inline_reads = reads
                        return data  # type: ignore[return-value]
                    # A loop of cached reads would otherwise never let
                    # other tasks run (a thread read always does).
                    self._inline_reads = 0
                    await asyncio.sleep(0)
                    return data  # type: ignore[return-value]
            return await self._run(self.fp.read, n)
        return await _submit(
            self._loop or self.loop, self._executor, self.fp.read, n,
        )

    async def readline(self, limit: int = -1) -> AnyStr:
        if self._inline_fd >= 0:
            return await self._run(self.fp.readline, limit)
        return await _submit(
            self._loop or self.loop, self._executor, self.fp.readline, limit,
        )

    async def readlines(self, limit: int = -1) -> List[AnyStr]:
        return await self._run(self.fp.readlines, limit)

    async def seek(self, offset: int, whence: int = 0) -> int:
        if (
            self._inline_fd >= 0 and not self._pool_in_flight
            and type(whence) is int and 0 <= whence <= 2
        ):
            # An lseek (or a move inside the read buffer): never waits.
            return self.fp.seek(offset, whence)
        return await self._run(self.fp.seek, offset, whence)

    async def truncate(self, size: Optional[int] = None) -> int:
        return await self._run(self.fp.truncate, size)

    async def write(self, s: AnyStr) -> int:
        if self._inline_fd >= 0:
            return await self._run(self.fp.write, s)
        return await _submit(
            self._loop or self.loop, self._executor, self.fp.write, s,
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
