"""What a submission returns: `SendOutcome` for SMTP, `LMTPOutcome` for LMTP.

Also owns reading the server's queue id out of the final reply, since every
MTA words it differently.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

from ._core.reply import Reply

__all__ = ["LMTPOutcome", "SendOutcome", "queue_id_from"]

# The usual wordings, tried in order: Postfix ("Ok: queued as 4XyZ"), Exim
# ("OK id=1abcde-000123-AB"), Sendmail ("r1ABC123 Message accepted for
# delivery"), Microsoft ("<id> [InternalId=...] Queued mail for delivery"),
# and generic "queued as <id>" / "Queued! <id>" forms.
_QUEUE_ID_PATTERNS = [
    re.compile(rb"queued as ([A-Za-z0-9][A-Za-z0-9._-]{0,63})", re.IGNORECASE),
    re.compile(rb"\bid=([A-Za-z0-9][A-Za-z0-9._-]{0,63})"),
    re.compile(rb"([A-Za-z0-9]{6,64}) Message accepted for delivery", re.IGNORECASE),
    re.compile(rb"<([^<>\s]{1,128})> \[InternalId=", re.IGNORECASE),
    re.compile(rb"Queued!? \(?([A-Za-z0-9][A-Za-z0-9._-]{3,63})", re.IGNORECASE),
]


def queue_id_from(reply: Reply) -> str | None:
    """The queue id a final 2xx reply names, or None."""
    if not reply.is_positive:
        return None
    for line in reply.lines:
        for pattern in _QUEUE_ID_PATTERNS:
            match = pattern.search(line)
            if match:
                return match.group(1).decode("ascii")
    return None


@dataclass(frozen=True)
class SendOutcome:
    """The result of one accepted SMTP transaction.

    ``accepted`` and ``rejected`` map each recipient to its RCPT reply (a
    partial rejection is not an error); ``reply`` is the final reply to the
    end of data; ``queue_id`` is read from it when the server names one.
    ``tls`` records whether the message travelled over TLS (SECURITY 9);
    ``transfer`` says whether DATA or BDAT carried it; ``size`` is the
    body's size as sent, after newline normalisation and before
    dot-stuffing (the message size of RFC 1870), for in-memory and streamed
    bodies alike.
    """

    accepted: Mapping[str, Reply]
    rejected: Mapping[str, Reply]
    reply: Reply
    queue_id: str | None
    tls: bool
    transfer: Literal["DATA", "BDAT"]
    size: int


@dataclass(frozen=True)
class LMTPOutcome(SendOutcome):
    """The result of an LMTP transaction: one final reply per accepted recipient.

    ``replies`` maps each recipient accepted at RCPT time to its own reply
    after the end of data (RFC 2033 4.2); ``delivered`` and ``failed`` split
    them. ``reply`` is the last of them.
    """

    replies: Mapping[str, Reply] = field(default_factory=dict)

    @property
    def delivered(self) -> tuple[str, ...]:
        return tuple(rcpt for rcpt, reply in self.replies.items() if reply.is_positive)

    @property
    def failed(self) -> Mapping[str, Reply]:
        return {rcpt: reply for rcpt, reply in self.replies.items() if not reply.is_positive}
