"""aiomisc_c.io: reads of page-cached data done on the loop (preadv with
RWF_NOWAIT), the executor as the fallback.  Real files; both loops and both
thread-pool twins (the ``run`` fixture)."""
import asyncio
import os
import random
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

import pytest
from helpers.recording_executor import RecordingExecutor
from helpers.waiting import wait_event

from aiomisc_c import io as aio
from aiomisc_c import thread_pool
from aiomisc_c.io import Compression, async_open

pytestmark = pytest.mark.skipif(
    not hasattr(os, "RWF_NOWAIT"), reason="preadv's RWF_NOWAIT is Linux only",
)

CHUNK = 4096


def _answers_nowait(directory):
    """Whether files in ``directory`` answer RWF_NOWAIT (tmpfs may not)."""
    with tempfile.NamedTemporaryFile(dir=directory) as probe:
        probe.write(b"x")
        probe.flush()
        try:
            os.preadv(probe.fileno(), [bytearray(1)], 0, os.RWF_NOWAIT)
        except BlockingIOError:
            pass
        except OSError:
            return False
    return True


@pytest.fixture
def directory(tmp_path):
    """A directory on a filesystem that answers RWF_NOWAIT: ``tmp_path``,
    else one under the current directory or /var/tmp."""
    if _answers_nowait(tmp_path):
        yield tmp_path
        return
    for parent in (Path.cwd(), Path("/var/tmp")):
        try:
            with tempfile.TemporaryDirectory(dir=parent) as name:
                if _answers_nowait(name):
                    yield Path(name)
                    return
        except OSError:
            continue
    pytest.skip("no writable directory on a filesystem that answers RWF_NOWAIT")


@pytest.fixture(autouse=True)
def no_forced_yields(monkeypatch):
    """Inline reads yield to the loop every so many reads; finished_at_once
    would see that (test_a_loop_of_inline_reads_lets_other_tasks_run)."""
    monkeypatch.setattr(aio, "_INLINE_READS_PER_YIELD", 10 ** 9)


def random_bytes(size, seed=0):
    return random.Random(seed).randbytes(size)


def recording_pool(seen, workers=2):
    """One of the package's pools (so reads may skip it), whose ``submit``
    records each function it is given."""
    pool = thread_pool.ThreadPoolExecutor(workers)
    original = pool.submit

    def submit(fn, *args, **kwargs):
        seen.append(fn)
        return original(fn, *args, **kwargs)

    pool.submit = submit
    return pool


@pytest.fixture
def recorded():
    """``(seen, pool)``: a recording pool (see ``recording_pool``), shut
    down after the test."""
    seen = []
    pool = recording_pool(seen)
    yield seen, pool
    pool.shutdown(wait=True)


def finished_at_once(coro):
    """The result of ``coro`` when it finishes without ever suspending, so
    without any thread; AssertionError when it suspends."""
    try:
        coro.send(None)
    except StopIteration as stop:
        return stop.value
    coro.close()
    raise AssertionError("the operation waited (for a thread)")


# (operation, arguments): "afp.x" goes through the async object, "fp.x"
# calls its file object directly, "sync" is what every step is checked
# against: the same calls on a plain file object.
SCRIPT = (
    ("afp.read", 0), ("afp.read", 1), ("afp.read", CHUNK),
    ("afp.readline",),                  # in a thread; fills the read buffer
    ("afp.read", 100),                  # inside the buffer's range
    ("fp.read", 7), ("afp.read", 5),
    ("fp.seek", 3), ("afp.read", 9),
    ("afp.seek", 10000), ("afp.read", CHUNK),
    ("afp.seek", -10, os.SEEK_END),
    ("afp.read", CHUNK),                # 10 bytes before the end of file
    ("afp.read", CHUNK), ("afp.read", 0),       # at the end of file
    ("afp.seek", 100), ("afp.seek", 5, os.SEEK_CUR),
    ("afp.read", 65536),                # the largest inline read, to the end
    ("afp.seek", 0), ("afp.read", 65537),       # a larger one: a thread
    ("afp.seek", 3), ("afp.read", -1),          # all: a thread
    ("afp.seek", 19999), ("afp.read", 1), ("afp.read", 1),
    ("afp.seek", 50000), ("afp.read", 3),       # past the end of file
    ("afp.seek", 2), ("afp.readlines",), ("afp.read", 2),
)
INLINE_OPERATIONS = {"afp.read", "afp.seek"}
FILE_SIZE = 20000


async def play(afp, sync, inline):
    """Run SCRIPT on ``afp`` and on ``sync``; every result and position
    must be the same.  With ``inline``, reads of at most 64 KiB and seeks
    must finish without a thread."""
    for name, *args in SCRIPT:
        method = name.split(".")[1]
        expected = getattr(sync, method)(*args)
        if name.startswith("fp."):
            got = getattr(afp.fp, method)(*args)
        elif inline and name in INLINE_OPERATIONS and (
            method == "seek" or 0 <= args[0] <= 65536
        ):
            got = finished_at_once(getattr(afp, method)(*args))
        else:
            got = await getattr(afp, method)(*args)
        assert got == expected, (name, args)
        assert type(got) is type(expected), (name, args)
        assert afp.fp.tell() == sync.tell(), (name, args)


@pytest.mark.parametrize("buffering", [-1, 0], ids=["buffered", "unbuffered"])
@pytest.mark.parametrize("inline", [True, False], ids=["inline", "threads"])
def test_reads_match_a_plain_file(run, directory, buffering, inline, monkeypatch):
    """The same script, read on the loop and (inline reads off) in threads,
    gives a plain file's results."""
    if not inline:
        monkeypatch.setattr(aio, "_INLINE_READS", False)
    path = directory / "data.bin"
    path.write_bytes(random_bytes(FILE_SIZE))

    async def main():
        async with async_open(path, "rb", buffering=buffering) as afp:
            assert (afp._inline_fd >= 0) is inline
            with open(path, "rb", buffering=buffering) as sync:
                await play(afp, sync, inline=inline)
            assert (afp._inline_fd >= 0) is inline  # still as it was
            assert not afp._pool_in_flight

    run(main())


def test_inline_reads_use_no_thread(run, directory, loop):
    # The object's executor is shut down after the open: cached reads and
    # seeks still work, anything else is refused by the pool.
    path = directory / "no-thread.bin"
    path.write_bytes(b"line one\nline two\n")
    seen = []
    pool = recording_pool(seen)

    async def main():
        afp = await async_open(path, "rb", executor=pool)
        try:
            assert len(seen) == 1               # the open
            pool.shutdown(wait=True)
            assert await afp.read(4) == b"line"
            assert await afp.seek(1, os.SEEK_CUR) == 5
            assert await afp.read(100) == b"one\nline two\n"
            with pytest.raises(RuntimeError, match="shutdown"):
                await afp.readline()
            assert len(seen) == 2               # only the refused readline
            assert not afp._pool_in_flight      # refused: not in flight
        finally:
            afp.fp.close()

    run(main())


def _evict(path):
    """Drop the pages of ``path`` from the page cache (after the open: its
    probe, a refused read, starts a read-ahead).  The check reads the last
    byte, whose read-ahead stops at the end of the file."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        try:
            os.preadv(
                fd, [bytearray(1)], os.path.getsize(path) - 1, os.RWF_NOWAIT,
            )
        except BlockingIOError:
            return
    finally:
        os.close(fd)
    pytest.skip("this filesystem keeps the file's pages in the page cache")


def _cache_first_page(path):
    """Read only the first page of ``path`` into the page cache; skip when
    the kernel cached more."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_RANDOM)   # no read-ahead
        os.pread(fd, CHUNK, 0)
        try:
            cached = os.preadv(fd, [bytearray(3 * CHUNK)], 0, os.RWF_NOWAIT)
        except BlockingIOError:
            cached = 0
    finally:
        os.close(fd)
    if cached != CHUNK:
        pytest.skip(f"the kernel cached {cached} bytes, not one page")


def test_uncached_read_goes_to_the_executor(run, directory, recorded):
    path = directory / "evicted.bin"
    data = random_bytes(256 * 1024, seed=1)
    path.write_bytes(data)
    seen, pool = recorded

    async def main():
        async with async_open(path, "rb", executor=pool) as afp:
            _evict(path)
            del seen[:]
            assert await afp.read(CHUNK) == data[:CHUNK]
            assert len(seen) == 1               # EAGAIN: the executor read it
            assert afp._inline_fd >= 0          # and the next read may not
            assert await afp.read(CHUNK) == data[CHUNK:2 * CHUNK]
            assert afp.fp.tell() == 2 * CHUNK

    run(main())


def test_partly_cached_read_goes_to_the_executor_whole(run, directory, recorded):
    # Only the first page is cached: the inline read gets a short answer,
    # then EAGAIN; the position goes back and the executor reads it all.
    path = directory / "partly.bin"
    data = random_bytes(64 * 1024, seed=2)
    path.write_bytes(data)
    seen, pool = recorded

    async def main():
        async with async_open(path, "rb", executor=pool) as afp:
            assert await afp.seek(10) == 10
            _evict(path)
            _cache_first_page(path)
            del seen[:]
            assert await afp.read(3 * CHUNK) == data[10:10 + 3 * CHUNK]
            assert len(seen) == 1
            assert afp.fp.tell() == 10 + 3 * CHUNK

    run(main())


def test_files_without_nowait_use_the_executor(run, recorded):
    # /proc files are regular files whose filesystem refuses RWF_NOWAIT:
    # the open finds it out (in the executor) and every read is threaded.
    seen, pool = recorded
    with open("/proc/version", "rb") as fp:
        expected = fp.read()

    async def main():
        async with async_open("/proc/version", "rb", executor=pool) as afp:
            assert afp._inline_fd < 0
            del seen[:]
            assert await afp.read(5) + await afp.read(CHUNK) == expected
            assert await afp.seek(0) == 0
            assert len(seen) == 3

    run(main())


def test_fifo_uses_the_executor(run, tmp_path):
    # Not a regular file: a read may wait for the writer.
    path = tmp_path / "fifo"
    os.mkfifo(path)
    seen = []
    pool = recording_pool(seen)
    may_write = threading.Event()

    def writer():
        with open(path, "wb") as fp:
            may_write.wait(10)
            fp.write(b"through the pipe")

    thread = threading.Thread(target=writer)
    thread.start()

    async def main():
        async with async_open(path, "rb", executor=pool) as afp:
            assert afp._inline_fd < 0
            read = asyncio.ensure_future(afp.read(7))
            await asyncio.sleep(0.01)
            assert not read.done()              # waits in a thread
            may_write.set()
            assert await read == b"through"
            assert await afp.read(100) == b" the pipe"

    try:
        run(main())
    finally:
        may_write.set()
        thread.join()
        pool.shutdown(wait=True)


@pytest.mark.parametrize(
    "mode, compression, opener_kwargs",
    [
        ("r", Compression.NONE, {}),
        ("rb+", Compression.NONE, {}),
        ("rb", Compression.GZIP, {}),
        ("rb", Compression.BZ2, {}),
        ("rb", Compression.NONE, {"buffering": 0, "mode": "rb+"}),
    ],
    ids=["text", "read-write", "gzip", "bz2", "unbuffered-read-write"],
)
def test_other_files_keep_every_read_threaded(
    run, directory, mode, compression, opener_kwargs, recorded,
):
    path = directory / "other.bin"
    payload = b"payload line\n" * 100
    openers = {Compression.GZIP: "gzip", Compression.BZ2: "bz2"}
    if compression in openers:
        module = __import__(openers[compression])
        with module.open(path, "wb") as fp:
            fp.write(payload)
    else:
        path.write_bytes(payload)
    opener_kwargs = dict(opener_kwargs)
    mode = opener_kwargs.pop("mode", mode)
    seen, pool = recorded

    async def main():
        afp = async_open(
            path, mode, compression=compression, executor=pool, **opener_kwargs,
        )
        async with afp:
            assert afp._inline_fd < 0
            del seen[:]
            first = await afp.read(5)
            assert first == (payload[:5] if "b" in mode else payload[:5].decode())
            await afp.seek(0)
            assert len(seen) == 2

    run(main())


def test_foreign_executor_gets_every_read(run, directory, implementation):
    path = directory / "foreign.bin"
    path.write_bytes(b"0123456789")
    seen = []
    foreign = RecordingExecutor(seen)

    async def main():
        async with async_open(path, "rb", executor=foreign) as afp:
            assert await afp.read(4) == b"0123"
            assert await afp.seek(1) == 1
        # one of the package's pools, then a foreign one: from then on
        # every operation reaches the executor
        pool = thread_pool.ThreadPoolExecutor(1)
        try:
            async with async_open(path, "rb", executor=pool) as afp:
                assert finished_at_once(afp.read(2)) == b"01"
                afp.executor = foreign
                assert await afp.read(2) == b"23"
                afp.executor = pool
                assert afp._inline_fd < 0
                assert await afp.read(2) == b"45"
        finally:
            pool.shutdown(wait=True)

    try:
        run(main())
    finally:
        foreign.shutdown(wait=True)
    # open, read, seek (the first file; closed in the default executor);
    # the read after the switch
    assert len(seen) == 4


def test_open_fp_objects_keep_every_read_threaded(run, directory, recorded):
    path = directory / "open-fp.bin"
    path.write_bytes(b"abcdef")
    seen, pool = recorded

    async def main():
        with open(path, "rb") as fp:
            afp = aio.AsyncBinaryIO.open_fp(fp, executor=pool)
            assert await afp.read(2) == b"ab"
            assert await afp.seek(3) == 3
            assert await afp.read() == b"def"
        assert len(seen) == 3
        async with async_open(path, "r") as text:
            binary = text.buffer()
            assert binary._inline_fd < 0     # shares the text object's file

    run(main())


class Blocker:
    """Keeps a one-thread pool busy: ``job`` runs until ``release``."""

    def __init__(self):
        self.started = threading.Event()
        self.released = threading.Event()

    def job(self):
        self.started.set()
        self.released.wait(10)
        return "released"

    def release(self):
        self.released.set()


def test_read_while_an_operation_is_queued_goes_to_the_executor(run, directory):
    path = directory / "queued.bin"
    path.write_bytes(b"first line\n" + random_bytes(CHUNK, seed=3))
    pool = thread_pool.ThreadPoolExecutor(1)
    blocker = Blocker()

    async def main():
        async with async_open(path, "rb", executor=pool) as afp:
            busy = pool.submit(blocker.job)
            await wait_event(blocker.started)
            line = asyncio.ensure_future(afp.readline())    # queued
            await asyncio.sleep(0)
            assert afp._pool_in_flight
            read = asyncio.ensure_future(afp.read(5))
            seek = asyncio.ensure_future(afp.seek(0, os.SEEK_CUR))
            for _ in range(5):
                await asyncio.sleep(0)          # the loop keeps running
            assert not (line.done() or read.done() or seek.done())
            blocker.release()
            assert await busy == "released"
            # in the order they were started, as threads would
            assert await line == b"first line\n"
            assert await read == path.read_bytes()[11:16]
            assert await seek == 16
            assert not afp._pool_in_flight
            assert finished_at_once(afp.read(1)) == path.read_bytes()[16:17]

    try:
        run(main())
    finally:
        blocker.release()
        pool.shutdown(wait=True)


def test_cancelled_before_it_starts_is_not_in_flight(run, directory):
    path = directory / "cancel-queued.bin"
    path.write_bytes(b"line\n" + b"x" * 100)
    pool = thread_pool.ThreadPoolExecutor(1)
    blocker = Blocker()

    async def main():
        async with async_open(path, "rb", executor=pool) as afp:
            busy = pool.submit(blocker.job)
            await wait_event(blocker.started)
            line = asyncio.ensure_future(afp.readline())
            await asyncio.sleep(0)
            assert afp._pool_in_flight
            line.cancel()
            with pytest.raises(asyncio.CancelledError):
                await line
            # it never runs: inline reads go on at once, from position 0
            assert not afp._pool_in_flight
            assert finished_at_once(afp.read(2)) == b"li"
            blocker.release()
            assert await busy == "released"
            await asyncio.sleep(0.01)
            assert afp.fp.tell() == 2           # the readline did not run
            assert await afp.readline() == b"ne\n"

    try:
        run(main())
    finally:
        blocker.release()
        pool.shutdown(wait=True)


def test_cancelled_while_it_runs_stays_in_flight(run, directory):
    # The caller gives up on an operation a thread is running: reads go to
    # the executor until the thread has really finished with the file.
    path = directory / "cancel-running.bin"
    path.write_bytes(b"0123456789")
    pool = thread_pool.ThreadPoolExecutor(2)
    blocker = Blocker()

    async def main():
        async with async_open(path, "rb", executor=pool) as afp:
            running = asyncio.ensure_future(afp._run(blocker.job))
            await wait_event(blocker.started)
            running.cancel()
            with pytest.raises(asyncio.CancelledError):
                await running
            assert afp._pool_in_flight          # the thread still runs it
            read = asyncio.ensure_future(afp.read(3))
            assert await read == b"012"         # via the pool's other thread
            assert afp._pool_in_flight
            blocker.release()
            await asyncio.wait_for(_not_in_flight(afp), 10)
            assert finished_at_once(afp.read(3)) == b"345"

    try:
        run(main())
    finally:
        blocker.release()
        pool.shutdown(wait=True)


async def _not_in_flight(afp):
    while afp._pool_in_flight:
        await asyncio.sleep(0.005)


def test_failed_operation_is_not_in_flight(run, directory):
    path = directory / "failed.bin"
    path.write_bytes(b"abc")

    async def main():
        async with async_open(path, "rb") as afp:
            with pytest.raises(OSError):
                await afp.write(b"x")           # a reader: not writable
            assert not afp._pool_in_flight
            assert finished_at_once(afp.read(3)) == b"abc"

    run(main())


def test_closed_file_reads_raise_the_executor_error(run, directory):
    path = directory / "closed.bin"
    path.write_bytes(b"abc")

    async def main():
        afp = await async_open(path, "rb")
        afp.fp.close()          # directly: its descriptor number is free
        with pytest.raises(ValueError, match="closed file"):
            await afp.read(1)
        with pytest.raises(ValueError, match="closed file"):
            await afp.seek(0)
        with open(path, "rb") as sync:
            sync.close()
            with pytest.raises(ValueError) as expected:
                sync.read(1)
        with pytest.raises(ValueError) as got:
            await afp.read(1)
        assert str(got.value) == str(expected.value)

    run(main())


def test_a_loop_of_inline_reads_lets_other_tasks_run(run, directory, monkeypatch):
    path = directory / "long.bin"
    path.write_bytes(bytes(100 * 64))

    async def turns_of_another_task(reads):
        turns = 0

        async def other():
            nonlocal turns
            while True:
                turns += 1
                await asyncio.sleep(0)

        async with async_open(path, "rb") as afp:
            ticker = asyncio.ensure_future(other())
            await asyncio.sleep(0)          # the other task starts
            before = turns
            for _ in range(reads):
                assert await afp.read(100) == bytes(100)
            during = turns - before
            ticker.cancel()
            with pytest.raises(asyncio.CancelledError):
                await ticker
        return during

    # without the yields, the reads would never let the other task run
    assert run(turns_of_another_task(64)) == 0
    monkeypatch.setattr(aio, "_INLINE_READS_PER_YIELD", 32)
    assert run(turns_of_another_task(64)) == 2   # after reads 32 and 64


def test_switch_in_the_environment():
    code = "from aiomisc_c import io; print(io._INLINE_READS)"
    for value, expected in (("1", "False"), ("0", "True")):
        env = dict(os.environ, AIOMISC_C_IO_NO_INLINE=value)
        out = subprocess.run(
            [sys.executable, "-c", code], env=env, check=True,
            capture_output=True, text=True,
        ).stdout.strip()
        assert out == expected
