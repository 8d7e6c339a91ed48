"""What the server said it can do: EHLO / LHLO replies parsed into `Capabilities`.

An EHLO (or LHLO) ``250`` reply is the server's name and greeting on its
first line, then one service extension per line (RFC 5321 4.1.1.1)::

    250-mail.example.com Hello [192.0.2.1]
    250-PIPELINING
    250-SIZE 35882577
    250-AUTH PLAIN LOGIN
    250 8BITMIME

`Capabilities.from_reply` turns such a reply into an immutable value with
typed properties for the extensions the client uses, plus `has` and `params`
for everything else. Keywords are case-insensitive. Real servers are sloppy,
so the parser is lenient about form and strict about safety:

* a last line of just ``250`` and a space, blank lines, leading or trailing spaces and tabs
  are tolerated (blank keyword lines are skipped);
* duplicate keywords are merged: the first line naming a keyword supplies
  `params`, while the AUTH mechanisms of every line are united;
* the pre-standard ``AUTH=LOGIN PLAIN`` form is read as AUTH as well;
* a keyword line holding anything but printable ASCII (non-UTF-8 bytes,
  control characters), or not starting with a valid keyword, is ignored,
  never fatal. It still shows, escaped, in `Capabilities.lines`.

`Capabilities.none` stands for a HELO session: no extensions at all.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any, NoReturn

from .errors import InvalidInputError
from .reply import Reply, escape_text

__all__ = ["Capabilities"]

# RFC 5321 4.1.1.1: ehlo-keyword = (ALPHA / DIGIT) *(ALPHA / DIGIT / "-").
# The rest of the line is the parameters (or "=" params, the pre-standard form).
_KEYWORD = re.compile(rb"([A-Za-z0-9][A-Za-z0-9-]*)(?:([ \t=])(.*))?")
# Anything outside printable ASCII (tab allowed as a separator) disqualifies a line.
_NOT_PRINTABLE = re.compile(rb"[^\t\x20-\x7e]")
_SIZE_VALUE = re.compile(r"[0-9]{1,20}")
_SEPARATORS = b" \t"

# How much of the server name / keyword list `repr` shows.
_REPR_NAME_CHARS = 64
_REPR_KEYWORDS = 16


def _ascii_upper(keyword: str) -> str | None:
    # str.upper() maps some non-ASCII letters onto ASCII ("\ufb00" -> "FF"),
    # which would make lookups match keywords nobody asked for.
    return keyword.upper() if keyword.isascii() else None


class Capabilities:
    """The service extensions a server advertised in its EHLO / LHLO reply.

    Build one with `from_reply` (or `none` for a HELO session). The value is
    immutable and hashable; two values compare equal when they were built
    from the same reply text.

    The constructor takes the keyword lines (without the first greeting
    line) as raw bytes, which is handy for tests and test servers::

        Capabilities([b"PIPELINING", b"SIZE 1000"], greeting=b"mx.example")
    """

    __slots__ = ("_auth", "_esmtp", "_greeting", "_key", "_lines", "_params", "_server_name")

    _esmtp: bool
    _greeting: str
    _server_name: str
    _lines: tuple[str, ...]
    _params: dict[str, tuple[str, ...]]
    _auth: frozenset[str]
    _key: tuple[bool, bytes, tuple[bytes, ...]]

    def __init__(
        self,
        keyword_lines: Iterable[bytes] = (),
        *,
        greeting: bytes = b"",
        esmtp: bool = True,
    ) -> None:
        raw_lines = tuple(bytes(line) for line in keyword_lines)
        if not esmtp and any(line.strip(_SEPARATORS) for line in raw_lines):
            raise InvalidInputError("a non-ESMTP (HELO) session has no extension keywords")
        greeting = bytes(greeting)

        standard: dict[str, tuple[str, ...]] = {}
        legacy: dict[str, tuple[str, ...]] = {}
        auth: set[str] = set()
        shown: list[str] = []
        for raw in raw_lines:
            line = raw.strip(_SEPARATORS)
            if not line:
                continue  # a bare "250 " closing line, or a blank one
            shown.append(escape_text(line))
            parsed = _parse_keyword_line(line)
            if parsed is None:
                continue
            keyword, params, is_legacy = parsed
            if keyword == "AUTH":
                auth.update(param.upper() for param in params)
            target = legacy if is_legacy else standard
            target.setdefault(keyword, params)
        # The standard form wins; the "KEYWORD=..." form only fills gaps.
        merged = dict(standard)
        for keyword, params in legacy.items():
            merged.setdefault(keyword, params)

        setattr_ = object.__setattr__
        setattr_(self, "_esmtp", esmtp)
        setattr_(self, "_greeting", escape_text(greeting.strip(_SEPARATORS)))
        name = greeting.strip(_SEPARATORS).split(None, 1)
        setattr_(self, "_server_name", escape_text(name[0]) if name else "")
        setattr_(self, "_lines", tuple(shown))
        setattr_(self, "_params", merged)
        setattr_(self, "_auth", frozenset(auth))
        setattr_(self, "_key", (esmtp, greeting, raw_lines))

    # -- construction -----------------------------------------------------

    @classmethod
    def from_reply(cls, reply: Reply) -> Capabilities:
        """Parse a positive EHLO or LHLO reply.

        The first line is the server's name and greeting; every further line
        is a keyword line. Raises `InvalidInputError` for a reply that is not
        positive (2xx), since that is not a capability list at all.
        """
        if not reply.is_positive:
            raise InvalidInputError(
                f"capabilities come from a positive EHLO/LHLO reply, not {reply.code}"
            )
        greeting = reply.lines[0] if reply.lines else b""
        return cls(reply.lines[1:], greeting=greeting, esmtp=True)

    @classmethod
    def none(cls, *, greeting: bytes = b"") -> Capabilities:
        """The capabilities of a HELO session: not ESMTP, no extensions."""
        return cls((), greeting=greeting, esmtp=False)

    # -- generic lookups --------------------------------------------------

    def has(self, keyword: str) -> bool:
        """Whether ``keyword`` was advertised (case-insensitive)."""
        key = _ascii_upper(keyword)
        return key is not None and key in self._params

    def params(self, keyword: str) -> tuple[str, ...] | None:
        """The parameters advertised with ``keyword``, or None if it was not.

        ``()`` means the keyword was advertised without parameters. The case
        of parameters is kept as the server sent it.
        """
        key = _ascii_upper(keyword)
        if key is None:
            return None
        return self._params.get(key)

    @property
    def keywords(self) -> frozenset[str]:
        """Every keyword advertised, upper-cased."""
        return frozenset(self._params)

    # -- the server -------------------------------------------------------

    @property
    def esmtp(self) -> bool:
        """True after EHLO/LHLO; False for a HELO session."""
        return self._esmtp

    @property
    def server_name(self) -> str:
        """The first word of the greeting line (normally the server's domain), escaped."""
        return self._server_name

    @property
    def greeting(self) -> str:
        """The whole first line of the reply, escaped."""
        return self._greeting

    @property
    def lines(self) -> tuple[str, ...]:
        """The non-blank keyword lines as sent (escaped), including ignored ones."""
        return self._lines

    # -- the extensions the client uses -----------------------------------

    @property
    def pipelining(self) -> bool:
        """PIPELINING (RFC 2920)."""
        return "PIPELINING" in self._params

    @property
    def chunking(self) -> bool:
        """CHUNKING: the BDAT command (RFC 3030)."""
        return "CHUNKING" in self._params

    @property
    def binarymime(self) -> bool:
        """BINARYMIME (RFC 3030); only usable together with CHUNKING."""
        return "BINARYMIME" in self._params

    @property
    def size(self) -> int | None:
        """The SIZE limit (RFC 1870) in octets.

        None when SIZE was not advertised; 0 when it was advertised without a
        limit, with a limit of 0, or with a value that is not a number.
        """
        params = self._params.get("SIZE")
        if params is None:
            return None
        if params and _SIZE_VALUE.fullmatch(params[0]):
            return int(params[0])
        return 0

    @property
    def eightbitmime(self) -> bool:
        """8BITMIME (RFC 6152)."""
        return "8BITMIME" in self._params

    @property
    def smtputf8(self) -> bool:
        """SMTPUTF8 (RFC 6531)."""
        return "SMTPUTF8" in self._params

    @property
    def dsn(self) -> bool:
        """DSN: delivery status notifications (RFC 3461)."""
        return "DSN" in self._params

    @property
    def starttls(self) -> bool:
        """STARTTLS (RFC 3207)."""
        return "STARTTLS" in self._params

    @property
    def auth(self) -> frozenset[str]:
        """The SASL mechanisms offered, upper-cased (``AUTH`` and ``AUTH=`` lines united)."""
        return self._auth

    @property
    def enhanced_status_codes(self) -> bool:
        """ENHANCEDSTATUSCODES (RFC 2034)."""
        return "ENHANCEDSTATUSCODES" in self._params

    @property
    def requiretls(self) -> bool:
        """REQUIRETLS (RFC 8689)."""
        return "REQUIRETLS" in self._params

    # -- value semantics --------------------------------------------------

    def __setattr__(self, name: str, value: Any) -> NoReturn:
        raise AttributeError(f"{type(self).__name__} is immutable")

    def __delattr__(self, name: str) -> NoReturn:
        raise AttributeError(f"{type(self).__name__} is immutable")

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Capabilities):
            return NotImplemented
        return self._key == other._key

    def __hash__(self) -> int:
        return hash(self._key)

    def __repr__(self) -> str:
        if not self._esmtp:
            return f"<Capabilities HELO {self._short_name()!r}>"
        words: list[str] = []
        for keyword in sorted(self._params):
            if keyword == "SIZE":
                words.append(f"SIZE={self.size}")
            elif keyword == "AUTH":
                words.append("AUTH=" + ",".join(sorted(self._auth)))
            else:
                words.append(keyword)
        if len(words) > _REPR_KEYWORDS:
            words[_REPR_KEYWORDS:] = [f"+{len(words) - _REPR_KEYWORDS} more"]
        shown = " ".join(words) if words else "no extensions"
        return f"<Capabilities {self._short_name()!r} {shown}>"

    def _short_name(self) -> str:
        name = self._server_name
        if len(name) > _REPR_NAME_CHARS:
            name = name[:_REPR_NAME_CHARS] + "..."
        return name


def _parse_keyword_line(line: bytes) -> tuple[str, tuple[str, ...], bool] | None:
    """Split a stripped, non-blank keyword line into (KEYWORD, params, legacy form)."""
    if _NOT_PRINTABLE.search(line):
        return None
    match = _KEYWORD.fullmatch(line)
    if match is None:
        return None
    keyword = match.group(1).decode("ascii").upper()
    rest = match.group(3) or b""
    params = tuple(param.decode("ascii") for param in rest.split())
    return keyword, params, match.group(2) == b"="
