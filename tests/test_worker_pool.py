"""WorkerPool against real worker processes, on both loops."""
import asyncio
import operator
import os
import pickle
import signal
import threading
import time
from multiprocessing import ProcessError

import pytest

import aiomisc_c
from aiomisc_c.worker_pool import RemoteTraceback, WorkerPool, WorkerPoolStatistic
from helpers.processes import descendants, open_fds
from helpers.waiting import wait_until

pytestmark = [pytest.mark.timeout(60), pytest.mark.subprocess]

WORKERS = 2
INITIALIZED = None


@pytest.fixture
def loop(plain_loop):
    # WorkerPool has no C twin: both loops, one thread-pool twin.
    return plain_loop


@pytest.fixture
def pool(run, request):
    pool = WorkerPool(WORKERS, statistic_name=request.node.name)
    run(pool.start())
    try:
        yield pool
    finally:
        run(pool.close())


# -- functions run in the workers (module level: pickled by reference) --------


def set_initialized(value, *, suffix=""):
    global INITIALIZED
    INITIALIZED = f"{value}{suffix}"


def get_initialized():
    return INITIALIZED


def append_line(path):
    with open(path, "a") as fp:
        fp.write(f"{os.getpid()}\n")


def failing_initializer():
    raise ValueError("initializer failed on purpose")


def sleep_and_report(path, seconds):
    with open(path, "w") as fp:
        fp.write(str(os.getpid()))
    time.sleep(seconds)


def ignore_cancellation(path):
    with open(path, "w") as fp:
        fp.write(str(os.getpid()))
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            time.sleep(0.05)
        except asyncio.CancelledError:
            pass


def return_unpicklable():
    return threading.Lock()


class Unpicklable(Exception):
    def __reduce__(self):
        raise TypeError("this exception refuses to be pickled")


def raise_unpicklable():
    raise Unpicklable("boom")


def raise_value_error(message):
    raise ValueError(message)


def is_main_thread():
    return threading.current_thread() is threading.main_thread()


def keyword_call(a, *, b):
    return a - b


# -----------------------------------------------------------------------------


def test_squares(pool, run):
    async def main():
        return await asyncio.gather(
            *(pool.create_task(operator.mul, i, i) for i in range(WORKERS * 2)),
        )

    assert run(main()) == [i * i for i in range(WORKERS * 2)]
    assert run(pool.create_task(keyword_call, 5, b=2)) == 3


def test_exceptions_keep_type_and_traceback(pool, run):
    async def main():
        return await asyncio.gather(
            *(pool.create_task(operator.truediv, i, 0) for i in range(WORKERS * 2)),
            return_exceptions=True,
        )

    for result in run(main()):
        assert isinstance(result, ZeroDivisionError)
    with pytest.raises(ValueError, match="from the worker") as info:
        run(pool.create_task(raise_value_error, "from the worker"))
    cause = info.value.__cause__
    assert isinstance(cause, RemoteTraceback)
    assert "raise_value_error" in str(cause)
    assert 'raise ValueError(message)' in str(cause)


def test_worker_exit_is_a_process_error_and_respawns(pool, run):
    async def main():
        results = await asyncio.gather(
            *(pool.create_task(exit, 1) for _ in range(WORKERS * 3)),
            return_exceptions=True,
        )
        for result in results:
            assert isinstance(result, ProcessError), result
            assert "unexpected exited" in str(result)
        # respawned: the pool serves again with a full set of workers
        assert await pool.create_task(operator.add, 1, 2) == 3
        await wait_until(lambda: len(pool.pids) == WORKERS, message="respawn")

    run(main())


async def worker_pids(pool):
    """The PIDs of the pool's workers, once they all connected."""
    await wait_until(lambda: len(pool.pids) == WORKERS, message="workers")
    return set(pool.pids)


def gone(pid):
    """``pid`` exited and was reaped (a zombie is still a descendant)."""
    return pid not in descendants()


def test_cancel_kills_and_replaces_the_worker(run, tmp_path, request):
    marker = tmp_path / "pid"
    name = f"cancel-{request.node.name}"

    async def main():
        # uvloop opens /dev/null once, on its first server: warm up.
        async with WorkerPool(1) as warm_up:
            await warm_up.create_task(int)
        children_before = descendants()
        fds_before = open_fds()
        async with WorkerPool(
            1, initializer=set_initialized, initializer_args=("ready",),
            statistic_name=name,
        ) as pool:
            task = asyncio.ensure_future(
                pool.create_task(sleep_and_report, str(marker), 60),
            )
            await wait_until(lambda: marker.exists() and marker.read_text(), message="job")
            pid = int(marker.read_text())
            assert pool.pids == {pid}
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            await wait_until(lambda: gone(pid), message="the worker reaped")
            # A fresh worker serves the next call, with the initializer's state.
            assert await pool.create_task(get_initialized) == "ready"
            new_pid = await pool.create_task(os.getpid)
            assert new_pid != pid and pool.pids == {new_pid}
            stats = {
                metric: value
                for _, stat_name, metric, value in aiomisc_c.get_statistics(
                    WorkerPoolStatistic,
                )
                if stat_name == name
            }
            assert stats["spawning"] == 2
            assert stats["processes"] == 1
            assert stats["submitted"] == 3
            assert stats["done"] == 3
            assert stats["error"] == 1
        await wait_until(
            lambda: not (descendants() - children_before), message="children reaped",
        )
        await wait_until(lambda: open_fds() <= fds_before, message="fds closed")

    run(main())


def test_cancel_by_wait_for_timeout(pool, run):
    async def main():
        pids = await worker_pids(pool)
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(
                asyncio.gather(
                    *(pool.create_task(time.sleep, 600) for _ in range(WORKERS)),
                ),
                1,
            )
        results = await asyncio.gather(
            *(pool.create_task(operator.mul, i, 2) for i in range(WORKERS * 2)),
        )
        assert results == [i * 2 for i in range(WORKERS * 2)]
        await wait_until(lambda: all(gone(pid) for pid in pids), message="reaped")
        await wait_until(lambda: len(pool.pids) == WORKERS, message="respawn")
        assert not pool.pids & pids

    run(main())


def test_cancel_a_job_that_catches_cancellation(pool, run, tmp_path):
    marker = tmp_path / "pid"

    async def main():
        task = asyncio.ensure_future(pool.create_task(ignore_cancellation, str(marker)))
        await wait_until(lambda: marker.exists() and marker.read_text(), message="job")
        pid = int(marker.read_text())
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await wait_until(lambda: gone(pid), message="the worker reaped")
        await wait_until(lambda: len(pool.pids) == WORKERS, message="respawn")
        assert await pool.create_task(operator.neg, 5) == -5

    run(main())


def test_cancel_many_at_once(pool, run, tmp_path):
    running = [tmp_path / f"running-{i}" for i in range(WORKERS)]
    queued = tmp_path / "queued"

    async def main():
        tasks = [
            asyncio.ensure_future(pool.create_task(sleep_and_report, str(path), 60))
            for path in running
        ]
        await wait_until(
            lambda: all(path.exists() and path.read_text() for path in running),
            message="jobs",
        )
        killed = {int(path.read_text()) for path in running}
        tasks += [
            asyncio.ensure_future(pool.create_task(append_line, str(queued)))
            for _ in range(WORKERS * 3)
        ]
        await asyncio.sleep(0)
        assert pool._statistic.queue_size == WORKERS * 3
        for task in tasks:
            task.cancel()
        results = await asyncio.gather(*tasks, return_exceptions=True)
        assert all(isinstance(r, asyncio.CancelledError) for r in results)
        # Queued jobs left the queue: none of them ever runs.
        assert pool._statistic.queue_size == 0 and not pool.tasks
        await wait_until(lambda: all(gone(pid) for pid in killed), message="reaped")
        results = await asyncio.gather(
            *(pool.create_task(operator.add, i, 1) for i in range(WORKERS * 4)),
        )
        assert results == [i + 1 for i in range(WORKERS * 4)]
        await wait_until(lambda: len(pool.pids) == WORKERS, message="respawn")
        assert not pool.pids & killed
        assert not queued.exists()
        assert pool._statistic.done == pool._statistic.submitted

    run(main())


def test_cancel_a_queued_job_waiting_for_space(run, tmp_path):
    marker = tmp_path / "pid"
    queued = tmp_path / "queued"

    async def main():
        async with WorkerPool(1, max_overflow=1) as pool:
            busy = asyncio.ensure_future(
                pool.create_task(sleep_and_report, str(marker), 0.5),
            )
            await wait_until(lambda: marker.exists() and marker.read_text(), message="job")
            pid = int(marker.read_text())
            waiting = [
                asyncio.ensure_future(pool.create_task(append_line, str(queued)))
                for _ in range(3)
            ]
            await asyncio.sleep(0.05)
            for task in waiting:
                task.cancel()
            results = await asyncio.gather(*waiting, return_exceptions=True)
            assert all(isinstance(r, asyncio.CancelledError) for r in results)
            await busy
            # The worker that was not cancelled keeps serving.
            assert await pool.create_task(os.getpid) == pid
            assert not queued.exists()
            assert pool._statistic.done == pool._statistic.submitted

    run(main())


def test_sigkill_from_outside(pool, run, tmp_path):
    marker = tmp_path / "pid"

    async def main():
        task = asyncio.ensure_future(
            pool.create_task(sleep_and_report, str(marker), 600),
        )
        await wait_until(lambda: marker.exists() and marker.read_text(), message="job")
        pid = int(marker.read_text())
        os.kill(pid, signal.SIGKILL)
        with pytest.raises(ProcessError, match=f"Process {pid} unexpected exited"):
            await task
        await wait_until(
            lambda: len(pool.pids) == WORKERS and pid not in pool.pids,
            message="respawn",
        )
        assert await pool.create_task(operator.add, 2, 2) == 4

    run(main())


def test_initializer(run, tmp_path):
    log_path = tmp_path / "init.log"

    async def main():
        async with WorkerPool(
            3, initializer=set_initialized, initializer_args=("ready",),
            initializer_kwargs={"suffix": "!"},
        ) as pool:
            results = await asyncio.gather(
                *(pool.create_task(get_initialized) for _ in range(6)),
            )
            assert results == ["ready!"] * 6
        async with WorkerPool(3, initializer=append_line, initializer_args=(str(log_path),)) as pool:
            await wait_until(lambda: len(pool.pids) == 3, message="workers")
        async with WorkerPool(1) as pool:
            assert await pool.create_task(get_initialized) is None

    run(main())
    # Run once, by the supervisor, before the workers were forked.
    assert len(log_path.read_text().splitlines()) == 1


def test_failing_initializer(run):
    async def main():
        pool = WorkerPool(2, initializer=failing_initializer)
        await pool.start()
        try:
            with pytest.raises(ValueError, match="initializer failed on purpose"):
                await pool.create_task(operator.add, 1, 1)
            with pytest.raises(ValueError, match="initializer failed on purpose"):
                await pool.create_task(operator.add, 1, 1)
        finally:
            await pool.close()

    run(main())


def test_jobs_run_in_the_main_thread_only(pool, run):
    assert run(pool.create_task(threading.active_count)) == 1
    assert run(pool.create_task(is_main_thread)) is True


def test_statistics(run, request):
    name = f"stat-{request.node.name}"

    async def main():
        async with WorkerPool(WORKERS, statistic_name=name) as pool:
            await asyncio.gather(*(pool.create_task(operator.add, i, 1) for i in range(5)))
            with pytest.raises(ZeroDivisionError):
                await pool.create_task(operator.truediv, 1, 0)

            def values():
                return {
                    metric: value
                    for kind, stat_name, metric, value in aiomisc_c.get_statistics(
                        WorkerPoolStatistic,
                    )
                    if stat_name == name
                }

            await wait_until(lambda: values()["spawning"] == WORKERS, message="spawning")
            stats = values()
            assert stats["processes"] == WORKERS
            assert stats["submitted"] == 6
            assert stats["done"] == 6
            assert stats["success"] == 5
            assert stats["error"] == 1
            assert stats["sum_time"] > 0
            assert stats["bad_auth"] == 0
            assert stats["queue_size"] == 0

    run(main())


def test_unpicklable_argument_and_result(pool, run):
    async def main():
        pids_before = None
        with pytest.raises(pickle.PicklingError, match="Can not pickle the task"):
            await pool.create_task(operator.add, lambda: 1, 2)
        with pytest.raises(pickle.PicklingError, match="Can not pickle the task"):
            await pool.create_task(lambda: 1)
        await wait_until(lambda: len(pool.pids) == WORKERS, message="workers")
        pids_before = set(pool.pids)
        with pytest.raises(pickle.PicklingError, match="Can not pickle the result"):
            await pool.create_task(return_unpicklable)
        with pytest.raises(RuntimeError, match="can not be pickled") as info:
            await pool.create_task(raise_unpicklable)
        assert "raise_unpicklable" in str(info.value.__cause__)
        assert await pool.create_task(operator.mul, 6, 7) == 42
        assert pool.pids == pids_before

    run(main())


def test_bad_arguments(run):
    with pytest.raises(ValueError, match="greater than 0"):
        WorkerPool(0)
    with pytest.raises(ValueError, match="greater than 0"):
        WorkerPool(-1)
    with pytest.raises(TypeError, match="workers must be an int"):
        WorkerPool("2")
    with pytest.raises(TypeError, match="max_overflow"):
        WorkerPool(1, max_overflow=1.5)
    with pytest.raises(TypeError, match="initializer must be callable"):
        WorkerPool(1, initializer=42)

    async def main():
        pool = WorkerPool(1)
        with pytest.raises(RuntimeError, match="not started"):
            await pool.create_task(operator.add, 1, 2)
        async with pool:
            with pytest.raises(TypeError, match="must be callable"):
                await pool.create_task(42)
            assert await pool.create_task(operator.add, 1, 2) == 3
        with pytest.raises(RuntimeError, match="Pool closed"):
            await pool.create_task(operator.add, 1, 2)

        local = WorkerPool(1, initializer=lambda: None)
        address = local.address
        with pytest.raises(pickle.PicklingError, match="Can not pickle the initializer"):
            await local.start()
        await local.close()
        assert not os.path.exists(address)

    run(main())


def test_close_leaves_no_process_and_no_fd(run):
    async def main():
        # uvloop opens /dev/null once, on its first server: warm up.
        async with WorkerPool(1) as warm_up:
            await warm_up.create_task(int)
        children_before = descendants()
        fds_before = open_fds()
        pool = WorkerPool(WORKERS)
        address = pool.address
        await pool.start()
        assert oct(os.stat(address).st_mode & 0o777) == oct(0o600)
        await wait_until(lambda: len(pool.pids) == WORKERS, message="workers")
        assert await pool.create_task(operator.add, 1, 1) == 2
        started = descendants() - children_before
        assert pool.pids <= started
        assert len(started) == WORKERS + 1   # the supervisor and its workers
        pending = asyncio.ensure_future(pool.create_task(time.sleep, 600))
        await asyncio.sleep(0.05)
        await pool.close()
        await pool.close()   # idempotent
        with pytest.raises(asyncio.CancelledError):
            await pending
        assert not os.path.exists(address)
        await wait_until(
            lambda: not (descendants() - children_before), message="children reaped",
        )
        # The sockets' closing completes on the next loop iterations.
        await wait_until(lambda: open_fds() <= fds_before, message="fds closed")

    run(main())


def test_max_overflow(run):
    async def main():
        async with WorkerPool(1, max_overflow=1) as pool:
            results = await asyncio.gather(
                *(pool.create_task(operator.mul, i, 3) for i in range(6)),
            )
            assert results == [i * 3 for i in range(6)]

    run(main())


def test_worker_is_a_module():
    import aiomisc_c.worker as worker
    from aiomisc_c.worker import protocol

    assert worker.PacketTypes.AUTH_OK == 59
    assert worker.COOKIE_SIZE == 128
    assert worker.SIGNAL == signal.SIGUSR2
    packed = protocol.SocketIOProtocol(None)._pack({"a": 1})
    assert packed[:4] == len(packed[4:]).to_bytes(4, "big")
