"""Every command the client sends, as validated, immutable values.

Each command is a frozen dataclass that checks its arguments when it is
constructed, so a bad argument raises
:class:`~trio_smtp._core.errors.InvalidInputError` before a single byte
exists (SECURITY 18 and 21):

- CR, LF and NUL (and every other control character) are refused in every
  text argument: addresses, ESMTP parameters, the EHLO/LHLO/HELO name, the
  AUTH mechanism, VRFY/EXPN/HELP text.
- The encoded line, CRLF included, is at most :data:`MAX_COMMAND_LINE` octets
  (RFC 5321 4.5.3.1.4). A SASL continuation line (:class:`AuthResponse`) may
  be up to :data:`MAX_AUTH_RESPONSE_LINE` octets (RFC 4954 4).
- Lines are ASCII; UTF-8 appears only where the caller enabled SMTPUTF8
  (RFC 6531).

:meth:`Command.encode` returns the whole line including CRLF;
:meth:`Command.redacted` renders it for logs with SASL payloads masked.
"""

from __future__ import annotations

import base64
import enum
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import ClassVar, Literal

from .address import (
    ForwardPath,
    ReversePath,
    check_domain,
    check_no_controls,
    is_safe_non_ascii,
    utf8_addr_xtext,
    xtext,
)
from .errors import InvalidInputError

__all__ = [
    "MAX_AUTH_RESPONSE_LINE",
    "MAX_COMMAND_LINE",
    "Auth",
    "AuthResponse",
    "Bdat",
    "Command",
    "Data",
    "Ehlo",
    "Expn",
    "Helo",
    "Help",
    "Lhlo",
    "Mail",
    "MailParams",
    "Noop",
    "Quit",
    "Rcpt",
    "RcptParams",
    "Rset",
    "SmtpOp",
    "StartTLS",
    "Vrfy",
    "auth_line_fits",
]


class SmtpOp(enum.Enum):
    """What was in progress: names each command and, through it, each reply."""

    GREETING = "GREETING"
    EHLO = "EHLO"
    LHLO = "LHLO"
    HELO = "HELO"
    STARTTLS = "STARTTLS"
    AUTH = "AUTH"
    MAIL = "MAIL"
    RCPT = "RCPT"
    DATA = "DATA"
    DATA_END = "DATA_END"
    BDAT = "BDAT"
    RSET = "RSET"
    NOOP = "NOOP"
    VRFY = "VRFY"
    EXPN = "EXPN"
    HELP = "HELP"
    QUIT = "QUIT"


#: Longest command line in octets, CRLF included (RFC 5321 4.5.3.1.4).
MAX_COMMAND_LINE = 512
#: Longest SASL response line in octets, CRLF included (RFC 4954 4).
MAX_AUTH_RESPONSE_LINE = 12288
#: Largest SIZE / BDAT value: RFC 1870 allows at most 20 digits.
MAX_SIZE_VALUE = 10**20 - 1
#: Longest ENVID (RFC 3461 4.4), applied to the xtext actually sent.
MAX_ENVID = 100

_SASL_NAME = re.compile(r"[A-Z0-9_-]{1,20}")
_BODY_VALUES = ("7BIT", "8BITMIME", "BINARYMIME")
_RET_VALUES = ("FULL", "HDRS")
_NOTIFY_VALUES = ("SUCCESS", "FAILURE", "DELAY")

NotifyKeyword = Literal["SUCCESS", "FAILURE", "DELAY"]


# -- small validators ---------------------------------------------------------


def _check_bool(value: object, what: str) -> bool:
    if not isinstance(value, bool):
        raise InvalidInputError(f"{what} must be a bool, not {type(value).__name__}")
    return value


def _check_count(value: object, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidInputError(f"{what} must be an int, not {type(value).__name__}")
    if not 0 <= value <= MAX_SIZE_VALUE:
        raise InvalidInputError(f"{what} must be between 0 and {MAX_SIZE_VALUE}, not {value}")
    return value


def _check_keyword(value: object, allowed: tuple[str, ...], what: str) -> str:
    text = check_no_controls(value, what).upper()
    if text not in allowed:
        raise InvalidInputError(f"{what} must be one of {', '.join(allowed)}, not {value!r}")
    return text


def _check_text_argument(value: object, what: str, *, allow_utf8: bool) -> str:
    """Free text for VRFY/EXPN/HELP: non-empty, printable, no control characters."""
    text = check_no_controls(value, what)
    if not text.strip():
        raise InvalidInputError(f"{what} is empty")
    if text != text.strip():
        raise InvalidInputError(f"{what} has leading or trailing whitespace: {text!r}")
    for ch in text:
        if ch.isascii():
            continue
        if not allow_utf8:
            raise InvalidInputError(f"{what} is not ASCII (set smtputf8=True): {text!r}")
        if not is_safe_non_ascii(ch):
            raise InvalidInputError(f"{what} contains a space or format character: {text!r}")
    return text


def _check_mechanism(value: object) -> str:
    name = check_no_controls(value, "SASL mechanism").upper()
    if not _SASL_NAME.fullmatch(name):
        raise InvalidInputError(
            f"SASL mechanism must be 1-20 characters of A-Z, 0-9, '-' and '_', not {value!r}"
        )
    return name


def _check_payload(value: object, what: str) -> bytes:
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value)
    raise InvalidInputError(f"{what} must be bytes, not {type(value).__name__}")


def _finish_line(line: str, *, utf8: bool, limit: int, what: str) -> bytes:
    """Add CRLF to ``line`` after the last checks every line gets."""
    if "\r" in line or "\n" in line or "\x00" in line:
        raise InvalidInputError(f"{what} command contains CR, LF or NUL")
    if not line.isascii() and not utf8:
        raise InvalidInputError(f"{what} command is not ASCII and SMTPUTF8 is not in use")
    data = line.encode("utf-8") + b"\r\n"
    if len(data) > limit:
        raise InvalidInputError(
            f"{what} command line is {len(data)} octets, longer than the limit of {limit}"
        )
    return data


# -- ESMTP parameters ---------------------------------------------------------


@dataclass(frozen=True)
class MailParams:
    """ESMTP parameters of ``MAIL FROM``.

    ``body``: ``BODY=`` (RFC 6152, RFC 3030); ``smtputf8``: ``SMTPUTF8``
    (RFC 6531), also required for a non-ASCII sender; ``size``: ``SIZE=``
    (RFC 1870); ``ret`` and ``envid``: DSN (RFC 3461), ``envid`` printable
    ASCII sent as xtext; ``requiretls``: ``REQUIRETLS`` (RFC 8689).
    Keyword values are accepted in any case and stored upper-case.
    """

    body: Literal["7BIT", "8BITMIME", "BINARYMIME"] | None = None
    smtputf8: bool = False
    size: int | None = None
    ret: Literal["FULL", "HDRS"] | None = None
    envid: str | None = None
    requiretls: bool = False

    def __post_init__(self) -> None:
        if self.body is not None:
            object.__setattr__(self, "body", _check_keyword(self.body, _BODY_VALUES, "BODY"))
        _check_bool(self.smtputf8, "smtputf8")
        if self.size is not None:
            _check_count(self.size, "SIZE")
        if self.ret is not None:
            object.__setattr__(self, "ret", _check_keyword(self.ret, _RET_VALUES, "RET"))
        if self.envid is not None:
            envid = check_no_controls(self.envid, "ENVID")
            if not envid:
                raise InvalidInputError("ENVID is empty")
            if not all(0x21 <= ord(ch) <= 0x7E for ch in envid):
                raise InvalidInputError(
                    f"ENVID must be printable ASCII without spaces (RFC 3461 4.4): {envid!r}"
                )
            if len(xtext(envid)) > MAX_ENVID:
                raise InvalidInputError(f"ENVID is longer than {MAX_ENVID} characters as xtext")
        _check_bool(self.requiretls, "requiretls")

    def required_extensions(self) -> tuple[str, ...]:
        """The EHLO keywords the server must advertise for these parameters.

        Any ``BODY=`` value needs 8BITMIME, the extension that defines the
        parameter (BINARYMIME needs BINARYMIME and CHUNKING instead).
        """
        needed: list[str] = []
        if self.body in ("7BIT", "8BITMIME"):
            needed.append("8BITMIME")
        elif self.body == "BINARYMIME":
            needed += ["BINARYMIME", "CHUNKING"]
        if self.smtputf8:
            needed.append("SMTPUTF8")
        if self.size is not None:
            needed.append("SIZE")
        if self.ret is not None or self.envid is not None:
            needed.append("DSN")
        if self.requiretls:
            needed.append("REQUIRETLS")
        return tuple(needed)

    def to_wire(self) -> list[str]:
        """The parameters as sent, in order, without their separating spaces."""
        params: list[str] = []
        if self.body is not None:
            params.append(f"BODY={self.body}")
        if self.smtputf8:
            params.append("SMTPUTF8")
        if self.size is not None:
            params.append(f"SIZE={self.size}")
        if self.ret is not None:
            params.append(f"RET={self.ret}")
        if self.envid is not None:
            params.append(f"ENVID={xtext(self.envid)}")
        if self.requiretls:
            params.append("REQUIRETLS")
        return params


@dataclass(frozen=True)
class RcptParams:
    """ESMTP parameters of ``RCPT TO`` (DSN, RFC 3461).

    ``notify``: any iterable of ``"SUCCESS"``, ``"FAILURE"``, ``"DELAY"`` (one
    keyword alone is accepted too), or ``"NEVER"`` which cannot be combined;
    stored upper-case, without duplicates, in that canonical order.
    ``orcpt``: the original recipient, validated like a :class:`ForwardPath`
    and sent as ``rfc822;`` xtext, or ``utf-8;`` utf-8-addr-xtext (RFC 6533)
    when it is not ASCII.
    """

    notify: tuple[NotifyKeyword, ...] | Literal["NEVER"] | None = None
    orcpt: str | None = None

    def __post_init__(self) -> None:
        if self.notify is not None:
            object.__setattr__(self, "notify", self._normalise_notify(self.notify))
        if self.orcpt is not None:
            object.__setattr__(self, "orcpt", ForwardPath(self.orcpt).address)

    @staticmethod
    def _normalise_notify(value: object) -> tuple[str, ...] | str:
        allowed = (*_NOTIFY_VALUES, "NEVER")
        items: list[str]
        if isinstance(value, str):
            items = [_check_keyword(value, allowed, "NOTIFY")]
        elif isinstance(value, Iterable):
            items = [_check_keyword(item, allowed, "NOTIFY") for item in value]
        else:
            raise InvalidInputError(f"NOTIFY must be a str or an iterable of str, not {value!r}")
        if not items:
            raise InvalidInputError("NOTIFY needs at least one keyword")
        if "NEVER" in items:
            if any(item != "NEVER" for item in items):
                raise InvalidInputError("NOTIFY=NEVER cannot be combined with other keywords")
            return "NEVER"
        return tuple(keyword for keyword in _NOTIFY_VALUES if keyword in items)

    def required_extensions(self) -> tuple[str, ...]:
        """``("DSN",)`` when any parameter is set, else ``()``."""
        if self.notify is not None or self.orcpt is not None:
            return ("DSN",)
        return ()

    def to_wire(self) -> list[str]:
        """The parameters as sent, in order, without their separating spaces."""
        params: list[str] = []
        if self.notify is not None:
            keywords = self.notify if isinstance(self.notify, str) else ",".join(self.notify)
            params.append(f"NOTIFY={keywords}")
        if self.orcpt is not None:
            if self.orcpt.isascii():
                params.append(f"ORCPT=rfc822;{xtext(self.orcpt)}")
            else:
                params.append(f"ORCPT=utf-8;{utf8_addr_xtext(self.orcpt)}")
        return params


_NO_MAIL_PARAMS = MailParams()
_NO_RCPT_PARAMS = RcptParams()


# -- commands -----------------------------------------------------------------


class Command:
    """Base of every command: validated at construction, encoded on demand.

    Subclasses are frozen dataclasses; ``op`` names the command and
    ``pipelinable`` says whether more commands may follow it in the same
    write (RFC 2920 3.1).
    """

    __slots__ = ()

    op: ClassVar[SmtpOp]
    pipelinable: ClassVar[bool] = False
    _line_limit: ClassVar[int] = MAX_COMMAND_LINE

    def __post_init__(self) -> None:
        self._validate()
        # The line checks (length, characters) run now, not at send time, and
        # the bytes they produce are the ones sent: commands are immutable.
        object.__setattr__(self, "_wire", self._render())

    def _validate(self) -> None:
        """Check and normalise the fields; subclasses with arguments override it."""

    def _line(self) -> str:
        raise NotImplementedError

    def _utf8_allowed(self) -> bool:
        return False

    def encode(self) -> bytes:
        """The whole command line, CRLF included."""
        wire: bytes = self.__dict__["_wire"]
        return wire

    def _render(self) -> bytes:
        return _finish_line(
            self._line(), utf8=self._utf8_allowed(), limit=self._line_limit, what=self.op.name
        )

    def redacted(self) -> str:
        """The line without CRLF, safe to log (SASL payloads masked)."""
        return self._line()


@dataclass(frozen=True)
class _HelloCommand(Command):
    hostname: str
    _verb: ClassVar[str]

    def _validate(self) -> None:
        name = check_no_controls(self.hostname, f"{self._verb} hostname")
        check_domain(name, allow_utf8=False, what=f"{self._verb} hostname")

    def _line(self) -> str:
        return f"{self._verb} {self.hostname}"


@dataclass(frozen=True)
class Ehlo(_HelloCommand):
    """``EHLO hostname`` (RFC 5321 4.1.1.1): an ASCII LDH name or address literal."""

    op = SmtpOp.EHLO
    _verb = "EHLO"


@dataclass(frozen=True)
class Lhlo(_HelloCommand):
    """``LHLO hostname`` (RFC 2033 4.1), the LMTP greeting."""

    op = SmtpOp.LHLO
    _verb = "LHLO"


@dataclass(frozen=True)
class Helo(_HelloCommand):
    """``HELO hostname`` (RFC 5321 4.1.1.1), for servers that refuse EHLO."""

    op = SmtpOp.HELO
    _verb = "HELO"


@dataclass(frozen=True)
class StartTLS(Command):
    """``STARTTLS`` (RFC 3207)."""

    op = SmtpOp.STARTTLS

    def _line(self) -> str:
        return "STARTTLS"


@dataclass(frozen=True, repr=False)
class Auth(Command):
    """``AUTH mechanism [initial-response]`` (RFC 4954 4).

    The mechanism is a SASL name (upper-cased). The initial response is raw
    bytes (PLAIN's NULs included) and goes out base64-encoded, so no byte of
    it can break the line; an empty one is sent as ``=``. If the line would
    exceed 512 octets construction fails: check :func:`auth_line_fits` first
    and fall back to ``Auth(mechanism)`` plus an :class:`AuthResponse`.
    The repr and :meth:`redacted` never show the initial response.
    """

    mechanism: str
    initial_response: bytes | None = None

    op = SmtpOp.AUTH

    def _validate(self) -> None:
        object.__setattr__(self, "mechanism", _check_mechanism(self.mechanism))
        if self.initial_response is not None:
            payload = _check_payload(self.initial_response, "initial response")
            object.__setattr__(self, "initial_response", payload)

    def _line(self) -> str:
        if self.initial_response is None:
            return f"AUTH {self.mechanism}"
        encoded = base64.b64encode(self.initial_response).decode("ascii") or "="
        return f"AUTH {self.mechanism} {encoded}"

    def redacted(self) -> str:
        if self.initial_response is None:
            return f"AUTH {self.mechanism}"
        return f"AUTH {self.mechanism} ****"

    def __repr__(self) -> str:
        shown = "None" if self.initial_response is None else "<redacted>"
        return f"Auth(mechanism={self.mechanism!r}, initial_response={shown})"


def auth_line_fits(mechanism: str, initial_response: bytes) -> bool:
    """True if ``AUTH mechanism initial_response`` fits in one 512-octet line.

    Raises :class:`InvalidInputError` for an invalid mechanism name.
    """
    name = _check_mechanism(mechanism)
    size = len(_check_payload(initial_response, "initial response"))
    encoded = 4 * ((size + 2) // 3) if size else 1
    return len("AUTH ") + len(name) + 1 + encoded + 2 <= MAX_COMMAND_LINE


@dataclass(frozen=True, repr=False)
class AuthResponse(Command):
    """One client line of a SASL exchange (RFC 4954 4).

    ``data`` is sent base64-encoded (an empty line for empty data);
    ``None`` sends ``*``, which cancels the exchange. The line may be up to
    :data:`MAX_AUTH_RESPONSE_LINE` octets, as RFC 4954 requires servers to
    accept, so a token too long for the AUTH line fits here.
    """

    data: bytes | None

    op = SmtpOp.AUTH
    _line_limit = MAX_AUTH_RESPONSE_LINE

    def _validate(self) -> None:
        if self.data is not None:
            object.__setattr__(self, "data", _check_payload(self.data, "SASL response"))

    def _line(self) -> str:
        if self.data is None:
            return "*"
        return base64.b64encode(self.data).decode("ascii")

    def redacted(self) -> str:
        return "*" if self.data is None else "****"

    def __repr__(self) -> str:
        return "AuthResponse(cancel)" if self.data is None else "AuthResponse(<redacted>)"


@dataclass(frozen=True, init=False)
class Mail(Command):
    """``MAIL FROM:<sender> [params]`` (RFC 5321 4.1.1.2).

    ``sender`` may be a :class:`ReversePath` or a ``str`` (validated as
    one). A non-ASCII sender needs ``MailParams(smtputf8=True)``, which also
    allows UTF-8 on the line.
    """

    sender: ReversePath
    params: MailParams = _NO_MAIL_PARAMS

    op = SmtpOp.MAIL
    pipelinable = True

    def __init__(self, sender: ReversePath | str, params: MailParams = _NO_MAIL_PARAMS) -> None:
        path = sender if isinstance(sender, ReversePath) else ReversePath(sender)
        if not isinstance(params, MailParams):
            raise InvalidInputError(f"params must be MailParams, not {type(params).__name__}")
        object.__setattr__(self, "sender", path)
        object.__setattr__(self, "params", params)
        self.__post_init__()

    def _validate(self) -> None:
        if self.sender.needs_smtputf8 and not self.params.smtputf8:
            raise InvalidInputError(
                f"sender {self.sender.address!r} is not ASCII: use MailParams(smtputf8=True)"
            )

    def _utf8_allowed(self) -> bool:
        return self.params.smtputf8

    def _line(self) -> str:
        return " ".join([f"MAIL FROM:{self.sender.to_wire()}", *self.params.to_wire()])


@dataclass(frozen=True, init=False)
class Rcpt(Command):
    """``RCPT TO:<recipient> [params]`` (RFC 5321 4.1.1.3).

    ``recipient`` may be a :class:`ForwardPath` or a ``str``. A non-ASCII
    recipient needs ``smtputf8=True`` (the transaction's MAIL carried
    SMTPUTF8).
    """

    recipient: ForwardPath
    params: RcptParams = _NO_RCPT_PARAMS
    smtputf8: bool = False

    op = SmtpOp.RCPT
    pipelinable = True

    def __init__(
        self,
        recipient: ForwardPath | str,
        params: RcptParams = _NO_RCPT_PARAMS,
        smtputf8: bool = False,
    ) -> None:
        path = recipient if isinstance(recipient, ForwardPath) else ForwardPath(recipient)
        if not isinstance(params, RcptParams):
            raise InvalidInputError(f"params must be RcptParams, not {type(params).__name__}")
        object.__setattr__(self, "recipient", path)
        object.__setattr__(self, "params", params)
        object.__setattr__(self, "smtputf8", _check_bool(smtputf8, "smtputf8"))
        self.__post_init__()

    def _validate(self) -> None:
        if self.recipient.needs_smtputf8 and not self.smtputf8:
            raise InvalidInputError(
                f"recipient {self.recipient.address!r} is not ASCII: SMTPUTF8 is required"
            )

    def _utf8_allowed(self) -> bool:
        return self.smtputf8

    def _line(self) -> str:
        return " ".join([f"RCPT TO:{self.recipient.to_wire()}", *self.params.to_wire()])


@dataclass(frozen=True)
class Data(Command):
    """``DATA`` (RFC 5321 4.1.1.4); the body and end-of-data follow separately."""

    op = SmtpOp.DATA

    def _line(self) -> str:
        return "DATA"


@dataclass(frozen=True)
class Bdat(Command):
    """``BDAT size [LAST]`` (RFC 3030 2); the ``size`` octets follow separately."""

    size: int
    last: bool = False

    op = SmtpOp.BDAT
    pipelinable = True

    def _validate(self) -> None:
        _check_count(self.size, "BDAT size")
        _check_bool(self.last, "last")

    def _line(self) -> str:
        return f"BDAT {self.size} LAST" if self.last else f"BDAT {self.size}"


@dataclass(frozen=True)
class Rset(Command):
    """``RSET`` (RFC 5321 4.1.1.5)."""

    op = SmtpOp.RSET
    pipelinable = True

    def _line(self) -> str:
        return "RSET"


@dataclass(frozen=True)
class Noop(Command):
    """``NOOP`` (RFC 5321 4.1.1.9)."""

    op = SmtpOp.NOOP

    def _line(self) -> str:
        return "NOOP"


@dataclass(frozen=True)
class _QueryCommand(Command):
    argument: str
    smtputf8: bool = False
    _verb: ClassVar[str]

    def _validate(self) -> None:
        _check_bool(self.smtputf8, "smtputf8")
        _check_text_argument(self.argument, f"{self._verb} argument", allow_utf8=self.smtputf8)

    def _utf8_allowed(self) -> bool:
        return self.smtputf8

    def _line(self) -> str:
        suffix = " SMTPUTF8" if self.smtputf8 else ""
        return f"{self._verb} {self.argument}{suffix}"


@dataclass(frozen=True)
class Vrfy(_QueryCommand):
    """``VRFY string [SMTPUTF8]`` (RFC 5321 4.1.1.6; RFC 6531 3.7.4.2)."""

    op = SmtpOp.VRFY
    _verb = "VRFY"


@dataclass(frozen=True)
class Expn(_QueryCommand):
    """``EXPN string [SMTPUTF8]`` (RFC 5321 4.1.1.7; RFC 6531 3.7.4.2)."""

    op = SmtpOp.EXPN
    _verb = "EXPN"


@dataclass(frozen=True)
class Help(Command):
    """``HELP [topic]`` (RFC 5321 4.1.1.8); the topic is ASCII text."""

    topic: str | None = None

    op = SmtpOp.HELP

    def _validate(self) -> None:
        if self.topic is not None:
            _check_text_argument(self.topic, "HELP topic", allow_utf8=False)

    def _line(self) -> str:
        return "HELP" if self.topic is None else f"HELP {self.topic}"


@dataclass(frozen=True)
class Quit(Command):
    """``QUIT`` (RFC 5321 4.1.1.10)."""

    op = SmtpOp.QUIT

    def _line(self) -> str:
        return "QUIT"
