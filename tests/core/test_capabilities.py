"""Tests for trio_smtp._core.capabilities: EHLO/LHLO replies into Capabilities."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trio_smtp._core.capabilities import Capabilities
from trio_smtp._core.errors import InvalidInputError
from trio_smtp._core.reply import Reply, ReplyParser


def caps(*keyword_lines: bytes, greeting: bytes = b"mx.example.com Hello") -> Capabilities:
    return Capabilities.from_reply(Reply(250, (greeting, *keyword_lines)))


GMAIL_LIKE = (
    b"250-smtp.gmail.com at your service, [192.0.2.7]\r\n"
    b"250-SIZE 35882577\r\n"
    b"250-8BITMIME\r\n"
    b"250-AUTH LOGIN PLAIN XOAUTH2 PLAIN-CLIENTTOKEN OAUTHBEARER XOAUTH\r\n"
    b"250-ENHANCEDSTATUSCODES\r\n"
    b"250-PIPELINING\r\n"
    b"250-CHUNKING\r\n"
    b"250 SMTPUTF8\r\n"
)


def test_typical_reply_through_the_parser() -> None:
    (reply,) = ReplyParser().feed(GMAIL_LIKE)
    c = Capabilities.from_reply(reply)
    assert c.esmtp
    assert c.server_name == "smtp.gmail.com"
    assert c.greeting == "smtp.gmail.com at your service, [192.0.2.7]"
    assert c.size == 35882577
    assert c.eightbitmime
    assert c.enhanced_status_codes
    assert c.pipelining
    assert c.chunking
    assert c.smtputf8
    assert c.auth == frozenset(
        {"LOGIN", "PLAIN", "XOAUTH2", "PLAIN-CLIENTTOKEN", "OAUTHBEARER", "XOAUTH"}
    )
    assert not c.starttls
    assert not c.dsn
    assert not c.binarymime
    assert not c.requiretls
    assert c.lines[0] == "SIZE 35882577"
    assert len(c.lines) == 7
    assert c.keywords == frozenset(
        {"SIZE", "8BITMIME", "AUTH", "ENHANCEDSTATUSCODES", "PIPELINING", "CHUNKING", "SMTPUTF8"}
    )


def test_every_flag_property() -> None:
    c = caps(
        b"PIPELINING",
        b"CHUNKING",
        b"BINARYMIME",
        b"8BITMIME",
        b"SMTPUTF8",
        b"DSN",
        b"STARTTLS",
        b"ENHANCEDSTATUSCODES",
        b"REQUIRETLS",
    )
    assert c.pipelining
    assert c.chunking
    assert c.binarymime
    assert c.eightbitmime
    assert c.smtputf8
    assert c.dsn
    assert c.starttls
    assert c.enhanced_status_codes
    assert c.requiretls
    assert c.size is None
    assert c.auth == frozenset()


def test_greeting_only_reply_has_no_extensions() -> None:
    c = Capabilities.from_reply(Reply(250, (b"mx.example.com",)))
    assert c.esmtp
    assert c.server_name == "mx.example.com"
    assert c.lines == ()
    assert c.keywords == frozenset()
    assert not c.pipelining


def test_empty_reply_lines_do_not_crash() -> None:
    c = Capabilities.from_reply(Reply(250, ()))
    assert c.server_name == ""
    assert c.lines == ()


def test_none_is_a_helo_session() -> None:
    c = Capabilities.none()
    assert not c.esmtp
    assert c.keywords == frozenset()
    assert c.size is None
    assert c.auth == frozenset()
    assert not c.pipelining
    assert "HELO" in repr(c)
    assert Capabilities.none(greeting=b"mx.example.com hi").server_name == "mx.example.com"


def test_helo_session_cannot_have_keywords() -> None:
    with pytest.raises(InvalidInputError):
        Capabilities([b"PIPELINING"], esmtp=False)


def test_non_positive_reply_is_refused() -> None:
    with pytest.raises(InvalidInputError):
        Capabilities.from_reply(Reply(502, (b"5.5.1 EHLO not implemented",)))


@pytest.mark.parametrize("keyword", ["pipelining", "PIPELINING", "Pipelining", "pIpElInInG"])
def test_lookup_is_case_insensitive(keyword: str) -> None:
    c = caps(b"pipelining", b"Size 1000", b"auth plain Login")
    assert c.has(keyword)
    assert c.pipelining
    assert c.size == 1000
    assert c.params("SIZE") == ("1000",)
    assert c.params("size") == ("1000",)
    # Mechanism names are upper-cased; other parameters keep their case.
    assert c.auth == frozenset({"PLAIN", "LOGIN"})
    assert c.params("AUTH") == ("plain", "Login")


def test_unknown_keyword_and_params() -> None:
    c = caps(b"X-EXPS GSSAPI NTLM", b"VRFY", b"DELIVERBY 300")
    assert c.has("x-exps")
    assert c.params("X-EXPS") == ("GSSAPI", "NTLM")
    assert c.params("VRFY") == ()
    assert c.params("DELIVERBY") == ("300",)
    assert c.params("ETRN") is None
    assert not c.has("ETRN")


def test_non_ascii_lookup_never_matches() -> None:
    # "\ufb00".upper() == "FF": a naive upper() would find the keyword FF.
    c = caps(b"FF")
    assert c.has("ff")
    assert not c.has("\ufb00")
    assert c.params("\ufb00") is None


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        (None, None),
        (b"SIZE", 0),
        (b"SIZE 0", 0),
        (b"SIZE 1000", 1000),
        (b"SIZE   1000   ", 1000),
        (b"SIZE\t52428800", 52428800),
        (b"SIZE abc", 0),
        (b"SIZE -5", 0),
        (b"SIZE 10MB", 0),
        (b"SIZE 1e6", 0),
        (b"SIZE " + b"9" * 40, 0),
        (b"SIZE 99999999999999999999", 99999999999999999999),
    ],
)
def test_size(line: bytes | None, expected: int | None) -> None:
    c = caps(line) if line is not None else caps(b"PIPELINING")
    assert c.size == expected


def test_legacy_auth_equals_form_is_united() -> None:
    c = caps(b"AUTH GSSAPI NTLM", b"AUTH=LOGIN", b"auth=cram-md5 digest-md5")
    assert c.auth == frozenset({"GSSAPI", "NTLM", "LOGIN", "CRAM-MD5", "DIGEST-MD5"})
    assert c.has("AUTH")
    # The standard form supplies params() when present ...
    assert c.params("AUTH") == ("GSSAPI", "NTLM")
    # ... the legacy form only when it is the only one.
    only_legacy = caps(b"AUTH=LOGIN PLAIN")
    assert only_legacy.auth == frozenset({"LOGIN", "PLAIN"})
    assert only_legacy.params("auth") == ("LOGIN", "PLAIN")


def test_duplicate_keywords_first_wins_auth_unites() -> None:
    c = caps(b"SIZE 1000", b"SIZE 2000", b"AUTH PLAIN", b"AUTH LOGIN", b"PIPELINING", b"PIPELINING")
    assert c.size == 1000
    assert c.auth == frozenset({"PLAIN", "LOGIN"})
    assert c.pipelining


def test_whitespace_quirks() -> None:
    c = caps(b"PIPELINING   ", b"\tCHUNKING", b"AUTH\tPLAIN \t LOGIN ", b"", b"   ", b"\t")
    assert c.pipelining
    assert c.chunking
    assert c.auth == frozenset({"PLAIN", "LOGIN"})
    assert c.params("AUTH") == ("PLAIN", "LOGIN")
    # Blank lines (such as a bare "250 " closing line) are skipped entirely.
    assert c.lines == ("PIPELINING", "CHUNKING", "AUTH\\x09PLAIN \\x09 LOGIN")


def test_bare_250_last_line_through_the_parser() -> None:
    (reply,) = ReplyParser().feed(b"250-mx.example.com\r\n250-PIPELINING\r\n250 \r\n")
    c = Capabilities.from_reply(reply)
    assert c.pipelining
    assert c.lines == ("PIPELINING",)


def test_unprintable_and_non_utf8_lines_are_ignored_but_shown_escaped() -> None:
    c = caps(
        b"PIPE\xffLINING",
        b"STARTTLS\x00",
        b"\x1b[31mDSN",
        b"SMTPUTF8 \xc3\xa9",
        b"CHUNKING",
    )
    assert c.keywords == frozenset({"CHUNKING"})
    assert not c.starttls
    assert not c.dsn
    assert not c.smtputf8
    assert len(c.lines) == 5
    for line in c.lines:
        assert line.isprintable()
        assert "\x1b" not in line
        assert "\x00" not in line


@pytest.mark.parametrize("line", [b"-PIPELINING", b"=AUTH", b"*", b"[SIZE] 10", b"PIPE_LINING"])
def test_lines_without_a_valid_keyword_are_ignored(line: bytes) -> None:
    c = caps(line, b"DSN")
    assert c.keywords == frozenset({"DSN"})


def test_server_name_is_escaped() -> None:
    c = caps(b"PIPELINING", greeting=b"evil\x1b[2J\xff.example hello")
    assert c.server_name.isprintable()
    assert "\x1b" not in c.server_name
    assert c.server_name.startswith("evil")
    assert "hello" in c.greeting


def test_immutable_and_hashable() -> None:
    c = caps(b"PIPELINING", b"SIZE 10")
    with pytest.raises(AttributeError):
        c._esmtp = False
    with pytest.raises(AttributeError):
        c.pipelining = False  # type: ignore[misc]
    with pytest.raises(AttributeError):
        del c._lines
    assert c == caps(b"PIPELINING", b"SIZE 10")
    assert hash(c) == hash(caps(b"PIPELINING", b"SIZE 10"))
    assert c != caps(b"PIPELINING")
    assert c != Capabilities.none()
    assert c != "PIPELINING"
    assert len({c, caps(b"PIPELINING", b"SIZE 10")}) == 1


def test_repr_is_short_and_useful() -> None:
    c = caps(b"PIPELINING", b"SIZE 1000", b"AUTH LOGIN PLAIN", greeting=b"mx.example.com hi")
    text = repr(c)
    assert text == "<Capabilities 'mx.example.com' AUTH=LOGIN,PLAIN PIPELINING SIZE=1000>"
    assert "no extensions" in repr(caps())


def test_repr_is_bounded() -> None:
    many = [b"X-KEY%d" % i for i in range(500)]
    c = caps(*many, greeting=b"a" * 2000)
    assert len(repr(c)) < 400
    assert "more" in repr(c)


def test_constructor_for_tests() -> None:
    c = Capabilities([b"PIPELINING", b"SIZE 5"], greeting=b"mx.test")
    assert c == caps(b"PIPELINING", b"SIZE 5", greeting=b"mx.test")
    assert c.size == 5


def test_lhlo_reply() -> None:
    (reply,) = ReplyParser().feed(
        b"250-lmtp.example.org\r\n250-8BITMIME\r\n250-ENHANCEDSTATUSCODES\r\n250 PIPELINING\r\n"
    )
    c = Capabilities.from_reply(reply)
    assert c.pipelining
    assert c.eightbitmime
    assert c.enhanced_status_codes


# -- property tests ---------------------------------------------------------

_KEYWORDS = st.sampled_from(
    ["PIPELINING", "SIZE", "AUTH", "8BITMIME", "STARTTLS", "X-FOO", "DSN", "CHUNKING"]
)


def _random_case(draw: st.DrawFn, word: str) -> str:
    flips = draw(st.lists(st.booleans(), min_size=len(word), max_size=len(word)))
    return "".join(ch.lower() if flip else ch for ch, flip in zip(word, flips, strict=True))


@st.composite
def _keyword_line(draw: st.DrawFn) -> tuple[str, bytes]:
    keyword = draw(_KEYWORDS)
    params = draw(st.lists(st.from_regex(r"[!-~]{1,8}", fullmatch=True), max_size=3))
    sep = draw(st.sampled_from([" ", "\t", "  "]))
    line = _random_case(draw, keyword) + "".join(sep + p for p in params)
    return keyword, line.encode("ascii")


@settings(max_examples=300)
@given(st.binary(max_size=200), st.lists(st.binary(max_size=120), max_size=30))
def test_from_reply_never_raises(greeting: bytes, lines: list[bytes]) -> None:
    c = Capabilities.from_reply(Reply(250, (greeting, *lines)))
    repr(c)
    hash(c)
    assert c.esmtp
    assert c.size is None or c.size >= 0
    for line in c.lines:
        assert line.isprintable()
    assert c.server_name.isprintable() or c.server_name == ""
    for keyword in c.keywords:
        assert keyword == keyword.upper()
        assert c.has(keyword.lower())
        assert c.params(keyword.lower()) == c.params(keyword)
    for mechanism in c.auth:
        assert mechanism == mechanism.upper()


@settings(max_examples=300)
@given(st.lists(_keyword_line(), min_size=1, max_size=10))
def test_keyword_lookup_is_case_insensitive(entries: list[tuple[str, bytes]]) -> None:
    c = caps(*(line for _, line in entries))
    for keyword, _ in entries:
        assert c.has(keyword)
        assert c.has(keyword.lower())
        assert c.has(keyword.swapcase())
        assert c.params(keyword) is not None
        assert c.params(keyword.lower()) == c.params(keyword)
    assert c.keywords == {keyword for keyword, _ in entries}


@settings(max_examples=300)
@given(st.lists(st.binary(max_size=60), max_size=15))
def test_parser_and_capabilities_together_never_crash(lines: list[bytes]) -> None:
    # Through the real reply parser: a parse error is fine, a crash is not.
    cleaned = [line.replace(b"\r", b"").replace(b"\n", b"") for line in lines]
    wire = b"250-mx.example\r\n" + b"".join(b"250-" + line + b"\r\n" for line in cleaned)
    wire += b"250 \r\n"
    (reply,) = ReplyParser().feed(wire)
    c = Capabilities.from_reply(reply)
    assert all(line.isprintable() for line in c.lines)
