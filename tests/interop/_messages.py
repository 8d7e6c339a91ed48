"""The messages the interop tests send: complete, uniquely marked, exactly known.

Every message carries Date, Message-ID, From, To and Subject, so that no
server has a reason to add or rewrite a header, and a Message-ID unique to
the test, by which the delivered copy is found. `GeneratedBody` produces a
large message as a `trio.abc.ReceiveStream`, block by block, so that neither
the client nor the test ever holds it whole; its digest is computed by
generating it again.
"""

from __future__ import annotations

import hashlib
import itertools
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import trio

#: The mail domain every server delivers locally.
DOMAIN = "mail.test"
SENDER = f"sender@{DOMAIN}"
ALICE = f"alice@{DOMAIN}"
BOB = f"bob@{DOMAIN}"
#: A non-ASCII mailbox, reachable only with SMTPUTF8.
JORAN = f"jøran@{DOMAIN}"
#: A mailbox that must stay empty: the smuggling vectors address it.
SMUGGLED = f"smuggled@{DOMAIN}"
#: Dovecot holds this one over its quota.
FULL = f"full@{DOMAIN}"
#: No such user anywhere: every server refuses it at RCPT.
UNKNOWN = f"nobody@{DOMAIN}"
#: Every mailbox that exists (UNKNOWN does not).
MAILBOXES = (SENDER, ALICE, BOB, JORAN, SMUGGLED, FULL)

#: The submission account on every server that authenticates.
USER = ALICE
PASSWORD = "interop-Pa55word"
TOKEN = "interop-oauth-token"


@dataclass(frozen=True)
class Sent:
    """A message as sent: its unique marker and its canonical CRLF text."""

    message_id: bytes
    text: bytes


def new_message_id() -> bytes:
    return f"<{uuid.uuid4().hex}@trio-smtp.test>".encode()


def headers(
    message_id: bytes,
    *,
    sender: str = SENDER,
    to: str = ALICE,
    subject: str = "interop",
    extra: tuple[str, ...] = (),
) -> bytes:
    lines = [
        "Date: Sat, 21 Nov 2026 06:00:00 +0000",
        f"Message-ID: {message_id.decode()}",
        f"From: <{sender}>",
        f"To: <{to}>",
        f"Subject: {subject}",
        *extra,
    ]
    return "".join(line + "\r\n" for line in lines).encode("utf-8")


def message(
    body: bytes,
    *,
    sender: str = SENDER,
    to: str = ALICE,
    subject: str = "interop",
    extra: tuple[str, ...] = (),
) -> Sent:
    """A complete message around ``body`` (canonical CRLF text, ending in CRLF)."""
    message_id = new_message_id()
    head = headers(message_id, sender=sender, to=to, subject=subject, extra=extra)
    return Sent(message_id, head + b"\r\n" + body)


EIGHT_BIT_HEADERS = (
    "MIME-Version: 1.0",
    "Content-Type: text/plain; charset=utf-8",
    "Content-Transfer-Encoding: 8bit",
)

#: Body lines a careless dot-stuffer or a wrong end-of-data loses or cuts at.
DOT_LINES = (
    b".leading dot\r\n"
    b"..two dots\r\n"
    b".\r\n"
    b"after a line of one dot\r\n"
    b". space after the dot\r\n"
    b"...\r\n"
    b"\r\n"
    b".\r\n"
    b"last line starts after a lone dot\r\n"
)

_LINE = b"x" * 70


class GeneratedBody(trio.abc.ReceiveStream):
    """A large message generated in blocks; `digest` tells what the server must store.

    Each block is numbered (so no two are alike) and holds lines starting
    with a dot, which DATA must stuff and BDAT must not; blocks end on a
    line boundary, so the LF form can be made block by block.
    """

    BLOCK_LINES = 800

    def __init__(self, message_id: bytes, size: int, *, to: str = ALICE) -> None:
        self.message_id = message_id
        self.size = size
        self.to = to
        self._head = headers(message_id, to=to, subject="large message") + b"\r\n"
        self._blocks = self._generate()
        self._pending = b""

    def _block(self, number: int) -> bytes:
        lines = [b"block %010d\r\n" % number]
        for index in range(1, self.BLOCK_LINES):
            prefix = b"." if index % 7 == 0 else b""
            lines.append(prefix + _LINE + b"\r\n")
        return b"".join(lines)

    def _generate(self) -> Iterator[bytes]:
        """The whole message, in blocks, truncated to a line boundary at ``size``."""
        remaining = self.size - len(self._head)
        yield self._head
        for number in itertools.count():
            if remaining <= 0:
                return
            block = self._block(number)
            if len(block) > remaining:
                # Whole lines only: every line of the message ends in CRLF.
                cut = block.rfind(b"\r\n", 0, remaining)
                if cut < 0:
                    return
                block = block[: cut + 2]
            remaining -= len(block)
            yield block

    async def receive_some(self, max_bytes: int | None = None) -> bytes:
        await trio.lowlevel.checkpoint()
        if not self._pending:
            self._pending = next(self._blocks, b"")
        limit = len(self._pending) if max_bytes is None else max_bytes
        chunk, self._pending = self._pending[:limit], self._pending[limit:]
        return chunk

    async def aclose(self) -> None:
        await trio.lowlevel.checkpoint()

    def digest(self, *, newline: bytes) -> tuple[str, int]:
        """SHA-256 and length of the whole message with CRLF replaced by ``newline``."""
        hasher = hashlib.sha256()
        size = 0
        for block in GeneratedBody(self.message_id, self.size, to=self.to)._generate():
            converted = block.replace(b"\r\n", newline)
            hasher.update(converted)
            size += len(converted)
        return hasher.hexdigest(), size
