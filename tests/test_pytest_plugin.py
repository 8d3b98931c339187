"""``aiomisc_c.pytest``: small test files run through the plugin with
``pytester``, each in a fresh pytest process (the plugin sets the loop
policy, logging and ``asyncio.get_event_loop`` of the whole process).

The inner runs parametrise ``event_loop_policy`` over asyncio's loop and
uvloop (``conftest`` below), so each inner test runs on both.
"""
import importlib.metadata

import pytest
from helpers.childproc import child_env

pytest_plugins = ["pytester"]

pytestmark = pytest.mark.subprocess

BOTH_LOOPS_CONFTEST = """
import asyncio
import pytest

try:
    import uvloop
except ImportError:
    uvloop = None


@pytest.fixture(params=["asyncio", "uvloop"])
def event_loop_policy(request):
    if request.param == "uvloop":
        if uvloop is None:
            pytest.skip("uvloop is not installed")
        return uvloop.EventLoopPolicy()
    return asyncio.DefaultEventLoopPolicy()
"""


@pytest.fixture
def pytester(pytester, monkeypatch):
    """The child pytest imports the aiomisc_c this process imported."""
    monkeypatch.setenv("PYTHONPATH", child_env()["PYTHONPATH"])
    monkeypatch.delenv("AIOMISC_LOOP_AUTOUSE", raising=False)
    monkeypatch.delenv("AIOMISC_USE_UVLOOP", raising=False)
    return pytester


def run(pytester, *args, conftest=BOTH_LOOPS_CONFTEST, plugin="aiomisc_c.pytest"):
    if conftest is not None:
        pytester.makeconftest(conftest)
    plugin_args = ("-p", plugin) if plugin else ()
    return pytester.runpytest_subprocess(
        *plugin_args, "-p", "no:cacheprovider", "-W", "error", *args,
        timeout=120,
    )


def test_async_tests_pass_fail_and_time_out(pytester):
    pytester.makepyfile("""
        import asyncio
        import pytest

        async def test_passes(event_loop):
            assert asyncio.get_running_loop() is event_loop
            await asyncio.sleep(0)

        async def test_fails():
            await asyncio.sleep(0)
            assert False, "failed on purpose"

        async def test_times_out():
            await asyncio.sleep(60)

        class TestInClass:
            async def test_method(self):
                assert self.__class__.__name__ == "TestInClass"

        def test_sync_test_still_runs(event_loop):
            assert not event_loop.is_running()

        @pytest.mark.parametrize("value", [1, 2])
        async def test_parametrized(value, event_loop_policy):
            assert value in (1, 2)
    """)
    result = run(pytester, "--aiomisc-test-timeout=0.3")
    result.assert_outcomes(passed=10, failed=4)
    result.stdout.fnmatch_lines(["*failed on purpose*"])
    assert result.stdout.str().count("TimeoutError") >= 2


def test_uvloop_policy_is_the_default(pytester, monkeypatch):
    uvloop = pytest.importorskip("uvloop")
    pytester.makepyfile("""
        import asyncio

        async def test_loop_kind(event_loop):
            print("LOOP", type(event_loop).__module__)
    """)
    result = run(pytester, "-s", conftest=None)
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines([f"*LOOP {uvloop.Loop.__module__}"])

    monkeypatch.setenv("AIOMISC_USE_UVLOOP", "0")
    result = run(pytester, "-s", conftest=None)
    result.stdout.fnmatch_lines(["*LOOP asyncio*"])


def test_catch_loop_exceptions(pytester):
    pytester.makepyfile("""
        import asyncio
        import pytest

        def explode():
            raise ZeroDivisionError("boom in a callback")

        @pytest.mark.catch_loop_exceptions
        async def test_caught(event_loop):
            event_loop.call_soon(explode)
            await asyncio.sleep(0.01)

        @pytest.mark.catch_loop_exceptions
        async def test_clean():
            await asyncio.sleep(0)
    """)
    result = run(pytester)
    # The loop exceptions are reported by the teardown of event_loop.
    result.assert_outcomes(passed=4, errors=2)
    result.stdout.fnmatch_lines([
        "*ERROR at teardown of test_caught*",
        "*Unhandled exceptions found. See logs.*",
        "*Unhandled exceptions found:*",
        "*ZeroDivisionError('boom in a callback')*",
    ])


def test_forbid_get_event_loop(pytester):
    pytester.makepyfile("""
        import asyncio
        import aiomisc_c
        import pytest


        class Sleeper(aiomisc_c.Service):
            async def start(self):
                self.start_event.set()
                await asyncio.sleep(3600)


        @pytest.fixture
        def services():
            # (the entrypoint starts and stops it inside every test)
            return [Sleeper()]


        @pytest.mark.forbid_get_event_loop
        async def test_calls_it():
            asyncio.get_event_loop()

        @pytest.mark.forbid_get_event_loop
        async def test_does_not_call_it(entrypoint):
            await asyncio.sleep(0)

        async def test_allowed_without_marker(event_loop):
            assert asyncio.get_event_loop() is event_loop
    """)
    result = run(pytester)
    result.assert_outcomes(passed=4, failed=2)
    result.stdout.fnmatch_lines(["*get_event_loop is forbidden*"])


ORDERING_TESTS = """
import asyncio
import pytest

EVENTS = []


def record(event):
    EVENTS.append(event)
    with open("events.txt", "a") as fp:
        fp.write(event + "\\n")


@pytest.fixture(scope="session")
def event_loop():
    loop = asyncio.new_event_loop()
    record("loop start")
    yield loop
    record("loop close")
    loop.close()


@pytest.fixture(scope="session")
async def session_gen():
    record("session start")
    yield asyncio.get_running_loop()
    record("session stop")


@pytest.fixture(scope="module")
async def module_gen(session_gen):
    record("module start")
    yield "module"
    await asyncio.sleep(0)
    record("module stop")


@pytest.fixture(scope="class")
async def class_coro():
    record("class coro")
    return "class"


@pytest.fixture
async def function_gen(module_gen):
    record("function start")
    yield "function"
    record("function stop")


class TestScopes:
    async def test_first(self, session_gen, module_gen, class_coro, function_gen):
        assert session_gen is asyncio.get_running_loop()
        assert (module_gen, class_coro, function_gen) == (
            "module", "class", "function")
        record("test first")

    async def test_second(self, session_gen, class_coro, function_gen):
        record("test second")


def test_sync_uses_async_fixture(function_gen):
    assert function_gen == "function"
    record("test sync")
"""


def test_async_fixtures_of_every_scope_and_their_teardown(pytester):
    pytester.makepyfile(ORDERING_TESTS)
    result = run(pytester, conftest=None)
    result.assert_outcomes(passed=3)
    assert (pytester.path / "events.txt").read_text().splitlines() == [
        "loop start",
        "session start", "module start", "class coro", "function start",
        "test first", "function stop",
        "function start", "test second", "function stop",
        "function start", "test sync", "function stop",
        "module stop", "session stop", "loop close",
    ]


def test_async_fixture_needs_event_loop(pytester, monkeypatch):
    monkeypatch.setenv("AIOMISC_LOOP_AUTOUSE", "0")
    pytester.makepyfile("""
        import asyncio
        import pytest

        @pytest.fixture
        async def value():
            return 1

        def test_sync_without_loop(value):
            pass

        async def test_async_gets_the_loop_anyway():
            await asyncio.sleep(0)
    """)
    result = run(pytester, conftest=None)
    result.assert_outcomes(passed=1, errors=1)
    result.stdout.fnmatch_lines(["*`event_loop` fixture required*"])


def test_broken_async_fixtures(pytester):
    pytester.makepyfile("""
        import pytest

        @pytest.fixture
        async def failing():
            raise LookupError("fixture failed")

        @pytest.fixture
        async def empty():
            return
            yield

        @pytest.fixture
        async def twice():
            yield 1
            yield 2

        async def test_failing(failing):
            pass

        async def test_empty(empty):
            pass

        async def test_twice(twice):
            pass
    """)
    result = run(pytester)
    # test_twice passes and then errors in teardown.
    result.assert_outcomes(passed=2, errors=6)
    result.stdout.fnmatch_lines(["*LookupError: fixture failed*"])
    result.stdout.fnmatch_lines(["*empty did not yield a value*"])
    result.stdout.fnmatch_lines(["*twice has more than one 'yield'*"])


def test_services_and_default_context(pytester):
    pytester.makepyfile("""
        import asyncio
        import aiomisc_c
        import pytest
        from aiomisc_c import get_context

        STARTED = []


        class Marker(aiomisc_c.Service):
            running = False

            async def start(self):
                self.running = True
                self.context["started"] = self.name
                STARTED.append(self)

            async def stop(self, exception=None):
                self.running = False


        @pytest.fixture
        def services():
            return [Marker(name="first"), Marker(name="second")]


        @pytest.fixture
        def default_context():
            return {"answer": 42}


        async def test_services_run(services, entrypoint):
            assert isinstance(entrypoint, aiomisc_c.Entrypoint)
            assert all(service.running for service in services)
            assert await get_context()["answer"] == 42
            assert await get_context()["started"] in ("first", "second")


        def test_services_were_stopped():
            # (this test's own services are running, those of
            # test_services_run on both loops were stopped)
            assert len(STARTED) >= 6
            assert sum(service.running for service in STARTED) == 2
    """)
    result = run(pytester)
    result.assert_outcomes(passed=4)


def test_entrypoint_kwargs_and_thread_pool(pytester):
    pytester.makepyfile("""
        import asyncio
        import threading
        import aiomisc_c
        import pytest

        @pytest.fixture
        def entrypoint_kwargs():
            return {"log_config": False, "shutdown_timeout": 7}

        @pytest.fixture
        def thread_pool_size():
            return 3

        async def test_options(entrypoint, event_loop, thread_pool_executor):
            assert event_loop.get_debug()
            assert entrypoint.shutdown_timeout == 7
            assert thread_pool_executor is aiomisc_c.ThreadPoolExecutor
            names = set(await asyncio.gather(*[
                event_loop.run_in_executor(None, threading.current_thread)
                for _ in range(20)
            ]))
            assert 1 <= len(names) <= 3

        def test_option_values(loop_debug, thread_pool_size, aiomisc_test_timeout):
            assert loop_debug is True
            assert aiomisc_test_timeout == 9.5
    """)
    result = run(pytester, "--aiomisc-debug", "--aiomisc-test-timeout=9.5")
    result.assert_outcomes(passed=4)


def test_func_wrap_override(pytester):
    pytester.makepyfile("""
        import functools
        import pytest

        CALLS = []


        @pytest.fixture
        def aiomisc_func_wrap():
            def wrap(func):
                @functools.wraps(func)
                async def wrapper(*args, **kwargs):
                    CALLS.append(func.__name__)
                    return await func(*args, **kwargs)
                return wrapper
            return wrap


        async def test_wrapped():
            pass


        def test_wrapper_ran():
            assert CALLS == ["test_wrapped", "test_wrapped"]
    """)
    result = run(pytester)
    result.assert_outcomes(passed=4)


def test_loop_fixture_is_deprecated(pytester):
    pytester.makepyfile("""
        def test_old_name(loop, event_loop):
            assert loop is event_loop
    """)
    result = run(pytester, "-W", "default::UserWarning", conftest=None)
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines([
        "*UserWarning: fixture `loop` is deprecated, use `event_loop` instead*",
    ])


def test_ports_and_sockets(pytester):
    pytester.makepyfile("""
        import socket
        import aiomisc_c
        from aiomisc_c.pytest import PortSocket

        def test_unused_ports(aiomisc_unused_port_factory, aiomisc_unused_port, localhost):
            ports = {aiomisc_unused_port_factory() for _ in range(5)}
            ports.add(aiomisc_unused_port)
            assert len(ports) == 6
            sockets = [
                aiomisc_c.bind_socket(address=localhost, port=port)
                for port in ports
            ]
            for sock in sockets:
                sock.close()
            udp_port = aiomisc_unused_port_factory(socket.AF_INET, socket.SOCK_DGRAM)
            udp = aiomisc_c.bind_socket(
                socket.AF_INET, socket.SOCK_DGRAM, address="127.0.0.1", port=udp_port,
            )
            udp.close()

        def test_socket_factory(aiomisc_socket_factory, localhost):
            port, sock = result = aiomisc_socket_factory()
            assert isinstance(result, PortSocket)
            assert sock.getsockname()[1] == port
            assert localhost == "127.0.0.1"
    """)
    result = run(pytester)
    result.assert_outcomes(passed=4)


TCP_PROXY_TESTS = """
import asyncio
import time

import pytest

from aiomisc_c.pytest import TCPProxy


async def echo(reader, writer):
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    finally:
        writer.close()


@pytest.fixture
async def server(localhost):
    server = await asyncio.start_server(echo, localhost, 0)
    yield server.sockets[0].getsockname()[1]
    server.close()
    await server.wait_closed()


@pytest.fixture
async def proxy(tcp_proxy, localhost, server):
    assert tcp_proxy is TCPProxy
    async with tcp_proxy(localhost, server) as proxy:
        yield proxy


async def round_trip(reader, writer, data=b"ping"):
    writer.write(data)
    await writer.drain()
    return await reader.readexactly(len(data))


async def test_echo_and_repr(proxy, server):
    assert repr(proxy) == (
        f"<TCPProxy[{id(proxy):x}]: tcp://127.0.0.1:{proxy.proxy_port} "
        f"=> tcp://127.0.0.1:{server}>"
    )
    reader, writer = await proxy.create_client()
    assert await round_trip(reader, writer) == b"ping"
    assert len(proxy.clients) == 1
    writer.close()
    await writer.wait_closed()


async def test_disconnect_all(proxy):
    reader, writer = await proxy.create_client()
    assert await round_trip(reader, writer) == b"ping"
    await proxy.disconnect_all()
    assert await asyncio.wait_for(reader.read(), 10) == b""
    assert not proxy.clients
    writer.close()
    # A new connection still works.
    reader, writer = await proxy.create_client()
    assert await round_trip(reader, writer, b"again") == b"again"
    writer.close()
    await writer.wait_closed()


async def test_slowdown(proxy):
    reader, writer = await proxy.create_client()
    with proxy.slowdown(0.1, 0.2):
        started = time.monotonic()
        assert await round_trip(reader, writer) == b"ping"
        assert time.monotonic() - started >= 0.3
    assert (proxy.read_delay, proxy.write_delay) == (0, 0)
    started = time.monotonic()
    assert await round_trip(reader, writer) == b"ping"
    writer.close()
    await writer.wait_closed()


async def test_set_delay_releases_a_waiting_chunk(proxy):
    reader, writer = await proxy.create_client()
    await round_trip(reader, writer)
    proxy.set_delay(60)
    writer.write(b"slow")
    await asyncio.sleep(0.1)
    proxy.set_delay(0)
    assert await asyncio.wait_for(reader.readexactly(4), 10) == b"slow"
    writer.close()
    await writer.wait_closed()


async def test_refused_target_closes_the_connection(tcp_proxy, localhost, aiomisc_unused_port):
    async with tcp_proxy(localhost, aiomisc_unused_port) as proxy:
        reader, writer = await proxy.create_client()
        assert await asyncio.wait_for(reader.read(), 10) == b""
        writer.close()
        assert not proxy.clients


async def test_processors(proxy):
    reader, writer = await proxy.create_client()

    async def to_server(chunk):
        return chunk.upper()

    proxy.set_content_processors(to_server, lambda chunk: chunk[::-1])
    assert await round_trip(reader, writer, b"abc") == b"CBA"

    proxy.set_content_processors(None, None)
    assert await round_trip(reader, writer, b"abc") == b"abc"
    writer.close()
    await writer.wait_closed()
"""


def test_tcp_proxy(pytester):
    pytester.makepyfile(TCP_PROXY_TESTS)
    result = run(pytester)
    result.assert_outcomes(passed=12)


def test_usage_error_when_aiomisc_pytest_is_active(pytester):
    # A stand-in for aiomisc-pytest: the same option group and options.
    pytester.makepyfile(aiomisc_pytest="""
        def pytest_addoption(parser):
            group = parser.getgroup("aiomisc plugin options")
            group.addoption("--aiomisc-debug", action="store_true")
    """)
    pytester.makepyfile("def test_nothing(): pass")
    for order in (
        ("-p", "aiomisc_pytest", "-p", "aiomisc_c.pytest"),
        ("-p", "aiomisc_c.pytest", "-p", "aiomisc_pytest"),
    ):
        result = run(pytester, *order, plugin=None, conftest=None)
        assert result.ret == pytest.ExitCode.USAGE_ERROR, result.stderr.str()
        result.stderr.fnmatch_lines([
            "*aiomisc_c's pytest plugin and aiomisc-pytest are both active*"
            "`-p no:aiomisc`*`-p no:aiomisc_c`*",
        ])


def entry_point_installed():
    """Whether aiomisc_c is installed with its pytest11 entry point."""
    return any(
        entry_point.value == "aiomisc_c.pytest.plugin"
        for entry_point in importlib.metadata.entry_points(group="pytest11")
    )


def test_entry_point_module_and_explicit_plugin_together(pytester):
    # The entry point names a module that loads the plugin: with
    # "-p aiomisc_c.pytest" also given, the plugin is registered once.
    # (Without an installed aiomisc_c, "-p" loads the entry point's module.)
    entry_point = () if entry_point_installed() else ("-p", "aiomisc_c.pytest.plugin")
    pytester.makepyfile("""
        async def test_runs(event_loop):
            pass
    """)
    result = run(pytester, *entry_point, conftest=None)
    result.assert_outcomes(passed=1)
    result = run(pytester, *entry_point, plugin=None, conftest=None)
    result.assert_outcomes(passed=1)


def test_disabled_plugin_leaves_async_tests_unhandled(pytester):
    pytester.makepyfile("""
        async def test_async():
            pass
    """)
    # (no:aiomisc_c: the entry point of an installed aiomisc_c)
    result = run(pytester, "-p", "no:aiomisc_c", plugin=None, conftest=None)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(["*async def functions are not natively supported*"])


def test_async_fixture_in_plugin_class_keeps_its_binding(pytester):
    pytester.makepyfile("""
        import pytest

        class Base:
            factor = 2

            @pytest.fixture
            async def doubled(self):
                return 21 * self.factor


        class TestBound(Base):
            factor = 3

            async def test_bound(self, doubled):
                assert doubled == 63
    """)
    result = run(pytester)
    result.assert_outcomes(passed=2)


def test_help_lists_options(pytester):
    result = run(pytester, "--help", conftest=None)
    result.stdout.fnmatch_lines([
        "*aiomisc plugin options*",
        "*--aiomisc-debug*",
        "*--aiomisc-pool-size*",
        "*--aiomisc-test-timeout*",
    ])


def test_markers_registered(pytester):
    result = run(pytester, "--markers", conftest=None)
    result.stdout.fnmatch_lines([
        "*forbid_get_event_loop:*",
        "*catch_loop_exceptions:*",
    ])

