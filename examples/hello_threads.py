"""Blocking work off the event loop, with aiomisc's API.

Run: python examples/hello_threads.py
"""
import asyncio
import hashlib
import time

import aiomisc_c as aiomisc


@aiomisc.threaded
def digest(data: bytes, rounds: int) -> str:
    """CPU- or IO-bound work that must not block the loop."""
    value = data
    for _ in range(rounds):
        value = hashlib.sha256(value).digest()
    return value.hex()[:16]


@aiomisc.threaded
def slow_io(delay: float) -> float:
    time.sleep(delay)   # a blocking call, e.g. a legacy client library
    return delay


@aiomisc.threaded_iterable(max_size=4)
def countdown(start: int):
    for value in range(start, 0, -1):
        yield value


async def main() -> None:
    started = time.monotonic()
    delays = await asyncio.gather(*(slow_io(0.2) for _ in range(4)))
    print(f"4 blocking sleeps of 0.2 s took {time.monotonic() - started:.2f} s "
          f"in the pool: {delays}")

    digests = await asyncio.gather(*(digest(b"x" * n, 1000) for n in range(3)))
    print("digests:", digests)

    print("countdown:", [value async for value in countdown(5)])

    pool_stats = {
        result.metric: result.value
        for result in aiomisc.get_statistics()
        if result.name == "default"
    }
    print("default pool statistics:", pool_stats)


if __name__ == "__main__":
    print("aiomisc_c", aiomisc.__version__, "implementation:", aiomisc.implementation)
    loop = aiomisc.new_event_loop()
    try:
        loop.run_until_complete(main())
    finally:
        loop.close()
