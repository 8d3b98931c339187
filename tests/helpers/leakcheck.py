"""The one leak harness of the test suite.

A leak check calls the code under test many times and asks whether anything
grows *per call*.  Every leak test (thread pool, circuit breaker, backoff,
event-loop setup) uses this module, in a child process so that nothing the
rest of the suite did is counted, and judges by the same rule.

The rule
--------
``measure(run, calls)`` calls ``run(calls)`` once to warm up (caches, free
lists, interned names, tables that resize once), takes a measurement, then
calls ``run(calls)`` ``runs`` more times (3 by default), measuring after each.
A measurement is a set of counters:

* ``total_refs``: ``sys.gettotalrefcount()``, the number of references to
  every object there is, on a debug interpreter only.  It is preferred
  because it sees leaked references to objects nobody thought to watch (as
  CPython's own ``regrtest -R`` does);
* ``refs:<name>``: the reference count of each watched object (the functions,
  arguments, results and types the calls touch), on any interpreter;
* ``objects``: the number of objects the garbage collector tracks;
* ``memory``: the bytes traced by ``tracemalloc``.

A counter **leaks when it grew in every measured run**, by more than its noise
floor: zero for the counts (they are exact) and one byte per call for the
memory (the smallest block a leak can hold is 16 bytes, so a leak per call
clears the floor many times over, while a table that doubles, or a cache
that fills, grows once and then stays flat).  Growth in some runs only, or
shrinking, is noise.  There are no other thresholds.

Use from a child script::

    from helpers.leakcheck import measure, print_report
    print_report(measure(run, 10_000, watched={"func": func}))

and from the test::

    report = run_leak_script(CHILD_SOURCE, "arg1", ...)
    assert_no_leaks(report)
"""
import gc
import json
import os
import subprocess
import sys
import tracemalloc
from typing import Any, Callable, Dict, List, Mapping, Optional

MEASURED_RUNS = 3
MEMORY_FLOOR_PER_CALL = 1           # bytes
HAS_TOTAL_REFCOUNT = hasattr(sys, "gettotalrefcount")

TESTS_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _snapshot(watched: Mapping[str, Any]) -> Dict[str, int]:
    gc.collect()
    counters = {}
    if HAS_TOTAL_REFCOUNT:
        counters["total_refs"] = sys.gettotalrefcount()
    for name, obj in watched.items():
        counters["refs:" + name] = sys.getrefcount(obj)
    counters["objects"] = len(gc.get_objects())
    counters["memory"] = tracemalloc.get_traced_memory()[0]
    return counters


def floor(counter: str, calls: int) -> int:
    """The growth per measured run that a counter may show without leaking."""
    return MEMORY_FLOOR_PER_CALL * calls if counter == "memory" else 0


def leaks(deltas: Mapping[str, List[int]], calls: int) -> Dict[str, List[int]]:
    """The counters that grew in every measured run by more than the floor."""
    return {
        counter: values for counter, values in deltas.items()
        if values and all(value > floor(counter, calls) for value in values)
    }


def measure(
    run: Callable[[int], Any],
    calls: int,
    *,
    watched: Optional[Mapping[str, Any]] = None,
    runs: int = MEASURED_RUNS,
    settle: Optional[Callable[[], Any]] = None,
) -> Dict[str, Any]:
    """Warm up with ``run(calls)``, then measure ``runs`` more runs.

    ``settle`` (if given) runs before each measurement, e.g. to let worker
    threads finish or a loop run its pending callbacks.  Returns a report:
    the deltas of every counter per run, and the counters that leak.
    """
    watched = dict(watched or {})
    started = not tracemalloc.is_tracing()
    if started:
        tracemalloc.start()
    try:
        run(calls)
        if settle is not None:
            settle()
        previous = _snapshot(watched)
        # filled in place, so that the bookkeeping holds as many references
        # after each run as before it
        deltas: Dict[str, List[int]] = {key: [0] * runs for key in previous}
        for index in range(runs):
            run(calls)
            if settle is not None:
                settle()
            current = _snapshot(watched)
            for key, value in current.items():
                deltas[key][index] = value - previous[key]
            previous = current
    finally:
        if started:
            tracemalloc.stop()
    return {
        "calls": calls,
        "total_refcount": HAS_TOTAL_REFCOUNT,
        "deltas": deltas,
        "leaks": leaks(deltas, calls),
    }


def print_report(report: Mapping[str, Any], **extra: Any) -> None:
    """Print the report as the child's last stdout line (JSON)."""
    print(json.dumps(dict(report, **extra)))


def assert_no_leaks(report: Mapping[str, Any]) -> None:
    assert report["deltas"], report
    assert not report["leaks"], (
        "grew in every one of %d runs of %d calls: %s (all deltas: %s)" % (
            len(next(iter(report["deltas"].values()))), report["calls"],
            report["leaks"], report["deltas"],
        )
    )


def run_leak_script(
    source: str, *args: str, env: Optional[Mapping[str, str]] = None,
    timeout: float = 600,
) -> Dict[str, Any]:
    """Run ``source`` in a fresh interpreter (with tests/ on its
    path, so it can import helpers.leakcheck) and return its JSON report."""
    from .childproc import NEUTRAL_CWD, child_env

    child = child_env()
    child.pop("AIOMISC_C_NO_EXTENSIONS", None)      # leak checks are of C
    child.update(env or {})
    child["PYTHONPATH"] = os.pathsep.join([child["PYTHONPATH"], TESTS_DIR])
    proc = subprocess.run(
        [sys.executable, "-W", "error", "-c", source, *args],
        cwd=NEUTRAL_CWD, env=child, capture_output=True, text=True,
        timeout=timeout, check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    assert lines, proc.stdout + proc.stderr
    return json.loads(lines[-1])
