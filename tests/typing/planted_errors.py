"""Deliberate type errors: ``mypy --strict`` must report each line that
ends with an ``E:`` comment (a fragment of the expected message), and
nothing else.

Never run: ``tests/test_typing.py`` type-checks this module.  Each error is
one a checker can only find when the package keeps the wrapped types.
"""
from __future__ import annotations

from collections.abc import Generator

from aiomisc_c.aggregate import Arg, aggregate, aggregate_async
from aiomisc_c.io import async_open
from aiomisc_c.process_pool import ProcessPoolExecutor
from aiomisc_c.service.udp import UDPServer
from aiomisc_c.worker_pool import WorkerPool
from aiomisc_c import (
    CircuitBreaker, asyncbackoff, asyncretry, awaitable, cutout,
    new_event_loop, shield, threaded, threaded_iterable,
    threaded_iterable_separate, threaded_separate, timeout,
)


@threaded
def blocking(x: int) -> int:
    return x


@threaded_separate
def apart(x: int) -> int:
    return x


@threaded_iterable
def numbers(limit: int) -> Generator[int, None, None]:
    yield limit


@threaded_iterable_separate(max_size=1)
def letters(limit: int) -> Generator[str, None, None]:
    yield str(limit)


class Model:
    @threaded
    def method(self, key: int) -> str:
        return str(key)


@asyncbackoff(0.1, 1)
async def fetch(url: str) -> bytes:
    return url.encode()


@asyncretry(3)
async def send(size: int) -> int:
    return size


@timeout(1)
async def quick() -> float:
    return 1.0


@cutout(0.5, 1)
def guarded(x: int) -> int:
    return x


@shield
async def protected() -> int:
    return 1


@awaitable
def plain() -> int:
    return 1


class BadDatagrams(UDPServer):
    async def handle_datagram(self, data: str, addr: tuple[str, int]) -> None:  # E: Argument 1 of "handle_datagram" is incompatible with supertype
        pass


def parse(text: str) -> int:
    return int(text)


async def parse_async(text: str) -> int:
    return int(text)


async def errors(model: Model, breaker: CircuitBreaker) -> None:
    text: str = await blocking(1)  # E: Incompatible types in assignment (expression has type "int", variable has type "str")
    await blocking("1")  # E: Argument 1 has incompatible type "str"; expected "int"
    blocking.sync_call(1, 2)  # E: Too many arguments for "sync_call" of "Threaded"
    name: bytes = await apart(1)  # E: Incompatible types in assignment (expression has type "int", variable has type "bytes")
    async for number in numbers(3):
        number.upper()  # E: "int" has no attribute "upper"
    async with letters(1) as stream:
        async for letter in stream:
            letter + 1  # E: Unsupported operand types for + ("str" and "int")
    key: int = await model.method(1)  # E: Incompatible types in assignment (expression has type "str", variable has type "int")
    await model.method("x")  # E: Argument 1 has incompatible type "str"; expected "int"
    body: str = await fetch("x")  # E: Incompatible types in assignment (expression has type "bytes", variable has type "str")
    await fetch(1)  # E: Argument 1 to "fetch" has incompatible type "int"; expected "str"
    sent: str = await send(1)  # E: Incompatible types in assignment (expression has type "int", variable has type "str")
    value: int = await quick()  # E: Incompatible types in assignment (expression has type "float", variable has type "int")
    guarded("x")  # E: Argument 1 to "guarded" has incompatible type "str"; expected "int"
    result: str = await protected()  # E: Incompatible types in assignment (expression has type "int", variable has type "str")
    made: str = await plain()  # E: Incompatible types in assignment (expression has type "int", variable has type "str")
    called: str = breaker.call(parse, "1")  # E: Incompatible types in assignment (expression has type "int", variable has type "str")
    breaker.call(parse, 1)  # E: Argument 2 to "call" of "CircuitBreaker" has incompatible type "int"; expected "str"
    awaited: str = await breaker.call_async(parse_async, "1")  # E: Argument 1 to "call_async" of "CircuitBreaker" has incompatible type
    loop: int = new_event_loop()  # E: Incompatible types in assignment (expression has type "AbstractEventLoop", variable has type "int")
    print(text, name, key, body, sent, value, result, made, called, awaited, loop)


@aggregate(10)
async def labels(*ids: int) -> list[str]:
    return [str(i) for i in ids]


@aggregate_async(10)
async def lookup(*args: Arg[str, bytes]) -> None:
    pass


async def not_variadic(x: int) -> list[str]:
    return [str(x)]


async def aggregate_errors() -> None:
    aggregate(10)(not_variadic)  # E: has incompatible type "Callable[[int], Coroutine[Any, Any, list[str]]]"; expected "_BatchFunc[
    label: int = await labels(1)  # E: Incompatible types in assignment (expression has type "str", variable has type "int")
    await labels("1")  # E: Argument 1 to "labels" has incompatible type "str"; expected "int"
    await lookup(1)  # E: Argument 1 to "lookup" has incompatible type "int"; expected "str"
    print(label)


def triple(x: int) -> int:
    return x * 3


async def pool_and_file_errors(pool: WorkerPool, path: str) -> None:
    async with async_open(path, "rb") as binary:
        text: str = await binary.read()  # E: Incompatible types in assignment (expression has type "bytes", variable has type "str")
    tripled = await pool.create_task(triple, 1)
    tripled.upper()  # E: "int" has no attribute "upper"
    await pool.create_task(triple, "1")  # E: Argument 2 to "create_task" of "WorkerPool" has incompatible type "str"; expected "int"
    with ProcessPoolExecutor(max_workers=1) as executor:
        executor.submit(triple, 1, 2)  # E: Too many arguments for "submit" of "ProcessPoolExecutor"
    print(text, tripled)
