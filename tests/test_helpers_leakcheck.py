"""The leak harness itself: it must flag deliberate leaks and pass clean code.

Each case runs ``leakcheck.measure`` on a function that leaks in one
particular way (a reference taken from C and never given back, tracked
objects kept alive, untracked memory kept alive) and checks that exactly
the counters which must see it report it.  The same cases run under a debug
interpreter when one is installed, where the total reference count must
catch a reference leaked to an object nobody watches.
"""
import ctypes
import gc
import json
import os
import shutil
import subprocess
import sys
import sysconfig

import pytest

from helpers import leakcheck

CALLS = 2_000

# A reference taken through the C API and never released: what a missing
# Py_DECREF in an extension does.
_incref = ctypes.pythonapi.Py_IncRef
_incref.argtypes = [ctypes.py_object]
_incref.restype = None


def _leak_reference(obj):
    def run(calls):
        for _ in range(calls):
            _incref(obj)
    return run


def test_a_leaked_reference_to_a_watched_object_is_flagged():
    watched = object()
    report = leakcheck.measure(_leak_reference(watched), CALLS,
                               watched={"watched": watched, "int": int})
    assert set(report["leaks"]) >= {"refs:watched"}, report
    assert report["leaks"]["refs:watched"] == [CALLS] * leakcheck.MEASURED_RUNS
    assert "refs:int" not in report["leaks"], report
    with pytest.raises(AssertionError, match="refs:watched"):
        leakcheck.assert_no_leaks(report)


def test_kept_objects_are_flagged_as_objects_and_memory():
    kept = []

    def run(calls):
        for i in range(calls):
            kept.append([i])       # a GC-tracked object per call

    report = leakcheck.measure(run, CALLS)
    assert {"objects", "memory"} <= set(report["leaks"]), report
    assert all(delta >= CALLS for delta in report["leaks"]["objects"]), report


def test_kept_untracked_memory_is_flagged_as_memory():
    kept = []

    def run(calls):
        for i in range(calls):
            kept.append(b"x" * 64 + str(i).encode())  # bytes: not GC-tracked

    report = leakcheck.measure(run, CALLS)
    assert "memory" in report["leaks"], report


def test_clean_code_passes():
    watched = object()
    scratch = []

    def run(calls):
        for i in range(calls):
            scratch.append({"watched": watched, "i": i})
        scratch.clear()

    report = leakcheck.measure(run, CALLS, watched={"watched": watched})
    leakcheck.assert_no_leaks(report)
    assert report["deltas"]["refs:watched"] == [0] * leakcheck.MEASURED_RUNS


def test_growth_in_one_run_only_is_not_a_leak():
    # a cache that fills once (here: in the first measured run), then stays
    cache = {}
    runs = []

    def run(calls):
        runs.append(calls)
        if len(runs) == 2:
            cache.update((i, [i]) for i in range(calls))

    report = leakcheck.measure(run, CALLS)
    assert report["deltas"]["objects"][0] >= CALLS, report
    leakcheck.assert_no_leaks(report)


def test_settle_runs_before_every_measurement():
    settled = []
    leakcheck.measure(lambda calls: None, 1, settle=lambda: settled.append(1))
    assert len(settled) == 1 + leakcheck.MEASURED_RUNS


def test_total_refcount_is_used_exactly_on_debug_interpreters():
    report = leakcheck.measure(lambda calls: None, 1)
    assert report["total_refcount"] is hasattr(sys, "gettotalrefcount")
    assert ("total_refs" in report["deltas"]) is hasattr(sys, "gettotalrefcount")


# --- the same harness under a debug interpreter -----------------------------

DEBUG_CHILD = r'''
import ctypes, json, sys
from helpers import leakcheck

assert leakcheck.HAS_TOTAL_REFCOUNT
incref = ctypes.pythonapi.Py_IncRef
incref.argtypes = [ctypes.py_object]
unwatched = object()
watched = object()


def leaking(calls):
    for _ in range(calls):
        incref(unwatched)


def clean(calls):
    scratch = [object() for _ in range(calls)]
    del scratch


leak = leakcheck.measure(leaking, 1000, watched={"watched": watched})
ok = leakcheck.measure(clean, 1000, watched={"watched": watched})
print(json.dumps({"leak": leak, "ok": ok}))
'''


def _debug_interpreter():
    version = "%d.%d" % sys.version_info[:2]
    for name in ("python%s-dbg" % version, "python%sd" % version, "python3-dbg"):
        path = shutil.which(name)
        if path:
            return path
    return None


@pytest.mark.subprocess
def test_debug_interpreter_counts_every_reference():
    if hasattr(sys, "gettotalrefcount"):
        interpreter = sys.executable
    else:
        interpreter = _debug_interpreter()
    if interpreter is None:
        pytest.skip(
            "no debug interpreter (apt-get install python%s-dbg)"
            % sysconfig.get_python_version(),
        )
    tests_dir = os.path.dirname(os.path.dirname(leakcheck.__file__))
    env = dict(os.environ, PYTHONPATH=tests_dir)
    proc = subprocess.run(
        [interpreter, "-c", DEBUG_CHILD], env=env, capture_output=True,
        text=True, timeout=300, check=False,
    )
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    # the leaked references go to an object nobody watches: only the total
    # reference count can see them
    assert set(result["leak"]["leaks"]) == {"total_refs"}, result["leak"]
    assert all(delta >= 1000 for delta in result["leak"]["leaks"]["total_refs"])
    assert result["ok"]["leaks"] == {}, result["ok"]
    gc.collect()


LEAKING_CHILD = r'''
import ctypes
from helpers.leakcheck import measure, print_report

incref = ctypes.pythonapi.Py_IncRef
incref.argtypes = [ctypes.py_object]
watched = object()


def run(calls):
    for _ in range(calls):
        incref(watched)


print_report(measure(run, 500, watched={"watched": watched}))
'''


@pytest.mark.subprocess
def test_a_leaking_child_fails_the_check():
    # the path every leak test takes: child script, JSON report, assertion
    report = leakcheck.run_leak_script(LEAKING_CHILD)
    with pytest.raises(AssertionError, match="refs:watched"):
        leakcheck.assert_no_leaks(report)
