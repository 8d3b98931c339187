"""Statistic counters and the thread pool's statistics."""
import asyncio
import dataclasses
import gc
import operator

import pytest

from aiomisc_c import counters, thread_pool
from aiomisc_c.counters import Statistic, StatisticResult, get_statistics


class StatSimple(Statistic):
    test_prop: int
    foo: int
    bar: float


class StatChild(StatSimple):
    baz: int


class StatGrandChild(StatChild):
    qux: float


class StatStringAnnotations(Statistic):
    real: int
    ignored: "int"  # string annotations are not counters (17.x)


def results_of(*kinds):
    return list(get_statistics(*kinds))


def test_no_instances_no_results():
    gc.collect()
    assert results_of(StatSimple, StatChild) == []


def test_instances_appear_and_disappear():
    gc.collect()
    assert results_of(StatSimple, StatChild) == []
    stat = StatSimple()
    assert results_of(StatSimple, StatChild) != []
    del stat
    gc.collect()
    assert results_of(StatSimple, StatChild) == []


def test_metrics_collected_from_annotations():
    assert StatSimple.__metrics__ == frozenset({"test_prop", "foo", "bar"})
    assert StatChild.__metrics__ == frozenset({"test_prop", "foo", "bar", "baz"})
    assert StatGrandChild.__metrics__ >= frozenset({"baz", "qux"})
    assert StatStringAnnotations.__metrics__ == frozenset({"real"})
    assert StatSimple in counters.CLASS_STORE
    assert StatChild in counters.CLASS_STORE


def test_child_counters_start_at_zero():
    stat = StatChild()
    assert stat.test_prop == 0
    assert stat.foo == 0
    assert stat.bar == 0.0
    assert stat.baz == 0
    assert stat.name is None


def test_updates_are_visible_to_get_statistics():
    stat = StatSimple("updates")

    def value(metric):
        [result] = [
            r for r in get_statistics(StatSimple)
            if r.name == "updates" and r.metric == metric
        ]
        return result.value

    stat.test_prop += 1
    assert value("test_prop") == 1
    assert stat.test_prop == 1
    stat.test_prop -= 3
    assert value("test_prop") == -2
    stat.foo = 42
    assert value("foo") == 42
    stat.bar += 0.5
    assert value("bar") == 0.5
    assert isinstance(value("bar"), float)


def test_statistic_result_shape():
    stat = StatChild("shape")
    results = [r for r in get_statistics(StatSimple) if r.name == "shape"]
    assert {r.metric for r in results} == StatChild.__metrics__
    for result in results:
        assert isinstance(result, StatisticResult)
        kind, name, metric, value = result
        assert kind is StatChild        # the concrete class
        assert metric in StatChild.__metrics__
        assert name == "shape"
        assert value == 0
    # filtering: only subclasses of the given kinds
    assert [r for r in get_statistics(StatGrandChild) if r.name == "shape"] == []
    with pytest.raises(dataclasses.FrozenInstanceError):
        results[0].value = 1
    del stat


def test_bare_statistic_is_unsupported():
    with pytest.raises(TypeError):
        Statistic()


def test_counter_slot_shares_the_buffer():
    stat = StatSimple("slot")
    buffer, index = stat._counter_slot("foo")
    buffer[index] += 5
    assert stat.foo == 5
    fbuffer, findex = stat._counter_slot("bar")
    fbuffer[findex] += 1.5
    assert stat.bar == 1.5
    with pytest.raises(KeyError):
        stat._counter_slot("missing")


# --------------------------------------------------------------------------
# the default pool of new_event_loop reports as "default", as in aiomisc 17


def test_default_pool_statistics(loop, run):
    async def main():
        assert await loop.run_in_executor(None, operator.add, 1, 2) == 3

    run(main())
    names = {
        r.name for r in get_statistics(thread_pool.ThreadPoolStatistic)
    }
    assert "default" in names
    metrics = {
        r.metric for r in get_statistics(thread_pool.ThreadPoolStatistic)
        if r.name == "default"
    }
    assert metrics == {"threads", "done", "error", "success", "submitted", "sum_time"}


def test_thread_pool_statistic_is_a_statistic(implementation):
    assert issubclass(thread_pool.ThreadPoolStatistic, Statistic)
    assert thread_pool.ThreadPoolStatistic.__metrics__ == frozenset(
        {"threads", "done", "error", "success", "submitted", "sum_time"},
    )


def test_pool_counters_under_concurrent_load(loop, pool, pool_name, run):
    """Counters are written by several workers at once; none may be lost."""
    def work(i):
        if i % 7 == 0:
            raise ValueError(i)
        return i

    async def main():
        futures = [pool.submit(work, i) for i in range(20_000)]
        results = await asyncio.gather(*futures, return_exceptions=True)
        return sum(isinstance(r, ValueError) for r in results)

    errors = run(main(), timeout=120)
    values = {
        r.metric: r.value for r in get_statistics(thread_pool.ThreadPoolStatistic)
        if r.name == pool_name
    }
    assert errors == len(range(0, 20_000, 7))
    assert values["submitted"] == 20_000
    assert values["done"] == 20_000
    assert values["error"] == errors
    assert values["success"] == 20_000 - errors
    assert values["sum_time"] > 0
