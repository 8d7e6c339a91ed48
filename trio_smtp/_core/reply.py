"""SMTP replies: the `Reply` value and the incremental `ReplyParser`.

The parser owns every rule about what a server may send back (RFC 5321 4.2,
RFC 3463 enhanced status codes) and the memory bounds that keep a hostile
server from growing our buffers: it accepts any split of its input, one byte
at a time or many replies per chunk, and either yields replies or raises
`SMTPProtocolError`, nothing else.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass, field

from .errors import SMTPProtocolError

__all__ = [
    "MAX_CHALLENGE_LINE_OCTETS",
    "MAX_REPLY_LINES",
    "MAX_REPLY_LINE_OCTETS",
    "MAX_REPLY_OCTETS",
    "EnhancedStatus",
    "Reply",
    "ReplyParser",
    "escape_text",
]

#: Longest reply line accepted, CRLF excluded. RFC 5321 allows 512; real
#: servers exceed it a little, and CPython tolerates 8192 (SECURITY 22).
MAX_REPLY_LINE_OCTETS = 2048
#: Longest ``334`` line: RFC 4954 4 lets an AUTH challenge carry 12288
#: octets of base64 (SECURITY 35), more than any other reply needs.
MAX_CHALLENGE_LINE_OCTETS = 4 + 12288
#: Largest whole reply (all lines, CRLFs included).
MAX_REPLY_OCTETS = 64 * 1024
#: Most lines one reply may have (SECURITY 23: endless ``250-x``).
MAX_REPLY_LINES = 1000

_ENHANCED = re.compile(rb"([245])\.(\d{1,3})\.(\d{1,3})(?: |$)")

# Single-line replies already parsed, by their line: a server repeats "250
# 2.1.0 Ok" and "354 ..." for every message, and a `Reply` is immutable, so
# a line seen before costs one lookup instead of the checks and the
# enhanced-code match. Bounded in entries and line length; emptied when full.
_SEEN_LINES: dict[bytes, Reply] = {}
_SEEN_LINES_MAX = 256
_SEEN_LINE_OCTETS = 128


def _escape_char(char: str) -> str:
    if char == "\\":
        return "\\\\"
    code = ord(char)
    if 0xDC80 <= code <= 0xDCFF:  # an undecodable byte, via surrogateescape
        return f"\\x{code - 0xDC00:02x}"
    if code <= 0xFF:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}" if code <= 0xFFFF else f"\\U{code:08x}"


def escape_text(raw: bytes) -> str:
    """Render server-supplied bytes as a safe, printable one-line string.

    Invalid UTF-8, control and format characters (bidi overrides, line
    separators) are shown as escapes, so reply text from an untrusted server
    can go into exceptions and logs without spoofing a terminal or a log line
    (SECURITY 8, 27).
    """
    text = raw.decode("utf-8", "surrogateescape")
    if text.isprintable() and "\\" not in text:
        return text
    return "".join(
        char if char.isprintable() and char != "\\" else _escape_char(char) for char in text
    )


@dataclass(frozen=True)
class EnhancedStatus:
    """An RFC 3463 enhanced status code such as ``2.1.0``."""

    class_: int
    subject: int
    detail: int

    def __str__(self) -> str:
        return f"{self.class_}.{self.subject}.{self.detail}"


@functools.lru_cache(maxsize=256)
def _enhanced_status(groups: tuple[bytes, ...]) -> EnhancedStatus:
    # A few dozen codes cover nearly every reply a server sends.
    return EnhancedStatus(*(int(group) for group in groups))


@dataclass(frozen=True)
class Reply:
    """One complete server reply.

    ``lines`` holds the text of each line as the server sent it (bytes, after
    the code and separator, CRLF removed). ``enhanced`` is the enhanced status
    code from the start of the first line, when present and consistent with
    the reply code's class.
    """

    code: int
    lines: tuple[bytes, ...] = (b"",)
    enhanced: EnhancedStatus | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        if self.enhanced is None and self.lines:
            match = _ENHANCED.match(self.lines[0])
            if match and int(match.group(1)) == self.code // 100:
                object.__setattr__(self, "enhanced", _enhanced_status(match.groups()))

    @property
    def is_positive(self) -> bool:
        """2xx: the command succeeded."""
        return 200 <= self.code < 300

    @property
    def is_intermediate(self) -> bool:
        """3xx: the server waits for more (354 for data, 334 for AUTH)."""
        return 300 <= self.code < 400

    @property
    def is_transient(self) -> bool:
        """4xx: a temporary failure; the same request may succeed later."""
        return 400 <= self.code < 500

    @property
    def is_permanent(self) -> bool:
        """5xx: a permanent failure."""
        return 500 <= self.code < 600

    @property
    def text(self) -> str:
        """All lines joined by newlines, escaped for safe display."""
        return "\n".join(escape_text(line) for line in self.lines)

    @property
    def message(self) -> str:
        """The text with the enhanced status code of each line removed, escaped."""
        if self.enhanced is None:
            return self.text
        return "\n".join(escape_text(_ENHANCED.sub(b"", line, count=1)) for line in self.lines)

    def __str__(self) -> str:
        return f"{self.code} " + " / ".join(escape_text(line) for line in self.lines)


class ReplyParser:
    """Incremental parser from received bytes to `Reply` values.

    ``feed(data)`` returns the replies completed by ``data`` (possibly none).
    A protocol violation raises `SMTPProtocolError`; the parser is then broken
    and raises again on every later call, so nothing after a violation is
    ever interpreted.
    """

    def __init__(self) -> None:
        self._buffer = bytearray()
        self._code: bytes | None = None
        self._lines: list[bytes] = []
        self._reply_octets = 0
        self._error: SMTPProtocolError | None = None

    @property
    def pending(self) -> bool:
        """True while part of a reply has been received but not completed."""
        return bool(self._buffer) or self._code is not None

    @property
    def buffered(self) -> bytes:
        """The received bytes not yet consumed by a complete reply line."""
        return bytes(self._buffer)

    def feed(self, data: bytes | bytearray | memoryview) -> list[Reply]:
        """Consume ``data`` and return every reply it completes, in order."""
        replies, error = self.feed_until_error(data)
        if error is not None:
            raise error
        return replies

    def feed_until_error(
        self, data: bytes | bytearray | memoryview
    ) -> tuple[list[Reply], SMTPProtocolError | None]:
        """Like `feed`, but also return the replies completed before a violation.

        A session needs them: a 250 to the end of data followed by garbage in
        the same segment still means the message was accepted.
        """
        if self._error is not None:
            return [], self._error
        replies: list[Reply] = []
        try:
            self._feed(data, replies)
        except SMTPProtocolError as exc:
            self._error = exc
            self._buffer.clear()
            self._lines.clear()
            self._code = None
            return replies, exc
        return replies, None

    def _feed(self, data: bytes | bytearray | memoryview, replies: list[Reply]) -> None:
        buffer = self._buffer
        if not buffer and data[-2:] == b"\r\n":
            # Whole lines with nothing carried over, the usual case: parse
            # them where they are rather than through the buffer.
            self._scan(bytes(data), 0, replies)
            return
        # Only the unscanned tail can hold a new CRLF; remembering where the
        # scan stopped keeps one-byte-at-a-time input linear.
        scan_from = max(len(buffer) - 1, 0)
        buffer += data
        start = self._scan(buffer, scan_from, replies)
        if start:
            del buffer[:start]
        # A line still waiting for its CRLF may hold one CR of that CRLF.
        limit = _line_limit(buffer)
        if len(buffer) > limit + 1:
            raise SMTPProtocolError(f"reply line longer than {limit} octets")
        if self._reply_octets + len(buffer) > MAX_REPLY_OCTETS:
            raise SMTPProtocolError(f"reply longer than {MAX_REPLY_OCTETS} octets")

    def _scan(self, source: bytes | bytearray, scan_from: int, replies: list[Reply]) -> int:
        """Parse each complete line of ``source``; returns where the incomplete rest begins.

        The first CRLF is searched for from ``scan_from`` on: before it, the
        caller has looked already.
        """
        start = 0
        end = source.find(b"\r\n", scan_from)
        while end >= 0:
            reply = self._line(bytes(source[start:end]))
            start = end + 2
            if reply is not None:
                replies.append(reply)
            end = source.find(b"\r\n", start)
        return start

    def _line(self, line: bytes) -> Reply | None:
        if self._code is None:
            seen = _SEEN_LINES.get(line)
            if seen is not None:
                return seen
        limit = _line_limit(line)
        if len(line) > limit:
            raise SMTPProtocolError(f"reply line longer than {limit} octets")
        code = line[:3]
        if len(line) < 3 or not code.isdigit():
            raise SMTPProtocolError(f"malformed reply line: {escape_text(line[:64])!r}")
        # RFC 5321 4.2: first digit 2-5, second 0-5; anything else is not a
        # reply from an SMTP server (SECURITY 25).
        if code[0] not in b"2345" or code[1] not in b"012345":
            raise SMTPProtocolError(f"reply code out of range: {escape_text(code)!r}")
        separator = line[3:4]
        if separator not in (b"", b" ", b"-"):
            raise SMTPProtocolError(f"malformed reply line: {escape_text(line[:64])!r}")
        if self._code is not None and code != self._code:
            raise SMTPProtocolError(
                f"reply code changed inside a multiline reply: "
                f"{escape_text(self._code)} then {escape_text(code)}"
            )
        self._code = code
        self._lines.append(line[4:])
        self._reply_octets += len(line) + 2
        if self._reply_octets > MAX_REPLY_OCTETS:
            raise SMTPProtocolError(f"reply longer than {MAX_REPLY_OCTETS} octets")
        if len(self._lines) > MAX_REPLY_LINES:
            raise SMTPProtocolError(f"reply has more than {MAX_REPLY_LINES} lines")
        if separator == b"-":
            return None
        reply = Reply(int(code), tuple(self._lines))
        if len(self._lines) == 1 and len(line) <= _SEEN_LINE_OCTETS:
            if len(_SEEN_LINES) >= _SEEN_LINES_MAX:
                _SEEN_LINES.clear()
            _SEEN_LINES[line] = reply
        self._code = None
        self._lines = []
        self._reply_octets = 0
        return reply


def _line_limit(line: bytes | bytearray) -> int:
    return MAX_CHALLENGE_LINE_OCTETS if line[:4] == b"334 " else MAX_REPLY_LINE_OCTETS
