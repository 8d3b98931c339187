"""``aiomisc_c.service.periodic.PeriodicService`` and
``aiomisc_c.service.cron.CronService``, run by an entrypoint."""
import asyncio

import pytest

from helpers.quiet_entrypoint import ep, reset_loop_state  # noqa: F401 - autouse
from helpers.waiting import wait_until

from aiomisc_c.service.periodic import PeriodicService


class Counter(PeriodicService):
    async def callback(self):
        self.calls = getattr(self, "calls", 0) + 1


def test_required_interval():
    with pytest.raises(AttributeError):
        Counter()
    assert str(Counter(interval=0.5)) == "Counter(interval=0.5,delay=0)"
    assert str(Counter(interval=1, delay=2)) == "Counter(interval=1,delay=2)"


def test_name_names_the_statistic():
    service = Counter(interval=1, name="counter")
    assert service.periodic._recurring_callback.name == "counter"
    assert not hasattr(service, "name") or service.name != "counter"


def test_calls_until_stopped(policy):
    service = Counter(interval=0.01)
    with ep(service, policy=policy) as loop:
        loop.run_until_complete(wait_until(lambda: getattr(service, "calls", 0) >= 5))
        loop.run_until_complete(wait_until(lambda: service.calls >= 10))
        loop.run_until_complete(service.stop())
        stopped_at = service.calls
        loop.run_until_complete(asyncio.sleep(0.05))
        assert service.calls == stopped_at


def test_delay(policy):
    class Stamped(PeriodicService):
        async def start(self):
            self.started_at = self.loop.time()
            await super().start()

        async def callback(self):
            self.times.append(self.loop.time())

    service = Stamped(interval=0.01, delay=0.2)
    service.times = []
    with ep(service, policy=policy) as loop:
        loop.run_until_complete(wait_until(lambda: len(service.times) >= 2))
    # uvloop's clock has a millisecond resolution.
    assert service.times[0] >= service.started_at + 0.2 - 0.002


@pytest.mark.parametrize("interval", [0, -1])
def test_bad_interval(policy, interval):
    service = Counter(interval=interval)
    with pytest.raises(AssertionError):
        with ep(service, policy=policy):
            pass


pytest.importorskip("croniter")
import aiomisc_c.service.cron as cron_service  # noqa: E402


def test_cron_register_checks():
    service = cron_service.CronService()

    def sync_job():
        pass

    with pytest.raises(TypeError) as info:
        service.register(sync_job, "* * * * *")
    assert str(info.value) == f"function should be a coroutine {sync_job!r}"

    async def job():
        pass

    with pytest.raises(TypeError) as info:
        service.register(job, "every minute")
    assert str(info.value) == "Not valid cron spec 'every minute'"
    service.register(job, "* * * * *", suppress_exceptions=[ValueError])
    item, = service._callbacks_storage
    assert isinstance(item, cron_service.StoreItem)
    assert item.suppress_exceptions == (ValueError,)


def test_cron_service_fires_all_and_stops(policy, monkeypatch):
    from aiomisc_c.cron import CronCallback

    monkeypatch.setattr(CronCallback, "get_next", lambda *args: 0.01)
    calls = {"a": 0, "b": 0, "c": 0}

    def job(name):
        async def call():
            calls[name] += 1
        return call

    class Cron(cron_service.CronService):
        async def start(self):
            self.register(job("c"), "*/5 * * * *")
            await super().start()

    service = Cron()
    service.register(job("a"), "* * * * *")
    service.register(job("b"), "* * * * * */2", shield=True)
    with ep(service, policy=policy) as loop:
        loop.run_until_complete(wait_until(lambda: min(calls.values()) >= 2))
        loop.run_until_complete(service.stop())
        stopped_at = dict(calls)
        loop.run_until_complete(asyncio.sleep(0.05))
        assert calls == stopped_at
