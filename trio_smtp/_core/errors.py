"""The exception hierarchy shared by every layer of trio-smtp.

Everything the library raises on purpose derives from :class:`SMTPError`.
The core raises these from pure functions; the trio layer raises the same
classes, so callers catch one hierarchy whatever layer they use.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .commands import SmtpOp
    from .reply import Reply

__all__ = [
    "AuthRejected",
    "ExtensionUnavailable",
    "InvalidInputError",
    "LocalProtocolError",
    "MessageTooLarge",
    "OutcomeUnknown",
    "PolicyError",
    "RecipientsRefused",
    "SMTPAuthError",
    "SMTPConnectionError",
    "SMTPError",
    "SMTPProtocolError",
    "SMTPReplyError",
    "TLSHandshakeError",
    "UnsupportedMechanism",
]


class SMTPError(Exception):
    """Base class of every error trio-smtp raises on purpose."""


class SMTPConnectionError(SMTPError):
    """The transport failed, was closed, or the client is broken and unusable."""


class TLSHandshakeError(SMTPConnectionError):
    """The TLS handshake failed: an untrusted, expired or mismatched certificate,
    a protocol version below TLS 1.2, or a server that did not speak TLS.

    Nothing was sent over the connection after the failure, and the client
    never falls back to plaintext or another port (SECURITY 6, 38, 41).
    """


class SMTPProtocolError(SMTPError):
    """The server broke the protocol: a malformed, overlong or unexpected reply.

    After this error the session is in a terminal state; the connection must
    be closed and never reused.
    """


class LocalProtocolError(SMTPError):
    """The caller drove the sans-IO session out of order.

    Raised by the core when a command is not legal in the current state (for
    example a body chunk before the 354, or a command pipelined behind DATA).
    It signals a bug in the code using the core, never a server fault.
    """


class SMTPReplyError(SMTPError):
    """The server answered a command with an error reply.

    ``reply`` is the :class:`Reply`; ``during`` is the :class:`SmtpOp` whose
    reply it was.
    """

    def __init__(self, reply: Reply, during: SmtpOp, message: str | None = None) -> None:
        self.reply = reply
        self.during = during
        super().__init__(message or f"{during.name} failed: {reply}")


class RecipientsRefused(SMTPReplyError):
    """Every recipient of a transaction was refused.

    ``rejected`` maps each recipient address to the reply that refused it.
    """

    def __init__(self, rejected: Mapping[str, Reply], reply: Reply, during: SmtpOp) -> None:
        self.rejected = dict(rejected)
        super().__init__(reply, during, f"all {len(self.rejected)} recipient(s) refused: {reply}")


class SMTPAuthError(SMTPError):
    """Authentication could not be completed."""


class UnsupportedMechanism(SMTPAuthError):
    """The requested SASL mechanism is not offered by the server (or not allowed here)."""


class AuthRejected(SMTPAuthError, SMTPReplyError):
    """The server refused the credentials or the exchange (for example 535 or 454).

    ``reply`` tells them apart: 535 is a permanent refusal of the credentials,
    454 a temporary failure worth retrying later. ``detail`` carries a
    server-supplied explanation, such as the status of an OAUTHBEARER error
    challenge; it never holds a credential.
    """

    def __init__(
        self, reply: Reply, during: SmtpOp, message: str | None = None, *, detail: str | None = None
    ) -> None:
        self.detail = detail
        SMTPReplyError.__init__(self, reply, during, message)


class ExtensionUnavailable(SMTPError):
    """A feature was asked for that the server did not advertise (``name``)."""

    def __init__(self, name: str, message: str | None = None) -> None:
        self.name = name
        super().__init__(message or f"the server does not advertise {name}")


class PolicyError(SMTPError):
    """A local rule refused the operation before any command was sent.

    Raised by a sending policy (``policy=``, such as `BoundedPolicy`), and by
    the client itself when it refuses to send credentials without TLS to a
    peer that is not this machine (SECURITY 32).
    """


class MessageTooLarge(PolicyError):
    """The message is larger than the server's advertised SIZE limit (RFC 1870).

    Raised before MAIL is sent: ``size`` is the message's size, ``limit`` the
    server's.
    """

    def __init__(self, size: int, limit: int) -> None:
        self.size = size
        self.limit = limit
        super().__init__(f"the message has {size} octets; the server accepts at most {limit}")


class InvalidInputError(SMTPError, ValueError):
    """The caller passed something that cannot be sent safely.

    Raised before a single byte of the offending command is produced: CR, LF
    or NUL in an argument, an overlong line, a malformed address, a TLS
    context that does not verify.
    """


class OutcomeUnknown(SMTPError):
    """The connection was lost after the end of data was written, before its reply.

    The server may or may not have accepted the message: retrying may send a
    duplicate. Deliberately not an :class:`SMTPConnectionError`, so that code
    which retries on connection errors does not retry this by accident.

    In LMTP, ``replies`` holds the per-recipient replies that did arrive and
    ``unanswered`` the recipients whose fate is unknown.
    """

    def __init__(
        self,
        message: str = "connection lost after the end of data: the message may or may not "
        "have been accepted",
        *,
        replies: Mapping[str, Reply] | None = None,
        unanswered: tuple[str, ...] = (),
    ) -> None:
        self.replies = dict(replies or {})
        self.unanswered = unanswered
        super().__init__(message)
