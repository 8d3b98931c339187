"""aiomisc_c.io: async file objects over real files, on both loops and both
thread-pool twins (the loop's default executor)."""
import asyncio
import bz2
import gzip
import lzma
import os
import threading
from concurrent.futures import ThreadPoolExecutor as StdThreadPoolExecutor

import pytest
from helpers.recording_executor import RecordingExecutor
from conftest import default_executor

from aiomisc_c import _compat
from aiomisc_c import io as aio
from aiomisc_c.io import Compression, async_open
from aiomisc_c import thread_pool
from aiomisc_c._thread_pool_base import ThreadPoolExecutorBase


@pytest.fixture
def threads_only(monkeypatch):
    """Files opened under it do every read in the executor (no inline reads
    of cached data: tests/test_io_inline.py covers those)."""
    monkeypatch.setattr(aio, "_INLINE_READS", False)


def test_all_names():
    assert set(aio.__all__) == {
        "AsyncBinaryIO", "AsyncBz2BinaryIO", "AsyncBz2TextIO", "AsyncFileIO",
        "AsyncFileType", "AsyncGzipBinaryIO", "AsyncGzipTextIO",
        "AsyncLzmaBinaryIO", "AsyncLzmaTextIO", "AsyncTextIO", "Compression",
        "async_open",
    }
    assert aio.AsyncFileIOBase is aio.AsyncFileIO
    assert aio.AsyncBytesFileIO is aio.AsyncBinaryIO
    assert aio.AsyncTextFileIO is aio.AsyncTextIO
    for name in aio.__all__:
        getattr(aio, name)


def test_top_level_io_is_the_module():
    import aiomisc_c

    assert aiomisc_c.io is aio


def test_text_read_write(run, tmp_path):
    path = tmp_path / "file.txt"

    async def main():
        async with async_open(path, "w+") as afp:
            assert isinstance(afp, aio.AsyncTextIO)
            assert await afp.writable()
            assert await afp.readable()
            assert await afp.seekable()
            assert await afp.tell() == 0
            assert await afp.write("foo") == 3
            assert await afp.tell() == 3
            assert await afp.seek(0) == 0
            assert await afp.read() == "foo"
            await afp.seek(0)
            await afp.writelines(["a\n", "b\n"])
            await afp.flush()
            await afp.seek(0)
            assert await afp.readline() == "a\n"
            assert await afp.readlines() == ["b\n"]
            assert afp.mode == "tw+"   # as in aiomisc: "t" is prepended
            assert afp.name == str(path)
            assert isinstance(afp.fileno(), int)
            assert afp.isatty() is False
            assert not afp.closed()
        with pytest.raises(ValueError):
            await afp.readable()
        with pytest.raises(ValueError):
            await afp.tell()
        assert afp.closed()

    run(main())
    assert path.read_text() == "a\nb\n"


def test_binary_seek_truncate(run, tmp_path):
    path = tmp_path / "file.bin"

    async def main():
        async with async_open(path, "wb+") as afp:
            assert isinstance(afp, aio.AsyncBinaryIO)
            await afp.seek(4)
            assert await afp.write(b"\x01\x02\x03\x04") == 4
            assert await afp.tell() == 8
            await afp.seek(0)
            assert await afp.read(4) == b"\0\0\0\0"
            assert await afp.read() == b"\x01\x02\x03\x04"
            assert await afp.truncate(6) == 6
            await afp.seek(0, os.SEEK_END)
            assert await afp.tell() == 6
        assert afp.closed()

    run(main())
    assert path.read_bytes() == b"\0\0\0\0\x01\x02"


def test_operations_on_closed_file_raise(run, tmp_path):
    path = tmp_path / "closed.txt"
    path.write_text("data")

    async def main():
        afp = await async_open(path, "r")
        await afp.close()
        with pytest.raises(ValueError, match="closed file"):
            await afp.read()
        with pytest.raises(ValueError):
            await afp.write("x")
        with pytest.raises(ValueError):
            await afp.seek(0)

    run(main())


def test_not_opened_file(run, tmp_path):
    afp = aio.AsyncBinaryIO(tmp_path / "never", "wb")
    with pytest.raises(RuntimeError, match="file is not opened"):
        afp.fp   # noqa: B018
    # As in aiomisc, the text classes report None instead.
    assert aio.AsyncTextIO(tmp_path / "never", "w").fp is None
    assert not (tmp_path / "never").exists()


def test_bad_arguments(run, tmp_path):
    with pytest.raises(TypeError, match="mode must be a str"):
        async_open(tmp_path / "x", 5)
    with pytest.raises(TypeError, match="compression"):
        async_open(tmp_path / "x", "r", "gzip")
    with pytest.raises(TypeError, match="executor"):
        aio.AsyncBinaryIO(tmp_path / "x", "rb", executor=object())

    async def main():
        with pytest.raises(ValueError, match="invalid mode"):
            await async_open(tmp_path / "x", "rz")
        with pytest.raises(FileNotFoundError):
            await async_open(tmp_path / "missing", "r")
        async with async_open(tmp_path / "bin", "wb") as afp:
            with pytest.raises(TypeError):
                await afp.write("text into a binary file")
        async with async_open(tmp_path / "ro", "w") as afp:
            pass
        async with async_open(tmp_path / "ro", "r") as afp:
            with pytest.raises(OSError):
                await afp.write("not writable")

    run(main())


def test_await_opens(run, tmp_path):
    path = tmp_path / "await.txt"

    async def main():
        afp1 = await async_open(path, "w+")
        afp2 = await async_open(tmp_path / "other.txt", "w+")
        try:
            assert isinstance(afp1.fileno(), int)
            assert isinstance(afp1.errors, str)
            assert isinstance(afp1.line_buffering, bool)
            assert afp1.newlines is None
            assert afp1.encoding
            # aiomisc's comparison rules
            assert afp1 == afp2
            assert hash(afp1) != hash(afp2)
            assert afp2 not in {afp1}
            assert afp1 in {afp1}
            with pytest.raises(TypeError):
                afp1 < afp2   # noqa: B015
            with pytest.raises(TypeError):
                afp1 > afp2   # noqa: B015
            # open() again is a no-op
            fp = afp1.fp
            await afp1.open()
            assert afp1.fp is fp
        finally:
            await afp1.close()
            await afp2.close()

    run(main())


def test_async_iteration(run, tmp_path):
    path = tmp_path / "lines.txt"
    path.write_text("".join(f"line {i}\n" for i in range(500)))

    async def main():
        async with async_open(path, "r") as afp:
            lines = [line async for line in afp]
        with open(path) as fp:
            assert lines == list(fp)

        async with async_open(path, "rb") as afp:
            blines = [line async for line in afp]
        assert blines == path.read_bytes().splitlines(keepends=True)

    run(main())


def test_concurrent_readers_share_lines(run, tmp_path):
    path = tmp_path / "shared.txt"
    expected = [f"{i}\n" for i in range(1000)]
    path.write_text("".join(expected))

    async def reader(afp):
        return [line async for line in afp]

    async def main():
        async with async_open(path, "r") as afp:
            parts = await asyncio.gather(*(reader(afp) for _ in range(4)))
        seen = [line for part in parts for line in part]
        assert sorted(seen, key=int) == expected

    run(main())


@pytest.mark.parametrize("compression", list(Compression))
def test_compression_round_trip(run, tmp_path, compression):
    path = tmp_path / f"data.{compression.name.lower()}"
    lines = [f"{i}: {'x' * (i % 17)}\n" for i in range(1000)]

    async def main():
        async with async_open(path, "w", compression=compression) as afp:
            assert isinstance(afp, compression.value[1])
            for line in lines:
                await afp.write(line)
        async with async_open(path, "r", compression=compression) as afp:
            assert [line async for line in afp] == lines
        async with async_open(path, "rb", compression=compression) as afp:
            assert isinstance(afp, compression.value[0])
            data = await afp.read()
        assert data == "".join(lines).encode()

    run(main())
    raw = path.read_bytes()
    opener = {
        Compression.NONE: None, Compression.GZIP: gzip.decompress,
        Compression.BZ2: bz2.decompress, Compression.LZMA: lzma.decompress,
    }[compression]
    if opener is not None:
        assert opener(raw) == "".join(lines).encode()


def test_gzip_compresses(run, tmp_path):
    path = tmp_path / "big.gz"

    async def main():
        async with async_open(path, "w", compression=Compression.GZIP) as afp:
            for _ in range(10000):
                await afp.write("hello world\n")

    run(main())
    assert path.stat().st_size < 10000


def test_operations_run_in_the_default_executor(run, tmp_path, loop):
    path = tmp_path / "threads.bin"
    path.write_bytes(b"x" * 10)
    names = []

    class Probe:
        # A file-like object: records the thread each call runs in.
        name = "probe"
        mode = "rb"
        closed = False

        def read(self, n=-1):
            names.append(threading.current_thread())
            return b"ok"

        def close(self):
            names.append(threading.current_thread())
            self.closed = True

    async def main():
        afp = aio.AsyncBinaryIO.open_fp(Probe())
        assert await afp.read() == b"ok"
        await afp.close()

    run(main())
    assert len(names) == 2
    executor = default_executor(loop)
    assert isinstance(executor, thread_pool.ThreadPoolExecutor)
    assert isinstance(executor, ThreadPoolExecutorBase)
    assert all(thread in executor._threads for thread in names)


def test_explicit_executor(run, tmp_path, implementation):
    path = tmp_path / "explicit.txt"
    path.write_text("explicit")
    seen = []

    for executor in (thread_pool.ThreadPoolExecutor(2), StdThreadPoolExecutor(2)):
        original_submit = executor.submit

        def submit(fn, *args, _submit=original_submit, **kwargs):
            seen.append(fn)
            return _submit(fn, *args, **kwargs)

        executor.submit = submit

        async def main(executor=executor):
            async with async_open(path, "r", executor=executor) as afp:
                return await afp.read()

        try:
            assert run(main()) == "explicit"
        finally:
            executor.shutdown(wait=True)
    # open and read went through each executor (close uses the default one)
    assert len(seen) == 4


def test_getattr_proxies_file_methods(run, tmp_path):
    path = tmp_path / "proxy.txt"
    path.write_text("abcdef")

    async def main():
        async with async_open(path, "rb") as afp:
            buf = bytearray(3)
            assert await afp.readinto(buf) == 3   # not wrapped: __getattr__
            assert buf == b"abc"
        async with async_open(path, "r") as afp:
            buffer = afp.buffer()
            assert isinstance(buffer, aio.AsyncBinaryIO)
            assert await buffer.read() == b"abcdef"


    run(main())


def test_getattr_plain_attribute(run, tmp_path):
    path = tmp_path / "attr.bin"
    path.write_bytes(b"12345")

    async def main():
        async with async_open(path, "rb") as afp:
            assert await afp.peek() is not None   # BufferedReader.peek
            raw = await afp.raw()   # a plain attribute: returned as is
            assert raw is afp.fp.raw
            with pytest.raises(AttributeError):
                afp._private   # noqa: B018

    run(main())


def test_open_fp_wraps_open_file(run, tmp_path):
    path = tmp_path / "wrapped.txt"
    path.write_text("wrapped")

    async def main():
        with open(path) as fp:
            afp = aio.AsyncTextIO.open_fp(fp)
            assert afp.name == str(path)
            assert afp.mode == "r"
            assert await afp.read() == "wrapped"

    run(main())


def test_unclosed_file_closed_on_collection(run, tmp_path):
    # No ResourceWarning (warnings are errors) for a forgotten file.
    path = tmp_path / "forgotten.txt"

    async def main():
        afp = await async_open(path, "w")
        await afp.write("x")
        fp = afp.fp
        del afp
        return fp

    fp = run(main())
    import gc

    gc.collect()
    assert fp.closed
    assert path.read_text() == "x"


def test_proxy_method_async(run, tmp_path):
    path = tmp_path / "proxy.bin"
    path.write_bytes(b"data")

    class WithProxies(aio.AsyncBinaryIO):
        __slots__ = ()
        read_in_thread = aio.proxy_method_async("read")
        read_in_loop = aio.proxy_method_async("read", in_executor=False)

    async def main():
        async with WithProxies(path, "rb") as afp:
            assert await afp.read_in_thread(2) == b"da"
            assert await afp.read_in_loop() == b"ta"

    run(main())


def test_positional_args_after_mode_reach_executor(run, tmp_path):
    # aiomisc quirk: the first extra positional argument is the executor.
    executor = thread_pool.ThreadPoolExecutor(1)
    try:
        afp = async_open(tmp_path / "q.txt", "w", Compression.NONE, "utf-8", executor)
        assert afp.executor is executor
    finally:
        executor.shutdown(wait=True)


def test_concurrent_operations_on_many_files(run, tmp_path, threads_only):
    # Operations started together share executor calls; each caller gets
    # its own result or its own exception.
    paths = []
    for index in range(50):
        path = tmp_path / f"many-{index}.bin"
        path.write_bytes(bytes([index]) * 4096)
        paths.append(path)

    async def main():
        files = [await async_open(path, "rb") for path in paths]
        await files[7].close()
        results = await asyncio.gather(
            *(afp.read(4096) for afp in files), return_exceptions=True,
        )
        for index, result in enumerate(results):
            if index == 7:
                assert isinstance(result, ValueError)
            else:
                assert result == bytes([index]) * 4096
        # a caller cancelled before its operation started gets nothing
        reads = [asyncio.ensure_future(afp.read(1)) for afp in files[:20] if not afp.closed()]
        await asyncio.sleep(0)
        reads[-1].cancel()
        done = await asyncio.gather(*reads, return_exceptions=True)
        assert isinstance(done[-1], asyncio.CancelledError)
        assert all(value == b"" for value in done[:-1])   # already at EOF
        for afp in files:
            await afp.close()

    run(main())


def _default_pool_lookups():
    """Both twins' lookups of a loop's default pool (the C one when built)."""
    from aiomisc_c import _thread_pool_py

    lookups = {"python": _thread_pool_py.default_pool}
    if _compat.c_available("thread_pool"):
        from aiomisc_c import _thread_pool

        lookups["c"] = _thread_pool.default_pool
    return lookups


def test_default_pool_lookup(loop):
    pool = default_executor(loop)
    assert isinstance(pool, ThreadPoolExecutorBase)
    lookups = _default_pool_lookups()
    # io takes the C lookup when it is built
    assert aio._default_pool is lookups.get("c", lookups["python"])
    for kind, lookup in lookups.items():   # uvloop's hidden pool included
        assert lookup(loop) is pool, kind

    other = StdThreadPoolExecutor(1)
    try:
        loop.set_default_executor(other)
        for kind, lookup in lookups.items():   # read on every call
            assert lookup(loop) is None, kind
    finally:
        other.shutdown(wait=True)


def test_default_pool_lookup_other_objects():
    class Loop:
        _default_executor = None

    class HidesIt:
        __slots__ = ("pool",)

    hides = HidesIt()
    hides.pool = thread_pool.ThreadPoolExecutor(1)
    try:
        for kind, lookup in _default_pool_lookups().items():
            assert lookup(object()) is None, kind
            assert lookup(Loop()) is None, kind
            # no attribute: found among the object's references
            assert lookup(hides) is hides.pool, kind
    finally:
        hides.pool.shutdown(wait=True)


def test_reads_after_the_default_pool_shuts_down(run, loop, tmp_path, threads_only):
    # Both loops: the pool is still the default one; its submit refuses.
    path = tmp_path / "closed-pool.bin"
    path.write_bytes(b"data")

    async def main():
        afp = await async_open(path, "rb")
        try:
            default_executor(loop).shutdown(wait=True)
            with pytest.raises(RuntimeError, match="shutdown"):
                await afp.read(2)
        finally:
            afp.fp.close()

    run(main())


def test_reads_reach_a_replaced_default_executor(run, loop, tmp_path, threads_only):
    # The default executor is looked up on every operation.
    path = tmp_path / "replaced.bin"
    path.write_bytes(b"0123456789")
    seen = []
    other = RecordingExecutor(seen)

    async def main():
        async with async_open(path, "rb") as afp:
            assert await afp.read(4) == b"0123"
            loop.set_default_executor(other)
            assert await afp.read(2) == b"45"
            assert await afp.readline() == b"6789"

    try:
        run(main())
    finally:
        other.shutdown(wait=True)
    # two reads and the close went through the replacement
    assert len(seen) == 3
