"""Peers of a WorkerPool's socket that are not its workers.

Every hostile peer is refused by the fixed-size handshake before anything
it sent is unpickled, is counted as ``bad_auth``, and the pool keeps serving
its real workers.
"""
import asyncio
import operator
import os
import pickle
import socket
import struct
import tracemalloc

import pytest

from aiomisc_c.worker import PacketTypes
from aiomisc_c.worker.protocol import HANDSHAKE, HANDSHAKE_MAGIC, pack_handshake
from aiomisc_c.worker_pool import WorkerPool
from helpers.waiting import wait_until

pytestmark = [pytest.mark.timeout(60), pytest.mark.subprocess]

AUTH_FAIL = bytes((PacketTypes.AUTH_FAIL,))
AUTH_OK = bytes((PacketTypes.AUTH_OK,))


@pytest.fixture
def loop(plain_loop):
    return plain_loop


class CreatesFile:
    """Unpickling this opens (creates) ``path`` for writing."""

    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return open, (self.path, "w")


def frame(payload):
    return struct.pack("!L", len(payload)) + payload


async def attack(address, data, expect_refusal=True):
    """Connect, send ``data``, return everything the pool answered until
    it closed the connection."""
    loop = asyncio.get_running_loop()
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.setblocking(False)
    try:
        await loop.sock_connect(sock, address)
        try:
            await loop.sock_sendall(sock, data)
        except (BrokenPipeError, ConnectionResetError):
            pass
        answer = b""
        while True:
            try:
                chunk = await asyncio.wait_for(loop.sock_recv(sock, 1024), 10)
            except ConnectionResetError:
                break
            if not chunk:
                break
            answer += chunk
        return answer
    finally:
        sock.close()


def bad_auth(pool):
    return pool._statistic.bad_auth


def test_hostile_peers_are_refused(run, tmp_path):
    evil = tmp_path / "side-effect"

    async def main():
        async with WorkerPool(2) as pool:
            await wait_until(lambda: len(pool.pids) == 2, message="workers")
            pids = set(pool.pids)
            known_id = pool.worker_ids[0]
            cookie = pool._WorkerPool__cookie
            pid = os.getpid()

            good = pack_handshake(cookie, PacketTypes.AUTH, known_id, pid)
            wrong_digest = bytearray(good)
            wrong_digest[-9] ^= 0xFF   # last digest byte
            unknown_id = pack_handshake(cookie, PacketTypes.AUTH, b"\x01" * 16, pid)
            other_cookie = pack_handshake(b"x" * 128, PacketTypes.AUTH, known_id, pid)
            wrong_kind = pack_handshake(cookie, PacketTypes.RESULT, known_id, pid)
            evil_pickle = frame(pickle.dumps(
                (PacketTypes.AUTH, known_id, b"0" * 32, pid, CreatesFile(str(evil))),
            ))
            attacks = {
                "garbage": os.urandom(HANDSHAKE.size),
                "wrong digest": bytes(wrong_digest),
                "unknown worker id": unknown_id,
                "another cookie": other_cookie,
                "wrong kind": wrong_kind,
                "pickle with a side effect": evil_pickle,
                "pickle after a bad handshake": bytes(wrong_digest) + evil_pickle,
                "huge length prefix": b"\xff\xff\xff\xff" + os.urandom(HANDSHAKE.size),
                "bad magic": b"XXXX" + good[len(HANDSHAKE_MAGIC):],
            }
            for number, (name, data) in enumerate(attacks.items(), 1):
                answer = await attack(pool.address, data)
                assert answer in (AUTH_FAIL, b""), (name, answer)
                await wait_until(
                    lambda number=number: bad_auth(pool) == number, message=name,
                )

            assert not evil.exists()
            # The real workers still serve, and none was replaced.
            results = await asyncio.gather(
                *(pool.create_task(operator.mul, i, i) for i in range(6)),
            )
            assert results == [i * i for i in range(6)]
            assert pool.pids == pids

    run(main())
    assert not evil.exists()


def test_well_formed_handshake_is_accepted(run):
    # The control for the test above: the messages it tampers with are
    # otherwise right, since an untampered one passes.
    async def main():
        async with WorkerPool(1) as pool:
            cookie = pool._WorkerPool__cookie
            hello = pack_handshake(cookie, PacketTypes.AUTH, pool.worker_ids[0], 4242)
            loop = asyncio.get_running_loop()
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.setblocking(False)
            with sock:
                await loop.sock_connect(sock, pool.address)
                await loop.sock_sendall(sock, hello)
                assert await asyncio.wait_for(loop.sock_recv(sock, 1), 10) == AUTH_OK
                await wait_until(lambda: 4242 in pool.pids, message="accepted")
            await wait_until(lambda: 4242 not in pool.pids, message="gone")
            assert bad_auth(pool) == 0
            assert await pool.create_task(operator.add, 2, 3) == 5

    run(main())


def test_huge_length_prefix_allocates_nothing(run):
    async def main():
        async with WorkerPool(1) as pool:
            await pool.create_task(int)
            huge = b"\xff\xff\xff\xff" + b"\0" * (HANDSHAKE.size - 4)
            streaming = b"\x7f\xff\xff\xff" + b"A" * 256 * 1024
            tracemalloc.start()
            try:
                before, _ = tracemalloc.get_traced_memory()
                tracemalloc.reset_peak()
                for _ in range(20):
                    await attack(pool.address, huge)
                    # A peer that keeps streaming after its length prefix.
                    await attack(pool.address, streaming)
                _, peak = tracemalloc.get_traced_memory()
            finally:
                tracemalloc.stop()
            assert peak - before < 2 * 1024 * 1024, peak - before
            await wait_until(lambda: bad_auth(pool) == 40, message="counted")
            assert await pool.create_task(operator.add, 1, 1) == 2

    run(main())


def test_silent_and_partial_peers_time_out(run):
    async def main():
        async with WorkerPool(1) as pool:
            pool.HANDSHAKE_TIMEOUT = 0.2
            loop = asyncio.get_running_loop()
            socks = []
            try:
                for data in (b"", b"AMCW\x32"):
                    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                    sock.setblocking(False)
                    socks.append(sock)
                    await loop.sock_connect(sock, pool.address)
                    if data:
                        await loop.sock_sendall(sock, data)
                for sock in socks:
                    answer = await asyncio.wait_for(loop.sock_recv(sock, 16), 10)
                    assert answer in (AUTH_FAIL, b"")
            finally:
                for sock in socks:
                    sock.close()
            await wait_until(lambda: bad_auth(pool) == 2, message="counted")
            assert await pool.create_task(operator.add, 1, 1) == 2

    run(main())


def test_oversized_request_is_refused_at_once(run):
    async def main():
        async with WorkerPool(1) as pool:
            pool.MAX_PACKET_SIZE = 1024
            with pytest.raises(ValueError, match="more than 1024"):
                await pool.create_task(len, b"x" * 4096)
            assert await pool.create_task(len, b"x" * 10) == 10

    run(main())


def test_oversized_reply_kills_the_worker(run):
    async def main():
        async with WorkerPool(1) as pool:
            await pool.create_task(int)
            pool.MAX_PACKET_SIZE = 64 * 1024
            from multiprocessing import ProcessError

            with pytest.raises(ProcessError, match="unexpected exited"):
                await pool.create_task(bytes, 1024 * 1024)
            assert await pool.create_task(operator.add, 1, 1) == 2

    run(main())
