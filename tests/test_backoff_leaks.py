"""Leak check of the C twin of asyncbackoff / asyncretry / timeout.

Each scenario runs in a fresh child process; ``leakcheck`` judges the growth
of the reference counts of the objects every call touches (function,
Backoff, statistic, argument and result sentinels, exception class; every
reference on a debug interpreter), of the tracked objects and of the traced
memory by its one rule.  The child also checks that no ``Call`` object
outlives its call.
"""
import textwrap

import pytest

import aiomisc_c.backoff  # noqa: F401  (registers the twins)
import aiomisc_c.timeout  # noqa: F401
from aiomisc_c import _compat
from helpers.leakcheck import assert_no_leaks, run_leak_script


pytestmark = pytest.mark.skipif(
    not _compat.c_available("backoff"), reason="C extension not built",
)

CHILD = textwrap.dedent('''
    import asyncio, gc, sys
    from aiomisc_c import _compat
    from helpers.leakcheck import measure, print_report
    from aiomisc_c.backoff import asyncbackoff, asyncretry
    from aiomisc_c.timeout import timeout
    assert _compat.implementation["backoff"] == "c"
    assert _compat.implementation["timeout"] == "c"

    SCENARIO, CALLS, LOOP = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    if LOOP == "uvloop":
        import uvloop
        loop = uvloop.new_event_loop()
    else:
        loop = asyncio.new_event_loop()

    class Boom(Exception):
        pass

    ARG, RESULT = object(), object()
    state = {"n": 0}

    async def ok(arg, *, key=None):
        return RESULT

    async def flaky(arg, *, key=None):
        state["n"] += 1
        if state["n"] % 2:
            raise Boom(arg)
        return RESULT

    async def always_fails(arg, *, key=None):
        raise Boom(arg)

    async def sleeps(arg, *, key=None):
        await asyncio.sleep(10)

    if SCENARIO == "backoff_ok":
        deco = asyncbackoff(1, 2, 0, Boom)
        func, expect = deco(ok), RESULT
    elif SCENARIO == "backoff_none_2":
        deco = asyncbackoff(None, 2)
        func, expect = deco(ok), RESULT
    elif SCENARIO == "retry_one_failure":
        deco = asyncretry(3, exceptions=(Boom,))
        func, expect = deco(flaky), RESULT
    elif SCENARIO == "retry_pause_timer":
        deco = asyncbackoff(1, 2, 0.000001, Boom)
        func, expect = deco(flaky), RESULT
    elif SCENARIO == "max_tries_exhausted":
        deco = asyncretry(2, exceptions=(Boom,))
        func, expect = deco(always_fails), Boom
    elif SCENARIO == "attempt_timeout_zero":
        deco = asyncbackoff(0, None, 0, max_tries=2)
        func, expect = deco(ok), asyncio.TimeoutError
    elif SCENARIO == "timeout_ok":
        deco = None
        func, expect = timeout(1)(ok), RESULT
    elif SCENARIO == "timeout_expired":
        deco = None
        func, expect = timeout(0.000001)(sleeps), asyncio.TimeoutError
    elif SCENARIO == "cancel_caller":
        deco = asyncbackoff(5, 10, 0, Boom)
        func, expect = deco(sleeps), asyncio.CancelledError
    else:
        raise SystemExit(f"unknown scenario {SCENARIO}")

    async def one():
        if SCENARIO == "cancel_caller":
            task = asyncio.ensure_future(func(ARG, key=ARG))
            await asyncio.sleep(0)
            task.cancel()
            try:
                await task
            except asyncio.CancelledError:
                return
            raise AssertionError("not cancelled")
        try:
            result = await func(ARG, key=ARG)
        except BaseException as exc:
            if isinstance(expect, type) and isinstance(exc, expect):
                return
            raise
        assert result is expect, result

    async def many(n):
        for _ in range(n):
            await one()

    watched = {
        "func": func, "ARG": ARG, "RESULT": RESULT, "Boom": Boom, "ok": ok,
        "flaky": flaky, "always_fails": always_fails, "sleeps": sleeps,
    }
    if deco is not None:
        watched.update(deco=deco, statistic=deco.statistic)

    async def many_then_settle(n):
        await many(n)
        await asyncio.sleep(0.01)

    report = measure(
        lambda calls: loop.run_until_complete(many_then_settle(calls)), CALLS,
        watched=watched,
    )
    calls = [o for o in gc.get_objects() if type(o).__name__ == "Call"]
    assert not calls, calls[:3]
    if deco is not None:
        stat = dict(deco.statistic)
        assert stat["attempts"] == stat["done"], stat
    loop.close()
    print_report(report)
''')

# calls per measured run (there are four runs: a warm-up and three measured)
SCENARIOS = {
    "backoff_ok": 25_000,
    "backoff_none_2": 25_000,
    "retry_one_failure": 25_000,
    "retry_pause_timer": 1_500,
    "max_tries_exhausted": 12_500,
    "attempt_timeout_zero": 12_500,
    "timeout_ok": 25_000,
    "timeout_expired": 500,
    "cancel_caller": 5_000,
}


@pytest.mark.parametrize("loop_kind", ["asyncio", "uvloop"])
@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_no_leak(scenario, loop_kind):
    if loop_kind == "uvloop":
        pytest.importorskip("uvloop")
    report = run_leak_script(
        CHILD, scenario, str(SCENARIOS[scenario]), loop_kind,
        env={"AIOMISC_C_NO_EXTENSIONS": "0"},
    )
    assert_no_leaks(report)
