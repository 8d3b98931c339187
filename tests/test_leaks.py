"""Reference and memory leak check of the C thread pool.

``tests/leakcheck.py`` runs 100,000 threaded calls over every hot path in a
subprocess; here we compare its measurements taken after a warm-up and at the
end.  A leak of one reference or one small block per call would grow by
~100,000 references / several megabytes; the thresholds leave room only for
noise (free lists, caches, pending loop handles).
"""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from aiomisc_c import _compat, thread_pool  # noqa: F401 - registers the twins
from childproc import NEUTRAL_CWD, child_env

TESTS = Path(__file__).resolve().parent

REFCOUNT_SLACK = 20
MEMORY_SLACK = 512 * 1024      # bytes


def run_leakcheck(loop_kind, calls):
    env = dict(os.environ)
    env.pop("AIOMISC_C_NO_EXTENSIONS", None)
    env = child_env(env)
    proc = subprocess.run(
        [sys.executable, str(TESTS / "leakcheck.py"),
         "--loop", loop_kind, "--calls", str(calls)],
        cwd=NEUTRAL_CWD, env=env, capture_output=True, text=True, timeout=600,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    assert lines, proc.stdout + proc.stderr
    return json.loads(lines[-1])


@pytest.mark.slow
@pytest.mark.subprocess
@pytest.mark.c_extension
@pytest.mark.parametrize("loop_kind", ["asyncio", "uvloop"])
def test_threaded_calls_do_not_leak(loop_kind):
    if not _compat.c_available("thread_pool"):
        pytest.skip(f"C thread pool unavailable: {_compat._C_MISSING.get('thread_pool')}")
    if loop_kind == "uvloop":
        pytest.importorskip("uvloop")

    report = run_leakcheck(loop_kind, 100_000)
    if "skip" in report:
        pytest.skip(report["skip"])
    before, after = report["before"], report["after"]

    growth = {
        key: after[key] - before[key]
        for key in before if key not in ("memory", "objects")
    }
    leaking = {key: delta for key, delta in growth.items() if abs(delta) > REFCOUNT_SLACK}
    assert not leaking, f"reference counts grew over 100,000 calls: {leaking}"
    assert after["objects"] - before["objects"] < 1000, (before, after)
    assert after["memory"] - before["memory"] < MEMORY_SLACK, (
        f"traced memory grew by {after['memory'] - before['memory']} bytes"
    )
