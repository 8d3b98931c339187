"""Shared machinery of the benchmark modules.

A benchmark module is ``benchmarks/bench_<name>.py``. The runner
(``python -m benchmarks``) imports it in the parent process only to read its
description, so keep its top level free of heavy imports. It must define:

``TITLE``
    Heading of its section in the table and the docs.
``SUBJECTS``
    The implementations measured, a tuple of :class:`Subject`. Each one runs in
    its own subprocess (so aiomisc and aiomisc_c never share a process, and the
    Python twin is selected with ``AIOMISC_C_NO_EXTENSIONS=1``).
``BASELINE``
    Name of the subject the speed-up ratios are taken against (``"aiomisc"``).
``REFERENCES``
    Names of the subjects that users pick instead (stdlib, tenacity, ...); the
    table shows a ratio against each.
``LOOPS``
    Loop kinds to run on, from ``("asyncio", "uvloop")``.
``CASES``
    A tuple of :class:`Case`, run in this order in every subprocess.
``setup(subject: str, loop_kind: str) -> Fixture``
    Called in the subprocess; builds the loop and one body per case. Raise
    :class:`Unavailable` to skip the subject (e.g. the C extension is not built).

A body is ``body(iterations)``: a coroutine function (run on ``Fixture.loop``,
timed inside the loop) or a plain function (timed around the call, for cases
that need their own loop). For ``kind="value"`` cases the body returns the
measured value itself (e.g. bytes per call) instead of being timed.
"""
import asyncio
import dataclasses
import gc
import importlib
import inspect
import sys
import time
from typing import Any, Callable, Dict, List, Mapping, Optional, Tuple

LOOP_KINDS = ("asyncio", "uvloop")


class Unavailable(Exception):
    """The subject cannot run here (missing package or extension)."""


@dataclasses.dataclass(frozen=True)
class Subject:
    name: str                      # key in results.json
    label: str                     # long name for the docs
    short: str                     # column header in tables and the chart
    env: Mapping[str, str] = dataclasses.field(default_factory=dict)
    note: str = ""                 # what exactly is measured, for the docs


@dataclasses.dataclass(frozen=True)
class Case:
    name: str
    title: str
    # operations done by one iteration of the body; the timing is divided by
    # iterations * ops to give ns/op
    ops: int = 1
    # iterations of the body in one repeat, before --scale
    iterations: int = 1
    # "time": ns/op; "floor": ns/op of a no-thread lower bound; "value": the
    # body returns the value (unit given below)
    kind: str = "time"
    unit: str = "ns/op"
    # name of the floor case this one is compared with
    floor: Optional[str] = None
    # a few words for the chart's axis (default: the title)
    short: str = ""


@dataclasses.dataclass
class Fixture:
    loop: Optional[asyncio.AbstractEventLoop]
    bodies: Dict[str, Callable[[int], Any]]
    close: Callable[[], None] = lambda: None
    # free-form facts recorded in results.json (implementation, loop class...)
    facts: Dict[str, Any] = dataclasses.field(default_factory=dict)


# The subjects every aiomisc_c primitive is compared over; a module adds the
# alternatives users pick instead (stdlib, tenacity, ...).
AIOMISC_C = Subject(
    "aiomisc_c", "aiomisc_c (C extension)", "C",
    env={"AIOMISC_C_NO_EXTENSIONS": "0"},
)
AIOMISC_C_PY = Subject(
    "aiomisc_c_py", "aiomisc_c (Python twin)", "Py",
    env={"AIOMISC_C_NO_EXTENSIONS": "1"},
)
AIOMISC = Subject("aiomisc", "aiomisc 17.x (PyPI)", "aiomisc")


def import_peer(module: str) -> Tuple[Any, str]:
    """``module`` of a library measured or used beside aiomisc_c, and the
    installed version of its distribution (the first dotted component);
    :class:`Unavailable` when it is not installed."""
    distribution = module.split(".")[0]
    try:
        imported = importlib.import_module(module)
    except ImportError as exc:
        raise Unavailable(f"{distribution} is not installed ({exc})") from None
    from importlib.metadata import version
    return imported, version(distribution)


def loop_policy(loop_kind: str) -> asyncio.AbstractEventLoopPolicy:
    if loop_kind == "asyncio":
        return asyncio.DefaultEventLoopPolicy()
    if loop_kind == "uvloop":
        uvloop, _ = import_peer("uvloop")
        return uvloop.EventLoopPolicy()
    raise ValueError(f"unknown loop kind {loop_kind!r}")


def install_loop(loop_kind: str) -> asyncio.AbstractEventLoop:
    """Install the policy of ``loop_kind`` and make a new loop of it the
    current one (what a fixture's timed code runs in)."""
    asyncio.set_event_loop_policy(loop_policy(loop_kind))
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    return loop


def require_aiomisc_c(subject: str, primitive: str) -> None:
    """Raise Unavailable unless ``subject`` really runs the wanted twin."""
    try:
        from aiomisc_c import _compat
        __import__(f"aiomisc_c.{primitive}")
    except ImportError as exc:
        raise Unavailable(f"aiomisc_c.{primitive} is not importable: {exc}")
    want = "c" if subject == AIOMISC_C.name else "python"
    got = _compat.implementation.get(primitive)
    if got != want:
        reason = _compat._C_MISSING.get(primitive) or "unknown reason"
        raise Unavailable(
            f"aiomisc_c.{primitive} runs the {got!r} twin, not {want!r} "
            f"({reason})"
        )


def aiomisc_c_facts(primitive: str) -> Dict[str, Any]:
    """What exactly is measured: twin, version and where it was imported from."""
    import aiomisc_c

    facts: Dict[str, Any] = {
        "implementation": dict(aiomisc_c.implementation),
        "version": aiomisc_c.__version__,
        "path": aiomisc_c.__file__,
    }
    c_module = sys.modules.get(f"aiomisc_c._{primitive}")
    if c_module is not None:
        facts["c_module"] = getattr(c_module, "__file__", "")
    return facts


def describe_loop(loop: Optional[asyncio.AbstractEventLoop]) -> str:
    if loop is None:
        return ""
    cls = type(loop)
    return f"{cls.__module__}.{cls.__qualname__}"


Measurement = Dict[str, Any]


def _run_body(
    fixture: Fixture, case: Case, body: Callable[[int], Any], iterations: int,
) -> Tuple[float, Dict[str, Any]]:
    """One repeat: returns (value, extra facts)."""
    if inspect.iscoroutinefunction(body):
        assert fixture.loop is not None, "an async body needs Fixture.loop"

        async def timed() -> Tuple[int, Any]:
            # timed inside the loop: the cost of run_until_complete itself
            # (different on each loop) is not part of the case
            started = time.perf_counter_ns()
            result = await body(iterations)
            return time.perf_counter_ns() - started, result

        elapsed, result = fixture.loop.run_until_complete(timed())
    else:
        started = time.perf_counter_ns()
        result = body(iterations)
        elapsed = time.perf_counter_ns() - started

    if case.kind == "value":
        if isinstance(result, tuple):
            value, extra = result
            return float(value), dict(extra)
        return float(result), {}
    return elapsed / (iterations * case.ops), {}


def run_once(
    fixture: Fixture, case: Case, iterations: int,
) -> Tuple[float, Dict[str, Any]]:
    """One sample of ``case``, after a ``gc.collect()``."""
    gc.collect()
    return _run_body(fixture, case, fixture.bodies[case.name], iterations)


def case_iterations(case: Case, scale: float) -> int:
    return max(1, round(case.iterations * scale))


def median(values: List[float]) -> float:
    ordered = sorted(values)
    mid = len(ordered) // 2
    if len(ordered) % 2:
        return ordered[mid]
    return (ordered[mid - 1] + ordered[mid]) / 2


def spread(values: List[float]) -> float:
    """Median absolute deviation, in percent of the median."""
    if not values:
        return 0.0
    mid = median(values)
    if not mid:
        return 0.0
    return 100.0 * median([abs(v - mid) for v in values]) / abs(mid)


def fmt_value(value: Optional[float]) -> str:
    if value is None:
        return "—"
    if value >= 100:
        return f"{value:,.0f}"
    return f"{value:,.1f}"

