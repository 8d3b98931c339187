"""``inspect.signature`` works on every callable of the C extension modules
of the circuit breaker, backoff, loop setup, thread pool and pool (module
functions, types and their methods), and where the Python twin has the same callable, both take
the same parameters (names, kinds, whether optional, and the default where a
text signature can spell it)."""
import importlib
import inspect
import types

import pytest

from aiomisc_c import _compat

pytestmark = pytest.mark.c_extension

if not _compat.c_available():  # pragma: no cover - CI requires the build
    pytest.skip(
        f"C extensions unavailable: {_compat._C_MISSING}",
        allow_module_level=True,
    )

TWINS = {
    "aiomisc_c._circuit_breaker": "aiomisc_c._circuit_breaker_py",
    "aiomisc_c._backoff": "aiomisc_c._backoff_py",
    "aiomisc_c._loop": "aiomisc_c._loop_py",
    "aiomisc_c._thread_pool": "aiomisc_c._thread_pool_py",
    "aiomisc_c._pool": "aiomisc_c._pool_py",
}

# Slot wrappers CPython gives every type; their signatures are CPython's.
INHERITED_SLOTS = frozenset(dir(object)) | {
    "__await__", "__call__", "__get__", "__init__", "__class_getitem__",
    "__iter__", "__next__", "__init_subclass__",
}

# Pairs whose C side is deliberately positional-only (private helpers the
# Python shells call positionally); compared by parameter names only.
POSITIONAL_ONLY_IN_C = {
    ("aiomisc_c._circuit_breaker", "_wrap_sync"),
    ("aiomisc_c._circuit_breaker", "_wrap_async"),
}


def _is_c_defined(module, obj):
    return getattr(obj, "__module__", None) in (
        module.__name__, module.__name__.replace("._", ".", 1),
    ) or isinstance(obj, types.BuiltinFunctionType)


def _callables(module_name):
    """(qualified name, callable, owner or None) for every callable the C
    module defines, and every method of the types it defines."""
    module = importlib.import_module(module_name)
    found = []
    for name, obj in sorted(vars(module).items()):
        if name.startswith("__") or not callable(obj):
            continue
        if not _is_c_defined(module, obj):
            continue    # re-exported from a Python module
        found.append((name, obj, None))
        if isinstance(obj, type):
            for attr, value in sorted(vars(obj).items()):
                if attr in INHERITED_SLOTS or not callable(value):
                    continue
                if isinstance(value, types.WrapperDescriptorType):
                    continue    # a slot wrapper: CPython's signature
                found.append((f"{name}.{attr}", getattr(obj, attr), obj))
    return found


def _cases():
    for module_name in TWINS:
        for qualname, obj, owner in _callables(module_name):
            yield pytest.param(
                module_name, qualname, obj, owner,
                id=f"{module_name.rsplit('.', 1)[1]}.{qualname}",
            )


def test_every_c_module_is_covered():
    names = {
        (module_name, qualname)
        for module_name in TWINS
        for qualname, _, _ in _callables(module_name)
    }
    for expected in [
        ("aiomisc_c._circuit_breaker", "CircuitBreaker"),
        ("aiomisc_c._circuit_breaker", "CircuitBreaker.call_async"),
        ("aiomisc_c._backoff", "Backoff"),
        ("aiomisc_c._backoff", "Backoff.execute"),
        ("aiomisc_c._backoff", "Call.throw"),
        ("aiomisc_c._loop", "new_event_loop"),
        ("aiomisc_c._loop", "create_default_event_loop"),
        ("aiomisc_c._thread_pool", "Executor.submit"),
        ("aiomisc_c._thread_pool", "Channel._drain"),
        ("aiomisc_c._thread_pool", "BoundThreaded.sync_call"),
        ("aiomisc_c._thread_pool", "_set_fast_paths"),
        ("aiomisc_c._pool", "Acquisition"),
        ("aiomisc_c._pool", "Acquisition.__aexit__"),
        ("aiomisc_c._pool", "_Enter.throw"),
    ]:
        assert expected in names


@pytest.mark.parametrize("module_name,qualname,obj,owner", list(_cases()))
def test_signature_available(module_name, qualname, obj, owner):
    signature = inspect.signature(obj)
    if owner is not None and not isinstance(
        inspect.getattr_static(owner, qualname.rsplit(".", 1)[1]),
        (staticmethod, classmethod),
    ):
        first = next(iter(signature.parameters.values()))
        assert first.name == "self"
        assert first.kind is inspect.Parameter.POSITIONAL_ONLY


def _twin_of(module_name, qualname):
    twin = importlib.import_module(TWINS[module_name])
    obj = twin
    for part in qualname.split("."):
        obj = getattr(obj, part, None)
        if obj is None:
            return None
    return obj


def _parameters(obj, is_method):
    params = list(inspect.signature(obj).parameters.values())
    return params[1:] if is_method else params


def _twin_cases():
    for module_name in TWINS:
        for qualname, obj, owner in _callables(module_name):
            twin = _twin_of(module_name, qualname)
            if twin is None or not callable(twin):
                continue
            yield pytest.param(
                module_name, qualname, obj, owner, twin,
                id=f"{module_name.rsplit('.', 1)[1]}.{qualname}",
            )


TWIN_CASES = list(_twin_cases())


def test_twin_pairs_found():
    compared = {case.values[1] for case in TWIN_CASES}
    assert {
        "CircuitBreaker", "CircuitBreaker.call", "CircuitBreaker.call_async",
        "CircuitBreaker.bucket", "CircuitBreaker.counter",
        "CircuitBreaker.get_state_delay", "CircuitBreaker.context",
        "CircuitBreaker._get_time", "Backoff", "Backoff.execute",
        "Backoff.prepare", "BackoffExecution", "BackoffExecution.execute",
        "create_default_event_loop", "new_event_loop",
        "Executor", "Executor.submit", "Executor.shutdown", "Executor.start",
        "Executor.run_worker", "Executor.after_fork_in_child", "Threaded",
        "Threaded.async_call", "Threaded.sync_call", "BoundThreaded",
        "BoundThreaded.async_call", "BoundThreaded.sync_call",
        "Acquisition", "Acquisition.__aenter__", "Acquisition.__aexit__",
    } <= compared


@pytest.mark.parametrize(
    "module_name,qualname,obj,owner,twin", TWIN_CASES,
)
def test_signature_matches_twin(module_name, qualname, obj, owner, twin):
    is_method = owner is not None
    ours = _parameters(obj, is_method)
    theirs = _parameters(twin, is_method)
    assert [p.name for p in ours] == [p.name for p in theirs]
    if (module_name, qualname) in POSITIONAL_ONLY_IN_C:
        return
    for c_param, py_param in zip(ours, theirs):
        assert c_param.kind == py_param.kind, c_param.name
        c_optional = c_param.default is not inspect.Parameter.empty
        py_optional = py_param.default is not inspect.Parameter.empty
        assert c_optional == py_optional, c_param.name
        # `...` stands for a default a text signature cannot spell (a class,
        # a tuple of classes, a sentinel read at call time)
        if c_optional and c_param.default is not Ellipsis:
            assert c_param.default == py_param.default, c_param.name


@pytest.mark.parametrize("module_name", ["aiomisc_c._backoff",
                                         "aiomisc_c._backoff_py"])
def test_backoff_execute_takes_func_by_name(module_name):
    """What the signature says: ``func`` is positional-or-keyword."""
    import asyncio

    module = importlib.import_module(module_name)

    async def add(x, y=0):
        return x + y

    async def main():
        backoff = module.Backoff(attempt_timeout=None, deadline=None)
        by_position = await backoff.execute(add, 1, y=2)
        by_name = await backoff.execute(func=add, x=3, y=4)
        with pytest.raises(TypeError, match="func"):
            await backoff.execute(x=1)
        return by_position, by_name

    loop = asyncio.DefaultEventLoopPolicy().new_event_loop()
    try:
        assert loop.run_until_complete(main()) == (3, 7)
    finally:
        loop.close()
