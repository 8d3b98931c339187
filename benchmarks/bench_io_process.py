"""Files and processes: ``io.async_open`` reads and ``WorkerPool`` calls.

The files are written once and stay in the page cache: a read measures the
executor round trip (or aiomisc_c's read on the loop) and the read system
call, not the disk. Each subject
runs on a loop from its own ``new_event_loop`` (its thread pool is the
default executor).

The floors run the very same driver over file objects whose ``read`` is a
coroutine that reads the file itself, there and then: no thread, no future.
What is left is what any implementation pays (the driver's coroutines, the
tasks ``gather`` makes, the read system call), so no subject can beat aiomisc
by more than the *aiomisc / floor* ratio.

aiomisc pays a cross-thread round trip per read on top of its floor.
aiomisc_c reads cached data the floor's way, on the loop (``preadv`` with
``RWF_NOWAIT``; the thread pool only when the data is not cached, see
``aiomisc_c.io``), so both its read cases sit just above their floors: it
adds about 1.5 µs per read (an ``lseek`` keeping the file object's position
right, the ``preadv`` into a new buffer, the copy into ``bytes``, where the
floor's buffered ``read`` makes one system call per two 4 KiB reads), about
1.3 to 1.6 times the concurrent floor and 1.5 to 2 times the sequential one
here.  Its ratios are therefore bounded by aiomisc's own cost over the
floor, which swings with how fast the machine wakes aiomisc's threads: in
five runs on two vCPUs, *aiomisc / floor* for the 100 concurrent reads went
from 3.2 to 7.9 (aiomisc_c's ratio 2.1 to 4.5 measured), and for the
sequential reads from 18 to 75 (aiomisc_c's ratio 10 to 34 measured).  A
ratio of 5 on the concurrent reads thus needs aiomisc's round trips to be
slow on that run; what aiomisc_c could still win is its 0.3 to 0.6 over the
floor, not more.

The floor of the worker-pool round trip, ``echo_round_trip``, is the same
exchange without a pool: a frame of the size a ``create_task(abs, -1)``
request has goes over a Unix socket to a child process that blocks in
``recv`` and answers with a frame of the size of the reply; the parent side
is an ``asyncio.BufferedProtocol`` resolving one future per answer. What a
pool adds on top is its own work per call (pickling, bookkeeping), not
wake-ups or system calls: both do one ``send`` and one ``recv`` on each
side and wake each process once.

Run alone: ``python -m benchmarks --only io_process``.
"""
import asyncio
import os
import pickle
import shutil
import socket
import subprocess
import sys
import tempfile
from typing import Any, Awaitable, Callable, Dict, List, Optional, Tuple

from ._harness import (
    AIOMISC, AIOMISC_C, AIOMISC_C_PY, Case, Fixture, aiomisc_c_facts,
    import_peer, loop_policy, require_aiomisc_c,
)

TITLE = "Files and worker processes"

SUBJECTS = (AIOMISC_C, AIOMISC_C_PY, AIOMISC)
BASELINE = AIOMISC.name
REFERENCES = ()
LOOPS = ("asyncio", "uvloop")

CHUNK = 4096
CONCURRENT_FILES = 100

CASES = (
    Case("read_sequential", "4 KiB read of a cached file, one at a time",
         iterations=2_000, floor="floor_read_sequential",
         short="4 KiB read, sequential"),
    Case("read_concurrent",
         f"{CONCURRENT_FILES} concurrent 4 KiB reads on different files",
         ops=CONCURRENT_FILES, iterations=40, floor="floor_read_concurrent",
         short="4 KiB reads, 100 at once"),
    Case("floor_read_sequential",
         "floor: the same reads, one at a time, done in the coroutine",
         iterations=2_000, kind="floor"),
    Case("floor_read_concurrent",
         f"floor: the same {CONCURRENT_FILES} concurrent reads, done in the "
         "coroutines",
         ops=CONCURRENT_FILES, iterations=40, kind="floor"),
    Case("worker_pool_call", "WorkerPool(2).create_task(abs, -1), one at a time",
         iterations=2_000, short="WorkerPool round trip", floor="echo_round_trip"),
    Case("echo_round_trip",
         "floor: the same bytes to an echo child over a Unix socket",
         iterations=2_000, kind="floor"),
)

# A request frame and a reply frame of the sizes a create_task(abs, -1) call
# sends and receives.
_REQUEST = pickle.dumps((0, abs, (-1,), {}), 5)
_REQUEST = len(_REQUEST).to_bytes(4, "big") + _REQUEST
_REPLY = pickle.dumps((2, 1), 5)
_REPLY = len(_REPLY).to_bytes(4, "big") + _REPLY

ECHO_CHILD = f"""
import socket, sys
sock = socket.socket(fileno=int(sys.argv[1]))
reply = {_REPLY!r}
while sock.recv(65536):
    sock.sendall(reply)
"""


class _EchoClient(asyncio.BufferedProtocol):
    def __init__(self) -> None:
        self.buffer = memoryview(bytearray(65536))
        self.waiter: Optional[asyncio.Future[None]] = None
        self.transport: Any = None

    def connection_made(self, transport: Any) -> None:
        self.transport = transport

    def get_buffer(self, sizehint: int) -> memoryview:
        return self.buffer

    def buffer_updated(self, nbytes: int) -> None:
        waiter, self.waiter = self.waiter, None
        if waiter is not None:
            waiter.set_result(None)


async def start_echo() -> Tuple[_EchoClient, "subprocess.Popen[bytes]"]:
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    with theirs:
        child = subprocess.Popen(
            [sys.executable, "-c", ECHO_CHILD, str(theirs.fileno())],
            pass_fds=(theirs.fileno(),),
        )
    loop = asyncio.get_running_loop()
    _, client = await loop.connect_accepted_socket(_EchoClient, ours)
    return client, child


def echo_calls(client: _EchoClient) -> Callable[[int], Awaitable[None]]:
    async def body(iterations: int) -> None:
        loop = asyncio.get_running_loop()
        write = client.transport.write
        for _ in range(iterations):
            client.waiter = waiter = loop.create_future()
            write(_REQUEST)
            await waiter

    return body


async def read_chunk(afp: Any) -> None:
    if len(await afp.read(CHUNK)) < CHUNK:
        await afp.seek(0)


class InlineFile:
    """A floor's file: ``read`` reads in the coroutine itself (no thread, no
    future), so awaiting it never suspends."""

    def __init__(self, path: str):
        self.fp = open(path, "rb")

    async def read(self, n: int) -> bytes:
        return self.fp.read(n)

    async def seek(self, offset: int) -> int:
        return self.fp.seek(offset)

    async def close(self) -> None:
        self.fp.close()


def sequential(afp: Any) -> Callable[[int], Awaitable[None]]:
    async def body(iterations: int) -> None:
        for _ in range(iterations):
            await read_chunk(afp)

    return body


def concurrent(files: List[Any]) -> Callable[[int], Awaitable[None]]:
    async def body(iterations: int) -> None:
        for _ in range(iterations):
            await asyncio.gather(*(read_chunk(afp) for afp in files))

    return body


def worker_calls(pool: Any) -> Callable[[int], Awaitable[None]]:
    create_task = pool.create_task

    async def body(iterations: int) -> None:
        for _ in range(iterations):
            await create_task(abs, -1)

    return body


def setup(subject: str, loop_kind: str) -> Fixture:
    policy = loop_policy(loop_kind)
    facts: Dict[str, Any] = {"loop_kind": loop_kind}

    if subject in (AIOMISC_C.name, AIOMISC_C_PY.name):
        require_aiomisc_c(subject, "thread_pool")
        import aiomisc_c as library
        from aiomisc_c import io as library_io

        facts.update(aiomisc_c_facts("thread_pool"))
    elif subject == AIOMISC.name:
        library, facts["version"] = import_peer("aiomisc")
        library_io, _ = import_peer("aiomisc.io")
    else:
        raise ValueError(f"unknown subject {subject!r}")

    loop = library.new_event_loop(policy=policy)
    directory = tempfile.mkdtemp(prefix="bench-io-")
    big = os.path.join(directory, "big.bin")
    with open(big, "wb") as fp:
        fp.write(os.urandom(1024 * CHUNK))
    small_paths = []
    for index in range(CONCURRENT_FILES):
        path = os.path.join(directory, f"small-{index}.bin")
        with open(path, "wb") as fp:
            fp.write(os.urandom(16 * CHUNK))
        small_paths.append(path)

    async def open_all() -> Any:
        afp = await library_io.async_open(big, "rb")
        files = [await library_io.async_open(path, "rb") for path in small_paths]
        pool = library.WorkerPool(2)
        await pool.start()
        await asyncio.gather(*(pool.create_task(abs, -1) for _ in range(20)))
        echo = await start_echo()
        return afp, files, pool, echo

    afp, files, pool, (echo, echo_child) = loop.run_until_complete(open_all())
    floor_afp = InlineFile(big)
    floor_files = [InlineFile(path) for path in small_paths]

    def close() -> None:
        async def close_all() -> None:
            await pool.close()
            echo.transport.close()
            for each in [afp, *files, floor_afp, *floor_files]:
                await each.close()

        loop.run_until_complete(close_all())
        echo_child.wait()
        shutil.rmtree(directory, ignore_errors=True)

    bodies = {
        "read_sequential": sequential(afp),
        "read_concurrent": concurrent(files),
        "floor_read_sequential": sequential(floor_afp),
        "floor_read_concurrent": concurrent(floor_files),
        "worker_pool_call": worker_calls(pool),
        "echo_round_trip": echo_calls(echo),
    }
    return Fixture(loop=loop, bodies=bodies, close=close, facts=facts)
