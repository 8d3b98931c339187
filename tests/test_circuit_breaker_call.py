"""The circuit breaker's synchronous API (``call``, ``context``, class
constants, public names) and its use from several threads; on both twins.
"""

import threading
from unittest import mock

import pytest
from helpers.circuit_breaker_cases import (
    BROKEN, Boom, PASSING, RECOVERING, clocked, fail, ok, trip,
)

from aiomisc_c import circuit_breaker
from aiomisc_c.circuit_breaker import CircuitBroken, CounterKey


def test_context_manager(implementation):
    breaker = clocked()(0.5, 10)
    with breaker.context():
        pass
    with pytest.raises(Boom):
        with breaker.context():
            raise Boom()
    counter = breaker.counter()
    assert counter[CounterKey.OK] == 1
    assert counter[CounterKey.FAIL] == 1
    assert counter[CounterKey.TOTAL] == 2
    trip_breaker = clocked()(0.5, 10)
    trip(trip_breaker)
    body = []
    with pytest.raises(CircuitBroken):
        with trip_breaker.context():
            body.append(1)
    assert body == []


def test_call_arguments(implementation):
    breaker = clocked()(0.5, 10)
    assert breaker.call(dict, a=1) == {"a": 1}
    assert breaker.call(divmod, 7, 2) == (3, 1)
    assert breaker.call(func=ok) == "ok"
    with pytest.raises(TypeError):
        breaker.call()


def test_subclass_constants(implementation):
    class Small(clocked()):
        BUCKET_COUNT = 2
        PASSING_BROKEN_THRESHOLD = 0.5

    breaker = Small(0.5, 10)
    breaker.now = 0.0
    breaker.call(ok)
    breaker.now = 5.0     # ts = 10: bucket 10
    with pytest.raises(Boom):
        breaker.call(fail)
    # two buckets, one bad: 0.5 >= 0.5 -> BROKEN
    breaker.now = 5.0
    with pytest.raises(CircuitBroken):
        breaker.call(ok)
    assert breaker.state is BROKEN


def test_patched_get_time_on_class(implementation):
    cls = circuit_breaker.CircuitBreaker
    breaker = cls(0.5, 10)
    with mock.patch.object(cls, "_get_time", lambda self: 1.25):
        assert breaker.bucket() == 10
        assert breaker.call(ok) == "ok"
        assert breaker.counter()[CounterKey.OK] == 1
    with mock.patch.object(cls, "BUCKET_COUNT", 20):
        with mock.patch.object(cls, "_get_time", lambda self: 1.25):
            assert breaker.bucket() == 20


def test_circuit_broken():
    error = ValueError("x")
    broken = CircuitBroken(error)
    assert broken.last_exception is error
    assert repr(broken) == "<CircuitBroken: ValueError('x')>"
    assert repr(CircuitBroken(None)) == "<CircuitBroken: None>"

    class BadRepr(Exception):
        def __repr__(self):
            raise RuntimeError("no repr")

    assert repr(CircuitBroken(BadRepr())) == (
        "<CircuitBroken: <unrepresentable BadRepr>>"
    )
    nested = CircuitBroken(None)
    nested.last_exception = nested
    assert repr(nested) == "<CircuitBroken: <CircuitBroken: ...>>"


def test_enums():
    assert [int(k) for k in (CounterKey.FAIL, CounterKey.OK, CounterKey.TOTAL)] \
        == [0, 1, 2]
    assert [int(s) for s in (PASSING, BROKEN, RECOVERING)] == [0, 1, 2]


def test_public_names():
    for name in circuit_breaker.__all__:
        assert hasattr(circuit_breaker, name), name


# --- threads ------------------------------------------------------------------------

def test_threads_keep_exact_counts(implementation):
    breaker = clocked()(0.5, 10, statistic_name="threads")
    breaker.now = 1.0        # one bucket: PASSING forever
    threads_count, per_thread = 4, 5_000
    start = threading.Barrier(threads_count)

    def work(index):
        start.wait()
        for i in range(per_thread):
            if (i + index) % 3 == 0:
                try:
                    breaker.call(fail)
                except Boom:
                    pass
            else:
                breaker.call(ok)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(threads_count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    total = threads_count * per_thread
    fails = sum(
        1 for index in range(threads_count) for i in range(per_thread)
        if (i + index) % 3 == 0
    )
    counter = breaker.counter()
    assert counter[CounterKey.TOTAL] == total
    assert counter[CounterKey.FAIL] == fails
    assert counter[CounterKey.OK] == total - fails
    assert breaker._counters.call_count == total
    assert breaker._counters.call_passing == total


def test_no_lock_held_while_user_code_runs(implementation):
    breaker = clocked()(0.5, 10)
    results = []

    def other_thread_call():
        results.append(breaker.call(ok))
        results.append(breaker.recovery_ratio)

    def body():
        thread = threading.Thread(target=other_thread_call)
        thread.start()
        thread.join(30)
        return not thread.is_alive()

    assert breaker.call(body) is True
    assert results == ["ok", 0]

    def inspector(exc):
        return body()

    inspected = clocked()(0.5, 10, exception_inspector=inspector)
    breaker = inspected  # other_thread_call uses the inspected breaker now
    with pytest.raises(Boom):
        inspected.call(fail)
