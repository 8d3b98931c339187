"""Entrypoint: ``with entrypoint(): pass``, with and without services, and
the cost of ``import`` in a fresh interpreter.

* ``entrypoint(policy=..., log_config=False)``: both aiomisc_c and aiomisc
  17.x accept ``log_config=False``, so neither touches logging (the log setup,
  with its handlers and writer thread, is not measured). Everything else is the
  default: an owned loop made by the policy of the loop kind, a default thread
  pool of ``DEFAULT_AIOMISC_POOL_SIZE`` workers, SIGINT/SIGTERM handlers set
  and restored (the benchmark runs in the main thread).
* With services: ten fresh instances of a ``Service`` subclass whose ``start``
  returns at once and ``stop`` does nothing (an instance starts once, so they
  are made inside the timed loop; making them is part of the cost).
* The peer: ``asyncio.run`` of an empty coroutine with the same policy
  installed: a loop, no thread pool (asyncio makes its default executor on
  first use), no signal handlers. The stdlib has no services: it is absent from
  that case.
* New loop: ``utils.new_event_loop(policy=...)`` then ``loop.close()``: a
  loop of the policy made the thread's current one, with the package's
  thread pool as its default executor (closed with the loop). The peer is
  ``policy.new_event_loop()`` then ``close()``: a bare loop, no pool.
* Import: ``python -X importtime -c "import X"`` in a new process per
  iteration; the value is the cumulative import time of ``X`` reported there.
  The loop kind plays no part in it (measured on both for the record).

Run alone: ``python -m benchmarks --only entrypoint``.
"""
import os
import shutil
import subprocess
import sys
import tempfile
import time
from typing import Any, Callable, Dict, List, Optional, Tuple

from ._harness import (
    AIOMISC, AIOMISC_C, AIOMISC_C_PY, Case, Fixture, Subject, Unavailable,
    aiomisc_c_facts, describe_loop, import_peer, loop_policy, median,
    require_aiomisc_c,
)

TITLE = "Entrypoint"

STDLIB = Subject(
    "stdlib", "stdlib (peer: asyncio.run / import asyncio)", "stdlib",
    note="peer, not a drop-in: asyncio.run(empty()) under the loop kind's "
         "policy (no thread pool, no signal handlers); import asyncio",
)
SUBJECTS = (AIOMISC_C, AIOMISC_C_PY, AIOMISC, STDLIB)
BASELINE = AIOMISC.name
REFERENCES = (STDLIB.name,)
LOOPS = ("asyncio", "uvloop")

SERVICES = 10

CASES = (
    # on 2 vCPUs aiomisc 17.x takes ~12 ms per enter+exit, aiomisc_c 1-4 ms:
    # 50 iterations keep a sample of aiomisc under a second
    Case("enter_exit", "with entrypoint(): pass (peer: asyncio.run(empty()))",
         iterations=50, short="entrypoint enter+exit"),
    Case("enter_exit_services",
         f"with entrypoint(*{SERVICES} trivial services): pass",
         iterations=40, short=f"enter+exit, {SERVICES} services"),
    # one new interpreter per iteration (~0.2 s each); the sample is the
    # median of its iterations
    Case("new_loop_close", "new_event_loop() then close() (peer: "
         "policy.new_event_loop() then close())", iterations=100,
         short="new_event_loop + close"),
    Case("import_cold", "import in a new process (import aiomisc_c / "
         "import aiomisc / import asyncio)", iterations=3, kind="value",
         unit="ns/op", short="cold import"),
)


# --- import in a new interpreter -------------------------------------------
#
# Of the two ways to time it, -X importtime is the more robust one: it times
# the import inside the new process, so the process spawn, interpreter start
# and teardown (~20 ms, with noise of a few ms on these machines) are not part
# of the number, while "wall time of `-c 'import X'` minus wall time of `-c
# pass`" subtracts two noisy numbers of which the import is a part. The
# wall-clock difference is recorded too, in the sample's extras, as a check.
#
# "Cold" means a fresh interpreter, not a cold disk nor a missing bytecode
# cache: every subject imports from .pyc files, as an installed package does.
# The new processes write and read them under a private PYTHONPYCACHEPREFIX
# (filled once in setup(), outside the timings), with PYTHONDONTWRITEBYTECODE
# dropped: with it set (as on the CI machines) and no .pyc next to the
# sources, a source-tree aiomisc_c would be compiled on every import (~100 ms
# here) while aiomisc, installed by pip, comes with its .pyc files.

def _importtime_ns(stderr: str, module: str) -> int:
    """Cumulative time of the top-level import of ``module``, in ns."""
    for line in stderr.splitlines():
        if not line.startswith("import time:"):
            continue
        parts = line.split("|")
        if len(parts) != 3:
            continue
        name = parts[2][1:]         # one separator space, then the nesting
        if name == module:          # top level: no indentation
            try:
                return int(parts[1]) * 1_000
            except ValueError:
                continue
    raise RuntimeError(
        f"no top-level import of {module!r} in -X importtime output:\n"
        + stderr[-2000:],
    )


def import_body(
    module: str, env: Dict[str, str],
) -> Callable[[int], Tuple[float, Dict[str, Any]]]:
    def run(code: str, importtime: bool) -> subprocess.CompletedProcess:
        argv = [sys.executable]
        if importtime:
            argv += ["-X", "importtime"]
        return subprocess.run(
            argv + ["-c", code], env=env, capture_output=True, text=True,
            check=True,
        )

    def wall(code: str) -> int:
        started = time.perf_counter_ns()
        run(code, importtime=False)
        return time.perf_counter_ns() - started

    # fills the bytecode cache: the timed imports all read .pyc files
    run(f"import {module}", importtime=False)

    def body(iterations: int) -> Tuple[float, Dict[str, Any]]:
        values: List[int] = []
        for _ in range(iterations):
            done = run(f"import {module}", importtime=True)
            values.append(_importtime_ns(done.stderr, module))
        # the check: one wall-clock pair per sample
        baseline = wall("pass")
        with_import = wall(f"import {module}")
        return median(values), {
            "importtime_ns": values,
            "wall_minus_pass_ns": with_import - baseline,
        }

    return body


def _import_env(
    package_file: Optional[str], pycache: str,
) -> Dict[str, str]:
    """The child's environment (AIOMISC_C_NO_EXTENSIONS included) with the
    bytecode cache in ``pycache``; for aiomisc_c, its import root in front of
    PYTHONPATH, so that the new process imports the very package measured
    here."""
    env = dict(os.environ)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env["PYTHONPYCACHEPREFIX"] = pycache
    if package_file:
        root = os.path.dirname(os.path.dirname(os.path.abspath(package_file)))
        env["PYTHONPATH"] = os.pathsep.join(
            p for p in (root, env.get("PYTHONPATH")) if p
        )
    return env


# --- per-subject wiring -----------------------------------------------------

def entrypoint_bodies(
    lib: Any, policy: Any,
) -> Tuple[Dict[str, Callable[[int], None]], str]:
    entrypoint = lib.entrypoint

    class Trivial(lib.Service):
        async def start(self) -> None:
            return None

        async def stop(self, exception: Optional[Exception] = None) -> None:
            return None

    def enter_exit(iterations: int) -> None:
        for _ in range(iterations):
            with entrypoint(policy=policy, log_config=False):
                pass

    def new_loop_close(iterations: int) -> None:
        new_event_loop = lib.utils.new_event_loop
        for _ in range(iterations):
            new_event_loop(policy=policy).close()

    def enter_exit_services(iterations: int) -> None:
        for _ in range(iterations):
            services = [Trivial() for _ in range(SERVICES)]
            with entrypoint(*services, policy=policy, log_config=False):
                pass

    # once outside the timings: the loop class actually used, for the facts
    with entrypoint(policy=policy, log_config=False) as loop:
        loop_class = describe_loop(loop)
    return {
        "enter_exit": enter_exit,
        "enter_exit_services": enter_exit_services,
        "new_loop_close": new_loop_close,
    }, loop_class


def setup(subject: str, loop_kind: str) -> Fixture:
    pycache = tempfile.mkdtemp(prefix="aiomisc_c_bench_pyc_")
    try:
        return _setup(subject, loop_kind, pycache)
    except BaseException:
        shutil.rmtree(pycache, ignore_errors=True)
        raise


def _setup(subject: str, loop_kind: str, pycache: str) -> Fixture:
    policy = loop_policy(loop_kind)
    facts: Dict[str, Any] = {"loop_kind": loop_kind}

    if subject in (AIOMISC_C.name, AIOMISC_C_PY.name):
        # the entrypoint runs on aiomisc_c's thread pool and loop twins (the
        # latter bound in aiomisc_c.utils: there is no aiomisc_c.loop module)
        require_aiomisc_c(subject, "thread_pool")
        import aiomisc_c

        want = "c" if subject == AIOMISC_C.name else "python"
        got = aiomisc_c.implementation.get("loop")
        if got != want:
            raise Unavailable(
                f"aiomisc_c's loop runs the {got!r} twin, not {want!r}",
            )

        facts.update(aiomisc_c_facts("loop"))
        bodies, loop_class = entrypoint_bodies(aiomisc_c, policy)
        bodies["import_cold"] = import_body(
            "aiomisc_c", _import_env(aiomisc_c.__file__, pycache),
        )

    elif subject == AIOMISC.name:
        aiomisc, facts["version"] = import_peer("aiomisc")
        bodies, loop_class = entrypoint_bodies(aiomisc, policy)
        bodies["import_cold"] = import_body(
            "aiomisc", _import_env(None, pycache),
        )

    elif subject == STDLIB.name:
        import asyncio

        asyncio.set_event_loop_policy(policy)
        run = asyncio.run

        async def empty() -> None:
            return None

        def enter_exit(iterations: int) -> None:
            for _ in range(iterations):
                run(empty())

        def new_loop_close(iterations: int) -> None:
            for _ in range(iterations):
                policy.new_event_loop().close()

        async def running_loop() -> str:
            return describe_loop(asyncio.get_running_loop())

        loop_class = run(running_loop())
        bodies = {
            "enter_exit": enter_exit,
            "new_loop_close": new_loop_close,
            "import_cold": import_body("asyncio", _import_env(None, pycache)),
        }

    else:
        raise ValueError(f"unknown subject {subject!r}")

    facts["loop_class"] = loop_class

    def close() -> None:
        shutil.rmtree(pycache, ignore_errors=True)

    return Fixture(loop=None, bodies=bodies, close=close, facts=facts)


if __name__ == "__main__":
    from .run import main
    main(["--only", "entrypoint"])
