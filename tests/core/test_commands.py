"""Tests for trio_smtp._core.commands: golden bytes, validation and properties."""

from __future__ import annotations

import base64
import dataclasses
import functools
import string
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trio_smtp._core.address import ForwardPath, ReversePath
from trio_smtp._core.commands import (
    MAX_AUTH_RESPONSE_LINE,
    MAX_COMMAND_LINE,
    Auth,
    AuthResponse,
    Bdat,
    Command,
    Data,
    Ehlo,
    Expn,
    Helo,
    Help,
    Lhlo,
    Mail,
    MailParams,
    Noop,
    Quit,
    Rcpt,
    RcptParams,
    Rset,
    SmtpOp,
    StartTLS,
    Vrfy,
    auth_line_fits,
)
from trio_smtp._core.errors import InvalidInputError

SECRET = b"\x00alice\x00correct horse battery staple"

# -- golden bytes -------------------------------------------------------------


@pytest.mark.parametrize(
    ("command", "wire"),
    [
        (Ehlo("client.example.com"), b"EHLO client.example.com\r\n"),
        (Ehlo("[192.0.2.1]"), b"EHLO [192.0.2.1]\r\n"),
        (Ehlo("[IPv6:2001:db8::1]"), b"EHLO [IPv6:2001:db8::1]\r\n"),
        (Lhlo("lmtp.example"), b"LHLO lmtp.example\r\n"),
        (Helo("localhost"), b"HELO localhost\r\n"),
        (StartTLS(), b"STARTTLS\r\n"),
        (Auth("PLAIN"), b"AUTH PLAIN\r\n"),
        (Auth("plain", b"\x00u\x00p"), b"AUTH PLAIN AHUAcA==\r\n"),
        (Auth("XOAUTH2", b"tok"), b"AUTH XOAUTH2 dG9r\r\n"),
        (Auth("CRAM-MD5"), b"AUTH CRAM-MD5\r\n"),
        (Auth("SCRAM-SHA-1_X"), b"AUTH SCRAM-SHA-1_X\r\n"),
        (Auth("EXTERNAL", b""), b"AUTH EXTERNAL =\r\n"),
        (AuthResponse(None), b"*\r\n"),
        (AuthResponse(b""), b"\r\n"),
        (AuthResponse(b"user"), b"dXNlcg==\r\n"),
        (AuthResponse(bytearray(b"\x01")), b"AQ==\r\n"),  # type: ignore[arg-type]
        (Mail("sender@example.com"), b"MAIL FROM:<sender@example.com>\r\n"),
        (Mail("<sender@example.com>"), b"MAIL FROM:<sender@example.com>\r\n"),
        (Mail(ReversePath("s@example.com")), b"MAIL FROM:<s@example.com>\r\n"),
        (Mail(""), b"MAIL FROM:<>\r\n"),
        (Mail("<>"), b"MAIL FROM:<>\r\n"),
        (
            Mail("s@example.com", MailParams(body="8BITMIME")),
            b"MAIL FROM:<s@example.com> BODY=8BITMIME\r\n",
        ),
        (
            Mail("s@example.com", MailParams(size=0)),
            b"MAIL FROM:<s@example.com> SIZE=0\r\n",
        ),
        (
            Mail("s@example.com", MailParams(envid="QQ314159")),
            b"MAIL FROM:<s@example.com> ENVID=QQ314159\r\n",
        ),
        (
            Mail(
                "s@example.com",
                MailParams(
                    body="binarymime",  # type: ignore[arg-type]
                    smtputf8=True,
                    size=1234,
                    ret="hdrs",  # type: ignore[arg-type]
                    envid="a+b=c",
                    requiretls=True,
                ),
            ),
            b"MAIL FROM:<s@example.com> BODY=BINARYMIME SMTPUTF8 SIZE=1234 RET=HDRS"
            b" ENVID=a+2Bb+3Dc REQUIRETLS\r\n",
        ),
        (
            Mail("üser@bücher.example", MailParams(smtputf8=True)),
            "MAIL FROM:<üser@bücher.example> SMTPUTF8\r\n".encode(),
        ),
        (Rcpt("rcpt@example.org"), b"RCPT TO:<rcpt@example.org>\r\n"),
        (Rcpt(ForwardPath("<r@example.org>")), b"RCPT TO:<r@example.org>\r\n"),
        (Rcpt("Postmaster"), b"RCPT TO:<Postmaster>\r\n"),
        (
            Rcpt("r@example.org", RcptParams(notify="never")),  # type: ignore[arg-type]
            b"RCPT TO:<r@example.org> NOTIFY=NEVER\r\n",
        ),
        (
            Rcpt(
                "r@example.org",
                RcptParams(notify=("DELAY", "FAILURE", "SUCCESS"), orcpt="a+b@example.org"),
            ),
            b"RCPT TO:<r@example.org> NOTIFY=SUCCESS,FAILURE,DELAY"
            b" ORCPT=rfc822;a+2Bb@example.org\r\n",
        ),
        (
            Rcpt("r@example.org", RcptParams(orcpt="Dörte@example.org")),
            b"RCPT TO:<r@example.org> ORCPT=utf-8;D\\x{F6}rte@example.org\r\n",
        ),
        (
            Rcpt("用户@例子.广告", smtputf8=True),
            "RCPT TO:<用户@例子.广告>\r\n".encode(),
        ),
        (Data(), b"DATA\r\n"),
        (Bdat(0, last=True), b"BDAT 0 LAST\r\n"),
        (Bdat(86), b"BDAT 86\r\n"),
        (Bdat(10**20 - 1), b"BDAT 99999999999999999999\r\n"),
        (Rset(), b"RSET\r\n"),
        (Noop(), b"NOOP\r\n"),
        (Vrfy("Smith"), b"VRFY Smith\r\n"),
        (Vrfy("John Smith"), b"VRFY John Smith\r\n"),
        (Vrfy("<jones@example.com>"), b"VRFY <jones@example.com>\r\n"),
        (Vrfy("Jöns", smtputf8=True), "VRFY Jöns SMTPUTF8\r\n".encode()),
        (Vrfy("jones", smtputf8=True), b"VRFY jones SMTPUTF8\r\n"),
        (Expn("staff"), b"EXPN staff\r\n"),
        (Expn("Bücher", smtputf8=True), "EXPN Bücher SMTPUTF8\r\n".encode()),
        (Help(), b"HELP\r\n"),
        (Help("MAIL"), b"HELP MAIL\r\n"),
        (Quit(), b"QUIT\r\n"),
    ],
)
def test_golden_bytes(command: Command, wire: bytes) -> None:
    assert command.encode() == wire
    assert command.encode() == wire  # encoding is repeatable


def test_ops_and_pipelinable() -> None:
    expected = {
        Ehlo("a.example"): (SmtpOp.EHLO, False),
        Lhlo("a.example"): (SmtpOp.LHLO, False),
        Helo("a.example"): (SmtpOp.HELO, False),
        StartTLS(): (SmtpOp.STARTTLS, False),
        Auth("PLAIN"): (SmtpOp.AUTH, False),
        AuthResponse(None): (SmtpOp.AUTH, False),
        Mail(""): (SmtpOp.MAIL, True),
        Rcpt("a@b.example"): (SmtpOp.RCPT, True),
        Data(): (SmtpOp.DATA, False),
        Bdat(1): (SmtpOp.BDAT, True),
        Rset(): (SmtpOp.RSET, True),
        Noop(): (SmtpOp.NOOP, False),
        Vrfy("x"): (SmtpOp.VRFY, False),
        Expn("x"): (SmtpOp.EXPN, False),
        Help(): (SmtpOp.HELP, False),
        Quit(): (SmtpOp.QUIT, False),
    }
    for command, (op, pipelinable) in expected.items():
        assert command.op is op
        assert command.pipelinable is pipelinable
        assert isinstance(command, Command)


def test_smtp_op_members() -> None:
    assert [op.name for op in SmtpOp] == [
        "GREETING",
        "EHLO",
        "LHLO",
        "HELO",
        "STARTTLS",
        "AUTH",
        "MAIL",
        "RCPT",
        "DATA",
        "DATA_END",
        "BDAT",
        "RSET",
        "NOOP",
        "VRFY",
        "EXPN",
        "HELP",
        "QUIT",
    ]


def test_commands_are_frozen_values() -> None:
    mail = Mail("a@b.example")
    assert mail == Mail(ReversePath("<a@b.example>"))
    assert hash(mail) == hash(Mail("a@b.example"))
    assert mail.sender == ReversePath("a@b.example")
    assert mail.params == MailParams()
    with pytest.raises(dataclasses.FrozenInstanceError):
        mail.sender = ReversePath("x@b.example")  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        Ehlo("a.example").hostname = "evil\r\n"  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        MailParams().size = 1  # type: ignore[misc]
    rcpt = Rcpt("r@b.example", smtputf8=True)
    assert rcpt.recipient == ForwardPath("r@b.example")
    assert rcpt.params == RcptParams()
    assert rcpt.smtputf8 is True


# -- MailParams / RcptParams --------------------------------------------------


@pytest.mark.parametrize(
    ("params", "extensions"),
    [
        (MailParams(), ()),
        (MailParams(body="7BIT"), ("8BITMIME",)),
        (MailParams(body="8BITMIME"), ("8BITMIME",)),
        (MailParams(body="BINARYMIME"), ("BINARYMIME", "CHUNKING")),
        (MailParams(smtputf8=True), ("SMTPUTF8",)),
        (MailParams(size=10), ("SIZE",)),
        (MailParams(ret="FULL"), ("DSN",)),
        (MailParams(envid="x"), ("DSN",)),
        (MailParams(ret="FULL", envid="x"), ("DSN",)),
        (MailParams(requiretls=True), ("REQUIRETLS",)),
        (
            MailParams(
                body="8BITMIME", smtputf8=True, size=1, ret="HDRS", envid="e", requiretls=True
            ),
            ("8BITMIME", "SMTPUTF8", "SIZE", "DSN", "REQUIRETLS"),
        ),
    ],
)
def test_mail_params_required_extensions(params: MailParams, extensions: tuple[str, ...]) -> None:
    assert params.required_extensions() == extensions


def test_mail_params_normalise_case() -> None:
    params = MailParams(body="8bitmime", ret="full")  # type: ignore[arg-type]
    assert params.body == "8BITMIME"
    assert params.ret == "FULL"
    assert params == MailParams(body="8BITMIME", ret="FULL")


@pytest.mark.parametrize(
    "kwargs",
    [
        {"body": "8BIT"},
        {"body": ""},
        {"body": 8},
        {"body": "8BITMIME "},
        {"smtputf8": 1},
        {"smtputf8": "yes"},
        {"size": -1},
        {"size": 10**20},
        {"size": 1.5},
        {"size": "10"},
        {"size": True},
        {"ret": "ALL"},
        {"envid": ""},
        {"envid": "a b"},
        {"envid": "ü"},
        {"envid": "a\tb"},
        {"envid": b"abc"},
        {"envid": "x" * 101},
        {"envid": "+" * 34},
        {"requiretls": None},
    ],
)
def test_mail_params_refused(kwargs: dict[str, object]) -> None:
    with pytest.raises(InvalidInputError):
        MailParams(**kwargs)  # type: ignore[arg-type]


def test_envid_length_limit() -> None:
    assert (
        Mail("a@b.example", MailParams(envid="x" * 100))
        .encode()
        .endswith(b" ENVID=" + b"x" * 100 + b"\r\n")
    )
    MailParams(envid="+" * 33 + "x")  # 99 + 1 = 100 characters of xtext
    with pytest.raises(InvalidInputError, match="100"):
        MailParams(envid="x" * 101)


@pytest.mark.parametrize(
    ("notify", "expected"),
    [
        ("NEVER", "NEVER"),
        ("never", "NEVER"),
        (["NEVER"], "NEVER"),
        ("success", ("SUCCESS",)),
        (["delay"], ("DELAY",)),
        (("DELAY", "SUCCESS"), ("SUCCESS", "DELAY")),
        (["FAILURE", "failure"], ("FAILURE",)),
        (iter(["Delay", "Failure", "Success"]), ("SUCCESS", "FAILURE", "DELAY")),
        (frozenset({"SUCCESS"}), ("SUCCESS",)),
    ],
)
def test_rcpt_params_notify_normalised(notify: object, expected: object) -> None:
    params = RcptParams(notify=notify)  # type: ignore[arg-type]
    assert params.notify == expected
    assert params.required_extensions() == ("DSN",)


@pytest.mark.parametrize(
    "notify",
    [
        (),
        [],
        ["NEVER", "SUCCESS"],
        ("SUCCESS", "NEVER"),
        "SUCCESS,FAILURE",
        "ALWAYS",
        [""],
        [1],
        b"NEVER",
        42,
    ],
)
def test_rcpt_params_notify_refused(notify: object) -> None:
    with pytest.raises(InvalidInputError):
        RcptParams(notify=notify)  # type: ignore[arg-type]


def test_rcpt_params_orcpt() -> None:
    assert RcptParams().required_extensions() == ()
    params = RcptParams(orcpt="<orig@example.org>")
    assert params.orcpt == "orig@example.org"
    assert params.required_extensions() == ("DSN",)
    for bad in ["orig", "Name <orig@example.org>", "a b@example.org", "", "<>", 5]:
        with pytest.raises(InvalidInputError):
            RcptParams(orcpt=bad)  # type: ignore[arg-type]


# -- command validation -------------------------------------------------------


@pytest.mark.parametrize("cls", [Ehlo, Lhlo, Helo])
@pytest.mark.parametrize(
    "hostname",
    [
        "",
        "client example",
        "bücher.example",
        "-bad.example",
        "a..example",
        "example.",
        "1.2.3.4",
        "[1.2.3.999]",
        "under_score.example",
        "x" * 64 + ".example",
        b"client.example",
        None,
    ],
)
def test_hello_hostname_refused(cls: Callable[[object], Command], hostname: object) -> None:
    with pytest.raises(InvalidInputError):
        cls(hostname)


def test_mail_refuses_non_ascii_sender_without_smtputf8() -> None:
    with pytest.raises(InvalidInputError, match="smtputf8"):
        Mail("üser@example.com")
    with pytest.raises(InvalidInputError):
        Mail("user@bücher.example", MailParams(body="8BITMIME"))
    assert (
        Mail("üser@example.com", MailParams(smtputf8=True))
        .encode()
        .startswith("MAIL FROM:<üser".encode())
    )


def test_rcpt_refuses_non_ascii_recipient_without_smtputf8() -> None:
    with pytest.raises(InvalidInputError, match="SMTPUTF8"):
        Rcpt("üser@example.com")
    with pytest.raises(InvalidInputError):
        Rcpt("a@b.example", smtputf8=1)  # type: ignore[arg-type]
    # a non-ASCII ORCPT is xtext-encoded, so it needs no SMTPUTF8
    assert Rcpt("a@b.example", RcptParams(orcpt="ü@b.example")).encode().isascii()


@pytest.mark.parametrize(
    "build",
    [
        lambda: Mail(None),  # type: ignore[arg-type]
        lambda: Mail(b"a@b.example"),  # type: ignore[arg-type]
        lambda: Mail("a@b.example", params={"size": 1}),  # type: ignore[arg-type]
        lambda: Mail("a@b.example", params=RcptParams()),  # type: ignore[arg-type]
        lambda: Rcpt(None),  # type: ignore[arg-type]
        lambda: Rcpt(""),
        lambda: Rcpt("a@b.example", params=MailParams()),  # type: ignore[arg-type]
        lambda: Auth(None),  # type: ignore[arg-type]
        lambda: Auth("PLAIN", "text"),  # type: ignore[arg-type]
        lambda: AuthResponse("text"),  # type: ignore[arg-type]
        lambda: Bdat(-1),
        lambda: Bdat(10**20),
        lambda: Bdat(True),
        lambda: Bdat(1.0),  # type: ignore[arg-type]
        lambda: Bdat(1, last=None),  # type: ignore[arg-type]
        lambda: Vrfy(""),
        lambda: Vrfy("   "),
        lambda: Vrfy(" x"),
        lambda: Vrfy("x "),
        lambda: Vrfy("Jöns"),
        lambda: Vrfy("x\u2028y", smtputf8=True),
        lambda: Vrfy("x", smtputf8=None),  # type: ignore[arg-type]
        lambda: Expn(None),  # type: ignore[arg-type]
        lambda: Help(""),
        lambda: Help("Bücher"),
        lambda: Help(b"MAIL"),  # type: ignore[arg-type]
    ],
)
def test_invalid_arguments(build: Callable[[], object]) -> None:
    with pytest.raises(InvalidInputError) as info:
        build()
    assert isinstance(info.value, ValueError)


@pytest.mark.parametrize(
    "mechanism",
    ["", "PLAIN LOGIN", "PLAIN=", "PL@IN", "A" * 21, "PLÄIN", "*", "PLAIN\r\n"],
)
def test_auth_mechanism_refused(mechanism: str) -> None:
    with pytest.raises(InvalidInputError):
        Auth(mechanism)
    with pytest.raises(InvalidInputError):
        auth_line_fits(mechanism, b"x")


def test_auth_mechanism_normalised() -> None:
    auth = Auth("x-oauth2")
    assert auth.mechanism == "X-OAUTH2"
    assert Auth("A" * 20).encode() == b"AUTH " + b"A" * 20 + b"\r\n"


def test_sec_35_empty_initial_response_is_equals_sign() -> None:
    assert Auth("PLAIN", b"").encode() == b"AUTH PLAIN =\r\n"
    assert Auth("EXTERNAL", bytearray()).encode() == b"AUTH EXTERNAL =\r\n"  # type: ignore[arg-type]
    assert Auth("EXTERNAL", memoryview(b"")).encode() == b"AUTH EXTERNAL =\r\n"  # type: ignore[arg-type]
    # an empty continuation response is an empty line, not "="
    assert AuthResponse(b"").encode() == b"\r\n"
    # no initial response at all: no argument
    assert Auth("PLAIN", None).encode() == b"AUTH PLAIN\r\n"
    assert auth_line_fits("PLAIN", b"")


def test_sec_35_initial_response_line_limit() -> None:
    # "AUTH XOAUTH2 " is 13 octets, CRLF 2: 497 octets remain for base64, so
    # 372 raw bytes (496 base64 characters) fit and 373 (500) do not.
    assert auth_line_fits("XOAUTH2", b"t" * 372)
    assert len(Auth("XOAUTH2", b"t" * 372).encode()) == 511
    assert not auth_line_fits("XOAUTH2", b"t" * 373)
    with pytest.raises(InvalidInputError, match="512"):
        Auth("XOAUTH2", b"t" * 373)
    # exact boundary: 5 + len(mech) + 1 + b64 + 2 == 512
    mechanism = "M" * 20
    raw = b"r" * 360  # 480 base64 characters: 5 + 20 + 1 + 480 + 2 = 508
    assert auth_line_fits(mechanism, raw)
    for size in range(300, 400):
        payload = b"z" * size
        fits = auth_line_fits(mechanism, payload)
        if fits:
            assert len(Auth(mechanism, payload).encode()) <= MAX_COMMAND_LINE
        else:
            with pytest.raises(InvalidInputError):
                Auth(mechanism, payload)
    # the fallback path: AUTH without the response, then a long continuation line
    token = b"y" * 2000
    assert Auth("XOAUTH2").encode() == b"AUTH XOAUTH2\r\n"
    assert AuthResponse(token).encode() == base64.b64encode(token) + b"\r\n"


def test_auth_response_line_limit() -> None:
    raw = b"q" * (((MAX_AUTH_RESPONSE_LINE - 2) // 4) * 3)
    assert len(AuthResponse(raw).encode()) <= MAX_AUTH_RESPONSE_LINE
    with pytest.raises(InvalidInputError, match=str(MAX_AUTH_RESPONSE_LINE)):
        AuthResponse(raw + b"qqq")


def test_auth_payload_never_shown() -> None:
    b64 = base64.b64encode(SECRET).decode()
    shown = [
        repr(Auth("PLAIN", SECRET)),
        str(Auth("PLAIN", SECRET)),
        Auth("PLAIN", SECRET).redacted(),
        repr(AuthResponse(SECRET)),
        str(AuthResponse(SECRET)),
        AuthResponse(SECRET).redacted(),
    ]
    for text in shown:
        assert "alice" not in text
        assert "horse" not in text
        assert b64 not in text
    assert Auth("PLAIN", SECRET).redacted() == "AUTH PLAIN ****"
    assert Auth("PLAIN", b"").redacted() == "AUTH PLAIN ****"
    assert Auth("PLAIN").redacted() == "AUTH PLAIN"
    assert AuthResponse(SECRET).redacted() == "****"
    assert AuthResponse(None).redacted() == "*"
    assert repr(Auth("LOGIN")) == "Auth(mechanism='LOGIN', initial_response=None)"
    # the error for an overlong AUTH line names lengths, not the payload
    with pytest.raises(InvalidInputError) as info:
        Auth("PLAIN", SECRET * 20)
    assert "alice" not in str(info.value)
    assert base64.b64encode(SECRET * 20).decode()[:20] not in str(info.value)


def test_redacted_other_commands() -> None:
    assert Mail("a@b.example", MailParams(size=5)).redacted() == "MAIL FROM:<a@b.example> SIZE=5"
    assert Rcpt("Postmaster").redacted() == "RCPT TO:<Postmaster>"
    assert Ehlo("c.example").redacted() == "EHLO c.example"
    assert Quit().redacted() == "QUIT"


# -- SECURITY 18: CR, LF, NUL in every argument -------------------------------

# Each target builds a command (or parameter set) with ``value`` in one argument.
TARGETS: dict[str, tuple[str, Callable[[str], object]]] = {
    "ReversePath": ("user@example.com", ReversePath),
    "ForwardPath": ("user@example.com", ForwardPath),
    "Mail.sender": ("user@example.com", Mail),
    "Mail.sender.utf8": ("üser@example.com", lambda v: Mail(v, MailParams(smtputf8=True))),
    "Rcpt.recipient": ("user@example.com", Rcpt),
    "Rcpt.recipient.utf8": ("üser@example.com", lambda v: Rcpt(v, smtputf8=True)),
    "Rcpt.postmaster": ("Postmaster", Rcpt),
    "Ehlo": ("client.example.com", Ehlo),
    "Lhlo": ("client.example.com", Lhlo),
    "Helo": ("client.example.com", Helo),
    "Auth.mechanism": ("PLAIN", Auth),
    "Auth.mechanism+ir": ("PLAIN", lambda v: Auth(v, b"\x00u\x00p")),
    "auth_line_fits": ("XOAUTH2", lambda v: auth_line_fits(v, b"t")),
    "Vrfy": ("John Smith", Vrfy),
    "Vrfy.utf8": ("Jöns Smith", lambda v: Vrfy(v, smtputf8=True)),
    "Expn": ("staff", Expn),
    "Expn.utf8": ("staff", lambda v: Expn(v, smtputf8=True)),
    "Help": ("MAIL", Help),
    "MailParams.body": ("8BITMIME", lambda v: MailParams(body=v)),  # type: ignore[arg-type]
    "MailParams.ret": ("FULL", lambda v: MailParams(ret=v)),  # type: ignore[arg-type]
    "MailParams.envid": ("QQ314159", lambda v: MailParams(envid=v)),
    "RcptParams.notify": ("NEVER", lambda v: RcptParams(notify=v)),  # type: ignore[arg-type]
    "RcptParams.notify[]": (
        "DELAY",
        lambda v: RcptParams(notify=["SUCCESS", v]),  # type: ignore[arg-type]
    ),
    "RcptParams.orcpt": ("orig@example.org", lambda v: RcptParams(orcpt=v)),
    "RcptParams.orcpt.utf8": ("örig@example.org", lambda v: RcptParams(orcpt=v)),
}


@pytest.mark.parametrize("target", sorted(TARGETS))
@pytest.mark.parametrize("bad", ["\r", "\n", "\x00", "\r\n", "\n.\r\n"])
def test_sec_18_crlf_nul_in_every_argument(target: str, bad: str) -> None:
    valid, build = TARGETS[target]
    build(valid)  # the base value is accepted
    for pos in range(len(valid) + 1):
        with pytest.raises(InvalidInputError):
            build(valid[:pos] + bad + valid[pos:])


def test_sec_18_smuggling_attempts() -> None:
    attempts: list[Callable[[], object]] = [
        lambda: Mail("a@b.example>\r\nRCPT TO:<victim@c.example"),
        lambda: Rcpt("x@b.example>\r\nDATA\r\n"),
        lambda: Ehlo("client\r\nMAIL FROM:<x@y.example>"),
        lambda: Vrfy("x\r\nQUIT"),
        lambda: Help("x\nQUIT"),
        lambda: MailParams(envid="x\r\nRSET"),
        lambda: RcptParams(orcpt="a@b.example\r\nRSET"),
        lambda: Auth("PLAIN\r\nQUIT"),
    ]
    for attempt in attempts:
        with pytest.raises(InvalidInputError, match="CR, LF or NUL"):
            attempt()


def test_sec_18_binary_sasl_payload_is_safe() -> None:
    # SASL payloads are raw bytes (PLAIN needs NUL): base64 keeps them off the line
    for command in (Auth("PLAIN", b"\r\n\x00.\r\n"), AuthResponse(b"\r\n\x00\r\n.\r\n")):
        wire = command.encode()
        assert wire.count(b"\r") == 1
        assert wire.count(b"\n") == 1
        assert b"\x00" not in wire


@settings(max_examples=300)
@given(
    target=st.sampled_from(sorted(TARGETS)),
    base=st.one_of(st.none(), st.text(max_size=40)),
    bad=st.sampled_from(["\r", "\n", "\x00", "\r\n"]),
    data=st.data(),
)
def test_sec_18_crlf_nul_property(
    target: str, base: str | None, bad: str, data: st.DataObject
) -> None:
    valid, build = TARGETS[target]
    text = valid if base is None else base
    pos = data.draw(st.integers(min_value=0, max_value=len(text)))
    result: object = None
    with pytest.raises(InvalidInputError):
        result = build(text[:pos] + bad + text[pos:])
    assert not isinstance(result, bytes)


# -- SECURITY 21: size limits -------------------------------------------------


def test_sec_21_size_limits() -> None:
    assert MAX_COMMAND_LINE == 512
    # "VRFY " + argument + CRLF: 505 characters of argument is exactly 512 octets
    assert len(Vrfy("v" * 505).encode()) == 512
    with pytest.raises(InvalidInputError, match="512"):
        Vrfy("v" * 506)
    # octets, not characters: 2-octet characters with SMTPUTF8
    assert len(Vrfy("é" * 248, smtputf8=True).encode()) == 5 + 496 + 9 + 2
    with pytest.raises(InvalidInputError, match="512"):
        Vrfy("é" * 249, smtputf8=True)
    assert len(Help("h" * 505).encode()) == 512
    with pytest.raises(InvalidInputError):
        Help("h" * 506)
    # MAIL with a maximal path and every parameter stays within the limit ...
    domain = ".".join(["d" * 63, "d" * 63, "d" * 63, "d" * 57])
    sender = "abcd@" + domain
    params = MailParams(
        body="8BITMIME", smtputf8=True, size=10**20 - 1, ret="HDRS", envid="e" * 100
    )
    line = Mail(sender, params).encode()
    assert len(line) <= 512
    # ... and an ORCPT that pushes RCPT over 512 octets is refused at construction
    long_orcpt = "+" * 60 + "@" + domain[:120]
    with pytest.raises(InvalidInputError, match="512"):
        Rcpt(sender, RcptParams(notify=("SUCCESS",), orcpt=long_orcpt))
    # path limits come from the address module
    with pytest.raises(InvalidInputError, match="256"):
        Mail("abcde@" + domain)
    with pytest.raises(InvalidInputError, match="64"):
        Rcpt("l" * 65 + "@example.com")


# -- properties: every encoded line -------------------------------------------

ATEXT = string.ascii_letters + string.digits + "!#$%&'*+-/=?^_`{|}~"
label = st.from_regex(r"[a-z0-9]([a-z0-9-]{0,20}[a-z0-9])?", fullmatch=True)
hostnames = (
    st.lists(label, min_size=1, max_size=6)
    .map(".".join)
    .filter(lambda name: not name.rsplit(".", 1)[-1].isdigit())
)
local_parts = st.lists(st.text(alphabet=ATEXT, min_size=1, max_size=15), min_size=1, max_size=4)
addresses = st.tuples(local_parts.map(".".join), hostnames).map("@".join)
utf8_addresses = st.tuples(
    st.text(alphabet="äöüéß用户" + ATEXT, min_size=1, max_size=20), hostnames
).map("@".join)
mechanisms = st.from_regex(r"[A-Za-z0-9_-]{1,20}", fullmatch=True)
mail_params = st.builds(
    MailParams,
    body=st.none() | st.sampled_from(["7BIT", "8BITMIME", "BINARYMIME"]),
    smtputf8=st.booleans(),
    size=st.none() | st.integers(min_value=0, max_value=10**20 - 1),
    ret=st.none() | st.sampled_from(["FULL", "HDRS"]),
    envid=st.none()
    | st.text(
        alphabet=st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=1, max_size=30
    ),
    requiretls=st.booleans(),
)
notify_values = (
    st.none()
    | st.just("NEVER")
    | st.sets(st.sampled_from(["SUCCESS", "FAILURE", "DELAY"]), min_size=1)
)


def _partial(
    func: Callable[..., Command], *args: st.SearchStrategy[Any]
) -> st.SearchStrategy[Callable[[], Command]]:
    """A strategy of zero-argument factories, so construction happens inside the test."""
    return st.tuples(*args).map(lambda values: functools.partial(func, *values))


command_factories = st.one_of(
    _partial(Ehlo, hostnames),
    _partial(Lhlo, hostnames),
    _partial(Helo, hostnames),
    _partial(StartTLS),
    _partial(Auth, mechanisms, st.none() | st.binary(max_size=400)),
    _partial(AuthResponse, st.none() | st.binary(max_size=10_000)),
    _partial(Mail, st.one_of(st.just(""), addresses), st.just(MailParams())),
    _partial(Mail, st.one_of(addresses, utf8_addresses), mail_params),
    _partial(Rcpt, addresses | utf8_addresses, st.just(RcptParams()), st.booleans()),
    _partial(
        Rcpt,
        addresses,
        st.builds(RcptParams, notify=notify_values, orcpt=st.none() | addresses | utf8_addresses),
    ),
    _partial(Data),
    _partial(Bdat, st.integers(min_value=0, max_value=10**20 - 1), st.booleans()),
    _partial(Rset),
    _partial(Noop),
    _partial(Vrfy, st.text(max_size=600), st.booleans()),
    _partial(Vrfy, st.text(alphabet="Ab é.", min_size=1, max_size=600), st.booleans()),
    _partial(Expn, st.text(max_size=100), st.booleans()),
    _partial(Help, st.none() | st.text(alphabet=string.printable, max_size=600)),
    _partial(Quit),
)


@settings(max_examples=300)
@given(command_factories)
def test_every_encoded_line_is_one_bounded_line(factory: Callable[[], Command]) -> None:
    try:
        command = factory()
    except InvalidInputError:
        return  # refused before any byte existed: also an acceptable outcome
    wire = command.encode()
    limit = MAX_AUTH_RESPONSE_LINE if isinstance(command, AuthResponse) else MAX_COMMAND_LINE
    assert len(wire) <= limit
    assert wire.endswith(b"\r\n")
    assert not wire.endswith(b"\r\n\r\n")
    assert wire.count(b"\r") == 1
    assert wire.count(b"\n") == 1
    assert b"\x00" not in wire
    text = wire.decode("utf-8")
    if not text.isascii():
        assert isinstance(command, (Mail, Rcpt, Vrfy, Expn))
    assert command.redacted() + "\r\n" == text or isinstance(command, (Auth, AuthResponse))
