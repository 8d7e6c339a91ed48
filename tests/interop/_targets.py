"""One shape for every server under test: where to connect, what it offers, where mail lands.

A `Target` is what a feature test is parametrised over. ``relay`` takes
unauthenticated mail for the local domain; ``submission`` requires STARTTLS
and offers AUTH; ``smtps`` is implicit TLS; ``no_starttls`` does not offer
STARTTLS at all. ``offers`` is what the relay endpoint is *expected* to
advertise: a test asserts the advertisement matches before it decides that
a feature is "not offered", so a misconfigured server fails instead of
quietly turning a row of the matrix into "not offered".
"""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import trio

import trio_smtp
from trio_smtp import SMTPClient

from ._mailstore import MailStore
from ._pki import SERVER_NAME, Certificates

#: Target keys, as test parameters (``indirect=True``) and matrix columns.
SMTP_TARGETS = ("postfix", "postfix-strict", "exim", "aiosmtpd")
LMTP_TARGETS = ("dovecot-tcp", "dovecot-unix")
ALL_TARGETS = (*SMTP_TARGETS, *LMTP_TARGETS)
#: Targets with a submission service (STARTTLS required, AUTH).
SUBMISSION_TARGETS = ("postfix", "exim", "aiosmtpd")

#: The EHLO name the client gives: set, so that no test waits on a DNS lookup.
CLIENT_NAME = "client.test"


@dataclass(frozen=True)
class Endpoint:
    tls: trio_smtp.TLSMode
    port: int | None = None
    path: Path | None = None


@dataclass(frozen=True)
class Target:
    #: Short id, used in test ids and as the matrix column key.
    key: str
    #: Server name and version, as the matrix shows it.
    title: str
    lmtp: bool
    relay: Endpoint
    store: MailStore
    certificates: Certificates
    #: EHLO keywords the relay endpoint must advertise (after TLS, if it uses TLS).
    offers: frozenset[str]
    #: AUTH mechanisms the submission endpoint must advertise after TLS.
    auth_mechanisms: frozenset[str] = frozenset()
    submission: Endpoint | None = None
    smtps: Endpoint | None = None
    no_starttls: Endpoint | None = None
    #: The server's SIZE limit, when it advertises one.
    size_limit: int | None = None
    #: Waits until the server has nothing left in its queue.
    settle: Callable[[], Awaitable[None]] | None = None
    #: The last lines of the server's log, for failure reports.
    logs: Callable[[], str] | None = None

    @asynccontextmanager
    async def connect(
        self,
        endpoint: Endpoint | None = None,
        *,
        tls: trio_smtp.TLSMode | None = None,
        ssl_context: ssl.SSLContext | None = None,
        server_hostname: str = SERVER_NAME,
    ) -> AsyncIterator[SMTPClient]:
        """Open a client on ``endpoint`` (default: the relay) trusting the run's CA."""
        endpoint = endpoint or self.relay
        context = self.certificates.client_context if ssl_context is None else ssl_context
        mode = endpoint.tls if tls is None else tls
        if self.lmtp and endpoint.path is not None:
            opened = trio_smtp.open_lmtp(
                path=str(endpoint.path), tls=mode, local_hostname=CLIENT_NAME
            )
        else:
            assert endpoint.port is not None
            open_tcp = trio_smtp.open_lmtp if self.lmtp else trio_smtp.open_smtp
            opened = open_tcp(
                "127.0.0.1",
                endpoint.port,
                tls=mode,
                ssl_context=context,
                server_hostname=server_hostname,
                local_hostname=CLIENT_NAME,
            )
        async with opened as client:
            yield client

    async def settled(self) -> None:
        """Return once every message the server accepted has been delivered."""
        if self.settle is not None:
            await self.settle()
        else:
            await trio.lowlevel.checkpoint()


def queue_drained(queued: Callable[[], list[Path]], *, what: str) -> Callable[[], Awaitable[None]]:
    """A `Target.settle` that polls a server's queue until it is empty."""

    async def settle() -> None:
        deadline = trio.current_time() + 30
        while True:
            left = queued()
            if not left:
                return
            assert trio.current_time() < deadline, f"{what} still has {left} queued after 30 s"
            await trio.sleep(0.05)

    return settle
