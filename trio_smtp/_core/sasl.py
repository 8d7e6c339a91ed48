"""SASL client mechanisms for SMTP AUTH (RFC 4954) as small state machines.

One `SaslExchange` is one authentication attempt. The session sends
``exchange.start()`` (an `Auth` command, with the initial response when the
line fits 512 octets), then answers every ``334`` challenge with
``exchange.respond(reply)`` until the server's final reply (235, or an
error). The exchange never performs I/O and never raises because of what a
server sent: a challenge that is not strict base64, a round too many, or an
OAUTHBEARER error makes it answer with the cancel line ``*`` (or the
mechanism's own error acknowledgement), and records a log-safe reason.

Mechanisms (`AuthMechanism`):

* ``PLAIN`` (RFC 4616): ``authzid NUL user NUL password``, one round.
* ``LOGIN`` (draft-murchison-sasl-login): the user name, then the password,
  answering the two challenges by order, not by their text.
* ``XOAUTH2`` (Google / Microsoft): ``user=U ^A auth=Bearer T ^A ^A``; an
  error challenge (base64 JSON) is answered once with an empty response.
* ``OAUTHBEARER`` (RFC 7628): GS2 header plus ``host``/``port``/``auth``
  key-value pairs; an error challenge is answered with ``^A`` (``AQ==``), the
  token is never sent twice.
* ``CRAM-MD5`` (RFC 2195): ``user HMAC-MD5(challenge, password)``. Legacy; it
  is never chosen automatically (`choose_mechanism`).

Credentials stay inside the exchange: they are absent from every ``repr``,
exception message, `SaslExchange.cancel_reason` and
`SaslExchange.error_detail` (SECURITY 37).
"""

from __future__ import annotations

import base64
import binascii
import enum
import hashlib
import hmac
import json
import re
from typing import ClassVar

from .commands import MAX_AUTH_RESPONSE_LINE, Auth, AuthResponse, auth_line_fits
from .errors import InvalidInputError, LocalProtocolError, SMTPProtocolError, UnsupportedMechanism
from .reply import Reply, escape_text

__all__ = [
    "MAX_CHALLENGE_OCTETS",
    "MAX_ERROR_JSON_OCTETS",
    "AuthMechanism",
    "CramMd5Exchange",
    "LoginExchange",
    "OAuthBearerExchange",
    "PlainExchange",
    "SaslExchange",
    "XOAuth2Exchange",
    "choose_mechanism",
    "exchange_for",
]

#: Longest challenge text (the base64 after ``334 ``) handled; RFC 4954 4
#: requires 12288 octets (SECURITY 35). A longer one is cancelled.
MAX_CHALLENGE_OCTETS = 12288
#: Largest decoded OAuth error document parsed (SECURITY 36).
MAX_ERROR_JSON_OCTETS = 4096
# Longest value of one error-detail field kept (status, scope).
_MAX_DETAIL_FIELD_CHARS = 200
# An error detail sharing this many consecutive characters with the token is redacted.
_SECRET_WINDOW = 12

_BASE64 = re.compile(rb"(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?")
_REDACTED = "<redacted>"


class AuthMechanism(enum.Enum):
    """The SASL mechanisms trio-smtp implements; the value is the IANA name."""

    PLAIN = "PLAIN"
    LOGIN = "LOGIN"
    XOAUTH2 = "XOAUTH2"
    OAUTHBEARER = "OAUTHBEARER"
    CRAM_MD5 = "CRAM-MD5"


class _Secret:
    """A credential that keeps itself out of reprs, tracebacks and logs."""

    __slots__ = ("value",)

    def __init__(self, value: str) -> None:
        self.value = value

    def __repr__(self) -> str:
        return _REDACTED

    __str__ = __repr__


def _decode_challenge(reply: Reply) -> bytes | None:
    """The decoded challenge of a 334 reply, or None if it is malformed.

    Strict: one line, canonical base64 only (no whitespace, no misplaced or
    missing padding, no stray bits). Empty text is an empty challenge.
    """
    if len(reply.lines) > 1:
        return None
    text = reply.lines[0] if reply.lines else b""
    if len(text) > MAX_CHALLENGE_OCTETS or not _BASE64.fullmatch(text):
        return None
    try:
        decoded = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        return None
    if base64.b64encode(decoded) != text:
        return None  # non-zero padding bits: not the canonical encoding
    return decoded


def _encode(what: str, value: str) -> bytes:
    try:
        return value.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidInputError(f"the {what} is not valid Unicode") from None


def _check_text(what: str, value: str, forbidden: str = "") -> None:
    """Refuse NUL, CR, LF (and ``forbidden``) without ever echoing ``value``."""
    if not isinstance(value, str):
        raise InvalidInputError(f"the {what} must be a str, not {type(value).__name__}")
    for char, name in (("\0", "NUL"), ("\r", "CR"), ("\n", "LF")):
        if char in value:
            raise InvalidInputError(f"the {what} contains {name}")
    for char in forbidden:
        if char in value:
            raise InvalidInputError(f"the {what} contains \\x{ord(char):02x}")
    _encode(what, value)


def _check_response_size(what: str, payload: bytes) -> None:
    """Refuse, up front, a credential too long for any SASL response line.

    Checked at construction so that `SaslExchange.respond` never fails on
    our own data halfway through an exchange.
    """
    if 4 * ((len(payload) + 2) // 3) + 2 > MAX_AUTH_RESPONSE_LINE:
        raise InvalidInputError(
            f"the {what} is too long for a SASL response line "
            f"({MAX_AUTH_RESPONSE_LINE} octets once base64-encoded)"
        )


class SaslExchange:
    """One authentication attempt with one mechanism; see the module docstring.

    Create one with `exchange_for`. Drive it with `start` once, then
    `respond` for every 334 reply. Subclasses implement `_initial_response`
    (the payload sent with AUTH, or None) and `_answer` (the payload for one
    decoded challenge, or None to cancel after setting the reason).
    """

    mechanism: ClassVar[AuthMechanism]

    __slots__ = ("_cancel_reason", "_cancelled", "_error_detail", "_ir_sent", "_rounds", "_started")

    def __init__(self) -> None:
        self._started = False
        self._ir_sent = False
        self._rounds = 0
        self._cancelled = False
        self._cancel_reason: str | None = None
        self._error_detail: str | None = None

    # -- the protocol -----------------------------------------------------

    def start(self) -> Auth:
        """The AUTH command that opens the exchange.

        It carries the initial response when the mechanism has one and the
        AUTH line stays within 512 octets; otherwise the response goes out
        as the answer to the server's first (empty) 334.
        """
        if self._started:
            raise LocalProtocolError("this SASL exchange has already been started")
        self._started = True
        name = self.mechanism.value
        initial = self._initial_response()
        if initial is not None and auth_line_fits(name, initial):
            self._ir_sent = True
            return Auth(name, initial)
        return Auth(name)

    def respond(self, challenge: Reply) -> AuthResponse:
        """The answer to one 334 challenge.

        Returns the next response, or ``AuthResponse(None)`` (the cancel line
        ``*``) when the challenge is not strict base64, arrives after the
        mechanism's last round, or is otherwise unacceptable. After a cancel
        the server must end the exchange with an error (501); a further 334
        raises `SMTPProtocolError`.
        """
        if not self._started:
            raise LocalProtocolError("respond() before start()")
        if challenge.code != 334:
            raise LocalProtocolError(f"only 334 replies are challenges, not {challenge.code}")
        if self._cancelled:
            raise SMTPProtocolError(
                "the server sent another challenge after the exchange was cancelled"
            )
        self._rounds += 1
        decoded = _decode_challenge(challenge)
        if decoded is None:
            return self._cancel("the challenge is not valid base64")
        answer = self._answer(decoded)
        if answer is None:
            return self._cancel(self._cancel_reason or "unexpected challenge")
        return AuthResponse(answer)

    # -- state ------------------------------------------------------------

    @property
    def started(self) -> bool:
        """Whether `start` has produced the AUTH command."""
        return self._started

    @property
    def initial_response_sent(self) -> bool:
        """Whether the AUTH command carried the initial response."""
        return self._ir_sent

    @property
    def rounds(self) -> int:
        """How many 334 challenges have been answered (or cancelled)."""
        return self._rounds

    @property
    def cancelled(self) -> bool:
        """Whether this exchange answered a challenge with ``*``."""
        return self._cancelled

    @property
    def cancel_reason(self) -> str | None:
        """Why the exchange was cancelled; fixed text, safe to log."""
        return self._cancel_reason

    @property
    def error_detail(self) -> str | None:
        """What an OAuth error challenge said (``status=... scope=...``), log-safe."""
        return self._error_detail

    def __repr__(self) -> str:
        state = f"rounds={self._rounds}"
        if not self._started:
            state = "not started"
        if self._ir_sent:
            state += " initial-response"
        if self._cancelled:
            state += f" cancelled={self._cancel_reason!r}"
        if self._error_detail is not None:
            state += f" error={self._error_detail!r}"
        return f"<{type(self).__name__} {self.mechanism.value} {state}>"

    __str__ = __repr__

    # -- for subclasses ---------------------------------------------------

    def _initial_response(self) -> bytes | None:
        return None

    def _answer(self, challenge: bytes) -> bytes | None:
        raise NotImplementedError

    def _cancel(self, reason: str) -> AuthResponse:
        self._cancelled = True
        self._cancel_reason = reason
        return AuthResponse(None)

    def _refuse(self, reason: str) -> None:
        """Record why the next answer is a cancel (returns None for `_answer`)."""
        self._cancel_reason = reason

    def _too_many(self) -> None:
        self._refuse(f"too many challenges for {self.mechanism.value}")


class PlainExchange(SaslExchange):
    """PLAIN (RFC 4616): one message, ``authzid NUL user NUL password``."""

    mechanism = AuthMechanism.PLAIN
    __slots__ = ("_authzid", "_password", "_user")

    def __init__(self, user: str, password: str, *, authzid: str | None = None) -> None:
        super().__init__()
        _check_text("user name", user)
        _check_text("password", password)
        _check_text("authorization identity", authzid or "")
        self._user = _encode("user name", user)
        self._password = _Secret(password)
        self._authzid = _encode("authorization identity", authzid or "")
        _check_response_size("PLAIN message", self._message())

    def _message(self) -> bytes:
        return b"\0".join((self._authzid, self._user, self._password.value.encode("utf-8")))

    def _initial_response(self) -> bytes:
        return self._message()

    def _answer(self, challenge: bytes) -> bytes | None:
        # Without the initial response, the first 334 (normally empty)
        # prompts for it. Anything more is a round PLAIN does not have.
        if self._ir_sent or self._rounds > 1:
            self._too_many()
            return None
        return self._message()


class LoginExchange(SaslExchange):
    """LOGIN: the user name, then the password; challenge text is ignored."""

    mechanism = AuthMechanism.LOGIN
    __slots__ = ("_password", "_user")

    def __init__(self, user: str, password: str) -> None:
        super().__init__()
        _check_text("user name", user)
        _check_text("password", password)
        self._user = _encode("user name", user)
        self._password = _Secret(password)
        _check_response_size("user name", self._user)
        _check_response_size("password", _encode("password", password))

    def _answer(self, challenge: bytes) -> bytes | None:
        if self._rounds == 1:
            return self._user
        if self._rounds == 2:
            return self._password.value.encode("utf-8")
        self._too_many()
        return None


class _OAuthExchange(SaslExchange):
    """Shared logic of XOAUTH2 and OAUTHBEARER.

    Round plan: [an empty prompt for the payload, when it did not fit the
    AUTH line], then at most one error challenge, acknowledged with
    `_error_ack` so the server can finish with its 5xx. The token goes out
    exactly once.
    """

    __slots__ = ("_error_seen", "_payload_sent", "_token")

    _error_ack: ClassVar[bytes]

    def __init__(self, token: str) -> None:
        super().__init__()
        self._token = _Secret(token)
        self._payload_sent = False
        self._error_seen = False

    def _payload(self) -> bytes:
        raise NotImplementedError

    def _initial_response(self) -> bytes:
        return self._payload()

    def start(self) -> Auth:
        command = super().start()
        self._payload_sent = self._ir_sent
        return command

    def _answer(self, challenge: bytes) -> bytes | None:
        if not self._payload_sent:
            if challenge:
                self._refuse("unexpected non-empty challenge before the token was sent")
                return None
            self._payload_sent = True
            return self._payload()
        if self._error_seen:
            self._too_many()
            return None
        self._error_seen = True
        self._error_detail = _describe_error(challenge, self._token.value)
        return self._error_ack


class XOAuth2Exchange(_OAuthExchange):
    """XOAUTH2: ``user=U\\x01auth=Bearer T\\x01\\x01``; errors get an empty answer."""

    mechanism = AuthMechanism.XOAUTH2
    _error_ack = b""
    __slots__ = ("_user",)

    def __init__(self, user: str, token: str) -> None:
        _check_text("user name", user, "\x01")
        _check_text("token", token, "\x01")
        super().__init__(token)
        self._user = _encode("user name", user)
        _check_response_size("XOAUTH2 message", self._payload())

    def _payload(self) -> bytes:
        token = self._token.value.encode("utf-8")
        return b"user=" + self._user + b"\x01auth=Bearer " + token + b"\x01\x01"


class OAuthBearerExchange(_OAuthExchange):
    """OAUTHBEARER (RFC 7628); errors are acknowledged with ``\\x01``."""

    mechanism = AuthMechanism.OAUTHBEARER
    _error_ack = b"\x01"
    __slots__ = ("_authzid", "_host", "_port")

    def __init__(
        self,
        user: str,
        token: str,
        *,
        authzid: str | None = None,
        host: str | None = None,
        port: int | None = None,
    ) -> None:
        _check_text("user name", user, "\x01")
        _check_text("token", token, "\x01")
        if authzid is not None:
            _check_text("authorization identity", authzid, "\x01")
        if host is not None:
            _check_text("host", host, "\x01")
        if port is not None and (
            isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535
        ):
            raise InvalidInputError("the port must be an int from 0 to 65535")
        super().__init__(token)
        identity = authzid if authzid is not None else user
        self._authzid = _encode("authorization identity", identity)
        self._host = None if host is None else _encode("host", host)
        self._port = port
        _check_response_size("OAUTHBEARER message", self._payload())

    def _payload(self) -> bytes:
        # RFC 7628 3.1 / RFC 5801 4: "," and "=" in the authzid are escaped.
        authzid = self._authzid.replace(b"=", b"=3D").replace(b",", b"=2C")
        parts = [b"n," + (b"a=" + authzid if authzid else b"") + b","]
        if self._host is not None:
            parts.append(b"host=" + self._host)
        if self._port is not None:
            parts.append(b"port=%d" % self._port)
        parts.append(b"auth=Bearer " + self._token.value.encode("utf-8"))
        return b"\x01".join(parts) + b"\x01\x01"


class CramMd5Exchange(SaslExchange):
    """CRAM-MD5 (RFC 2195): ``user hex(HMAC-MD5(password, challenge))``."""

    mechanism = AuthMechanism.CRAM_MD5
    __slots__ = ("_password", "_user")

    def __init__(self, user: str, password: str) -> None:
        super().__init__()
        _check_text("user name", user)
        _check_text("password", password)
        self._user = _encode("user name", user)
        self._password = _Secret(password)
        _check_response_size("user name", self._user + b" " + b"0" * 32)

    def _answer(self, challenge: bytes) -> bytes | None:
        if self._rounds > 1:
            self._too_many()
            return None
        if not challenge:
            self._refuse("empty CRAM-MD5 challenge")
            return None
        key = self._password.value.encode("utf-8")
        digest = hmac.new(key, challenge, hashlib.md5).hexdigest()
        return self._user + b" " + digest.encode("ascii")


def _describe_error(challenge: bytes, token: str) -> str:
    """A bounded, log-safe summary of an OAuth error challenge (RFC 7628 3.2.2)."""
    if len(challenge) > MAX_ERROR_JSON_OCTETS:
        return "error challenge too large"
    try:
        document = json.loads(challenge)
    except (ValueError, RecursionError):
        return "malformed error challenge"
    if not isinstance(document, dict):
        return "malformed error challenge"
    parts: list[str] = []
    for field in ("status", "scope"):
        value = document.get(field)
        if isinstance(value, bool) or not isinstance(value, (str, int)):
            continue
        parts.append(f"{field}={_detail_value(str(value), token)}")
    return " ".join(parts) if parts else "error challenge without status"


def _detail_value(value: str, token: str) -> str:
    kept = value[:_MAX_DETAIL_FIELD_CHARS]
    # A server could echo the token (or a piece of it) back; never let any
    # of it into a log line.
    if _shares_secret(kept, token):
        return _REDACTED
    shown = escape_text(kept.encode("utf-8", "backslashreplace"))
    if len(value) > len(kept):
        shown += "..."
    if not shown or " " in shown or '"' in shown:
        # Scopes are space-separated lists: quote, so the summary stays parseable.
        shown = '"' + shown.replace('"', "\\x22") + '"'
    return shown


def _shares_secret(value: str, secret: str) -> bool:
    if not secret:
        return False
    width = min(len(secret), _SECRET_WINDOW)
    return any(secret[i : i + width] in value for i in range(len(secret) - width + 1))


def exchange_for(
    mechanism: AuthMechanism | str,
    user: str,
    credential: str,
    *,
    authzid: str | None = None,
    host: str | None = None,
    port: int | None = None,
) -> SaslExchange:
    """A fresh exchange for ``mechanism``.

    ``credential`` is the password (PLAIN, LOGIN, CRAM-MD5) or the OAuth
    access token (XOAUTH2, OAUTHBEARER). ``authzid`` is honoured by PLAIN and
    OAUTHBEARER and refused by the others rather than silently dropped;
    ``host``/``port`` only go into OAUTHBEARER. A mechanism name this module
    does not implement raises `UnsupportedMechanism`; unusable credentials
    (NUL, CR, LF, or ``\\x01`` for the OAuth mechanisms) raise
    `InvalidInputError`.
    """
    if not isinstance(mechanism, AuthMechanism):
        try:
            mechanism = AuthMechanism(str(mechanism).upper())
        except ValueError:
            raise UnsupportedMechanism(
                f"unsupported SASL mechanism: {escape_text(str(mechanism).encode()[:40])!r}"
            ) from None
    if authzid is not None and mechanism not in (AuthMechanism.PLAIN, AuthMechanism.OAUTHBEARER):
        raise InvalidInputError(f"{mechanism.value} has no authorization identity")
    if mechanism is AuthMechanism.PLAIN:
        return PlainExchange(user, credential, authzid=authzid)
    if mechanism is AuthMechanism.LOGIN:
        return LoginExchange(user, credential)
    if mechanism is AuthMechanism.XOAUTH2:
        return XOAuth2Exchange(user, credential)
    if mechanism is AuthMechanism.OAUTHBEARER:
        return OAuthBearerExchange(user, credential, authzid=authzid, host=host, port=port)
    return CramMd5Exchange(user, credential)


def choose_mechanism(offered: frozenset[str]) -> AuthMechanism | None:
    """The mechanism `login()` uses: PLAIN if offered, else LOGIN, else None.

    Never CRAM-MD5 (weak, and it needs the password in the clear on the
    server) nor an OAuth mechanism: those are only used when asked for.
    """
    names = {name.upper() for name in offered if isinstance(name, str) and name.isascii()}
    for mechanism in (AuthMechanism.PLAIN, AuthMechanism.LOGIN):
        if mechanism.value in names:
            return mechanism
    return None
