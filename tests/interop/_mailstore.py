"""Where a server put the mail: Maildirs on disk, or aiosmtpd's recorded envelopes.

A test finds its message by the unique Message-ID it sent, waits (bounded)
for it to arrive, and compares it with what it sent. The comparison is
exact apart from the trace header fields the server prepends (Return-Path,
Received, Delivered-To, X-Original-To): those are split off the top of the
stored message, only there, and only by those names. Maildir files end
lines with LF; `MailStore.stored_form` turns the CRLF text that was sent
into that form, which is exact because canonical text has no other CR or LF.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import trio

#: The header fields a server may prepend on delivery (RFC 5321 4.4, and
#: the delivery agents' Delivered-To / X-Original-To).
TRACE_FIELDS = frozenset({b"return-path", b"received", b"delivered-to", b"x-original-to"})
#: How long a delivery may take to appear.
DELIVERY_TIMEOUT = 30.0
#: The part of a stored message searched for the Message-ID and trace fields.
HEAD_BYTES = 64 * 1024
_POLL_INTERVAL = 0.05


@dataclass(frozen=True)
class Delivered:
    """One stored copy of a message, split into the server's trace fields and the rest."""

    trace: tuple[bytes, ...]
    content: bytes


@dataclass(frozen=True)
class Digest:
    """A stored message too large to compare in memory: its trace fields and a hash of the rest."""

    trace: tuple[bytes, ...]
    sha256: str
    size: int


def _missing_trace(store: MailStore, trace: tuple[bytes, ...]) -> list[bytes]:
    names = {line.partition(b":")[0].lower() for line in trace}
    return sorted(store.required_trace - names)


def split_trace(data: bytes, newline: bytes) -> tuple[tuple[bytes, ...], int]:
    """The trace fields at the top of ``data`` (each with its folded lines) and where they end."""
    fields: list[bytes] = []
    offset = 0
    while True:
        end = data.find(newline, offset)
        if end < 0:
            break
        name, colon, _ = data[offset:end].partition(b":")
        if not colon or name.lower() not in TRACE_FIELDS:
            break
        field_end = end + len(newline)
        while data[field_end : field_end + 1] in (b" ", b"\t"):
            continuation = data.find(newline, field_end)
            if continuation < 0:
                break
            field_end = continuation + len(newline)
        fields.append(data[offset:field_end])
        offset = field_end
    return tuple(fields), offset


def _holds(data: bytes, marker: bytes, newline: bytes, *, anywhere: bool) -> bool:
    """Whether ``marker`` occurs in ``data``'s header section (or ``anywhere``)."""
    if anywhere:
        return marker in data
    head, _, _ = data.partition(newline + newline)
    return marker in head


class MailStore(Protocol):
    """What the tests need from a server's mail storage."""

    #: Trace fields every stored message must carry (proof that the split works).
    required_trace: frozenset[bytes]
    #: The line ending of stored messages.
    newline: bytes

    def stored_form(self, sent: bytes) -> bytes:
        """``sent`` (canonical CRLF text) as this store keeps it."""
        ...

    def find(self, recipient: str, marker: bytes, *, anywhere: bool = False) -> list[Delivered]:
        """Every stored message for ``recipient`` whose header (or any part) holds ``marker``."""
        ...

    def digest(self, recipient: str, marker: bytes) -> list[Digest]:
        """Like `find`, hashing each message's content instead of returning it."""
        ...


async def wait_for(
    store: MailStore, recipient: str, marker: bytes, *, count: int = 1, anywhere: bool = False
) -> list[Delivered]:
    """Wait until ``count`` copies marked ``marker`` reached ``recipient``; return them all."""
    found = await _poll(
        lambda: store.find(recipient, marker, anywhere=anywhere), count, recipient, marker
    )
    for message in found:
        missing = _missing_trace(store, message.trace)
        assert not missing, f"trace fields {missing} missing from {message.trace!r}"
    return found


async def wait_for_digest(store: MailStore, recipient: str, marker: bytes) -> Digest:
    """Wait for the one copy marked ``marker`` and hash it (in a thread: it is large)."""

    def digests() -> list[Digest]:
        return store.digest(recipient, marker)

    async def digests_in_thread() -> list[Digest]:
        return await trio.to_thread.run_sync(digests)

    deadline = trio.current_time() + DELIVERY_TIMEOUT
    while True:
        found = await digests_in_thread()
        if found or trio.current_time() > deadline:
            break
        await trio.sleep(_POLL_INTERVAL)
    assert len(found) == 1, f"{len(found)} copies of {marker!r} delivered to {recipient}"
    (digest,) = found
    missing = _missing_trace(store, digest.trace)
    assert not missing, f"trace fields {missing} missing from {digest.trace!r}"
    return digest


async def _poll(
    find: Callable[[], list[Delivered]], count: int, recipient: str, marker: bytes
) -> list[Delivered]:
    deadline = trio.current_time() + DELIVERY_TIMEOUT
    while True:
        found = find()
        if len(found) >= count:
            return found
        if trio.current_time() > deadline:
            raise AssertionError(
                f"{len(found)} of {count} copies of {marker!r} reached {recipient} "
                f"within {DELIVERY_TIMEOUT} s"
            )
        await trio.sleep(_POLL_INTERVAL)


@dataclass
class MaildirStore:
    """Maildirs on disk, one per recipient, as Postfix, Exim and Dovecot write them."""

    #: Recipient address -> the Maildir (the directory holding new/, cur/, tmp/).
    maildirs: dict[str, Path]
    required_trace: frozenset[bytes]
    newline: bytes = b"\n"

    def stored_form(self, sent: bytes) -> bytes:
        return sent.replace(b"\r\n", self.newline)

    def _files(self, recipient: str) -> list[Path]:
        maildir = self.maildirs[recipient]
        files: list[Path] = []
        for sub in ("new", "cur"):
            directory = maildir / sub
            if directory.is_dir():
                files.extend(sorted(path for path in directory.iterdir() if path.is_file()))
        return files

    def _marked(self, recipient: str, marker: bytes, *, anywhere: bool = False) -> list[Path]:
        marked: list[Path] = []
        for path in self._files(recipient):
            with path.open("rb") as stored:
                head = stored.read() if anywhere else stored.read(HEAD_BYTES)
                if _holds(head, marker, self.newline, anywhere=anywhere):
                    marked.append(path)
        return marked

    def find(self, recipient: str, marker: bytes, *, anywhere: bool = False) -> list[Delivered]:
        found: list[Delivered] = []
        for path in self._marked(recipient, marker, anywhere=anywhere):
            data = path.read_bytes()
            trace, end = split_trace(data, self.newline)
            found.append(Delivered(trace, data[end:]))
        return found

    def digest(self, recipient: str, marker: bytes) -> list[Digest]:
        digests: list[Digest] = []
        for path in self._marked(recipient, marker):
            with path.open("rb") as stored:
                head = stored.read(HEAD_BYTES)
                trace, end = split_trace(head, self.newline)
                hasher = hashlib.sha256(head[end:])
                size = len(head) - end
                while chunk := stored.read(1024 * 1024):
                    hasher.update(chunk)
                    size += len(chunk)
            digests.append(Digest(trace, hasher.hexdigest(), size))
        return digests


@dataclass(frozen=True)
class RecordedMessage:
    sender: str
    recipients: tuple[str, ...]
    content: bytes


@dataclass
class RecordingStore:
    """aiosmtpd keeps nothing on disk: its handler records each message here instead."""

    messages: list[RecordedMessage] = field(default_factory=list)
    required_trace: frozenset[bytes] = frozenset()
    newline: bytes = b"\r\n"

    def stored_form(self, sent: bytes) -> bytes:
        return sent

    def _marked(
        self, recipient: str, marker: bytes, *, anywhere: bool = False
    ) -> Sequence[RecordedMessage]:
        # The handler appends from aiosmtpd's thread: iterate over a copy.
        return [
            message
            for message in list(self.messages)
            if recipient in message.recipients
            and _holds(message.content, marker, self.newline, anywhere=anywhere)
        ]

    def find(self, recipient: str, marker: bytes, *, anywhere: bool = False) -> list[Delivered]:
        found: list[Delivered] = []
        for message in self._marked(recipient, marker, anywhere=anywhere):
            trace, end = split_trace(message.content, self.newline)
            found.append(Delivered(trace, message.content[end:]))
        return found

    def digest(self, recipient: str, marker: bytes) -> list[Digest]:
        digests: list[Digest] = []
        for message in self._marked(recipient, marker):
            trace, end = split_trace(message.content, self.newline)
            content = memoryview(message.content)[end:]
            digests.append(Digest(trace, hashlib.sha256(content).hexdigest(), len(content)))
        return digests
