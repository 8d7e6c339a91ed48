"""Shared pieces of the MIME composer tests: reading a composed message in
chosen chunk sizes, streams that deliver chosen splits, and the wire checks
every composed message must pass."""

from __future__ import annotations

import email.policy
import itertools
import re
from collections.abc import Iterable, Sequence
from email.message import EmailMessage
from email.parser import BytesParser

import trio

from trio_smtp.mime import ComposedMessage

#: What the composer refuses in header text: NUL and every line break that
#: str.splitlines knows.
REFUSED = "\x00\r\n\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029"


async def read_all(message: ComposedMessage, sizes: Iterable[int | None] = (None,)) -> bytes:
    """Read ``message`` to its end, asking for each size of ``sizes`` in turn (cycled)."""
    out = bytearray()
    for size in itertools.cycle(sizes):
        chunk = await message.receive_some(size)
        if not chunk:
            return bytes(out)
        assert size is None or len(chunk) <= size
        out += chunk
    raise AssertionError("unreachable")  # pragma: no cover


class SplitStream(trio.abc.ReceiveStream):
    """Delivers ``data`` in pieces of the given sizes (cycled), never more than asked.

    ``delivered`` counts the octets handed out; ``closed`` records `aclose`.
    """

    def __init__(self, data: bytes, splits: Sequence[int] = (65536,)) -> None:
        self.data = data
        self.splits = itertools.cycle([max(1, n) for n in splits] or [65536])
        self.delivered = 0
        self.closed = False

    async def receive_some(self, max_bytes: int | None = None) -> bytes:
        await trio.lowlevel.checkpoint()
        if self.closed:
            raise trio.ClosedResourceError
        size = next(self.splits)
        if max_bytes is not None:
            size = min(size, max_bytes)
        chunk = self.data[self.delivered : self.delivered + size]
        self.delivered += len(chunk)
        return chunk

    async def aclose(self) -> None:
        self.closed = True
        await trio.lowlevel.checkpoint()


def parse(data: bytes) -> EmailMessage:
    message = BytesParser(policy=email.policy.default).parsebytes(data)
    assert isinstance(message, EmailMessage)
    return message


def check_wire(data: bytes) -> None:
    """What every composed message promises: ASCII, CRLF only, no NUL, a final
    CRLF, lines within 998 octets, and body lines within 76."""
    assert data.isascii()
    assert b"\x00" not in data
    assert data.endswith(b"\r\n")
    lines = data.split(b"\r\n")
    assert lines.pop() == b""
    in_headers = True
    for line in lines:
        assert b"\r" not in line and b"\n" not in line
        assert len(line) <= 998
        if in_headers:
            in_headers = line != b""
        elif line.startswith(b"--=_"):
            in_headers = True  # a delimiter: the part's headers follow
        else:
            assert len(line) <= 76, line


def canonical_text(text: str) -> str:
    """How a text part reads back: CRLF line ends, and a final one when missing."""
    canonical = re.sub(r"\r\n|\r|\n", "\r\n", text)
    if canonical and not canonical.endswith("\r\n"):
        canonical += "\r\n"
    return canonical


def assert_no_defects(message: EmailMessage) -> None:
    for part in message.walk():
        assert not part.defects, (part.get_content_type(), part.defects)
