"""Fixtures shared by the whole suite.

* ``implementation``: every primitive test runs against the C twin (``"c"``,
  marked ``c_extension``) and the Python twin (``"python"``).  The C run is
  skipped with a reason when the extension is not built;
  ``--no-c-extensions`` deselects it.
* ``loop``: a fresh event loop of each kind (``"asyncio"``, ``"uvloop"``),
  created with the package's own ``new_event_loop`` under the chosen twin.
"""
import asyncio
import gc

import pytest

import aiomisc_c  # noqa: F401 - registers every twinned primitive before c_available()
from aiomisc_c import _compat

try:
    import uvloop
except ImportError:  # pragma: no cover - uvloop is part of the test extra
    uvloop = None


def pytest_addoption(parser):
    parser.addoption(
        "--no-c-extensions", action="store_true", default=False,
        help="Do not run the tests against the C extension twins",
    )


def pytest_sessionstart(session):
    # CI sets AIOMISC_C_REQUIRE_EXTENSIONS=1 so that a missing or broken build
    # fails loudly instead of silently skipping every C test.
    if _compat.env_bool("AIOMISC_C_REQUIRE_EXTENSIONS") and not _compat.c_available():
        raise pytest.UsageError(
            f"C extensions are required but unavailable: {_compat._C_MISSING}",
        )


def pytest_collection_modifyitems(config, items):
    if not config.getoption("--no-c-extensions"):
        return
    kept, deselected = [], []
    for item in items:
        (deselected if item.get_closest_marker("c_extension") else kept).append(item)
    if deselected:
        config.hook.pytest_deselected(items=deselected)
        items[:] = kept


IMPLEMENTATIONS = [
    pytest.param("c", marks=pytest.mark.c_extension, id="c"),
    pytest.param("python", id="py"),
]


@pytest.fixture(params=IMPLEMENTATIONS)
def implementation(request):
    kind = request.param
    if kind == "c" and not _compat.c_available():
        pytest.skip(f"C extensions unavailable: {_compat._C_MISSING}")
    with _compat.use_implementation(kind):
        yield kind


LOOP_KINDS = ["asyncio", "uvloop"]


def _policy(kind):
    if kind == "uvloop":
        if uvloop is None:
            pytest.skip("uvloop is not installed")
        return uvloop.EventLoopPolicy()
    return asyncio.DefaultEventLoopPolicy()


@pytest.fixture(params=LOOP_KINDS)
def loop_kind(request):
    return request.param


@pytest.fixture
def policy(loop_kind):
    """The event-loop policy of ``loop_kind`` (for code that makes loops)."""
    return _policy(loop_kind)


def _fresh_loop(loop_kind):
    """A new loop from the package's new_event_loop, closed afterwards."""
    from aiomisc_c import utils

    event_loop = utils.new_event_loop(policy=_policy(loop_kind))
    try:
        yield event_loop
    finally:
        if not event_loop.is_closed():
            event_loop.run_until_complete(event_loop.shutdown_asyncgens())
            event_loop.close()
        asyncio.set_event_loop(None)
        asyncio.set_event_loop_policy(None)
        gc.collect()


@pytest.fixture
def loop(implementation, loop_kind):
    """A fresh loop per twin (``implementation``) and loop kind."""
    yield from _fresh_loop(loop_kind)


@pytest.fixture
def plain_loop(loop_kind):
    """A fresh loop per loop kind only: for modules that have no twins
    (test files override ``loop`` with it)."""
    yield from _fresh_loop(loop_kind)


@pytest.fixture
def run(loop):
    """``run(coro)``: run a coroutine to completion on the test loop."""
    def runner(coro, timeout=60):
        return loop.run_until_complete(asyncio.wait_for(coro, timeout))
    return runner


# --------------------------------------------------------------------------
# Thread-pool fixtures (tests/test_thread_pool_*.py, test_threaded.py, ...).


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "slow: a long-running case (big loads, many iterations)",
    )
    config.addinivalue_line(
        "markers", "subprocess: the test runs a separate Python process",
    )


def default_executor(event_loop):
    """The default executor of ``event_loop`` (``None`` when unset).

    asyncio keeps it in ``_default_executor``; uvloop keeps it in a Cython
    attribute that is only visible to the garbage collector's traversal.
    """
    import concurrent.futures

    if "_default_executor" in getattr(event_loop, "__dict__", {}):
        return event_loop._default_executor
    for referent in gc.get_referents(event_loop):
        if isinstance(referent, concurrent.futures.Executor):
            return referent
    return None


@pytest.fixture
def pool_size():
    """Override in a module or a test to size the ``pool`` fixture."""
    return 8


@pytest.fixture
def pool_name(request):
    """A statistic name no other pool of the session uses."""
    import uuid

    return f"{request.node.name[:40]}-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def pool(loop, pool_size, pool_name):
    """A fresh ``ThreadPoolExecutor`` of the current twin named ``pool_name``,
    installed as the default executor of ``loop`` (the executor made by
    ``new_event_loop`` is shut down first so its threads do not pile up)."""
    from aiomisc_c import thread_pool

    previous = default_executor(loop)
    if previous is not None:
        previous.shutdown(wait=False)
    executor = thread_pool.ThreadPoolExecutor(
        pool_size, statistic_name=pool_name,
    )
    loop.set_default_executor(executor)
    try:
        yield executor
    finally:
        executor.shutdown(wait=True)


@pytest.fixture
def loop_errors(loop):
    """Every context passed to ``loop.call_exception_handler`` during the
    test ("exception was never retrieved", exceptions in callbacks...)."""
    calls = []
    loop.set_exception_handler(lambda _loop, context: calls.append(context))
    yield calls
    gc.collect()
    assert calls == [], calls
