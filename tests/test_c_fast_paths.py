"""The C fast paths that read CPython internals (the breaker's caches keyed
on a type's ``tp_version_tag`` and on ``time.__dict__``'s version, the
read of asyncio's running-loop holder before 3.12, and the thread pool's
search of uvloop's fields for its default executor and its idle spin) give
the same results as their fallbacks: each test runs one scenario with the fast paths on, with
them off (the modules' private ``_set_fast_paths(False)``), and on the
Python twin, and compares what was observed."""
import asyncio
import concurrent.futures
import contextlib
import random
import threading
import time
import uuid

import pytest

from aiomisc_c import _compat

pytestmark = pytest.mark.c_extension

if not _compat.c_available():  # pragma: no cover - CI requires the build
    pytest.skip(
        f"C extensions unavailable: {_compat._C_MISSING}",
        allow_module_level=True,
    )

from aiomisc_c import _backoff, _backoff_py  # noqa: E402
from aiomisc_c import _circuit_breaker_base  # noqa: E402
from aiomisc_c import _circuit_breaker, _circuit_breaker_py  # noqa: E402
from aiomisc_c import _thread_pool, thread_pool  # noqa: E402


try:
    import uvloop
except ImportError:  # pragma: no cover - uvloop is part of the test extra
    uvloop = None


def new_loop(kind="asyncio"):
    """A loop of `kind`, whatever policy earlier tests left installed."""
    if kind == "uvloop":
        if uvloop is None:  # pragma: no cover
            pytest.skip("uvloop is not installed")
        return uvloop.new_event_loop()
    return asyncio.DefaultEventLoopPolicy().new_event_loop()


def run(coro, kind="asyncio"):
    loop = new_loop(kind)
    try:
        return loop.run_until_complete(coro)
    finally:
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()


@contextlib.contextmanager
def fast_paths(module, enabled):
    previous = module._set_fast_paths(enabled)
    try:
        yield
    finally:
        assert module._set_fast_paths(previous) is enabled


@pytest.mark.parametrize("module", [_circuit_breaker, _backoff, _thread_pool])
def test_switch_reports_the_previous_setting(module):
    assert module._set_fast_paths(False) is True
    try:
        assert module._set_fast_paths(False) is False
    finally:
        assert module._set_fast_paths(True) is False
    assert module._set_fast_paths(True) is True


class FakeClock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


def breaker_trace(module):
    """Drive a breaker through passing, broken and recovering with a fake
    clock; change time.monotonic and a class constant in between (the two
    things the caches must notice) and record everything observable."""
    trace = []
    clock, other_clock = FakeClock(), FakeClock()
    breaker_type = module.CircuitBreaker
    saved_threshold = breaker_type.__dict__.get("PASSING_BROKEN_THRESHOLD")

    def fail():
        raise ValueError("boom")

    def observe(label, breaker):
        trace.append((
            label, int(breaker.state), breaker.bucket(),
            sorted(breaker.counter().items()), breaker.get_state_delay(),
            breaker.recovery_ratio,
        ))

    def call(breaker, func):
        try:
            trace.append(("ok", breaker.call(func)))
        except Exception as error:
            trace.append(("error", type(error).__name__))

    async def scenario():
        breaker = breaker_type(error_ratio=0.5, response_time=10,
                               recovery_time=5, broken_time=3)
        for step in range(64):
            call(breaker, fail if step < 48 or step % 4 else (lambda: step))
            clock.now += 0.25
            observe(f"step {step}", breaker)
        # another clock function: time.__dict__ changes
        other_clock.now = clock.now + 4
        time.monotonic = other_clock
        for step in range(6):
            call(breaker, lambda: "recovered")
            other_clock.now += 1.5
            observe(f"after clock swap {step}", breaker)
        # a class constant changes while breakers of the type exist
        breaker_type.PASSING_BROKEN_THRESHOLD = 2
        try:
            fresh = breaker_type(error_ratio=0.2, response_time=4)
            for step in range(8):
                call(fresh, fail if step % 2 else (lambda: step))
                other_clock.now += 0.5
                observe(f"patched class {step}", fresh)
        finally:
            if saved_threshold is None:
                del breaker_type.PASSING_BROKEN_THRESHOLD
            else:
                breaker_type.PASSING_BROKEN_THRESHOLD = saved_threshold
        observe("restored class", breaker)

    original, original_random = time.monotonic, _circuit_breaker_base.random
    try:
        time.monotonic = clock
        # the recovering state lets calls through at random: same draws
        _circuit_breaker_base.random = random.Random(15).random
        run(scenario())     # asyncio's loop: its clock is time.monotonic
    finally:
        time.monotonic = original
        _circuit_breaker_base.random = original_random
    return trace


def test_breaker_caches_and_fallback_agree():
    with fast_paths(_circuit_breaker, True):
        fast = breaker_trace(_circuit_breaker)
    with fast_paths(_circuit_breaker, False):
        slow = breaker_trace(_circuit_breaker)
    assert fast == slow
    assert fast == breaker_trace(_circuit_breaker_py)
    # the scenario went through every state
    states = {entry[1] for entry in fast if entry[0].startswith("step")}
    assert states == {0, 1, 2}


def backoff_trace(module, loop_kind):
    """Timed backoff calls (they need the running loop for their timers) on
    two loops one after the other: results, errors, attempts."""
    trace = []

    async def scenario(label):
        loop = asyncio.get_running_loop()
        attempts = []

        @module.asyncbackoff(5, 10, 0, ValueError,
                             max_tries=4)
        async def flaky(n):
            attempts.append(n)
            if len(attempts) < 3:
                raise ValueError(len(attempts))
            return n * 2

        @module.asyncbackoff(attempt_timeout=0.01, deadline=0.05, pause=0)
        async def slow():
            await asyncio.sleep(10)

        @module.asyncretry(max_tries=2)
        async def broken():
            raise KeyError("always")

        trace.append((label, "flaky", await flaky(21), list(attempts)))
        for func in (slow, broken):
            try:
                await func()
            except Exception as error:
                trace.append((label, func.__name__, type(error).__name__))
        if module is _backoff:
            assert _backoff._pending_timers(loop) == 0
        return loop

    first = run(scenario("first loop"), loop_kind)
    second = run(scenario("second loop"), loop_kind)
    assert first is not second
    return trace


@pytest.mark.parametrize("loop_kind", ["asyncio", "uvloop"])
def test_running_loop_shortcut_and_fallback_agree(loop_kind):
    with fast_paths(_backoff, True):
        fast = backoff_trace(_backoff, loop_kind)
    with fast_paths(_backoff, False):
        slow = backoff_trace(_backoff, loop_kind)
    assert fast == slow == backoff_trace(_backoff_py, loop_kind)
    assert ("first loop", "flaky", 42, [21, 21, 21]) in fast
    assert ("second loop", "slow", "TimeoutError") in fast


def threaded_trace(loop_kind):
    """threaded calls and pool submits on two loops in turn and outside any
    loop: each future must belong to the loop running at the call."""
    from aiomisc_c import thread_pool, utils

    trace = []
    policy = (uvloop.EventLoopPolicy() if loop_kind == "uvloop"
              else asyncio.DefaultEventLoopPolicy())

    def work(label):
        return label, threading.current_thread() is not threading.main_thread()

    call = thread_pool.threaded(work)
    outside = call("outside")   # no running loop: a coroutine, run later
    trace.append(("outside", asyncio.iscoroutine(outside)))
    for label in ("first loop", "second loop"):
        loop = utils.new_event_loop(policy=policy)
        pool = thread_pool.ThreadPoolExecutor(2)

        async def main(label=label, pool=pool):
            running = asyncio.get_running_loop()
            futures = [call(label), pool.submit(work, label)]
            for future in futures:
                trace.append((label, future.get_loop() is running))
                trace.append((label, await future))
            if label == "second loop":
                trace.append(("outside", await outside))

        try:
            loop.run_until_complete(main())
        finally:
            pool.shutdown(wait=True)
            loop.close()
    return trace


@pytest.mark.parametrize("loop_kind", ["asyncio", "uvloop"])
def test_thread_pool_running_loop_shortcut_and_fallback_agree(loop_kind):
    with fast_paths(_thread_pool, True):
        fast = threaded_trace(loop_kind)
    with fast_paths(_thread_pool, False):
        slow = threaded_trace(loop_kind)
    with _compat.use_implementation("python"):
        python = threaded_trace(loop_kind)
    assert fast == slow == python
    assert ("second loop", True) in fast
    assert ("second loop", ("second loop", True)) in fast
    assert ("outside", ("outside", True)) in fast


def thread_pool_trace(loop_kind):
    """`threaded` calls (plain, with keywords, bound to an instance) while
    the loop's default executor switches between two pools of ours and a
    foreign one: results, which executor ran each call, and how many calls
    went through each pool's submit()."""
    trace = []
    names = {f"pool-{uuid.uuid4().hex[:8]}": "a", f"pool-{uuid.uuid4().hex[:8]}": "b"}

    def where():
        thread = threading.current_thread().name
        for name, label in names.items():
            if thread.endswith(f" from pool {name}"):
                return label
        return "foreign" if thread.startswith("foreign") else thread

    class CountingPool(thread_pool.ThreadPoolExecutor):
        def __init__(self, *args, **kwargs):
            self.submits = 0
            super().__init__(*args, **kwargs)

        def submit(self, *args, **kwargs):
            self.submits += 1
            return super().submit(*args, **kwargs)

    @thread_pool.threaded
    def multiply(a, b=1):
        return a * b, where()

    class Owner:
        factor = 3

        @thread_pool.threaded
        def scale(self, value):
            return value * self.factor, where()

    pool_a, pool_b = (CountingPool(2, statistic_name=name) for name in names)
    foreign = concurrent.futures.ThreadPoolExecutor(
        2, thread_name_prefix="foreign",
    )
    for pool in (pool_a, pool_b):
        if hasattr(pool._core, "_spin_us"):     # the C core's idle spin
            pool._core._spin_us = 200

    async def scenario():
        loop = asyncio.get_running_loop()
        for label, executor in (("a", pool_a), ("b", pool_b),
                                ("foreign", foreign), ("a again", pool_a)):
            loop.set_default_executor(executor)
            for i in range(5):
                trace.append((label, await multiply(i)))
                trace.append((label, await multiply(i, b=7)))
                trace.append((label, await Owner().scale(i)))
            trace.append((label, sorted(await asyncio.gather(
                *(multiply(i, 2) for i in range(20))
            ))))

    try:
        run(scenario(), loop_kind)
    finally:
        for executor in (pool_a, pool_b, foreign):
            executor.shutdown(wait=True)
    return trace, (pool_a.submits, pool_b.submits)


@pytest.mark.parametrize("loop_kind", ["asyncio", "uvloop"])
def test_thread_pool_default_executor_search_and_fallback_agree(loop_kind):
    with fast_paths(_thread_pool, True):
        fast, fast_submits = thread_pool_trace(loop_kind)
    with fast_paths(_thread_pool, False):
        slow, slow_submits = thread_pool_trace(loop_kind)
    with _compat.use_implementation("python"):
        twin, _ = thread_pool_trace(loop_kind)
    assert fast == slow == twin
    # every switch of the default executor took effect at once, and every
    # result is right
    assert {(label, result[1]) for label, result in fast if
            isinstance(result, tuple)} == {
        ("a", "a"), ("b", "b"), ("foreign", "foreign"), ("a again", "a"),
    }
    assert ("b", sorted((i * 2, "b") for i in range(20))) in fast
    assert ("a", (12, "a")) in fast and ("foreign", (28, "foreign")) in fast
    # the C core is reached directly on asyncio's loop (its default
    # executor is an attribute) and, with the fast path, on uvloop's; the
    # fallback hands uvloop's calls to the pool's submit(), as the twin does
    assert fast_submits == (0, 0)
    if loop_kind == "uvloop":
        assert slow_submits == (70, 35)     # 15 + 20 calls per phase
    else:
        assert slow_submits == (0, 0)
