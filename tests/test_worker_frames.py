"""How WorkerPool requests and replies are framed: the cached pickles of
functions, and payloads larger than the receive buffers, on both loops."""
import asyncio
import functools
import operator
import os
import pickle

import pytest

from aiomisc_c.worker import PacketTypes, protocol
from aiomisc_c.worker.worker import _run_job
from aiomisc_c.worker_pool import WorkerPool

pytestmark = [pytest.mark.timeout(60), pytest.mark.subprocess]

# The receive buffers of both ends (aiomisc_c.worker_pool, aiomisc_c.worker).
BUFFER_SIZE = 65536


@pytest.fixture
def loop(plain_loop):
    return plain_loop


class Counter:
    """A callable with state: its pickle changes with it."""

    def __init__(self, start):
        self.value = start

    def __call__(self):
        return self.value


class Unhashable:
    __hash__ = None

    def __eq__(self, other):
        return True

    def __call__(self, value):
        return value * 2


def module_function(value):
    return value + 1


def payload(frame):
    (size,) = protocol.PACKET_HEADER.unpack_from(frame)
    assert size == len(frame) - protocol.PACKET_HEADER.size
    return frame[protocol.PACKET_HEADER.size:]


def test_request_round_trip():
    for func, args, kwargs in (
        (abs, (-1,), {}),
        (module_function, (1,), {}),
        (functools.partial(operator.add, 1), (2,), {}),
        (Counter(3), (), {}),
        ("abc".upper, (), {}),
        (sorted, ([3, 1, 2],), {"reverse": True}),
    ):
        loaded, loaded_args, loaded_kwargs = protocol.unpack_request(
            payload(protocol.pack_request(func, args, kwargs)),
        )
        assert loaded(*loaded_args, **loaded_kwargs) == func(*args, **kwargs)


def test_only_functions_named_in_a_module_are_cached():
    protocol.pack_request(module_function, (), {})
    protocol.pack_request(os.getpid, (), {})
    for stateful in (Counter(1), "abc".upper, functools.partial(abs, 1)):
        protocol.pack_request(stateful, (), {})
        assert stateful not in protocol._function_pickles.keys()
    assert module_function in protocol._function_pickles
    assert os.getpid in protocol._function_pickles
    # A callable whose __eq__ says yes to everything never hits the cache.
    func, args, _ = protocol.unpack_request(
        payload(protocol.pack_request(Unhashable(), (21,), {})),
    )
    assert isinstance(func, Unhashable) and func(*args) == 42


def test_stateful_callables_are_pickled_per_call():
    counter = Counter(1)
    first = protocol.pack_request(counter, (), {})
    counter.value = 2
    second = protocol.pack_request(counter, (), {})
    assert protocol.unpack_request(payload(first))[0]() == 1
    assert protocol.unpack_request(payload(second))[0]() == 2


def test_caches_are_bounded():
    for index in range(protocol.FUNCTION_CACHE_SIZE * 2):
        def func():
            pass
        func.__qualname__ = func.__name__ = f"generated_{index}"
        globals()[func.__name__] = func
        try:
            protocol.unpack_request(payload(protocol.pack_request(func, (), {})))
        finally:
            del globals()[func.__name__]
        assert len(protocol._function_pickles) <= protocol.FUNCTION_CACHE_SIZE
        assert len(protocol._unpickled_functions) <= protocol.FUNCTION_CACHE_SIZE


def test_malformed_request_is_an_exception_reply():
    reply = pickle.loads(_run_job(b"\xff\xff\xff\xff" + b"junk"))
    assert reply[0] == PacketTypes.EXCEPTION
    assert isinstance(reply[1], ValueError)
    assert "overruns" in str(reply[1])


def test_large_requests_and_replies(run):
    big = 3 * 1024 * 1024

    async def main():
        async with WorkerPool(2) as pool:
            assert await pool.create_task(len, b"x" * big) == big
            reply = await pool.create_task(bytes, big)
            assert reply == bytes(big)
            sizes = [10, big, 100, BUFFER_SIZE - 10, BUFFER_SIZE + 10, 1, big // 3]
            results = await asyncio.gather(
                *(pool.create_task(bytes, size) for size in sizes),
                *(pool.create_task(len, b"y" * size) for size in sizes),
            )
            assert results == [bytes(size) for size in sizes] + sizes
            # The buffers went back to their usual size.
            assert await pool.create_task(operator.add, 1, 2) == 3
            for connection in pool._connections:
                assert len(connection.buffer) <= BUFFER_SIZE

    run(main())


def test_stateful_callables_through_the_pool(run):
    async def main():
        async with WorkerPool(1) as pool:
            counter = Counter(1)
            assert await pool.create_task(counter) == 1
            counter.value = 5
            assert await pool.create_task(counter) == 5
            assert await pool.create_task("abc".upper) == "ABC"
            assert await pool.create_task("xyz".upper) == "XYZ"
            assert await pool.create_task(functools.partial(operator.add, 1), 1) == 2
            assert await pool.create_task(functools.partial(operator.add, 5), 1) == 6
            assert await pool.create_task(module_function, 1) == 2
            assert await pool.create_task(module_function, 2) == 3

    run(main())
