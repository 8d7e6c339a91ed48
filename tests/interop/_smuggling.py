"""The SMTP smuggling vectors of SECURITY 11, each followed by a smuggled transaction.

A vector message has a body that reaches a vector (``\\n.\\n`` and its
kin) and then holds a complete second transaction: MAIL, RCPT to
`SMUGGLED`, DATA, a message with its own Message-ID, and a final dot. A
receiver that took the vector for the end of data would deliver that second
message to `SMUGGLED`. The client must normalise every bare CR and LF to
CRLF, so exactly one message, the whole body, reaches `ALICE`.
"""

from __future__ import annotations

from dataclasses import dataclass

from ._checks import canonical
from ._messages import SENDER, SMUGGLED, Sent, headers, message, new_message_id

#: smtpsmug's end-of-data look-alikes (the NUL one is `NUL_VECTOR`).
VECTORS = {
    "LF.LF": b"\n.\n",
    "CR.CR": b"\r.\r",
    "CR.LF": b"\r.\n",
    "LF.CR": b"\n.\r",
    "LF.CRLF": b"\n.\r\n",
    "CRLF.LF": b"\r\n.\n",
    "CR.CRLF": b"\r.\r\n",
    "CRLF.CR": b"\r\n.\r",
}
#: A NUL before the dot: the client refuses bodies holding NUL.
NUL_VECTOR = b"\r\n\x00.\r\n"


@dataclass(frozen=True)
class VectorMessage:
    #: What the caller hands to the client, vector and all.
    raw: bytes
    #: What must arrive: the same message with every newline as CRLF.
    expected: Sent
    #: The Message-ID of the smuggled message, which must arrive nowhere.
    smuggled_id: bytes


def smuggled_transaction(smuggled_id: bytes) -> bytes:
    return (
        f"MAIL FROM:<{SENDER}>\r\nRCPT TO:<{SMUGGLED}>\r\nDATA\r\n".encode()
        + headers(smuggled_id, to=SMUGGLED, subject="smuggled")
        + b"\r\nThis must never be a message of its own.\r\n.\r\n"
    )


def vector_message(vector: bytes) -> VectorMessage:
    smuggled_id = new_message_id()
    sent = message(b"Before the vector." + vector + smuggled_transaction(smuggled_id))
    return VectorMessage(
        raw=sent.text,
        expected=Sent(sent.message_id, canonical(sent.text)),
        smuggled_id=smuggled_id,
    )
