"""The buffered handler loses no record when the process ends.

Each test runs a child interpreter that configures ``aiomisc_c.log`` with a
buffered handler whose flush interval is an hour (so nothing is written by
the timer), logs from its event loop and then exits: normally, through
``sys.exit``, through an uncaught exception, or killed by SIGTERM.
"""
import json
import signal
import subprocess
import sys
import textwrap

import pytest

from helpers import signal_race
from helpers.childproc import NEUTRAL_CWD, child_env as package_env

pytestmark = pytest.mark.skipif(
    sys.platform == "win32", reason="POSIX signals and fork semantics",
)

RECORDS = 10_000
WAIT = 120

CHILD_PRELUDE = """
import asyncio, logging, os, signal, sys, time
import aiomisc_c.log

LOOP_KIND, LOG_FORMAT, BUFFER_SIZE, COUNT = (
    sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]),
)
if LOOP_KIND == "uvloop":
    import uvloop
    loop = uvloop.new_event_loop()
else:
    loop = asyncio.new_event_loop()
asyncio.set_event_loop(loop)
aiomisc_c.log.basic_config(
    level="debug", log_format=LOG_FORMAT, loop=loop,
    flush_interval=3600, buffer_size=BUFFER_SIZE,
)
log = logging.getLogger("child")

async def log_records():
    for i in range(COUNT):
        log.info("record %d", i)
"""


@pytest.fixture(params=["asyncio", "uvloop"])
def loop_kind(request):
    if request.param == "uvloop":
        pytest.importorskip("uvloop")
    return request.param


def child_env():
    env = package_env()
    env.pop("JOURNAL_STREAM", None)
    return env


def run_child(body, loop_kind, log_format, buffer_size=0, count=RECORDS):
    script = CHILD_PRELUDE + textwrap.dedent(body)
    return subprocess.run(
        [sys.executable, "-c", script, loop_kind, log_format,
         str(buffer_size), str(count)],
        capture_output=True, text=True, env=child_env(), timeout=WAIT,
        cwd=NEUTRAL_CWD,
    )


def assert_plain_records(text, count=RECORDS):
    lines = [line for line in text.splitlines() if line.startswith("record ")]
    assert lines == [f"record {i}" for i in range(count)]


def assert_json_records(text, count=RECORDS):
    payloads = [json.loads(line) for line in text.splitlines()]
    assert [p["msg"] for p in payloads] == [f"record {i}" for i in range(count)]
    assert {p["@fields"]["identifier"] for p in payloads} == {"child"}


@pytest.mark.parametrize("buffer_size", [0, 1024])
def test_records_logged_before_normal_exit_arrive(loop_kind, buffer_size):
    result = run_child(
        """
        loop.run_until_complete(log_records())
        loop.close()
        """,
        loop_kind, "json", buffer_size,
    )
    assert result.returncode == 0, result.stderr
    assert_json_records(result.stdout)


def test_records_arrive_on_sys_exit(loop_kind):
    result = run_child(
        """
        async def main():
            await log_records()
            sys.exit(3)

        loop.run_until_complete(main())
        """,
        loop_kind, "plain",
    )
    assert result.returncode == 3
    assert_plain_records(result.stderr)


def test_records_arrive_with_uncaught_exception(loop_kind):
    result = run_child(
        """
        async def main():
            await log_records()
            raise RuntimeError("crash after logging")

        loop.run_until_complete(main())
        """,
        loop_kind, "plain",
    )
    assert result.returncode == 1
    assert_plain_records(result.stderr)
    # the excepthook logged it through the same buffered handler, last
    tail = result.stderr.split("record 9999\n", 1)[1]
    assert tail.startswith("Unhandled exception\n")
    assert "RuntimeError: crash after logging" in tail


def test_user_handler_records_arrive(loop_kind, tmp_path):
    path = tmp_path / "records.log"
    result = run_child(
        f"""
        aiomisc_c.log.basic_config(
            log_format="disabled", loop=loop, flush_interval=3600,
            handlers=[logging.FileHandler({str(path)!r})],
        )
        loop.run_until_complete(log_records())
        """,
        loop_kind, "plain",
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    assert_plain_records(path.read_text())


SIGTERM_BODY = """
async def main():
    await log_records()
    print("ready", flush=True)
    await asyncio.sleep(3600)

loop.run_until_complete(main())
"""


def run_until_sigterm(body, loop_kind, log_format, count, tmp_path):
    stderr_path = tmp_path / "stderr.txt"
    script = CHILD_PRELUDE + textwrap.dedent(body)
    with open(stderr_path, "w") as stderr:
        proc = subprocess.Popen(
            [sys.executable, "-c", script, loop_kind, log_format, "0", str(count)],
            stdout=subprocess.PIPE, stderr=stderr, text=True, env=child_env(),
            cwd=NEUTRAL_CWD,
        )
        try:
            assert proc.stdout.readline() == "ready\n", stderr_path.read_text()
            proc.send_signal(signal.SIGTERM)
            proc.wait(WAIT)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            proc.stdout.close()
    return proc.returncode, stderr_path.read_text()


# 500 records stay in the buffer until SIGTERM (no early wake-up); 10,000
# cross the wake-up threshold, so some are written before and some after.
@pytest.mark.parametrize("count", [500, RECORDS])
def test_sigterm_flushes_every_record(loop_kind, count, tmp_path):
    returncode, stderr = run_until_sigterm(
        SIGTERM_BODY, loop_kind, "plain", count, tmp_path,
    )
    # still killed by the signal, as without the flush
    assert returncode == -signal.SIGTERM
    assert_plain_records(stderr, count)


def test_sigterm_with_application_handler(loop_kind, tmp_path):
    # The application handles SIGTERM itself (as the entrypoint does): the
    # log flush stays out of the way and the normal exit path delivers.
    returncode, stderr = run_until_sigterm(
        """
        loop.add_signal_handler(signal.SIGTERM, loop.stop)

        async def main():
            await log_records()
            print("ready", flush=True)

        loop.create_task(main())
        loop.run_forever()
        log.info("stopped by SIGTERM")
        """,
        loop_kind, "plain", 500, tmp_path,
    )
    assert returncode == 0, stderr
    assert_plain_records(stderr, 500)
    assert stderr.endswith("stopped by SIGTERM\n")


def test_sigterm_while_main_thread_sleeps(tmp_path):
    returncode, stderr = run_until_sigterm(
        """
        loop.run_until_complete(log_records())
        print("ready", flush=True)
        time.sleep(3600)
        """,
        "asyncio", "plain", 500, tmp_path,
    )
    assert returncode == -signal.SIGTERM
    assert_plain_records(stderr, 500)


# The C-level signal handler may run while the main thread is on its way into
# a blocking call (or in another thread): the Python handler then waits for
# the next wake-up, forever for an idle loop.  The child reproduces that
# window every time (see helpers.signal_race).
LOST_WAKEUP_BODY = signal_race.SOURCE + """
async def log_then_start_the_thread():
    await log_records()
    take_signal_in_a_thread(signal.SIGTERM, os.environ["TEST_WAIT_KIND"])
    print("ready", flush=True)

loop.run_until_complete(log_then_start_the_thread())
if os.environ["TEST_WAIT_KIND"] == "loop":
    loop.run_until_complete(asyncio.sleep(3600))
else:
    time.sleep(3600)
"""


@pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="reads /proc/<pid>/task",
)
@pytest.mark.parametrize("wait_kind", ["loop", "sleep"])
def test_sigterm_taken_while_main_thread_sleeps_still_flushes(
    loop_kind, wait_kind, tmp_path,
):
    stderr_path = tmp_path / "stderr.txt"
    script = CHILD_PRELUDE + LOST_WAKEUP_BODY
    env = child_env()
    env["TEST_WAIT_KIND"] = wait_kind
    with open(stderr_path, "w") as stderr:
        proc = subprocess.Popen(
            [sys.executable, "-c", script, loop_kind, "plain", "0", "500"],
            stdout=subprocess.PIPE, stderr=stderr, text=True, env=env,
            cwd=NEUTRAL_CWD,
        )
        try:
            assert proc.stdout.readline() == "ready\n", stderr_path.read_text()
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                pytest.fail("the SIGTERM handler never ran")
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            proc.stdout.close()
    assert proc.returncode == -signal.SIGTERM
    assert_plain_records(stderr_path.read_text(), 500)


def test_sigterm_of_a_forked_child_leaves_the_parent_alone(tmp_path):
    # Parent and forked child share the pipe that wakes the main thread on
    # a signal: the child's SIGTERM must not make the parent flush and die.
    result = run_child(
        """
        loop.run_until_complete(log_records())
        pid = os.fork()
        if pid == 0:
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(30)
            os._exit(1)
        _, status = os.waitpid(pid, 0)
        print("child", os.waitstatus_to_exitcode(status), flush=True)
        time.sleep(0.5)     # time for a wrong wake-up to reach us
        log.info("parent alive")
        loop.close()
        """,
        "asyncio", "plain", count=10,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"child {-signal.SIGTERM}\n"
    assert_plain_records(result.stderr, 10)
    assert result.stderr.endswith("parent alive\n")
