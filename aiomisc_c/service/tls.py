"""TLS settings, and the TLS server and clients (mirror of
``aiomisc.service.tls``).

``SSLOptions`` describes one side of a TLS connection and builds its
``ssl.SSLContext``; the HTTP services use it too.  Building a context reads
files, so the services call ``create_context`` in the executor.
"""
from __future__ import annotations

import asyncio
import logging
import socket
import ssl
from abc import ABC
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Union

from ..utils import OptionsType, TimeoutType
from .tcp import RobustTCPClient, StreamPair, StreamServerBase, TCPClient

__all__ = (
    "DEFAULT_SSL_CIPHERS", "DEFAULT_SSL_MAX_VERSION", "DEFAULT_SSL_MIN_VERSION",
    "PathOrStr", "RobustTLSClient", "SSLOptions", "SSLOptionsBase",
    "TLSClient", "TLSServer", "get_ssl_context",
)

PathOrStr = Union[Path, str]
log = logging.getLogger(__name__)

# Forward-secret AEAD suites only, RSA before ECDSA in each pair.
DEFAULT_SSL_CIPHERS = (
    "ECDHE-RSA-AES256-GCM-SHA384",
    "ECDHE-ECDSA-AES256-GCM-SHA384",
    "ECDHE-RSA-CHACHA20-POLY1305",
    "ECDHE-ECDSA-CHACHA20-POLY1305",
    "ECDHE-RSA-AES128-GCM-SHA256",
    "ECDHE-ECDSA-AES128-GCM-SHA256",
)

DEFAULT_SSL_MIN_VERSION = ssl.TLSVersion.TLSv1_3
DEFAULT_SSL_MAX_VERSION = ssl.TLSVersion.TLSv1_3


@dataclass(frozen=True)
class SSLOptionsBase:
    cert: Path | None
    key: Path | None
    ca: Path | None
    verify: bool
    require_client_cert: bool
    purpose: ssl.Purpose
    minimum_version: ssl.TLSVersion = DEFAULT_SSL_MIN_VERSION
    maximum_version: ssl.TLSVersion = DEFAULT_SSL_MAX_VERSION
    ciphers: tuple[str, ...] = DEFAULT_SSL_CIPHERS


def _optional_path(value: PathOrStr | None) -> Path | None:
    # Any falsy value (None, "") means "not given".
    return Path(value) if value else None


class SSLOptions(SSLOptionsBase):
    """Immutable TLS settings; file names become ``Path`` objects."""

    def __init__(
        self,
        cert: PathOrStr | None,
        key: PathOrStr | None,
        ca: PathOrStr | None,
        verify: bool,
        require_client_cert: bool,
        purpose: ssl.Purpose,
        minimum_version: ssl.TLSVersion = DEFAULT_SSL_MIN_VERSION,
        maximum_version: ssl.TLSVersion = DEFAULT_SSL_MAX_VERSION,
        ciphers: tuple[str, ...] = DEFAULT_SSL_CIPHERS,
    ) -> None:
        super().__init__(
            cert=_optional_path(cert),
            key=_optional_path(key),
            ca=_optional_path(ca),
            verify=verify,
            require_client_cert=require_client_cert,
            purpose=purpose,
            minimum_version=minimum_version,
            maximum_version=maximum_version,
            ciphers=ciphers,
        )

    def create_context(self) -> ssl.SSLContext:
        """A new context for ``purpose`` (blocking: it reads the files)."""
        context = ssl.create_default_context(purpose=self.purpose)
        # Compression leaks plaintext length (CRIME).
        context.options |= ssl.OP_NO_COMPRESSION
        context.maximum_version = self.maximum_version
        context.minimum_version = self.minimum_version
        context.set_ciphers(":".join(self.ciphers))

        if not self.verify:
            context.check_hostname = False

        if self.ca:
            log.debug("Loading CA from %s", self.ca)
            if not self.ca.exists():
                raise FileNotFoundError(
                    "CA file doesn't exists", str(self.ca.resolve()),
                )
            context.load_verify_locations(cafile=str(self.ca))

        if self.require_client_cert:
            log.debug("Set server-side cert verification")
            context.verify_mode = ssl.VerifyMode.CERT_REQUIRED
            # A server with post-handshake auth on asks for no certificate
            # during the handshake, and so would let in any client: only a
            # client side announces it.
            context.post_handshake_auth = self.purpose != ssl.Purpose.CLIENT_AUTH
        else:
            # check_hostname must go off before verify_mode may be CERT_NONE.
            context.check_hostname = False
            context.verify_mode = ssl.VerifyMode.CERT_NONE

        if self.key and self.cert:
            context.load_cert_chain(self.cert, self.key)
        return context


def get_ssl_context(
    cert: PathOrStr | None,
    key: PathOrStr | None,
    ca: PathOrStr | None,
    verify: bool,
    require_client_cert: bool,
    purpose: ssl.Purpose,
) -> ssl.SSLContext:
    """The context ``SSLOptions(...)`` would create with the default
    versions and ciphers (the helper older aiomisc releases had here)."""
    return SSLOptions(
        cert, key, ca, verify, require_client_cert, purpose,
    ).create_context()


class TLSServer(StreamServerBase):
    """A TCP server whose connections are TLS; ``handle_client`` gets the
    decrypted streams.  The context is built at start, in the executor."""

    PROTO_NAME = "tls"

    def __init__(
        self,
        *,
        address: str | None = None,
        port: int | None = None,
        cert: PathOrStr,
        key: PathOrStr,
        ca: PathOrStr | None = None,
        require_client_cert: bool = False,
        verify: bool = True,
        minimum_version: ssl.TLSVersion = DEFAULT_SSL_MIN_VERSION,
        maximum_version: ssl.TLSVersion = DEFAULT_SSL_MAX_VERSION,
        ciphers: tuple[str, ...] = DEFAULT_SSL_CIPHERS,
        options: OptionsType = (),
        sock: socket.socket | None = None,
        **kwargs: Any,
    ):
        self.__ssl_options = SSLOptions(
            cert=cert,
            key=key,
            ca=ca,
            verify=verify,
            require_client_cert=require_client_cert,
            purpose=ssl.Purpose.CLIENT_AUTH,
            minimum_version=minimum_version,
            maximum_version=maximum_version,
            ciphers=ciphers,
        )
        super().__init__(
            address=address, port=port, options=options, sock=sock, **kwargs,
        )
        self._pickled_arguments = {
            **self._pickled_arguments,
            "cert": cert, "key": key, "ca": ca,
            "require_client_cert": require_client_cert, "verify": verify,
            "minimum_version": minimum_version,
            "maximum_version": maximum_version, "ciphers": ciphers,
        }

    async def start(self) -> None:
        await self._serve(await _create_context(self.loop, self.__ssl_options))


async def _create_context(
    loop: asyncio.AbstractEventLoop, options: SSLOptions,
) -> ssl.SSLContext:
    # Reading the certificate files blocks: done in the executor.
    return await loop.run_in_executor(None, options.create_context)


class _TLSClientMixin:
    """What TLSClient and RobustTLSClient add to their TCP client: the TLS
    settings, and a fresh context for every connection attempt."""

    address: str
    port: int
    loop: asyncio.AbstractEventLoop
    _pickled_arguments: dict[str, Any]

    def __init__(
        self,
        address: str,
        port: int,
        *,
        cert: PathOrStr,
        key: PathOrStr,
        ca: PathOrStr | None = None,
        verify: bool = True,
        **kwargs: Any,
    ) -> None:
        self.__ssl_options = SSLOptions(
            cert, key, ca, verify, False, ssl.Purpose.SERVER_AUTH,
        )
        super().__init__(address, port, **kwargs)  # type: ignore[call-arg]
        self._pickled_arguments = {
            **self._pickled_arguments,
            "cert": cert, "key": key, "ca": ca, "verify": verify,
        }

    async def _open_connection(self) -> StreamPair:
        context = await _create_context(self.loop, self.__ssl_options)
        return await asyncio.open_connection(
            self.address, self.port, ssl=context,
        )


class TLSClient(_TLSClientMixin, TCPClient, ABC):
    """A ``TCPClient`` over TLS (a fresh context for every attempt)."""

    connect_attempts: int = 5
    connect_retry_timeout: TimeoutType = 3


class RobustTLSClient(_TLSClientMixin, RobustTCPClient, ABC):
    """A ``RobustTCPClient`` over TLS (a fresh context for every attempt)."""

    connect_attempts: int = 5
    connect_retry_timeout: TimeoutType = 3
