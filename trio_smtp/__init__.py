"""trio-smtp: a trio-native SMTP and LMTP submission client.

This module only re-exports the public names. The sans-IO protocol core
lives in `trio_smtp._core`; the trio layer (`open_smtp`, `open_lmtp`,
`SMTPClient`) is built on top of it and loaded on first use, so that
``import trio_smtp._core`` never imports trio.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from ._core.address import ForwardPath, ReversePath
from ._core.capabilities import Capabilities
from ._core.commands import MailParams, RcptParams, SmtpOp
from ._core.errors import (
    AuthRejected,
    ExtensionUnavailable,
    InvalidInputError,
    LocalProtocolError,
    MessageTooLarge,
    OutcomeUnknown,
    PolicyError,
    RecipientsRefused,
    SMTPAuthError,
    SMTPConnectionError,
    SMTPError,
    SMTPProtocolError,
    SMTPReplyError,
    TLSHandshakeError,
    UnsupportedMechanism,
)
from ._core.reply import EnhancedStatus, Reply
from ._core.sasl import AuthMechanism
from ._core.session import SessionState

if TYPE_CHECKING:
    from ._client import (
        IMPLICIT,
        PLAINTEXT,
        STARTTLS,
        Message,
        SMTPClient,
        TLSMode,
        open_lmtp,
        open_smtp,
    )
    from ._outcome import LMTPOutcome, SendOutcome
    from ._policy import AuditEvent, BoundedPolicy, Policy
    from ._pool import BulkJob, Delivery, DeliveryStatus, PoolStatistics, SMTPPool, open_pool
    from ._tls import tls_context

# Names whose modules import trio: resolved on first access (PEP 562).
_LAZY = {
    "IMPLICIT": "._client",
    "PLAINTEXT": "._client",
    "STARTTLS": "._client",
    "SMTPClient": "._client",
    "Message": "._client",
    "TLSMode": "._client",
    "open_lmtp": "._client",
    "open_smtp": "._client",
    "LMTPOutcome": "._outcome",
    "SendOutcome": "._outcome",
    "AuditEvent": "._policy",
    "BoundedPolicy": "._policy",
    "Policy": "._policy",
    "BulkJob": "._pool",
    "Delivery": "._pool",
    "DeliveryStatus": "._pool",
    "PoolStatistics": "._pool",
    "SMTPPool": "._pool",
    "open_pool": "._pool",
    "tls_context": "._tls",
}


def __getattr__(name: str) -> Any:
    module_name = _LAZY.get(name)
    if module_name is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module_name, __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)


__version__ = "0.1.0.dev0"

__all__ = [
    "IMPLICIT",
    "PLAINTEXT",
    "STARTTLS",
    "AuditEvent",
    "AuthMechanism",
    "AuthRejected",
    "BoundedPolicy",
    "BulkJob",
    "Capabilities",
    "Delivery",
    "DeliveryStatus",
    "EnhancedStatus",
    "ExtensionUnavailable",
    "ForwardPath",
    "InvalidInputError",
    "LMTPOutcome",
    "LocalProtocolError",
    "MailParams",
    "Message",
    "MessageTooLarge",
    "OutcomeUnknown",
    "Policy",
    "PolicyError",
    "PoolStatistics",
    "RcptParams",
    "RecipientsRefused",
    "Reply",
    "ReversePath",
    "SMTPAuthError",
    "SMTPClient",
    "SMTPConnectionError",
    "SMTPError",
    "SMTPPool",
    "SMTPProtocolError",
    "SMTPReplyError",
    "SendOutcome",
    "SessionState",
    "SmtpOp",
    "TLSHandshakeError",
    "TLSMode",
    "UnsupportedMechanism",
    "__version__",
    "open_lmtp",
    "open_pool",
    "open_smtp",
    "tls_context",
]
