"""``aiomisc_c.service.base``: ServiceMeta, Service and the helper bases."""
import abc
import asyncio
import pickle
import sys
from unittest import mock

import pytest
from helpers.quiet_entrypoint import ep, reset_loop_state  # noqa: F401 - autouse

from aiomisc_c.service import Service, ServiceMeta, SimpleServer
from aiomisc_c.service.base import (
    CoroutineType,
    SimpleClient,
    TaskStoreBase,
)


# ------------------------------------------------------------ ServiceMeta


def test_meta_is_abcmeta_and_freezes_declarations():
    class Svc(Service):
        __required__ = ("a", "b")

        async def start(self):
            pass

    assert issubclass(ServiceMeta, abc.ABCMeta)
    assert type(Svc) is ServiceMeta
    assert Svc.__required__ == frozenset({"a", "b"})
    assert Svc.__async_required__ == frozenset({"start", "stop"})
    assert Service.__async_required__ == frozenset({"start", "stop"})


def test_sync_start_rejected():
    with pytest.raises(TypeError) as info:
        class Svc(Service):
            def start(self):
                pass

    assert info.value.args[0] == "Following methods must be coroutine functions"
    assert sorted(info.value.args[1]) == ["Svc.start", "Svc.stop"]


def test_sync_stop_in_sub_subclass_rejected():
    class Base(Service):
        async def start(self):
            pass

    with pytest.raises(TypeError):
        class Child(Base):
            def stop(self, *_):
                pass


def test_async_stop_with_star_args_accepted():
    class Svc(Service):
        async def start(self):
            pass

        async def stop(self, *_):
            pass

    assert Svc().__class__ is Svc


def test_async_mock_counts_as_coroutine_function():
    class Svc(Service):
        start = mock.AsyncMock()

    assert isinstance(Svc(), Svc)


def test_missing_async_required_method_is_attribute_error():
    with pytest.raises(AttributeError):
        class Svc(Service):
            __async_required__ = ("start", "stop", "absent")

            async def start(self):
                pass


def test_extra_async_required_checked():
    with pytest.raises(TypeError) as info:
        class Svc(Service):
            __async_required__ = ("start", "stop", "run")

            async def start(self):
                pass

            def run(self):
                pass

    assert sorted(info.value.args[1]) == ["Svc.run", "Svc.start", "Svc.stop"]


def test_abstract_methods_work():
    class Svc(Service):
        async def start(self):
            pass

        @abc.abstractmethod
        def extra(self):
            pass

    with pytest.raises(TypeError):
        Svc()


# ---------------------------------------------------------------- Service


class Simple(Service):
    default = "class"

    async def start(self):
        pass


def test_service_is_abstract():
    with pytest.raises(TypeError):
        Service()
    with pytest.raises(TypeError):
        Service(x=1)


def test_positional_arguments_rejected():
    with pytest.raises(TypeError):
        Simple(1)


def test_keywords_become_attributes_and_override_class_defaults():
    svc = Simple(default="instance", other=2)
    assert svc.default == "instance"
    assert svc.other == 2
    assert Simple().default == "class"
    with pytest.raises(AttributeError):
        _ = Simple().other


def test_required():
    class Svc(Service):
        __required__ = ("foo",)
        foo = "class attribute does not count"

        async def start(self):
            pass

    with pytest.raises(AttributeError) as info:
        Svc()
    assert info.value.args == ("Absent attributes", {"foo"})
    assert Svc(foo="bar").foo == "bar"


def test_required_inherited():
    class Base(Service):
        __required__ = ("foo",)

        async def start(self):
            pass

    class Child(Base):
        pass

    assert Child.__required__ == frozenset({"foo"})
    with pytest.raises(AttributeError):
        Child()


def test_setattr_updates_stored_keyword():
    svc = Simple(value=1)
    svc.value = 2
    clone = pickle.loads(pickle.dumps(svc))
    assert clone.value == 2


def test_attributes_before_super_init():
    class Svc(Service):
        def __init__(self, **kwargs):
            self.early = "set"
            super().__init__(**kwargs)

        async def start(self):
            pass

    svc = Svc(x=1)
    assert svc.early == "set"
    assert svc.x == 1


def test_pickle_round_trip():
    services = [Simple(index=i) for i in range(100)]
    clones = pickle.loads(pickle.dumps(services))
    assert [svc.index for svc in clones] == list(range(100))
    assert all(type(svc) is Simple for svc in clones)


def test_unpickle_does_not_recheck_required():
    class Required(Service):
        __required__ = ("foo",)

        async def start(self):
            pass

    svc = Required(foo=1)
    state = svc.__getstate__()
    assert state == {"foo": 1}
    clone = Required.__new__(Required)
    clone.__setstate__({})
    with pytest.raises(AttributeError):
        _ = clone.foo


def test_start_event_requires_set_loop():
    svc = Simple()
    with pytest.raises(RuntimeError):
        _ = svc.start_event
    loop = asyncio.new_event_loop()
    try:
        svc.set_loop(loop)
        first = svc.start_event
        assert isinstance(first, asyncio.Event)
        assert svc.loop is loop
        svc.set_loop(loop)
        assert svc.start_event is not first    # a fresh event per set_loop
    finally:
        loop.close()


def test_default_stop_is_noop(policy):
    svc = Simple()
    with ep(svc, policy=policy) as loop:
        assert loop.run_until_complete(svc.stop()) is None


def test_context_between_services(policy):
    results = []

    class Waiter(Service):
        async def start(self):
            results.append(await self.context["test"])

    class Setter(Service):
        async def start(self):
            await asyncio.sleep(0.1)
            self.context["test"] = True

    for services in ((Waiter(), Setter()), (Setter(), Waiter())):
        results.clear()
        with ep(*services, policy=policy):
            pass
        assert results == [True]


def test_context_values_in_order(policy):
    class Svc(Service):
        async def start(self):
            pass

    svc = Svc()

    async def go():
        values = []
        for value in (True, False, None):
            svc.context["key"] = value
            await asyncio.sleep(0.05)
            values.append(await svc.context["key"])
        return values

    with ep(svc, policy=policy) as loop:
        assert loop.run_until_complete(go()) == [True, False, None]


# ------------------------------------------------------------ helper bases


def test_coroutine_type_alias():
    assert CoroutineType[int] is not None


def test_task_store_cancels_tasks_on_stop(policy):
    cancelled = []

    class Store(TaskStoreBase):
        async def start(self):
            self.create_task(self.worker())

        async def worker(self):
            try:
                await asyncio.sleep(100)
            except asyncio.CancelledError:
                cancelled.append(True)
                raise

    store = Store()
    with ep(store, policy=policy) as loop:
        loop.run_until_complete(asyncio.sleep(0.01))
        assert len(store.tasks) == 1
    assert cancelled == [True]
    assert not store.tasks      # done tasks are forgotten


def test_simple_server_closes_server(policy):
    class Echo(SimpleServer):
        async def start(self):
            async def handle(reader, writer):
                writer.close()
            self.server = await asyncio.start_server(handle, "127.0.0.1", 0)

    svc = Echo()
    assert svc.server is None
    with ep(svc, policy=policy):
        assert svc.server.is_serving()
    assert not svc.server.is_serving()


def test_simple_bases_are_abstract():
    with pytest.raises(TypeError):
        SimpleServer()
    with pytest.raises(TypeError):
        SimpleClient()
    with pytest.raises(TypeError):
        TaskStoreBase()


def test_service_package_exports():
    from aiomisc_c import service

    for name in service.__all__:
        assert getattr(service, name) is not None
    assert service.Service is Service
    assert {"Service", "ServiceMeta", "SimpleServer"} <= set(service.__all__)


def test_service_submodule_names_are_imported_on_first_access(monkeypatch):
    import importlib.machinery
    import types

    from aiomisc_c import service

    fake = types.ModuleType("aiomisc_c.service.tcp")
    fake.__spec__ = importlib.machinery.ModuleSpec("aiomisc_c.service.tcp", None)
    fake.TCPServer = type("TCPServer", (), {})
    namespace = vars(service)
    saved_all = namespace.pop("__all__", None)
    saved_server = namespace.pop("TCPServer", None)
    present = service._present
    try:
        monkeypatch.setattr(service, "_present", lambda name: False)
        with pytest.raises(AttributeError, match="TCPServer"):
            service.TCPServer       # the submodule is absent: no attribute
        monkeypatch.setattr(service, "_present", present)
        monkeypatch.setitem(sys.modules, "aiomisc_c.service.tcp", fake)
        assert service.TCPServer is fake.TCPServer
        assert "TCPServer" in service.__all__
        with pytest.raises(AttributeError, match="no_such_name"):
            service.no_such_name    # noqa: B018
    finally:
        namespace.pop("TCPServer", None)
        namespace.pop("__all__", None)
        if saved_all is not None:
            namespace["__all__"] = saved_all
        if saved_server is not None:
            namespace["TCPServer"] = saved_server
