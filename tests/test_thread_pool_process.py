"""Process-level reliability of the thread pool, in
subprocesses, for the C twin and the Python twin
(``AIOMISC_C_NO_EXTENSIONS=1``):

* interpreter exit with a busy pool exits cleanly, code 0, within a timeout;
* ``os.fork()`` while a pool is busy: the child neither hangs nor crashes,
  can use a fresh pool (and the inherited one does not hang), and exits 0.
"""
import os
import subprocess
import sys
import textwrap

import pytest

from aiomisc_c import _compat, thread_pool  # noqa: F401 - registers the twins
from helpers.childproc import child_env


pytestmark = [pytest.mark.subprocess]

IMPLEMENTATIONS = [
    pytest.param("c", marks=pytest.mark.c_extension, id="c"),
    pytest.param("python", id="py"),
]


@pytest.fixture(params=IMPLEMENTATIONS)
def subprocess_implementation(request):
    kind = request.param
    if kind == "c" and not _compat.c_available("thread_pool"):
        pytest.skip(f"C thread pool unavailable: {_compat._C_MISSING.get('thread_pool')}")
    return kind


def run_script(tmp_path, source, implementation, *args, timeout=120):
    script = tmp_path / "script.py"
    script.write_text(textwrap.dedent(source))
    env = dict(os.environ)
    env = child_env(env)
    env["PYTHONFAULTHANDLER"] = "1"
    if implementation == "python":
        env["AIOMISC_C_NO_EXTENSIONS"] = "1"
    else:
        env.pop("AIOMISC_C_NO_EXTENSIONS", None)
    try:
        proc = subprocess.run(
            [sys.executable, str(script), implementation, *args],
            cwd=str(tmp_path), env=env, capture_output=True, text=True,
            timeout=timeout, check=False,
        )
    except subprocess.TimeoutExpired as e:
        pytest.fail(
            f"the subprocess hung (> {timeout} s)\nstdout:\n{e.stdout}\nstderr:\n{e.stderr}",
        )
    return proc


COMMON = """
    import asyncio
    import sys
    import threading
    import time

    import aiomisc_c
    from aiomisc_c import thread_pool, utils

    EXPECTED = sys.argv[1]
    assert aiomisc_c.implementation["thread_pool"] == EXPECTED, (
        aiomisc_c.implementation, EXPECTED,
    )


    def policy_for(kind):
        if kind == "uvloop":
            import uvloop
            return uvloop.EventLoopPolicy()
        return asyncio.DefaultEventLoopPolicy()


    def new_loop(kind):
        if kind == "uvloop":
            import uvloop
            return uvloop.new_event_loop()
        return asyncio.new_event_loop()
"""


EXIT_SCRIPT = COMMON + """

    SCENARIO = sys.argv[2]
    LOOP_KIND = sys.argv[3]

    loop = utils.new_event_loop(pool_size=4, policy=policy_for(LOOP_KIND))
    pool = thread_pool.ThreadPoolExecutor(4, statistic_name="busy")
    never = threading.Event()


    def spin():
        # pure Python work: the worker keeps taking the GIL back
        end = time.monotonic() + 1000
        count = 0
        while time.monotonic() < end:
            count += 1


    async def main():
        pool.submit(time.sleep, 1000)
        pool.submit(never.wait)
        pool.submit(spin)
        queued = [pool.submit(sum, range(10)) for _ in range(10_000)]
        # a stream of quick items completing into the running loop
        quick = [thread_pool.threaded(abs)(-i) for i in range(20_000)]
        await asyncio.sleep(0.2)
        if SCENARIO == "sys-exit-in-loop":
            sys.exit(0)
        if SCENARIO == "shutdown-nowait":
            pool.shutdown(wait=False)
            await asyncio.gather(*queued, return_exceptions=True)
        return len(quick)


    loop.run_until_complete(main())
    print("main finished", flush=True)
    if SCENARIO == "loop-closed":
        loop.close()
    # leave with busy daemon workers, the loop open and items in flight
"""


@pytest.mark.slow
@pytest.mark.parametrize(
    "scenario",
    ["busy", "sys-exit-in-loop", "shutdown-nowait", "loop-closed"],
)
@pytest.mark.parametrize("loop_kind", ["asyncio", "uvloop"])
def test_interpreter_exit_with_a_busy_pool(tmp_path, subprocess_implementation, scenario, loop_kind):
    if loop_kind == "uvloop":
        pytest.importorskip("uvloop")
    proc = run_script(
        tmp_path, EXIT_SCRIPT, subprocess_implementation, scenario, loop_kind,
        timeout=60,
    )
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output
    assert "Fatal Python error" not in output, output
    assert "Traceback" not in proc.stderr, output
    if scenario != "sys-exit-in-loop":
        assert "main finished" in proc.stdout, output


FORK_SCRIPT = COMMON + """
    import json
    import os
    import signal
    import traceback

    LOOP_KIND = sys.argv[2]
    CHILDREN = int(sys.argv[3])

    pool = thread_pool.ThreadPoolExecutor(4, statistic_name="parent")
    stop = threading.Event()
    blocker = threading.Event()
    hammering = threading.Event()


    def hammer():
        # a loop in another thread keeps the pool busy while we fork
        own_loop = new_loop(LOOP_KIND)

        async def run():
            pool.submit(blocker.wait)
            hammering.set()
            while not stop.is_set():
                await asyncio.gather(*(pool.submit(abs, -i) for i in range(200)))

        try:
            own_loop.run_until_complete(run())
        finally:
            own_loop.close()


    def child(index):
        loop = utils.new_event_loop(pool_size=2, policy=policy_for(LOOP_KIND))

        async def main():
            assert await thread_pool.threaded(abs)(-5) == 5
            fresh = thread_pool.ThreadPoolExecutor(2)
            assert await fresh.submit(abs, -6) == 6
            fresh.shutdown(wait=True)
            try:
                value = await asyncio.wait_for(pool.submit(abs, -7), 5)
                inherited = f"ok:{value}"
            except asyncio.TimeoutError:
                inherited = "timeout"
            except Exception as e:
                inherited = f"{type(e).__name__}:{e}"
            return inherited

        try:
            inherited = loop.run_until_complete(asyncio.wait_for(main(), 30))
        finally:
            loop.close()
        # one write(2) per report: the children share the pipe, and a
        # buffered print() could interleave with a sibling's
        os.write(1, (json.dumps({"child": index, "inherited": inherited}) + "\\n").encode())
        return 0


    thread = threading.Thread(target=hammer, daemon=True)
    thread.start()
    assert hammering.wait(30)
    time.sleep(0.1)

    children = []
    for index in range(CHILDREN):
        pid = os.fork()
        if pid == 0:
            try:
                code = child(index)
            except BaseException:
                traceback.print_exc()
                sys.stderr.flush()
                os._exit(2)
            if index % 2:
                os._exit(code)
            sys.exit(code)          # a normal interpreter exit in the child
        children.append(pid)
        time.sleep(0.02)

    statuses = {}
    deadline = time.monotonic() + 90
    while len(statuses) < len(children) and time.monotonic() < deadline:
        for pid in children:
            if pid in statuses:
                continue
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                statuses[pid] = os.waitstatus_to_exitcode(status)
        time.sleep(0.01)

    hung = [pid for pid in children if pid not in statuses]
    for pid in hung:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)

    stop.set()
    blocker.set()
    thread.join(30)
    pool.shutdown(wait=True)
    print(json.dumps({"statuses": list(statuses.values()), "hung": len(hung)}), flush=True)
    sys.exit(0 if not hung and all(code == 0 for code in statuses.values()) else 3)
"""


@pytest.mark.slow
@pytest.mark.parametrize("loop_kind", ["asyncio", "uvloop"])
def test_fork_with_a_busy_pool(tmp_path, subprocess_implementation, loop_kind):
    if loop_kind == "uvloop":
        pytest.importorskip("uvloop")
    children = 8
    proc = run_script(
        tmp_path, FORK_SCRIPT, subprocess_implementation, loop_kind, str(children),
        timeout=180,
    )
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output
    assert "Fatal Python error" not in output, output

    import json

    reports = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    child_reports = [r for r in reports if "child" in r]
    assert len(child_reports) == children, output
    for report in child_reports:
        # the inherited pool may work again or refuse work, but never hang
        assert report["inherited"] != "timeout", output


@pytest.mark.slow
@pytest.mark.parametrize("loop_kind", ["asyncio", "uvloop"])
def test_exit_after_forks_collects_channels_safely(tmp_path, loop_kind):
    """Regression: at interpreter exit the garbage collector may clear a
    result channel that still holds a batch in the same pass as the C
    types; tp_clear then must not look the module state up through the
    type (PyType_GetModuleByDef on a cleared type crashed, in about one run
    of the fork script in ten).  Several runs make a regression show."""
    if loop_kind == "uvloop":
        pytest.importorskip("uvloop")
    if not _compat.c_available("thread_pool"):
        pytest.skip("the C thread pool is not built")
    for attempt in range(10):
        proc = run_script(tmp_path, FORK_SCRIPT, "c", loop_kind, "8", timeout=180)
        output = proc.stdout + proc.stderr
        assert proc.returncode == 0, f"run {attempt}: {output}"
        assert "Fatal Python error" not in output, f"run {attempt}: {output}"
