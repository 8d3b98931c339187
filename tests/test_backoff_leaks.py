"""Leak check of the C twin of asyncbackoff / asyncretry / timeout.

Each scenario runs in a fresh subprocess: a warm-up, then many calls, with
the reference counts of the objects every call touches (function, Backoff,
statistic, argument and result sentinels, exception class) and the
tracemalloc total compared before and after.  A leaked reference per call
shows up as +N in a refcount, a leaked Call object as megabytes.
"""
import subprocess
import sys
import textwrap

import pytest

import aiomisc_c.backoff  # noqa: F401  (registers the twins)
import aiomisc_c.timeout  # noqa: F401
from aiomisc_c import _compat
from childproc import NEUTRAL_CWD, child_env


pytestmark = pytest.mark.skipif(
    not _compat.c_available("backoff"), reason="C extension not built",
)

CHILD = textwrap.dedent('''
    import asyncio, gc, sys, tracemalloc
    from aiomisc_c import _compat
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

    def snapshot():
        gc.collect()
        tracked = [func, ARG, RESULT, Boom, ok, flaky, always_fails, sleeps]
        if deco is not None:
            tracked += [deco, deco.statistic]
        return [sys.getrefcount(o) for o in tracked]

    loop.run_until_complete(many(2000))          # warm-up: caches, heaps
    tracemalloc.start()
    before_refs = snapshot()
    before_mem = tracemalloc.get_traced_memory()[0]
    loop.run_until_complete(many(CALLS))
    loop.run_until_complete(asyncio.sleep(0.01))
    after_refs = snapshot()
    after_mem = tracemalloc.get_traced_memory()[0]
    calls = [o for o in gc.get_objects() if type(o).__name__ == "Call"]
    if deco is not None:
        stat = dict(deco.statistic)
        assert stat["attempts"] == stat["done"], stat
    print("refs", before_refs, after_refs)
    print("mem", before_mem, after_mem, after_mem - before_mem)
    print("calls alive", len(calls))
    assert before_refs == after_refs, (before_refs, after_refs)
    assert not calls, calls[:3]
    assert after_mem - before_mem < 256 * 1024, after_mem - before_mem
    loop.close()
''')

SCENARIOS = {
    "backoff_ok": 100_000,
    "backoff_none_2": 100_000,
    "retry_one_failure": 100_000,
    "retry_pause_timer": 5_000,
    "max_tries_exhausted": 50_000,
    "attempt_timeout_zero": 50_000,
    "timeout_ok": 100_000,
    "timeout_expired": 2_000,
    "cancel_caller": 20_000,
}


@pytest.mark.parametrize("loop_kind", ["asyncio", "uvloop"])
@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_no_leak(scenario, loop_kind):
    if loop_kind == "uvloop":
        pytest.importorskip("uvloop")
    env = child_env(AIOMISC_C_NO_EXTENSIONS="0")
    proc = subprocess.run(
        [sys.executable, "-c", CHILD, scenario, str(SCENARIOS[scenario]),
         loop_kind],
        env=env, capture_output=True, text=True, timeout=600, cwd=NEUTRAL_CWD,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
