"""``aiomisc_c.signal``: ``Signal`` and ``receiver``.

Not twinned: the local ``loop`` fixture overrides the conftest one and makes
a fresh loop of each kind (asyncio, uvloop) only.
"""
import asyncio
from unittest import mock

import pytest

from aiomisc_c.signal import ReceiverType, Signal, receiver

@pytest.fixture
def loop(plain_loop):
    return plain_loop


async def noop(*args, **kwargs):
    pass


def test_call_passes_arguments(run):
    signal = Signal()
    calls = []

    async def first(*args, **kwargs):
        calls.append(("first", args, kwargs))

    @receiver(signal)
    async def second(*args, **kwargs):
        calls.append(("second", args, kwargs))

    signal.connect(first)
    run(signal.call("foo", "bar", spam="spam"))
    assert sorted(calls) == [
        ("first", ("foo", "bar"), {"spam": "spam"}),
        ("second", ("foo", "bar"), {"spam": "spam"}),
    ]


def test_call_without_receivers(run):
    run(Signal().call(1, x=2))


def test_no_duplicates(run):
    signal = Signal()
    calls = []

    async def handler():
        calls.append(1)

    signal.connect(handler)
    signal.connect(handler)
    run(signal.call())
    assert calls == [1]


def test_call_is_sequential(run):
    signal = Signal()
    active = []
    overlaps = []

    def make():
        async def handler():
            if active:
                overlaps.append(True)
            active.append(True)
            await asyncio.sleep(0.01)
            active.pop()
        return handler

    for _ in range(3):
        signal.connect(make())
    run(signal.call())
    assert overlaps == []


def test_exception_stops_the_rest(run):
    signal = Signal()
    calls = []

    async def fail():
        calls.append("fail")
        raise ZeroDivisionError

    async def ok():
        calls.append("ok")

    signal.connect(fail)
    signal.connect(ok)
    with pytest.raises(ZeroDivisionError):
        run(signal.call())
    # Whatever the order, nothing ran after the failing receiver.
    assert calls[-1] == "fail"


def test_receiver_may_connect_during_call(run):
    signal = Signal()
    calls = []

    async def late():
        calls.append("late")

    async def first():
        calls.append("first")
        signal.connect(late)

    signal.connect(first)
    run(signal.call())
    assert calls == ["first"]
    run(signal.call())
    assert sorted(calls) == ["first", "first", "late"]


def test_disconnect(run):
    signal = Signal()
    calls = []

    async def handler():
        calls.append(1)

    signal.connect(handler)
    signal.disconnect(handler)
    signal.disconnect(handler)   # unknown receivers are ignored
    signal.disconnect(noop)
    run(signal.call())
    assert calls == []


def test_freeze():
    signal = Signal()
    signal.connect(noop)
    assert not signal.is_frozen
    signal.freeze()
    assert signal.is_frozen

    async def other():
        pass

    with pytest.raises(RuntimeError) as info:
        signal.connect(other)
    assert info.value.args == (
        "Can't connect receiver (%r) to the frozen signal", other,
    )
    with pytest.raises(RuntimeError):
        signal.disconnect(noop)
    with pytest.raises(RuntimeError):
        signal.disconnect(other)


def test_frozen_signal_still_calls(run):
    signal = Signal()
    calls = []

    async def handler(value):
        calls.append(value)

    signal.connect(handler)
    signal.freeze()
    run(signal.call(5))
    assert calls == [5]


def test_copy_is_unfrozen(run):
    signal = Signal()
    calls = []

    async def handler():
        calls.append("handler")

    signal.connect(handler)
    signal.freeze()
    clone = signal.copy()
    assert isinstance(clone, Signal)
    assert not clone.is_frozen
    assert signal.is_frozen

    async def extra():
        calls.append("extra")

    clone.connect(extra)
    run(clone.call())
    assert sorted(calls) == ["extra", "handler"]
    calls.clear()
    run(signal.call())
    assert calls == ["handler"]


def test_copy_of_subclass():
    class MySignal(Signal):
        pass

    assert type(MySignal().copy()) is MySignal


@pytest.mark.parametrize(
    "bad", [None, max, lambda x: x, print, 42, "noop"],
    ids=["None", "builtin", "lambda", "print", "int", "str"],
)
def test_connect_not_coroutine_function(bad):
    signal = Signal()
    with pytest.raises(RuntimeError) as info:
        signal.connect(bad)
    assert info.value.args == ("%r is not a coroutine function", bad)
    with pytest.raises(RuntimeError):
        receiver(signal)(bad)


def test_connect_async_mock(run):
    signal = Signal()
    handler = mock.AsyncMock()
    signal.connect(handler)
    run(signal.call(1, key="v"))
    handler.assert_awaited_once_with(1, key="v")


def test_receiver_returns_function_unchanged():
    signal = Signal()

    async def handler():
        pass

    assert receiver(signal)(handler) is handler


def test_receiver_bad_signal():
    with pytest.raises(TypeError):
        receiver(None)


def test_receiver_type_alias():
    assert ReceiverType is not None
