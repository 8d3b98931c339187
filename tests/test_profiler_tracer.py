"""``aiomisc_c.service.profiler.Profiler`` and
``aiomisc_c.service.tracer.MemoryTracer`` in a running entrypoint."""
import asyncio
import logging
import os
import pstats
import time
import tracemalloc

from helpers.quiet_entrypoint import ep, reset_loop_state  # noqa: F401 - autouse
from helpers.waiting import wait_until

from aiomisc_c.service import MemoryTracer, Profiler
from aiomisc_c.service import profiler as profiler_module
from aiomisc_c.service import tracer as tracer_module
from aiomisc_c.service.tracer import GroupBy


def busy_work():
    return sum(i * i for i in range(20000))


# ----------------------------------------------------------------- Profiler


def test_profiler_dumps_and_logs(tmp_path, policy, caplog):
    path = tmp_path / "profile.stats"
    service = Profiler(interval=0.1, path=str(path), top_results=5)
    assert (service.order, service.name) == ("cumulative", "profiler")

    async def body():
        # The first dump happens at start.
        await wait_until(path.exists, message="the first dump")
        first = path.stat().st_mtime_ns, path.read_bytes()
        for _ in range(5):
            busy_work()
            await asyncio.sleep(0.05)
        await wait_until(
            lambda: (path.stat().st_mtime_ns, path.read_bytes()) != first,
            message="a later dump",
        )

    with caplog.at_level(logging.INFO, logger=profiler_module.__name__):
        with ep(service, policy=policy) as loop:
            loop.run_until_complete(body())

    stats = pstats.Stats(str(path))
    assert any(func[2] == "busy_work" for func in stats.stats)
    assert service.logger.name == f"{profiler_module.__name__}.{id(service)}"
    reports = [r for r in caplog.records if r.name == service.logger.name]
    assert any("function calls" in r.getMessage() for r in reports)
    assert reports[-1].getMessage() == "Stop profiler"


def test_profiler_unwritable_path_keeps_running(tmp_path, policy, caplog):
    path = tmp_path / "missing-directory" / "profile.stats"
    service = Profiler(interval=0.05, path=str(path))

    def errors():
        return [
            r for r in caplog.records
            if r.levelno == logging.ERROR and "Failed to dump" in r.getMessage()
        ]

    with caplog.at_level(logging.INFO, logger=profiler_module.__name__):
        with ep(service, policy=policy) as loop:
            loop.run_until_complete(
                wait_until(lambda: len(errors()) >= 2, message="two failed dumps"),
            )
    assert not path.exists()
    assert str(path) in errors()[0].getMessage()


def test_profiler_without_path_only_logs(policy, caplog):
    service = Profiler(interval=10)
    with caplog.at_level(logging.INFO, logger=profiler_module.__name__):
        with ep(service, policy=policy):
            pass
    assert any("function calls" in m for m in caplog.messages)


# ------------------------------------------------------------- MemoryTracer


def test_humanize():
    assert MemoryTracer.humanize(0) == "0.0B"
    assert MemoryTracer.humanize(1023) == "1023.0B"
    assert MemoryTracer.humanize(1024) == "1.0KiB"
    assert MemoryTracer.humanize(-2048) == "-2.0KiB"
    assert MemoryTracer.humanize(5 * 1024 ** 3) == "5.0GiB"
    assert MemoryTracer.humanize(1024 ** 8) == "1.0YiB"
    assert MemoryTracer.humanize(1536, suffix="b") == "1.5Kib"


def test_group_by_and_defaults():
    assert [g.value for g in GroupBy] == ["lineno", "filename", "traceback"]
    assert all(g.name == g.value for g in GroupBy)
    tracer = MemoryTracer()
    assert (tracer.interval, tracer.top_results, tracer.name) == (
        5, 20, "memory-tracer",
    )
    assert tracer.group_by is GroupBy.lineno


def test_memory_tracer_logs_growth(policy):
    reports = []
    keep = []

    def logger(message, *args):
        reports.append(message % args)

    service = MemoryTracer(interval=0.1, top_results=3, logger=logger)

    async def body():
        keep.extend(bytearray(1000) for _ in range(2000))    # ~2 MiB
        await wait_until(lambda: len(reports) >= 2, message="two reports")

    with ep(service, policy=policy) as loop:
        assert tracemalloc.is_tracing()
        loop.run_until_complete(body())
    assert not tracemalloc.is_tracing()

    report = reports[-1]
    lines = report.splitlines()
    assert lines[0] == "Top memory usage:"
    assert lines[1].split(" | ") == [
        " Objects", "Obj.Diff", "  Memory", "Mem.Diff", "Traceback",
    ]
    rows = lines[2:]
    assert 1 <= len(rows) <= 3
    # The list of bytearrays made in body() is the biggest growth.
    assert os.path.basename(__file__) in report
    assert "MiB" in report

    # Stopped: no report after stop().
    count = len(reports)
    time.sleep(0.25)
    assert len(reports) == count


def test_memory_tracer_log_line(policy, caplog):
    service = MemoryTracer(interval=0.05, top_results=1)
    with caplog.at_level(logging.INFO, logger=tracer_module.__name__):
        with ep(service, policy=policy) as loop:
            loop.run_until_complete(wait_until(
                lambda: any(
                    m.startswith("Top memory usage:") for m in caplog.messages
                ),
                message="a report",
            ))
    assert "Start memory tracer" in caplog.messages
