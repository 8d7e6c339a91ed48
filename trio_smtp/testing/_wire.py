"""The test server's own reading of the SMTP grammar: pure functions, no I/O.

This module owns the server-side parsing: command lines (RFC 5321 4.1),
reverse/forward paths (4.1.2), ESMTP parameters and the values of the
extensions the server implements (SIZE RFC 1870, BODY RFC 6152/3030, DSN
RFC 3461 xtext, SMTPUTF8 RFC 6531/6533), the DATA un-stuffer (4.5.2), a bare
CR/LF detector, and the SASL message formats (RFC 4616 PLAIN, LOGIN, Google's
XOAUTH2, RFC 7628 OAUTHBEARER).

It deliberately shares no code with the client's core (`trio_smtp._core`):
it is a second, independent reading of the RFCs, so that a misreading in
the client shows up as a disagreement with this server instead of being
mirrored by it.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import ipaddress
import re
import string
from dataclasses import dataclass

__all__ = [
    "MAX_AUTH_LINE",
    "MAX_COMMAND_LINE",
    "BareNewlineDetector",
    "DataReader",
    "GrammarError",
    "decode_sasl",
    "is_xtext",
    "parse_oauthbearer",
    "parse_params",
    "parse_path",
    "parse_plain",
    "parse_xoauth2",
    "split_command",
]

# RFC 5321 4.5.3.1.4: a command line is at most 512 octets with its CRLF.
# Extensions may raise that, but the client promises to stay within 512, and
# the point of this server is to hold it to that promise.
MAX_COMMAND_LINE = 512
# RFC 4954 4: SASL response lines may be up to 12288 octets (plus CRLF).
MAX_AUTH_LINE = 12288 + 2
MAX_LOCAL_PART = 64  # RFC 5321 4.5.3.1.1
MAX_DOMAIN = 255  # RFC 5321 4.5.3.1.2
MAX_PATH = 256  # RFC 5321 4.5.3.1.3, with the angle brackets


class GrammarError(Exception):
    """Input does not match the grammar; ``reason`` is fit for a reply text."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class TooLongError(GrammarError):
    """A syntactically fine element exceeds an RFC 5321 size limit."""


def split_command(line: bytes) -> tuple[str, bytes]:
    """Split a command line (no CRLF) into an upper-cased verb and its argument.

    The verb is the leading run of ASCII letters; the argument is what
    follows one SP. A line whose first word is not letters gets verb "".
    """
    verb, _, rest = line.partition(b" ")
    if not verb.isalpha() or not verb.isascii():
        return "", line
    return verb.decode("ascii").upper(), rest


# RFC 5321 4.1.2 atext (RFC 5322 3.2.3).
_ATEXT = frozenset(string.ascii_letters + string.digits + "!#$%&'*+-/=?^_`{|}~")


def _qtext_ok(ch: str) -> bool:
    # qtextSMTP = %d32-33 / %d35-91 / %d93-126; non-ASCII is judged later.
    o = ord(ch)
    return o > 127 or (32 <= o <= 126 and ch not in '"\\')


def _is_label(label: str) -> bool:
    if not label or len(label.encode("utf-8")) > 63:
        return False
    if label[0] == "-" or label[-1] == "-":
        return False
    return all((ch.isascii() and (ch.isalnum() or ch == "-")) or ord(ch) > 127 for ch in label)


def is_domain(domain: str) -> bool:
    """RFC 5321 Domain (sub-domains joined by dots); U-labels are allowed here."""
    return bool(domain) and all(_is_label(label) for label in domain.split("."))


def is_address_literal(text: str) -> bool:
    """RFC 5321 4.1.3 address-literal, brackets included."""
    if len(text) < 3 or text[0] != "[" or text[-1] != "]":
        return False
    inner = text[1:-1]
    try:
        if inner[:5].lower() == "ipv6:":
            ipaddress.IPv6Address(inner[5:])
            return True
        if ":" not in inner:
            ipaddress.IPv4Address(inner)
            return True
    except ValueError:
        return False
    # General-address-literal: Standardized-tag ":" 1*dcontent
    tag, _, content = inner.partition(":")
    if not re.fullmatch(r"[A-Za-z0-9-]*[A-Za-z0-9]", tag) or not content:
        return False
    return all(33 <= ord(ch) <= 90 or 94 <= ord(ch) <= 126 for ch in content)


def parse_path(text: str, *, allow_null: bool, allow_postmaster: bool = False) -> tuple[str, str]:
    """Parse ``<mailbox>`` at the start of ``text``; return (mailbox, rest).

    The mailbox is returned as written (a quoted local-part keeps its
    quotes); a source route is accepted and ignored (RFC 5321 4.1.1.3,
    C.). ``<>`` gives "" when ``allow_null``. Non-ASCII characters are
    accepted here; whether they are allowed (SMTPUTF8) is the caller's
    check. Raises `GrammarError` (or `TooLongError`).
    """
    if not text.startswith("<"):
        raise GrammarError("path must begin with '<'")
    if text.startswith("<>"):
        if not allow_null:
            raise GrammarError("null path not allowed here")
        return "", text[2:]
    if allow_postmaster and text[:12].lower() == "<postmaster>":
        return text[1:11], text[12:]
    i = 1
    if text.startswith("@", i):
        colon = text.find(":", i)
        if colon == -1:
            raise GrammarError("unterminated source route")
        for hop in text[i:colon].split(","):
            if not hop.startswith("@") or not (is_domain(hop[1:]) or is_address_literal(hop[1:])):
                raise GrammarError("bad source route")
        i = colon + 1
    start = i
    if text.startswith('"', i):
        i += 1
        while True:
            if i >= len(text):
                raise GrammarError("unterminated quoted local-part")
            ch = text[i]
            if ch == '"':
                i += 1
                break
            if ch == "\\":
                if i + 1 >= len(text) or not 32 <= ord(text[i + 1]) <= 126:
                    raise GrammarError("bad quoted-pair")
                i += 2
                continue
            if not _qtext_ok(ch):
                raise GrammarError("bad character in quoted local-part")
            i += 1
    else:
        j = i
        while j < len(text) and (text[j] in _ATEXT or text[j] == "." or ord(text[j]) > 127):
            j += 1
        dot_string = text[i:j]
        if not dot_string or dot_string[0] == "." or dot_string[-1] == "." or ".." in dot_string:
            raise GrammarError("bad local-part")
        i = j
    local_part = text[start:i]
    if not text.startswith("@", i):
        raise GrammarError("mailbox needs '@domain'")
    i += 1
    if text.startswith("[", i):
        close = text.find("]", i)
        if close == -1:
            raise GrammarError("unterminated address literal")
        domain = text[i : close + 1]
        if not is_address_literal(domain):
            raise GrammarError("bad address literal")
        end = close + 1
    else:
        end = text.find(">", i)
        if end == -1:
            raise GrammarError("path must end with '>'")
        domain = text[i:end]
        if not is_domain(domain):
            raise GrammarError("bad domain")
    if not text.startswith(">", end):
        raise GrammarError("path must end with '>'")
    if len(local_part.encode("utf-8")) > MAX_LOCAL_PART:
        raise TooLongError("local-part too long")
    if len(domain.encode("utf-8")) > MAX_DOMAIN:
        raise TooLongError("domain too long")
    if len(text[: end + 1].encode("utf-8")) > MAX_PATH:
        raise TooLongError("path too long")
    return text[start:end], text[end + 1 :]


_KEYWORD = re.compile(r"[A-Za-z0-9][A-Za-z0-9-]*")


def parse_params(text: str) -> list[tuple[str, str | None]]:
    """Parse what follows a path: "" or SP-separated ``keyword[=value]``.

    Keywords are upper-cased; values are kept as sent. One SP separates
    parameters (RFC 5321 4.1.2 Mail-parameters); anything else, a duplicate
    keyword or an empty value raises `GrammarError`.
    """
    if not text:
        return []
    if not text.startswith(" "):
        raise GrammarError("junk after path")
    params: list[tuple[str, str | None]] = []
    seen: set[str] = set()
    for item in text[1:].split(" "):
        keyword, eq, value = item.partition("=")
        if not _KEYWORD.fullmatch(keyword):
            raise GrammarError("bad parameter keyword")
        if eq and (not value or any(_bad_value_char(ch) for ch in value)):
            raise GrammarError(f"bad value for {keyword.upper()}")
        key = keyword.upper()
        if key in seen:
            raise GrammarError(f"duplicate parameter {key}")
        seen.add(key)
        params.append((key, value if eq else None))
    return params


def _bad_value_char(ch: str) -> bool:
    # esmtp-value = 1*(%d33-60 / %d62-126), plus UTF-8 under RFC 6531.
    o = ord(ch)
    return not (o > 127 or (33 <= o <= 126 and ch != "="))


_XTEXT = re.compile(r"(?:[!-*,-<>-~]|\+[0-9A-F]{2})*")
# RFC 6533 utf-8-addr-xtext / utf-8-addr-unitext: QCHAR excludes "+", "=",
# "\"; EmbeddedUnicodeChar is \x{HEX}.
_UTF8_ADDR = re.compile(r"(?:[!-*,-<>-\[\]-~]|\\x\{[0-9A-F]{2,6}\}|[^\x00-\x7f])+")


def is_xtext(value: str) -> bool:
    """RFC 3461 4 xtext: printable ASCII but "+" and "=", or "+" two upper hex digits."""
    return _XTEXT.fullmatch(value) is not None


def is_orcpt(value: str, *, utf8: bool) -> bool:
    """RFC 3461 4.2 / RFC 6533 ORCPT: addr-type ";" encoded address."""
    addr_type, sep, addr = value.partition(";")
    if not sep or not addr or not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9-]*", addr_type):
        return False
    if addr_type.lower() == "utf-8":
        if not utf8 and not addr.isascii():
            return False
        return _UTF8_ADDR.fullmatch(addr) is not None
    return is_xtext(addr)


def is_notify(value: str) -> bool:
    """RFC 3461 4.1: NEVER alone, or a set of SUCCESS, FAILURE, DELAY."""
    items = [item.upper() for item in value.split(",")]
    if items == ["NEVER"]:
        return True
    return len(set(items)) == len(items) and set(items) <= {"SUCCESS", "FAILURE", "DELAY"}


_CRLF_DOT = re.compile(rb"\r\n\.")


class DataReader:
    """Incremental DATA reader: finds CRLF.CRLF across chunk boundaries and un-stuffs.

    Only ``<CRLF>.<CRLF>`` ends the data (RFC 5321 4.1.1.4); a bare LF or CR
    never starts a line, so ``\\n.\\n`` and friends are content, recorded as
    they came. A line beginning with "." has that dot removed (4.5.2).

    The reader treats the data as if preceded by CRLF (the CRLF of the DATA
    command line), so a message that is just ".\\r\\n" is empty, and scans for
    ``\\r\\n.`` instead of walking lines. At most four undecided octets are
    carried between `feed` calls. Output past ``limit`` is counted but not
    kept, so memory stays bounded while the size is still known.
    """

    def __init__(self, limit: int, *, keep: bool = True) -> None:
        self._carry = b"\r\n"
        self._skip = 2  # the imaginary leading CRLF is not data
        self._limit = limit
        # Without keep, the content is hashed instead of stored.
        self._digest = None if keep else hashlib.sha256()
        self.data = bytearray()
        self.size = 0
        self.done = False
        self.bare = BareNewlineDetector()

    @property
    def oversize(self) -> bool:
        return self.size > self._limit

    def _emit(self, chunk: bytes) -> None:
        if self._skip:
            cut = min(self._skip, len(chunk))
            chunk = chunk[cut:]
            self._skip -= cut
        if not chunk:
            return
        self.bare.feed(chunk)
        self.size += len(chunk)
        if self._digest is not None:
            self._digest.update(chunk)
        elif (room := self._limit - len(self.data)) > 0:
            self.data += chunk[:room]

    def hexdigest(self) -> str | None:
        """SHA-256 of the content when it was hashed rather than kept."""
        return self._digest.hexdigest() if self._digest is not None else None

    def feed(self, data: bytes) -> bytes | None:
        """Consume ``data``; return None while more is needed, else what followed the end."""
        if self.done:
            raise RuntimeError("DataReader already finished")
        # Most pieces arrive with nothing carried: concatenating would copy them.
        buf = self._carry + data if self._carry else data
        self._carry = b""
        pos = 0
        while True:
            # re finds this literal about half again as fast as bytes.find.
            found = _CRLF_DOT.search(buf, pos)
            if found is None:
                keep = 2 if buf.endswith(b"\r\n") else 1 if buf.endswith(b"\r") else 0
                keep = min(keep, len(buf) - pos)
                self._emit(buf[pos : len(buf) - keep])
                self._carry = buf[len(buf) - keep :]
                return None
            j = found.start()
            tail = buf[j : j + 5]
            if len(tail) < 5 and b"\r\n.\r\n".startswith(tail):
                # Maybe the end marker, maybe not: wait for more octets.
                self._emit(buf[pos:j])
                self._carry = buf[j:]
                return None
            if tail == b"\r\n.\r\n":
                self._emit(buf[pos : j + 2])
                self.done = True
                self.bare.finish()
                return buf[j + 5 :]
            self._emit(buf[pos : j + 2])
            pos = j + 3  # drop the stuffed dot


_CR = 0x0D
_LF = 0x0A
_CR_NOT_LF = re.compile(rb"\r[^\n]")
_LF_NOT_AFTER_CR = re.compile(rb"\n(?<!\r\n)")


class BareNewlineDetector:
    """Notices any CR not followed by LF, or LF not preceded by CR, across chunks."""

    def __init__(self) -> None:
        self._cr_pending = False
        self.seen = False

    def feed(self, chunk: bytes) -> None:
        if not chunk or self.seen:
            return
        start = 0
        if self._cr_pending:
            if chunk[0] != _LF:
                self.seen = True
                return
            start = 1
        # A CR at the very end matches neither search: the next chunk decides.
        self._cr_pending = chunk[-1] == _CR
        # Two searches rather than deleting every CRLF, which copied the
        # chunk and was the server's costliest step per body octet. Each
        # starts with a literal, so re skips to the next CR or LF quickly;
        # one alternation of both would try every position. The lookbehind
        # sees the octet before ``start``: an LF there is no CR.
        if (
            _CR_NOT_LF.search(chunk, start) is not None
            or _LF_NOT_AFTER_CR.search(chunk, start) is not None
        ):
            self.seen = True

    def finish(self) -> None:
        if self._cr_pending:
            self.seen = True
            self._cr_pending = False


def decode_sasl(text: bytes) -> bytes | None:
    """Strict base64 of a SASL response line; None when it is not valid base64."""
    if not text:
        return b""
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        return None


def parse_plain(message: bytes) -> tuple[str, str, str] | None:
    """RFC 4616: [authzid] NUL authcid NUL passwd, all UTF-8; None if malformed."""
    parts = message.split(b"\x00")
    if len(parts) != 3 or not parts[1]:
        return None
    try:
        authzid, authcid, passwd = (p.decode("utf-8") for p in parts)
    except UnicodeDecodeError:
        return None
    return authzid, authcid, passwd


def parse_xoauth2(message: bytes) -> tuple[str, str] | None:
    """Google XOAUTH2: ``user=U^Aauth=Bearer T^A^A``; (user, token) or None."""
    try:
        text = message.decode("utf-8")
    except UnicodeDecodeError:
        return None
    if not text.endswith("\x01\x01"):
        return None
    fields = text[:-2].split("\x01")
    if len(fields) != 2 or not fields[0].startswith("user="):
        return None
    scheme, _, token = fields[1].removeprefix("auth=").partition(" ")
    if not fields[1].startswith("auth=") or scheme.lower() != "bearer" or not token:
        return None
    return fields[0][5:], token


@dataclass(frozen=True)
class OAuthBearer:
    """A parsed RFC 7628 initial client response."""

    authzid: str | None
    token: str
    pairs: dict[str, str]


def parse_oauthbearer(message: bytes) -> OAuthBearer | None:
    """RFC 7628 3.1: gs2-header kvsep *(key=value kvsep) kvsep; None if malformed."""
    try:
        text = message.decode("utf-8")
    except UnicodeDecodeError:
        return None
    header, sep, rest = text.partition("\x01")
    if not sep or not rest.endswith("\x01"):
        return None
    gs2 = header.split(",")
    # gs2-header = gs2-cb-flag "," [gs2-authzid] "," ; OAUTHBEARER has no
    # channel binding, so "p=" is refused.
    if len(gs2) != 3 or gs2[0] not in ("n", "y") or gs2[2] != "":
        return None
    authzid: str | None = None
    if gs2[1]:
        if not gs2[1].startswith("a="):
            return None
        raw = gs2[1][2:]
        # saslname escapes "," as =2C and "=" as =3D; any other "=" is bad.
        if re.search(r"=(?!2C|3D)", raw):
            return None
        authzid = raw.replace("=2C", ",").replace("=3D", "=")
    pairs: dict[str, str] = {}
    items = rest[:-1].split("\x01")
    if items[-1] != "":
        return None
    for item in items[:-1]:
        key, eq, value = item.partition("=")
        if not eq or not re.fullmatch(r"[A-Za-z]+", key) or key in pairs:
            return None
        pairs[key] = value
    auth = pairs.get("auth")
    if auth is None:
        return None
    scheme, _, token = auth.partition(" ")
    if scheme.lower() != "bearer" or not token:
        return None
    return OAuthBearer(authzid, token, pairs)
