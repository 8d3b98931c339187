"""Every type of every C extension module: the internal ones (call objects,
wrappers, context objects, counters, timer queues, channels) refuse
``type(obj)()`` with ``TypeError`` (a zero-filled object would crash on first
use); the ones our Python code or the user constructs still construct or
check their arguments."""
import asyncio
import gc
import importlib

import pytest

from aiomisc_c import _compat

pytestmark = pytest.mark.c_extension

EXTENSIONS = (
    "aiomisc_c._thread_pool",
    "aiomisc_c._circuit_breaker",
    "aiomisc_c._backoff",
    "aiomisc_c._loop",
    "aiomisc_c._pool",
)

# made only by the C code itself
INTERNAL = {
    "Channel",
    "_Context",
    "_CallAsync",
    "_CutoutWrapper",
    "_CutoutAsyncWrapper",
    "_Counters",
    "Call",
    "_TimerQueue",
    "BackoffFunction",
    "_Enter",
}

# constructed by the user or by our Python shells: checked arguments
CONSTRUCTED = {
    "CircuitBreaker": lambda t: t(0.5, 10),
    "Backoff": lambda t: t(attempt_timeout=None, deadline=None),
    "BackoffExecution": None,
    "Executor": None,
    "Threaded": None,
    "BoundThreaded": None,
    "TimeoutFunction": None,
    "Acquisition": None,
}


@pytest.fixture
def modules():
    if not _compat.c_available():
        pytest.skip(f"C extensions unavailable: {_compat._C_MISSING}")
    return [importlib.import_module(name) for name in EXTENSIONS]


def _seeds(modules):
    """Objects of every kind the extensions hand out, made on a real loop."""
    _thread_pool, _circuit_breaker, _backoff, _loop, _pool = modules
    made = []
    loop = _loop.new_event_loop()
    try:
        breaker = _circuit_breaker.CircuitBreaker(0.5, 10)
        made += [breaker, breaker.context()]

        async def coro():
            return 1

        def sync():
            return 1

        awaitable = breaker.call_async(coro)
        made.append(awaitable)
        cutout = importlib.import_module(
            "aiomisc_c._circuit_breaker",
        ).cutout
        made += [cutout(0.5, 10)(sync), cutout(0.5, 10)(coro)]

        retried = _backoff.asyncbackoff(1, 2)(coro)
        timed = _backoff.timeout(1)(coro)
        backoff = _backoff.Backoff(attempt_timeout=1, deadline=2)
        made += [retried, timed, backoff, backoff.prepare(coro)]

        async def step_calls():
            # a call stepped once has its timers (and its loop's queue) armed
            calls = [retried(), timed()]
            for call in calls:
                with pytest.raises(StopIteration):
                    call.send(None)
            made.extend(calls)
            made.append(backoff.execute(coro))
            made[-1].close()

        loop.run_until_complete(step_calls())
        awaitable.close()

        async def pool_seeds():
            from aiomisc_c.pool import PoolBase

            class Pool(PoolBase):
                async def _create_instance(self):
                    return object()

                async def _destroy_instance(self, instance):
                    pass

                async def _check_instance(self, instance):
                    return True

            pool = Pool(maxsize=1)
            acquisition = _pool.Acquisition(pool)
            made.extend([acquisition, acquisition.__aenter__()])
            await pool.close()

        loop.run_until_complete(pool_seeds())

        pool = importlib.import_module(
            "aiomisc_c.thread_pool",
        ).ThreadPoolExecutor(1)
        try:
            threaded = importlib.import_module("aiomisc_c.thread_pool").threaded

            class Holder:
                @threaded
                def method(self):
                    return 1

            made += [pool, threaded(sync), Holder().method]
        finally:
            pool.shutdown(wait=True)
    finally:
        loop.close()
    return made


def _extension_types(modules):
    """Types defined by the extensions: module attributes, then every type
    reachable through the references of the seed objects."""
    # CircuitBreaker and Acquisition name their public modules, the others
    # their extension
    names = {module.__name__ for module in modules} | {
        "aiomisc_c.circuit_breaker", "aiomisc_c.pool",
    }
    found = {}

    def consider(candidate):
        if isinstance(candidate, type) and candidate.__module__ in names:
            found[candidate.__name__] = candidate

    for module in modules:
        for value in vars(module).values():
            consider(value)
    seen = set()
    todo = _seeds(modules)
    for _ in range(4):
        following = []
        for obj in todo:
            if id(obj) in seen:
                continue
            seen.add(id(obj))
            consider(type(obj))
            following.extend(gc.get_referents(obj))
        todo = following
    return found


def test_every_internal_type_refuses_construction(modules):
    found = _extension_types(modules)
    assert INTERNAL <= set(found), sorted(INTERNAL - set(found))
    unexpected = set(found) - INTERNAL - set(CONSTRUCTED)
    assert not unexpected, f"classify these types: {sorted(unexpected)}"
    for name in sorted(INTERNAL):
        with pytest.raises(TypeError, match="cannot create"):
            found[name]()


def test_constructed_types_still_construct(modules):
    found = _extension_types(modules)
    for name, make in CONSTRUCTED.items():
        if name not in found:
            continue
        cls = found[name]
        if make is not None:
            assert type(make(cls)) is cls
        else:
            # made by our Python code with arguments: a bare call is refused
            # with a message about them, never a half-made object
            with pytest.raises(TypeError) as info:
                cls()
            assert "cannot create" not in str(info.value)


def test_seed_objects_still_work(modules):
    """The objects the walk made are usable: the guard is on construction
    from Python only."""
    _thread_pool, _circuit_breaker, _backoff, _loop, _pool = modules
    loop = _loop.new_event_loop()
    try:
        breaker = _circuit_breaker.CircuitBreaker(0.5, 10)

        async def coro():
            await asyncio.sleep(0)
            return 7

        async def main():
            with breaker.context():
                pass
            assert await breaker.call_async(coro) == 7
            assert await _backoff.asyncbackoff(1, 2)(coro)() == 7
            assert await _backoff.timeout(1)(coro)() == 7

        loop.run_until_complete(main())
    finally:
        loop.close()
