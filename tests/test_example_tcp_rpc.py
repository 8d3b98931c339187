"""examples/tcp_rpc.py: the JSON-lines RPC program runs by itself and
exits; its server and client also work in this process on both loops."""
import asyncio
import importlib.util
import json
import os
import subprocess
import sys

import pytest
from helpers.childproc import NEUTRAL_CWD, child_env
from helpers.net_helpers import close_writer, run_services
from helpers.quiet_entrypoint import reset_loop_state  # noqa: F401 - autouse

import aiomisc_c

EXAMPLE = os.path.join(
    os.path.dirname(os.path.abspath(__file__)), "..", "examples", "tcp_rpc.py",
)


def load_example():
    spec = importlib.util.spec_from_file_location("tcp_rpc_example", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


tcp_rpc = load_example()


@pytest.mark.subprocess
@pytest.mark.parametrize("use_uvloop", ["0", "1"])
def test_program_runs_and_exits(use_uvloop):
    env = child_env(AIOMISC_USE_UVLOOP=use_uvloop)
    env.pop("JOURNAL_STREAM", None)
    result = subprocess.run(
        [sys.executable, "-W", "error", EXAMPLE, "--calls", "4"],
        capture_output=True, text=True, env=env, cwd=NEUTRAL_CWD, timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["results: [0, 2, 4, 6]", "upper: RPC"]
    assert "Traceback" not in result.stderr
    assert "add(3, 3) = 6" in result.stderr


def test_server_answers_bad_requests():
    answer = tcp_rpc.RPCServer.answer
    assert json.loads(answer(b'{"id": 1, "method": "mul", "params": [3, 4]}')) \
        == {"id": 1, "result": 12}
    assert json.loads(answer(b'{"id": 2, "method": "nope"}')) == {
        "id": 2, "error": "KeyError: 'nope'",
    }
    assert json.loads(answer(b"not json"))["id"] is None
    assert json.loads(answer(b"[1]"))["id"] is None


def test_client_reconnects_to_a_restarted_server(policy):
    first = tcp_rpc.RPCServer(address="127.0.0.1", port=0)

    async def body():
        entry = aiomisc_c.entrypoint.get_current()
        client = tcp_rpc.RPCClient(
            "127.0.0.1", first.port, reconnect_timeout=0.05,
            connect_retry_timeout=0.05, connect_attempts=100,
        )
        await entry.start_services(client)
        assert await client.call("add", 2, 3) == 5
        with pytest.raises(tcp_rpc.RPCError, match="KeyError"):
            await client.call("missing")

        await entry.stop_services(first)
        second = tcp_rpc.RPCServer(address="127.0.0.1", port=first.port)
        await entry.start_services(second)
        for _ in range(1000):
            try:
                return await client.call("upper", "again")
            except ConnectionError:
                await asyncio.sleep(0.01)
        raise AssertionError("the client never came back")  # pragma: no cover

    assert run_services(policy, first, body=body) == "AGAIN"


def test_raw_connection_gets_one_answer_per_line(policy):
    server = tcp_rpc.RPCServer(address="127.0.0.1", port=0)

    async def body():
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(b'{"id": 7, "method": "add", "params": [1, 1]}\n'
                     b'garbage\n')
        answers = [json.loads(await reader.readline()) for _ in range(2)]
        await close_writer(writer)
        return answers

    first, second = run_services(policy, server, body=body)
    assert first == {"id": 7, "result": 2}
    assert second["id"] is None and "error" in second
