"""A JSON-lines RPC over TCP: a ``TCPServer`` service answers calls, a
``RobustTCPClient`` service makes them (and reconnects if the server goes
away).

Each request is one line ``{"id": 1, "method": "add", "params": [1, 2]}``;
each answer is one line ``{"id": 1, "result": 3}`` or
``{"id": 1, "error": "..."}``.  The program starts both services in one
entrypoint, makes ``--calls`` calls, prints the results and exits.

Run: python examples/tcp_rpc.py --calls 5
"""
import argparse
import asyncio
import itertools
import json
import logging
from typing import Any, Callable, Dict, Optional

import aiomisc_c as aiomisc
from aiomisc_c.service import RobustTCPClient, TCPServer

log = logging.getLogger("tcp_rpc")

METHODS: Dict[str, Callable[..., Any]] = {
    "add": lambda a, b: a + b,
    "mul": lambda a, b: a * b,
    "upper": lambda text: text.upper(),
}


class RPCServer(TCPServer):
    """Answers every request line of a connection, in order."""

    async def handle_client(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
    ) -> None:
        try:
            while line := await reader.readline():
                writer.write(self.answer(line) + b"\n")
                await writer.drain()
        finally:
            writer.close()

    @staticmethod
    def answer(line: bytes) -> bytes:
        request: Dict[str, Any] = {}
        try:
            request = json.loads(line)
            method = METHODS[request["method"]]
            reply = {"result": method(*request.get("params", ()))}
        except Exception as e:  # a bad request must not end the connection
            reply = {"error": f"{type(e).__name__}: {e}"}
        reply["id"] = request.get("id") if isinstance(request, dict) else None
        return json.dumps(reply).encode()


class RPCError(Exception):
    pass


class RPCClient(RobustTCPClient):
    """``await client.call(method, *params)`` over one connection; the
    answers are matched to the calls by id."""

    reconnect_timeout = 0.5
    connect_retry_timeout = 0.5

    def __init__(self, *args: Any, **kwargs: Any):
        self._ids = itertools.count(1)
        self._waiting: Dict[int, "asyncio.Future[Any]"] = {}
        self._writer: Optional[asyncio.StreamWriter] = None
        super().__init__(*args, **kwargs)

    async def handle_connection(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
    ) -> None:
        self._writer = writer
        try:
            while line := await reader.readline():
                reply = json.loads(line)
                future = self._waiting.pop(reply["id"], None)
                if future is None or future.done():
                    continue
                if "error" in reply:
                    future.set_exception(RPCError(reply["error"]))
                else:
                    future.set_result(reply["result"])
        finally:
            self._writer = None
            for future in self._waiting.values():
                if not future.done():
                    future.set_exception(ConnectionError("connection lost"))
            self._waiting.clear()
        # The server hung up: raising makes the client reconnect.
        raise ConnectionError("server closed the connection")

    async def call(self, method: str, *params: Any) -> Any:
        await self.connected.wait()
        if self._writer is None:
            raise ConnectionError("not connected")
        call_id = next(self._ids)
        future = self.loop.create_future()
        self._waiting[call_id] = future
        request = {"id": call_id, "method": method, "params": params}
        self._writer.write(json.dumps(request).encode() + b"\n")
        await self._writer.drain()
        return await future


async def make_calls(client: RPCClient, calls: int) -> list:
    results = []
    for number in range(calls):
        result = await client.call("add", number, number)
        log.info("add(%d, %d) = %r", number, number, result)
        results.append(result)
    return results


def main(argv: Any = None) -> list:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=5,
                        help="how many calls to make before exiting")
    parser.add_argument("--host", default="127.0.0.1")
    args = parser.parse_args(argv)

    server = RPCServer(address=args.host, port=0)
    with aiomisc.entrypoint(server, log_format="plain") as loop:
        # The client needs the port the server got: start it afterwards.
        client = RPCClient(args.host, server.port)
        entry = aiomisc.entrypoint.get_current()
        loop.run_until_complete(entry.start_services(client))
        results = loop.run_until_complete(make_calls(client, args.calls))
        print("results:", results, flush=True)
        print("upper:", loop.run_until_complete(client.call("upper", "rpc")))
    return results


if __name__ == "__main__":
    main()
