"""Local sending policy and the audit trail.

A policy is consulted before any command of a transaction is written, so a
refused message leaves nothing half-sent. Audit events describe what the
client did (connected, TLS, EHLO, AUTH mechanism and outcome, MAIL, RCPT,
data, replies, closed) and never carry a credential or message content.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from ._core.address import ForwardPath, ReversePath
from ._core.errors import PolicyError

__all__ = ["AuditEvent", "AuditHook", "BoundedPolicy", "Policy", "logger"]

#: The library's logger. DEBUG carries the same facts as the audit events,
#: with AUTH payloads redacted.
logger = logging.getLogger("trio_smtp")


class Policy(Protocol):
    """What a sending policy implements; each check raises `PolicyError` to refuse."""

    def check_sender(self, sender: ReversePath) -> None: ...

    def check_recipients(self, recipients: Sequence[ForwardPath]) -> None: ...

    def check_message_size(self, size: int | None) -> None: ...


@dataclass(frozen=True)
class BoundedPolicy:
    """A ready-made `Policy`: caps on recipients and size, and allowed sender domains.

    ``None`` means no limit. ``allowed_sender_domains`` compares domains
    case-insensitively; the null reverse path (bounces) is always allowed.
    A message of unknown size (a stream without a declared size) passes the
    size check: its size is enforced by the server's SIZE limit instead.
    """

    max_recipients: int | None = None
    max_message_size: int | None = None
    allowed_sender_domains: Collection[str] | None = None

    def check_sender(self, sender: ReversePath) -> None:
        if self.allowed_sender_domains is None or sender.is_null:
            return
        domain = sender.address.rpartition("@")[2].lower()
        allowed = {name.lower() for name in self.allowed_sender_domains}
        if domain not in allowed:
            raise PolicyError(f"sender domain {domain!r} is not allowed by the policy")

    def check_recipients(self, recipients: Sequence[ForwardPath]) -> None:
        if self.max_recipients is not None and len(recipients) > self.max_recipients:
            raise PolicyError(
                f"{len(recipients)} recipients exceed the policy's limit of {self.max_recipients}"
            )

    def check_message_size(self, size: int | None) -> None:
        if self.max_message_size is not None and size is not None and size > self.max_message_size:
            raise PolicyError(
                f"a message of {size} octets exceeds the policy's limit of {self.max_message_size}"
            )


@dataclass(frozen=True)
class AuditEvent:
    """One step of a session, for an audit trail.

    ``kind`` is one of ``connected``, ``tls``, ``ehlo``, ``auth``, ``mail``,
    ``rcpt``, ``data``, ``reply`` and ``closed``; ``peer`` names the server;
    ``details`` holds plain values (addresses, codes, mechanism names, octet
    counts), never a credential or message content.
    """

    kind: str
    peer: str
    details: Mapping[str, str | int | bool | None] = field(default_factory=dict)


AuditHook = Callable[[AuditEvent], None]
