"""What a thread pool does when its loop closes, when it shuts down with
calls still running, and when a result cannot be delivered; over both twins
and both loop kinds.  The exit scenarios run in child processes, whose
stderr is what a user would see.
"""
import asyncio
import logging
import operator
import subprocess
import sys
import textwrap
import threading

import pytest
from helpers.childproc import NEUTRAL_CWD, child_env
from helpers.thread_pool_cases import Gate, new_loop, stats
from helpers.waiting import wait_event, wait_until_sync

from aiomisc_c import thread_pool

try:
    import uvloop
except ImportError:  # pragma: no cover
    uvloop = None


def dropped_records(caplog):
    return [
        r for r in caplog.records
        if r.name == "aiomisc_c.thread_pool" and "is closed" in r.getMessage()
    ]


# --------------------------------------------------------------------------
# a closed loop's queued calls


def test_queued_calls_of_a_closed_loop_are_dropped_unrun(
    implementation, loop_kind, pool_name, caplog,
):
    """Regression: after loop.close() the pool still ran every call queued
    for that loop and logged one line per call."""
    caplog.set_level(logging.WARNING)
    executor = thread_pool.ThreadPoolExecutor(1, statistic_name=pool_name)
    gate = Gate()
    ran = []
    closed_loop = new_loop(loop_kind)
    try:
        async def submit():
            executor.submit(gate)
            for i in range(50):
                executor.submit(ran.append, i)

        closed_loop.run_until_complete(submit())
        assert gate.started.wait(10)
    finally:
        closed_loop.close()
    try:
        gate.release.set()
        wait_until_sync(
            lambda: executor._core.unfinished == 0, message="the queue to empty",
        )
        wait_until_sync(
            lambda: dropped_records(caplog), message="the dropped calls' log line",
        )
        # the pool still serves open loops
        other = new_loop(loop_kind)
        try:
            async def use():
                return await asyncio.wait_for(executor.submit(operator.mul, 3, 4), 30)

            assert other.run_until_complete(use()) == 12
        finally:
            other.close()
    finally:
        executor.shutdown(wait=True)

    assert ran == []
    counters = stats(pool_name)
    assert counters["done"] == 2     # the gate and the call on the open loop
    records = dropped_records(caplog)
    assert [r.levelno for r in records] == [logging.WARNING]
    assert records[0].getMessage().endswith(
        "is closed. Dropping 51 thread pool call(s)",
    ), records[0].getMessage()


EXIT_CHILD = textwrap.dedent('''
    import asyncio, sys, threading, time
    from aiomisc_c.thread_pool import ThreadPoolExecutor

    MODE, LOOP = sys.argv[1], sys.argv[2]
    if LOOP == "uvloop":
        import uvloop
        loop = uvloop.new_event_loop()
    else:
        loop = asyncio.new_event_loop()

    pool = ThreadPoolExecutor(2)
    gate = threading.Event()
    started = threading.Semaphore(0)

    # (in a namespace of its own: queued calls must not keep this module's
    # globals, and with them the pool, alive until the very end of exit)
    namespace = {"started": started, "gate": gate}
    exec("def block():\\n    started.release()\\n    gate.wait()\\n", namespace)
    block = namespace["block"]

    async def main():
        for _ in range(2):
            pool.submit(block)
        for _ in range(400):
            pool.submit(time.sleep, 0)

    loop.run_until_complete(main())
    # both workers are busy: 400 calls stay queued
    assert started.acquire(timeout=30) and started.acquire(timeout=30)
    loop.close()
    if MODE == "shutdown":
        pool.shutdown(wait=False)
    elif MODE == "release":
        gate.set()
        deadline = time.monotonic() + 30
        while pool._core.unfinished and time.monotonic() < deadline:
            time.sleep(0.01)
    sys.stderr.write("done\\n")
    sys.stderr.flush()
''')


def run_exit_child(implementation, loop_kind, mode, tmp_path):
    if loop_kind == "uvloop" and uvloop is None:
        pytest.skip("uvloop is not installed")
    overrides = (
        {"AIOMISC_C_NO_EXTENSIONS": "1"} if implementation == "py"
        else {"AIOMISC_C_REQUIRE_EXTENSIONS": "1"}
    )
    env = child_env(**overrides)
    if implementation == "c":
        env.pop("AIOMISC_C_NO_EXTENSIONS", None)
    # (a script file, not -c: its globals are torn down with the modules at
    # exit, which is when the pool shuts down)
    script = tmp_path / "closing_child.py"
    script.write_text(EXIT_CHILD)
    result = subprocess.run(
        [sys.executable, str(script), mode, loop_kind],
        cwd=NEUTRAL_CWD, env=env, capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 0, result.stderr
    lines = result.stderr.splitlines()
    assert "done" in lines, result.stderr
    lines.remove("done")
    return lines


def test_exit_with_a_closed_loop_and_queued_calls_is_silent(
    implementation, loop_kind, tmp_path,
):
    """Regression: the pool, shut down while the interpreter finalized,
    printed one ``ImportError: sys.meta_path is None`` traceback per queued
    call (and could hang on a logging lock held by a dead daemon thread)."""
    assert run_exit_child(implementation, loop_kind, "exit", tmp_path) == []


def test_shutdown_with_a_closed_loop_logs_one_line(
    implementation, loop_kind, tmp_path,
):
    lines = run_exit_child(implementation, loop_kind, "shutdown", tmp_path)
    assert len(lines) == 1, lines
    assert lines[0].endswith("is closed. Dropping 402 thread pool call(s)"), lines


def test_calls_of_a_closed_loop_are_counted_once_per_batch(
    implementation, loop_kind, tmp_path,
):
    lines = run_exit_child(implementation, loop_kind, "release", tmp_path)
    # One line per worker's batch (2 workers), each with its count: the two
    # results that cannot be delivered and the 400 calls never run.
    counts = []
    for line in lines:
        assert "is closed. Dropping " in line, lines
        counts.append(int(line.split("Dropping ")[1].split()[0]))
    assert 1 <= len(counts) <= 2, lines
    assert sum(counts) == 402, lines


# --------------------------------------------------------------------------
# shutdown fails every unfinished future, running calls included


@pytest.mark.parametrize("pool_size", [2])
def test_shutdown_on_the_loop_thread_fails_every_unfinished_future_at_once(
    loop, pool, pool_name, run, loop_errors,
):
    gates = [Gate(), Gate()]
    ran = []

    async def main():
        running = [pool.submit(gate, "late result") for gate in gates]
        for gate in gates:
            await wait_event(gate.started)
        queued = [pool.submit(ran.append, i) for i in range(10)]
        pool.shutdown(wait=False)
        # as aiomisc: failed before shutdown() returns, on the loop thread
        assert all(f.done() for f in running + queued)
        for future in running + queued:
            assert type(future.exception()) is thread_pool.ThreadPoolException
            assert str(future.exception()) == "Pool closed"
        for gate in gates:
            gate.release.set()

    run(main())
    # the running calls finish; their results are dropped without a word
    wait_until_sync(lambda: stats(pool_name)["done"] == 2, message="calls end")
    wait_until_sync(lambda: stats(pool_name)["threads"] == 0, message="exit")
    assert ran == []
    assert stats(pool_name)["success"] == 2


@pytest.mark.parametrize("pool_size", [1])
def test_shutdown_from_another_thread_fails_running_futures(
    loop, pool, pool_name, run, loop_errors, caplog,
):
    caplog.set_level(logging.WARNING)
    gate = Gate()

    async def main():
        running = pool.submit(gate, "late result")
        await wait_event(gate.started)
        closer = threading.Thread(target=pool.shutdown, kwargs={"wait": True})
        closer.start()
        with pytest.raises(thread_pool.ThreadPoolException, match="^Pool closed$"):
            await asyncio.wait_for(running, 30)
        gate.release.set()
        while closer.is_alive():
            await asyncio.sleep(0.01)
        # a later result does not reach the failed future
        await asyncio.sleep(0.05)
        assert type(running.exception()) is thread_pool.ThreadPoolException

    run(main())
    assert stats(pool_name)["done"] == 1
    assert [r for r in caplog.records if r.name == "aiomisc_c.thread_pool"] == []


# --------------------------------------------------------------------------
# call_soon_threadsafe failing for another reason than a closed loop


class BrokenDelivery(Exception):
    pass


def broken_loop(loop_kind):
    if loop_kind == "uvloop":
        if uvloop is None:
            pytest.skip("uvloop is not installed")
        base = uvloop.Loop
    else:
        base = asyncio.SelectorEventLoop

    class BrokenLoop(base):
        broken = False

        def add_reader(self, *args, **kwargs):
            # no descriptor for the pool to signal: it delivers through
            # call_soon_threadsafe, the path under test
            raise NotImplementedError("this loop does not watch descriptors")

        def call_soon_threadsafe(self, *args, **kwargs):
            if self.broken:
                raise BrokenDelivery("cannot deliver")
            return super().call_soon_threadsafe(*args, **kwargs)

    return BrokenLoop()


def test_delivery_error_is_reported_not_taken_for_a_closed_loop(
    implementation, loop_kind, pool_name, caplog,
):
    """Regression: any exception of call_soon_threadsafe was taken to mean
    "the loop is closed"; only RuntimeError does."""
    caplog.set_level(logging.WARNING)
    executor = thread_pool.ThreadPoolExecutor(1, statistic_name=pool_name)
    event_loop = broken_loop(loop_kind)
    try:
        async def main():
            assert await asyncio.wait_for(executor.submit(operator.add, 1, 1), 30) == 2
            event_loop.broken = True
            lost = executor.submit(operator.add, 2, 2)
            del lost
            while not any(r.levelno == logging.ERROR for r in caplog.records):
                await asyncio.sleep(0.01)   # (bounded by run_until_complete's wait_for)
            event_loop.broken = False
            # not taken for closed: the loop is still served
            return await asyncio.wait_for(executor.submit(operator.mul, 3, 3), 30)

        assert event_loop.run_until_complete(asyncio.wait_for(main(), 30)) == 9
    finally:
        event_loop.close()
        executor.shutdown(wait=True)

    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1
    assert errors[0].getMessage().startswith(
        "Can not deliver 1 thread pool result(s) to ",
    )
    assert type(errors[0].exc_info[1]) is BrokenDelivery
    assert dropped_records(caplog) == []
