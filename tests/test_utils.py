"""``aiomisc_c.utils``: bind_socket, chunk_list, select, shield,
cancel_tasks, awaitable and the identifiers.

Nothing here is twinned, so the local ``loop`` fixture below overrides the
conftest one: a fresh loop of each kind (asyncio, uvloop) only.
"""
import asyncio
import errno
import itertools
import logging
import socket
import threading
import uuid
from unittest import mock

import pytest

from aiomisc_c import utils

@pytest.fixture
def loop(plain_loop):
    return plain_loop


def test_all_names_resolve():
    for name in utils.__all__:
        assert hasattr(utils, name), name
    for name in (
        "bind_socket", "chunk_list", "select", "SelectAwaitable", "SelectResult",
        "shield", "cancel_tasks", "awaitable", "new_event_loop",
        "create_default_event_loop", "fast_uuid4", "fast_uuid1",
        "pending_futures", "set_exception",
    ):
        assert name in utils.__all__, name
    assert utils.select is utils.SelectAwaitable
    assert utils.TimeoutType == int | float


# --------------------------------------------------------------------------
# chunk_list


def test_chunk_list():
    assert list(utils.chunk_list(range(10), 3)) == [
        [0, 1, 2], [3, 4, 5], [6, 7, 8], [9],
    ]
    assert list(utils.chunk_list(range(6), 3)) == [[0, 1, 2], [3, 4, 5]]
    assert list(utils.chunk_list([], 3)) == []
    assert list(utils.chunk_list("abc", 1)) == [["a"], ["b"], ["c"]]


def test_chunk_list_is_lazy():
    chunks = utils.chunk_list(itertools.count(), 2)
    assert next(chunks) == [0, 1]
    assert next(chunks) == [2, 3]


@pytest.mark.parametrize("size", [0, -1])
def test_chunk_list_bad_size_value(size):
    with pytest.raises(ValueError):
        utils.chunk_list(range(3), size)


@pytest.mark.parametrize("size", ["3", 2.0, None, True])
def test_chunk_list_bad_size_type(size):
    with pytest.raises(TypeError):
        utils.chunk_list(range(3), size)


def test_chunk_list_not_iterable():
    with pytest.raises(TypeError):
        utils.chunk_list(5, 2)


# --------------------------------------------------------------------------
# bind_socket


def ipv6_available():
    if not socket.has_ipv6:
        return False
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as probe:
            probe.bind(("::1", 0))
    except OSError:
        return False
    return True


def is_listening(sock):
    return sock.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN) != 0


def test_bind_socket_ipv4():
    with utils.bind_socket(address="127.0.0.1") as sock:
        assert sock.family == socket.AF_INET
        assert sock.type == socket.SOCK_STREAM
        host, port = sock.getsockname()
        assert host == "127.0.0.1" and port > 0
        assert sock.getblocking() is False
        assert not is_listening(sock)
        assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR)
        if hasattr(socket, "SO_REUSEPORT"):
            assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT)
        # The socket is usable as a server once listening.
        sock.listen()
        with socket.create_connection(("127.0.0.1", port), timeout=10):
            pass


@pytest.mark.skipif(not ipv6_available(), reason="no IPv6 loopback")
def test_bind_socket_ipv6():
    with utils.bind_socket(address="::1") as sock:
        assert sock.family == socket.AF_INET6
        assert sock.getsockname()[0] == "::1"


def test_bind_socket_given_port():
    with utils.bind_socket(address="127.0.0.1") as first:
        port = first.getsockname()[1]
    with utils.bind_socket(address="127.0.0.1", port=port) as sock:
        assert sock.getsockname() == ("127.0.0.1", port)


def test_bind_socket_address_in_use_names_it():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(OSError) as info:
            utils.bind_socket(address="127.0.0.1", port=port)
    assert info.value.errno == errno.EADDRINUSE
    assert f"('127.0.0.1', {port})" in str(info.value)
    assert isinstance(info.value.__cause__, OSError)


def test_bind_socket_no_reuse():
    with utils.bind_socket(
        address="127.0.0.1", reuse_addr=False, reuse_port=False,
    ) as sock:
        assert not sock.getsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR)
        if hasattr(socket, "SO_REUSEPORT"):
            assert not sock.getsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT)


def test_bind_socket_options():
    options = [(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)]
    with utils.bind_socket(address="127.0.0.1", options=options) as sock:
        assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE)


def test_bind_socket_nodelay():
    # Explicit IPPROTO_TCP: sock_set_nodelay leaves protocol-0 sockets alone.
    with utils.bind_socket(
        socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP,
        address="127.0.0.1",
    ) as sock:
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)


def test_bind_socket_udp(caplog):
    caplog.set_level(logging.INFO, logger="aiomisc_c.utils")
    with utils.bind_socket(
        socket.AF_INET, socket.SOCK_DGRAM, address="127.0.0.1",
        proto_name="udp",
    ) as sock:
        assert sock.type == socket.SOCK_DGRAM
        port = sock.getsockname()[1]
    assert f"Listening udp://127.0.0.1:{port}" in caplog.messages


def test_bind_socket_logs(caplog):
    caplog.set_level(logging.INFO, logger="aiomisc_c.utils")
    with utils.bind_socket(address="127.0.0.1") as sock:
        port = sock.getsockname()[1]
    assert f"Listening tcp://127.0.0.1:{port}" in caplog.messages
    if ipv6_available():
        with utils.bind_socket(address="::1") as sock:
            port = sock.getsockname()[1]
        assert f"Listening tcp://[::1]:{port}" in caplog.messages


@pytest.mark.skipif(not hasattr(socket, "AF_UNIX"), reason="no Unix sockets")
def test_bind_socket_unix(tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="aiomisc_c.utils")
    path = str(tmp_path / "sock")
    # reuse_port is forced off for Unix sockets (it would fail otherwise).
    with utils.bind_socket(
        socket.AF_UNIX, socket.SOCK_DGRAM, address=path, reuse_port=True,
    ) as sock:
        assert sock.family == socket.AF_UNIX
        assert sock.getsockname() == path
        assert sock.getblocking() is False
    assert f"Listening unix://{path}" in caplog.messages


def test_bind_socket_requires_address():
    with pytest.raises(TypeError):
        utils.bind_socket()  # type: ignore[call-arg]


def test_bind_socket_failure_closes_socket():
    with utils.bind_socket(
        address="127.0.0.1", reuse_addr=False, reuse_port=False,
    ) as taken:
        taken.listen()
        port = taken.getsockname()[1]
        created = []
        real_socket = socket.socket

        def spy(*args):
            sock = real_socket(*args)
            created.append(sock)
            return sock

        with mock.patch.object(socket, "socket", spy), pytest.raises(OSError):
            utils.bind_socket(
                address="127.0.0.1", port=port,
                reuse_addr=False, reuse_port=False,
            )
        assert len(created) == 1 and created[0].fileno() == -1


def test_bind_socket_bad_options():
    with pytest.raises((TypeError, ValueError)):
        utils.bind_socket(address="127.0.0.1", options=[(1, 2)])


# --------------------------------------------------------------------------
# select


def test_select_first_wins(run):
    async def main():
        slow, fast = asyncio.Event(), asyncio.Event()
        finalized = []

        async def wait_slow():
            try:
                return await slow.wait()
            finally:
                finalized.append("slow")

        fast.set()
        two, one = await utils.select(wait_slow(), fast.wait())
        assert one is True
        assert two is None
        # The loser was cancelled and its finally ran before select returned.
        assert finalized == ["slow"]

    run(main())


def test_select_result_object(run):
    async def main():
        result = await utils.select(asyncio.sleep(30), asyncio.sleep(0, "x"))
        assert isinstance(result, utils.SelectResult)
        assert result.done()
        assert result.result_idx == 1
        assert result.is_exception is False
        assert result.result() == "x"
        assert len(result) == 2
        assert "x" in result
        assert list(result) == [None, "x"]

    run(main())


def test_select_raises(run):
    async def fail():
        await asyncio.sleep(0)
        raise ZeroDivisionError

    async def main():
        with pytest.raises(ZeroDivisionError):
            await utils.select(fail(), fail())

    run(main())


def test_select_return_exceptions(run):
    async def fail():
        raise ZeroDivisionError

    async def main():
        result = await utils.select(
            fail(), asyncio.sleep(30), return_exceptions=True,
        )
        assert result.done() and result.is_exception
        assert isinstance(result.value, ZeroDivisionError)
        first, second = result
        assert isinstance(first, ZeroDivisionError) and second is None
        with pytest.raises(ZeroDivisionError):
            result.result()

    run(main())


def test_select_cancel_false_lets_others_finish(run):
    async def main():
        finished = asyncio.Event()
        release = asyncio.Event()

        async def slow():
            await release.wait()
            finished.set()
            return "slow"

        result = await utils.select(slow(), asyncio.sleep(0, "fast"), cancel=False)
        assert list(result) == [None, "fast"]
        release.set()
        await asyncio.wait_for(finished.wait(), 30)

    run(main())


def test_select_wait_false_cancels_in_background(run):
    async def main():
        cancelled = asyncio.Event()

        async def slow():
            try:
                await asyncio.sleep(30)
            except asyncio.CancelledError:
                cancelled.set()
                raise

        result = await utils.select(slow(), asyncio.sleep(0, 1), wait=False)
        assert result.result() == 1
        await asyncio.wait_for(cancelled.wait(), 30)

    run(main())


def test_select_timeout(run):
    async def main():
        never = asyncio.Event()
        result = await utils.select(never.wait(), never.wait(), timeout=0.05)
        assert not result.done()
        assert result.result_idx is None
        assert list(result) == [None, None]
        assert result.result() is None

    run(main())


def test_select_outer_cancel_cancels_inner(run):
    async def main():
        started = asyncio.Event()
        finalized = []

        async def inner(name):
            try:
                started.set()
                await asyncio.sleep(30)
            finally:
                finalized.append(name)

        async def selector():
            await utils.select(inner("a"), inner("b"))

        task = asyncio.ensure_future(selector())
        await asyncio.wait_for(started.wait(), 30)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert sorted(finalized) == ["a", "b"]

    run(main())


def test_select_accepts_futures_and_tasks(run, loop):
    async def main():
        future = loop.create_future()
        task = asyncio.ensure_future(asyncio.sleep(30))
        loop.call_soon(future.set_result, 42)
        result = await utils.select(task, future)
        assert list(result) == [None, 42]
        assert task.cancelled()

    run(main())


def test_select_awaited_once(run):
    async def main():
        selecting = utils.select(asyncio.sleep(0, 1))
        assert (await selecting).result() == 1
        with pytest.raises(RuntimeError):
            await selecting

    run(main())


def test_select_empty(run):
    async def main():
        with pytest.raises(ValueError):
            await utils.select()

    run(main())


def test_select_not_awaitable(run):
    async def main():
        with pytest.raises(TypeError):
            await utils.select(42)

    run(main())


def test_select_result_unit():
    result = utils.SelectResult(3)
    assert len(result) == 3 and not result.done()
    assert list(result) == [None, None, None]
    value = object()
    result.set_result(2, value, is_exception=False)
    result.set_result(0, "ignored", is_exception=False)
    assert result.done() and result.result_idx == 2
    assert value in result and object() not in result
    assert list(result) == [None, None, value]
    assert result.result() is value


# --------------------------------------------------------------------------
# shield


def test_shield_survives_caller_cancel(run):
    async def main():
        started, release = asyncio.Event(), asyncio.Event()
        done = []

        @utils.shield
        async def work(value, *, extra):
            started.set()
            await release.wait()
            done.append((value, extra))
            return value

        caller = asyncio.ensure_future(work(1, extra=2))
        await asyncio.wait_for(started.wait(), 30)
        caller.cancel()
        with pytest.raises(asyncio.CancelledError):
            await caller
        release.set()
        for _ in range(100):
            if done:
                break
            await asyncio.sleep(0.01)
        assert done == [(1, 2)]

    run(main())


def test_shield_returns_value(run):
    @utils.shield
    async def double(x):
        return x * 2

    async def main():
        assert await double(21) == 42

    run(main())


def test_shield_starts_on_call(run):
    async def main():
        started = asyncio.Event()

        @utils.shield
        async def work():
            started.set()

        coro = work()   # the inner task exists now, even if never awaited...
        await asyncio.wait_for(started.wait(), 30)
        await coro

    run(main())


def test_shield_metadata():
    async def original(a, b=1):
        """Docs."""

    wrapped = utils.shield(original)
    assert wrapped.__name__ == "original"
    assert wrapped.__doc__ == "Docs."
    assert wrapped.__wrapped__ is original


def test_shield_bad_argument():
    with pytest.raises(TypeError):
        utils.shield(None)


# --------------------------------------------------------------------------
# cancel_tasks


def test_cancel_tasks_tasks(run):
    async def main():
        tasks = [asyncio.ensure_future(asyncio.sleep(30)) for _ in range(5)]
        await utils.cancel_tasks(tasks)
        for task in tasks:
            assert task.done() and task.cancelled()
            with pytest.raises(asyncio.CancelledError):
                await task

    run(main())


def test_cancel_tasks_plain_futures(run, loop):
    async def main():
        futures = [loop.create_future() for _ in range(5)]
        assert all(type(f) is asyncio.Future for f in futures)
        await utils.cancel_tasks(futures)
        for future in futures:
            assert future.done()
            assert not future.cancelled()
            with pytest.raises(asyncio.CancelledError):
                await future

    run(main())


def test_cancel_tasks_mixed(run, loop):
    async def main():
        done_future = loop.create_future()
        done_future.set_result("kept")
        items = [
            asyncio.ensure_future(asyncio.sleep(30)),
            loop.create_future(),
            done_future,
            asyncio.ensure_future(asyncio.sleep(30)),
            loop.create_future(),
        ]
        waiter = utils.cancel_tasks(items)
        assert isinstance(waiter, asyncio.Future)
        await waiter
        assert all(item.done() for item in items)
        assert done_future.result() == "kept"
        for item in items:
            if item is done_future:
                continue
            with pytest.raises(asyncio.CancelledError):
                await item

    run(main())


def test_cancel_tasks_nothing_to_do(run, loop):
    async def main():
        for tasks in ([], (), set()):
            waiter = utils.cancel_tasks(tasks)
            assert waiter.done() and waiter.result() is None
        future = loop.create_future()
        future.set_result(1)
        waiter = utils.cancel_tasks([future])
        assert waiter.done()
        await waiter

    run(main())


def test_cancel_tasks_skips_others(run, caplog):
    async def main():
        with caplog.at_level(logging.WARNING, logger="aiomisc_c.utils"):
            waiter = utils.cancel_tasks([object()])
        await waiter
        assert any("Skipping object" in m for m in caplog.messages)

    run(main())


def test_cancel_tasks_waits_for_finally(run):
    async def main():
        finished = []

        async def slow_cleanup():
            try:
                await asyncio.sleep(30)
            finally:
                await asyncio.sleep(0.01)
                finished.append(True)

        task = asyncio.ensure_future(slow_cleanup())
        await asyncio.sleep(0)
        await utils.cancel_tasks([task])
        assert finished == [True]

    run(main())


def test_pending_futures_and_set_exception(run, loop):
    async def main():
        done_future = loop.create_future()
        done_future.set_result(None)
        plain = loop.create_future()
        task = asyncio.ensure_future(asyncio.sleep(30))
        items = {done_future, plain, task}
        assert set(utils.pending_futures(items)) == {plain, task}

        # Iterates over a snapshot: the collection may change meanwhile.
        for future in utils.pending_futures(items):
            items.discard(future)

        error = ValueError("boom")
        cancelled = utils.set_exception([done_future, plain, task], error)
        assert cancelled == {task}
        assert plain.exception() is error
        with pytest.raises(asyncio.CancelledError):
            await task

    run(main())


# --------------------------------------------------------------------------
# awaitable


def test_awaitable_plain_value(run):
    async def main():
        assert await utils.awaitable(lambda: 654321)() == 654321

    run(main())


def test_awaitable_passes_arguments(run):
    def func(a, b, *, c):
        return a + b + c

    async def main():
        assert await utils.awaitable(func)(1, 2, c=3) == 6

    run(main())


def test_awaitable_same_future(run, loop):
    async def main():
        future = loop.create_future()
        future.set_result(5)
        wrapped = utils.awaitable(lambda: future)
        assert wrapped() is future
        assert await wrapped() == 5

    run(main())


def test_awaitable_same_coroutine(run):
    async def coro_func():
        return 7

    async def main():
        coro = coro_func()
        assert utils.awaitable(lambda: coro)() is coro
        assert await coro == 7

    run(main())


def test_awaitable_coroutine_function_unchanged():
    async def coro_func():
        pass

    assert utils.awaitable(coro_func) is coro_func
    async_mock = mock.AsyncMock()
    assert utils.awaitable(async_mock) is async_mock


def test_awaitable_metadata():
    def original():
        """Docs."""

    wrapped = utils.awaitable(original)
    assert wrapped.__name__ == "original"
    assert wrapped.__doc__ == "Docs."
    assert wrapped.__wrapped__ is original


def test_awaitable_bad_argument():
    with pytest.raises(TypeError):
        utils.awaitable(42)


# --------------------------------------------------------------------------
# identifiers


def test_fast_uuid4():
    values = {utils.fast_uuid4() for _ in range(1000)}
    assert len(values) == 1000
    for value in values:
        assert isinstance(value, uuid.UUID)
        assert value.version == 4
        assert value.variant == uuid.RFC_4122


def test_fast_uuid1():
    values = [utils.fast_uuid1() for _ in range(1000)]
    assert len(set(values)) == 1000
    node = uuid.getnode()
    for value in values:
        assert isinstance(value, uuid.UUID)
        assert value.version == 1
        assert value.node == node


def test_fast_uuid_threads():
    results = []

    def worker():
        results.extend(utils.fast_uuid4() for _ in range(100))

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert len(set(results)) == 400


def test_select_propagates_base_exception(run):
    class Stop(BaseException):
        pass

    async def stop():
        raise Stop

    async def main():
        sleeper = asyncio.ensure_future(asyncio.sleep(30))
        with pytest.raises(Stop):
            await utils.select(stop(), sleeper)
        assert sleeper.cancelled()

    run(main())


def test_select_cancel_while_cancelling_losers(run):
    async def main():
        release = asyncio.Event()
        in_cleanup = asyncio.Event()

        async def stubborn():
            try:
                await asyncio.sleep(30)
            finally:
                in_cleanup.set()
                await release.wait()

        async def selector():
            return await utils.select(stubborn(), asyncio.sleep(0.01, 1))

        task = asyncio.ensure_future(selector())
        await asyncio.wait_for(in_cleanup.wait(), 30)
        task.cancel()
        release.set()
        with pytest.raises(asyncio.CancelledError):
            await task

    run(main())
