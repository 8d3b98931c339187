"""Event-loop setup: ``utils.create_default_event_loop`` / ``utils.new_event_loop``.

Every test runs over both twins (``implementation``) and, where a loop is
made, over both loop kinds (``loop_kind``).
"""
import asyncio
import contextvars
import inspect
import os
import subprocess
import sys
import textwrap
import threading

import pytest

from aiomisc_c import _context_vars, _loop_py, compat, thread_pool, utils
from helpers.childproc import NEUTRAL_CWD, child_env
from helpers.leakcheck import assert_no_leaks, run_leak_script

try:
    import uvloop
except ImportError:  # pragma: no cover - uvloop is part of the test extra
    uvloop = None

RUNNING_MESSAGE = (
    "Trying to create new event loop instance but another "
    "default loop in this thread is running right now."
)


def assert_loop_kind(loop, loop_kind):
    if loop_kind == "uvloop":
        assert isinstance(loop, uvloop.Loop)
    else:
        assert isinstance(loop, asyncio.BaseEventLoop)
        assert uvloop is None or not isinstance(loop, uvloop.Loop)


def thread_name():
    return threading.current_thread().name


@pytest.fixture
def loops():
    """Loops a test makes; closed (and the asyncio globals reset) afterwards."""
    made = []
    yield made
    for loop in made:
        if not loop.is_closed() and not loop.is_running():
            loop.close()
    asyncio.set_event_loop(None)
    asyncio.set_event_loop_policy(None)


class PoolSpy:
    """Builds subclasses of the current ThreadPoolExecutor twin that record
    their constructor arguments and ``shutdown`` calls."""

    def __init__(self, base):
        spy = self
        self.created = []
        self.shutdowns = []

        class SpyPool(base):
            def __init__(self, *args, **kwargs):
                spy.created.append((self, args, kwargs))
                super().__init__(*args, **kwargs)

            def shutdown(self, *args, **kwargs):
                spy.shutdowns.append((self, args, kwargs))
                return super().shutdown(*args, **kwargs)

        self.cls = SpyPool


@pytest.fixture
def pool_spy(implementation, monkeypatch):
    spy = PoolSpy(thread_pool.ThreadPoolExecutor)
    monkeypatch.setattr(thread_pool, "ThreadPoolExecutor", spy.cls)
    return spy


# -- behaviours of aiomisc 17's new_event_loop -----------------------------------


def test_running_current_loop_raises(implementation, policy, loops):
    loop, _pool = utils.create_default_event_loop(policy=policy)
    loops.append(loop)

    async def inside():
        for call in (
            lambda: utils.create_default_event_loop(),
            lambda: utils.create_default_event_loop(policy=policy),
            lambda: utils.new_event_loop(policy=policy),
        ):
            with pytest.raises(RuntimeError) as info:
                call()
            assert str(info.value) == RUNNING_MESSAGE
        # The failed calls changed nothing.
        assert asyncio.get_event_loop_policy() is policy
        assert asyncio.get_event_loop() is loop

    loop.run_until_complete(asyncio.wait_for(inside(), 60))


def test_new_event_loop_is_current_with_default_pool(implementation, policy, loops):
    loop = utils.new_event_loop(policy=policy)
    loops.append(loop)

    assert asyncio.get_event_loop() is loop
    assert asyncio.get_event_loop_policy() is policy
    assert not loop.is_closed() and not loop.is_running()
    assert not loop.get_debug()

    name = loop.run_until_complete(
        asyncio.wait_for(loop.run_in_executor(None, thread_name), 60),
    )
    assert name.endswith(" from pool default"), name


def test_create_default_event_loop_returns_its_pool(
    implementation, policy, loop_kind, loops,
):
    loop, pool = utils.create_default_event_loop(policy=policy)
    loops.append(loop)

    assert_loop_kind(loop, loop_kind)
    assert isinstance(pool, thread_pool.ThreadPoolExecutor)
    assert asyncio.get_event_loop() is loop

    async def via_pool():
        return await loop.run_in_executor(pool, thread_name)

    name = loop.run_until_complete(asyncio.wait_for(via_pool(), 60))
    assert name.endswith(" from pool default"), name


def test_new_loop_starts_no_thread_until_the_first_threaded_call(
    implementation, policy, loop_kind, loops,
):
    from aiomisc_c import threaded

    before = set(threading.enumerate())
    loop, pool = utils.create_default_event_loop(policy=policy)
    loops.append(loop)
    assert set(threading.enumerate()) - before == set()

    @threaded
    def current():
        return threading.current_thread()

    worker = loop.run_until_complete(asyncio.wait_for(current(), 60))
    assert worker in set(threading.enumerate()) - before
    assert worker.name.endswith(" from pool default"), worker.name

    # Closing a loop whose pool never ran anything starts nothing either.
    before = set(threading.enumerate())
    unused, unused_pool = utils.create_default_event_loop(policy=policy)
    loops.append(unused)
    unused.close()
    assert set(threading.enumerate()) - before == set()
    assert unused_pool._core.spawned_threads == 0


def test_pool_arguments(pool_spy, policy, loops):
    pool_spy.cls.DEFAULT_POOL_SIZE = 3   # read at call time, from the class
    for pool_size, expected in ((None, 3), (0, 3), (5, 5), (1, 1)):
        loop, pool = utils.create_default_event_loop(pool_size, policy)
        loops.append(loop)
        created, args, kwargs = pool_spy.created[-1]
        assert created is pool
        assert args == (expected,)
        assert kwargs == {"statistic_name": "default"}
    loops.append(utils.new_event_loop(pool_size=2, policy=policy))
    assert pool_spy.created[-1][1:] == ((2,), {"statistic_name": "default"})


def test_thread_pool_class_is_looked_up_at_call_time(implementation, policy, loops):
    # The twin switch rebinds thread_pool.ThreadPoolExecutor; loop setup
    # must follow it.
    loop, pool = utils.create_default_event_loop(policy=policy)
    loops.append(loop)
    assert type(pool) is thread_pool.ThreadPoolExecutor


def test_default_policy_is_read_from_compat_at_call_time(
    implementation, monkeypatch, loops,
):
    policy = asyncio.DefaultEventLoopPolicy()
    monkeypatch.setattr(compat, "event_loop_policy", policy)
    loop = utils.new_event_loop()
    loops.append(loop)
    assert asyncio.get_event_loop_policy() is policy
    assert_loop_kind(loop, "asyncio")

    if uvloop is not None:
        policy = uvloop.EventLoopPolicy()
        monkeypatch.setattr(compat, "event_loop_policy", policy)
        loop, _ = utils.create_default_event_loop()
        loops.append(loop)
        assert asyncio.get_event_loop_policy() is policy
        assert_loop_kind(loop, "uvloop")


def test_default_policy_marker_given_explicitly(implementation, monkeypatch, loops):
    # Forwarding the Python twin's default works with either twin.
    policy = asyncio.DefaultEventLoopPolicy()
    monkeypatch.setattr(compat, "event_loop_policy", policy)
    loop, _ = utils.create_default_event_loop(None, _loop_py.DEFAULT_POLICY)
    loops.append(loop)
    assert asyncio.get_event_loop_policy() is policy
    assert repr(_loop_py.DEFAULT_POLICY) == "<compat.event_loop_policy>"


def test_bad_default_policy_in_compat(implementation, monkeypatch):
    monkeypatch.setattr(compat, "event_loop_policy", "not a policy")
    before = asyncio.get_event_loop_policy()
    with pytest.raises(TypeError, match="not 'str'"):
        utils.new_event_loop()
    assert asyncio.get_event_loop_policy() is before


def test_policy_none_means_asyncio_default(implementation, loops):
    # As in 17.x: the policy goes to asyncio.set_event_loop_policy as is.
    loop = utils.new_event_loop(policy=None)
    loops.append(loop)
    assert type(asyncio.get_event_loop_policy()) is asyncio.DefaultEventLoopPolicy
    assert_loop_kind(loop, "asyncio")


@pytest.mark.skipif(uvloop is None, reason="uvloop is not installed")
def test_default_is_uvloop_when_installed(implementation, loops):
    if not compat._uvloop:
        pytest.skip("AIOMISC_USE_UVLOOP is off in this process")
    loop = utils.new_event_loop()
    loops.append(loop)
    assert isinstance(loop, uvloop.Loop)
    assert asyncio.get_event_loop_policy() is compat.event_loop_policy


def test_debug_flag(implementation, policy, loops):
    loop, _ = utils.create_default_event_loop(policy=policy, debug=True)
    loops.append(loop)
    assert loop.get_debug()
    loop, _ = utils.create_default_event_loop(None, policy, False)
    loops.append(loop)
    assert not loop.get_debug()


def test_older_loop_is_not_closed(implementation, policy, loops):
    old = utils.new_event_loop(policy=policy)
    loops.append(old)
    new = utils.new_event_loop(policy=policy)
    loops.append(new)
    assert new is not old
    assert not old.is_closed()
    assert asyncio.get_event_loop() is new
    # The old loop still works.
    assert old.run_until_complete(asyncio.sleep(0, "ok")) == "ok"


def test_closing_the_loop_shuts_the_pool_down(pool_spy, policy, loops):
    loop, pool = utils.create_default_event_loop(policy=policy)
    loops.append(loop)
    assert pool_spy.shutdowns == []
    loop.close()
    assert [entry[0] for entry in pool_spy.shutdowns] == [pool]
    with pytest.raises(RuntimeError):
        pool.submit(thread_name)


def test_no_current_loop_in_a_thread(implementation, policy):
    result = {}

    def target():
        try:
            loop, _pool = utils.create_default_event_loop(policy=policy)
            try:
                result["current"] = asyncio.get_event_loop() is loop
            finally:
                loop.close()
                asyncio.set_event_loop(None)
        except BaseException as exc:  # noqa: BLE001 - reported below
            result["error"] = exc

    asyncio.set_event_loop_policy(policy)
    try:
        thread = threading.Thread(target=target)
        thread.start()
        thread.join(60)
    finally:
        asyncio.set_event_loop_policy(None)
    assert result == {"current": True}


def test_no_implicit_loop_is_created(implementation, loops):
    # asyncio.get_event_loop() would create (and leak) a loop in the main
    # thread of a fresh policy, and warn on 3.12+.
    made = []

    class CountingPolicy(asyncio.DefaultEventLoopPolicy):
        def new_event_loop(self):
            loop = super().new_event_loop()
            made.append(loop)
            return loop

    asyncio.set_event_loop_policy(CountingPolicy())
    loop = utils.new_event_loop(policy=asyncio.get_event_loop_policy())
    loops.extend(made)
    assert made == [loop]


def test_current_loop_running_in_another_thread(implementation, policy, loops):
    # 17.x asks asyncio.get_event_loop(): a current loop that is running
    # elsewhere still counts as running.
    loop = utils.new_event_loop(policy=policy)
    loops.append(loop)
    started = threading.Event()
    loop.call_soon(started.set)
    thread = threading.Thread(target=loop.run_forever)
    thread.start()
    try:
        assert started.wait(60)
        with pytest.raises(RuntimeError, match="another default loop"):
            utils.new_event_loop(policy=policy)
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(60)
    assert asyncio.get_event_loop() is loop


@pytest.mark.parametrize("error", [RuntimeError, DeprecationWarning])
def test_custom_policy_without_current_loop(implementation, loops, error):
    class NoCurrentLoop(asyncio.DefaultEventLoopPolicy):
        def get_event_loop(self):
            raise error("no current loop")

    asyncio.set_event_loop_policy(NoCurrentLoop())
    loop = utils.new_event_loop(policy=asyncio.DefaultEventLoopPolicy())
    loops.append(loop)
    assert asyncio.get_event_loop() is loop


def test_event_loop_context_var_is_not_set(implementation, policy, loops):
    def in_fresh_context():
        loop = utils.new_event_loop(policy=policy)
        loops.append(loop)
        with pytest.raises(RuntimeError):
            _context_vars.EVENT_LOOP.get()

    contextvars.Context().run(in_fresh_context)


def test_failed_pool_closes_the_new_loop(implementation, monkeypatch, loops):
    made = []

    class RecordingPolicy(asyncio.DefaultEventLoopPolicy):
        def new_event_loop(self):
            loop = super().new_event_loop()
            made.append(loop)
            return loop

    class Boom(Exception):
        pass

    class BrokenPool:
        DEFAULT_POOL_SIZE = 4

        def __init__(self, *args, **kwargs):
            raise Boom("no pool")

    policy = RecordingPolicy()
    previous = utils.new_event_loop(policy=policy)
    loops.append(previous)
    monkeypatch.setattr(thread_pool, "ThreadPoolExecutor", BrokenPool)
    with pytest.raises(Boom, match="no pool"):
        utils.create_default_event_loop(policy=policy)
    assert made[0] is previous and not previous.is_closed()
    assert len(made) == 2 and made[1].is_closed()
    # The thread's current loop is left as it was.
    assert asyncio.get_event_loop() is previous


# -- Bad arguments ---------------------------------------------------------------


@pytest.mark.parametrize("pool_size", [1.5, "4", b"4", [4], object()])
def test_pool_size_type(implementation, pool_size):
    before = asyncio.get_event_loop_policy()
    for call in (utils.create_default_event_loop, utils.new_event_loop):
        with pytest.raises(TypeError, match="pool_size must be an int or None"):
            call(pool_size, asyncio.DefaultEventLoopPolicy())
    assert asyncio.get_event_loop_policy() is before   # no side effect


@pytest.mark.parametrize("pool_size", [-1, -100])
def test_pool_size_value(implementation, pool_size):
    with pytest.raises(ValueError, match=rf"pool_size must be >= 1 .* got {pool_size}"):
        utils.create_default_event_loop(pool_size)
    with pytest.raises(ValueError, match="pool_size"):
        utils.new_event_loop(pool_size=pool_size)


@pytest.mark.parametrize("bad_policy", [object(), "uvloop", 1])
def test_policy_without_new_event_loop(implementation, bad_policy):
    before = asyncio.get_event_loop_policy()
    for call in (utils.create_default_event_loop, utils.new_event_loop):
        with pytest.raises(TypeError, match="policy must be an instance"):
            call(policy=bad_policy)
    assert asyncio.get_event_loop_policy() is before


def both_twins(name):
    c_twin = getattr(utils, f"_C{name}")
    if c_twin is None:
        pytest.skip("the C extension is not built")
    return getattr(utils, f"_Py{name}"), c_twin


@pytest.mark.parametrize(
    "name, args, kwargs",
    [
        ("create_default_event_loop", (1, None, False, 4), {}),
        ("create_default_event_loop", (), {"loop": None}),
        ("create_default_event_loop", (1,), {"pool_size": 2}),
        ("create_default_event_loop", (), {"pool_size": 2.5}),
        ("new_event_loop", (1, None, False), {}),
        ("new_event_loop", (), {"debug": True}),
        ("new_event_loop", (None, None), {"policy": None}),
        ("new_event_loop", (-3,), {}),
        ("new_event_loop", (), {"policy": object()}),
        ("create_default_event_loop", (None, "uvloop"), {}),
    ],
)
def test_twins_fail_alike(name, args, kwargs):
    errors = []
    for twin in both_twins(name):
        with pytest.raises((TypeError, ValueError)) as info:
            twin(*args, **kwargs)
        errors.append((type(info.value), str(info.value)))
    assert errors[0] == errors[1]


@pytest.mark.parametrize("name", ["create_default_event_loop", "new_event_loop"])
def test_twins_signature(name):
    py_twin, c_twin = both_twins(name)
    signature = inspect.signature(py_twin)
    plain = signature.replace(
        parameters=[
            p.replace(annotation=inspect.Parameter.empty)
            for p in signature.parameters.values()
        ],
        return_annotation=inspect.Signature.empty,
    )
    # The C twin cannot express the default policy in a text signature, so
    # its docstring starts with the same signature instead.
    assert c_twin.__doc__.splitlines()[0] == f"{name}{plain}"
    assert signature.parameters["policy"].default is _loop_py.DEFAULT_POLICY


# -- Subprocess checks -----------------------------------------------------------



def run_python(code, env=None, timeout=300):
    full_env = dict(os.environ)
    full_env.pop("AIOMISC_USE_UVLOOP", None)
    full_env.update(env or {})
    full_env = child_env(full_env)
    proc = subprocess.run(
        [sys.executable, "-W", "error", "-c", textwrap.dedent(code)],
        env=full_env, capture_output=True, text=True, timeout=timeout, check=False,
        cwd=NEUTRAL_CWD,
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip()


UVLOOP_SWITCH = """
    import asyncio
    from aiomisc_c import _compat, compat, utils
    with _compat.use_implementation({kind!r}):
        loop = utils.new_event_loop()
        factory_loop = compat.default_loop_factory()
    print(type(compat.event_loop_policy).__module__, type(loop).__module__,
          type(factory_loop).__module__)
    loop.close()
    factory_loop.close()
"""


@pytest.mark.skipif(uvloop is None, reason="uvloop is not installed")
@pytest.mark.parametrize(
    "value, expected",
    [(None, "uvloop"), ("1", "uvloop"), ("yes", "uvloop"), ("0", "asyncio"),
     ("no", "asyncio"), ("off", "asyncio")],
)
def test_uvloop_env_switch(implementation, value, expected):
    env = {} if value is None else {"AIOMISC_USE_UVLOOP": value}
    out = run_python(UVLOOP_SWITCH.format(kind=implementation), env).split()
    assert [m.split(".")[0] for m in out] == [expected] * 3, out


LEAK_CYCLES = 500

LEAK_CHECK = """
import asyncio, sys, threading, time
from aiomisc_c import compat, thread_pool, utils
from helpers.leakcheck import measure, print_report

# The C twin of the loop setup, whatever thread pool twin is bound.
new_event_loop = utils._Cnew_event_loop
policies = {"asyncio": asyncio.DefaultEventLoopPolicy()}
if compat._uvloop is not None:
    policies["uvloop"] = compat._uvloop.EventLoopPolicy()


def cycles(policy, n):
    for _ in range(n):
        loop = new_event_loop(policy=policy)
        loop.close()          # shuts the pool down (wait=False)
    asyncio.set_event_loop(None)


def settle():
    # Let the closed pools' threads exit before measuring.
    deadline = time.monotonic() + 120
    while threading.active_count() > 1 and time.monotonic() < deadline:
        time.sleep(0.05)


# A table that grows once is not a leak: CPython 3.10 allocates one ~576 KiB
# block on BaseEventLoop.__init__'s get_clock_info line after a few thousand
# loops (asyncio.new_event_loop() alone does it too), then stays flat.  The
# harness's rule (growth in every measured run) does not count it.
reports = {}
for kind, policy in policies.items():
    reports[kind] = measure(
        lambda n: cycles(policy, n), int(sys.argv[1]), settle=settle,
        watched={
            "policy": policy, "policy_type": type(policy),
            "ThreadPoolExecutor": thread_pool.ThreadPoolExecutor,
            "thread_pool": thread_pool, "compat": compat, "asyncio": asyncio,
        },
    )
asyncio.set_event_loop_policy(None)
leaks = {kind: r["leaks"] for kind, r in reports.items() if r["leaks"]}
deltas = {kind + ":" + key: values
          for kind, r in reports.items() for key, values in r["deltas"].items()}
print_report({"calls": int(sys.argv[1]), "deltas": deltas, "leaks": leaks})
"""


@pytest.mark.c_extension
def test_c_twin_does_not_leak():
    both_twins("new_event_loop")
    assert_no_leaks(run_leak_script(LEAK_CHECK, str(LEAK_CYCLES)))
