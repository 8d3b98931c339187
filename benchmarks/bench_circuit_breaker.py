"""Circuit breaker: ``CircuitBreaker.call``, ``call_async`` and ``cutout``.

Every case guards a no-op function (or coroutine function) that never
fails, one call at a time, inside the running loop (aiomisc's breaker reads
the loop's clock). The floors are the same calls without a breaker. The
alternatives, configured with their defaults: pybreaker (sync only: its
``call_async`` needs tornado), aiobreaker, and purgatory (an in-memory unit
of work; its breaker is an (async) context manager and a decorator).

Run alone: ``python -m benchmarks --only circuit_breaker``.
"""
import asyncio
from typing import Any, Awaitable, Callable, Dict

from ._harness import (
    AIOMISC, AIOMISC_C, AIOMISC_C_PY, Case, Fixture, Subject, aiomisc_c_facts,
    import_peer, install_loop, require_aiomisc_c,
)

TITLE = "Circuit breaker"

PYBREAKER = Subject(
    "pybreaker", "pybreaker", "pybreaker",
    note="pybreaker.CircuitBreaker(): breaker.call(noop), @breaker",
)
AIOBREAKER = Subject(
    "aiobreaker", "aiobreaker", "aiobreaker",
    note="aiobreaker.CircuitBreaker(): call / call_async, @breaker",
)
PURGATORY = Subject(
    "purgatory", "purgatory", "purgatory",
    note="purgatory {Sync,Async}CircuitBreakerFactory() in memory: "
         "(async) with breaker, @factory('name')",
)
SUBJECTS = (AIOMISC_C, AIOMISC_C_PY, AIOMISC, PYBREAKER, AIOBREAKER, PURGATORY)
BASELINE = AIOMISC.name
REFERENCES = (PYBREAKER.name, AIOBREAKER.name, PURGATORY.name)
LOOPS = ("asyncio", "uvloop")

CASES = (
    Case("call", "CircuitBreaker.call(noop), no failure",
         iterations=50_000, floor="plain_call"),
    Case("cutout_sync", "@cutout sync function call, no failure",
         iterations=50_000, floor="plain_call"),
    Case("call_async", "await CircuitBreaker.call_async(noop), no failure",
         iterations=30_000, floor="plain_await"),
    Case("cutout_async", "await @cutout coroutine function, no failure",
         iterations=30_000, floor="plain_await"),
    Case("plain_call", "floor: noop()", iterations=200_000, kind="floor"),
    Case("plain_await", "floor: await noop()", iterations=100_000,
         kind="floor"),
)


def noop() -> int:
    return 1


async def anoop() -> int:
    return 1


# Sync cases run inside a coroutine too: aiomisc's breaker needs the running
# loop for its clock, and every subject is timed the same way.

def sync_loop(call: Callable[[], Any]) -> Callable[[int], Awaitable[None]]:
    async def body(iterations: int) -> None:
        for _ in range(iterations):
            call()

    return body


def sync_loop_with(breaker: Any) -> Callable[[int], Awaitable[None]]:
    async def body(iterations: int) -> None:
        for _ in range(iterations):
            with breaker:
                noop()

    return body


def async_loop(call: Callable[[], Awaitable[Any]]) -> Callable[[int], Awaitable[None]]:
    async def body(iterations: int) -> None:
        for _ in range(iterations):
            await call()

    return body


def breaker_call_loop(call: Callable[..., Any]) -> Callable[[int], Awaitable[None]]:
    """``call(noop)`` per iteration: ``call`` is a breaker's ``call``."""
    async def body(iterations: int) -> None:
        for _ in range(iterations):
            call(noop)

    return body


def breaker_call_async_loop(
    call_async: Callable[..., Awaitable[Any]],
) -> Callable[[int], Awaitable[None]]:
    """``await call_async(anoop)`` per iteration."""
    async def body(iterations: int) -> None:
        for _ in range(iterations):
            await call_async(anoop)

    return body


def aiomisc_like(module: Any) -> Dict[str, Any]:
    breaker = module.CircuitBreaker(0.5, 10)
    call, call_async = breaker.call, breaker.call_async
    sync_guarded = module.cutout(0.5, 10, Exception)(noop)
    async_guarded = module.cutout(0.5, 10, Exception)(anoop)

    return {
        "call": breaker_call_loop(call),
        "call_async": breaker_call_async_loop(call_async),
        "cutout_sync": sync_loop(sync_guarded),
        "cutout_async": async_loop(async_guarded),
    }



def setup(subject: str, loop_kind: str) -> Fixture:
    facts: Dict[str, Any] = {"loop_kind": loop_kind}
    loop = install_loop(loop_kind)
    bodies: Dict[str, Any] = {
        "plain_call": sync_loop(noop),
        "plain_await": async_loop(anoop),
    }

    if subject in (AIOMISC_C.name, AIOMISC_C_PY.name):
        require_aiomisc_c(subject, "circuit_breaker")
        from aiomisc_c import circuit_breaker

        facts.update(aiomisc_c_facts("circuit_breaker"))
        bodies.update(aiomisc_like(circuit_breaker))

    elif subject == AIOMISC.name:
        aiomisc_breaker, facts["version"] = import_peer("aiomisc.circuit_breaker")
        bodies.update(aiomisc_like(aiomisc_breaker))

    elif subject == PYBREAKER.name:
        pybreaker, facts["version"] = import_peer("pybreaker")
        breaker = pybreaker.CircuitBreaker()
        call = breaker.call
        guarded = pybreaker.CircuitBreaker()(noop)

        bodies.update({
            "call": breaker_call_loop(call), "cutout_sync": sync_loop(guarded),
        })

    elif subject == AIOBREAKER.name:
        aiobreaker, facts["version"] = import_peer("aiobreaker")
        breaker = aiobreaker.CircuitBreaker()
        call, call_async = breaker.call, breaker.call_async
        sync_guarded = aiobreaker.CircuitBreaker()(noop)
        async_guarded = aiobreaker.CircuitBreaker()(anoop)

        bodies.update({
            "call": breaker_call_loop(call),
            "call_async": breaker_call_async_loop(call_async),
            "cutout_sync": sync_loop(sync_guarded),
            "cutout_async": async_loop(async_guarded),
        })

    elif subject == PURGATORY.name:
        purgatory, facts["version"] = import_peer("purgatory")
        sync_factory = purgatory.SyncCircuitBreakerFactory()
        async_factory = purgatory.AsyncCircuitBreakerFactory()
        sync_breaker = sync_factory.get_breaker("bench")
        async_breaker = loop.run_until_complete(
            async_factory.get_breaker("bench"),
        )
        sync_guarded = sync_factory("bench-decorated")(noop)
        async_guarded = async_factory("bench-decorated")(anoop)

        async def call_async_body(iterations: int) -> None:
            for _ in range(iterations):
                async with async_breaker:
                    await anoop()

        bodies.update({
            "call": sync_loop_with(sync_breaker),
            "call_async": call_async_body,
            "cutout_sync": sync_loop(sync_guarded),
            "cutout_async": async_loop(async_guarded),
        })

    else:
        raise ValueError(f"unknown subject {subject!r}")

    return Fixture(loop=loop, bodies=bodies, facts=facts)


if __name__ == "__main__":
    from .run import main
    main(["--only", "circuit_breaker"])
