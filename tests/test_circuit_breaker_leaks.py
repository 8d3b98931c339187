"""Leak check of the C circuit breaker.

A subprocess runs every hot path of ``aiomisc_c._circuit_breaker`` 100,000
times after a warm-up, and reports the change of the reference counts of the
objects those paths touch and of the memory traced by tracemalloc.  Both
must stay flat.
"""
import json
import subprocess
import sys
import textwrap

import pytest

from aiomisc_c import _compat
from childproc import NEUTRAL_CWD, child_env

pytestmark = pytest.mark.c_extension

SCRIPT = textwrap.dedent(r'''
    import asyncio, gc, json, sys, tracemalloc
    from unittest import mock

    from aiomisc_c import _circuit_breaker, _circuit_breaker_base
    from aiomisc_c._circuit_breaker_base import CircuitBroken

    CircuitBreaker = _circuit_breaker.CircuitBreaker
    cutout = _circuit_breaker.cutout
    ROUNDS = int(sys.argv[1])


    class Boom(Exception):
        pass


    class Ignored(Exception):
        pass


    def ok(value=None, *, key=None):
        return value


    def fail():
        raise Boom("fail")


    def ignored():
        raise Ignored("ignored")


    async def aok(value=None):
        return value


    async def afail():
        raise Boom("afail")


    class Clocked(CircuitBreaker):
        now = 0.0

        def _get_time(self):
            return self.now


    def tripped():
        breaker = Clocked(0.5, 10)
        for second in range(10):
            breaker.now = float(second)
            breaker.call(ok)
        for second in range(10, 20):
            breaker.now = float(second)
            try:
                breaker.call(fail)
            except Boom:
                pass
        return breaker


    async def main():
        loop = asyncio.get_running_loop()
        # real clock, fast path: only successes (never breaks)
        passing = CircuitBreaker(0.5, 10)
        # failures that are never counted: the inspector says no
        inspected = CircuitBreaker(
            0.5, 10, exception_inspector=lambda exc: False)
        # raising inspector (logged) and unmonitored exceptions
        def bad_inspector(exc):
            raise LookupError("inspector")
        # (a fixed clock: one bucket, never enough statistics to break)
        noisy = Clocked(0.5, 10, exceptions=(Boom,),
                        exception_inspector=bad_inspector)
        broken = tripped()
        recovering = tripped()
        recovering.now = 34.0
        sync_cut = cutout(0.5, 10, Boom)(ok)
        async_cut = cutout(0.5, 10, Boom)(aok)
        future_value = loop.create_future()
        future_value.set_result(1)

        import logging
        logging.getLogger("aiomisc_c.circuit_breaker").disabled = True

        async def one_round(i):
            passing.call(ok)
            passing.call(ok, i, key=i)
            passing.call(func=ok)
            with passing.context():
                pass
            try:
                inspected.call(fail)
            except Boom:
                pass
            try:
                noisy.call(fail)
            except Boom:
                pass
            try:
                noisy.call(ignored)
            except Ignored:
                pass
            try:
                broken.call(ok)
            except CircuitBroken:
                pass
            try:
                with broken.context():
                    pass
            except CircuitBroken:
                pass
            try:
                recovering.call(ok)
            except CircuitBroken:
                pass
            sync_cut(i)
            await passing.call_async(aok, i)
            await passing.call_async(ok, i)
            await passing.call_async(lambda: future_value)
            try:
                await inspected.call_async(afail)
            except Boom:
                pass
            try:
                await broken.call_async(aok)
            except CircuitBroken:
                pass
            await async_cut(i)
            async_cut(i)                     # the C wrapper's awaitable, dropped
            # abandoned: created, never awaited; started then closed
            passing.call_async(aok)
            pending = passing.call_async(asyncio.sleep, 0)
            pending.send(None)
            pending.close()
            passing.counter()
            passing.bucket()
            passing.recovery_ratio
            passing.get_state_delay()
            repr(passing)

        async def run(rounds):
            for i in range(rounds):
                await one_round(i)

        watched = {
            "CircuitBreaker": CircuitBreaker,
            "Clocked": Clocked,
            "CircuitBroken": CircuitBroken,
            "Boom": Boom,
            "Ignored": Ignored,
            "ok": ok,
            "aok": aok,
            "fail": fail,
            "passing": passing,
            "broken": broken,
            "context_type": type(passing.context()),
            "call_async_type": type(passing.call_async(aok)),
            "async_cut": async_cut,
        }
        with mock.patch.object(_circuit_breaker_base, "random", lambda: 0.0):
            await run(ROUNDS // 10)          # warm-up
            gc.collect()
            before_refs = {k: sys.getrefcount(v) for k, v in watched.items()}
            tracemalloc.start()
            await run(10)
            gc.collect()
            before_mem = tracemalloc.get_traced_memory()[0]
            await run(ROUNDS)
            gc.collect()
            after_mem = tracemalloc.get_traced_memory()[0]
            tracemalloc.stop()
            after_refs = {k: sys.getrefcount(v) for k, v in watched.items()}
        return {
            "refs": {k: after_refs[k] - before_refs[k] for k in watched},
            "memory": after_mem - before_mem,
            "counts": {
                "passing": passing._counters.call_count,
                "broken": broken._counters.call_broken,
            },
        }

    print(json.dumps(asyncio.run(main())))
''')


@pytest.mark.skipif(
    not _compat.c_available("circuit_breaker"),
    reason="the C circuit breaker is not built",
)
def test_c_breaker_does_not_leak(tmp_path):
    rounds = 100_000
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(rounds)],
        capture_output=True, text=True, timeout=900,
        env=child_env(), cwd=NEUTRAL_CWD,
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["refs"] == {k: 0 for k in report["refs"]}, report
    # flat: a few KiB of noise at most (interned strings, freelists, ...)
    assert report["memory"] < 64 * 1024, report
    assert report["counts"]["passing"] > rounds
