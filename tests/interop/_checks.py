"""Assertions the interop tests share: delivered exactly once, offered as expected, on the wire.

`delivered_once` waits for the copy marked with the message's Message-ID,
lets the server settle (its queue empty, so a late duplicate would have
landed), and compares the stored copy with what was sent, byte for byte
apart from the trace fields. `expect_offer` checks an EHLO keyword against
what the target is configured to offer before a test relies on it either
way. `Wire` reads the client's own debug log, which shows each command
line as written (AUTH payloads masked).
"""

from __future__ import annotations

import logging
import re

import pytest

from trio_smtp import SMTPClient

from ._mailstore import Delivered, wait_for
from ._messages import Sent
from ._targets import Target

#: A whole test, connection to delivery; the 50 MiB tests take their own.
TEST_TIMEOUT = 60

_NEWLINES = re.compile(rb"\r\n|\r|\n")


def canonical(text: bytes) -> bytes:
    """``text`` with every CRLF, bare CR and bare LF as CRLF: what the client must send."""
    return _NEWLINES.sub(b"\r\n", text)


async def delivered_once(target: Target, recipient: str, sent: Sent) -> Delivered:
    """The one stored copy of ``sent`` for ``recipient``, equal to what was sent."""
    await wait_for(target.store, recipient, sent.message_id)
    await target.settled()
    copies = target.store.find(recipient, sent.message_id)
    assert len(copies) == 1, f"{len(copies)} copies of {sent.message_id!r} for {recipient}"
    (copy,) = copies
    assert copy.content == target.store.stored_form(sent.text)
    return copy


async def never_delivered(target: Target, recipient: str, marker: bytes) -> None:
    """Once the server has settled, nothing marked ``marker`` reached ``recipient``."""
    await target.settled()
    assert target.store.find(recipient, marker, anywhere=True) == []


def expect_offer(client: SMTPClient, target: Target, keyword: str) -> bool:
    """Whether ``keyword`` is advertised, after checking that matches the configuration."""
    offered = client.capabilities.has(keyword)
    expected = keyword in target.offers
    assert offered == expected, (
        f"{target.title} {'does not advertise' if expected else 'advertises'} {keyword}: "
        f"{sorted(client.capabilities.keywords)}"
    )
    return offered


class Wire:
    """The client's command lines and the replies it read, from its DEBUG log."""

    def __init__(self, caplog: pytest.LogCaptureFixture) -> None:
        self._caplog = caplog
        caplog.set_level(logging.DEBUG, logger="trio_smtp")

    def _lines(self, direction: str) -> list[str]:
        lines = []
        for record in self._caplog.records:
            message = record.getMessage()
            if record.name == "trio_smtp" and message.startswith(direction + ": "):
                # "C: <peer> <line>": the peer never holds a space.
                lines.append(message.split(" ", 2)[2])
        return lines

    def commands(self, verb: str) -> list[str]:
        """The command lines starting with ``verb`` (for example "MAIL FROM:")."""
        return [line for line in self._lines("C") if line.upper().startswith(verb.upper())]

    def verbs(self) -> list[str]:
        """The first word of every command line, in order."""
        return [line.split(" ", 1)[0].upper() for line in self._lines("C")]

    def sequence(self) -> list[str]:
        """Commands ("C ...") and replies ("S ...") in the order they were logged."""
        ordered = []
        for record in self._caplog.records:
            message = record.getMessage()
            if record.name == "trio_smtp" and message[:3] in ("C: ", "S: "):
                ordered.append(message[0] + " " + message.split(" ", 2)[2])
        return ordered
