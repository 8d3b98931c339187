"""Thread pool: ``threaded`` calls and ``run_in_executor`` round trips.

Every case hops a no-op function to a worker thread and back, except the
floors, which drive the very same code over futures that the loop resolves
itself (``loop.call_soon(fut.set_result, None)``): what is left once the
thread hop costs nothing.

One more floor bounds the calls awaited one by one: a round trip to another
process and back through two pipes, where each side sleeps in ``read`` until
the other writes (``floor_wake_round_trip``).  That is the two sleeping
wake-ups a pool round trip cannot avoid without spinning on a CPU (loop to
worker, worker to loop) with no Python work around them, so no pool's
one-by-one call can cost less than that plus ``floor_one_by_one``; and
aiomisc's time divided by that sum is the best ratio any pool can reach
there on the machine of the run.

Run alone: ``python -m benchmarks --only thread_pool``.
"""
import asyncio
import functools
import gc
import os
import threading
import tracemalloc
from typing import Any, Awaitable, Callable, Dict, Tuple

from ._harness import (
    AIOMISC, AIOMISC_C, AIOMISC_C_PY, Case, Fixture, Subject, aiomisc_c_facts,
    import_peer, loop_policy, require_aiomisc_c,
)

TITLE = "Thread pool"

STDLIB = Subject(
    "stdlib", "stdlib", "stdlib",
    note="asyncio.to_thread on the loop's default executor (created by "
         "asyncio: concurrent.futures.ThreadPoolExecutor, min(32, CPUs + 4) "
         "workers); run_in_executor with concurrent.futures."
         "ThreadPoolExecutor(4)",
)
SUBJECTS = (AIOMISC_C, AIOMISC_C_PY, AIOMISC, STDLIB)
BASELINE = AIOMISC.name
REFERENCES = (STDLIB.name,)
LOOPS = ("asyncio", "uvloop")

BATCH = 1_000
PENDING = 10_000
# aiomisc's and aiomisc_c's DEFAULT_POOL_SIZE on a machine with <= 4 CPUs;
# every explicit pool in the executor case gets this many workers
POOL_SIZE = 4

CASES = (
    Case("threaded_gather", "threaded(noop), 1,000 gathered at a time",
         ops=BATCH, iterations=10, floor="floor_gather",
         short="threaded, 1,000 gathered"),
    Case("threaded_in_turn",
         "threaded(noop), 1,000 submitted then awaited in turn",
         ops=BATCH, iterations=10, floor="floor_in_turn",
         short="threaded, 1,000 awaited in turn"),
    Case("threaded_one_by_one", "threaded(noop), awaited one by one",
         ops=1, iterations=2_000, floor="floor_one_by_one",
         short="threaded, one by one"),
    Case("executor_gather",
         "loop.run_in_executor(pool, noop), 1,000 gathered at a time",
         ops=BATCH, iterations=10, floor="floor_gather",
         short="run_in_executor, 1,000 gathered"),
    Case("floor_gather",
         "floor: gather over 1,000 futures resolved by the loop",
         ops=BATCH, iterations=20, kind="floor"),
    Case("floor_in_turn",
         "floor: 1,000 loop-resolved futures awaited in turn",
         ops=BATCH, iterations=20, kind="floor"),
    Case("floor_one_by_one",
         "floor: a loop-resolved future awaited one by one",
         ops=1, iterations=20_000, kind="floor"),
    Case("floor_wake_round_trip",
         "floor: a round trip to another process through pipes (two "
         "sleeping wake-ups)",
         ops=1, iterations=5_000, kind="floor", short="wake-up round trip"),
    Case("pending_memory",
         "memory per pending threaded call (10,000 behind a blocked worker)",
         ops=PENDING, iterations=1, kind="value", unit="B/call",
         short="memory per pending call"),
)


def noop() -> None:
    return None


# --- the drivers: the same code for every subject and for the floors -------

Call = Callable[[], Awaitable[Any]]


def gather_body(call: Call) -> Callable[[int], Awaitable[None]]:
    gather = asyncio.gather

    async def body(iterations: int) -> None:
        for _ in range(iterations):
            await gather(*[call() for _ in range(BATCH)])

    return body


def in_turn_body(start: Call) -> Callable[[int], Awaitable[None]]:
    async def body(iterations: int) -> None:
        for _ in range(iterations):
            pending = [start() for _ in range(BATCH)]
            for fut in pending:
                await fut

    return body


def one_by_one_body(call: Call) -> Callable[[int], Awaitable[None]]:
    async def body(iterations: int) -> None:
        for _ in range(iterations):
            await call()

    return body


def loop_resolved(loop: asyncio.AbstractEventLoop) -> Call:
    """A future that the loop resolves on its next iteration: no threads."""
    create_future = loop.create_future
    call_soon = loop.call_soon

    def resolved() -> asyncio.Future:
        fut = create_future()
        call_soon(fut.set_result, None)
        return fut

    return resolved


# --- the wake-up floor ------------------------------------------------------

ECHO_CHILD = """
import os, sys
inbox, outbox = int(sys.argv[1]), int(sys.argv[2])
while True:
    byte = os.read(inbox, 1)
    if not byte:
        break
    os.write(outbox, byte)
"""


def wake_round_trips() -> Tuple[Callable[[int], None], Callable[[], None]]:
    """(body, close): the body writes a byte to a child process that echoes
    it back, and sleeps in ``read`` until it does, ``iterations`` times."""
    import subprocess
    import sys

    to_child_r, to_child_w = os.pipe()
    from_child_r, from_child_w = os.pipe()
    child = subprocess.Popen(
        [sys.executable, "-c", ECHO_CHILD, str(to_child_r), str(from_child_w)],
        pass_fds=(to_child_r, from_child_w),
    )
    os.close(to_child_r)
    os.close(from_child_w)
    write, read = os.write, os.read

    def body(iterations: int) -> None:
        for _ in range(iterations):
            write(to_child_w, b"x")
            read(from_child_r, 1)

    def close() -> None:
        os.close(to_child_w)    # the child sees EOF and exits
        child.wait(10)
        os.close(from_child_r)

    return body, close


# --- memory per pending call ------------------------------------------------

async def pending_memory(wrap: Callable[[Callable[[], Any]], Call]) -> float:
    """Bytes traced by tracemalloc per pending call, while PENDING calls wait
    behind the single worker, which is blocked.

    ``wrap(fn)`` returns a zero-argument callable that submits ``fn`` and
    returns its future (or task); wrappers are made before counting starts.
    """
    started = threading.Event()
    release = threading.Event()

    def blocker() -> None:
        started.set()
        release.wait(60)

    submit_blocker = wrap(blocker)
    submit_noop = wrap(noop)
    blocked = submit_blocker()
    while not started.is_set():
        await asyncio.sleep(0.001)

    calls: list = [None] * PENDING      # preallocated: not part of the count
    gc.collect()
    gc.disable()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for i in range(PENDING):
            calls[i] = submit_noop()
        # let tasks (stdlib) take their first step and reach the executor
        for _ in range(3):
            await asyncio.sleep(0)
        used = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
        gc.enable()
        release.set()
    await asyncio.gather(blocked, *calls)
    return used / PENDING


def memory_body(
    make_loop: Callable[[], asyncio.AbstractEventLoop],
    make_wrap: Callable[[asyncio.AbstractEventLoop], Callable[..., Call]],
    main_loop: asyncio.AbstractEventLoop,
) -> Callable[[int], float]:
    """A sync body: a fresh loop whose default pool has one worker."""

    def body(iterations: int) -> float:
        values = []
        for _ in range(iterations):
            loop = make_loop()
            try:
                values.append(
                    loop.run_until_complete(pending_memory(make_wrap(loop))),
                )
            finally:
                loop.close()
                asyncio.set_event_loop(main_loop)
        return sum(values) / len(values)

    return body


# --- per-subject wiring -----------------------------------------------------

def aiomisc_like(
    threaded: Callable[..., Any], new_event_loop: Callable[..., Any],
    executor_class: Callable[[int], Any], policy: Any,
) -> Tuple[Any, ...]:
    """(loop, call, pool, make_memory_loop, make_memory_wrap) of a library
    with aiomisc's API: aiomisc itself or either twin of aiomisc_c."""
    loop = new_event_loop(policy=policy)

    def make_memory_loop() -> asyncio.AbstractEventLoop:
        return new_event_loop(pool_size=1, policy=policy)

    def make_memory_wrap(_: Any) -> Callable[..., Call]:
        return threaded

    return (
        loop, threaded(noop), executor_class(POOL_SIZE),
        make_memory_loop, make_memory_wrap,
    )


def setup(subject: str, loop_kind: str) -> Fixture:
    policy = loop_policy(loop_kind)
    facts: Dict[str, Any] = {"loop_kind": loop_kind}

    if subject in (AIOMISC_C.name, AIOMISC_C_PY.name):
        require_aiomisc_c(subject, "thread_pool")
        from aiomisc_c import thread_pool, utils

        facts.update(aiomisc_c_facts("thread_pool"))
        loop, call, pool, make_memory_loop, make_memory_wrap = aiomisc_like(
            thread_pool.threaded, utils.new_event_loop,
            thread_pool.ThreadPoolExecutor, policy,
        )
        start = call

    elif subject == AIOMISC.name:
        aiomisc, facts["version"] = import_peer("aiomisc")
        loop, call, pool, make_memory_loop, make_memory_wrap = aiomisc_like(
            aiomisc.threaded, aiomisc.new_event_loop,
            aiomisc.ThreadPoolExecutor, policy,
        )
        start = call

    elif subject == STDLIB.name:
        import concurrent.futures

        asyncio.set_event_loop_policy(policy)
        loop = policy.new_event_loop()
        asyncio.set_event_loop(loop)
        to_thread = asyncio.to_thread
        call = functools.partial(to_thread, noop)
        create_task = loop.create_task

        def start() -> asyncio.Task:
            # a coroutine does nothing until it is a task: "submitted" means
            # a task here
            return create_task(to_thread(noop))

        pool = concurrent.futures.ThreadPoolExecutor(POOL_SIZE)

        def make_memory_loop() -> asyncio.AbstractEventLoop:
            memory_loop = policy.new_event_loop()
            memory_loop.set_default_executor(
                concurrent.futures.ThreadPoolExecutor(1),
            )
            asyncio.set_event_loop(memory_loop)
            return memory_loop

        def make_memory_wrap(memory_loop: Any) -> Callable[..., Call]:
            def wrap(fn: Callable[[], Any]) -> Call:
                return lambda: memory_loop.create_task(to_thread(fn))
            return wrap

    else:
        raise ValueError(f"unknown subject {subject!r}")

    executor_call = functools.partial(loop.run_in_executor, pool, noop)
    wake_body, close_wake = wake_round_trips()
    resolved = loop_resolved(loop)
    bodies = {
        "threaded_gather": gather_body(call),
        "threaded_in_turn": in_turn_body(start),
        "threaded_one_by_one": one_by_one_body(call),
        "executor_gather": gather_body(executor_call),
        "floor_gather": gather_body(resolved),
        "floor_in_turn": in_turn_body(resolved),
        "floor_one_by_one": one_by_one_body(resolved),
        "floor_wake_round_trip": wake_body,
        "pending_memory": memory_body(
            make_memory_loop, make_memory_wrap, loop,
        ),
    }

    def close() -> None:
        pool.shutdown(wait=True)
        close_wake()

    return Fixture(loop=loop, bodies=bodies, close=close, facts=facts)


if __name__ == "__main__":
    from .run import main
    main(["--only", "thread_pool"])
