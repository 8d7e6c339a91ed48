"""Tests for trio_smtp._core.sasl: SASL mechanisms against scripted challenges.

Expected payloads are decoded independently here (``binascii``) rather than
trusted from the code under test.
"""

from __future__ import annotations

import base64
import binascii
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trio_smtp._core.commands import Auth, AuthResponse
from trio_smtp._core.errors import (
    InvalidInputError,
    LocalProtocolError,
    SMTPProtocolError,
    UnsupportedMechanism,
)
from trio_smtp._core.reply import Reply
from trio_smtp._core.sasl import (
    MAX_CHALLENGE_OCTETS,
    AuthMechanism,
    CramMd5Exchange,
    LoginExchange,
    OAuthBearerExchange,
    PlainExchange,
    SaslExchange,
    XOAuth2Exchange,
    choose_mechanism,
    exchange_for,
)

PASSWORD = "hunter2-S3cr3t-\u00e9"
TOKEN = "ya29.A0ARrdaM-secret-token_value.XYZ"
ALL = list(AuthMechanism)


def challenge(data: bytes) -> Reply:
    """A 334 reply carrying ``data`` base64-encoded, as a server sends it."""
    return Reply(334, (binascii.b2a_base64(data, newline=False),))


def raw_challenge(text: bytes) -> Reply:
    return Reply(334, (text,))


EMPTY = raw_challenge(b"")


def wire_payload(line: bytes, prefix: bytes = b"") -> bytes:
    """Independently decode the base64 payload of one client line."""
    assert line.endswith(b"\r\n")
    assert line.startswith(prefix)
    text = line[len(prefix) : -2]
    assert b"\r" not in text
    assert b"\n" not in text
    return binascii.a2b_base64(text)


def started(mechanism: AuthMechanism) -> tuple[SaslExchange, Auth]:
    credential = (
        TOKEN if mechanism in (AuthMechanism.XOAUTH2, AuthMechanism.OAUTHBEARER) else PASSWORD
    )
    exchange = exchange_for(mechanism, "user@example.com", credential)
    return exchange, exchange.start()


def assert_cancel(response: AuthResponse, exchange: SaslExchange) -> None:
    assert response.data is None
    assert response.encode() == b"*\r\n"
    assert exchange.cancelled
    assert exchange.cancel_reason


# -- PLAIN ------------------------------------------------------------------


def test_plain_initial_response() -> None:
    exchange = exchange_for(AuthMechanism.PLAIN, "tim", "tanstaaftanstaaf")
    assert isinstance(exchange, PlainExchange)
    assert exchange.mechanism is AuthMechanism.PLAIN
    command = exchange.start()
    line = command.encode()
    assert line == b"AUTH PLAIN AHRpbQB0YW5zdGFhZnRhbnN0YWFm\r\n"
    assert wire_payload(line, b"AUTH PLAIN ") == b"\0tim\0tanstaaftanstaaf"
    assert exchange.initial_response_sent
    assert not exchange.cancelled


def test_plain_with_authzid_and_utf8() -> None:
    exchange = exchange_for(AuthMechanism.PLAIN, "j\u00fcrgen", "p\u00e4ss", authzid="admin")
    line = exchange.start().encode()
    assert wire_payload(line, b"AUTH PLAIN ") == "admin\0j\u00fcrgen\0p\u00e4ss".encode()


def test_plain_any_challenge_after_initial_response_cancels() -> None:
    exchange, _ = started(AuthMechanism.PLAIN)
    assert_cancel(exchange.respond(EMPTY), exchange)
    assert exchange.cancel_reason == "too many challenges for PLAIN"
    # The server must now end the exchange with an error, not challenge again.
    with pytest.raises(SMTPProtocolError):
        exchange.respond(EMPTY)


def test_plain_two_step_when_line_too_long() -> None:
    password = "p" * 400
    exchange = exchange_for(AuthMechanism.PLAIN, "user", password)
    assert exchange.start().encode() == b"AUTH PLAIN\r\n"
    assert not exchange.initial_response_sent
    response = exchange.respond(EMPTY)
    assert wire_payload(response.encode()) == b"\0user\0" + password.encode()
    assert_cancel(exchange.respond(EMPTY), exchange)


def test_plain_two_step_answers_a_non_empty_first_challenge() -> None:
    exchange = exchange_for(AuthMechanism.PLAIN, "user", "p" * 400)
    exchange.start()
    response = exchange.respond(challenge(b"whatever"))
    assert response.data == b"\0user\0" + b"p" * 400


# -- LOGIN ------------------------------------------------------------------


def test_login_classic_exchange() -> None:
    exchange = exchange_for(AuthMechanism.LOGIN, "tim", "tanstaaf")
    assert isinstance(exchange, LoginExchange)
    assert exchange.start().encode() == b"AUTH LOGIN\r\n"
    first = exchange.respond(raw_challenge(b"VXNlcm5hbWU6"))  # "Username:"
    assert first.encode() == b"dGlt\r\n"
    assert wire_payload(first.encode()) == b"tim"
    second = exchange.respond(raw_challenge(b"UGFzc3dvcmQ6"))  # "Password:"
    assert wire_payload(second.encode()) == b"tanstaaf"
    assert not exchange.cancelled
    assert exchange.rounds == 2


def test_login_answers_by_order_not_by_text() -> None:
    exchange = exchange_for(AuthMechanism.LOGIN, "tim", "tanstaaf")
    exchange.start()
    assert exchange.respond(challenge(b"Password:")).data == b"tim"
    assert exchange.respond(challenge(b"User Name\0")).data == b"tanstaaf"


def test_login_empty_password_is_an_empty_line() -> None:
    exchange = exchange_for(AuthMechanism.LOGIN, "tim", "")
    exchange.start()
    exchange.respond(EMPTY)
    assert exchange.respond(EMPTY).encode() == b"\r\n"


def test_login_third_challenge_cancels() -> None:
    exchange = exchange_for(AuthMechanism.LOGIN, "tim", "tanstaaf")
    exchange.start()
    exchange.respond(challenge(b"Username:"))
    exchange.respond(challenge(b"Password:"))
    assert_cancel(exchange.respond(challenge(b"Password:")), exchange)


# -- XOAUTH2 ----------------------------------------------------------------


def test_xoauth2_initial_response() -> None:
    exchange = exchange_for(
        AuthMechanism.XOAUTH2,
        "someuser@example.com",
        "ya29.vF9dft4qmTc2Nvb3RlckBhdHRhdmlzdGEuY29tCg",
    )
    assert isinstance(exchange, XOAuth2Exchange)
    line = exchange.start().encode()
    # Google's documented example (developers.google.com, "OAuth 2.0 Mechanism").
    assert line == (
        b"AUTH XOAUTH2 dXNlcj1zb21ldXNlckBleGFtcGxlLmNvbQFhdXRoPUJlYXJlciB5YTI5LnZGOWRmdDRxbVRjMk52"
        b"YjNSbGNrQmhkSFJoZG1semRHRXVZMjl0Q2cBAQ==\r\n"
    )
    assert wire_payload(line, b"AUTH XOAUTH2 ") == (
        b"user=someuser@example.com\x01"
        b"auth=Bearer ya29.vF9dft4qmTc2Nvb3RlckBhdHRhdmlzdGEuY29tCg\x01\x01"
    )


def test_xoauth2_error_challenge_gets_one_empty_answer() -> None:
    exchange, _ = started(AuthMechanism.XOAUTH2)
    error = {"status": "400", "schemes": "Bearer", "scope": "https://mail.google.com/"}
    response = exchange.respond(challenge(json.dumps(error).encode()))
    assert response.data == b""
    assert response.encode() == b"\r\n"
    assert not exchange.cancelled
    assert exchange.error_detail == "status=400 scope=https://mail.google.com/"
    assert_cancel(exchange.respond(challenge(json.dumps(error).encode())), exchange)


def test_xoauth2_two_step_with_long_token() -> None:
    token = "t" * 600
    exchange = exchange_for(AuthMechanism.XOAUTH2, "u@example.com", token)
    assert exchange.start().encode() == b"AUTH XOAUTH2\r\n"
    response = exchange.respond(EMPTY)
    assert wire_payload(response.encode()) == (
        b"user=u@example.com\x01auth=Bearer " + token.encode() + b"\x01\x01"
    )
    assert exchange.respond(challenge(b'{"status":"401"}')).data == b""
    assert exchange.error_detail == "status=401"


# -- OAUTHBEARER ------------------------------------------------------------


def test_oauthbearer_payload_with_host_and_port() -> None:
    exchange = exchange_for(
        AuthMechanism.OAUTHBEARER,
        "user@example.com",
        "vF9dft4qmTc2Nvb3RlckBhbHRhdmlzdGEuY29tCg==",
        host="server.example.com",
        port=587,
    )
    assert isinstance(exchange, OAuthBearerExchange)
    line = exchange.start().encode()
    # RFC 7628 section 4.1, with the port of this session.
    assert wire_payload(line, b"AUTH OAUTHBEARER ") == (
        b"n,a=user@example.com,\x01host=server.example.com\x01port=587\x01"
        b"auth=Bearer vF9dft4qmTc2Nvb3RlckBhbHRhdmlzdGEuY29tCg==\x01\x01"
    )


def test_oauthbearer_payload_without_host_and_port() -> None:
    exchange = exchange_for(AuthMechanism.OAUTHBEARER, "u@example.com", "tok")
    line = exchange.start().encode()
    assert (
        wire_payload(line, b"AUTH OAUTHBEARER ") == b"n,a=u@example.com,\x01auth=Bearer tok\x01\x01"
    )


def test_oauthbearer_escapes_the_authzid() -> None:
    exchange = exchange_for(AuthMechanism.OAUTHBEARER, "we,ird=name", "tok")
    payload = wire_payload(exchange.start().encode(), b"AUTH OAUTHBEARER ")
    assert payload.startswith(b"n,a=we=2Cird=3Dname,\x01")
    explicit = exchange_for(AuthMechanism.OAUTHBEARER, "u", "tok", authzid="boss=1")
    assert wire_payload(explicit.start().encode(), b"AUTH OAUTHBEARER ").startswith(
        b"n,a=boss=3D1,\x01"
    )
    anonymous = exchange_for(AuthMechanism.OAUTHBEARER, "", "tok")
    assert wire_payload(anonymous.start().encode(), b"AUTH OAUTHBEARER ").startswith(b"n,,\x01")


def test_oauthbearer_two_step_with_long_token() -> None:
    token = "x" * 1500
    exchange = exchange_for(
        AuthMechanism.OAUTHBEARER, "u@example.com", token, host="mx.example", port=465
    )
    command = exchange.start()
    assert command.encode() == b"AUTH OAUTHBEARER\r\n"
    assert command.initial_response is None
    response = exchange.respond(EMPTY)
    assert wire_payload(response.encode()) == (
        b"n,a=u@example.com,\x01host=mx.example\x01port=465\x01auth=Bearer "
        + token.encode()
        + b"\x01\x01"
    )
    assert len(response.encode()) > 512


def test_oauthbearer_non_empty_first_challenge_cancels() -> None:
    exchange = exchange_for(AuthMechanism.OAUTHBEARER, "u", "x" * 1500)
    exchange.start()
    assert_cancel(exchange.respond(challenge(b'{"status":"invalid_token"}')), exchange)


@pytest.mark.parametrize(
    ("document", "detail"),
    [
        (b"not json at all", "malformed error challenge"),
        (b"[1, 2, 3]", "malformed error challenge"),
        (b'"status"', "malformed error challenge"),
        (b"{}", "error challenge without status"),
        (b'{"status": 401}', "status=401"),
        (b'{"status": true}', "error challenge without status"),
        (b'{"status": "bad\\u001b[2J"}', "status=bad\\x1b[2J"),
        (b'{"status": "a\\"b c"}', 'status="a\\x22b c"'),
        (b"[" * 3000, "malformed error challenge"),
        (b'{"status": "' + b"s" * 5000 + b'"}', "error challenge too large"),
        (b'{"status": "' + b"s" * 300 + b'"}', "status=" + "s" * 200 + "..."),
        (b"\xff\xfe{", "malformed error challenge"),
    ],
)
def test_oauth_error_detail_is_bounded_and_safe(document: bytes, detail: str) -> None:
    for mechanism in (AuthMechanism.OAUTHBEARER, AuthMechanism.XOAUTH2):
        exchange, _ = started(mechanism)
        response = exchange.respond(challenge(document))
        assert response.data == (b"\x01" if mechanism is AuthMechanism.OAUTHBEARER else b"")
        assert exchange.error_detail == detail
        assert not exchange.cancelled


def test_oauth_error_detail_redacts_an_echoed_token() -> None:
    for mechanism in (AuthMechanism.OAUTHBEARER, AuthMechanism.XOAUTH2):
        for status in (TOKEN, "prefix " + TOKEN, TOKEN[5:30], "Bearer " + TOKEN[:14]):
            exchange, _ = started(mechanism)
            exchange.respond(challenge(json.dumps({"status": status, "scope": "mail"}).encode()))
            assert exchange.error_detail == "status=<redacted> scope=mail"


# -- CRAM-MD5 ---------------------------------------------------------------


def test_cram_md5_rfc2195_example() -> None:
    exchange = exchange_for(AuthMechanism.CRAM_MD5, "tim", "tanstaaftanstaaf")
    assert isinstance(exchange, CramMd5Exchange)
    assert exchange.start().encode() == b"AUTH CRAM-MD5\r\n"
    server = raw_challenge(b"PDE4OTYuNjk3MTcwOTUyQHBvc3RvZmZpY2UucmVzdG9uLm1jaS5uZXQ+")
    assert binascii.a2b_base64(server.lines[0]) == b"<1896.697170952@postoffice.reston.mci.net>"
    response = exchange.respond(server)
    assert response.encode() == b"dGltIGI5MTNhNjAyYzdlZGE3YTQ5NWI0ZTZlNzMzNGQzODkw\r\n"
    assert wire_payload(response.encode()) == b"tim b913a602c7eda7a495b4e6e7334d3890"


def test_cram_md5_empty_and_second_challenges_cancel() -> None:
    exchange, _ = started(AuthMechanism.CRAM_MD5)
    assert_cancel(exchange.respond(EMPTY), exchange)
    assert exchange.cancel_reason == "empty CRAM-MD5 challenge"
    other, _ = started(AuthMechanism.CRAM_MD5)
    other.respond(challenge(b"<1.2@host>"))
    assert_cancel(other.respond(challenge(b"<1.2@host>")), other)


# -- construction and selection ----------------------------------------------


@pytest.mark.parametrize(
    ("mechanism", "cls"),
    [
        (AuthMechanism.PLAIN, PlainExchange),
        (AuthMechanism.LOGIN, LoginExchange),
        (AuthMechanism.XOAUTH2, XOAuth2Exchange),
        (AuthMechanism.OAUTHBEARER, OAuthBearerExchange),
        (AuthMechanism.CRAM_MD5, CramMd5Exchange),
        ("plain", PlainExchange),
        ("CRAM-MD5", CramMd5Exchange),
    ],
)
def test_exchange_for(mechanism: AuthMechanism | str, cls: type[SaslExchange]) -> None:
    exchange = exchange_for(mechanism, "u", "p", host="mx.example", port=25)
    assert type(exchange) is cls
    assert not exchange.started
    exchange.start()
    assert exchange.started


def test_enum_values_are_the_sasl_names() -> None:
    assert [m.value for m in AuthMechanism] == [
        "PLAIN",
        "LOGIN",
        "XOAUTH2",
        "OAUTHBEARER",
        "CRAM-MD5",
    ]


@pytest.mark.parametrize("name", ["GSSAPI", "SCRAM-SHA-256", "", "PLAIN\r\n"])
def test_exchange_for_unknown_mechanism(name: str) -> None:
    with pytest.raises(UnsupportedMechanism):
        exchange_for(name, "u", "p")


@pytest.mark.parametrize(
    "mechanism", [AuthMechanism.LOGIN, AuthMechanism.XOAUTH2, AuthMechanism.CRAM_MD5]
)
def test_authzid_refused_where_unsupported(mechanism: AuthMechanism) -> None:
    with pytest.raises(InvalidInputError):
        exchange_for(mechanism, "u", "p", authzid="other")


@pytest.mark.parametrize("port", [-1, 65536, True])
def test_oauthbearer_bad_port(port: int) -> None:
    with pytest.raises(InvalidInputError):
        exchange_for(AuthMechanism.OAUTHBEARER, "u", "t", port=port)


def test_oauthbearer_bad_host() -> None:
    with pytest.raises(InvalidInputError):
        exchange_for(AuthMechanism.OAUTHBEARER, "u", "t", host="mx\x01evil")


@pytest.mark.parametrize("mechanism", ALL)
@pytest.mark.parametrize("bad", ["\0", "\r", "\n", "\ud800"])
@pytest.mark.parametrize("where", ["user", "credential", "authzid"])
def test_invalid_credentials_are_refused(mechanism: AuthMechanism, bad: str, where: str) -> None:
    secret = "Secret" + bad + "Value"
    kwargs = {"user": "u", "credential": "p"}
    authzid = None
    if where == "authzid":
        if mechanism not in (AuthMechanism.PLAIN, AuthMechanism.OAUTHBEARER):
            return
        authzid = secret
    else:
        kwargs[where] = secret
    with pytest.raises(InvalidInputError) as info:
        exchange_for(mechanism, kwargs["user"], kwargs["credential"], authzid=authzid)
    assert "Secret" not in str(info.value)
    assert "Value" not in str(info.value)


@pytest.mark.parametrize("mechanism", [AuthMechanism.XOAUTH2, AuthMechanism.OAUTHBEARER])
def test_ctrl_a_refused_for_oauth(mechanism: AuthMechanism) -> None:
    with pytest.raises(InvalidInputError):
        exchange_for(mechanism, "u", "tok\x01en")
    with pytest.raises(InvalidInputError):
        exchange_for(mechanism, "u\x01x", "token")


@pytest.mark.parametrize("mechanism", ALL)
def test_credentials_too_long_for_any_line_are_refused_up_front(mechanism: AuthMechanism) -> None:
    with pytest.raises(InvalidInputError) as info:
        exchange_for(
            mechanism, "u" * 10000 if mechanism is AuthMechanism.CRAM_MD5 else "u", "p" * 10000
        )
    assert "ppp" not in str(info.value)


def test_choose_mechanism() -> None:
    assert choose_mechanism(frozenset({"PLAIN", "LOGIN"})) is AuthMechanism.PLAIN
    assert choose_mechanism(frozenset({"LOGIN", "CRAM-MD5"})) is AuthMechanism.LOGIN
    assert choose_mechanism(frozenset({"login"})) is AuthMechanism.LOGIN
    assert choose_mechanism(frozenset({"CRAM-MD5", "XOAUTH2", "OAUTHBEARER"})) is None
    assert choose_mechanism(frozenset()) is None


def test_misuse_is_a_local_protocol_error() -> None:
    exchange = exchange_for(AuthMechanism.LOGIN, "u", "p")
    with pytest.raises(LocalProtocolError):
        exchange.respond(EMPTY)
    exchange.start()
    with pytest.raises(LocalProtocolError):
        exchange.start()
    with pytest.raises(LocalProtocolError):
        exchange.respond(Reply(235, (b"2.7.0 Authentication successful",)))


# -- SECURITY section E -------------------------------------------------------

INVALID_BASE64 = [
    b"***",
    b"=AAA",
    b"AAA=BBB",
    b"AAA",
    b"AB=",
    b"A===",
    b"AA==AA==",
    b"QR==",  # non-canonical: stray bits in the padding
    b"dGVzdA== ",
    b" dGVzdA==",
    b"dGVz dA==",
    b"dGVz\tdA==",
    b"dGVzdA=",
    b"dGVzdA===",
    b"VXNlcm5hbWU6\x00",
    b"\xff\xfe",
    b"-_-_",  # URL-safe alphabet is not base64 here
]


@pytest.mark.parametrize("mechanism", ALL)
@pytest.mark.parametrize("text", INVALID_BASE64)
def test_sec_33_invalid_base64_challenge_cancels(mechanism: AuthMechanism, text: bytes) -> None:
    exchange, _ = started(mechanism)
    response = exchange.respond(raw_challenge(text))
    assert_cancel(response, exchange)
    assert exchange.cancel_reason == "the challenge is not valid base64"


@pytest.mark.parametrize("mechanism", ALL)
def test_sec_33_multiline_challenge_cancels(mechanism: AuthMechanism) -> None:
    exchange, _ = started(mechanism)
    assert_cancel(exchange.respond(Reply(334, (b"VXNl", b"cm5hbWU6"))), exchange)


def _script(mechanism: AuthMechanism) -> list[Reply]:
    """The challenges a well-behaved server sends before its final reply."""
    if mechanism is AuthMechanism.LOGIN:
        return [challenge(b"Username:"), challenge(b"Password:")]
    if mechanism is AuthMechanism.CRAM_MD5:
        return [challenge(b"<1896.697170952@postoffice.reston.mci.net>")]
    if mechanism is AuthMechanism.OAUTHBEARER or mechanism is AuthMechanism.XOAUTH2:
        return [challenge(b'{"status":"invalid_token"}')]  # the one error round
    return []  # PLAIN with the initial response


@pytest.mark.parametrize("mechanism", ALL)
def test_sec_34_too_many_rounds_cancels(mechanism: AuthMechanism) -> None:
    exchange, _ = started(mechanism)
    for reply in _script(mechanism):
        assert exchange.respond(reply).data is not None
    assert not exchange.cancelled
    assert_cancel(exchange.respond(challenge(b"one more")), exchange)
    assert exchange.cancel_reason == f"too many challenges for {mechanism.value}"
    # Endless rounds: after the cancel, another 334 is the server's fault.
    with pytest.raises(SMTPProtocolError):
        exchange.respond(challenge(b"and another"))


def test_sec_35_initial_response_rules() -> None:
    # A token that just fits keeps the AUTH line at exactly 512 octets ...
    prefix = b"user=u\x01auth=Bearer "
    budget = (510 - len(b"AUTH XOAUTH2 ")) // 4 * 3 - len(prefix) - 2
    fits = exchange_for(AuthMechanism.XOAUTH2, "u", "t" * budget)
    line = fits.start().encode()
    assert len(line) <= 512
    assert len(line) > 505
    assert fits.initial_response_sent
    # ... one octet more and the initial response is left out: two-step.
    longer = exchange_for(AuthMechanism.XOAUTH2, "u", "t" * (budget + 1))
    assert longer.start().encode() == b"AUTH XOAUTH2\r\n"
    assert not longer.initial_response_sent
    assert wire_payload(longer.respond(EMPTY).encode()).endswith(b"t\x01\x01")

    # An empty initial response is sent as "=".
    assert Auth("PLAIN", b"").encode() == b"AUTH PLAIN =\r\n"

    # LOGIN never sends an initial response; CRAM-MD5 cannot.
    for mechanism in (AuthMechanism.LOGIN, AuthMechanism.CRAM_MD5):
        exchange, command = started(mechanism)
        assert command.initial_response is None

    # Challenges up to 12288 octets are handled ...
    data = b"C" * (MAX_CHALLENGE_OCTETS // 4 * 3)
    big = challenge(data)
    assert len(big.lines[0]) == MAX_CHALLENGE_OCTETS
    for mechanism in ALL:
        exchange, _ = started(mechanism)
        for reply in _script(mechanism)[:-1]:
            exchange.respond(reply)
        response = exchange.respond(big)
        if mechanism is AuthMechanism.PLAIN:
            assert exchange.cancel_reason == "too many challenges for PLAIN"
        else:
            assert response.data is not None, mechanism
    # ... a longer one is cancelled rather than decoded.
    exchange = exchange_for(AuthMechanism.LOGIN, "u", "p")
    exchange.start()
    assert_cancel(exchange.respond(challenge(data + b"CCC")), exchange)


def test_sec_36_oauthbearer_error_challenge() -> None:
    for token in (TOKEN, "z" * 2000):  # initial response, then the two-step path
        exchange = exchange_for(
            AuthMechanism.OAUTHBEARER, "user@example.com", token, host="mx.example", port=587
        )
        lines = [exchange.start().encode()]
        if not exchange.initial_response_sent:
            lines.append(exchange.respond(EMPTY).encode())
        error = {
            "status": "invalid_token",
            "scope": "https://mail.example.com/ openid",
            "openid-configuration": "https://example.com/.well-known/openid-configuration",
        }
        response = exchange.respond(challenge(json.dumps(error).encode()))
        lines.append(response.encode())
        assert response.encode() == b"AQ==\r\n"
        assert not exchange.cancelled
        assert (
            exchange.error_detail == 'status=invalid_token scope="https://mail.example.com/ openid"'
        )
        # A second error challenge is not answered with the token again.
        second = exchange.respond(challenge(json.dumps(error).encode()))
        lines.append(second.encode())
        assert_cancel(second, exchange)
        # The token went out exactly once in the whole exchange.
        decoded = b"".join(
            wire_payload(line, b"AUTH OAUTHBEARER " if line.startswith(b"AUTH") else b"")
            for line in lines
            if line not in (b"*\r\n", b"AUTH OAUTHBEARER\r\n")
        )
        assert decoded.count(token.encode()) == 1


def _drive_everything(exchange: SaslExchange, scripts: list[Reply]) -> list[str]:
    """Run an exchange through its script and a cancel; collect every rendering."""
    seen: list[str] = [repr(exchange), str(exchange)]
    command = exchange.start()
    seen += [repr(command), str(command), command.redacted()]
    for reply in scripts:
        if exchange.cancelled:
            break
        response = exchange.respond(reply)
        seen += [repr(response), str(response), response.redacted(), repr(exchange), str(exchange)]
    seen += [str(exchange.cancel_reason), str(exchange.error_detail), repr(exchange), str(exchange)]
    return seen


@pytest.mark.parametrize("mechanism", ALL)
def test_sec_37_credentials_never_in_repr(mechanism: AuthMechanism) -> None:
    oauth = mechanism in (AuthMechanism.XOAUTH2, AuthMechanism.OAUTHBEARER)
    secrets = [TOKEN] if oauth else [PASSWORD]
    long_secret = ("L0ng-" + TOKEN) * 40 if oauth else "L0ng-" + PASSWORD * 30
    runs = []
    for credential in (secrets[0], long_secret):
        scripts = [
            EMPTY,
            *_script(mechanism),
            challenge(b'{"status":"' + credential.encode() + b'"}'),
        ]
        scripts += [raw_challenge(b"***"), challenge(b"extra")]
        exchange = exchange_for(mechanism, "user@example.com", credential)
        runs += _drive_everything(exchange, scripts)
        # A malformed-challenge cancel path, too.
        broken = exchange_for(mechanism, "user@example.com", credential)
        runs += _drive_everything(broken, [raw_challenge(b"=AAA")])
    forbidden = [PASSWORD, TOKEN, long_secret, PASSWORD.encode().hex(), "tanstaaf"]
    encoded = [base64.b64encode(s.encode()).decode()[:16] for s in (PASSWORD, TOKEN)]
    for text in runs:
        for secret in forbidden + encoded:
            assert secret not in text, (mechanism, text)


def test_sec_37_secrets_hidden_from_vars_and_invalid_input_messages() -> None:
    for mechanism in ALL:
        exchange, _ = started(mechanism)
        assert not hasattr(exchange, "__dict__")
        for slot in ("_password", "_token"):
            value = getattr(exchange, slot, None)
            if value is not None:
                assert repr(value) == "<redacted>"
                assert str(value) == "<redacted>"
        with pytest.raises(InvalidInputError) as info:
            exchange_for(mechanism, "u", PASSWORD + "\r\nRSET")
        assert PASSWORD not in str(info.value)


# -- property tests -----------------------------------------------------------

_CHALLENGE_TEXT = st.one_of(
    st.binary(max_size=200),
    st.binary(max_size=300).map(base64.b64encode),
    st.dictionaries(
        st.text(max_size=10), st.one_of(st.text(max_size=20), st.integers()), max_size=4
    ).map(lambda d: base64.b64encode(json.dumps(d).encode())),
    st.sampled_from([b"", b"*", b"=", b"==", b"AQ==", b"e30=", b"W10="]),
)


@settings(max_examples=300)
@given(
    st.sampled_from(ALL),
    st.sampled_from([TOKEN, "x" * 600]),
    st.lists(
        st.one_of(_CHALLENGE_TEXT.map(lambda t: (t,)), st.tuples(_CHALLENGE_TEXT, _CHALLENGE_TEXT)),
        min_size=1,
        max_size=6,
    ),
)
def test_arbitrary_challenges_give_a_response_or_a_cancel(
    mechanism: AuthMechanism, credential: str, challenges: list[tuple[bytes, ...]]
) -> None:
    exchange = exchange_for(mechanism, "user@example.com", credential, host="mx.example", port=587)
    sent = [exchange.start().encode()]
    for lines in challenges:
        response = exchange.respond(Reply(334, lines))
        assert isinstance(response, AuthResponse)
        line = response.encode()  # always a valid, bounded line
        sent.append(line)
        if response.data is None:
            assert exchange.cancelled
            assert exchange.cancel_reason
            break
        assert not exchange.cancelled
    assert exchange.rounds <= len(challenges)
    for rendered in (repr(exchange), str(exchange.cancel_reason), str(exchange.error_detail)):
        assert credential not in rendered
    if mechanism in (AuthMechanism.XOAUTH2, AuthMechanism.OAUTHBEARER):
        # SECURITY 36: whatever the server does, the token goes out at most once.
        decoded = b""
        for line in sent:
            text = line[:-2].rsplit(b" ", 1)[-1] if line.startswith(b"AUTH") else line[:-2]
            if text not in (b"*", b"XOAUTH2", b"OAUTHBEARER"):
                decoded += binascii.a2b_base64(text) + b"|"
        assert decoded.count(credential.encode()) <= 1


@settings(max_examples=300)
@given(st.sampled_from(ALL), st.binary(max_size=MAX_CHALLENGE_OCTETS + 8))
def test_arbitrary_raw_challenge_bytes_never_raise(mechanism: AuthMechanism, text: bytes) -> None:
    exchange, _ = started(mechanism)
    response = exchange.respond(raw_challenge(text))
    assert isinstance(response, AuthResponse)
    response.encode()
