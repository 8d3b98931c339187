"""The pytest plugin (mirror of aiomisc-pytest 1.x).

Registered as the pytest plugin ``aiomisc_c`` when the package is
installed (``-p no:aiomisc_c`` disables it; ``-p aiomisc_c.pytest`` loads
it explicitly).  ``async def`` tests and async fixtures of any scope run on
the ``event_loop`` fixture's loop; the autouse ``entrypoint`` fixture runs
the ``services`` fixture's services around each test.

PYTEST_DONT_REWRITE (no assertions to rewrite here; the marker lets pytest
load the plugin silently when it was imported before, e.g. through the
entry-point module or a conftest importing its helpers).
"""
from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import functools
import inspect
import logging
import os
import socket
import sys
import warnings
from types import ModuleType
from typing import (
    Any, AsyncIterator, Callable, Dict, Iterable, Iterator, List, Mapping,
    Optional, Type, Union,
)
from unittest.mock import MagicMock

import pytest

from .._thread_pool_base import iscoroutinefunction
from ..compat import set_current_loop
from ..log.core import LOG_LEVEL, basic_config
from ..utils import awaitable, bind_socket
from ._ports import (
    PortSocket, SocketWrapper, SocketWrapperUnix, SocketWrapperWindows,
    get_unused_port, socket_wrapper, unused_port,
)
from ._proxy import (
    Delay, ProxyProcessorType, TCPProxy, TCPProxyClient, delayed_future,
)

__all__ = (
    "Delay", "PortSocket", "ProxyProcessorType", "SocketWrapper",
    "SocketWrapperUnix", "SocketWrapperWindows", "TCPProxy", "TCPProxyClient",
    "USE_UVLOOP", "delayed_future", "get_unused_port", "isasyncgenerator",
    "loop_autouse", "mock_get_event_loop", "socket_wrapper", "unused_port",
    "uvloop_module",
)

log = logging.getLogger(__name__)

USE_UVLOOP = os.getenv("AIOMISC_USE_UVLOOP", "1").lower() in ("1", "yes", "true")

uvloop_module: Optional[ModuleType] = None
if USE_UVLOOP:
    try:
        import uvloop as uvloop_module
    except ImportError:
        uvloop_module = None

loop_autouse = os.getenv("AIOMISC_LOOP_AUTOUSE", "1") == "1"

OPTION_GROUP = "aiomisc plugin options"
OPTIONS = ("--aiomisc-debug", "--aiomisc-pool-size", "--aiomisc-test-timeout")
CONFLICT_MESSAGE = (
    "aiomisc_c's pytest plugin and aiomisc-pytest are both active: they "
    "provide the same options and fixtures. Disable one of them: "
    "`-p no:aiomisc` (aiomisc-pytest) or `-p no:aiomisc_c` (aiomisc_c's plugin)."
)


def isasyncgenerator(func: Callable[..., Any]) -> Optional[bool]:
    """``True`` for an async generator function, ``False`` for a coroutine
    function, ``None`` for anything else."""
    if inspect.isasyncgenfunction(func):
        return True
    if iscoroutinefunction(func):
        return False
    return None


# The original, kept at import: the replacement passes calls through to it.
_get_event_loop = asyncio.get_event_loop


@contextlib.contextmanager
def mock_get_event_loop() -> Iterator[MagicMock]:
    """Replace ``asyncio.get_event_loop`` by a mock that calls the original
    (set its ``side_effect`` to change that)."""
    getter_mock = MagicMock(asyncio.get_event_loop)
    getter_mock.side_effect = _get_event_loop
    asyncio.get_event_loop = getter_mock
    try:
        yield getter_mock
    finally:
        asyncio.get_event_loop = _get_event_loop


# --------------------------------------------------------------------------
# Configuration


def _aiomisc_pytest_registered(pluginmanager: Any) -> bool:
    if pluginmanager.has_plugin("aiomisc"):
        return True
    return any(
        getattr(plugin, "__name__", None) == "aiomisc_pytest"
        for plugin in pluginmanager.get_plugins()
    )


def pytest_addoption(parser: pytest.Parser, pluginmanager: Any) -> None:
    group = parser.getgroup(OPTION_GROUP)
    taken = {
        name for option in getattr(group, "options", ())
        for name in option.names()
    }
    if taken.intersection(OPTIONS) or _aiomisc_pytest_registered(pluginmanager):
        raise pytest.UsageError(CONFLICT_MESSAGE)

    group.addoption(
        "--aiomisc-debug", action="store_true", default=False,
        help="Set debug for event loop",
    )
    group.addoption(
        "--aiomisc-pool-size", type=int, default=4,
        help="Default thread pool size",
    )
    group.addoption(
        "--aiomisc-test-timeout", type=float, default=None,
        help="Test timeout",
    )

    # aiomisc-pytest loaded after this plugin adds the same options to the
    # same group: stop with the explanation rather than pytest's "option
    # names already added".
    add_option = group.addoption

    def addoption(*opts: str, **attrs: Any) -> None:
        if set(opts).intersection(OPTIONS):
            raise pytest.UsageError(CONFLICT_MESSAGE)
        add_option(*opts, **attrs)

    group.addoption = addoption  # type: ignore[method-assign]


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "forbid_get_event_loop: fail when asyncio.get_event_loop will be called",
    )
    config.addinivalue_line(
        "markers",
        "catch_loop_exceptions: fails when unhandled loop exception will be raised",
    )


# --------------------------------------------------------------------------
# Async tests and fixtures


def _needs_event_loop(obj: Any) -> bool:
    marks = getattr(obj, "pytestmark", [])
    return not any(
        mark.name == "usefixtures" and "event_loop" in mark.args for mark in marks
    )


@pytest.hookimpl(tryfirst=True)
def pytest_pycollect_makeitem(collector: Any, name: str, obj: Any) -> None:
    # An async test always runs on ``event_loop``, even where the fixture is
    # not autouse (AIOMISC_LOOP_AUTOUSE).  Collection itself is pytest's.
    name_filter = getattr(collector, "funcnamefilter", None)
    if (
        inspect.isfunction(obj) and iscoroutinefunction(obj)
        and (name_filter is None or name_filter(name))
        and _needs_event_loop(obj)
    ):
        pytest.mark.usefixtures("event_loop")(obj)


def _test_argnames(pyfuncitem: pytest.Function) -> Iterable[str]:
    fixtureinfo = getattr(pyfuncitem, "_fixtureinfo", None)
    if fixtureinfo is not None:
        return fixtureinfo.argnames  # type: ignore[no-any-return]
    parameters = inspect.signature(pyfuncitem.obj).parameters
    return [name for name in parameters if name in pyfuncitem.funcargs]


@pytest.hookimpl(tryfirst=True)
def pytest_pyfunc_call(pyfuncitem: pytest.Function) -> Optional[bool]:
    func = pyfuncitem.obj
    if not iscoroutinefunction(func):
        return None

    funcargs: Dict[str, Any] = pyfuncitem.funcargs
    event_loop = funcargs.get("event_loop")
    if event_loop is None:
        raise Exception("`event_loop` fixture required")
    func_wrap = funcargs.get("aiomisc_func_wrap", awaitable)
    if "aiomisc_test_timeout" in funcargs:
        test_timeout = funcargs["aiomisc_test_timeout"]
    else:
        test_timeout = pyfuncitem.config.getoption("--aiomisc-test-timeout")
    kwargs = {name: funcargs[name] for name in _test_argnames(pyfuncitem)}

    @functools.wraps(func)
    async def run() -> Any:
        return await asyncio.wait_for(func_wrap(func)(**kwargs), test_timeout)

    event_loop.run_until_complete(run())
    return True


def _bound_fixture_function(fixturedef: Any, request: Any) -> Callable[..., Any]:
    """The fixture function bound to the test's instance, as pytest does."""
    func = fixturedef.func
    instance = request.instance
    if instance is None:
        return func  # type: ignore[no-any-return]
    owner = getattr(func, "__self__", None)
    if owner is not None and not isinstance(instance, type(owner)):
        return func  # type: ignore[no-any-return]  # a fixture of some other class (e.g. a plugin)
    unbound = getattr(func, "__func__", func)
    if unbound is not func:
        return unbound.__get__(instance)  # type: ignore[no-any-return]
    return func  # type: ignore[no-any-return]


def _finish_before_event_loop(fixturedef: Any, request: Any) -> None:
    """Also tear the fixture down whenever ``event_loop`` is torn down
    first (e.g. it is parametrised).  Best effort: it needs the fixture
    definition of ``event_loop``, which pytest does not expose publicly."""
    get_fixturedef = getattr(request, "_get_active_fixturedef", None)
    finish = getattr(fixturedef, "finish", None)
    if get_fixturedef is None or finish is None:
        return
    loop_fixturedef = get_fixturedef("event_loop")
    add_finalizer = getattr(loop_fixturedef, "addfinalizer", None)
    if add_finalizer is not None:
        add_finalizer(functools.partial(finish, request=request))


def _sync_fixture(
    func: Callable[..., Any], is_async_gen: bool, event_loop: asyncio.AbstractEventLoop,
    fixture_name: str,
) -> Callable[..., Any]:
    """A plain (generator) function that runs the async fixture ``func`` on
    ``event_loop``; pytest then caches and finalises it as any other."""
    if not is_async_gen:
        def run_coroutine(**kwargs: Any) -> Any:
            return event_loop.run_until_complete(func(**kwargs))
        return run_coroutine

    def run_async_generator(**kwargs: Any) -> Iterator[Any]:
        generator = func(**kwargs)
        try:
            value = event_loop.run_until_complete(generator.__anext__())
        except StopAsyncIteration:
            raise ValueError(f"{fixture_name} did not yield a value") from None
        yield value
        try:
            event_loop.run_until_complete(generator.__anext__())
        except StopAsyncIteration:
            return
        event_loop.run_until_complete(generator.aclose())
        raise ValueError(f"fixture {fixture_name} has more than one 'yield'")

    return run_async_generator


@pytest.hookimpl(wrapper=True)
def pytest_fixture_setup(fixturedef: Any, request: Any) -> Any:
    func = fixturedef.func
    is_async_gen = isasyncgenerator(func)
    if is_async_gen is None:
        return (yield)
    if "event_loop" not in request.fixturenames:
        raise Exception("`event_loop` fixture required")

    event_loop = request.getfixturevalue("event_loop")
    _finish_before_event_loop(fixturedef, request)
    # pytest calls ``fixturedef.func`` (and handles the caching, the
    # teardown of generators and errors): for this call it is a plain
    # function running the async one on the loop.
    fixturedef.func = _sync_fixture(
        _bound_fixture_function(fixturedef, request), bool(is_async_gen),
        event_loop, fixturedef.argname,
    )
    try:
        return (yield)
    finally:
        fixturedef.func = func


# --------------------------------------------------------------------------
# Fixtures: the loop


@pytest.fixture(scope="session")
def loop_debug(pytestconfig: pytest.Config) -> bool:
    return pytestconfig.getoption("--aiomisc-debug")  # type: ignore[no-any-return]


@pytest.fixture(scope="session")
def thread_pool_size(request: pytest.FixtureRequest) -> int:
    return request.config.getoption("--aiomisc-pool-size")  # type: ignore[no-any-return]


@pytest.fixture(scope="session")
def aiomisc_test_timeout(pytestconfig: pytest.Config) -> Optional[Union[int, float]]:
    return pytestconfig.getoption("--aiomisc-test-timeout")  # type: ignore[no-any-return]


@pytest.fixture(autouse=True)
def aiomisc_func_wrap() -> Callable[..., Any]:
    return awaitable


@pytest.fixture(name="thread_pool_executor")
def _thread_pool_executor() -> Type[concurrent.futures.ThreadPoolExecutor]:
    from .. import thread_pool

    return thread_pool.ThreadPoolExecutor


@contextlib.contextmanager
def _policies_deprecated_quietly() -> Iterator[None]:
    # Python 3.14 deprecates event loop policies; the fixtures keep them
    # (tests parametrise ``event_loop_policy``) without the noise.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        yield


def _default_policy() -> asyncio.AbstractEventLoopPolicy:
    with _policies_deprecated_quietly():
        return asyncio.DefaultEventLoopPolicy()


@pytest.fixture(autouse=loop_autouse, name="event_loop_policy")
def _event_loop_policy() -> asyncio.AbstractEventLoopPolicy:
    if USE_UVLOOP and uvloop_module is not None:
        with _policies_deprecated_quietly():
            return uvloop_module.EventLoopPolicy()  # type: ignore[no-any-return]
    return _default_policy()


def _report_loop_exceptions(exceptions: List[Dict[str, Any]]) -> None:
    logging.error(
        "Unhandled exceptions found:\n\n\t%s",
        "\n\t".join(
            f"Message: {e['message']}\n\t"
            f"Future: {e.get('future')!r}\n\t"
            f"Exception: {e.get('exception')!r}"
            for e in exceptions
        ),
    )
    pytest.fail("Unhandled exceptions found. See logs.")


@pytest.fixture(autouse=loop_autouse)
def event_loop(
    request: pytest.FixtureRequest,
    event_loop_policy: asyncio.AbstractEventLoopPolicy,
    caplog: pytest.LogCaptureFixture,
    thread_pool_size: int,
    loop_debug: bool,
    thread_pool_executor: Callable[..., concurrent.futures.ThreadPoolExecutor],
) -> Iterator[asyncio.AbstractEventLoop]:
    basic_config(log_format="plain", stream=caplog.handler.stream)

    forbid_get_event_loop = request.node.get_closest_marker("forbid_get_event_loop")
    catch_loop_exceptions = request.node.get_closest_marker("catch_loop_exceptions")
    exceptions: List[Dict[str, Any]] = []

    try:
        with _policies_deprecated_quietly():
            asyncio.set_event_loop_policy(event_loop_policy)
        loop = asyncio.new_event_loop()
        loop.set_debug(loop_debug)
        asyncio.set_event_loop(loop)
        set_current_loop(loop)
        loop.set_default_executor(thread_pool_executor(thread_pool_size))
        if catch_loop_exceptions:
            loop.set_exception_handler(lambda _, context: exceptions.append(context))
        LOG_LEVEL.set(logging.getLogger().getEffectiveLevel())

        try:
            with mock_get_event_loop() as getter:
                if forbid_get_event_loop:
                    getter.side_effect = functools.partial(
                        pytest.fail, "get_event_loop is forbidden",
                    )
                yield loop
        finally:
            if exceptions:
                _report_loop_exceptions(exceptions)
            basic_config(log_format="plain", stream=sys.stderr)
            if not loop.is_closed():
                with contextlib.suppress(Exception):
                    loop.run_until_complete(loop.shutdown_asyncgens())
                with contextlib.suppress(Exception):
                    loop.close()
    finally:
        with _policies_deprecated_quietly():
            asyncio.set_event_loop_policy(_default_policy())


@pytest.fixture
def loop(event_loop: asyncio.AbstractEventLoop) -> asyncio.AbstractEventLoop:
    warnings.warn("fixture `loop` is deprecated, use `event_loop` instead")
    return event_loop


# --------------------------------------------------------------------------
# Fixtures: the entrypoint and its services


@pytest.fixture
def services() -> Iterable[Any]:
    return []


@pytest.fixture
def default_context() -> Mapping[str, Any]:
    return {}


@pytest.fixture(name="entrypoint_kwargs")
def _entrypoint_kwargs() -> Dict[str, Any]:
    return {"log_config": False}


@pytest.fixture(autouse=loop_autouse)
async def entrypoint(
    services: Iterable[Any],
    loop_debug: bool,
    default_context: Mapping[str, Any],
    entrypoint_kwargs: Mapping[str, Any],
    thread_pool_size: int,
    thread_pool_executor: Callable[..., concurrent.futures.ThreadPoolExecutor],
    event_loop: asyncio.AbstractEventLoop,
) -> AsyncIterator[Any]:
    from ..context import get_context
    from ..entrypoint import entrypoint as make_entrypoint

    async with make_entrypoint(
        *services, loop=event_loop, **entrypoint_kwargs,
    ) as ep:
        context = get_context()
        for key, value in default_context.items():
            context[key] = value
        yield ep


# --------------------------------------------------------------------------
# Fixtures: network helpers


@pytest.fixture(scope="session")
def localhost() -> str:
    for family, address in ((socket.AF_INET, "127.0.0.1"), (socket.AF_INET6, "::1")):
        try:
            with socket.socket(family, socket.SOCK_STREAM) as sock:
                sock.bind((address, 0))
        except OSError:
            continue
        return address
    raise RuntimeError("localhost unavailable")


@pytest.fixture(scope="session")
def tcp_proxy() -> Type[TCPProxy]:
    return TCPProxy


@pytest.fixture
def aiomisc_unused_port_factory(
    request: pytest.FixtureRequest, localhost: str,
) -> Callable[..., int]:
    def port_factory(*args: Any) -> int:
        wrapper = socket_wrapper(*args)
        wrapper.prepare("::" if ":" in localhost else "0.0.0.0")
        request.addfinalizer(wrapper.close)
        return wrapper.port
    return port_factory


@pytest.fixture
def aiomisc_unused_port(aiomisc_unused_port_factory: Callable[..., int]) -> int:
    return aiomisc_unused_port_factory()


@pytest.fixture
def aiomisc_socket_factory(
    request: pytest.FixtureRequest, localhost: str,
) -> Callable[..., PortSocket]:
    def factory(*args: Any, **kwargs: Any) -> PortSocket:
        sock = bind_socket(*args, address=localhost, port=0, **kwargs)
        request.addfinalizer(sock.close)
        return PortSocket(port=sock.getsockname()[1], socket=sock)
    return factory
