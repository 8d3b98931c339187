"""Real processes run an entrypoint and get SIGTERM/SIGINT.

Each child prints ``ready`` on stdout once its services started; the test
then sends the signal and checks the exit status, that every service's
``stop()`` ran and that every log line was written.
"""
import os
import signal
import subprocess
import sys
import textwrap

import pytest
from helpers import signal_race
from helpers.childproc import NEUTRAL_CWD
from helpers.childproc import child_env as package_env

pytestmark = [
    pytest.mark.subprocess,
    pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals"),
]

WAIT = 60
EXAMPLE = os.path.join(
    os.path.dirname(os.path.abspath(__file__)), "..", "examples",
    "service_app.py",
)

CHILD_PRELUDE = """
import asyncio, logging, os, signal, sys
from aiomisc_c.entrypoint import entrypoint
from aiomisc_c.service import Service

LOOP_KIND = sys.argv[1]
if LOOP_KIND == "uvloop":
    import uvloop
    POLICY = uvloop.EventLoopPolicy()
else:
    POLICY = asyncio.DefaultEventLoopPolicy()
log = logging.getLogger("child")

def ready():
    print("ready", flush=True)

class Worker(Service):
    async def start(self):
        self.start_event.set()
        while True:
            await asyncio.sleep(0.05)

    async def stop(self, exception=None):
        await asyncio.sleep(0.05)
        log.info("stopped %s: %r", self.name, exception)
"""


@pytest.fixture(params=["asyncio", "uvloop"])
def loop_kind(request):
    if request.param == "uvloop":
        pytest.importorskip("uvloop")
    return request.param


def child_env(**overrides):
    env = package_env(**overrides)
    env.pop("JOURNAL_STREAM", None)
    return env


def start_child(args, env=None):
    process = subprocess.Popen(
        [sys.executable, "-W", "error", *args],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env=env or child_env(), cwd=NEUTRAL_CWD,
    )
    return process


def wait_ready(process, marker="ready"):
    """Read stdout lines until ``marker``; returns the lines read."""
    lines = []
    for line in process.stdout:
        lines.append(line.rstrip("\n"))
        if marker in line:
            return lines
    out, err = process.communicate(timeout=WAIT)
    raise AssertionError(
        f"child exited before {marker!r}: rc={process.returncode}\n"
        f"stdout={lines!r}{out}\nstderr={err}",
    )


def finish(process):
    out, err = process.communicate(timeout=WAIT)
    return process.returncode, out, err


def run_script(body, loop_kind, signals=(signal.SIGTERM,), env=None):
    script = CHILD_PRELUDE + textwrap.dedent(body)
    process = start_child(["-c", script, loop_kind], env=env)
    try:
        wait_ready(process)
        for sig in signals:
            process.send_signal(sig)
        return finish(process)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


GRACEFUL = """
logging.getLogger().setLevel(logging.INFO)
with entrypoint(
    *(Worker(name=f"w{i}") for i in range(5)),
    policy=POLICY, log_format="plain", log_level="info",
    log_flush_interval=3600,    # only the exit path writes the records
) as loop:
    for i in range(2000):
        log.info("line %d", i)
    loop.call_soon(ready)
    loop.run_forever()
log.info("after exit")
"""


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signal_graceful_shutdown(loop_kind, sig):
    rc, _out, err = run_script(GRACEFUL, loop_kind, signals=(sig,))
    assert rc == 0, err
    lines = err.splitlines()
    assert "Interrupt signal received, shutting down..." in lines
    stopped = sorted(
        line for line in lines if line.startswith("stopped ")
    )
    assert stopped == [
        f"stopped w{i}: RuntimeError('Interrupt signal received')"
        for i in range(5)
    ]
    assert [line for line in lines if line.startswith("line ")] == [
        f"line {i}" for i in range(2000)
    ]
    assert lines[-1] == "after exit"


def test_repeated_signals_start_one_shutdown(loop_kind):
    body = """
    class Slow(Service):
        async def start(self):
            pass

        async def stop(self, exception=None):
            print("stop called", flush=True)
            await asyncio.sleep(0.5)
            log.info("slow stopped")

    with entrypoint(Slow(), policy=POLICY, log_format="plain") as loop:
        loop.call_soon(ready)
        loop.run_forever()
    print("exited", flush=True)
    """
    script = CHILD_PRELUDE + textwrap.dedent(body)
    process = start_child(["-c", script, loop_kind])
    try:
        wait_ready(process)
        process.send_signal(signal.SIGINT)
        wait_ready(process, "stop called")
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGINT):
            process.send_signal(sig)
        rc, out, err = finish(process)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert rc == 0, err
    assert out.count("stop called") == 0     # already read: exactly one
    assert "exited" in out
    assert err.count("Interrupt signal received, shutting down...") == 1
    assert "slow stopped" in err
    assert "KeyboardInterrupt" not in err


def test_hanging_stop_ends_at_timeout_with_exit_70(loop_kind):
    body = """
    class Hanging(Service):
        async def start(self):
            pass

        async def stop(self, exception=None):
            await asyncio.sleep(3600)

    with entrypoint(
        Hanging(), Worker(name="ok"), policy=POLICY, log_format="plain",
        shutdown_timeout=0.5,
    ) as loop:
        loop.call_soon(ready)
        loop.run_forever()
    """
    rc, _out, err = run_script(body, loop_kind)
    assert rc == 70, err
    assert "stopped ok: RuntimeError('Interrupt signal received')" in err
    assert "Shutdown did not happen in 0.5 seconds, aborting." in err
    assert err.count("Shutdown did not happen") == 1


def test_failing_start_reaches_caller_and_others_stop(loop_kind):
    body = """
    class Failing(Service):
        async def start(self):
            await asyncio.sleep(0.1)
            raise ValueError("cannot start")

    ready()
    with entrypoint(Failing(), Worker(name="ok"), policy=POLICY,
                    log_format="plain"):
        print("body ran", flush=True)
    """
    script = CHILD_PRELUDE + textwrap.dedent(body)
    process = start_child(["-c", script, loop_kind])
    rc, out, err = finish(process)
    assert rc == 1
    assert "body ran" not in out
    assert "ValueError: cannot start" in err
    assert "stopped ok: ValueError('cannot start')" in err


def test_environment_defaults(loop_kind):
    body = """
    from aiomisc_c.entrypoint import Entrypoint
    print(
        Entrypoint.AIOMISC_SHUTDOWN_TIMEOUT, Entrypoint.DEFAULT_LOG_LEVEL,
        Entrypoint.DEFAULT_LOG_FORMAT, Entrypoint.DEFAULT_AIOMISC_POOL_SIZE,
        Entrypoint.DEFAULT_AIOMISC_BUFFER_SIZE, Entrypoint.DEFAULT_AIOMISC_DEBUG,
        Entrypoint.DEFAULT_AIOMISC_BUFFERING, Entrypoint.DEFAULT_AIOMISC_LOG_FLUSH,
        Entrypoint.DEFAULT_AIOMISC_LOG_CONFIG, Entrypoint.DEFAULT_LOG_DATE_FORMAT,
    )
    ep = Entrypoint(policy=POLICY)
    print(ep.shutdown_timeout, ep.log_level, ep.pool_size, ep.log_config)
    """
    env = child_env(
        AIOMISC_SHUTDOWN_TIMEOUT="2.5", AIOMISC_LOG_LEVEL="debug",
        AIOMISC_LOG_FORMAT="json", AIOMISC_POOL_SIZE="3",
        AIOMISC_LOG_BUFFER="7", AIOMISC_DEBUG="yes",
        AIOMISC_LOG_BUFFERING="off", AIOMISC_LOG_FLUSH="0.5",
        AIOMISC_LOG_CONFIG="0", AIOMISC_LOG_DATE_FORMAT="%H",
    )
    script = CHILD_PRELUDE + textwrap.dedent(body)
    result = subprocess.run(
        [sys.executable, "-W", "error", "-c", script, loop_kind],
        capture_output=True, text=True, env=env, cwd=NEUTRAL_CWD,
        timeout=WAIT, check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        "2.5 debug json 3 7 True False 0.5 False %H",
        "2.5 debug 3 False",
    ]


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_example_service_app(loop_kind, sig):
    env = child_env(AIOMISC_USE_UVLOOP="1" if loop_kind == "uvloop" else "0")
    process = start_child([EXAMPLE, "--interval", "0.05"], env=env)
    try:
        # The example logs to stderr; wait for its own echo check.
        for line in process.stderr:
            if line.startswith("echo replied"):
                assert line.strip() == "echo replied b'hello\\n'"
                break
        else:
            pytest.fail(f"example failed: {finish(process)}")
        process.send_signal(sig)
        rc, _out, err = finish(process)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert rc == 0, err
    lines = err.splitlines()
    assert "Interrupt signal received, shutting down..." in lines
    assert "echo server stopped" in lines
    assert any(line.startswith("ticker stopped after") for line in lines)
    assert lines[-1] == "bye"


def test_example_service_app_stops_by_itself():
    process = start_child([EXAMPLE, "--run-for", "0.5"])
    rc, _out, err = finish(process)
    assert rc == 0, err
    assert "echo replied b'hello\\n'" in err
    assert err.splitlines()[-1] == "bye"


RUN_UNTIL_COMPLETE = """
class Slow(Service):
    async def start(self):
        pass

    async def stop(self, exception=None):
        await asyncio.sleep(STOP_SECONDS)
        log.info("slow stopped")

async def main():
    ready()
    await asyncio.sleep(3600)

try:
    with entrypoint(Slow(), Worker(name="ok"), policy=POLICY,
                    log_format="plain", shutdown_timeout=1) as loop:
        loop.run_until_complete(main())
except asyncio.CancelledError:
    # The shutdown cancels the loop's other tasks, main() included.
    print("main cancelled", flush=True)
"""


def test_signal_during_run_until_complete(loop_kind):
    body = "STOP_SECONDS = 0.2\n" + RUN_UNTIL_COMPLETE
    rc, out, err = run_script(body, loop_kind)
    assert rc == 0, err
    assert "main cancelled" in out
    assert "slow stopped" in err
    assert "stopped ok: RuntimeError('Interrupt signal received')" in err
    assert "Task was destroyed" not in err
    assert "Traceback" not in err


def test_signal_during_run_until_complete_timeout(loop_kind):
    body = "STOP_SECONDS = 3600\n" + RUN_UNTIL_COMPLETE
    rc, _out, err = run_script(body, loop_kind)
    assert rc == 70, err
    assert "stopped ok: RuntimeError('Interrupt signal received')" in err
    assert "Shutdown did not happen in 1.0 seconds, aborting." in err


@pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="reads /proc/<pid>/task",
)
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signal_taken_while_the_idle_loop_sleeps_still_shuts_down(
    loop_kind, sig,
):
    # The signal lands where it does not interrupt the main thread's
    # epoll_wait (see helpers.signal_race) and nothing else would ever wake
    # the idle loop: the shutdown must start all the same.
    body = signal_race.SOURCE + f"""
class Idle(Service):
    async def start(self):
        pass

    async def stop(self, exception=None):
        log.info("stopped idle: %r", exception)

def take_the_signal():
    take_signal_in_a_thread({int(sig)}, "loop")
    ready()

with entrypoint(Idle(), policy=POLICY, log_format="plain") as loop:
    loop.call_soon(take_the_signal)
    loop.run_forever()
print("exited", flush=True)
"""
    script = CHILD_PRELUDE + body
    process = start_child(["-c", script, loop_kind])
    try:
        wait_ready(process)
        try:
            rc, out, err = process.wait(30), *process.communicate()
        except subprocess.TimeoutExpired:
            pytest.fail("the signal handler never ran")
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        process.stdout.close()
        process.stderr.close()
    assert rc == 0, err
    assert out == "exited\n"
    assert "Interrupt signal received, shutting down..." in err
    assert "stopped idle: RuntimeError('Interrupt signal received')" in err
