"""A small service program: a periodic worker and a TCP echo server.

Both run as services of one entrypoint, which starts them, configures
logging and stops them gracefully on SIGINT/SIGTERM (or after --run-for
seconds).

Run: python examples/service_app.py --run-for 3
     (then, from another shell: echo hello | nc 127.0.0.1 <port>)
"""
import argparse
import asyncio
import logging
from typing import Any

import aiomisc_c as aiomisc
from aiomisc_c.service.base import SimpleServer

log = logging.getLogger("service_app")


class Ticker(aiomisc.Service):
    """Logs a tick every ``interval`` seconds until stopped."""

    interval: float = 0.5
    ticks = 0

    async def start(self) -> None:
        # Ready at once; the rest of start() is the service body.
        self.start_event.set()
        while True:
            self.ticks += 1
            log.info("tick %d", self.ticks)
            await asyncio.sleep(self.interval)

    async def stop(self, exception: Exception | None = None) -> None:
        log.info("ticker stopped after %d ticks (%r)", self.ticks, exception)


class EchoServer(SimpleServer):
    """Echoes every line back, on 127.0.0.1 and a free port."""

    __required__ = ("host",)
    port: int = 0

    async def handle(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
    ) -> None:
        try:
            while line := await reader.readline():
                writer.write(line)
                await writer.drain()
        finally:
            writer.close()

    async def start(self) -> None:
        self.server = await asyncio.start_server(
            self.handle, self.host, self.port,
        )
        self.port = self.server.sockets[0].getsockname()[1]
        log.info("echo server listening on %s:%d", self.host, self.port)

    async def stop(self, exception: Exception | None = None) -> None:
        await super().stop(exception)
        log.info("echo server stopped")


async def self_check(echo: EchoServer) -> None:
    """Talk to our own echo server once."""
    reader, writer = await asyncio.open_connection(echo.host, echo.port)
    writer.write(b"hello\n")
    await writer.drain()
    log.info("echo replied %r", await reader.readline())
    writer.close()
    await writer.wait_closed()


def main(argv: Any = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run-for", type=float, default=None,
                        help="stop after this many seconds (default: never)")
    parser.add_argument("--interval", type=float, default=0.5)
    args = parser.parse_args(argv)

    echo = EchoServer(host="127.0.0.1")
    services = (Ticker(interval=args.interval), echo)

    with aiomisc.entrypoint(*services, log_format="plain") as loop:
        loop.run_until_complete(self_check(echo))
        if args.run_for is None:
            loop.run_forever()      # until SIGINT / SIGTERM
        else:
            loop.run_until_complete(asyncio.sleep(args.run_for))
    log.info("bye")


if __name__ == "__main__":
    main()
