"""aiosmtpd as an interop peer: four listeners sharing one recording handler.

aiosmtpd writes no Maildir: the handler records each accepted message in a
`RecordingStore`. Listeners: ``smtp`` (STARTTLS offered, AUTH after TLS),
``plain`` (no STARTTLS), ``submission`` (STARTTLS required) and ``smtps``
(implicit TLS). aiosmtpd offers SIZE, 8BITMIME, SMTPUTF8, STARTTLS and AUTH
PLAIN/LOGIN; it has no PIPELINING, CHUNKING or DSN. Each controller runs its
own asyncio loop in a thread and is stopped by its handle.
"""

from __future__ import annotations

import contextlib
import ssl
from dataclasses import dataclass, field
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

from ._mailstore import RecordedMessage, RecordingStore
from ._messages import MAILBOXES, PASSWORD, USER
from ._pki import SERVER_NAME, Certificates
from ._provision import free_port

#: Larger than the 50 MiB messages plus their headers.
DATA_SIZE_LIMIT = 100 * 1024 * 1024


@dataclass
class RecordingHandler:
    """Accepts the known mailboxes, refuses the rest at RCPT, records every message."""

    store: RecordingStore

    async def handle_RCPT(
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        address: str,
        rcpt_options: list[str],
    ) -> str:
        if address not in MAILBOXES:
            return f"550 5.1.1 <{address}>: user unknown"
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        content = envelope.original_content or b""
        assert isinstance(content, bytes)
        self.store.messages.append(
            RecordedMessage(str(envelope.mail_from), tuple(envelope.rcpt_tos), content)
        )
        return "250 2.0.0 OK: queued"


def _authenticate(
    server: SMTP, session: Session, envelope: Envelope, mechanism: str, auth_data: Any
) -> AuthResult:
    if isinstance(auth_data, LoginPassword):
        accepted = auth_data.login.decode() == USER and auth_data.password.decode() == PASSWORD
        return AuthResult(success=accepted, handled=False)
    return AuthResult(success=False, handled=False)


@dataclass
class Aiosmtpd:
    certificates: Certificates
    store: RecordingStore = field(default_factory=RecordingStore)
    smtp_port: int = field(default_factory=free_port)
    plain_port: int = field(default_factory=free_port)
    submission_port: int = field(default_factory=free_port)
    smtps_port: int = field(default_factory=free_port)
    _stack: contextlib.ExitStack = field(default_factory=contextlib.ExitStack)

    def _serve(self, port: int, *, ssl_context: ssl.SSLContext | None = None, **smtp: Any) -> None:
        controller = Controller(
            RecordingHandler(self.store),
            hostname="127.0.0.1",
            port=port,
            ssl_context=ssl_context,
            server_hostname=SERVER_NAME,
            data_size_limit=DATA_SIZE_LIMIT,
            enable_SMTPUTF8=True,
            authenticator=_authenticate,
            **smtp,
        )
        controller.start()
        self._stack.callback(controller.stop)

    def start(self) -> None:
        tls = self.certificates.server_context
        try:
            self._serve(self.smtp_port, tls_context=tls)
            self._serve(self.plain_port)
            self._serve(self.submission_port, tls_context=tls, require_starttls=True)
            # aiosmtpd counts only STARTTLS as TLS and would hide AUTH here;
            # this listener speaks TLS from the first byte, so nothing leaks.
            self._serve(self.smtps_port, ssl_context=tls, auth_require_tls=False)
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        self._stack.close()
