"""``aiomisc_c.compat`` and the strict context variables."""
import asyncio
import contextvars
import logging
import socket
import time
import typing

import pytest

import aiomisc_c._context_vars
import aiomisc_c.context_vars
from aiomisc_c import compat
from aiomisc_c._context_vars import EVENT_LOOP, StrictContextVar

try:
    import uvloop
except ImportError:  # pragma: no cover - uvloop is part of the test extra
    uvloop = None


def in_fresh_context(func, *args):
    return contextvars.Context().run(func, *args)


def test_public_names():
    assert set(compat.__all__) == {
        "Concatenate", "EntrypointProtocol", "EventLoopMixin", "ParamSpec",
        "Protocol", "TypeAlias", "default_loop_factory", "entry_pont_iterator",
        "event_loop_policy", "final", "get_current_loop", "set_current_loop",
        "sock_set_nodelay", "sock_set_reuseport", "time_ns",
    }
    for name in compat.__all__:
        assert hasattr(compat, name), name


def test_typing_reexports():
    for name in ("Concatenate", "ParamSpec", "Protocol", "TypeAlias", "final"):
        assert getattr(compat, name) is getattr(typing, name)


def test_time_ns_and_logger():
    assert compat.time_ns is time.time_ns
    assert isinstance(compat.log, logging.Logger)
    assert compat.log.name == "aiomisc_c.compat"


def test_event_loop_policy():
    if uvloop is not None and compat._uvloop is not None:
        assert isinstance(compat.event_loop_policy, uvloop.EventLoopPolicy)
    else:
        assert type(compat.event_loop_policy) is asyncio.DefaultEventLoopPolicy
    # Import-time object, shared by every caller.
    assert compat.event_loop_policy is compat.event_loop_policy


def test_default_loop_factory_leaves_the_policy_alone():
    before = asyncio.get_event_loop_policy()
    loop = compat.default_loop_factory()
    try:
        assert isinstance(loop, asyncio.AbstractEventLoop)
        if compat._uvloop is not None:
            assert isinstance(loop, uvloop.Loop)
        assert asyncio.get_event_loop_policy() is before
        assert loop.run_until_complete(asyncio.sleep(0, 42)) == 42
    finally:
        loop.close()


# -- EventLoopMixin ----------------------------------------------------------------


class Bound(compat.EventLoopMixin):
    __slots__ = ()


def test_event_loop_mixin_slots():
    assert compat.EventLoopMixin.__slots__ == ("_loop",)
    with pytest.raises(AttributeError):
        Bound().other = 1


def test_event_loop_mixin_outside_a_loop():
    obj = Bound()
    with pytest.raises(RuntimeError):
        _ = obj.loop


def test_event_loop_mixin_binds_the_running_loop(loop):
    obj = Bound()

    async def main():
        return obj.loop

    assert loop.run_until_complete(main()) is loop
    assert obj._loop is loop
    assert obj.loop is loop   # kept, now also outside the loop


def test_event_loop_mixin_keeps_a_given_loop_and_refills_a_falsy_one(loop):
    other = asyncio.new_event_loop()
    try:
        obj = Bound()
        obj._loop = other
        assert obj.loop is other

        obj._loop = None

        async def main():
            return obj.loop

        assert loop.run_until_complete(main()) is loop
    finally:
        other.close()


# -- Sockets -----------------------------------------------------------------------


def test_sock_set_nodelay_tcp():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP) as sock:
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 0
        compat.sock_set_nodelay(sock)
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0


def test_sock_set_nodelay_protocol_zero_untouched():
    # Quirk kept from 17.x.
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        assert sock.proto == 0
        compat.sock_set_nodelay(sock)
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 0


def test_sock_set_nodelay_udp_untouched():
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM, socket.IPPROTO_UDP) as sock:
        compat.sock_set_nodelay(sock)   # no error


@pytest.mark.skipif(not hasattr(socket, "SO_REUSEPORT"), reason="no SO_REUSEPORT")
def test_sock_set_reuseport():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        compat.sock_set_reuseport(sock, True)
        assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT) != 0
        compat.sock_set_reuseport(sock, False)
        assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT) == 0


# -- Entry points ------------------------------------------------------------------


def test_entry_pont_iterator():
    scripts = list(compat.entry_pont_iterator("console_scripts"))
    assert scripts, "pytest installs console scripts"
    assert all(ep.group == "console_scripts" for ep in scripts)
    assert "pytest" in {ep.name for ep in scripts}
    assert all(callable(ep.load) for ep in scripts)
    assert list(compat.entry_pont_iterator("aiomisc_c.no-such-group")) == []


def test_entrypoint_protocol():
    class EntryPoint:
        name = "x"

        def load(self):
            return 1

    assert issubclass(compat.EntrypointProtocol, typing.Protocol)
    assert EntryPoint().load() == 1


# -- Context variables -------------------------------------------------------------


def test_strict_context_var_raises_the_given_instance():
    exc = KeyError("k")
    var = StrictContextVar("x", exc)
    assert var.exc is exc
    assert isinstance(var.context_var, contextvars.ContextVar)

    def check():
        with pytest.raises(KeyError) as info:
            var.get()
        assert info.value is exc
        var.set(None)
        with pytest.raises(KeyError) as info:
            var.get()
        assert info.value is exc
        var.set(42)
        assert var.get() == 42

    in_fresh_context(check)


def test_strict_context_var_is_patchable():
    var = StrictContextVar("x", KeyError("k"))
    var.get = lambda: "patched"
    assert var.get() == "patched"


def test_event_loop_var():
    assert isinstance(EVENT_LOOP.exc, RuntimeError)
    assert str(EVENT_LOOP.exc) == "no current event loop is set"
    assert aiomisc_c.context_vars.EVENT_LOOP is EVENT_LOOP
    assert aiomisc_c.context_vars.StrictContextVar is StrictContextVar
    assert compat.get_current_loop == EVENT_LOOP.get
    assert compat.set_current_loop == EVENT_LOOP.set

    def check():
        with pytest.raises(RuntimeError) as info:
            compat.get_current_loop()
        assert info.value is EVENT_LOOP.exc
        sentinel = object()
        compat.set_current_loop(sentinel)
        assert EVENT_LOOP.get() is sentinel
        other = object()
        aiomisc_c.context_vars.set_current_loop(other)
        assert compat.get_current_loop() is other

    in_fresh_context(check)
