"""``import aiomisc_c`` loads only what the package needs at import.

Optional and costly modules are imported on first use: a regression here
shows up as a slower cold import (see benchmarks/bench_entrypoint.py).
"""
import json
import subprocess
import sys

import pytest

from helpers.childproc import NEUTRAL_CWD, child_env

from aiomisc_c import _compat

# Imported by the package on first use only, never by ``import aiomisc_c``.
LAZY_MODULES = (
    "uvloop", "dataclasses", "random", "platform", "importlib.metadata",
    "importlib.util", "numbers",
    "aiomisc_c._work_item", "colorlog", "rich",
    "aiomisc_c.log.core", "aiomisc_c.log._configure",
    "aiomisc_c.iterator_wrapper",
    "aiomisc_c.log._threaded_handler", "aiomisc_c.log.formatter",
    "aiomisc_c.periodic", "aiomisc_c.pool", "aiomisc_c.recurring",
    "aiomisc_c.cron", "croniter",
    "aiomisc_c.io", "aiomisc_c.process_pool", "aiomisc_c.worker_pool",
    "aiomisc_c.worker", "aiomisc_c.service.process", "gzip", "bz2", "lzma",
    "multiprocessing", "concurrent.futures.process",
    "aiomisc_c.aggregate", "aiomisc_c.entrypoint", "aiomisc_c.context",
    "aiomisc_c.log", "aiomisc_c.log.enum", "aiomisc_c.log._env",
    "aiomisc_c.service", "aiomisc_c.service.base", "aiomisc_c.signal",
    # the primitives, the counters and the helpers load on first use too
    "aiomisc_c.thread_pool", "aiomisc_c._thread_pool_base",
    "aiomisc_c._thread_pool", "concurrent.futures.thread", "queue",
    "aiomisc_c.backoff", "aiomisc_c._backoff_base", "aiomisc_c._backoff",
    "aiomisc_c.circuit_breaker", "aiomisc_c._circuit_breaker_base",
    "aiomisc_c._circuit_breaker", "aiomisc_c.timeout",
    "aiomisc_c.utils", "aiomisc_c._loop", "aiomisc_c.compat",
    "aiomisc_c.counters",
)

PROBE = (
    "import json, sys; import aiomisc_c; "
    "print(json.dumps(sorted(sys.modules)))"
)


def probe(code, **env):
    """What ``code``, run in a new interpreter, printed last (as JSON)."""
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=NEUTRAL_CWD, env=child_env(**env),
        capture_output=True, text=True, timeout=60, check=True,
    )
    return json.loads(done.stdout.splitlines()[-1])


def loaded_after(code, **env):
    return set(probe(code, **env))


def test_import_leaves_optional_modules_alone():
    loaded = loaded_after(PROBE, AIOMISC_NO_PLUGINS="1")
    assert not loaded & set(LAZY_MODULES), sorted(loaded & set(LAZY_MODULES))


def test_the_systemd_plugin_keeps_the_import_lazy():
    # An installed package registers the systemd watchdog plugin, so every
    # "import aiomisc_c" there imports it: it must not pull the primitives
    # in (its service class loads on first read).
    code = (
        "import json, sys; import aiomisc_c, aiomisc_c.service.sdwatchdog; "
        "print(json.dumps(sorted(sys.modules)))"
    )
    loaded = loaded_after(code, AIOMISC_NO_PLUGINS="1")
    plugin_needs = {"aiomisc_c.service", "aiomisc_c.service.base"}
    assert not loaded & (set(LAZY_MODULES) - plugin_needs), \
        sorted(loaded & (set(LAZY_MODULES) - plugin_needs))
    from aiomisc_c.service import sdwatchdog
    from aiomisc_c.service.base import Service

    assert issubclass(sdwatchdog.SDWatchdogService, Service)
    assert sdwatchdog.SDWatchdogService.__module__ == sdwatchdog.__name__


def test_lazy_names_resolve_on_first_use():
    code = (
        "import json, sys, dataclasses\n"
        "import aiomisc_c\n"
        "from aiomisc_c import compat, counters, thread_pool\n"
        "from aiomisc_c._circuit_breaker_base import random\n"
        "assert compat.event_loop_policy is compat.event_loop_policy\n"
        "assert dataclasses.is_dataclass(counters.StatisticResult)\n"
        "assert dataclasses.is_dataclass(thread_pool.WorkItemBase)\n"
        "assert issubclass(thread_pool.WorkItem, thread_pool.WorkItemBase)\n"
        "assert 0 <= random() < 1\n"
        "class Probe(aiomisc_c.Statistic):\n"
        "    hits: int\n"
        "probe = Probe(name='probe')\n"
        "probe.hits += 3\n"
        "results = list(aiomisc_c.get_statistics(Probe))\n"
        "assert [(r.kind, r.name, r.metric, r.value) for r in results] == [\n"
        "    (Probe, 'probe', 'hits', 3)], results\n"
        "assert all(type(r) is counters.StatisticResult for r in results)\n"
        "print(json.dumps(sorted(sys.modules)))\n"
    )
    loaded = loaded_after(code)
    assert "aiomisc_c._work_item" in loaded
    assert "random" in loaded


def test_unknown_attributes_still_raise():
    from aiomisc_c import _circuit_breaker_base, compat, counters, thread_pool

    for module in (compat, counters, thread_pool, _circuit_breaker_base):
        with pytest.raises(AttributeError, match="no_such_name"):
            module.no_such_name   # noqa: B018


PYTHON_TWINS = (
    "aiomisc_c._backoff_py", "aiomisc_c._circuit_breaker_py",
    "aiomisc_c._loop_py", "aiomisc_c._thread_pool_py",
)


def test_python_twins_are_imported_only_when_needed():
    # reading the implementation imports every primitive's public module
    code = (
        "import json, sys; import aiomisc_c; "
        "kind = str(aiomisc_c.implementation); "
        "print(json.dumps([sorted(sys.modules), kind]))"
    )

    def run(**env):
        modules, kind = probe(code, AIOMISC_NO_PLUGINS="1", **env)
        return set(modules), kind

    loaded, kind = run(AIOMISC_C_NO_EXTENSIONS="1")
    assert kind == "python"
    assert set(PYTHON_TWINS) <= loaded
    if not _compat.c_available():
        pytest.skip("C twins not built")
    loaded, kind = run()
    assert kind == "c"
    assert not set(PYTHON_TWINS) & loaded


PRIMITIVE_MODULES = (
    "aiomisc_c.backoff", "aiomisc_c.circuit_breaker", "aiomisc_c.thread_pool",
    "aiomisc_c.timeout", "aiomisc_c.utils",
)
PRIMITIVES = ["backoff", "circuit_breaker", "loop", "thread_pool", "timeout"]


LAZY_TWINS_PROBE = """
import json, sys
import aiomisc_c
from aiomisc_c import _compat
report = {{}}
report["before"] = sorted(m for m in sys.modules if m in {modules!r})
with _compat.use_implementation({kind!r}):
    report["inside"] = [
        aiomisc_c.ThreadPoolExecutor is aiomisc_c.thread_pool.ThreadPoolExecutor,
        aiomisc_c.timeout is sys.modules["aiomisc_c.timeout"].timeout,
        aiomisc_c.cutout is aiomisc_c.circuit_breaker.cutout,
        aiomisc_c.asyncbackoff is aiomisc_c.backoff.asyncbackoff,
        aiomisc_c.new_event_loop is aiomisc_c.utils.new_event_loop,
        aiomisc_c.ThreadPoolExecutor is getattr(
            aiomisc_c.thread_pool, "_Py" + "ThreadPoolExecutor"),
        aiomisc_c.timeout is sys.modules["aiomisc_c.timeout"]._Pytimeout,
    ]
    report["inside_kind"] = dict(aiomisc_c.implementation)
report["after"] = [
    aiomisc_c.ThreadPoolExecutor is aiomisc_c.thread_pool.ThreadPoolExecutor,
    aiomisc_c.timeout is sys.modules["aiomisc_c.timeout"].timeout,
    aiomisc_c.cutout is aiomisc_c.circuit_breaker.cutout,
]
report["after_kind"] = dict(aiomisc_c.implementation)
print(json.dumps(report))
"""


def test_switching_twins_before_their_modules_are_imported():
    # use_implementation() reaches the primitives "import aiomisc_c" has not
    # imported yet: they are imported first, then switched.
    code = LAZY_TWINS_PROBE.format(kind="python", modules=PRIMITIVE_MODULES)
    report = probe(code, AIOMISC_NO_PLUGINS="1")
    assert report["before"] == []
    assert report["inside"] == [True] * 7
    assert report["inside_kind"] == dict.fromkeys(PRIMITIVES, "python")
    assert report["after"] == [True] * 3
    expected = "c" if _compat.c_available() else "python"
    assert report["after_kind"] == dict.fromkeys(PRIMITIVES, expected)


def test_implementation_lists_every_primitive_right_after_import():
    code = (
        "import json, sys; import aiomisc_c; "
        "from aiomisc_c import _compat; "
        "before = [m for m in sys.modules if m == 'aiomisc_c.thread_pool']; "
        "print(json.dumps([before, sorted(aiomisc_c.implementation), "
        "_compat.c_available('thread_pool'), _compat.c_available(), "
        "'aiomisc_c.thread_pool' in sys.modules]))"
    )
    before, primitives, pool_c, all_c, pool_loaded = probe(
        code, AIOMISC_NO_PLUGINS="1",
    )
    assert before == []
    assert primitives == PRIMITIVES
    assert pool_c is all_c is _compat.c_available()
    assert pool_loaded


def test_switching_to_the_python_twins_imports_them():
    code = (
        "import json, sys\n"
        "from aiomisc_c import _compat, backoff, thread_pool\n"
        "with _compat.use_implementation('python'):\n"
        "    assert backoff.asyncbackoff is backoff._Pyasyncbackoff\n"
        "    assert thread_pool.Threaded is thread_pool._PyThreaded\n"
        "print(json.dumps(sorted(sys.modules)))\n"
    )
    assert set(PYTHON_TWINS) <= loaded_after(code)


def test_log_names_resolve_on_first_use():
    from aiomisc_c import log
    from aiomisc_c.log import _configure, _threaded_handler, core

    assert log.basic_config is _configure.basic_config
    assert log.ThreadedHandler is _threaded_handler.ThreadedHandler
    assert log.UnhandledHook is core.UnhandledHook
    assert log.core is core
    assert log._CONFIGURED_WRAPPERS is _configure._CONFIGURED_WRAPPERS
    assert {"basic_config", "core", "ThreadedHandler"} <= set(dir(log))
    with pytest.raises(AttributeError, match="no_such_name"):
        log.no_such_name   # noqa: B018


def test_iterator_wrappers_resolve_on_first_use():
    import aiomisc_c
    from aiomisc_c import iterator_wrapper, thread_pool

    assert aiomisc_c.IteratorWrapper is iterator_wrapper.IteratorWrapper
    assert thread_pool.IteratorWrapper is iterator_wrapper.IteratorWrapper
    assert (aiomisc_c.IteratorWrapperSeparate
            is thread_pool.IteratorWrapperSeparate
            is iterator_wrapper.IteratorWrapperSeparate)
    assert issubclass(
        iterator_wrapper.IteratorWrapperSeparate, iterator_wrapper.IteratorWrapper,
    )
    with pytest.raises(AttributeError, match="no_such_name"):
        aiomisc_c.no_such_name   # noqa: B018


def test_scheduling_names_resolve_on_first_use():
    import aiomisc_c
    from aiomisc_c import periodic, pool, recurring

    assert aiomisc_c.PeriodicCallback is periodic.PeriodicCallback
    assert aiomisc_c.PoolBase is pool.PoolBase
    assert aiomisc_c.RecurringCallback is recurring.RecurringCallback
    for name in ("StrategyException", "StrategySkip", "StrategyStop"):
        assert getattr(aiomisc_c, name) is getattr(recurring, name)
        assert name in aiomisc_c.__all__
    assert aiomisc_c.periodic is periodic and aiomisc_c.pool is pool
    assert aiomisc_c.recurring is recurring
    assert callable(aiomisc_c.aggregate) and callable(aiomisc_c.aggregate_async)
    for name in aiomisc_c.__all__:
        getattr(aiomisc_c, name)


def test_plugin_scan_does_not_import_importlib_metadata():
    # With plugins on (and, once installed, aiomisc_c's own entry points
    # declared), the scan reads entry_points.txt files itself.
    loaded = loaded_after(PROBE, AIOMISC_NO_PLUGINS="")
    assert "importlib.metadata" not in loaded


SHADOWING_PROBE = """
import json, sys
{first}
import aiomisc_c
from aiomisc_c import aggregate, entrypoint
names = dict(
    aggregate=aiomisc_c.aggregate, entrypoint=aiomisc_c.entrypoint,
    imported_aggregate=aggregate, imported_entrypoint=entrypoint,
)
import aiomisc_c.aggregate, aiomisc_c.entrypoint
names.update(again_aggregate=aiomisc_c.aggregate,
             again_entrypoint=aiomisc_c.entrypoint)
modules = [sys.modules["aiomisc_c.aggregate"], sys.modules["aiomisc_c.entrypoint"]]
print(json.dumps(dict(
    {{key: getattr(value, "__qualname__", repr(value))
      for key, value in names.items()}},
    modules=[type(module).__name__ for module in modules],
    same_function=aiomisc_c.aggregate is modules[0].aggregate,
    same_class=aiomisc_c.entrypoint is modules[1].entrypoint,
)))
"""


@pytest.mark.parametrize("first", [
    "",
    "import aiomisc_c.aggregate, aiomisc_c.entrypoint",
    "from aiomisc_c.entrypoint import Entrypoint",
    "from aiomisc_c import aggregate as _, entrypoint as _",
])
def test_function_and_class_names_shadow_their_submodules(first):
    # As in aiomisc: the package attributes "aggregate" and "entrypoint" are
    # the function and the class, whichever import came first; the modules
    # stay importable under those names.
    found = probe(SHADOWING_PROBE.format(first=first), AIOMISC_NO_PLUGINS="1")
    assert found == {
        "aggregate": "aggregate", "imported_aggregate": "aggregate",
        "again_aggregate": "aggregate",
        "entrypoint": "Entrypoint", "imported_entrypoint": "Entrypoint",
        "again_entrypoint": "Entrypoint",
        "modules": ["module", "module"],
        "same_function": True, "same_class": True,
    }


def test_other_submodules_still_bind_as_modules():
    import types

    import aiomisc_c
    import aiomisc_c.log
    import aiomisc_c.service

    assert isinstance(aiomisc_c.log, types.ModuleType)
    assert isinstance(aiomisc_c.service, types.ModuleType)
    assert aiomisc_c.Service is aiomisc_c.service.Service
    assert aiomisc_c.get_context is aiomisc_c.context.get_context
    assert aiomisc_c.Signal is aiomisc_c.signal.Signal
    # an attribute the package has no lazy entry for is set as usual
    aiomisc_c.some_new_attribute = aiomisc_c.log
    try:
        assert aiomisc_c.some_new_attribute is aiomisc_c.log
    finally:
        del aiomisc_c.some_new_attribute


def test_cutout_type_aliases_are_built_on_first_read():
    code = (
        "import json, sys\n"
        "from typing import Any, Awaitable, Callable, TypeVar\n"
        "import aiomisc_c.circuit_breaker\n"
        "base = sys.modules['aiomisc_c._circuit_breaker_base']\n"
        "built_at_import = 'CutoutFuncType' in vars(base)\n"
        "from aiomisc_c import circuit_breaker as cb\n"
        "T = base.T\n"
        "func = Callable[..., T] | Callable[..., Awaitable[T]]\n"
        "ok = [\n"
        "    cb.CutoutFuncType == func,\n"
        "    cb.CutoutDecoratorReturnType == Callable[..., T | Awaitable[T]],\n"
        "    cb.CutoutReturnType == Callable[\n"
        "        [func[Any]], Callable[..., T | Awaitable[T]][Any]],\n"
        "    cb.CutoutFuncType is base.CutoutFuncType,\n"
        "]\n"
        "print(json.dumps([built_at_import, ok]))\n"
    )
    built_at_import, ok = probe(code, AIOMISC_NO_PLUGINS="1")
    assert not built_at_import
    assert ok == [True, True, True, True]


def test_lazy_names_are_listed_by_dir_before_their_first_read():
    code = (
        "import json, sys\n"
        "import aiomisc_c\n"
        "from aiomisc_c import circuit_breaker\n"
        "names = dir(aiomisc_c)\n"
        "print(json.dumps([names, dir(circuit_breaker), sorted(sys.modules)]))\n"
    )
    names, breaker_names, modules = probe(code, AIOMISC_NO_PLUGINS="1")
    assert {
        "entrypoint", "Entrypoint", "aggregate", "Service", "log", "io",
        "PeriodicCallback", "threaded", "Backoff",
    } <= set(names)
    assert names == sorted(set(names))
    assert {"CutoutFuncType", "CircuitBreaker", "cutout"} <= set(breaker_names)
    # listing them imported nothing
    assert "aiomisc_c.entrypoint" not in modules and "aiomisc_c.io" not in modules


@pytest.mark.parametrize("first", [
    "import aiomisc_c",
    "import aiomisc_c.timeout",
    "from aiomisc_c.timeout import timeout",
    "from aiomisc_c import timeout",
])
def test_timeout_is_the_function_whichever_import_came_first(first):
    # As in aiomisc, the package attribute "timeout" is the decorator, also
    # after its submodule (imported on first use) is imported.
    code = (
        "import json, sys, types\n"
        f"{first}\n"
        "import aiomisc_c, aiomisc_c.timeout\n"
        "module = sys.modules['aiomisc_c.timeout']\n"
        "print(json.dumps([\n"
        "    isinstance(aiomisc_c.timeout, types.ModuleType),\n"
        "    aiomisc_c.timeout is module.timeout,\n"
        "    type(module).__name__,\n"
        "]))\n"
    )
    assert probe(code, AIOMISC_NO_PLUGINS="1") == [False, True, "module"]
