"""``aiomisc_c.service.grpc_server``: GRPCService with stubs compiled from a
small .proto at test time, raw generic handlers, TLS ports and reflection,
queried with real ``grpc.aio`` channels on both loops."""
import asyncio
import importlib
import pickle
import socket
import sys

import grpc
import grpc.aio
import pytest
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from helpers.quiet_entrypoint import ep, reset_loop_state  # noqa: F401 - autouse
from helpers.tls_certs import certs  # noqa: F401 - fixture
from helpers.webtools import import_without, refuses_connections

from aiomisc_c.service.grpc_server import GRPCService, PortFuture

PROTO = """
syntax = "proto3";
package aiomisc_c_test;

message HelloRequest { string name = 1; }
message HelloReply { string message = 1; }

service Greeter {
    rpc SayHello (HelloRequest) returns (HelloReply);
}
"""


@pytest.fixture(scope="module")
def stubs(tmp_path_factory):
    """``(greeter_pb2, greeter_pb2_grpc)`` compiled with grpcio-tools."""
    from grpc_tools import protoc

    directory = tmp_path_factory.mktemp("proto")
    (directory / "aiomisc_c_greeter.proto").write_text(PROTO)
    status = protoc.main([
        "grpc_tools.protoc", f"-I{directory}", f"--python_out={directory}",
        f"--grpc_python_out={directory}", str(directory / "aiomisc_c_greeter.proto"),
    ])
    assert status == 0
    sys.path.insert(0, str(directory))
    try:
        return (
            importlib.import_module("aiomisc_c_greeter_pb2"),
            importlib.import_module("aiomisc_c_greeter_pb2_grpc"),
        )
    finally:
        sys.path.remove(str(directory))


def greeter_service(stubs, **kwargs):
    pb2, pb2_grpc = stubs

    class Greeter(pb2_grpc.GreeterServicer):
        async def SayHello(self, request, context):  # noqa: N802
            return pb2.HelloReply(message=f"hello {request.name}")

    service = GRPCService(**kwargs)
    pb2_grpc.add_GreeterServicer_to_server(Greeter(), service)
    return service


def serve_built(policy, build, client):
    """Start the service ``build()`` makes on the entrypoint's running loop
    (its port futures need one) and return ``await client(service)``."""
    instance = ep(policy=policy)

    async def main():
        service = build()
        await instance.start_services(service)
        return await client(service)

    with instance as loop:
        return loop.run_until_complete(asyncio.wait_for(main(), 30))


async def say_hello(stubs, target, name, credentials=None):
    pb2, pb2_grpc = stubs
    if credentials is None:
        channel = grpc.aio.insecure_channel(target)
    else:
        channel = grpc.aio.secure_channel(target, credentials)
    async with channel:
        reply = await pb2_grpc.GreeterStub(channel).SayHello(
            pb2.HelloRequest(name=name), timeout=10,
        )
    return reply.message


# ------------------------------------------------------------------ serving


def test_unary_call_on_port_zero(policy, stubs):
    def build():
        service = greeter_service(stubs)
        service.port = service.add_insecure_port("127.0.0.1:0")
        return service

    async def client(service):
        assert isinstance(service.port, asyncio.Future)
        port = await service.port
        return port, await say_hello(stubs, f"127.0.0.1:{port}", "grpc")

    port, answer = serve_built(policy, build, client)
    assert port > 0
    assert answer == "hello grpc"
    assert refuses_connections(port)


def test_two_ports_and_ipv6(policy, stubs):
    if not socket.has_ipv6:
        pytest.skip("IPv6 is not available")

    def build():
        service = greeter_service(stubs)
        service.ports = [
            service.add_insecure_port("127.0.0.1:0"),
            service.add_insecure_port("[::1]:0"),
        ]
        return service

    async def client(service):
        v4, v6 = [await future for future in service.ports]
        return [
            await say_hello(stubs, f"127.0.0.1:{v4}", "v4"),
            await say_hello(stubs, f"[::1]:{v6}", "v6"),
        ]

    assert serve_built(policy, build, client) == ["hello v4", "hello v6"]


def test_raw_generic_handlers(policy):
    async def echo(request, context):
        return request[::-1]

    handler = grpc.method_handlers_generic_handler(
        "raw.Echo", {"Reverse": grpc.unary_unary_rpc_method_handler(echo)},
    )

    def build():
        service = GRPCService(handlers=[handler])
        service.port = service.add_insecure_port("127.0.0.1:0")
        return service

    async def client(service):
        async with grpc.aio.insecure_channel(f"127.0.0.1:{await service.port}") as ch:
            return await ch.unary_unary("/raw.Echo/Reverse")(b"abc", timeout=10)

    assert serve_built(policy, build, client) == b"cba"


def test_secure_port(policy, stubs, certs):
    server_credentials = grpc.ssl_server_credentials([
        (certs.server_key.read_bytes(), certs.server_cert.read_bytes()),
    ])
    channel_credentials = grpc.ssl_channel_credentials(
        root_certificates=certs.ca.read_bytes(),
    )

    def build():
        service = greeter_service(stubs)
        service.port = service.add_secure_port("localhost:0", server_credentials)
        return service

    async def client(service):
        port = await service.port
        return await say_hello(
            stubs, f"localhost:{port}", "tls", credentials=channel_credentials,
        )

    assert serve_built(policy, build, client) == "hello tls"


async def reflect(target, request):
    async with grpc.aio.insecure_channel(target) as channel:
        stub = reflection_pb2_grpc.ServerReflectionStub(channel)
        call = stub.ServerReflectionInfo(iter([request]), timeout=10)
        return [response async for response in call]


def test_reflection(policy, stubs):
    def build():
        service = greeter_service(stubs, reflection=True)
        service.port = service.add_insecure_port("127.0.0.1:0")
        return service

    async def client(service):
        target = f"127.0.0.1:{await service.port}"
        listed = await reflect(
            target, reflection_pb2.ServerReflectionRequest(list_services=""),
        )
        described = await reflect(
            target, reflection_pb2.ServerReflectionRequest(
                file_containing_symbol="aiomisc_c_test.Greeter",
            ),
        )
        return listed, described

    listed, described = serve_built(policy, build, client)
    names = {s.name for s in listed[0].list_services_response.service}
    assert names == {
        "aiomisc_c_test.Greeter", "grpc.reflection.v1alpha.ServerReflection",
    }
    from google.protobuf import descriptor_pb2

    files = described[0].file_descriptor_response.file_descriptor_proto
    proto = descriptor_pb2.FileDescriptorProto.FromString(files[0])
    assert proto.name == "aiomisc_c_greeter.proto"
    assert [s.name for s in proto.service] == ["Greeter"]


def test_no_reflection_by_default(policy, stubs):
    def build():
        service = greeter_service(stubs)
        service.port = service.add_insecure_port("127.0.0.1:0")
        return service

    async def client(service):
        # A unary call on the reflection method's path: the server finds a
        # method by its path alone (a served reflection would answer this
        # call), and a unary call has no request stream whose writes race
        # the server's answer (that made the stream call end INTERNAL now
        # and then instead of UNIMPLEMENTED).
        service_name = reflection_pb2.DESCRIPTOR.services_by_name[
            "ServerReflection"
        ].full_name
        request = reflection_pb2.ServerReflectionRequest(list_services="")
        target = f"127.0.0.1:{await service.port}"
        async with grpc.aio.insecure_channel(target) as channel:
            call = channel.unary_unary(
                f"/{service_name}/ServerReflectionInfo",
                request_serializer=reflection_pb2.ServerReflectionRequest.SerializeToString,
                response_deserializer=reflection_pb2.ServerReflectionResponse.FromString,
            )
            with pytest.raises(grpc.aio.AioRpcError) as info:
                await call(request, timeout=10)
        return info.value.code()

    assert serve_built(policy, build, client) == grpc.StatusCode.UNIMPLEMENTED


def test_port_in_use_fails_start_and_cancels_port_futures(policy, stubs):
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    busy = taken.getsockname()[1]
    futures = []

    def build():
        service = greeter_service(stubs)
        futures.append(service.add_insecure_port("127.0.0.1:0"))
        futures.append(service.add_insecure_port(f"127.0.0.1:{busy}"))
        return service

    try:
        with pytest.raises(RuntimeError, match=str(busy)):
            serve_built(policy, build, lambda service: asyncio.sleep(0))
    finally:
        taken.close()
    assert futures[0].done() and futures[1].cancelled()


def test_stop_waits_for_in_flight_calls(policy):
    entered = []

    async def slow(request, context):
        entered.append(True)
        await asyncio.sleep(0.2)
        return b"done"

    handler = grpc.method_handlers_generic_handler(
        "raw.Slow", {"Call": grpc.unary_unary_rpc_method_handler(slow)},
    )
    instance = ep(policy=policy)

    async def main():
        service = GRPCService(handlers=[handler])
        port_future = service.add_insecure_port("127.0.0.1:0")
        await instance.start_services(service)
        async with grpc.aio.insecure_channel(f"127.0.0.1:{await port_future}") as ch:
            call = ch.unary_unary("/raw.Slow/Call")(b"", timeout=10)
            while not entered:
                await asyncio.sleep(0.01)
            await instance.stop_services(service)
            return await call

    with instance as loop:
        assert loop.run_until_complete(asyncio.wait_for(main(), 30)) == b"done"


def test_interceptors_and_options_reach_the_server(policy, stubs):
    seen = []

    class Recorder(grpc.aio.ServerInterceptor):
        async def intercept_service(self, continuation, details):
            seen.append(details.method)
            return await continuation(details)

    def build():
        service = greeter_service(
            stubs, interceptors=[Recorder()],
            options=[("grpc.max_receive_message_length", 64)],
        )
        service.port = service.add_insecure_port("127.0.0.1:0")
        return service

    async def client(service):
        target = f"127.0.0.1:{await service.port}"
        answer = await say_hello(stubs, target, "x")
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await say_hello(stubs, target, "x" * 100)
        return answer, info.value.code()

    answer, code = serve_built(policy, build, client)
    assert answer == "hello x"
    assert code == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert seen[0] == "/aiomisc_c_test.Greeter/SayHello"


# ----------------------------------------------------------------- the class


def test_server_arguments_and_defaults(loop):
    async def build():
        return GRPCService(
            options=[("grpc.max_receive_message_length", 1024)],
            maximum_concurrent_rpcs=4, reflection=True, name="svc",
        )

    service = loop.run_until_complete(build())
    assert GRPCService.GRACEFUL_STOP_TIME == 60.0
    assert dict(service._server_args) == {
        "compression": None, "handlers": None, "interceptors": None,
        "maximum_concurrent_rpcs": 4, "migration_thread_pool": None,
        "options": [("grpc.max_receive_message_length", 1024)],
    }
    assert service.name == "svc"
    assert pickle.loads(pickle.dumps(service)).name == "svc"
    with pytest.raises(TypeError):
        GRPCService(None)
    assert PortFuture.__origin__ is asyncio.Future


def test_stop_without_start(loop):
    loop.run_until_complete(GRPCService().stop())


@pytest.fixture
def loop(plain_loop):
    return plain_loop


def test_import_error_names_the_extra():
    stderr = import_without("aiomisc_c.service.grpc_server", ["grpc"])
    assert "pip install 'aiomisc_c[grpc]'" in stderr
