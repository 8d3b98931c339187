"""``aiomisc_c.cron.CronCallback``: calls on a cron schedule (croniter).

Not twinned: the local ``loop`` fixture makes a fresh loop of each kind.
Most tests patch ``CronCallback.get_next`` to a short fixed delay, as
aiomisc's own tests do; one waits for a real every-second spec.
"""
import asyncio
import json
import subprocess
import sys

import pytest

from helpers.childproc import NEUTRAL_CWD, child_env
from helpers.waiting import wait_until

croniter = pytest.importorskip("croniter").croniter

import aiomisc_c  # noqa: E402
from aiomisc_c.cron import CronCallback  # noqa: E402
from aiomisc_c.recurring import RecurringCallback  # noqa: E402


@pytest.fixture
def loop(plain_loop):
    return plain_loop


@pytest.fixture
def fast_cron(monkeypatch):
    # A plain function taking *args, looked up at start time.
    monkeypatch.setattr(CronCallback, "get_next", lambda *args: 0.01)


def run_child(code):
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=NEUTRAL_CWD,
        env=child_env(AIOMISC_NO_PLUGINS="1"),
        capture_output=True, text=True, timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.splitlines()[-1])


def test_import_aiomisc_c_leaves_croniter_alone():
    loaded = run_child(
        "import json, sys, aiomisc_c\n"
        "print(json.dumps(['croniter' in sys.modules,"
        " 'aiomisc_c.cron' in sys.modules, 'cron' in vars(aiomisc_c)]))\n"
    )
    assert loaded == [False, False, False]


def test_cron_callback_is_offered_lazily():
    assert aiomisc_c.CronCallback is CronCallback
    assert "CronCallback" not in aiomisc_c.__all__


@pytest.mark.parametrize("module", ["aiomisc_c.cron", "aiomisc_c.service.cron"])
def test_import_without_croniter_names_the_extra(module):
    result = run_child(
        "import json, sys\n"
        "sys.modules['croniter'] = None\n"
        "try:\n"
        f"    import {module}\n"
        "except ImportError as exc:\n"
        "    print(json.dumps([type(exc).__name__, str(exc)]))\n"
        "else:\n"
        "    print(json.dumps('imported'))\n"
    )
    assert "pip install 'aiomisc_c[cron]'" in result[1]
    assert result[0] == "ModuleNotFoundError"


def test_get_next_with_real_croniter():
    every_second = CronCallback.get_next(croniter("* * * * * *"), None)
    assert 0 <= every_second <= 1
    hourly = CronCallback.get_next(croniter("0 * * * *"), None)
    assert 0 <= hourly <= 3600


def test_get_next_never_serves_the_same_time_twice():
    # As when a timer fires just before the time it was set for: asking
    # again gives the next time, not the one just scheduled.
    cron = croniter("* * * * * *")
    first = CronCallback.get_next(cron, None)
    second = CronCallback.get_next(cron, None)
    assert second - first >= 0.9


def test_repr():
    async def job():
        pass

    assert repr(CronCallback(job)) == f"<CronCallback({job!r})>"
    assert repr(CronCallback(job, name="nightly")) == "<CronCallback(nightly)>"


def test_bad_spec_raises_at_once(run):
    async def main():
        cron = CronCallback(lambda: None)
        with pytest.raises(ValueError):
            cron.start("not a cron spec")
        with pytest.raises(TypeError):
            cron.start(None)
        with pytest.raises(RuntimeError, match="Callback not started"):
            await cron.stop()

    run(main())


def test_stop_not_started(run):
    async def main():
        with pytest.raises(RuntimeError) as info:
            await CronCallback(lambda: None).stop()
        assert str(info.value) == "Callback not started"

    run(main())


def test_calls_stop_and_restart(run, fast_cron):
    async def main():
        calls = 0

        async def job():
            nonlocal calls
            calls += 1

        cron = CronCallback(job)
        cron.start("* * * * * *")
        with pytest.raises(asyncio.InvalidStateError):
            cron.start("* * * * * *")
        await wait_until(lambda: calls >= 2)
        task = cron.stop()
        assert isinstance(task, asyncio.Task)
        with pytest.raises(asyncio.CancelledError):
            await task
        stopped_at = calls
        await asyncio.sleep(0.05)
        assert calls == stopped_at

        cron.start("* * * * * *")
        await wait_until(lambda: calls >= stopped_at + 2)
        await asyncio.gather(cron.stop(), return_exceptions=True)

    run(main())


def test_real_schedule_every_second(run):
    async def main():
        calls = []
        cron = CronCallback(calls.append, "tick")
        cron.start("* * * * * *")
        await wait_until(lambda: calls, timeout=10)
        await asyncio.gather(cron.stop(), return_exceptions=True)
        assert set(calls) == {"tick"}

    run(main())


def test_long_call_runs_serially(run, fast_cron):
    async def main():
        running = max_running = completed = 0

        async def job():
            nonlocal running, max_running, completed
            running += 1
            max_running = max(max_running, running)
            await asyncio.sleep(0.03)
            running -= 1
            completed += 1

        cron = CronCallback(job)
        cron.start("* * * * *")
        await wait_until(lambda: completed >= 2)
        await asyncio.gather(cron.stop(), return_exceptions=True)
        assert max_running == 1

    run(main())


@pytest.mark.parametrize("shield", [True, False])
def test_shield(run, fast_cron, shield):
    async def main():
        entered = asyncio.Event()
        release = asyncio.Event()
        completed = []

        async def job():
            entered.set()
            await release.wait()
            completed.append(1)

        cron = CronCallback(job)
        cron.start("* * * * *", shield=shield)
        await asyncio.wait_for(entered.wait(), 5)
        await asyncio.gather(cron.stop(), return_exceptions=True)
        release.set()
        await asyncio.sleep(0.03)
        assert completed == ([1] if shield else [])

    run(main())


def test_strategy_gets_croniter_and_recurring(run, monkeypatch):
    seen = []

    def get_next(cron, recurring):
        seen.append((type(cron), type(recurring)))
        return 0.01

    monkeypatch.setattr(CronCallback, "get_next", staticmethod(get_next))

    async def main():
        cron = CronCallback(lambda: None)
        cron.start("*/5 * * * *")
        await wait_until(lambda: len(seen) >= 2)
        await asyncio.gather(cron.stop(), return_exceptions=True)

    run(main())
    assert seen[0] == (croniter, RecurringCallback)
