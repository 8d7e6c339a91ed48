"""Tests for trio_smtp._core.address: envelope paths, xtext and utf-8-addr-xtext."""

from __future__ import annotations

import copy
import pickle
import re
import string
import unicodedata

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trio_smtp._core.address import (
    ForwardPath,
    ReversePath,
    check_domain,
    utf8_addr_xtext,
    xtext,
)
from trio_smtp._core.errors import InvalidInputError

ATEXT = string.ascii_letters + string.digits + "!#$%&'*+-/=?^_`{|}~"

# -- strategies ---------------------------------------------------------------

ascii_atoms = st.text(alphabet=ATEXT, min_size=1, max_size=10)
ascii_local = st.lists(ascii_atoms, min_size=1, max_size=4).map(".".join)
utf8_atoms = st.text(
    alphabet=st.characters(categories=("L", "N"), min_codepoint=0xA1, max_codepoint=0x9FFF)
    | st.sampled_from(ATEXT),
    min_size=1,
    max_size=5,
)
utf8_local = st.lists(utf8_atoms, min_size=1, max_size=3).map(".".join)
ldh_label = st.from_regex(r"[A-Za-z0-9]([A-Za-z0-9-]{0,10}[A-Za-z0-9])?", fullmatch=True)
ascii_domain = (
    st.lists(ldh_label, min_size=1, max_size=4)
    .map(".".join)
    .filter(lambda d: not d.rsplit(".", 1)[-1].isdigit())
)
u_label = st.text(
    alphabet=st.characters(categories=("Ll",), min_codepoint=0xE0, max_codepoint=0x24F),  # type: ignore[arg-type]
    min_size=1,
    max_size=8,
).filter(lambda label: unicodedata.is_normalized("NFKC", label))
utf8_domain = st.tuples(u_label, ascii_domain).map(".".join)
ipv4_literal = st.ip_addresses(v=4).map(lambda ip: f"[{ip}]")
ipv6_literal = st.ip_addresses(v=6).map(lambda ip: f"[IPv6:{ip}]")
any_domain = st.one_of(ascii_domain, utf8_domain, ipv4_literal, ipv6_literal)
valid_addresses = st.one_of(
    st.tuples(ascii_local, ascii_domain),
    st.tuples(ascii_local, ipv4_literal | ipv6_literal),
    st.tuples(utf8_local, any_domain),
).map("@".join)


# -- valid paths --------------------------------------------------------------


@pytest.mark.parametrize(
    ("given_address", "expected", "utf8"),
    [
        ("user@example.com", "user@example.com", False),
        ("<user@example.com>", "user@example.com", False),
        ("first.last@sub.example.co.uk", "first.last@sub.example.co.uk", False),
        ("a!#$%&'*+-/=?^_`{|}~z@example.com", "a!#$%&'*+-/=?^_`{|}~z@example.com", False),
        ("User@Example.COM", "User@Example.COM", False),
        ("x@localhost", "x@localhost", False),
        ("x@a-b.example", "x@a-b.example", False),
        ("x@123.example", "x@123.example", False),
        ("x@xn--bcher-kva.example", "x@xn--bcher-kva.example", False),
        ("x@[192.0.2.1]", "x@[192.0.2.1]", False),
        ("x@[IPv6:2001:db8::1]", "x@[IPv6:2001:db8::1]", False),
        ("x@[ipv6:::ffff:192.0.2.1]", "x@[ipv6:::ffff:192.0.2.1]", False),
        ('"john..doe"@example.com', '"john..doe"@example.com', False),
        ('".start"@example.com', '".start"@example.com', False),
        ('"end."@example.com', '"end."@example.com', False),
        ('"plain"@example.com', "plain@example.com", False),
        ('"a.b"@example.com', "a.b@example.com", False),
        ("üser@example.com", "üser@example.com", True),
        ("用户@例子.广告", "用户@例子.广告", True),
        ("user@bücher.example", "user@bücher.example", True),
        ('"ü..x"@example.com', '"ü..x"@example.com', True),
    ],
)
def test_valid_paths(given_address: str, expected: str, utf8: bool) -> None:
    for cls in (ReversePath, ForwardPath):
        path = cls(given_address)
        assert path.address == expected
        assert str(path) == expected
        assert path.to_wire() == f"<{expected}>"
        assert path.needs_smtputf8 is utf8
    assert ReversePath(given_address).is_null is False


def test_null_reverse_path() -> None:
    for null in ("", "<>"):
        path = ReversePath(null)
        assert path.is_null
        assert path.address == ""
        assert path.to_wire() == "<>"
        assert path.needs_smtputf8 is False
    assert ReversePath("") == ReversePath("<>")


@pytest.mark.parametrize("null", ["", "<>"])
def test_forward_path_refuses_null(null: str) -> None:
    with pytest.raises(InvalidInputError, match="null"):
        ForwardPath(null)
    with pytest.raises(InvalidInputError):
        ForwardPath(ReversePath(null))


@pytest.mark.parametrize("name", ["Postmaster", "postmaster", "POSTMASTER", "<PostMaster>"])
def test_forward_path_postmaster(name: str) -> None:
    path = ForwardPath(name)
    assert path.address == name.strip("<>")
    assert path.to_wire() == f"<{name.strip('<>')}>"
    assert path.needs_smtputf8 is False


def test_postmaster_without_domain_only_for_forward_path() -> None:
    with pytest.raises(InvalidInputError):
        ReversePath("Postmaster")
    with pytest.raises(InvalidInputError):
        ForwardPath("webmaster")
    assert ForwardPath("postmaster@example.com").address == "postmaster@example.com"


# -- refused paths ------------------------------------------------------------


@pytest.mark.parametrize(
    "attack",
    [
        '"a@evil.com x"@internal.example',
        '"u"@ex.com(x)evil.com',
        "ceo@victim.example .other.example",
        '"a@evil.com"@internal.example',
        "a@evil.com@internal.example",
        '"a\\"@evil.com"@internal.example',
        '"a\\@evil.com"@internal.example',
        "user@example.com(comment)",
        "(comment)user@example.com",
        "user(comment)@example.com",
        "user @example.com",
        "user@ example.com",
        " user@example.com",
        "user@example.com ",
        "user@example.com\t",
        "<user@example.com> x",
        "<user@example.com>>",
        "<<user@example.com>",
        "<user@a.example><x@b.example>",
        "user@a.example>x@b.example",
        "Name <user@example.com>",
        '"Name" <user@example.com>',
        "<@relay.example:user@example.com>",
        "@relay.example:user@example.com",
        "user@victim.example,x@evil.example",
        "user%evil.example@victim.example,",
        "user@victim.example\u3002evil.example",
        "user@victim.example\uff0eevil.example",
        "user@victim.example\u00a0",
        "user\u200b@example.com",
        "user\u202e@example.com",
        "user@example.com\u2028",
        '"a b"@example.com',
        '"a(b)"@example.com',
        '"a,b"@example.com',
        '"a;b"@example.com',
        '"a:b"@example.com',
        '"a[b]"@example.com',
    ],
)
def test_sec_19_parser_differentials(attack: str) -> None:
    for cls in (ReversePath, ForwardPath):
        with pytest.raises(InvalidInputError):
            cls(attack)


@pytest.mark.parametrize(
    "bad",
    [
        "user",
        "user@",
        "@example.com",
        "<user@example.com",
        "user@example.com>",
        "<",
        ">",
        ".user@example.com",
        "user.@example.com",
        "us..er@example.com",
        "us\\er@example.com",
        'us"er@example.com',
        '""@example.com',
        '"@example.com',
        '"abc@example.com',
        'abc"@example.com',
        '"a"b"@example.com',
        "us[er@example.com",
        "user@example..com",
        "user@.example.com",
        "user@example.com.",
        "user@-example.com",
        "user@example-.com",
        "user@exa_mple.com",
        "user@exa*mple.com",
        "user@example.123",
        "user@1.2.3.4",
        "user@[1.2.3.4",
        "user@1.2.3.4]",
        "user@[]",
        "user@[1.2.3]",
        "user@[1.2.3.256]",
        "user@[01.2.3.4]",
        "user@[ 1.2.3.4]",
        "user@[IPv6:fe80::1%eth0]",
        "user@[IPv6:1.2.3.4]",
        "user@[IPv6:gggg::1]",
        "user@[IPv6:]",
        "user@[IPv4:1.2.3.4]",
        "user@[tag:content]",
        "user@[::1]",
        "user@ex\u00e4mple.\uff45\uff58",
        "user@\u0301abc.example",
        "user@abc\u2603.example",
        "user@-bücher.example",
    ],
)
def test_malformed_paths(bad: str) -> None:
    for cls in (ReversePath, ForwardPath):
        with pytest.raises(InvalidInputError):
            cls(bad)


@pytest.mark.parametrize(
    "control",
    ["\r", "\n", "\x00", "\t", "\x1b", "\x7f", "\x85", "\x9f", "\ud800"],
)
def test_sec_18_controls_in_addresses(control: str) -> None:
    for template in ("{c}user@example.com", "us{c}er@example.com", "user@exa{c}mple.com"):
        for cls in (ReversePath, ForwardPath):
            with pytest.raises(InvalidInputError):
                cls(template.format(c=control))
    with pytest.raises(InvalidInputError):
        ForwardPath(f"Postmaster{control}")
    with pytest.raises(InvalidInputError):
        ReversePath(f"<{control}>")


def test_crlf_error_message_is_escaped() -> None:
    with pytest.raises(InvalidInputError, match="CR, LF or NUL") as info:
        ReversePath("a@b.example\r\nRCPT TO:<x@evil.example>")
    assert "\r" not in str(info.value)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("wrong", [b"user@example.com", None, 42, ["user@example.com"]])
def test_wrong_types(wrong: object) -> None:
    for cls in (ReversePath, ForwardPath):
        with pytest.raises(InvalidInputError) as info:
            cls(wrong)  # type: ignore[arg-type]
        assert isinstance(info.value, ValueError)


def test_sec_21_size_limits() -> None:
    # local part: 64 octets
    assert ReversePath("a" * 64 + "@example.com").address.startswith("a" * 64)
    with pytest.raises(InvalidInputError, match="64"):
        ReversePath("a" * 65 + "@example.com")
    # measured in UTF-8 octets, not characters: 32 x 'é' is 64 octets, 33 is 66
    assert ReversePath("é" * 32 + "@example.com").needs_smtputf8
    with pytest.raises(InvalidInputError, match="64"):
        ReversePath("é" * 33 + "@example.com")
    # a quoted local part counts its quotes
    assert ForwardPath('"' + "a." * 31 + '"@example.com')
    with pytest.raises(InvalidInputError, match="64"):
        ForwardPath('"' + "a." * 32 + '"@example.com')
    # the whole path with its brackets: 256 octets, so the address is at most 254
    domain = ".".join(["d" * 63, "d" * 63, "d" * 63, "d" * 57])
    assert len(domain) == 249
    ok = "abcd@" + domain
    assert len(ok) == 254
    assert len(ReversePath(ok).to_wire()) == 256
    with pytest.raises(InvalidInputError, match="256"):
        ReversePath("abcde@" + domain)
    with pytest.raises(InvalidInputError, match="256"):
        ForwardPath("é" * 3 + "@" + domain)
    # labels: 63 octets
    assert ForwardPath("u@" + "l" * 63 + ".example")
    with pytest.raises(InvalidInputError, match="63"):
        ForwardPath("u@" + "l" * 64 + ".example")
    with pytest.raises(InvalidInputError, match="63"):
        ForwardPath("u@" + "ü" * 60 + ".example")
    # the domain limit on its own (used for EHLO names too): 255 octets
    name255 = ".".join(["d" * 63, "d" * 63, "d" * 63, "d" * 63])
    assert len(name255) == 255
    check_domain(name255, allow_utf8=False)
    with pytest.raises(InvalidInputError, match="255"):
        check_domain(name255 + "d", allow_utf8=False)


def test_check_domain_ascii_only() -> None:
    check_domain("mail.example.com", allow_utf8=False)
    check_domain("[192.0.2.1]", allow_utf8=False)
    with pytest.raises(InvalidInputError, match="ASCII"):
        check_domain("bücher.example", allow_utf8=False)
    check_domain("bücher.example", allow_utf8=True)
    with pytest.raises(InvalidInputError, match="empty"):
        check_domain("", allow_utf8=True)


# -- value semantics ----------------------------------------------------------


def test_equality_hash_and_immutability() -> None:
    a = ReversePath("user@example.com")
    b = ReversePath("<user@example.com>")
    assert a == b
    assert hash(a) == hash(b)
    assert len({a, b}) == 1
    assert a != ReversePath("other@example.com")
    assert a != ForwardPath("user@example.com")
    assert a != "user@example.com"
    with pytest.raises(AttributeError):
        a.address = "x@example.com"  # type: ignore[misc]
    with pytest.raises(AttributeError):
        a._address = "x@example.com"
    with pytest.raises(AttributeError):
        del a._address
    assert a.address == "user@example.com"


def test_copy_pickle_repr() -> None:
    for path in (ReversePath("ü@example.com"), ReversePath(""), ForwardPath("Postmaster")):
        assert copy.copy(path) == path
        assert copy.deepcopy(path) == path
        assert pickle.loads(pickle.dumps(path)) == path
        assert eval(repr(path)) == path
    assert repr(ReversePath("<a@b.example>")) == "ReversePath('a@b.example')"
    assert repr(ForwardPath("a@b.example")) == "ForwardPath('a@b.example')"


def test_conversion_between_path_types() -> None:
    reverse = ReversePath("user@example.com")
    forward = ForwardPath(reverse)
    assert forward.address == "user@example.com"
    assert ReversePath(forward) == reverse
    assert ReversePath(reverse) == reverse
    with pytest.raises(InvalidInputError):
        ReversePath(ForwardPath("Postmaster"))


# -- properties ---------------------------------------------------------------


@settings(max_examples=300)
@given(valid_addresses)
def test_valid_addresses_round_trip(address: str) -> None:
    for cls in (ReversePath, ForwardPath):
        path = cls(address)
        assert path.address == address
        assert cls(str(path)) == path
        assert cls(path.to_wire()) == path
        assert path.to_wire() == "<" + path.address + ">"
        assert path.needs_smtputf8 is (not address.isascii())


@settings(max_examples=300)
@given(st.text(alphabet=ATEXT + ".", min_size=1, max_size=20), ascii_domain)
def test_quoted_local_parts_round_trip(inner: str, domain: str) -> None:
    path = ReversePath(f'"{inner}"@{domain}')
    assert ReversePath(str(path)) == path
    assert path.to_wire() == "<" + path.address + ">"
    unquoted = inner.split(".")
    if all(unquoted):  # a valid dot-string is sent with minimal quoting
        assert path.address == f"{inner}@{domain}"
    else:
        assert path.address == f'"{inner}"@{domain}'


@settings(max_examples=300)
@given(st.one_of(st.text(max_size=60), valid_addresses.map(lambda a: a[:-1] + "\u3000")))
def test_arbitrary_text_parses_or_raises_invalid_input(text: str) -> None:
    for cls in (ReversePath, ForwardPath):
        try:
            path = cls(text)
        except InvalidInputError:
            continue
        wire = path.to_wire()
        assert wire == "<" + path.address + ">"
        assert not any(ch.isspace() or ch in "()\\" or ord(ch) < 0x20 for ch in wire)
        assert cls(path.address) == path
        assert len(wire.encode("utf-8")) <= 256


@settings(max_examples=300)
@given(
    valid_addresses,
    st.sampled_from(["\r", "\n", "\x00", "\r\n"]),
    st.data(),
)
def test_sec_18_crlf_nul_anywhere_in_an_address(
    address: str, bad: str, data: st.DataObject
) -> None:
    pos = data.draw(st.integers(min_value=0, max_value=len(address)))
    injected = address[:pos] + bad + address[pos:]
    for cls in (ReversePath, ForwardPath):
        with pytest.raises(InvalidInputError):
            cls(injected)


# -- xtext --------------------------------------------------------------------


def decode_xtext(text: str) -> str:
    """RFC 3461 xtext decoder, strict about the encoder's canonical form."""
    out: list[str] = []
    i = 0
    while i < len(text):
        ch = text[i]
        if ch == "+":
            hexchars = text[i + 1 : i + 3]
            assert re.fullmatch(r"[0-9A-F]{2}", hexchars), text
            out.append(chr(int(hexchars, 16)))
            i += 3
        else:
            assert 0x21 <= ord(ch) <= 0x7E, text
            assert ch != "=", text
            out.append(ch)
            i += 1
    return "".join(out)


def decode_utf8_addr_xtext(text: str) -> str:
    """RFC 6533 utf-8-addr-xtext decoder."""
    out: list[str] = []
    pos = 0
    for match in re.finditer(r"\\x\{([0-9A-F]{2,6})\}", text):
        plain = text[pos : match.start()]
        assert all(0x21 <= ord(c) <= 0x7E and c not in "+=\\" for c in plain), text
        out.append(plain)
        out.append(chr(int(match.group(1), 16)))
        pos = match.end()
    tail = text[pos:]
    assert all(0x21 <= ord(c) <= 0x7E and c not in "+=\\" for c in tail), text
    out.append(tail)
    return "".join(out)


@pytest.mark.parametrize(
    ("raw", "encoded"),
    [
        ("", ""),
        ("abc", "abc"),
        ("user@example.com", "user@example.com"),
        ("a+b=c", "a+2Bb+3Dc"),
        ("a b", "a+20b"),
        ("\\", "\\"),
        ("\x7f", "+7F"),
        ("\r\n", "+0D+0A"),
        ("~!", "~!"),
    ],
)
def test_xtext_golden(raw: str, encoded: str) -> None:
    assert xtext(raw) == encoded
    assert decode_xtext(encoded) == raw


@pytest.mark.parametrize("bad", ["ü", "a\u2028", "\x80"])
def test_xtext_refuses_non_ascii(bad: str) -> None:
    with pytest.raises(InvalidInputError):
        xtext(bad)


def test_xtext_wrong_type() -> None:
    with pytest.raises(InvalidInputError):
        xtext(b"abc")  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError):
        utf8_addr_xtext(None)  # type: ignore[arg-type]


@settings(max_examples=300)
@given(st.text(alphabet=st.characters(max_codepoint=0x7F)))
def test_xtext_round_trip(text: str) -> None:
    encoded = xtext(text)
    assert encoded.isascii()
    assert all(0x21 <= ord(c) <= 0x7E for c in encoded)
    assert "=" not in encoded
    assert decode_xtext(encoded) == text


@pytest.mark.parametrize(
    ("raw", "encoded"),
    [
        ("user@example.com", "user@example.com"),
        ("ü@example.com", "\\x{FC}@example.com"),
        ("a+b", "a\\x{2B}b"),
        ("a=b", "a\\x{3D}b"),
        ("a\\b", "a\\x{5C}b"),
        ("a b", "a\\x{20}b"),
        ("\t", "\\x{09}"),
        ("\x7f", "\\x{7F}"),
        ("用", "\\x{7528}"),
        ("\U0001f600", "\\x{1F600}"),
        ("\U0010ffff", "\\x{10FFFF}"),
    ],
)
def test_utf8_addr_xtext_golden(raw: str, encoded: str) -> None:
    assert utf8_addr_xtext(raw) == encoded
    assert decode_utf8_addr_xtext(encoded) == raw


@pytest.mark.parametrize("bad", ["\x00", "a\ud800"])
def test_utf8_addr_xtext_refuses_unrepresentable(bad: str) -> None:
    with pytest.raises(InvalidInputError):
        utf8_addr_xtext(bad)


@settings(max_examples=300)
@given(st.text(alphabet=st.characters(min_codepoint=1, exclude_categories=("Cs",))))  # type: ignore[arg-type]
def test_utf8_addr_xtext_round_trip(text: str) -> None:
    encoded = utf8_addr_xtext(text)
    assert all(0x21 <= ord(c) <= 0x7E for c in encoded)
    assert "+" not in encoded
    assert "=" not in encoded
    assert decode_utf8_addr_xtext(encoded) == text
