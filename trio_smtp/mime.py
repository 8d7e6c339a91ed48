"""The streaming MIME composer: `compose` describes a message, `ComposedMessage` streams it.

This module owns turning a message description (addresses, a subject, text
and HTML bodies, attachments from memory, files or streams) into RFC 5322 /
MIME octets, produced on demand through a `trio.abc.ReceiveStream` that
`SMTPClient.send_mail` reads like any other body.

What the output promises, whatever the input:

- CRLF line ends only, ASCII only, no NUL, every line at most 998 octets
  (body lines at most 76, header lines at most 76 wherever a header can be
  folded): it passes unchanged through DATA dot-stuffing, BDAT and 7-bit
  relays, so the client never needs 8BITMIME for it.
- Memory does not grow with the message: attachments are read in chunks of
  `READ_SIZE` octets and encoded as they are read, and the reader never holds
  more than about one encoded chunk ahead of its consumer.
- `ComposedMessage.length` is the exact number of octets the stream yields,
  known before the first read whenever every part's size is known, so the
  client can declare ``SIZE=``.
- Header injection is impossible (SECURITY 20): CR, LF, NUL or any other
  line break (those `str.splitlines` knows) in a subject, display name,
  filename or header value is refused with `InvalidInputError` when the
  message is composed, before any octet exists; everything else that is not
  plain printable ASCII is encoded (RFC 2047, RFC 2231).
- Boundaries begin with ``=_``, a sequence that base64 and quoted-printable
  output never contains and 7bit parts are checked for, so a boundary cannot
  collide with content.
"""

from __future__ import annotations

import binascii
import collections
import mimetypes
import os
import re
import secrets
import stat
import struct
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from email.headerregistry import Address
from email.utils import format_datetime, make_msgid
from typing import TYPE_CHECKING, Literal, Protocol

import trio

from ._core.address import ForwardPath
from ._core.errors import InvalidInputError

if TYPE_CHECKING:
    from io import BufferedReader

    from trio._file_io import AsyncIOWrapper

__all__ = [
    "READ_SIZE",
    "Attachment",
    "AttachmentSource",
    "ComposedMessage",
    "MailboxLike",
    "SourceSizeError",
    "compose",
]

#: Octets read from an attachment's file or stream at a time: 4598 whole
#: base64 lines (57 octets each), just under 256 KiB.
READ_SIZE = 57 * 4598

#: A mailbox for From, To, Cc and Reply-To: ``"addr@example.com"``, a
#: ``(display_name, address)`` pair, or an `email.headerregistry.Address`.
MailboxLike = str | tuple[str, str] | Address

#: What an `Attachment` reads: a path, bytes-like data, or a stream.
AttachmentSource = str | os.PathLike[str] | bytes | bytearray | memoryview | trio.abc.ReceiveStream

# Octets of input per 76-column base64 line.
_B64_LINE_INPUT = 57
_B64_BLOCK_LINES = READ_SIZE // _B64_LINE_INPUT
# One struct call splits a whole block of encoded text into its lines, far
# faster than slicing line by line in Python.
_B64_BLOCK_SPLIT = struct.Struct("76s" * _B64_BLOCK_LINES)

# RFC 2045 6.7 (5): encoded lines at most 76 characters, soft break included.
_QP_LINE = 76
# The longest unterminated line held back while waiting for its CRLF; a
# longer one is emitted in soft-broken pieces so memory stays bounded.
_QP_HOLD = READ_SIZE

# Header lines are folded to this width (RFC 2047 2 caps lines holding
# encoded-words at 76; RFC 5322 2.1.1 asks for 78).
_FOLD_WIDTH = 76
# RFC 5322 2.1.1: the hard limit on any line, CRLF excluded.
_MAX_LINE = 998

_ATEXT = "A-Za-z0-9!#$%&'*+/=?^_`{|}~-"
_ATOM_PHRASE = re.compile(rf"[{_ATEXT}]+(?: [{_ATEXT}]+)*")
_PRINTABLE = re.compile(r"[\x20-\x7e]*")
_UNSTRUCTURED_PLAIN = re.compile(r"[\x21-\x7e](?:[\t\x20-\x7e]*[\x21-\x7e])?")
_UNSTRUCTURED_WORD = re.compile(r"[ \t]*[^ \t]+")
_WHITESPACE = re.compile(r"[ \t]+")
# NUL, CR, LF, and everything else `str.splitlines` breaks lines at: encoded,
# they would be safe on the wire, but a reader that decodes them (Python's
# email package among them) could see a line break in a header again.
_LINE_BREAKING = re.compile("[\x00\r\n\x0b\x0c\x1c-\x1e\x85\u2028\u2029]")
# RFC 5322 3.6.8 field name: printable ASCII except ":".
_FIELD_NAME = re.compile(r"[\x21-\x39\x3b-\x7e]+")
# RFC 2045 5.1 token.
_TOKEN = r"[!#$%&'*+.^_`|~0-9A-Za-z-]+"
_CONTENT_TYPE = re.compile(rf"\s*({_TOKEN})/({_TOKEN})\s*((?:;.*)?)", re.DOTALL)
_PARAMETER = re.compile(
    rf'\s*;\s*({_TOKEN})=({_TOKEN}|"(?:[\x20\x21\x23-\x5b\x5d-\x7e]|\\[\x20-\x7e])*")\s*'
)
# RFC 2392 Content-ID, as an RFC 5322 msg-id without its brackets.
_MSG_ID_PART = rf"[{_ATEXT}]+(?:\.[{_ATEXT}]+)*"
_ID_RIGHT = rf"(?:{_MSG_ID_PART}|\[[\x21-\x5a\x5e-\x7e]*\])"
_MSG_ID = re.compile(rf"{_MSG_ID_PART}@{_ID_RIGHT}")
_CONTENT_ID = re.compile(rf"{_MSG_ID_PART}(?:@{_ID_RIGHT})?")
# RFC 2231 attribute-char that stays literal in an extended parameter value.
_RFC2231_SAFE = frozenset(
    b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~!$&+^`|"
)
_QUOTED_PARAM_ROOM = 64
# Headers the composer writes itself; a caller's copy would duplicate or
# contradict them. Bcc never appears: it belongs to the envelope only.
_RESERVED_HEADERS = frozenset(
    {
        "bcc",
        "cc",
        "content-disposition",
        "content-id",
        "content-transfer-encoding",
        "content-type",
        "date",
        "from",
        "message-id",
        "mime-version",
        "reply-to",
        "subject",
        "to",
    }
)
# Compressed files that mimetypes reports as an encoding of another type.
_COMPRESSION_TYPES = {
    "gzip": "application/gzip",
    "bzip2": "application/x-bzip2",
    "xz": "application/x-xz",
    "compress": "application/x-compress",
    "br": "application/x-brotli",
}


class SourceSizeError(InvalidInputError):
    """An attachment's file or stream did not hold the number of octets it should.

    Raised while the message is being read, when a file changed size between
    `compose` and the read, or a stream given with ``size=`` ended early or
    went on past it. The octets already produced cannot be taken back, so
    the message must not be delivered: `SMTPClient.send_mail` closes the
    connection instead of ending the data when its body raises.
    """


# -- validation --------------------------------------------------------------


def _check_text(value: object, what: str) -> str:
    """``value`` as a str safe to place in a header: no NUL and no line break
    of any kind (SECURITY 20)."""
    if not isinstance(value, str):
        raise InvalidInputError(f"{what} must be a str, not {type(value).__name__}")
    bad = _LINE_BREAKING.search(value)
    if bad is not None:
        raise InvalidInputError(f"{what} contains {bad[0]!r}, a line break or NUL: {value!r}")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise InvalidInputError(f"{what} is not encodable as UTF-8: {value!r}") from exc
    return value


def _check_body_text(value: object, what: str) -> bytes:
    if not isinstance(value, str):
        raise InvalidInputError(f"{what} must be a str, not {type(value).__name__}")
    try:
        return value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise InvalidInputError(f"{what} is not encodable as UTF-8") from exc


@dataclass(frozen=True)
class _Mailbox:
    name: str
    address: str


def _mailbox(value: object, what: str) -> _Mailbox:
    name: object
    if isinstance(value, Address):
        name, address = value.display_name, value.addr_spec
    elif isinstance(value, tuple) and len(value) == 2:
        name, address = value
    elif isinstance(value, str):
        name, address = "", value
    else:
        raise InvalidInputError(
            f"{what} must be an address, a (display name, address) pair or an "
            f"email.headerregistry.Address, not {value!r}"
        )
    # Whitespace in a phrase is not significant (RFC 5322 3.2.2): runs of it
    # become one space, so every reader shows the same name.
    name = " ".join(_WHITESPACE.split(_check_text(name, f"{what} display name").strip(" \t")))
    if not isinstance(address, str):
        raise InvalidInputError(f"{what} address must be a str, not {type(address).__name__}")
    path = ForwardPath(address)
    if "@" not in path.address:
        raise InvalidInputError(f"{what} {address!r} is not an address (no @domain)")
    if path.needs_smtputf8:
        # Non-ASCII addresses need raw UTF-8 headers (RFC 6532); the composer
        # promises 7-bit output, so they are refused rather than mangled.
        raise InvalidInputError(
            f"{what} {address!r} is not ASCII; the composer writes 7-bit headers only"
        )
    return _Mailbox(name, path.address)


def _mailboxes(value: object, what: str) -> list[_Mailbox]:
    if value is None:
        return []
    if isinstance(value, (str, Address)):
        return [_mailbox(value, what)]
    if not isinstance(value, Iterable):
        raise InvalidInputError(f"{what} must be an address or a sequence of addresses")
    # A bare tuple is a sequence of addresses, like a list: ("Bob", "b@x")
    # fails loudly ("Bob" is no address) rather than being guessed at.
    return [_mailbox(item, what) for item in value]


def _strip_brackets(value: str) -> str:
    """An identifier without its one pair of angle brackets, if it has them."""
    if value.startswith("<") and value.endswith(">"):
        return value[1:-1]
    return value


def _content_type(value: str, what: str) -> tuple[str, list[str]]:
    """Split a content type into ``type/subtype`` (lower case) and its parameters, verbatim."""
    _check_text(value, what)
    match = _CONTENT_TYPE.fullmatch(value)
    if match is None:
        raise InvalidInputError(f"{what} {value!r} is not a type/subtype")
    kind = f"{match[1]}/{match[2]}".lower()
    rest = match[3]
    params: list[str] = []
    position = 0
    while position < len(rest):
        param = _PARAMETER.match(rest, position)
        if param is None:
            raise InvalidInputError(f"{what} {value!r} has a malformed parameter")
        params.append(f"{param[1]}={param[2]}")
        position = param.end()
    return kind, params


# -- header encoding -----------------------------------------------------------


def _header(name: str, words: Sequence[str]) -> bytes:
    """One header field, folded before words so lines stay within `_FOLD_WIDTH`.

    Each word carries its own leading whitespace, which is where a fold may
    go (RFC 5322 2.2.3), so unfolding restores the value exactly.
    """
    lines: list[str] = []
    line = name + ":"
    has_word = False
    for word in words:
        if has_word and len(line) + len(word) > _FOLD_WIDTH:
            lines.append(line)
            line = word
        else:
            line += word
        has_word = True
    lines.append(line)
    for folded in lines:
        if len(folded) > _MAX_LINE:
            raise InvalidInputError(f"the {name} header has a line over {_MAX_LINE} characters")
    return ("\r\n".join(lines) + "\r\n").encode("ascii")


def _encoded_words(text: str, first_room: int, room: int) -> list[str]:
    """RFC 2047 "B" encoded-words for ``text``: the first at most ``first_room``
    characters long, the others ``room``; a character is never split across
    two words (RFC 2047 5 (3))."""

    def capacity(width: int) -> int:
        # Octets whose base64 fits the room left after "=?utf-8?b?" and "?=";
        # at least 4, so that any one character fits.
        return max((width - 12) // 4 * 3, 4)

    words: list[str] = []
    budget = capacity(first_room)
    chunk = bytearray()
    for char in text:
        octets = char.encode("utf-8")
        if chunk and len(chunk) + len(octets) > budget:
            words.append(_encoded_word(chunk))
            chunk = bytearray()
            budget = capacity(room)
        chunk += octets
    if chunk:
        words.append(_encoded_word(chunk))
    return words


def _encoded_word(octets: bytes | bytearray) -> str:
    return "=?utf-8?b?" + binascii.b2a_base64(octets, newline=False).decode("ascii") + "?="


def _unstructured_words(name: str, value: str) -> list[str]:
    """Words for an unstructured field (Subject, a caller's header): plain when
    that reads back exactly, else encoded-words throughout."""
    if not value:
        return []
    if _UNSTRUCTURED_PLAIN.fullmatch(value) and "=?" not in value:
        words: list[str] = _UNSTRUCTURED_WORD.findall(value)
        words[0] = " " + words[0]
        # Folding happens between words only, so each must fit on a line.
        if len(name) + 1 + max(map(len, words)) <= _MAX_LINE:
            return words
    # Leading, trailing or control characters, non-ASCII text, or a literal
    # "=?" that a reader would try to decode: encode all of it, so that what
    # the recipient sees is exactly the value.
    first_room = _FOLD_WIDTH - len(name) - 2
    if first_room < 16:
        first_room = _FOLD_WIDTH - 1
    return [" " + word for word in _encoded_words(value, first_room, _FOLD_WIDTH - 1)]


def _phrase_words(name: str) -> list[str]:
    """Words for a display name (already whitespace-normalised, non-empty).

    Printable ASCII stays readable: atoms as they are, anything else as one
    quoted string, folded at its spaces. Otherwise the words that are not
    atoms are encoded, each run of them as few encoded-words as fit, with the
    atoms between runs left plain. Two encoded-words are adjacent only when a
    single run is too long for one: RFC 2047 6.2 decoders then join them,
    but Python's structured-header parser wrongly keeps a space there.
    """
    words = name.split(" ")
    plain_ok = "=?" not in name and max(map(len, words)) <= _MAX_LINE - 100
    if plain_ok and _ATOM_PHRASE.fullmatch(name):
        return [" " + word for word in words]
    if plain_ok and _PRINTABLE.fullmatch(name):
        escaped = name.replace("\\", "\\\\").replace('"', '\\"').split(" ")
        escaped[0] = '"' + escaped[0]
        escaped[-1] += '"'
        return [" " + word for word in escaped]
    out: list[str] = []
    run: list[str] = []
    # Every encoded-word fits after "Reply-To: " and on a continuation line.
    room = _FOLD_WIDTH - len("Reply-To: ")
    for word in [*words, None]:
        if word is not None and ("=?" in word or not _ATOM_PHRASE.fullmatch(word)):
            run.append(word)
            continue
        if run:
            out.extend(" " + ew for ew in _encoded_words(" ".join(run), room, room))
            run = []
        if word is not None:
            out.append(" " + word)
    return out


def _address_words(mailboxes: Sequence[_Mailbox]) -> list[str]:
    words: list[str] = []
    for index, mailbox in enumerate(mailboxes):
        if index:
            words[-1] += ","
        if mailbox.name:
            words.extend(_phrase_words(mailbox.name))
            words.append(f" <{mailbox.address}>")
        else:
            words.append(" " + mailbox.address)
    return words


def _parameter(attribute: str, value: str) -> list[str]:
    """``attribute=value`` as one quoted parameter, or RFC 2231 extended
    segments (``attribute*0*=utf-8''...``) when the value is not short
    printable ASCII; segments never split a character."""
    quoted = f'{attribute}="{value}"'
    if (
        _PRINTABLE.fullmatch(value)
        and '"' not in value
        and "\\" not in value
        and "=?" not in value
        and len(quoted) <= _QUOTED_PARAM_ROOM
    ):
        return [quoted]
    encoded = [
        "".join(chr(octet) if octet in _RFC2231_SAFE else f"%{octet:02X}" for octet in c.encode())
        for c in value
    ]
    single = f"{attribute}*=utf-8''" + "".join(encoded)
    if len(single) <= _QUOTED_PARAM_ROOM:
        return [single]
    segments: list[str] = []
    current = f"{attribute}*0*=utf-8''"
    fresh = True
    for piece in encoded:
        if not fresh and len(current) + len(piece) > _QUOTED_PARAM_ROOM:
            segments.append(current)
            current = f"{attribute}*{len(segments)}*="
            fresh = True
        current += piece
        fresh = False
    segments.append(current)
    return segments


def _structured_header(name: str, value: str, parameters: Sequence[str]) -> bytes:
    """``name: value; p1; p2`` with a possible fold before each parameter."""
    words = [" " + value] + [" " + parameter for parameter in parameters]
    for index in range(len(words) - 1):
        words[index] += ";"
    return _header(name, words)


# -- body encoders ---------------------------------------------------------------


class _Encoder(Protocol):
    def feed(self, data: bytes) -> bytes: ...

    def finish(self) -> bytes: ...


class _Base64Encoder:
    """Base64 in 76-column lines joined by CRLF (RFC 2045 6.8), fed in any chunks.

    Input that does not fill a whole line (under 57 octets) waits for the next
    chunk, so line breaks fall where a one-shot encoding would put them. No
    CRLF follows the last line: the delimiter after the part supplies it.
    """

    def __init__(self) -> None:
        self._carry = b""
        self._started = False

    def feed(self, data: bytes) -> bytes:
        if self._carry:
            data = self._carry + data
        whole = len(data) - len(data) % _B64_LINE_INPUT
        self._carry = data[whole:]
        if not whole:
            return b""
        with memoryview(data) as view:
            return self._lines(view[:whole])

    def finish(self) -> bytes:
        carry, self._carry = self._carry, b""
        if not carry:
            return b""
        return self._lines(memoryview(carry))

    def _lines(self, view: memoryview) -> bytes:
        encoded = binascii.b2a_base64(view, newline=False)
        if len(encoded) == _B64_BLOCK_SPLIT.size:
            lines: Sequence[bytes | memoryview] = _B64_BLOCK_SPLIT.unpack(encoded)
        else:
            whole = memoryview(encoded)
            lines = [whole[start : start + 76] for start in range(0, len(encoded), 76)]
        if self._started:
            return b"\r\n".join((b"", *lines))
        self._started = True
        return b"\r\n".join(lines)


def _base64_length(size: int) -> int:
    """Octets `_Base64Encoder` produces for ``size`` octets of input."""
    if size <= 0:
        return 0
    lines = -(-size // _B64_LINE_INPUT)
    return 4 * -(-size // 3) + 2 * (lines - 1)


class _QuotedPrintableEncoder:
    """Quoted-printable (RFC 2045 6.7), fed in any chunks.

    A CRLF in the input is a hard line break; any other CR or LF, every octet
    outside printable ASCII, and "=", become ``=XX``; a space or tab that
    ends a line becomes ``=20`` / ``=09``; soft breaks keep every line within
    76 columns. A line is encoded once its CRLF has arrived (or the input
    ends), because how its last octets are written depends on what follows
    them; a line longer than `_QP_HOLD` is emitted early in soft-broken pieces.
    The output after `finish` ends without CRLF unless the input did.
    """

    def __init__(self) -> None:
        self._pending = b""

    def feed(self, data: bytes) -> bytes:
        data = self._pending + data if self._pending else bytes(data)
        out = b""
        end = data.rfind(b"\r\n")
        if end >= 0:
            out = _qp_lines(data[:end]) + b"\r\n"
            data = data[end + 2 :]
        if len(data) > _QP_HOLD:
            # Keep a trailing CR back: it may be the first half of a CRLF.
            cut = len(data) - 1 if data.endswith(b"\r") else len(data)
            out += _qp_wrap(_qp_escape(data[:cut]), final=False)
            data = data[cut:]
        self._pending = data
        return out

    def finish(self) -> bytes:
        pending, self._pending = self._pending, b""
        return _qp_wrap(_qp_escape(pending), final=True)


def _qp_escape(data: bytes) -> bytes:
    """``data`` with every octet that needs it written ``=XX``, in one line.

    b2a_qp does the escaping in C, including CR and LF (binary mode) and
    whitespace at the very end; its own soft breaks (bare LF, or CRLF when
    it spots CRLF in the input) are removed: the callers cut lines themselves.
    A raw CR or LF never survives escaping, so only soft breaks match.

    b2a_qp also writes a "." that starts one of its own lines and ends the
    line or the data as "=2E". Its lines are not ours, so that depended on
    where a chunk began; it is undone (a literal "=" is "=3D", so "=2E" is
    only ever that dot). A line of one dot is the transport's business: SMTP
    dot-stuffs it.
    """
    escaped = binascii.b2a_qp(data, quotetabs=False, istext=False, header=False)
    return escaped.replace(b"=\r\n", b"").replace(b"=\n", b"").replace(b"=2E", b".")


def _qp_lines(block: bytes) -> bytes:
    """Complete lines (CRLF between them, none after the last) as quoted-printable.

    The block is escaped in one call; "=0D=0A" in the result can only be an
    input CRLF (a literal "=" is "=3D"), so splitting there yields the lines.
    Only long lines, and lines ending in whitespace, need more work.
    """
    lines = _qp_escape(block).split(b"=0D=0A")
    for index, line in enumerate(lines):
        if len(line) > _QP_LINE or line.endswith((b" ", b"\t")):
            lines[index] = _qp_wrap(line, final=True)
    return b"\r\n".join(lines)


def _qp_wrap(escaped: bytes, *, final: bool) -> bytes:
    """One escaped line cut into lines of at most 76 columns by soft breaks.

    ``final``: the line really ends here, so trailing whitespace is encoded
    and the last piece may use all 76 columns, with no line end added.
    Otherwise it is a piece of a longer line, and ends with a soft break.
    """
    if not escaped:
        return b""
    if final and escaped.endswith((b" ", b"\t")):
        escaped = escaped[:-1] + (b"=20" if escaped.endswith(b" ") else b"=09")
    last_room = _QP_LINE if final else _QP_LINE - 1
    if len(escaped) <= last_room:
        return escaped if final else escaped + b"=\r\n"
    pieces: list[bytes] = []
    start = 0
    size = len(escaped)
    rfind = escaped.rfind
    while size - start > last_room:
        end = start + _QP_LINE - 1
        # Never cut through an "=XX" triplet: any "=" in the escaped text
        # starts one, so look for one in the last two columns.
        equals = rfind(b"=", end - 2, end)
        if equals >= 0:
            end = equals
        pieces.append(escaped[start:end])
        start = end
    pieces.append(escaped[start:] if final else escaped[start:] + b"=")
    joined = b"=\r\n".join(pieces)
    return joined if final else joined + b"\r\n"


class _TextLineEnds:
    """CRLF, a lone CR and a lone LF all become CRLF, across chunk boundaries."""

    def __init__(self) -> None:
        self._held_cr = False

    def feed(self, data: bytes) -> bytes:
        if self._held_cr:
            data = b"\r" + data
        self._held_cr = data.endswith(b"\r")
        if self._held_cr:
            data = data[:-1]
        return data.replace(b"\r\n", b"\n").replace(b"\r", b"\n").replace(b"\n", b"\r\n")

    def finish(self) -> bytes:
        held, self._held_cr = self._held_cr, False
        return b"\r\n" if held else b""


class _TextQuotedPrintable:
    """Text-mode quoted-printable: line ends canonicalised, then encoded."""

    def __init__(self) -> None:
        self._line_ends = _TextLineEnds()
        self._encoder = _QuotedPrintableEncoder()

    def feed(self, data: bytes) -> bytes:
        return self._encoder.feed(self._line_ends.feed(data))

    def finish(self) -> bytes:
        return self._encoder.feed(self._line_ends.finish()) + self._encoder.finish()


# -- sources and segments ----------------------------------------------------------


class _Source(Protocol):
    async def read(self) -> bytes: ...

    async def aclose(self) -> None: ...


class _BytesSource:
    def __init__(self, data: bytes) -> None:
        self._data = data
        self._offset = 0

    async def read(self) -> bytes:
        start = self._offset
        self._offset = start + READ_SIZE
        return self._data[start : start + READ_SIZE]

    async def aclose(self) -> None:
        self._data = b""


class _PathSource:
    """A file read through trio's async file API; its size is checked against
    the size seen by `compose`, before and after reading."""

    def __init__(self, path: str, size: int | None, label: str, *, check_stat: bool) -> None:
        self._path = path
        self._remaining = size
        self._label = label
        self._file: AsyncIOWrapper[BufferedReader] | None = None
        self._checked = size is None or not check_stat
        self._done = False

    async def read(self) -> bytes:
        # Every step records its effect before the next await, so a read
        # cancelled part way can simply be retried.
        if self._done:
            return b""
        if self._file is None:
            self._file = await trio.open_file(self._path, "rb")
        file = self._file
        if not self._checked:
            info = await trio.to_thread.run_sync(os.fstat, file.fileno())
            if info.st_size != self._remaining:
                raise SourceSizeError(
                    f"{self._label} changed size since the message was composed "
                    f"({self._remaining} -> {info.st_size} octets)"
                )
            self._checked = True
        remaining = self._remaining
        want = READ_SIZE if remaining is None else min(READ_SIZE, remaining) or 1
        data = await file.read(want)
        if remaining is not None:
            if remaining == 0 and data:
                raise SourceSizeError(f"{self._label} grew while the message was being read")
            if remaining and not data:
                raise SourceSizeError(f"{self._label} shrank while the message was being read")
            self._remaining = remaining - len(data)
        if not data:
            self._done = True
            await self.aclose()
        return data

    async def aclose(self) -> None:
        file, self._file = self._file, None
        self._done = True
        if file is not None:
            await file.aclose()


class _StreamSource:
    """A caller's stream, owned from `compose` on: closed at its end or by
    `ComposedMessage.aclose`. With a declared size, the stream must end
    exactly there."""

    def __init__(self, stream: trio.abc.ReceiveStream, size: int | None, label: str) -> None:
        self._stream = stream
        self._size = size
        self._remaining = size
        self._label = label
        self._done = False
        self._closed = False

    async def read(self) -> bytes:
        if self._done:
            return b""
        remaining = self._remaining
        if remaining is None:
            data = await self._stream.receive_some(READ_SIZE)
        else:
            # Once the declared size is in, one more read must find the end.
            data = await self._stream.receive_some(min(READ_SIZE, remaining) or 1)
            if len(data) > remaining:
                raise SourceSizeError(f"{self._label} went on past its size={self._size}")
            if remaining and not data:
                raise SourceSizeError(
                    f"{self._label} ended {remaining} octets short of its size={self._size}"
                )
            self._remaining = remaining - len(data)
        if not data:
            self._done = True
            await self.aclose()
            return b""
        return bytes(data)

    async def aclose(self) -> None:
        self._done = True
        if not self._closed:
            self._closed = True
            await self._stream.aclose()


class _Segment(Protocol):
    """A piece of the output: `read` returns the next octets, b"" once done."""

    @property
    def length(self) -> int | None: ...

    @property
    def wire_safe(self) -> bool:
        """Whether every read keeps `DotStuffer.feed_wire_safe`'s promise."""

    async def read(self) -> bytes: ...

    async def aclose(self) -> None: ...


class _Static:
    """Octets that are already known: headers, delimiters, encoded text."""

    # Headers and text come (partly) from the caller: always checked in full.
    wire_safe = False

    def __init__(self, data: bytes) -> None:
        self._data = data
        self.length: int | None = len(data)

    async def read(self) -> bytes:
        data, self._data = self._data, b""
        return data

    async def aclose(self) -> None:
        self._data = b""


class _Encoded:
    """A source's octets through an encoder; ``length`` is None when unknown."""

    def __init__(self, source: _Source, encoder: _Encoder, length: int | None) -> None:
        self._source = source
        self._encoder = encoder
        self.length = length
        # Base64 lines hold only the base64 alphabet and the CRLFs put between
        # them here, whatever the attachment's octets; quoted-printable text
        # keeps the caller's line structure, so it is checked in full.
        self.wire_safe = isinstance(encoder, _Base64Encoder)
        self._finished = False

    async def read(self) -> bytes:
        while not self._finished:
            raw = await self._source.read()
            if raw:
                out = self._encoder.feed(raw)
            else:
                self._finished = True
                out = self._encoder.finish()
            if out:
                return out
        return b""

    async def aclose(self) -> None:
        await self._source.aclose()


# -- the product ---------------------------------------------------------------


class ComposedMessage(trio.abc.ReceiveStream):
    """A composed message, produced as it is read; made by `compose`.

    Pass it as the body of `SMTPClient.send_mail`, or read it yourself with
    `receive_some`. It is single-use: once read to the end, `receive_some`
    returns ``b""``. Use it as an async context manager (or call `aclose`)
    so that attachment files and streams are closed even when it is not
    read to the end; each source is also closed as soon as it is used up.

    Reading raises `SourceSizeError` when an attachment's file or stream
    does not hold the octets it was composed with; after any such failure
    every later read raises `trio.BrokenResourceError`.
    """

    def __init__(
        self,
        segments: Sequence[_Segment],
        *,
        message_id: str,
        envelope_sender: str = "",
        envelope_recipients: tuple[str, ...] = (),
    ) -> None:
        """Use `compose`; the segments are an implementation detail."""
        #: The From address: `SMTPClient.send_message`'s default envelope sender.
        self.envelope_sender = envelope_sender
        #: The To and Cc addresses, in order: `send_message`'s default recipients.
        self.envelope_recipients = envelope_recipients
        self._segments: collections.deque[_Segment] = collections.deque(segments)
        self._owned: list[_Segment] = list(segments)
        lengths = [segment.length for segment in segments]
        self._length = None if None in lengths else sum(n for n in lengths if n is not None)
        self._message_id = message_id
        self._pending = b""
        self._pending_safe = False
        self._offset = 0
        self._reading = False
        self._closed = False
        self._failure: Exception | None = None

    @property
    def length(self) -> int | None:
        """The exact number of octets the stream yields in total.

        None when some attachment's size is unknown until it has been read
        (a stream given without ``size=``, or a text attachment encoded as
        quoted-printable from a file or stream).
        """
        return self._length

    @property
    def message_id(self) -> str:
        """The Message-ID header's value, angle brackets included."""
        return self._message_id

    async def receive_some(self, max_bytes: int | None = None) -> bytes:
        """Return the next octets of the message, at most ``max_bytes`` of them.

        Returns ``b""`` at the end, and again on every later call. Without
        ``max_bytes``, returns the next piece as it was produced: an encoded
        chunk of an attachment (about 350 KiB), or a run of headers and text.
        """
        chunk, _ = await self._receive(max_bytes)
        return chunk

    async def _receive(self, max_bytes: int | None) -> tuple[bytes, bool]:
        """`receive_some`, and whether the chunk is all base64 lines.

        The flag tells the client it may send the chunk through
        `DotStuffer.feed_wire_safe` (``trio_smtp._body``).
        """
        if max_bytes is not None and max_bytes < 1:
            raise ValueError("max_bytes must be >= 1")
        if self._reading:
            raise trio.BusyResourceError("another task is already reading this message")
        self._reading = True
        try:
            await trio.lowlevel.checkpoint()
            if self._closed:
                raise trio.ClosedResourceError("the message was closed")
            if self._failure is not None:
                raise trio.BrokenResourceError(
                    "an earlier read of this message failed"
                ) from self._failure
            while self._offset >= len(self._pending):
                if not self._segments:
                    return b"", False
                segment = self._segments[0]
                try:
                    data = await segment.read()
                except Exception as exc:
                    self._failure = exc
                    raise
                if data:
                    self._pending, self._offset = data, 0
                    self._pending_safe = segment.wire_safe
                else:
                    self._segments.popleft()
            start = self._offset
            end = len(self._pending) if max_bytes is None else start + max_bytes
            if start == 0 and end >= len(self._pending):
                chunk = self._pending
                self._pending = b""
                self._offset = 0
                return chunk, self._pending_safe
            chunk = self._pending[start:end]
            self._offset = start + len(chunk)
            return chunk, self._pending_safe
        finally:
            self._reading = False

    async def aclose(self) -> None:
        """Close every attachment file and stream not yet closed; idempotent."""
        self._closed = True
        self._segments.clear()
        self._pending = b""
        owned, self._owned = self._owned, []
        failure: BaseException | None = None
        for segment in owned:
            try:
                await segment.aclose()
            except BaseException as exc:
                failure = failure or exc
        if failure is not None:
            raise failure
        await trio.lowlevel.checkpoint()


# -- attachments -------------------------------------------------------------------


class Attachment:
    """One attachment: its octets' source and how it is labelled.

    ``source`` is a path (`str` or `os.PathLike`; the file is opened when the
    message is read, and its size is taken by `compose`), bytes-like data
    (copied unless it is `bytes`), or a `trio.abc.ReceiveStream`, which the
    composed message then owns and closes. A stream can be composed once.

    - ``filename``: the name the recipient sees; defaults to the path's last
      component, and to none for data and streams. Any Unicode is fine (RFC
      2231 encoding) except line breaks and NUL, which are refused.
    - ``content_type``: ``type/subtype`` with optional parameters
      (``"text/csv; charset=utf-8"``); guessed from the filename when None,
      else ``application/octet-stream``. ``multipart/*`` and ``message/*``
      are refused: they cannot be base64-encoded (RFC 2046 5.2.1).
    - ``size``: the octet count of a stream source, which lets the message
      know its `ComposedMessage.length` in advance; the stream must then
      yield exactly that many octets. For data it must match ``len``; for a
      path it is checked against the file.
    - ``inline``: ``Content-Disposition: inline`` rather than ``attachment``.
    - ``content_id``: a Content-ID (``"logo@example.com"`` or ``"logo"``),
      for HTML that refers to ``cid:logo``. When the message has HTML,
      attachments with a content_id go into a ``multipart/related`` part
      with it (RFC 2387).
    - ``encoding``: ``"base64"`` (the default, exact for any octets) or
      ``"quoted-printable"`` for ``text/*`` attachments that should stay
      readable; that treats the content as text, so its line ends arrive as
      CRLF, and a path or stream source then has no length in advance.
    """

    __slots__ = (
        "_claimed",
        "content_id",
        "content_type",
        "encoding",
        "filename",
        "inline",
        "size",
        "source",
    )

    def __init__(
        self,
        source: AttachmentSource,
        *,
        filename: str | None = None,
        content_type: str | None = None,
        size: int | None = None,
        inline: bool = False,
        content_id: str | None = None,
        encoding: Literal["base64", "quoted-printable"] = "base64",
    ) -> None:
        if size is not None and (not isinstance(size, int) or isinstance(size, bool) or size < 0):
            raise InvalidInputError(f"size must be a non-negative int, not {size!r}")
        stored: str | bytes | trio.abc.ReceiveStream
        if isinstance(source, trio.abc.ReceiveStream):
            stored = source
        elif isinstance(source, (bytes, bytearray, memoryview)):
            stored = bytes(source)
            if size is not None and size != len(stored):
                raise InvalidInputError(f"size={size} but the data holds {len(stored)} octets")
            size = len(stored)
        elif isinstance(source, (str, os.PathLike)):
            stored = os.fspath(source)
            if not isinstance(stored, str) or not stored:
                raise InvalidInputError(f"an attachment path must be a non-empty str: {source!r}")
            if filename is None:
                filename = os.path.basename(stored) or None
        else:
            raise InvalidInputError(
                "an attachment source must be a path, bytes or a trio.abc.ReceiveStream, "
                f"not {type(source).__name__}"
            )
        if filename is not None:
            _check_text(filename, "filename")
            if not filename:
                raise InvalidInputError("filename must not be empty (pass None for no name)")
        if content_type is None:
            content_type = _guess_type(filename)
        else:
            kind, _ = _content_type(content_type, "content_type")
            if kind.startswith(("multipart/", "message/")):
                raise InvalidInputError(
                    f"content_type {kind} cannot be base64-encoded (RFC 2046 5.2.1); "
                    "attach it as application/octet-stream"
                )
        if encoding not in ("base64", "quoted-printable"):
            raise InvalidInputError(f"encoding must be base64 or quoted-printable: {encoding!r}")
        if encoding == "quoted-printable" and not content_type.lower().lstrip().startswith("text/"):
            raise InvalidInputError("quoted-printable is for text/* attachments only")
        if content_id is not None:
            bare = _strip_brackets(_check_text(content_id, "content_id"))
            if not _CONTENT_ID.fullmatch(bare):
                raise InvalidInputError(f"content_id {content_id!r} is not a valid Content-ID")
            content_id = bare
        self.source = stored
        self.filename = filename
        self.content_type = content_type
        self.size = size
        self.inline = bool(inline)
        self.content_id = content_id
        self.encoding = encoding
        self._claimed = False

    def __repr__(self) -> str:
        source = (
            f"<{len(self.source)} octets>" if isinstance(self.source, bytes) else repr(self.source)
        )
        return (
            f"Attachment({source}, filename={self.filename!r}, "
            f"content_type={self.content_type!r}, size={self.size!r})"
        )

    def _leaf(self, index: int) -> _Leaf:
        """The MIME part for this attachment (stats a path; claims a stream)."""
        label = f"attachment {self.filename!r}" if self.filename else f"attachment #{index}"
        kind, params = _content_type(self.content_type, "content_type")
        if self.filename is not None:
            params = [*params, *_parameter("name", self.filename)]
        disposition = _structured_header(
            "Content-Disposition",
            "inline" if self.inline else "attachment",
            _parameter("filename", self.filename) if self.filename is not None else [],
        )
        headers = _structured_header("Content-Type", kind, params) + disposition
        if self.content_id is not None:
            headers += _header("Content-ID", [f" <{self.content_id}>"])
        headers += _header("Content-Transfer-Encoding", [" " + self.encoding])

        source: _Source
        size = self.size
        if isinstance(self.source, bytes):
            source = _BytesSource(self.source)
        elif isinstance(self.source, str):
            info = os.stat(self.source)
            if stat.S_ISDIR(info.st_mode):
                raise InvalidInputError(f"{label}: {self.source!r} is a directory")
            regular = stat.S_ISREG(info.st_mode)
            if regular:
                if self.size is not None and self.size != info.st_size:
                    raise InvalidInputError(
                        f"{label}: size={self.size} but the file holds {info.st_size}"
                    )
                size = info.st_size
            # A pipe or device has no size until it has been read: only a
            # declared size=, enforced like a stream's, gives it one.
            source = _PathSource(self.source, size, label, check_stat=regular)
        else:
            source = _StreamSource(self.source, size, label)

        if self.encoding == "base64":
            length = None if size is None else _base64_length(size)
            return _Leaf(headers, [_Encoded(source, _Base64Encoder(), length)])
        if isinstance(self.source, bytes):
            # In memory already: encode now, and the length is known.
            encoder = _TextQuotedPrintable()
            return _Leaf(headers, [_Static(encoder.feed(self.source) + encoder.finish())])
        return _Leaf(headers, [_Encoded(source, _TextQuotedPrintable(), None)])


def _guess_type(filename: str | None) -> str:
    if filename is None:
        return "application/octet-stream"
    kind, compression = mimetypes.guess_type(filename, strict=False)
    if compression is not None:
        return _COMPRESSION_TYPES.get(compression, "application/octet-stream")
    if kind is None or kind.startswith(("multipart/", "message/")):
        # An .eml file is message/rfc822, which must not be base64-encoded.
        return "application/octet-stream"
    return kind


# -- composing -------------------------------------------------------------------------


@dataclass
class _Leaf:
    headers: bytes
    body: list[_Segment]


@dataclass
class _Multipart:
    subtype: str
    parts: list[_Leaf | _Multipart]
    params: list[str] = field(default_factory=list)


_NOT_7BIT = re.compile(rb"[^\t\r\n\x20-\x7e]|[ \t]\r\n|[^\r\n]{77}|=_")


def _text_leaf(subtype: str, text: object, what: str) -> _Leaf:
    """A text part: UTF-8, CRLF line ends, a final line break; 7bit when the
    text is short-lined printable ASCII (and cannot contain a boundary), else
    quoted-printable."""
    raw = _check_body_text(text, what)
    line_ends = _TextLineEnds()
    canonical = line_ends.feed(raw) + line_ends.finish()
    if canonical and not canonical.endswith(b"\r\n"):
        canonical += b"\r\n"
    if _NOT_7BIT.search(canonical) is None:
        encoding, body = "7bit", canonical
    else:
        encoding = "quoted-printable"
        encoder = _QuotedPrintableEncoder()
        body = encoder.feed(canonical) + encoder.finish()
    headers = _structured_header("Content-Type", f"text/{subtype}", ['charset="utf-8"'])
    headers += _header("Content-Transfer-Encoding", [" " + encoding])
    return _Leaf(headers, [_Static(body)])


class _Output:
    """The flattened message: runs of known octets merged into one segment."""

    def __init__(self) -> None:
        self.segments: list[_Segment] = []
        self._static = bytearray()

    def add(self, data: bytes) -> None:
        self._static += data

    def add_segment(self, segment: _Segment) -> None:
        if isinstance(segment, _Static):
            self._static += segment._data
            return
        self.flush()
        self.segments.append(segment)

    def flush(self) -> None:
        if self._static:
            self.segments.append(_Static(bytes(self._static)))
            self._static = bytearray()


def _flatten(node: _Leaf | _Multipart, prefix: bytes, out: _Output) -> None:
    """Write ``node`` as an entity: ``prefix`` (the headers or delimiter
    before it), its headers, a blank line and its body. A multipart body
    ends with its close-delimiter and no CRLF: the enclosing delimiter, or
    the message's end, supplies it (RFC 2046 5.1.1)."""
    if isinstance(node, _Leaf):
        out.add(prefix + node.headers + b"\r\n")
        for segment in node.body:
            out.add_segment(segment)
        return
    boundary = ("=_" + secrets.token_hex(16)).encode("ascii")
    params = [f'boundary="{boundary.decode()}"', *node.params]
    out.add(prefix + _structured_header("Content-Type", f"multipart/{node.subtype}", params))
    out.add(b"\r\n")
    for index, part in enumerate(node.parts):
        _flatten(part, (b"\r\n--" if index else b"--") + boundary + b"\r\n", out)
    out.add(b"\r\n--" + boundary + b"--")


def compose(
    *,
    sender: MailboxLike,
    to: MailboxLike | Iterable[MailboxLike] = (),
    cc: MailboxLike | Iterable[MailboxLike] = (),
    reply_to: MailboxLike | Iterable[MailboxLike] | None = None,
    subject: str,
    text: str | None = None,
    html: str | None = None,
    attachments: Sequence[Attachment] = (),
    headers: Mapping[str, str] | None = None,
    date: datetime | None = None,
    message_id: str | None = None,
) -> ComposedMessage:
    """Compose a message; returns a `ComposedMessage` that produces it when read.

    Everything is validated here, before any octet exists: a line break or
    NUL in the subject, a display name, a filename or a header value, a
    malformed address or header name, all raise `InvalidInputError`. Attachment paths
    are stat'ed here (an `OSError` if one is missing), and nothing is read.

    - ``sender`` is the From mailbox; ``to``, ``cc`` and ``reply_to`` take
      one mailbox or a sequence of them. A mailbox is an address, a
      ``(display_name, address)`` pair or an `email.headerregistry.Address`;
      a bare tuple is a sequence, so write ``to=[("Bob", "bob@example.org")]``.
      Addresses must be ASCII. There is no Bcc: blind recipients belong in
      the envelope only (the ``recipients`` of `SMTPClient.send_mail`).
    - ``subject`` and ``headers`` values are unstructured text, encoded (RFC
      2047) when not plain printable ASCII, and folded. ``headers`` may not
      name a header the composer writes itself (From, To, Cc, Reply-To,
      Subject, Date, Message-ID, MIME-Version, ``Content-*``), nor Bcc.
    - ``text`` and ``html`` become ``text/plain`` and ``text/html`` parts in
      UTF-8; with both, a ``multipart/alternative``. Their line ends become
      CRLF and a final line break is added when missing.
    - ``attachments`` (see `Attachment`) put the message in a
      ``multipart/mixed``, except those with a ``content_id``, which join the
      HTML part in a ``multipart/related``.
    - ``date`` (timezone-aware; default now, in UTC) and ``message_id``
      (default: a fresh one at the sender's domain) fill Date and Message-ID.
    """
    origin = _mailbox(sender, "sender")
    recipients_to = _mailboxes(to, "to")
    recipients_cc = _mailboxes(cc, "cc")
    replies = _mailboxes(reply_to, "reply_to")
    _check_text(subject, "subject")

    if date is None:
        date = datetime.now(timezone.utc)
    elif not isinstance(date, datetime) or date.utcoffset() is None:
        raise InvalidInputError(f"date must be a timezone-aware datetime, not {date!r}")
    if message_id is None:
        message_id = make_msgid(domain=origin.address.rpartition("@")[2])
    else:
        bare = _strip_brackets(_check_text(message_id, "message_id"))
        if not _MSG_ID.fullmatch(bare):
            raise InvalidInputError(f"message_id {message_id!r} is not id-left@id-right")
        message_id = f"<{bare}>"

    extra = b""
    for name, value in (headers or {}).items():
        _check_text(name, "header name")
        if not _FIELD_NAME.fullmatch(name):
            raise InvalidInputError(f"{name!r} is not a header field name (RFC 5322 3.6.8)")
        if name.lower() in _RESERVED_HEADERS:
            raise InvalidInputError(f"the composer writes {name} itself; it cannot be in headers")
        _check_text(value, f"header {name}")
        extra += _header(name, _unstructured_words(name, value))

    streams: set[int] = set()
    for attachment in attachments:
        if not isinstance(attachment, Attachment):
            raise InvalidInputError(f"attachments must be Attachment objects, not {attachment!r}")
        if isinstance(attachment.source, trio.abc.ReceiveStream):
            # A stream can be read once: by one part of one message.
            if attachment._claimed or id(attachment.source) in streams:
                raise InvalidInputError(f"{attachment!r} reads a stream, and was already composed")
            streams.add(id(attachment.source))

    text_part = None if text is None else _text_leaf("plain", text, "text")
    html_part: _Leaf | _Multipart | None = (
        None if html is None else _text_leaf("html", html, "html")
    )
    related: list[_Leaf | _Multipart] = []
    mixed: list[_Leaf | _Multipart] = []
    for index, attachment in enumerate(attachments):
        leaf = attachment._leaf(index)
        if attachment.content_id is not None and html_part is not None:
            related.append(leaf)
        else:
            mixed.append(leaf)
    if related and html_part is not None:
        html_part = _Multipart("related", [html_part, *related], ['type="text/html"'])
    core: _Leaf | _Multipart | None
    if text_part is not None and html_part is not None:
        core = _Multipart("alternative", [text_part, html_part])
    else:
        core = text_part or html_part
    root: _Leaf | _Multipart
    if mixed:
        root = _Multipart("mixed", [core, *mixed] if core is not None else mixed)
    else:
        root = core if core is not None else _text_leaf("plain", "", "text")

    top = _header("From", _address_words([origin]))
    for name, mailboxes in (("To", recipients_to), ("Cc", recipients_cc), ("Reply-To", replies)):
        if mailboxes:
            top += _header(name, _address_words(mailboxes))
    top += _header("Subject", _unstructured_words("Subject", subject))
    top += _header("Date", [" " + format_datetime(date)])
    top += _header("Message-ID", [" " + message_id])
    top += extra
    top += b"MIME-Version: 1.0\r\n"

    out = _Output()
    _flatten(root, top, out)
    if isinstance(root, _Multipart):
        out.add(b"\r\n")
    out.flush()
    for attachment in attachments:
        if isinstance(attachment.source, trio.abc.ReceiveStream):
            attachment._claimed = True
    return ComposedMessage(
        out.segments,
        message_id=message_id,
        envelope_sender=origin.address,
        envelope_recipients=tuple(m.address for m in (*recipients_to, *recipients_cc)),
    )
