"""Helpers shared by the web/RPC service tests (aiohttp, ASGI, uvicorn,
gRPC): run a client against services inside a quiet entrypoint."""
import asyncio
import socket
import ssl
import subprocess
import sys

from .childproc import NEUTRAL_CWD, child_env
from .quiet_entrypoint import ep

CLIENT_TIMEOUT = 30


def serve(policy, *services, client, **kwargs):
    """Start ``services`` in an entrypoint on ``policy``'s loop, run
    ``await client()`` and return its result; the services stop on exit."""
    with ep(*services, policy=policy, **kwargs) as loop:
        return loop.run_until_complete(
            asyncio.wait_for(client(), CLIENT_TIMEOUT),
        )


def free_port(host="127.0.0.1"):
    """A TCP port nobody listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        return probe.getsockname()[1]


def port_of(sock):
    return sock.getsockname()[1]


def refuses_connections(port, host="127.0.0.1"):
    """True when nothing accepts TCP connections on ``host:port``."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        return probe.connect_ex((host, port)) != 0


def import_without(module, blocked):
    """Import ``module`` in a child interpreter where the top-level
    packages ``blocked`` cannot be imported; the child's stderr."""
    code = (
        "import sys\n"
        f"for name in {tuple(blocked)!r}:\n"
        "    sys.modules[name] = None\n"
        f"import {module}\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=NEUTRAL_CWD, env=child_env(),
        capture_output=True, text=True, timeout=60,
    )
    assert done.returncode != 0, done.stdout
    return done.stderr


def client_ssl_context(certs, certificate=None):
    """A client context trusting the test CA of ``certs`` (the tls_certs
    fixture), presenting ``certificate`` ("client", "stranger") if given."""
    context = ssl.create_default_context(cafile=str(certs.ca))
    if certificate is not None:
        context.load_cert_chain(
            str(getattr(certs, f"{certificate}_cert")),
            str(getattr(certs, f"{certificate}_key")),
        )
    return context
