"""Retry and timeouts: ``asyncbackoff``, ``asyncretry``, ``timeout``.

Every case awaits a decorated no-op coroutine function in a loop, one call at
a time: the cost of the decorator when nothing (or one thing) fails. The
alternatives are configured as close as they get: tenacity, backoff and
stamina have no per-attempt timeout, so for ``asyncbackoff(1, 2)`` they get
the 2 s overall limit only; the stdlib has no retry, so it appears in the
``timeout(1)`` case only (``async with asyncio.timeout(1)`` and
``asyncio.wait_for(..., 1)``).

Run alone: ``python -m benchmarks --only backoff``.
"""
import asyncio
from typing import Any, Awaitable, Callable, Dict

from ._harness import (
    AIOMISC, AIOMISC_C, AIOMISC_C_PY, Case, Fixture, Subject, Unavailable,
    aiomisc_c_facts, import_peer, install_loop, require_aiomisc_c,
)

TITLE = "Retry and timeout"

TENACITY = Subject(
    "tenacity", "tenacity", "tenacity",
    note="@tenacity.retry(stop=stop_after_attempt(3) | stop_after_delay(2), "
         "reraise=True); no per-attempt timeout",
)
BACKOFF = Subject(
    "backoff", "backoff (PyPI)", "backoff",
    note="@backoff.on_exception(backoff.constant, Exception, interval=0, "
         "jitter=None, max_tries=3 | max_time=2)",
)
STAMINA = Subject(
    "stamina", "stamina", "stamina",
    note="@stamina.retry(on=Exception, attempts=3 | timeout=2, wait_initial=0, "
         "wait_max=0, wait_jitter=0)",
)
STDLIB = Subject(
    "stdlib", "stdlib asyncio.timeout", "timeout()",
    note="async with asyncio.timeout(1): await noop()",
)
STDLIB_WAIT_FOR = Subject(
    "stdlib_wait_for", "stdlib asyncio.wait_for", "wait_for()",
    note="await asyncio.wait_for(noop(), 1)",
)
SUBJECTS = (
    AIOMISC_C, AIOMISC_C_PY, AIOMISC, TENACITY, BACKOFF, STAMINA, STDLIB,
    STDLIB_WAIT_FOR,
)
BASELINE = AIOMISC.name
REFERENCES = (
    TENACITY.name, BACKOFF.name, STAMINA.name, STDLIB.name,
    STDLIB_WAIT_FOR.name,
)
LOOPS = ("asyncio", "uvloop")

CASES = (
    Case("backoff_1_2", "asyncbackoff(1, 2) call, no failure",
         iterations=5_000, floor="plain_await"),
    Case("backoff_none_2", "asyncbackoff(None, 2) call, no failure",
         iterations=5_000, floor="plain_await"),
    Case("retry_3", "asyncretry(3) call, no failure",
         iterations=20_000, floor="plain_await"),
    Case("retry_3_one_failure", "asyncretry(3) call, one failure then success",
         iterations=5_000, floor="plain_await"),
    Case("timeout_1", "timeout(1) call", iterations=10_000,
         floor="plain_await"),
    Case("plain_await", "floor: await noop()", iterations=50_000,
         kind="floor"),
)


async def noop() -> int:
    return 1


def make_flaky() -> Callable[[], Awaitable[int]]:
    """A coroutine function failing every other call: one failure, then
    success."""
    calls = 0

    async def flaky() -> int:
        nonlocal calls
        calls += 1
        if calls % 2:
            raise ValueError("flaky")
        return 1

    return flaky


def one_by_one(call: Callable[[], Awaitable[Any]]) -> Callable[[int], Awaitable[None]]:
    async def body(iterations: int) -> None:
        for _ in range(iterations):
            await call()

    return body


def stdlib_timeout_body() -> Callable[[int], Awaitable[None]]:
    timeout = getattr(asyncio, "timeout", None)
    if timeout is None:
        raise Unavailable("asyncio.timeout needs Python 3.11+")

    async def body(iterations: int) -> None:
        for _ in range(iterations):
            async with timeout(1):
                await noop()

    return body


def wait_for_body() -> Callable[[int], Awaitable[None]]:
    wait_for = asyncio.wait_for

    async def body(iterations: int) -> None:
        for _ in range(iterations):
            await wait_for(noop(), 1)

    return body


def aiomisc_like(backoff_module: Any, timeout_func: Any) -> Dict[str, Any]:
    asyncbackoff = backoff_module.asyncbackoff
    asyncretry = backoff_module.asyncretry
    return {
        "backoff_1_2": one_by_one(asyncbackoff(1, 2)(noop)),
        "backoff_none_2": one_by_one(asyncbackoff(None, 2)(noop)),
        "retry_3": one_by_one(asyncretry(3)(noop)),
        "retry_3_one_failure": one_by_one(asyncretry(3)(make_flaky())),
        "timeout_1": one_by_one(timeout_func(1)(noop)),
    }


def setup(subject: str, loop_kind: str) -> Fixture:
    facts: Dict[str, Any] = {"loop_kind": loop_kind}
    loop = install_loop(loop_kind)
    bodies: Dict[str, Any] = {"plain_await": one_by_one(noop)}

    if subject in (AIOMISC_C.name, AIOMISC_C_PY.name):
        require_aiomisc_c(subject, "backoff")
        import aiomisc_c
        from aiomisc_c import backoff
        timeout = aiomisc_c.timeout   # the decorator, as aiomisc.timeout is

        facts.update(aiomisc_c_facts("backoff"))
        bodies.update(aiomisc_like(backoff, timeout))

    elif subject == AIOMISC.name:
        aiomisc_backoff, facts["version"] = import_peer("aiomisc.backoff")
        aiomisc_timeout, _ = import_peer("aiomisc.timeout")
        bodies.update(aiomisc_like(aiomisc_backoff, aiomisc_timeout.timeout))

    elif subject == TENACITY.name:
        tenacity, facts["version"] = import_peer("tenacity")

        def retry(stop: Any) -> Any:
            return tenacity.retry(stop=stop, reraise=True)

        bodies.update({
            "backoff_1_2": one_by_one(
                retry(tenacity.stop_after_delay(2))(noop)),
            "retry_3": one_by_one(
                retry(tenacity.stop_after_attempt(3))(noop)),
            "retry_3_one_failure": one_by_one(
                retry(tenacity.stop_after_attempt(3))(make_flaky())),
        })

    elif subject == BACKOFF.name:
        backoff, facts["version"] = import_peer("backoff")

        def on_exception(**limits: Any) -> Any:
            return backoff.on_exception(
                backoff.constant, Exception, interval=0, jitter=None, **limits,
            )

        bodies.update({
            "backoff_1_2": one_by_one(on_exception(max_time=2)(noop)),
            "retry_3": one_by_one(on_exception(max_tries=3)(noop)),
            "retry_3_one_failure": one_by_one(
                on_exception(max_tries=3)(make_flaky())),
        })

    elif subject == STAMINA.name:
        stamina, facts["version"] = import_peer("stamina")

        def stamina_retry(**limits: Any) -> Any:
            return stamina.retry(
                on=Exception, wait_initial=0, wait_max=0, wait_jitter=0,
                **limits,
            )

        # no log line per retry
        stamina.instrumentation.set_on_retry_hooks([])
        flaky = make_flaky()
        bodies.update({
            "backoff_1_2": one_by_one(
                stamina_retry(attempts=None, timeout=2)(noop)),
            "retry_3": one_by_one(stamina_retry(attempts=3)(noop)),
            "retry_3_one_failure": one_by_one(
                stamina_retry(attempts=3)(flaky)),
        })

    elif subject == STDLIB.name:
        bodies["timeout_1"] = stdlib_timeout_body()

    elif subject == STDLIB_WAIT_FOR.name:
        bodies["timeout_1"] = wait_for_body()

    else:
        raise ValueError(f"unknown subject {subject!r}")

    return Fixture(loop=loop, bodies=bodies, facts=facts)



if __name__ == "__main__":
    from .run import main
    main(["--only", "backoff"])
