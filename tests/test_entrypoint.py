"""``aiomisc_c.entrypoint`` in this process, over asyncio's loop
and uvloop.  Real processes receiving signals: test_entrypoint_process.py."""
import asyncio
import contextvars
import importlib
import logging
import os
import signal
import threading
from unittest import mock

import pytest
from helpers.quiet_entrypoint import ep, reset_loop_state  # noqa: F401 - autouse

from aiomisc_c.entrypoint import (
    CURRENT_ENTRYPOINT,
    Entrypoint,
    entrypoint,
    get_context,
    run,
)
from aiomisc_c.log import LogFormat, LogLevel
from aiomisc_c.service import Service
from aiomisc_c.signal import Signal

# The module itself: the package attribute ``aiomisc_c.entrypoint`` is the
# class (as in aiomisc), so ``import aiomisc_c.entrypoint as m`` would not do.
entrypoint_module = importlib.import_module("aiomisc_c.entrypoint")


class Recorder(Service):
    """Records start/stop in ``events`` (a list shared between services)."""

    __required__ = ("events",)
    name = "svc"

    async def start(self):
        self.events.append(("start", self.name))

    async def stop(self, exception=None):
        self.events.append(("stop", self.name))


# ------------------------------------------------------- module and members


def test_module_names():
    assert entrypoint_module.__all__ == (
        "CURRENT_ENTRYPOINT", "Entrypoint", "entrypoint", "get_context", "run",
    )
    assert entrypoint is Entrypoint
    from aiomisc_c.context import get_context as context_get_context
    assert get_context is context_get_context
    assert entrypoint_module.ExecutorType.__name__ == "Executor"
    assert entrypoint_module.asyncio_all_tasks is asyncio.all_tasks
    assert entrypoint_module.asyncio_current_task is asyncio.current_task
    assert entrypoint_module.is_main_thread()
    assert isinstance(Entrypoint.PRE_START, Signal)


def test_env_parsers(monkeypatch):
    monkeypatch.setenv("X_BOOL", "Enabled")
    assert entrypoint_module._get_env_bool("X_BOOL", "0")
    monkeypatch.setenv("X_BOOL", "no")
    assert not entrypoint_module._get_env_bool("X_BOOL", "1")
    monkeypatch.delenv("X_BOOL")
    assert entrypoint_module._get_env_bool("X_BOOL", "yes")
    monkeypatch.setenv("X_NUM", "2.5")
    assert entrypoint_module._get_env_convert("X_NUM", float, None) == 2.5
    assert entrypoint_module._get_env_convert("X_MISSING", int, 7) == 7


def test_class_defaults():
    # The test run sets none of the AIOMISC_* variables read here.
    for name in ("AIOMISC_LOG_LEVEL", "AIOMISC_SHUTDOWN_TIMEOUT",
                 "AIOMISC_POOL_SIZE", "AIOMISC_LOG_BUFFER"):
        if name in os.environ:
            pytest.skip(f"{name} is set")
    assert Entrypoint.DEFAULT_LOG_LEVEL == LogLevel.default() == "info"
    assert Entrypoint.DEFAULT_LOG_FORMAT == LogFormat.default()
    assert Entrypoint.DEFAULT_LOG_DATE_FORMAT is None
    assert Entrypoint.DEFAULT_AIOMISC_DEBUG is False
    assert Entrypoint.DEFAULT_AIOMISC_LOG_CONFIG is True
    assert Entrypoint.DEFAULT_AIOMISC_LOG_FLUSH == 0.2
    assert Entrypoint.DEFAULT_AIOMISC_BUFFERING is True
    assert Entrypoint.DEFAULT_AIOMISC_BUFFER_SIZE == 1024
    assert Entrypoint.DEFAULT_AIOMISC_POOL_SIZE is None
    assert Entrypoint.AIOMISC_SHUTDOWN_TIMEOUT == 60.0


def test_constructor_attributes(policy):
    handler = logging.NullHandler()
    svc = Recorder(events=[])
    instance = Entrypoint(
        svc, pool_size=3, log_level="debug", log_format="plain",
        log_buffering=False, log_buffer_size=10, log_date_format="%H",
        log_flush_interval=0.5, log_config=False, log_handlers=[handler],
        policy=policy, debug=True, catch_signals=(signal.SIGUSR1,),
        shutdown_timeout=3,
    )
    assert instance.pool_size == 3
    assert instance.log_level == "debug"
    assert instance.log_format == "plain"
    assert instance.log_buffering is False
    assert instance.log_buffer_size == 10
    assert instance.log_date_format == "%H"
    assert instance.log_flush_interval == 0.5
    assert instance.log_config is False
    assert instance.log_handlers == (handler,)
    assert instance.policy is policy
    assert instance.catch_signals == (signal.SIGUSR1,)
    assert instance.shutdown_timeout == 3.0
    assert isinstance(instance.shutdown_timeout, float)
    assert instance.ctx is None
    assert instance.services == ()          # constructor services: on start
    for name in ("pre_start", "post_start", "pre_stop", "post_stop"):
        assert isinstance(getattr(instance, name), Signal)
        assert not getattr(instance, name).is_frozen
    with instance as loop:
        assert loop.get_debug() is True
        assert instance.services == (svc,)
    assert loop.is_closed()


def test_catch_signals_defaults(policy):
    instance = ep(policy=policy, catch_signals=None)
    assert instance.catch_signals == (signal.SIGINT, signal.SIGTERM)
    assert ep(policy=policy, catch_signals=()).catch_signals == ()

    # Not in the main thread: no signals by default.
    result = []
    thread = threading.Thread(
        target=lambda: result.append(
            Entrypoint(log_config=False, policy=policy).catch_signals,
        ),
    )
    thread.start()
    thread.join()
    assert result == [None]


def test_unknown_keyword_rejected():
    with pytest.raises(TypeError):
        Entrypoint(log_config=False, no_such_argument=1)


def test_loop_factory(loop_kind):
    made = []

    def factory():
        if loop_kind == "uvloop":
            uvloop = pytest.importorskip("uvloop")
            loop = uvloop.new_event_loop()
        else:
            loop = asyncio.new_event_loop()
        made.append(loop)
        return loop

    with entrypoint(log_config=False, catch_signals=(),
                    loop_factory=factory) as loop:
        assert made == [loop]


def test_get_current_without_entrypoint():
    def probe():
        with pytest.raises(RuntimeError, match="no current entrypoint is set"):
            Entrypoint.get_current()
        with pytest.raises(RuntimeError):
            CURRENT_ENTRYPOINT.get()

    contextvars.Context().run(probe)


# ------------------------------------------------------------ enter / exit


def test_with_yields_owned_loop(implementation, policy):
    from conftest import default_executor

    from aiomisc_c import thread_pool

    instance = ep(policy=policy)
    with instance as loop:
        # The loop setup and the pool of the twin under test.
        assert isinstance(default_executor(loop), thread_pool.ThreadPoolExecutor)
        assert isinstance(loop, asyncio.AbstractEventLoop)
        assert instance.loop is loop
        assert Entrypoint.get_current() is instance
        assert instance.ctx is not None
        assert get_context(loop) is instance.ctx
        ctx = instance.ctx
    assert loop.is_closed()
    assert instance.ctx is ctx      # closed, but still referenced


def test_async_with_borrows_running_loop(policy):
    loop = policy.new_event_loop()

    async def main():
        async with ep(policy=policy) as instance:
            assert isinstance(instance, Entrypoint)
            assert instance.loop is asyncio.get_running_loop()
            assert Entrypoint.get_current() is instance
            with pytest.raises(asyncio.TimeoutError):
                await asyncio.wait_for(instance.closing(), 0.3)
        return instance

    try:
        instance = loop.run_until_complete(main())
        assert not loop.is_closed()
        assert instance._closing.is_set()
    finally:
        loop.close()


def test_borrowed_loop_not_closed_and_foreign_tasks_survive(policy):
    loop = policy.new_event_loop()
    try:
        foreign = loop.create_task(asyncio.sleep(100))
        with ep(loop=loop, policy=policy) as entered:
            assert entered is loop
        assert not loop.is_closed()
        assert not foreign.done()
        foreign.cancel()
        loop.run_until_complete(asyncio.gather(foreign, return_exceptions=True))
    finally:
        loop.close()


def test_owned_loop_other_tasks_cancelled(policy):
    cancelled = []

    async def background():
        try:
            await asyncio.sleep(100)
        except asyncio.CancelledError:
            cancelled.append(True)
            raise

    with ep(policy=policy) as loop:
        loop.create_task(background())
        loop.run_until_complete(asyncio.sleep(0.01))
    assert cancelled == [True]


def test_services_started_before_body_and_stopped_after(implementation, policy):
    events = []
    services = [Recorder(events=events, name=str(i)) for i in range(3)]
    with ep(*services, policy=policy):
        events.append(("body", None))
    assert sorted(events[:3]) == [("start", "0"), ("start", "1"), ("start", "2")]
    assert events[3] == ("body", None)
    assert sorted(events[4:]) == [("stop", "0"), ("stop", "1"), ("stop", "2")]


def test_body_exception_propagates_and_services_stop(policy):
    events = []
    error = ZeroDivisionError("body")
    with pytest.raises(ZeroDivisionError) as info, \
            ep(Recorder(events=events), policy=policy):
        raise error
    assert info.value is error
    assert events == [("start", "svc"), ("stop", "svc")]


def test_stop_gets_body_exception(policy):
    received = []

    class Svc(Service):
        async def start(self):
            pass

        async def stop(self, exception=None):
            received.append(exception)

    with pytest.raises(KeyError), ep(Svc(), policy=policy):
        raise KeyError("x")
    assert isinstance(received[0], KeyError)

    received.clear()
    with ep(Svc(), policy=policy):
        pass
    assert received == [None]


def test_duplicate_services_collapse(policy):
    events = []
    svc = Recorder(events=events)
    with ep(svc, svc, policy=policy) as loop:
        pass
    assert events == [("start", "svc"), ("stop", "svc")]
    assert loop.is_closed()


def test_start_event_does_not_block(policy):
    reached = []
    cancelled = []

    class Svc(Service):
        async def start(self):
            self.start_event.set()
            try:
                await asyncio.sleep(3600)
            except asyncio.CancelledError:
                cancelled.append(True)
                raise
            reached.append(True)

    with ep(Svc(), policy=policy) as loop:
        loop.run_until_complete(asyncio.sleep(0.05))
    assert reached == []
    assert cancelled == [True]


def test_slow_start_delays_body(policy):
    class Svc(Service):
        started = False

        async def start(self):
            await asyncio.sleep(0.3)
            self.started = True

    svc = Svc()
    with ep(svc, policy=policy) as loop:
        assert svc.started
        assert svc.start_event.is_set() or loop.run_until_complete(
            asyncio.wait_for(svc.start_event.wait(), 5),
        ) is True


def test_start_exception_propagates_and_others_stop(implementation, policy):
    events = []
    error = ValueError("start failed")

    class Failing(Service):
        async def start(self):
            await asyncio.sleep(0.05)
            raise error

    class Running(Service):
        async def start(self):
            self.start_event.set()
            await asyncio.sleep(3600)

        async def stop(self, exception=None):
            events.append(("stop", "running", exception))

    ok = Recorder(events=events)
    instance = ep(Failing(), Running(), ok, policy=policy)
    with pytest.raises(ValueError) as info, instance:
        events.append("body")
    assert info.value is error
    assert "body" not in events
    assert ("stop", "running", error) in events
    assert ("stop", "svc") in events
    assert instance.loop.is_closed()


def test_start_exception_async_with(policy):
    events = []

    class Failing(Service):
        async def start(self):
            raise ValueError("boom")

    async def main():
        with pytest.raises(ValueError, match="boom"):
            async with ep(Failing(), Recorder(events=events), policy=policy):
                events.append("body")

    loop = policy.new_event_loop()
    try:
        loop.run_until_complete(main())
    finally:
        loop.close()
    assert "body" not in events
    assert ("stop", "svc") in events


def test_start_never_ready_cancelled_by_shutdown(policy):
    """A start() that neither returns nor sets start_event blocks the
    entry; a shutdown (here: the other service failing) cancels it."""
    cancelled = []

    class Never(Service):
        async def start(self):
            try:
                await asyncio.sleep(3600)
            except asyncio.CancelledError:
                cancelled.append(True)
                raise

    class Failing(Service):
        async def start(self):
            await asyncio.sleep(0.05)
            raise RuntimeError("fail")

    with pytest.raises(RuntimeError, match="fail"), \
            ep(Never(), Failing(), policy=policy):
        pass
    assert cancelled == [True]


def test_run_helper(policy):
    events = []

    async def main():
        events.append("main")
        return 42

    assert run(main(), Recorder(events=events), policy=policy,
               log_config=False, catch_signals=()) == 42
    assert events == [("start", "svc"), "main", ("stop", "svc")]


def test_event_loop_context_var(policy):
    from aiomisc_c._context_vars import EVENT_LOOP

    with ep(policy=policy) as loop:
        assert EVENT_LOOP.get() is loop


# ---------------------------------------------------------------- shutdown


def test_closing_resolves_on_shutdown(policy):
    seen = []

    class Watcher(Service):
        async def start(self):
            async def watch():
                await Entrypoint.get_current().closing()
                seen.append("closing")
            self.task = asyncio.ensure_future(watch())

        async def stop(self, exception=None):
            await asyncio.sleep(0)
            seen.append("stop")

    with ep(Watcher(), policy=policy) as loop:
        instance = Entrypoint.get_current()
        with pytest.raises(asyncio.TimeoutError):
            loop.run_until_complete(asyncio.wait_for(instance.closing(), 0.3))
    assert seen[0] == "closing"
    assert "stop" in seen


def test_shutdown_order(implementation, policy):
    events = []

    class Body(Service):
        async def start(self):
            self.start_event.set()
            try:
                await asyncio.sleep(3600)
            except asyncio.CancelledError:
                events.append("start task cancelled")
                raise

        async def stop(self, exception=None):
            events.append("stop")

    async def background():
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            events.append("background cancelled")
            raise

    async def agen():
        try:
            yield 1
            yield 2
        finally:
            events.append("asyncgen closed")

    async def body():
        gen = agen()
        await gen.__anext__()
        asyncio.get_running_loop().create_task(background())
        await asyncio.sleep(0)
        return gen

    with ep(Body(), policy=policy) as loop:
        gen = loop.run_until_complete(body())
    assert events == [
        "start task cancelled", "stop", "background cancelled",
        "asyncgen closed",
    ]
    del gen


def test_hanging_stop_bounded_by_timeout(implementation, policy, caplog):
    events = []

    class Hanging(Service):
        async def start(self):
            pass

        async def stop(self, exception=None):
            events.append("hang")
            await asyncio.sleep(3600)

    ok = Recorder(events=events)
    instance = ep(Hanging(), ok, policy=policy, shutdown_timeout=0.3)
    caplog.set_level(logging.WARNING)
    with instance as loop:
        pass
    assert loop.is_closed()
    assert "hang" in events and ("stop", "svc") in events
    assert "did not stop in" in caplog.text
    assert "Shutdown did not happen in 0.3 seconds" in caplog.text


def test_failing_stop_does_not_keep_others_from_stopping(policy):
    events = []
    error = OSError("stop failed")

    class Failing(Service):
        async def start(self):
            pass

        async def stop(self, exception=None):
            raise error

    class Slow(Service):
        async def start(self):
            pass

        async def stop(self, exception=None):
            await asyncio.sleep(0.2)
            events.append("slow stopped")

    instance = ep(Failing(), Slow(), policy=policy)
    with pytest.raises(OSError) as info, instance:
        pass
    assert info.value is error
    assert events == ["slow stopped"]
    assert instance.services == ()


def test_task_ignoring_cancellation_is_left_behind(policy, caplog, monkeypatch):
    monkeypatch.setattr(entrypoint_module, "CANCEL_GRACE", 0.2)
    cancellations = []

    async def stubborn():
        while True:
            try:
                await asyncio.sleep(3600)
            except asyncio.CancelledError:
                cancellations.append(True)      # and carries on

    caplog.set_level(logging.WARNING)
    with ep(policy=policy, shutdown_timeout=0.3) as loop:
        task = loop.create_task(stubborn())
        loop.run_until_complete(asyncio.sleep(0.01))
    assert loop.is_closed()
    assert cancellations
    assert not task.done()
    assert "did not finish" in caplog.text
    # Left behind on the closed loop; closing the coroutine ends it.
    task.get_coro().close()


def test_stop_without_exception_parameter_is_skipped(policy, caplog):
    events = []

    class NoArg(Service):
        async def start(self):
            pass

        async def stop(self):      # the entrypoint passes the exception
            events.append("never")

    caplog.set_level(logging.WARNING)
    ok = Recorder(events=events)
    with ep(NoArg(), ok, policy=policy):
        pass
    assert events == [("start", "svc"), ("stop", "svc")]
    assert "Failed to stop service" in caplog.text


# --------------------------------------------------- signals and dynamics


def test_dynamic_start_and_stop(policy):
    events = []
    calls = []

    async def receiver(**kwargs):
        calls.append((kwargs["entrypoint"], kwargs["services"]))

    svc = Recorder(events=events, name="dynamic")
    with ep(policy=policy) as loop:
        instance = Entrypoint.get_current()
        instance.pre_start = instance.pre_start.copy()
        instance.pre_start.connect(receiver)
        instance.post_stop = instance.post_stop.copy()
        instance.post_stop.connect(receiver)
        loop.run_until_complete(instance.start_services(svc))
        assert events == [("start", "dynamic")]
        assert instance.services == (svc,)
        loop.run_until_complete(instance.stop_services(svc))
        assert events == [("start", "dynamic"), ("stop", "dynamic")]
        assert instance.services == ()
        assert calls == [(instance, (svc,)), (instance, (svc,))]
    # The shutdown stops no service: post_stop gets an empty tuple.
    assert calls[2:] == [(instance, ())]


def test_instance_signals_frozen_after_start(policy):
    async def receiver(**_):
        pass

    with ep(policy=policy):
        instance = Entrypoint.get_current()
        for name in ("pre_start", "post_start", "pre_stop", "post_stop"):
            assert getattr(instance, name).is_frozen
            with pytest.raises(RuntimeError):
                getattr(instance, name).connect(receiver)


def test_class_signal_receivers(policy):
    events = []
    svc = Recorder(events=events)
    pending_tasks = []

    async def pre_start(*, entrypoint, services):
        events.append(("pre_start", entrypoint, services))
        pending_tasks.append(asyncio.ensure_future(asyncio.sleep(3600)))

    async def post_start(*, entrypoint, services):
        events.append(("post_start", entrypoint, services))

    async def pre_stop(*, entrypoint, services):
        events.append(("pre_stop", entrypoint, services))

    async def post_stop(*, entrypoint, services):
        events.append(("post_stop", entrypoint, services))
        # Tasks made in pre_start are not cancelled before post_stop runs.
        events.append(("task cancelled", pending_tasks[0].cancelled()))

    signals = [
        (Entrypoint.PRE_START, pre_start), (Entrypoint.POST_START, post_start),
        (Entrypoint.PRE_STOP, pre_stop), (Entrypoint.POST_STOP, post_stop),
    ]
    for sig, receiver in signals:
        sig.connect(receiver)
    try:
        instance = ep(svc, policy=policy)
        late_events = []

        async def late(**_):
            late_events.append(True)

        Entrypoint.PRE_START.connect(late)   # after construction: not called
        try:
            with instance:
                pass
        finally:
            Entrypoint.PRE_START.disconnect(late)
    finally:
        for sig, receiver in signals:
            sig.disconnect(receiver)

    assert late_events == []
    assert events == [
        ("pre_start", instance, (svc,)),
        ("start", "svc"),
        ("post_start", instance, (svc,)),
        ("pre_stop", instance, (svc,)),
        ("stop", "svc"),
        ("post_stop", instance, (svc,)),
        ("task cancelled", False),
    ]


def test_post_start_called_after_failed_start(policy):
    calls = []

    class Failing(Service):
        async def start(self):
            raise LookupError

    async def post_start(**kwargs):
        calls.append(kwargs["services"])

    instance = ep(Failing(), policy=policy)
    instance.post_start.connect(post_start)
    with pytest.raises(LookupError), instance:
        pass
    assert len(calls) == 1


def test_os_signal_starts_one_graceful_shutdown(implementation, policy):
    stops = []

    class Svc(Service):
        async def start(self):
            pass

        async def stop(self, exception=None):
            stops.append(exception)
            # A second signal while stopping must not start another one.
            os.kill(os.getpid(), signal.SIGINT)
            await asyncio.sleep(0.1)

    previous_calls = []

    def previous(signum, frame):
        previous_calls.append(signum)

    old = signal.signal(signal.SIGINT, previous)
    try:
        instance = entrypoint(
            Svc(), policy=policy, log_config=False,
            catch_signals=(signal.SIGINT,),
        )
        with instance as loop:
            assert signal.getsignal(signal.SIGINT) is not previous
            loop.call_later(0.05, os.kill, os.getpid(), signal.SIGINT)
            loop.run_forever()      # stopped by the signal-driven shutdown
            assert instance._closing.is_set()
        assert signal.getsignal(signal.SIGINT) is previous
        assert previous_calls == []
        assert len(stops) == 1
        assert isinstance(stops[0], RuntimeError)
        assert stops[0].args == ("Interrupt signal received",)
    finally:
        signal.signal(signal.SIGINT, old)


def test_os_signal_shutdown_timeout_exits_70(policy):
    class Hanging(Service):
        async def start(self):
            pass

        async def stop(self, exception=None):
            await asyncio.sleep(3600)

    old = signal.getsignal(signal.SIGUSR1)
    instance = entrypoint(
        Hanging(), policy=policy, log_config=False,
        catch_signals=(signal.SIGUSR1,), shutdown_timeout=0.2,
    )
    with pytest.raises(SystemExit) as info, instance as loop:
        loop.call_later(0.05, os.kill, os.getpid(), signal.SIGUSR1)
        loop.run_forever()
    assert info.value.code == 70
    assert loop.is_closed()
    assert signal.getsignal(signal.SIGUSR1) is old


def test_signal_handlers_not_installed_outside_main_thread(policy):
    errors = []

    def target():
        try:
            with entrypoint(log_config=False, policy=policy,
                            catch_signals=(signal.SIGUSR2,)):
                pass
        except BaseException as e:  # noqa: BLE001
            errors.append(e)

    before = signal.getsignal(signal.SIGUSR2)
    thread = threading.Thread(target=target)
    thread.start()
    thread.join()
    assert errors == []
    assert signal.getsignal(signal.SIGUSR2) is before


# ---------------------------------------------------------------- logging


def test_log_config_calls_core_basic_config_three_times(policy):
    with mock.patch("aiomisc_c.log.core.basic_config") as basic_config, entrypoint(
        policy=policy, catch_signals=(), log_level=LogLevel.debug,
        log_format=LogFormat.plain, log_date_format="%H:%M",
    ):
        pass
    assert basic_config.call_count == 3
    for call in basic_config.call_args_list:
        assert call.kwargs["level"] is LogLevel.debug
        assert call.kwargs["log_format"] is LogFormat.plain
        assert call.kwargs["date_format"] == "%H:%M"


def test_log_config_false_never_touches_logging(policy):
    with mock.patch("aiomisc_c.log.core.basic_config") as basic_config, \
            ep(policy=policy, log_config=False):
        pass
    assert basic_config.call_count == 0


def test_log_handlers_receive_records(policy):
    records = []

    class ListHandler(logging.Handler):
        def emit(self, record):
            records.append(record.getMessage())

    root = logging.getLogger()
    saved = root.handlers[:], root.level
    try:
        with entrypoint(policy=policy, catch_signals=(), log_format="disabled",
                        log_handlers=[ListHandler()]) as loop:
            logging.getLogger("test").warning("through the handler")
            loop.run_until_complete(asyncio.sleep(0))
        assert "through the handler" in records
    finally:
        root.handlers[:], _ = saved[0], None
        root.setLevel(saved[1])


def test_start_failing_after_ready_is_logged(policy, caplog):
    class Svc(Service):
        async def start(self):
            self.start_event.set()
            await asyncio.sleep(0.01)
            raise LookupError("after ready")

    caplog.set_level(logging.WARNING)
    with ep(Svc(), policy=policy) as loop:
        loop.run_until_complete(asyncio.sleep(0.1))
    assert "after ready" in caplog.text


def test_stuck_thread_does_not_hold_shutdown(policy, caplog, monkeypatch):
    import time

    monkeypatch.setattr(entrypoint_module, "CANCEL_GRACE", 0.2)
    release = threading.Event()
    caplog.set_level(logging.WARNING)
    try:
        with ep(policy=policy, shutdown_timeout=0.3) as loop:
            future = loop.run_in_executor(None, release.wait, 30)
            loop.run_until_complete(asyncio.sleep(0.05))
            started = time.monotonic()
        # Bounded by the timeout, not by the thread (30 s).
        assert time.monotonic() - started < 20
        assert "Thread pool shutdown did not finish" in caplog.text
    finally:
        release.set()
    del future      # pending for ever: its loop is closed


def test_second_entry_unsupported(policy):
    loop = policy.new_event_loop()
    try:
        instance = ep(loop=loop, policy=policy)
        with instance:
            pass
        with pytest.raises(AttributeError):
            loop.run_until_complete(instance.__aenter__())
    finally:
        loop.close()


def test_del_closes_owned_loop(policy):
    instance = ep(policy=policy)
    loop = instance.loop
    assert not loop.is_closed()
    instance.__del__()      # what garbage collection runs
    assert loop.is_closed()

    borrowed = policy.new_event_loop()
    try:
        ep(loop=borrowed, policy=policy).__del__()
        assert not borrowed.is_closed()
    finally:
        borrowed.close()


def test_graceful_shutdown_runs_once(policy):
    stops = []

    class Svc(Service):
        async def start(self):
            pass

        async def stop(self, exception=None):
            stops.append(exception)

    error = RuntimeError("by hand")
    with ep(Svc(), policy=policy) as loop:
        instance = Entrypoint.get_current()
        loop.run_until_complete(asyncio.gather(
            instance.graceful_shutdown(error), instance.graceful_shutdown(None),
        ))
        loop.run_until_complete(instance.closing())
        assert instance.services == ()
    assert stops == [error]


def test_failing_dynamic_start_reaches_caller(policy):
    class Failing(Service):
        async def start(self):
            raise ValueError("dynamic")

    with ep(policy=policy) as loop:
        instance = Entrypoint.get_current()
        with pytest.raises(ValueError, match="dynamic"):
            loop.run_until_complete(instance.start_services(Failing()))


def test_start_error_wins_over_stop_error(policy, caplog):
    class Failing(Service):
        async def start(self):
            raise ValueError("start")

        async def stop(self, exception=None):
            raise OSError("stop")

    caplog.set_level(logging.ERROR)
    with pytest.raises(ValueError, match="start"), \
            ep(Failing(), policy=policy):
        pass
    assert "stop" in caplog.text
