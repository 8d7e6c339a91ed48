"""Real peers for the client tests: aiosmtpd in-process, trustme certificates,
and a scripted peer on trio memory streams for exact transcripts.

aiosmtpd runs its own asyncio loop in a thread (its Controller), so the trio
client talks to it over real loopback sockets. Every server is stopped by
its handle when the test ends.
"""

from __future__ import annotations

import socket
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from typing import Any

import pytest
import trio
import trio.testing
import trustme
from aiosmtpd.controller import Controller, UnixSocketController
from aiosmtpd.lmtp import LMTP
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

import trio_smtp
from trio_smtp import SMTPClient

USER = "alice@example.com"
PASSWORD = "s3cret-Pa55word-that-must-never-leak"
TOKEN = "ya29.token-value-that-must-never-leak"


@pytest.fixture(scope="session")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture(scope="session")
def server_context(ca: trustme.CA) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("localhost", "127.0.0.1").configure_cert(context)
    return context


@pytest.fixture(scope="session")
def client_context(ca: trustme.CA) -> ssl.SSLContext:
    return trio_smtp.tls_context(trust=None, cadata=ca.cert_pem.bytes().decode())


def free_port() -> int:
    # aiosmtpd's Controller connects to its own port to check it is up, so
    # it needs a concrete port rather than 0.
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@dataclass
class Recorder:
    """An aiosmtpd handler that records messages and refuses chosen recipients."""

    refuse: set[str] = field(default_factory=lambda: {"nobody@example.org"})
    envelopes: list[Envelope] = field(default_factory=list)
    lmtp_failures: dict[str, str] = field(default_factory=dict)
    tokens: dict[str, str] = field(default_factory=lambda: {USER: TOKEN})

    async def handle_RCPT(
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        address: str,
        rcpt_options: list[str],
    ) -> str:
        if address in self.refuse:
            return "550 5.1.1 no such user"
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(rcpt_options)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        self.envelopes.append(envelope)
        if isinstance(server, LMTP):
            # RFC 2033: one reply per accepted recipient, in order.
            return "\r\n".join(
                self.lmtp_failures.get(rcpt, f"250 2.0.0 <{rcpt}> delivered")
                for rcpt in envelope.rcpt_tos
            )
        return "250 2.0.0 Ok: queued as AIO1"

    # aiosmtpd calls auth_<MECHANISM> hooks on the handler for mechanisms it
    # does not implement itself: a server-side reading of the OAuth formats
    # that nobody here wrote the client of.
    async def auth_XOAUTH2(self, server: SMTP, args: list[str]) -> AuthResult:
        import base64

        if len(args) > 1:
            raw = base64.b64decode(args[1])
        else:
            answer = await server.challenge_auth("")
            raw = answer if isinstance(answer, bytes) else b""
        fields = dict(part.split("=", 1) for part in raw.decode().split("\x01") if "=" in part)
        user, bearer = fields.get("user"), fields.get("auth", "")
        if user in self.tokens and bearer == f"Bearer {self.tokens[user]}":
            return AuthResult(success=True, auth_data=user)
        return AuthResult(success=False, handled=False)

    async def auth_OAUTHBEARER(self, server: SMTP, args: list[str]) -> AuthResult:
        import base64
        import json

        if len(args) > 1:
            raw = base64.b64decode(args[1])
        else:
            answer = await server.challenge_auth("")
            raw = answer if isinstance(answer, bytes) else b""
        header, _, rest = raw.decode().partition("\x01")
        user = header.split(",")[1].removeprefix("a=") if header.count(",") >= 2 else None
        fields = dict(part.split("=", 1) for part in rest.split("\x01") if "=" in part)
        if user in self.tokens and fields.get("auth") == f"Bearer {self.tokens[user]}":
            return AuthResult(success=True, auth_data=user)
        error = base64.b64encode(json.dumps({"status": "invalid_token"}).encode()).decode()
        await server.challenge_auth(error, encode_to_b64=False)
        return AuthResult(success=False, handled=False)


def authenticator(
    server: SMTP, session: Session, envelope: Envelope, mechanism: str, auth_data: Any
) -> AuthResult:
    if isinstance(auth_data, LoginPassword):
        ok = auth_data.login.decode() == USER and auth_data.password.decode() == PASSWORD
        return AuthResult(success=ok, handled=False)
    return AuthResult(success=False, handled=False)


class _LMTPController(Controller):
    def factory(self) -> SMTP:
        return LMTP(self.handler, **self.SMTP_kwargs)


class _UnixLMTPController(UnixSocketController):
    def factory(self) -> SMTP:
        return LMTP(self.handler, **self.SMTP_kwargs)


@dataclass
class Aiosmtpd:
    handler: Recorder
    port: int
    path: str | None = None


@contextmanager
def run_aiosmtpd(
    *,
    lmtp: bool = False,
    unix_path: str | None = None,
    handler: Recorder | None = None,
    **smtp_kwargs: Any,
) -> Iterator[Aiosmtpd]:
    handler = handler or Recorder()
    smtp_kwargs.setdefault("authenticator", authenticator)
    smtp_kwargs.setdefault("auth_require_tls", False)
    smtp_kwargs.setdefault("server_hostname", "aiosmtpd.test")
    controller: Controller | UnixSocketController
    if unix_path is not None:
        controller = _UnixLMTPController(handler, unix_socket=unix_path, **smtp_kwargs)
        port = 0
    else:
        port = free_port()
        cls = _LMTPController if lmtp else Controller
        controller = cls(handler, hostname="127.0.0.1", port=port, **smtp_kwargs)
    controller.start()
    try:
        yield Aiosmtpd(handler, port, unix_path)
    finally:
        controller.stop()


@pytest.fixture
def aiosmtpd_server() -> Iterator[Aiosmtpd]:
    with run_aiosmtpd(enable_SMTPUTF8=True) as server:
        yield server


# -- a scripted peer on memory streams ----------------------------------------


class Peer:
    """The server side of a `trio.testing.memory_stream_pair`, driven by the test."""

    def __init__(self, stream: trio.abc.Stream) -> None:
        self.stream = stream
        self.received = bytearray()

    async def send(self, data: bytes) -> None:
        await self.stream.send_all(data)

    async def expect(self, data: bytes) -> None:
        """Read until exactly ``data`` has arrived (fails on anything else)."""
        while len(self.received) < len(data):
            chunk = await self.stream.receive_some(65536)
            if not chunk:
                break
            self.received += chunk
        got = bytes(self.received[: len(data)])
        del self.received[: len(data)]
        assert got == data

    async def read_line(self) -> bytes:
        while b"\r\n" not in self.received:
            chunk = await self.stream.receive_some(65536)
            if not chunk:
                raise AssertionError(f"EOF before a line; have {bytes(self.received)!r}")
            self.received += chunk
        line, _, rest = bytes(self.received).partition(b"\r\n")
        self.received = bytearray(rest)
        return line + b"\r\n"

    async def read_all_until_eof(self) -> bytes:
        while True:
            chunk = await self.stream.receive_some(65536)
            if not chunk:
                break
            self.received += chunk
        return bytes(self.received)

    async def close(self) -> None:
        await self.stream.aclose()


EHLO_PIPELINING = b"250-peer.test\r\n250-PIPELINING\r\n250-8BITMIME\r\n250 SIZE 100000\r\n"


@asynccontextmanager
async def scripted(
    peer_script: Callable[[Peer], Awaitable[None]],
    **client_kwargs: Any,
) -> AsyncIterator[tuple[SMTPClient | None, Peer]]:
    """Run ``peer_script`` as the server while the client connects over memory streams.

    Yields the connected client (or None when connecting failed: the error
    is raised from the ``async with``).
    """
    client_stream, server_stream = trio.testing.memory_stream_pair()
    peer = Peer(server_stream)
    client_kwargs.setdefault("tls", trio_smtp.PLAINTEXT)
    client_kwargs.setdefault("local_hostname", "client.test")
    async with trio.open_nursery() as nursery:
        nursery.start_soon(peer_script, peer)
        client = await SMTPClient.from_stream(client_stream, **client_kwargs)
        yield client, peer
