"""Fault injection for the test server: where it can be told to misbehave, and how.

This module owns the fault vocabulary: `FaultPoint` (where the server is
about to act), the actions a policy may return (`Reply`, `Drop`, `Delay`,
`DelayThen`) and the small policy builders (`reply_override`, `drop_at`,
`delay`, `combine`). It knows nothing about sockets or SMTP state; the
server asks the policy at each point and carries out the answer.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal, TypeAlias

__all__ = [
    "Action",
    "Delay",
    "DelayThen",
    "Drop",
    "FaultPoint",
    "FaultPolicy",
    "Reply",
    "Stage",
    "combine",
    "delay",
    "drop_at",
    "reply_override",
]

Stage: TypeAlias = Literal["connect", "command", "data_end", "bdat"]


@dataclass(frozen=True)
class FaultPoint:
    """Where the server is about to act.

    ``stage`` is ``"connect"`` (before the greeting), ``"command"`` (a
    command line arrived, before it is carried out), ``"bdat"`` (a non-LAST
    BDAT chunk arrived, before its reply) or ``"data_end"`` (a whole message
    arrived through DATA or BDAT LAST, before its reply). ``verb`` is the
    upper-cased command verb (``"DATA"``/``"BDAT"`` at ``data_end``, None at
    ``connect``); ``line`` is the command line without its CRLF, with AUTH
    payloads redacted. ``message_index`` counts the messages whose content
    reached this server before this point, so at ``data_end`` it is the
    0-based index of the message in hand. In LMTP mode ``data_end`` is asked
    once per accepted recipient, in order, with ``recipient`` set.
    """

    stage: Stage
    verb: str | None
    line: bytes | None
    connection: int
    message_index: int
    recipient: str | None = None


@dataclass(frozen=True)
class Reply:
    """Answer with ``text`` instead of the server's own reply.

    A ``str`` is split on newlines and each line is sent with CRLF; ``bytes``
    go out exactly as given (so a test can send a malformed reply). The
    first three characters are the reply code. A ``421`` reply also closes
    the connection. At the ``command`` stage the overridden command is not
    carried out at all, unless ``perform`` is true: then the command runs as
    usual and only its first reply is replaced (a tampered EHLO list that
    still counts as an EHLO, or extra bytes injected after STARTTLS's 220
    before the handshake); such a reply never closes the connection. At
    ``data_end``/``bdat`` a 2xx reply accepts the message or chunk and
    anything else refuses it.
    """

    text: str | bytes
    perform: bool = False

    def to_wire(self) -> bytes:
        if isinstance(self.text, bytes):
            return self.text
        lines = self.text.replace("\r\n", "\n").split("\n")
        return b"".join(line.encode("utf-8") + b"\r\n" for line in lines)

    @property
    def code(self) -> int | None:
        head = self.to_wire()[:3]
        return int(head) if len(head) == 3 and head.isdigit() else None

    @property
    def positive(self) -> bool:
        code = self.code
        return code is not None and 200 <= code < 300


@dataclass(frozen=True)
class Drop:
    """Close the connection at once, without replying.

    Replies already owed to earlier, fully handled commands are written
    first (they were decided before the fault point), then the transport is
    closed without a TLS close_notify.
    """


@dataclass(frozen=True)
class Delay:
    """Sleep ``seconds`` (trio time, so a MockClock can jump it), then act normally."""

    seconds: float


@dataclass(frozen=True)
class DelayThen:
    """Sleep ``seconds``, then carry out ``action``."""

    seconds: float
    action: Action


Action: TypeAlias = Reply | Drop | Delay | DelayThen
FaultPolicy: TypeAlias = Callable[[FaultPoint], Action | None]


class _Matcher:
    """A policy that answers ``action`` at matching points, ``times`` times after ``skip``.

    Counting lives in the instance, so one policy object is one scripted
    fault; build a new one per server (or per test).
    """

    def __init__(
        self,
        action: Action,
        *,
        stage: Stage,
        verb: str | None,
        recipient: str | None,
        times: int | None,
        skip: int,
    ) -> None:
        if times is not None and times < 0:
            raise ValueError("times must be >= 0 or None")
        if skip < 0:
            raise ValueError("skip must be >= 0")
        self.action = action
        self.stage = stage
        self.verb = verb.upper() if verb is not None else None
        self.recipient = recipient
        self.times = times
        self.skip = skip
        self.fired = 0

    def __call__(self, point: FaultPoint) -> Action | None:
        if point.stage != self.stage:
            return None
        if self.verb is not None and point.verb != self.verb:
            return None
        if self.recipient is not None and (
            point.recipient is None or point.recipient.lower() != self.recipient.lower()
        ):
            return None
        if self.skip > 0:
            self.skip -= 1
            return None
        if self.times is not None and self.fired >= self.times:
            return None
        self.fired += 1
        return self.action

    def __repr__(self) -> str:
        return (
            f"<fault {self.action!r} at {self.stage}/{self.verb or '*'}"
            f" fired {self.fired}/{self.times if self.times is not None else 'inf'}>"
        )


def reply_override(
    verb: str | None,
    reply_text: str | bytes,
    times: int | None = 1,
    *,
    stage: Stage = "command",
    skip: int = 0,
    recipient: str | None = None,
    perform: bool = False,
) -> FaultPolicy:
    """Answer ``verb`` (any verb when None) with ``reply_text`` instead of handling it.

    ``times=None`` overrides every match; ``skip`` lets that many matches
    through first; ``recipient`` narrows an LMTP ``data_end`` override to one
    recipient; ``perform`` carries the command out and replaces only its
    first reply (see `Reply`).
    """
    return _Matcher(
        Reply(reply_text, perform=perform),
        stage=stage,
        verb=verb,
        recipient=recipient,
        times=times,
        skip=skip,
    )


def drop_at(
    stage: Stage,
    verb: str | None = None,
    times: int | None = 1,
    *,
    skip: int = 0,
    recipient: str | None = None,
) -> FaultPolicy:
    """Close the connection without replying at ``stage`` (for ``verb`` when given)."""
    return _Matcher(Drop(), stage=stage, verb=verb, recipient=recipient, times=times, skip=skip)


def delay(
    verb: str | None,
    seconds: float,
    *,
    stage: Stage = "command",
    times: int | None = None,
    skip: int = 0,
) -> FaultPolicy:
    """Sleep ``seconds`` before handling ``verb``; every time unless ``times`` is given."""
    return _Matcher(Delay(seconds), stage=stage, verb=verb, recipient=None, times=times, skip=skip)


def combine(*policies: FaultPolicy | None) -> FaultPolicy:
    """Ask each policy in turn; the first action returned wins.

    Every policy before the winner is asked, so their counters advance as if
    each ran alone; later ones are not asked at that point.
    """
    chosen = [p for p in policies if p is not None]

    def policy(point: FaultPoint) -> Action | None:
        for each in chosen:
            action = each(point)
            if action is not None:
                return action
        return None

    return policy
