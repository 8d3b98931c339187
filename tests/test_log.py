"""aiomisc_c.log: the core layer, the formatters and the loop-aware layer.

Process-level guarantees (records arriving at exit or on SIGTERM) are in
test_log_process.py.
"""
import asyncio
import io
import json
import logging
import os
import signal
import subprocess
import sys
import threading
import warnings
from unittest import mock

import pytest

import aiomisc_c.log
from aiomisc_c.counters import get_statistics
from aiomisc_c.log import (
    LogFormat,
    LogLevel,
    ThreadedHandler,
    ThreadedHandlerStatistic,
    UnhandledLoopHook,
    basic_config,
)
from aiomisc_c.log import core, enum as log_enum
from aiomisc_c.log._env import read_log_env
from aiomisc_c.log.formatter.json import JSONLogFormatter
from helpers.childproc import NEUTRAL_CWD, child_env

try:
    import rich
except ImportError:
    rich = None

WAIT = 30   # generous liveness bound for threads (noisy machines)


class ListHandler(logging.Handler):
    """Collects handled records; ``arrived`` is set once ``expect`` did."""

    def __init__(self, level=logging.NOTSET, expect=None):
        super().__init__(level)
        self.records = []
        self.expect = expect
        self.arrived = threading.Event()

    def emit(self, record):
        self.records.append(record)
        if self.expect is not None and len(self.records) >= self.expect:
            self.arrived.set()

    @property
    def messages(self):
        return [r.getMessage() for r in self.records]


@pytest.fixture(autouse=True)
def restore_logging():
    root = logging.getLogger()
    unhandled = logging.getLogger("unhandled")
    saved = (
        root.handlers[:], root.level, unhandled.handlers[:],
        unhandled.propagate, sys.excepthook, signal.getsignal(signal.SIGTERM),
    )
    yield
    aiomisc_c.log._close_configured_wrappers()
    root.handlers[:], level, unhandled.handlers[:], unhandled.propagate, \
        sys.excepthook, sigterm = saved
    root.setLevel(level)
    signal.signal(signal.SIGTERM, sigterm)


def make_record(msg="message", level=logging.INFO, args=(), exc_info=None, **extra):
    record = logging.LogRecord(
        "test.logger", level, __file__, 42, msg, args, exc_info, func="func",
    )
    record.__dict__.update(extra)
    return record


# -- enums ---------------------------------------------------------------------


def test_choices():
    assert LogFormat.choices() == (
        "disabled", "stream", "color", "json", "syslog", "plain", "journald",
        "rich", "rich_tb",
    )
    assert LogLevel.choices() == (
        "critical", "error", "warning", "info", "debug", "notset",
    )
    assert LogLevel.default() == "info"
    assert int(LogLevel.warning) == logging.WARNING
    assert log_enum.DateFormat.json.value == "%s"
    assert log_enum.DateFormat.syslog.value is None


@pytest.mark.parametrize(
    "journal, tty, rich_installed, expected",
    [
        (True, True, True, "journald"),
        (False, False, True, "plain"),
        (False, True, True, "rich"),
        (False, True, False, "color"),
    ],
)
def test_log_format_default(journal, tty, rich_installed, expected):
    with mock.patch.object(log_enum, "check_journal_stream", return_value=journal), \
            mock.patch.object(log_enum, "_stderr_is_tty", return_value=tty), \
            mock.patch.object(log_enum, "RICH_INSTALLED", rich_installed):
        assert LogFormat.default() == expected


def test_log_format_default_without_stderr_fileno():
    # pytest's capture (and other replacements) has no usable fileno()
    with mock.patch.object(log_enum, "check_journal_stream", return_value=False), \
            mock.patch.object(sys, "stderr", io.StringIO()):
        assert LogFormat.default() == "plain"


def test_check_journal_stream():
    with mock.patch.dict(os.environ, {"JOURNAL_STREAM": ""}):
        assert log_enum.check_journal_stream() is False
    st = os.fstat(sys.__stderr__.fileno())
    with mock.patch.dict(os.environ, {"JOURNAL_STREAM": f"{st.st_dev}:{st.st_ino}"}), \
            mock.patch.object(sys, "stderr", sys.__stderr__):
        assert log_enum.check_journal_stream() is True


def test_rich_installed_flag():
    assert log_enum.RICH_INSTALLED is (rich is not None)


# -- import cost -----------------------------------------------------------------


def test_import_is_lazy():
    code = (
        "import sys, aiomisc_c.log, aiomisc_c.log.core, aiomisc_c.log.formatter;"
        "print(sorted(m for m in ('rich', 'colorlog', 'logging_journald')"
        " if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True,
        env=child_env(), cwd=NEUTRAL_CWD,
    ).stdout
    assert out.strip() == "[]"


# -- names -----------------------------------------------------------------------


def test_module_names():
    assert set(aiomisc_c.log.__all__) == {
        "LogFormat", "LogLevel", "ThreadedHandler", "basic_config",
    }
    assert set(core.__all__) == {
        "LOG_FORMAT", "LOG_LEVEL", "LogFormat", "LogLevel", "basic_config",
        "create_logging_handler",
    }
    for name in (
        "ThreadedHandlerStatistic", "UnhandledLoopHook", "wrap_logging_handler",
        "suppressor", "LOG_LEVEL", "LOG_FORMAT", "create_logging_handler",
        "DateFormat", "UnhandledHook", "UnhandledPythonHook", "pass_wrapper",
        "DEFAULT_FORMAT",
    ):
        assert hasattr(aiomisc_c.log, name), name
    # the loop-aware basic_config wins the name collision
    assert aiomisc_c.log.basic_config is not core.basic_config
    assert aiomisc_c.log.LOG_LEVEL is core.LOG_LEVEL
    assert core.DEFAULT_FORMAT == "%(levelname)s:%(name)s:%(message)s"
    for name in ("color_formatter", "journald_formatter", "json_handler",
                 "rich_formatter", "HandlerWrapperType", "UnhandledHookBase"):
        assert hasattr(core, name), name
    assert core.pass_wrapper(core) is core


# -- core.create_logging_handler ------------------------------------------------


def test_create_handler_disabled():
    assert core.create_logging_handler(LogFormat.disabled) is None
    assert core.LOG_FORMAT.get() == LogFormat.disabled


def test_create_handler_stream_and_plain():
    stream = io.StringIO()
    handler = core.create_logging_handler(LogFormat.stream, stream=stream)
    handler.handle(make_record("hello %s", args=("world",)))
    assert stream.getvalue() == "INFO:test.logger:hello world\n"

    handler = core.create_logging_handler(
        LogFormat.stream, date_format="%Y", stream=stream,
    )
    assert handler.formatter._fmt == "%(asctime)s " + core.DEFAULT_FORMAT
    assert handler.formatter.datefmt == "%Y"
    # Ellipsis means "no date format"
    handler = core.create_logging_handler(LogFormat.stream, date_format=...)
    assert handler.formatter._fmt == core.DEFAULT_FORMAT
    assert handler.stream is sys.stderr

    stream = io.StringIO()
    handler = core.create_logging_handler(LogFormat.plain, stream=stream)
    handler.handle(make_record("plain"))
    assert stream.getvalue() == "plain\n"
    assert core.LOG_FORMAT.get() == LogFormat.plain


def test_create_handler_color():
    from colorlog import ColoredFormatter

    stream = io.StringIO()
    handler = core.create_logging_handler(LogFormat.color, stream=stream)
    assert isinstance(handler.formatter, ColoredFormatter)
    handler.handle(make_record("colored", level=logging.ERROR))
    out = stream.getvalue()
    assert "colored" in out and "\x1b[" in out
    assert "ERROR:test.logger" in out and "[T:MainThread]" in out


def test_create_handler_json():
    stream = io.StringIO()
    handler = core.create_logging_handler(
        LogFormat.json, stream=stream, date_format="%s",
    )
    assert isinstance(handler.formatter, JSONLogFormatter)
    record = make_record()
    handler.handle(record)
    assert json.loads(stream.getvalue())["@timestamp"] == record.created
    handler = core.create_logging_handler(LogFormat.json)
    assert handler.stream is sys.stdout
    with pytest.raises(TypeError):
        core.create_logging_handler(LogFormat.json, no_such_keyword=1)


def test_create_handler_syslog(capsys):
    handler = core.create_logging_handler(LogFormat.syslog, date_format="%Y")
    try:
        assert isinstance(handler, logging.handlers.SysLogHandler)
        assert handler.formatter._fmt == "%(message)s"
    finally:
        handler.close()
    assert 'Can not apply "date_format" for syslog' in capsys.readouterr().err


def test_create_handler_journald():
    from logging_journald import JournaldLogHandler

    with mock.patch.object(JournaldLogHandler, "SOCKET_PATH") as path:
        path.exists.return_value = False
        with pytest.raises(FileNotFoundError, match="JournalD socket"):
            core.create_logging_handler(LogFormat.journald)
    with mock.patch.dict(sys.modules, {"logging_journald": None}):
        with pytest.raises(ImportError, match="logging-journald"):
            core.create_logging_handler(LogFormat.journald)


@pytest.mark.skipif(rich is None, reason="rich is not installed")
def test_create_handler_rich():
    from rich.console import Console
    from rich.logging import RichHandler

    stream = io.StringIO()
    handler = core.create_logging_handler(
        LogFormat.rich, console=Console(file=stream, width=200),
    )
    assert isinstance(handler, RichHandler)
    assert handler.rich_tracebacks is False
    handler.handle(make_record("rich message"))
    assert "rich message" in stream.getvalue()

    handler = core.create_logging_handler(
        LogFormat.rich_tb, console=Console(file=io.StringIO()),
    )
    assert handler.rich_tracebacks is True


def test_create_handler_rich_missing():
    with mock.patch.dict(sys.modules, {"rich": None, "rich.logging": None}):
        with pytest.raises(ImportError, match='"rich"'):
            core.create_logging_handler(LogFormat.rich)
        with pytest.raises(ImportError, match='"rich"'):
            core.create_logging_handler(LogFormat.rich_tb)


def test_create_handler_unknown():
    with pytest.raises(NotImplementedError):
        core.create_logging_handler(42)


# -- JSON formatter --------------------------------------------------------------


def test_json_fields():
    formatter = JSONLogFormatter()
    record = make_record(
        "%s and %r", args=("one", 2), request_id="abc", _private=1, empty=None,
    )
    payload = json.loads(formatter.format(record))
    assert payload["msg"] == "one and 2"
    assert payload["level"] == "info"
    assert "@timestamp" not in payload and "stackTrace" not in payload
    fields = payload["@fields"]
    assert fields["errno"] == 0
    assert fields["code_file"] == os.path.basename(__file__)
    assert fields["code_func"] == "func"
    assert fields["code_line"] == 42
    assert fields["code_module"] == "test_log"
    assert fields["identifier"] == "test.logger"
    assert fields["message_raw"] == "%s and %r"
    assert fields["pid"] == os.getpid()
    assert fields["argument_0"] == "one" and fields["argument_1"] == "2"
    assert fields["request_id"] == "abc"
    assert "args" not in fields and "_private" not in fields
    assert "empty" not in fields


def test_json_levels_and_exception():
    formatter = JSONLogFormatter()
    levels = {
        logging.DEBUG: "debug", logging.INFO: "info", logging.WARNING: "warn",
        logging.ERROR: "error", logging.CRITICAL: "fatal", logging.NOTSET: None,
        25: "level 25",
    }
    for levelno, name in levels.items():
        payload = json.loads(formatter.format(make_record(level=levelno)))
        assert payload["level"] == name

    try:
        raise ValueError("boom")
    except ValueError:
        record = make_record(level=logging.ERROR, exc_info=sys.exc_info())
    payload = json.loads(formatter.format(record))
    assert payload["@fields"]["errno"] == 255
    assert "ValueError: boom" in payload["stackTrace"]


def test_json_timestamp_and_dumps():
    record = make_record()
    payload = json.loads(JSONLogFormatter(datefmt="%Y").format(record))
    assert payload["@timestamp"] == str(
        __import__("time").localtime(record.created).tm_year,
    )
    assert "@timestamp" not in json.loads(JSONLogFormatter(datefmt=...).format(record))
    dumped = JSONLogFormatter(dumps=lambda obj: "custom").format(record)
    assert dumped == "custom"
    # non-ASCII is kept, non-serialisable values become repr()
    line = JSONLogFormatter().format(make_record("привет", thing=object()))
    assert "привет" in line and "<object object" in line


# -- core.basic_config --------------------------------------------------------------


def test_core_basic_config_level_names():
    with pytest.raises(KeyError):
        core.basic_config(level="INFO")
    with pytest.raises(KeyError):
        core.basic_config(log_format="JSON")


def test_core_basic_config(capsys):
    core.basic_config(level="debug", log_format="stream")
    root = logging.getLogger()
    assert root.level == logging.DEBUG
    assert core.LOG_LEVEL.get() == LogLevel.debug
    assert core.LOG_FORMAT.get() == LogFormat.stream
    assert isinstance(sys.excepthook, core.UnhandledPythonHook)
    logging.getLogger("x").debug("to stderr")
    assert "DEBUG:x:to stderr" in capsys.readouterr().err

    user = ListHandler()
    wrapped = []

    def wrapper(handler):
        wrapped.append(handler)
        return handler

    core.basic_config(
        level=logging.WARNING, log_format="disabled", handlers=[user],
        handler_wrapper=wrapper,
    )
    assert root.handlers == [user] and wrapped == [user]
    # handlers without a formatter get the basicConfig one, as in 17.x
    assert user.formatter._fmt == logging.BASIC_FORMAT
    logging.info("dropped")
    logging.warning("kept")
    assert user.messages == ["kept"]


def test_unhandled_python_hook():
    user = ListHandler()
    core.basic_config(log_format="disabled", handlers=[user])
    try:
        raise RuntimeError("uncaught")
    except RuntimeError:
        sys.excepthook(*sys.exc_info())
    (record,) = user.records
    assert record.name == "unhandled"
    assert record.getMessage() == "Unhandled exception"
    assert record.exc_info[0] is RuntimeError
    assert logging.getLogger("unhandled").propagate is False


def test_unhandled_hook_logger_quirk():
    hook = UnhandledLoopHook(logger_name="asyncio.unhandled")
    assert hook.logger_name == "asyncio.unhandled"
    assert hook.logger is logging.getLogger("unhandled")


# -- ThreadedHandler -----------------------------------------------------------------


def test_threaded_handler_delivers_in_order_on_close():
    target = ListHandler()
    handler = ThreadedHandler(target, flush_interval=60)
    handler.start()
    for i in range(3000):
        handler.handle(make_record(str(i)))
    handler.close()
    assert target.messages == [str(i) for i in range(3000)]
    assert not handler._thread.is_alive()


@pytest.mark.skipif(not hasattr(signal, "pthread_sigmask"), reason="POSIX only")
def test_threaded_handler_thread_leaves_sigterm_to_the_main_thread():
    """Regression: SIGTERM delivered to the delivery thread left the main
    thread asleep in epoll_wait and the SIGTERM flush never ran (the child
    hung); the delivery thread blocks SIGINT/SIGTERM."""
    masks = []

    class MaskRecorder(logging.Handler):
        def emit(self, record):
            masks.append(signal.pthread_sigmask(signal.SIG_BLOCK, []))

    before = signal.pthread_sigmask(signal.SIG_BLOCK, [])
    handler = ThreadedHandler(MaskRecorder(), flush_interval=60)
    handler.start()
    handler.handle(make_record("x"))
    handler.close()
    assert masks and {signal.SIGINT, signal.SIGTERM} <= masks[0]
    assert signal.pthread_sigmask(signal.SIG_BLOCK, []) == before


def test_threaded_handler_close_races_emitters():
    target = ListHandler()
    handler = ThreadedHandler(target, flush_interval=0.001, queue_size=8)
    handler.start()
    started = threading.Barrier(5)

    def produce(n):
        started.wait(WAIT)
        for i in range(2000):
            handler.handle(make_record(f"{n}-{i}"))

    producers = [threading.Thread(target=produce, args=(n,)) for n in range(4)]
    for producer in producers:
        producer.start()
    started.wait(WAIT)
    handler.close()     # while the producers are still logging
    for producer in producers:
        producer.join(WAIT)
        assert not producer.is_alive()
    messages = target.messages
    assert len(messages) == len(set(messages)) == 8000
    for n in range(4):   # each producer's records keep their order
        mine = [m for m in messages if m.startswith(f"{n}-")]
        assert mine == [f"{n}-{i}" for i in range(2000)]


def test_threaded_handler_closed_by_its_target():
    class ClosingTarget(ListHandler):
        def emit(self, record):
            super().emit(record)
            if record.getMessage() == "close":
                wrapper.close()

    target = ClosingTarget()
    wrapper = ThreadedHandler(target, flush_interval=0.01)
    wrapper.start()
    wrapper.handle(make_record("close"))
    wrapper._thread.join(WAIT)
    assert not wrapper._thread.is_alive()
    wrapper.handle(make_record("after"))
    assert target.messages == ["close", "after"]


def test_threaded_handler_flush_interval():
    target = ListHandler(expect=1)
    handler = ThreadedHandler(target, flush_interval=0.05)
    handler.start()
    try:
        handler.handle(make_record("tick"))
        assert target.arrived.wait(WAIT)
    finally:
        handler.close()


def test_threaded_handler_flush_is_synchronous():
    class Target(ListHandler):
        flushed_after = None

        def flush(self):
            self.flushed_after = self.messages[:]

    target = Target()
    handler = ThreadedHandler(target, flush_interval=60)
    handler.start()
    try:
        handler.handle(make_record("a"))
        handler.handle(make_record("b"))
        handler.flush()
        assert target.messages == ["a", "b"]
        # the target is flushed too, after the records reached it
        assert target.flushed_after == ["a", "b"]
    finally:
        handler.close()


def test_threaded_handler_wakes_at_queue_size():
    target = ListHandler(expect=10)
    handler = ThreadedHandler(target, flush_interval=3600, queue_size=10)
    handler.start()
    try:
        for i in range(10):
            handler.handle(make_record(str(i)))
        # long before the hour-long flush interval
        assert target.arrived.wait(WAIT)
    finally:
        handler.close()


def test_threaded_handler_emit_never_blocks():
    release = threading.Event()

    class Blocked(ListHandler):
        def emit(self, record):
            release.wait(WAIT)
            super().emit(record)

    target = Blocked()
    handler = ThreadedHandler(target, flush_interval=0.01, queue_size=16)
    handler.start()
    try:
        producer = threading.Thread(
            target=lambda: [handler.handle(make_record(str(i))) for i in range(5000)],
        )
        producer.start()
        producer.join(WAIT)
        # the target is stuck, the bounded queue is far over its size, yet
        # every emit returned: nothing raised queue.Full, nothing waited
        assert not producer.is_alive()
    finally:
        release.set()
        handler.close()
    assert target.messages == [str(i) for i in range(5000)]


def test_threaded_handler_unbuffered_bounded():
    target = ListHandler(expect=500)
    handler = ThreadedHandler(target, flush_interval=60, buffered=False, queue_size=4)
    handler.start()
    try:
        for i in range(500):
            handler.handle(make_record(str(i)))
            assert len(handler._queue) <= 4
        # unbuffered: delivered promptly, not after the 60 s interval
        assert target.arrived.wait(WAIT)
    finally:
        handler.close()
    assert target.messages == [str(i) for i in range(500)]


def test_threaded_handler_respects_target_level_and_errors():
    class Failing(logging.Handler):
        def handle(self, record):
            raise RuntimeError("target failed")

    target = ListHandler(level=logging.WARNING)
    handler = ThreadedHandler(target, flush_interval=60)
    handler.start()
    handler.handle(make_record("info", level=logging.INFO))
    handler.handle(make_record("warning", level=logging.WARNING))
    handler.close()
    assert target.messages == ["warning"]

    failing = ThreadedHandler(Failing(), flush_interval=60)
    failing.start()
    failing.handle(make_record("lost"))
    failing.close()
    assert failing._statistic.errors == 1


def test_threaded_handler_after_close_and_unstarted():
    target = ListHandler()
    handler = ThreadedHandler(target)
    handler.handle(make_record("queued before start"))
    handler.close()      # never started: delivered by close itself
    handler.handle(make_record("after close"))
    assert target.messages == ["queued before start", "after close"]
    handler.close()      # idempotent


def test_threaded_handler_start_twice():
    handler = ThreadedHandler(ListHandler())
    handler.start()
    try:
        with pytest.raises(RuntimeError):
            handler.start()
    finally:
        handler.close()


def test_threaded_handler_bad_interval():
    with pytest.raises(ValueError, match="flush_interval"):
        ThreadedHandler(ListHandler(), flush_interval=-1)


def test_threaded_handler_zero_interval_is_prompt():
    target = ListHandler(expect=1)
    handler = ThreadedHandler(target, flush_interval=0)
    handler.start()
    try:
        handler.handle(make_record("now"))
        assert target.arrived.wait(WAIT)
    finally:
        handler.close()


def test_threaded_handler_statistic():
    handler = ThreadedHandler(ListHandler(), flush_interval=60)
    stat = handler._statistic
    assert isinstance(stat, ThreadedHandlerStatistic) and stat.name is None
    handler.start()
    assert stat.threads == 1
    for _ in range(3):
        handler.handle(make_record())
    handler.flush()
    assert (stat.records, stat.flushes, stat.errors) == (3, 1, 0)
    values = {
        r.metric: r.value for r in get_statistics(ThreadedHandlerStatistic)
        if r.kind is ThreadedHandlerStatistic
    }
    assert set(values) == {"threads", "records", "errors", "flushes"}
    handler.close()
    assert stat.threads == 0


def test_threaded_handler_logging_shutdown_flushes():
    target = ListHandler()
    handler = ThreadedHandler(target, flush_interval=60)
    handler.start()
    handler.handle(make_record("pending"))
    # what the interpreter runs at exit
    logging.shutdown([__import__("weakref").ref(handler)])
    assert target.messages == ["pending"]


def test_threaded_handler_installs_sigterm_flush():
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    handler = ThreadedHandler(ListHandler())
    handler.start()
    assert signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL
    handler.close()
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL

    def custom(*_):
        pass

    signal.signal(signal.SIGTERM, custom)
    handler = ThreadedHandler(ListHandler())
    handler.start()
    assert signal.getsignal(signal.SIGTERM) is custom  # left alone
    handler.close()


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_threaded_handler_in_forked_child(tmp_path):
    path = tmp_path / "log.txt"
    target = logging.FileHandler(path)
    handler = ThreadedHandler(target, flush_interval=3600)
    handler.start()
    handler.handle(make_record("parent before fork"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # fork with threads
        pid = os.fork()
    if pid == 0:   # pragma: no cover - child
        try:
            handler.handle(make_record("child"))
        finally:
            os._exit(0)   # no atexit, no flush: the child delivered already
    _, status = os.waitpid(pid, 0)
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0
    handler.close()
    target.close()
    assert sorted(path.read_text().splitlines()) == ["child", "parent before fork"]


def test_wrap_logging_handler_and_suppressor():
    target = ListHandler()
    with pytest.warns(DeprecationWarning, match="wrap_logging_handler is deprecated"):
        handler = aiomisc_c.log.wrap_logging_handler(target, buffer_size=8)
    assert isinstance(handler, ThreadedHandler) and handler._thread.is_alive()
    handler.handle(make_record("wrapped"))
    handler.close()
    assert target.messages == ["wrapped"]

    calls = []

    def fails():
        calls.append(1)
        raise ValueError

    aiomisc_c.log.suppressor(fails)()
    with pytest.raises(ValueError):
        aiomisc_c.log.suppressor(fails, exceptions=(KeyError,))()
    assert calls == [1, 1]


# -- loop-aware basic_config ---------------------------------------------------------


def test_basic_config_json_unbuffered(loop, capsys):
    basic_config(level=logging.DEBUG, log_format="json", buffered=False, loop=loop)
    logging.info("json message")
    logging.critical("fatal message")
    lines = capsys.readouterr().out.splitlines()
    first, second = map(json.loads, lines)
    assert first["msg"] == "json message" and first["level"] == "info"
    assert second["level"] == "fatal"


def test_basic_config_stream_unbuffered(loop, capsys):
    basic_config(level=logging.DEBUG, log_format="stream", buffered=False, loop=loop)
    logging.info("stream message")
    assert "INFO:root:stream message" in capsys.readouterr().err


def test_basic_config_takes_the_running_loop(loop):
    async def configure():
        basic_config(log_format="disabled")
        return asyncio.get_running_loop().get_exception_handler()

    assert isinstance(loop.run_until_complete(configure()), UnhandledLoopHook)


def test_basic_config_level_names(loop):
    with pytest.raises(KeyError):
        basic_config(level="INFO", loop=loop)


def test_basic_config_buffered_format_handler(loop, capsys):
    basic_config(log_format="plain", loop=loop, flush_interval=3600)
    (wrapper,) = logging.getLogger().handlers
    assert isinstance(wrapper, ThreadedHandler)
    logging.warning("buffered")
    wrapper.flush()
    assert capsys.readouterr().err == "buffered\n"
    logging.warning("delivered on re-configuration")
    basic_config(log_format="plain", loop=loop, buffered=False)
    assert capsys.readouterr().err == "delivered on re-configuration\n"
    assert not wrapper._thread.is_alive()
    (handler,) = logging.getLogger().handlers
    assert not isinstance(handler, ThreadedHandler)


def test_basic_config_disabled_with_user_handler(loop, capsys):
    user = ListHandler()
    basic_config(log_format="disabled", handlers=[user], loop=loop, buffered=False)
    (wrapper,) = logging.getLogger().handlers
    assert isinstance(wrapper, ThreadedHandler) and wrapper.target is user
    logging.warning("only to the user handler")
    wrapper.flush()
    assert user.messages == ["only to the user handler"]
    captured = capsys.readouterr()
    assert captured.out == captured.err == ""


def test_basic_config_calls_core_through_module_attribute(loop):
    with mock.patch("aiomisc_c.log.core.basic_config") as patched:
        basic_config(level="debug", log_format="json", loop=loop, date_format="%s")
    patched.assert_called_once()
    kwargs = patched.call_args.kwargs
    assert kwargs["level"] == "debug" and kwargs["log_format"] == "json"
    assert kwargs["date_format"] == "%s"


def test_basic_config_handler_wrapper_keyword(loop):
    seen = []

    def wrapper(handler):
        seen.append(handler)
        return handler

    user = ListHandler()
    basic_config(
        log_format="plain", handlers=[user], loop=loop, handler_wrapper=wrapper,
    )
    assert len(seen) == 2
    assert all(isinstance(h, ThreadedHandler) for h in logging.getLogger().handlers)


def test_loop_exception_handler(loop):
    user = ListHandler(expect=2)
    basic_config(log_format="disabled", handlers=[user], loop=loop, flush_interval=0.05)
    assert isinstance(loop.get_exception_handler(), UnhandledLoopHook)

    class FakeTransport:
        def get_extra_info(self, key):
            return {"peername": ("127.0.0.1", 1)}.get(key)

    async def main():
        loop = asyncio.get_running_loop()
        loop.call_exception_handler({
            "message": "boom",
            "exception": ValueError("loop failure"),
            "transport": FakeTransport(),
            "custom": "value",
        })

        async def fail():
            raise KeyError("task failure")

        task = loop.create_task(fail())
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        loop.call_exception_handler({"message": "task died", "task": task})
        task.exception()   # retrieved: no "never retrieved" report at GC

    loop.run_until_complete(main())
    assert user.arrived.wait(WAIT)
    boom, task_died = user.records[:2]
    assert boom.name == "unhandled" and boom.getMessage() == "boom"
    assert boom.exc_info[0] is ValueError
    assert boom.custom == "value"
    assert boom.transport_peername == ("127.0.0.1", 1)
    assert "FakeTransport" in boom.transport
    assert task_died.exc_info[0] is KeyError


def test_loop_exception_reaches_format_handler(loop, capsys):
    basic_config(log_format="plain", loop=loop, buffered=False)
    loop.call_exception_handler({"message": "to every handler"})
    assert "to every handler" in capsys.readouterr().err


def test_unhandled_loop_hook_source_traceback():
    user = ListHandler()
    hook = UnhandledLoopHook()
    hook.add_handler(user)
    import traceback
    hook(None, {"source_traceback": traceback.extract_stack()[-2:]})
    default, source = user.records
    assert default.getMessage() == "unhandled loop exception"
    assert source.levelno == logging.ERROR and "File" in source.getMessage()


# -- environment variables -------------------------------------------------------------


def test_read_log_env_defaults():
    env = read_log_env({})
    assert env.level == "info"
    assert env.format == LogFormat.default()
    assert env.date_format is None
    assert env.config is True and env.buffering is True
    assert env.flush_interval == 0.2 and env.buffer_size == 1024


def test_read_log_env_values():
    env = read_log_env({
        "AIOMISC_LOG_LEVEL": "debug",
        "AIOMISC_LOG_FORMAT": "json",
        "AIOMISC_LOG_DATE_FORMAT": "%s",
        "AIOMISC_LOG_CONFIG": "off",
        "AIOMISC_LOG_FLUSH": "1.5",
        "AIOMISC_LOG_BUFFERING": "No",
        "AIOMISC_LOG_BUFFER": "7",
    })
    assert env == ("debug", "json", "%s", False, 1.5, False, 7)
    assert read_log_env({"AIOMISC_LOG_BUFFERING": "Enabled"}).buffering is True
    assert read_log_env({"AIOMISC_LOG_BUFFER_SIZE": "9"}).buffer_size == 9
    assert read_log_env({
        "AIOMISC_LOG_BUFFER_SIZE": "9", "AIOMISC_LOG_BUFFER": "3",
    }).buffer_size == 3
    with pytest.raises(ValueError, match="AIOMISC_LOG_FLUSH"):
        read_log_env({"AIOMISC_LOG_FLUSH": "soon"})
