"""Envelope paths for ``MAIL FROM`` and ``RCPT TO`` (RFC 5321 4.1.2), validated strictly.

:class:`ReversePath` and :class:`ForwardPath` take a bare ``addr-spec``
(``user@example.com``), optionally wrapped in one pair of angle brackets. They
are deliberately stricter than the grammar, because an envelope address that
two parsers read differently routes mail somewhere the caller never validated
(SECURITY 19): whitespace, comments, source routes, backslashes and a second
``@`` are refused outright, and the address written on the wire is exactly the
address that was validated (:meth:`to_wire` is ``"<" + address + ">"``).

What is accepted:

- Local part: a dot-string of RFC 5321 ``atext`` (no leading, trailing or
  doubled dots), or a quoted string whose content is ``atext`` and dots only.
  A quoted local part that is also a valid dot-string is sent unquoted, the
  minimal quoting RFC 5321 4.1.2 asks for.
- Domain: LDH labels (1-63 characters, no leading or trailing hyphen, not an
  all-numeric top-level label), or an address literal ``[192.0.2.1]`` /
  ``[IPv6:2001:db8::1]`` checked with :mod:`ipaddress`.
- Non-ASCII (RFC 6531): UTF-8 in the local part and U-labels in the domain are
  accepted and set :attr:`needs_smtputf8`. Unicode whitespace, format and
  control characters are refused; U-labels must be letters, marks, digits and
  hyphens in NFKC form.
- Limits (RFC 5321 4.5.3.1, in UTF-8 octets): local part 64, domain 255, the
  whole path including the brackets 256.

C0 and C1 control characters, DEL, CR, LF and NUL are refused everywhere
(SECURITY 18). Every refusal is an :class:`~trio_smtp._core.errors.InvalidInputError`.

The module also provides the two encodings ESMTP parameters need for
addresses and identifiers: :func:`xtext` (RFC 3461) and
:func:`utf8_addr_xtext` (RFC 6533).
"""

from __future__ import annotations

import functools
import ipaddress
import re
import unicodedata
from typing import Any, ClassVar

from .errors import InvalidInputError

__all__ = ["ForwardPath", "ReversePath", "utf8_addr_xtext", "xtext"]

#: Longest local part, in octets (RFC 5321 4.5.3.1.1).
MAX_LOCAL_PART = 64
#: Longest domain, in octets (RFC 5321 4.5.3.1.2).
MAX_DOMAIN = 255
#: Longest path including the angle brackets, in octets (RFC 5321 4.5.3.1.3).
MAX_PATH = 256

_ATEXT_SPECIALS = frozenset("!#$%&'*+-/=?^_`{|}~")
_ASCII_ALNUM = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789")
_ASCII_ATEXT = _ASCII_ALNUM | _ATEXT_SPECIALS
_LDH_LABEL = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?")
# Unicode categories never allowed in a non-ASCII character: controls, format
# characters (bidi overrides, zero-width joiners), surrogates, private use,
# unassigned code points and every kind of space or separator.
_BAD_UNICODE_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zs", "Zl", "Zp"})
_LABEL_UNICODE_CATEGORIES = ("L", "M", "N")
_MAX_SHOWN = 80


def _show(value: str) -> str:
    """A short, escaped rendering of a caller's value for an error message."""
    if len(value) > _MAX_SHOWN:
        return repr(value[:_MAX_SHOWN]) + "..."
    return repr(value)


def check_no_controls(value: object, what: str) -> str:
    """Return ``value`` if it is a ``str`` free of control characters.

    CR, LF and NUL get their own message (SECURITY 18); any other C0 or C1
    control, DEL or lone surrogate is refused too. Shared with the command
    module so that every argument goes through the same gate.
    """
    if not isinstance(value, str):
        raise InvalidInputError(f"{what} must be a str, not {type(value).__name__}")
    for ch in value:
        cp = ord(ch)
        if ch in "\r\n\x00":
            raise InvalidInputError(f"{what} contains CR, LF or NUL: {_show(value)}")
        if cp < 0x20 or 0x7F <= cp <= 0x9F:
            raise InvalidInputError(f"{what} contains a control character: {_show(value)}")
        if 0xD800 <= cp <= 0xDFFF:
            raise InvalidInputError(f"{what} contains a lone surrogate: {_show(value)}")
    return value


def is_safe_non_ascii(ch: str) -> bool:
    """True if the non-ASCII character ``ch`` is printable and not a space or format character."""
    return unicodedata.category(ch) not in _BAD_UNICODE_CATEGORIES


def _is_atext(ch: str) -> bool:
    if ch.isascii():
        return ch in _ASCII_ATEXT
    return is_safe_non_ascii(ch)


def _is_dot_string(value: str) -> bool:
    return all(atom and all(_is_atext(ch) for ch in atom) for atom in value.split("."))


def _octets(value: str) -> int:
    return len(value.encode("utf-8"))


def _check_local_part(local: str, shown: str) -> str:
    """Validate a local part and return it with minimal quoting."""
    if not local:
        raise InvalidInputError(f"address {shown} has an empty local part")
    if local.startswith('"'):
        if len(local) < 2 or not local.endswith('"'):
            raise InvalidInputError(f"address {shown} has an unterminated quoted local part")
        inner = local[1:-1]
        if not inner:
            raise InvalidInputError(f"address {shown} has an empty quoted local part")
        for ch in inner:
            if ch == "\\":
                raise InvalidInputError(
                    f"address {shown}: backslash escapes in a local part are refused"
                )
            if ch == '"':
                raise InvalidInputError(f"address {shown}: stray quote in the local part")
            if not (ch == "." or _is_atext(ch)):
                raise InvalidInputError(
                    f"address {shown}: character {ch!r} is refused in a quoted local part"
                )
        if _is_dot_string(inner):
            return inner
        return local
    if not _is_dot_string(local):
        bad = [ch for ch in local if ch != "." and not _is_atext(ch)]
        if bad:
            reason = f"character {bad[0]!r} is not allowed in a local part"
        else:
            reason = "a local part cannot start or end with a dot or contain '..'"
        raise InvalidInputError(f"address {shown}: {reason}")
    return local


def _check_label(label: str, domain: str, allow_utf8: bool, what: str) -> None:
    shown = f"{what} {_show(domain)}"
    if not label:
        raise InvalidInputError(f"{shown} has an empty label")
    if label.isascii():
        if len(label) > 63:
            raise InvalidInputError(f"{shown} has a label longer than 63 characters")
        if not _LDH_LABEL.fullmatch(label):
            raise InvalidInputError(
                f"{shown}: label {label!r} must be letters, digits and inner hyphens"
            )
        return
    if not allow_utf8:
        raise InvalidInputError(f"{shown} must be ASCII here")
    if label.startswith("-") or label.endswith("-"):
        raise InvalidInputError(f"{shown}: label {label!r} starts or ends with a hyphen")
    for ch in label:
        if ch.isascii():
            if ch != "-" and ch not in _ASCII_ALNUM:
                raise InvalidInputError(f"{shown}: character {ch!r} is not allowed")
        elif not unicodedata.category(ch).startswith(_LABEL_UNICODE_CATEGORIES):
            raise InvalidInputError(f"{shown}: character {ch!r} is not allowed")
    if unicodedata.category(label[0]).startswith("M"):
        raise InvalidInputError(f"{shown}: label {label!r} starts with a combining mark")
    if not unicodedata.is_normalized("NFKC", label):
        raise InvalidInputError(f"{shown}: label {label!r} is not in NFKC form")
    if len(label.encode("punycode")) + 4 > 63:
        raise InvalidInputError(f"{shown}: label {label!r} is longer than 63 octets")


def _check_address_literal(domain: str) -> None:
    shown = _show(domain)
    if len(domain) < 3 or not domain.endswith("]"):
        raise InvalidInputError(f"malformed address literal {shown}")
    inner = domain[1:-1]
    if inner[:5].lower() == "ipv6:":
        text = inner[5:]
        if text and all(ch in "0123456789abcdefABCDEF:." for ch in text):
            try:
                ipaddress.IPv6Address(text)
            except ValueError:
                pass
            else:
                return
        raise InvalidInputError(f"invalid IPv6 address literal {shown}")
    if inner and all(ch in "0123456789." for ch in inner):
        try:
            ipaddress.IPv4Address(inner)
        except ValueError:
            pass
        else:
            return
    raise InvalidInputError(
        f"invalid address literal {shown}: expected [IPv4] or [IPv6:...] "
        "(general address literals are not supported)"
    )


def check_domain(domain: str, *, allow_utf8: bool, what: str = "domain") -> None:
    """Validate an LDH (or U-label) domain or an address literal.

    ``domain`` must already have passed :func:`check_no_controls`. Used for
    envelope domains and, with ``allow_utf8=False``, for the EHLO/HELO name.
    """
    if not domain:
        raise InvalidInputError(f"{what} is empty")
    if _octets(domain) > MAX_DOMAIN:
        raise InvalidInputError(f"{what} {_show(domain)} is longer than {MAX_DOMAIN} octets")
    if domain.startswith("["):
        _check_address_literal(domain)
        return
    if domain.endswith("]"):
        raise InvalidInputError(f"malformed address literal {_show(domain)}")
    labels = domain.split(".")
    for label in labels:
        _check_label(label, domain, allow_utf8, what)
    if labels[-1].isascii() and labels[-1].isdigit():
        raise InvalidInputError(
            f"{what} {_show(domain)}: the last label cannot be all-numeric "
            "(write an IP address as [192.0.2.1])"
        )


def _parse_path(value: object, *, kind: str, allow_null: bool, allow_postmaster: bool) -> str:
    """Validate a path and return the normalised address (without brackets)."""
    text = check_no_controls(value, kind)
    shown = _show(text)
    raw = text
    if raw.startswith("<") or raw.endswith(">"):
        if len(raw) < 2 or not (raw.startswith("<") and raw.endswith(">")):
            raise InvalidInputError(
                f"{kind} {shown}: pass a bare address (optionally in one pair of <>), "
                "not 'Name <address>'"
            )
        raw = raw[1:-1]
    if "<" in raw or ">" in raw:
        raise InvalidInputError(f"{kind} {shown}: stray angle bracket")
    for ch in raw:
        if ch.isspace() or (not ch.isascii() and not is_safe_non_ascii(ch)):
            raise InvalidInputError(f"{kind} {shown} contains whitespace or a format character")
        if ch in "()":
            raise InvalidInputError(f"{kind} {shown}: comments are not allowed in an address")
    if not raw:
        if allow_null:
            return ""
        raise InvalidInputError(f"{kind} cannot be the null path <>")
    if allow_postmaster and raw.lower() == "postmaster":
        return raw
    at_count = raw.count("@")
    if at_count == 0:
        raise InvalidInputError(f"{kind} {shown} has no '@domain'")
    if at_count > 1:
        raise InvalidInputError(
            f"{kind} {shown}: '@' may appear only once "
            "(quoted local parts containing '@' and source routes are refused)"
        )
    local, domain = raw.split("@")
    local = _check_local_part(local, shown)
    if _octets(local) > MAX_LOCAL_PART:
        raise InvalidInputError(f"{kind} {shown}: local part longer than {MAX_LOCAL_PART} octets")
    check_domain(domain, allow_utf8=True, what=f"{kind} domain")
    address = f"{local}@{domain}"
    if _octets(address) + 2 > MAX_PATH:
        raise InvalidInputError(f"{kind} {shown}: path longer than {MAX_PATH} octets")
    return address


@functools.lru_cache(maxsize=4096)
def _parse_path_cached(text: str, kind: str, allow_null: bool, allow_postmaster: bool) -> str:
    """`_parse_path` for an exact ``str``; failures raise and are never cached."""
    return _parse_path(text, kind=kind, allow_null=allow_null, allow_postmaster=allow_postmaster)


class _EnvelopePath:
    """Shared implementation of the two immutable path types."""

    __slots__ = ("_address", "_needs_smtputf8")
    _allow_null: ClassVar[bool] = False
    _allow_postmaster: ClassVar[bool] = False

    _address: str
    _needs_smtputf8: bool

    def __init__(self, address: str | ReversePath | ForwardPath) -> None:
        source: Any = address
        if isinstance(source, _EnvelopePath):
            source = source._address
        if type(source) is str:
            # Senders and recipients repeat across a bulk job: parse each once.
            parsed = _parse_path_cached(
                source, type(self).__name__, self._allow_null, self._allow_postmaster
            )
        else:
            parsed = _parse_path(
                source,
                kind=type(self).__name__,
                allow_null=self._allow_null,
                allow_postmaster=self._allow_postmaster,
            )
        object.__setattr__(self, "_address", parsed)
        object.__setattr__(self, "_needs_smtputf8", not parsed.isascii())

    @property
    def address(self) -> str:
        """The validated addr-spec, exactly as it goes on the wire (no brackets)."""
        return self._address

    @property
    def needs_smtputf8(self) -> bool:
        """True if the address has non-ASCII characters, so MAIL needs SMTPUTF8."""
        return self._needs_smtputf8

    def to_wire(self) -> str:
        """The path as written after ``MAIL FROM:`` / ``RCPT TO:``."""
        return f"<{self._address}>"

    def __str__(self) -> str:
        return self._address

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._address!r})"

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        assert isinstance(other, _EnvelopePath)
        return self._address == other._address

    def __hash__(self) -> int:
        return hash((type(self).__name__, self._address))

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"{type(self).__name__} is immutable")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"{type(self).__name__} is immutable")

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self._address,))


class ReversePath(_EnvelopePath):
    """The ``MAIL FROM`` path: a mailbox, or the null path (``""`` or ``"<>"``).

    >>> ReversePath("<user@example.com>").to_wire()
    '<user@example.com>'
    >>> ReversePath("").is_null
    True
    """

    __slots__ = ()
    _allow_null = True

    @property
    def is_null(self) -> bool:
        """True for the null reverse-path ``<>`` (bounces and other notifications)."""
        return self._address == ""


class ForwardPath(_EnvelopePath):
    """The ``RCPT TO`` path: a mailbox, or ``Postmaster`` without a domain.

    The null path is refused. ``Postmaster`` (any case, RFC 5321 4.1.1.3) is
    the one address accepted without a domain.
    """

    __slots__ = ()
    _allow_postmaster = True


def xtext(value: str) -> str:
    """Encode ``value`` as RFC 3461 xtext.

    Printable ASCII other than ``+`` and ``=`` is kept; every other ASCII
    character becomes ``+XX`` (upper-case hex). Non-ASCII text cannot be
    represented and raises :class:`InvalidInputError`.
    """
    if not isinstance(value, str):
        raise InvalidInputError(f"xtext value must be a str, not {type(value).__name__}")
    out: list[str] = []
    for ch in value:
        cp = ord(ch)
        if cp > 0x7F:
            raise InvalidInputError(f"xtext cannot encode non-ASCII text: {_show(value)}")
        if 0x21 <= cp <= 0x7E and ch not in "+=":
            out.append(ch)
        else:
            out.append(f"+{cp:02X}")
    return "".join(out)


def utf8_addr_xtext(value: str) -> str:
    """Encode ``value`` as RFC 6533 ``utf-8-addr-xtext``.

    QCHARs (printable ASCII except ``+``, ``=`` and ``\\``) are kept; every
    other character is written as ``\\x{HEX}`` with its code point in
    upper-case hex (at least two digits). NUL and lone surrogates cannot be
    represented and raise :class:`InvalidInputError`.
    """
    if not isinstance(value, str):
        raise InvalidInputError(f"utf-8-addr-xtext value must be a str, not {type(value).__name__}")
    out: list[str] = []
    for ch in value:
        cp = ord(ch)
        if 0x21 <= cp <= 0x7E and ch not in "+=\\":
            out.append(ch)
        elif cp == 0 or 0xD800 <= cp <= 0xDFFF:
            raise InvalidInputError(f"utf-8-addr-xtext cannot encode {ch!r}")
        else:
            out.append(f"\\x{{{cp:02X}}}")
    return "".join(out)
