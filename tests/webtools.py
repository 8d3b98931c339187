"""Helpers shared by the web/RPC service tests (aiohttp, ASGI, uvicorn,
gRPC): run a client against services inside a quiet entrypoint, and make
test certificates."""
import asyncio
import socket
import subprocess
import sys

from childproc import NEUTRAL_CWD, child_env
from quiet_entrypoint import ep

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


class Certificates:
    """A test CA with a server certificate for localhost/127.0.0.1 and a
    client certificate, written as PEM files under ``directory``."""

    def __init__(self, directory):
        import trustme

        self.ca = trustme.CA()
        server = self.ca.issue_cert("localhost", "127.0.0.1")
        client = self.ca.issue_cert("client@example.com")
        self.ca_path = directory / "ca.pem"
        self.cert_path = directory / "server.pem"
        self.key_path = directory / "server.key"
        self.client_cert_path = directory / "client.pem"
        self.client_key_path = directory / "client.key"
        self.ca.cert_pem.write_to_path(str(self.ca_path))
        server.cert_chain_pems[0].write_to_path(str(self.cert_path))
        server.private_key_pem.write_to_path(str(self.key_path))
        client.cert_chain_pems[0].write_to_path(str(self.client_cert_path))
        client.private_key_pem.write_to_path(str(self.client_key_path))
        self._client = client

    def client_context(self, with_certificate=False):
        """An SSL context trusting the test CA (and presenting the client
        certificate when asked)."""
        import ssl

        context = ssl.create_default_context(cafile=str(self.ca_path))
        if with_certificate:
            context.load_cert_chain(
                str(self.client_cert_path), str(self.client_key_path),
            )
        return context
