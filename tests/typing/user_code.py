"""Code as a typed aiomisc user writes it, checked by ``mypy --strict``.

Never run: ``tests/test_typing.py`` type-checks this module.  Every
``assert_type`` pins what a checker must infer through the package's
decorators and classes; an ``Any`` anywhere here fails the check.
"""
from __future__ import annotations

import asyncio
import concurrent.futures
import socket
from collections.abc import (
    AsyncIterator, Awaitable, Callable, Coroutine, Generator, Sequence,
)
from contextlib import AbstractAsyncContextManager
from typing import Any

from aiohttp import web
from typing_extensions import assert_type

import aiomisc_c as aiomisc
from aiomisc_c import (
    Backoff, CircuitBreaker, Service, ThreadPoolExecutor, asyncbackoff,
    asyncretry, awaitable, cutout, new_event_loop, shield, threaded,
    threaded_iterable, threaded_iterable_separate, threaded_separate,
    timeout,
)
from aiomisc_c.aggregate import Aggregator, Arg
from aiomisc_c.backoff import BackoffExecution
from aiomisc_c.circuit_breaker import CircuitBreakerStates
from aiomisc_c.cron import CronCallback
from aiomisc_c.io import (
    AsyncBinaryIO, AsyncFileIO, AsyncTextIO, Compression, async_open,
)
from aiomisc_c.periodic import PeriodicCallback
from aiomisc_c.pool import PoolBase
from aiomisc_c.process_pool import ProcessPoolExecutor
from aiomisc_c.recurring import RecurringCallback
from aiomisc_c.service.cron import CronService
from aiomisc_c.service.dns import DNSStore, DNSZone
from aiomisc_c.service.dns import records as dns_records
from aiomisc_c.service.periodic import PeriodicService
from aiomisc_c.worker_pool import WorkerPool
from aiomisc_c.iterator_wrapper import IteratorWrapper
from aiomisc_c.service import Service as ServiceFromPackage
from aiomisc_c.entrypoint import Entrypoint
from aiomisc_c.service.aiohttp import AIOHTTPService
from aiomisc_c.service.base import SimpleServer
from aiomisc_c.service.tcp import TCPServer
from aiomisc_c.service.udp import UDPServer
from aiomisc_c._thread_pool_base import ThreadPoolExecutorBase
from aiomisc_c.thread_pool import (
    BoundThreaded, BoundThreadedIterable, Threaded, ThreadedIterable,
    ThreadedIterableSeparate, ThreadedSeparate, run_in_executor, sync_await,
    wait_coroutine,
)
from aiomisc_c.utils import create_default_event_loop


# -- threads ----------------------------------------------------------------

@threaded
def blocking(x: int, name: str = "") -> str:
    return name * x


@threaded
def square(x: int, /) -> int:
    return x * x


@threaded_separate
def in_new_thread(x: int, /) -> float:
    return x / 2


@threaded_separate(detach=False)
def in_joined_thread(x: int) -> bytes:
    return bytes(x)


@threaded_separate(False)    # aiomisc 17 style: the flag as first argument
def in_thread_17_style(x: int) -> str:
    return str(x)


@threaded_iterable
def numbers(limit: int, /) -> Generator[int, None, None]:
    yield from range(limit)


@threaded_iterable(max_size=2)
def words(prefix: str) -> Generator[str, None, None]:
    yield prefix


@threaded_iterable_separate
def floats(limit: int, /) -> Generator[float, None, None]:
    yield float(limit)


@threaded_iterable_separate(max_size=4)
def chunks(size: int) -> Generator[bytes, None, None]:
    yield bytes(size)


@threaded
def lines(count: int) -> Generator[str, None, None]:
    # a generator function under @threaded becomes a threaded_iterable
    yield str(count)


class Repository:
    def __init__(self, prefix: str) -> None:
        self.prefix = prefix

    @threaded
    def load(self, key: int, /) -> str:
        return f"{self.prefix}{key}"

    @threaded_separate
    def load_apart(self, key: int) -> list[str]:
        return [self.prefix] * key

    @threaded_iterable
    def scan(self, limit: int, /) -> Generator[tuple[int, str], None, None]:
        for i in range(limit):
            yield i, self.prefix


async def use_threads(repo: Repository) -> None:
    assert_type(square, Threaded[[int], int])
    assert_type(await square(3), int)
    assert_type(blocking(1), Awaitable[str])
    assert_type(await blocking(1), str)
    assert_type(await blocking(2, name="x"), str)
    assert_type(blocking.sync_call(3), str)
    assert_type(await blocking.async_call(3, "y"), str)

    assert_type(in_new_thread, ThreadedSeparate[[int], float])
    assert_type(await in_new_thread(1), float)
    assert_type(in_new_thread.sync_call(1), float)
    assert_type(await in_joined_thread(3), bytes)
    assert_type(await in_thread_17_style(3), str)

    assert_type(numbers, ThreadedIterable[[int], int])
    assert_type(numbers(3), IteratorWrapper[[int], int])
    async for number in numbers(3):
        assert_type(number, int)
    async with numbers(3) as numbers_iterator:
        assert_type(numbers_iterator, IteratorWrapper[[int], int])
        async for number in numbers_iterator:
            assert_type(number, int)
    assert_type(numbers.sync_call(3), Generator[int, None, None])
    async for word in words("a"):
        assert_type(word, str)
    assert_type(floats, ThreadedIterableSeparate[[int], float])
    async for value in floats(1):
        assert_type(value, float)
    async for chunk in chunks(1):
        assert_type(chunk, bytes)
    async for line in lines(1):
        assert_type(line, str)

    assert_type(Repository.load, Threaded[[Repository, int], str])
    assert_type(repo.load, BoundThreaded[[int], str])
    assert_type(await repo.load(1), str)
    assert_type(repo.load.sync_call(1), str)
    assert_type(await Repository.load(repo, 1), str)
    assert_type(await repo.load_apart(2), list[str])
    assert_type(repo.scan, BoundThreadedIterable[[int], tuple[int, str]])
    async for key, text in repo.scan(2):
        assert_type(key, int)
        assert_type(text, str)

    def compute(a: int, b: int) -> complex:
        return complex(a, b)

    assert_type(await run_in_executor(compute, args=(1, 2)), complex)

    pool = ThreadPoolExecutor(4)
    assert_type(pool.submit(compute, 1, 2), "asyncio.Future[complex]")
    pool.shutdown(wait=True)


async def produce() -> int:
    return 42


def from_a_thread() -> None:
    assert_type(wait_coroutine(produce()), int)
    assert_type(sync_await(produce), int)


# -- retries, timeouts, circuit breakers -------------------------------------

@asyncbackoff(attempt_timeout=0.5, deadline=2, pause=0.1)
async def fetch(url: str, *, retries: int = 0) -> bytes:
    return url.encode()


@asyncbackoff(None, None, 0, ConnectionError, max_tries=3)
async def connect(host: str, port: int) -> tuple[str, int]:
    return host, port


@asyncretry(max_tries=3, exceptions=(OSError,))
async def send(payload: bytes) -> int:
    return len(payload)


@timeout(1)
async def quick(value: float) -> float:
    return value


breaker = CircuitBreaker(error_ratio=0.5, response_time=10)


@cutout(0.5, 10, ConnectionError)
def guarded(x: int) -> str:
    return str(x)


@cutout(0.5, 10)
async def guarded_async(x: int) -> list[int]:
    return [x]


@shield
async def important(value: int) -> str:
    return str(value)


@awaitable
def made_awaitable(value: int) -> float:
    return float(value)


@awaitable
async def already_async(value: int) -> bytes:
    return bytes(value)


def parse(text: str) -> int:
    return int(text)


async def parse_async(text: str, /) -> float:
    return float(text)


async def use_policies() -> None:
    assert_type(await fetch("http://x"), bytes)
    assert_type(await fetch("http://x", retries=2), bytes)
    pending = fetch("x")
    _ = assert_type(pending, Coroutine[Any, Any, bytes])
    pending.close()
    assert_type(await connect("localhost", 80), tuple[str, int])
    assert_type(await send(b"x"), int)
    assert_type(await quick(1.5), float)
    assert_type(guarded(1), str)
    assert_type(await guarded_async(1), list[int])
    assert_type(await important(1), str)
    assert_type(await made_awaitable(1), float)
    assert_type(await already_async(1), bytes)

    assert_type(breaker.call(parse, "1"), int)
    assert_type(await breaker.call_async(parse_async, "1"), float)
    assert_type(breaker.state, CircuitBreakerStates)
    assert_type(breaker.recovery_ratio, int | float)
    with breaker.context():
        pass

    backoff = Backoff(attempt_timeout=1, deadline=None, max_tries=2)
    assert_type(await backoff.execute(parse_async, "2"), float)
    execution = backoff.prepare(parse_async)
    assert_type(execution, BackoffExecution[[str], float])
    assert_type(await execution("3"), float)


# -- loops, services, the package namespace -----------------------------------

class Pinger(Service):
    interval: float = 1.0

    async def start(self) -> None:
        await asyncio.sleep(0)

    async def stop(self, exception: Exception | None = None) -> None:
        await asyncio.sleep(0)


class Echo(SimpleServer):
    async def start(self) -> None:
        async def forever() -> int:
            return 0

        task = self.create_task(forever())
        assert_type(task, "asyncio.Task[int]")


# The services' hooks: mypy checks each override against the base class.
class EchoServer(TCPServer):
    async def handle_client(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
    ) -> None:
        writer.write(await reader.read(1))


class DatagramEcho(UDPServer):
    async def handle_datagram(self, data: bytes, addr: tuple[Any, ...]) -> None:
        self.sendto(data, addr)


class WebApp(AIOHTTPService):
    async def create_application(self) -> web.Application:
        return web.Application()


@aiomisc.receiver(Entrypoint.PRE_START)
async def before_start(*, entrypoint: Entrypoint, services: Any) -> None:
    pass


def use_loop_and_services() -> None:
    _ = assert_type(
        before_start(entrypoint=Entrypoint(), services=()),
        Coroutine[Any, Any, None],
    )
    assert_type(EchoServer(port=0).port, int | None)
    loop = new_event_loop()
    assert_type(loop, asyncio.AbstractEventLoop)
    other_loop, pool = create_default_event_loop()
    assert_type(other_loop, asyncio.AbstractEventLoop)
    assert_type(pool, ThreadPoolExecutorBase)
    assert ServiceFromPackage is Service
    with aiomisc.entrypoint(Pinger(interval=2)) as running_loop:
        assert_type(running_loop, asyncio.AbstractEventLoop)
        assert_type(running_loop.run_until_complete(produce()), int)
    assert_type(aiomisc.implementation["thread_pool"], str)
    assert_type(aiomisc.run(produce()), int)
    loop.close()
    other_loop.close()
    pool.shutdown()


class Counters(aiomisc.Statistic):
    hits: int
    seconds: float


async def use_utilities() -> None:
    context = aiomisc.get_context()
    assert_type(context, aiomisc.Context)
    context["key"] = 1
    assert_type(await context["key"], Any)
    signal = aiomisc.Signal()
    signal.connect(before_start)
    await signal.call(entrypoint=None, services=())
    assert_type(list(aiomisc.chunk_list(range(10), 3)), list[list[int]])
    sock = aiomisc.bind_socket(address="127.0.0.1", port=0)
    assert_type(sock, socket.socket)
    sock.close()
    result = await aiomisc.select(produce(), asyncio.sleep(1, "late"))
    assert_type(result, aiomisc.SelectResult)
    assert_type(aiomisc.cancel_tasks([]), "asyncio.Future[Any]")
    counters = Counters(name="mine")
    counters.hits += 1
    assert_type(counters.hits, int)
    assert_type(counters.seconds, float)


async def iterate_any(it: AsyncIterator[int]) -> None:
    async for item in it:
        assert_type(item, int)


# -- aggregation --------------------------------------------------------------

@aiomisc.aggregate(leeway_ms=10)
async def labels(*ids: int) -> list[str]:
    return [str(i) for i in ids]


@aiomisc.aggregate(10, max_count=5)
async def halves(*values: float) -> tuple[float, ...]:
    return tuple(value / 2 for value in values)


@aiomisc.aggregate_async(leeway_ms=10)
async def lookup(*args: Arg[str, bytes]) -> None:
    for arg in args:
        arg.future.set_result(arg.value.encode())


async def use_aggregate() -> None:
    assert_type(labels, Callable[[int], Coroutine[Any, Any, str]])
    assert_type(await labels(1), str)
    assert_type(await halves(3), float)
    assert_type(await lookup("key"), bytes)
    aggregator = Aggregator(_labels, leeway_ms=5)
    assert_type(aggregator, Aggregator[int, str])
    assert_type(await aggregator.aggregate(2), str)
    assert_type(aggregator.count, int)


async def _labels(*ids: int) -> list[str]:
    return [str(i) for i in ids]


# -- pools, schedules, files, processes, DNS --------------------------------

class Connection:
    def send(self, data: bytes) -> int:
        return len(data)


class ConnectionPool(PoolBase[Connection]):
    async def _create_instance(self) -> Connection:
        return Connection()

    async def _destroy_instance(self, instance: Connection) -> None:
        pass

    async def _check_instance(self, instance: Connection) -> bool:
        return True


class SizedPool(PoolBase[bytes]):
    async def _create_instance(self) -> bytes:
        return b""

    async def _destroy_instance(self, instance: bytes) -> None:
        pass

    async def _check_instance(self, instance: bytes) -> bool:
        return bool(instance)


async def tick() -> None:
    pass


def cube(x: int) -> int:
    return x ** 3


def scale(values: list[float], *, factor: float) -> list[float]:
    return [value * factor for value in values]


class Heartbeat(PeriodicService):
    interval = 1

    async def callback(self) -> None:
        pass


class Nightly(CronService):
    async def start(self) -> None:
        self.register(tick, "0 3 * * *")
        await super().start()


async def use_pools_and_schedules(
    pool: ConnectionPool, sized: SizedPool, workers: WorkerPool,
) -> None:
    async with pool.acquire() as connection:
        assert_type(connection, Connection)
        assert_type(connection.send(b"x"), int)
    async with sized.acquire() as data:
        assert_type(data, bytes)
    assert_type(pool.acquire(), AbstractAsyncContextManager[Connection])
    assert_type(await pool.close(), None)

    periodic = PeriodicCallback(tick)
    assert_type(periodic.start(1, delay=0.5), None)
    assert_type(periodic.stop(), "asyncio.Future[Any]")
    recurring = RecurringCallback(tick, name="tick")
    task = recurring.start(lambda callback: 1.0)
    assert_type(task, "asyncio.Task[Any]")
    cron = CronCallback(tick)
    assert_type(cron.start("* * * * *"), None)
    assert_type(cron.stop(), "asyncio.Future[Any]")

    assert_type(await workers.create_task(cube, 2), int)
    assert_type(
        await workers.create_task(scale, [1.0], factor=2), list[float],
    )
    with ProcessPoolExecutor(max_workers=1) as executor:
        future = executor.submit(cube, 3)
        assert_type(future, "concurrent.futures.Future[int]")
        assert_type(future.result(), int)
        assert_type(
            await asyncio.wrap_future(executor.submit(scale, [2.0], factor=1)),
            list[float],
        )

    heartbeat = Heartbeat()
    assert_type(await heartbeat.start(), None)
    assert_type(await heartbeat.callback(), None)
    assert_type(await heartbeat.stop(None), None)
    nightly = Nightly()
    assert_type(nightly.register(tick, "* * * * *", shield=True), None)
    assert_type(await nightly.stop(None), None)


async def use_files(path: str, mode: str) -> None:
    async with async_open(path, "w") as text:
        assert_type(text, AsyncTextIO)
        assert_type(await text.write("line"), int)
    async with async_open(path) as default:
        assert_type(await default.read(), str)
    async with async_open(path, "rb") as binary:
        assert_type(binary, AsyncBinaryIO)
        assert_type(await binary.read(), bytes)
        assert_type(await binary.readline(), bytes)
    compressed = async_open(path, "rb", compression=Compression.GZIP)
    assert_type(compressed, AsyncBinaryIO)
    assert_type(async_open(path, mode), "AsyncFileIO[Any]")


def use_dns_store() -> None:
    store = DNSStore()
    zone = DNSZone("example.com.")
    record = dns_records.A.create("www.example.com.", "192.0.2.1")
    assert_type(record, dns_records.DNSRecord)
    assert_type(zone.add_record(record), None)
    assert_type(store.add_zone(zone), None)
    assert_type(store.get_zone("example.com."), "DNSZone | None")
    found = store.query("www.example.com.", dns_records.RecordType.A)
    assert_type(found, "Sequence[dns_records.DNSRecord]")
    assert_type(store.get_zone_for_name("www.example.com."),
                "tuple[str, ...] | None")
    assert_type(store.remove_zone("example.com."), None)
