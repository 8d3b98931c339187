"""Leak check of the C circuit breaker.

A child process runs every hot path of ``aiomisc_c._circuit_breaker`` many
times and ``leakcheck`` judges the growth of the reference counts of the
objects those paths touch (every reference, on a debug interpreter), of the
tracked objects and of the traced memory by its one rule.
"""
import textwrap

import pytest

from aiomisc_c import _compat
from helpers.leakcheck import assert_no_leaks, run_leak_script

pytestmark = pytest.mark.c_extension

ROUNDS = 20_000

CHILD = textwrap.dedent(r'''
    import asyncio, sys
    from unittest import mock

    from helpers.leakcheck import measure, print_report

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
        return run, watched, passing, broken


    loop = asyncio.new_event_loop()
    run, watched, passing, broken = loop.run_until_complete(main())
    with mock.patch.object(_circuit_breaker_base, "random", lambda: 0.0):
        report = measure(
            lambda rounds: loop.run_until_complete(run(rounds)), ROUNDS,
            watched=watched,
        )
    loop.close()
    print_report(report, counts={
        "passing": passing._counters.call_count,
        "broken": broken._counters.call_broken,
    })
''')


@pytest.mark.skipif(
    not _compat.c_available("circuit_breaker"),
    reason="the C circuit breaker is not built",
)
def test_c_breaker_does_not_leak():
    rounds = ROUNDS
    report = run_leak_script(CHILD, str(rounds), timeout=900)
    assert_no_leaks(report)
    # the calls did run: the passing breaker counted every one of them
    assert report["counts"]["passing"] > 4 * rounds
