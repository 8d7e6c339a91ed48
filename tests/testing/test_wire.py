"""The server's own parsers, directly: DATA un-stuffing, paths, parameters, SASL."""

from __future__ import annotations

import hashlib
import itertools
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trio_smtp.testing import _wire


def stuff(body: bytes) -> bytes:
    """The reference dot-stuffing: a CRLF-ended body, leading dots doubled, then ".\\r\\n"."""
    if body and not body.endswith(b"\r\n"):
        body += b"\r\n"
    return (b"\r\n" + body).replace(b"\r\n.", b"\r\n..")[2:] + b".\r\n"


def canonical(body: bytes) -> bytes:
    return body + b"\r\n" if body and not body.endswith(b"\r\n") else body


def feed_in_pieces(reader: _wire.DataReader, wire: bytes, cuts: list[int]) -> bytes | None:
    rest = None
    start = 0
    for cut in [*sorted(set(cuts)), len(wire)]:
        piece = wire[start:cut]
        start = cut
        if rest is not None:
            rest += piece
        elif piece or cut == len(wire):
            rest = reader.feed(piece)
    return rest


bodies = st.lists(
    st.sampled_from([b".", b"..", b"\r\n", b"\r", b"\n", b"a", b".\r\n", b"\r\n.\r\n", b"\x00"]),
    max_size=30,
).map(b"".join) | st.binary(max_size=200)


@settings(max_examples=300, deadline=None)
@given(body=bodies, trailer=st.binary(max_size=20), data=st.data())
def test_data_reader_undoes_stuffing_whatever_the_chunking(
    body: bytes, trailer: bytes, data: st.DataObject
) -> None:
    wire = stuff(body) + trailer
    cuts = data.draw(st.lists(st.integers(0, len(wire)), max_size=12))
    reader = _wire.DataReader(limit=10_000)
    rest = feed_in_pieces(reader, wire, cuts)
    assert reader.done
    assert bytes(reader.data) == canonical(body)
    assert rest == trailer
    bare = re.search(rb"\r(?!\n)|(?<!\r)\n", canonical(body)) is not None
    assert reader.bare.seen == bare


def test_data_reader_one_octet_at_a_time() -> None:
    wire = b"..\r\n.a\r\n\r\n..\r\nb\r\n.\r\nNEXT"
    reader = _wire.DataReader(limit=100)
    results = [reader.feed(bytes([octet])) for octet in wire[: wire.index(b"NEXT")]]
    assert results[:-1] == [None] * (len(results) - 1)
    assert results[-1] == b""
    assert bytes(reader.data) == b".\r\na\r\n\r\n.\r\nb\r\n"


def test_data_reader_needs_crlf_dot_crlf() -> None:
    for near_miss in [b"a\n.\n", b"a\r.\r", b"a\n.\r\n", b"a\r\n.\n", b"a\r.\r\n", b"a\r\n.\r"]:
        reader = _wire.DataReader(limit=100)
        assert reader.feed(near_miss) is None
        assert not reader.done


def test_data_reader_bounds_memory_but_counts() -> None:
    reader = _wire.DataReader(limit=10)
    assert reader.feed(b"x" * 100 + b"\r\n.\r\n") == b""
    assert len(reader.data) == 10
    assert reader.size == 102
    assert reader.oversize


@given(chunks=st.lists(st.binary(max_size=10), max_size=10))
def test_bare_newline_detector_matches_a_regex(chunks: list[bytes]) -> None:
    detector = _wire.BareNewlineDetector()
    for chunk in chunks:
        detector.feed(chunk)
    detector.finish()
    assert detector.seen == (re.search(rb"\r(?!\n)|(?<!\r)\n", b"".join(chunks)) is not None)


@pytest.mark.parametrize(
    ("text", "mailbox", "rest"),
    [
        ("<a@example.org>", "a@example.org", ""),
        ("<a@example.org> SIZE=1", "a@example.org", " SIZE=1"),
        ('<"a b\\"c"@example.org>', '"a b\\"c"@example.org', ""),
        ("<@x.example,@y.example:u@z.example>", "u@z.example", ""),
        ("<u@[192.0.2.1]>", "u@[192.0.2.1]", ""),
        ("<u@[IPv6:::1]>", "u@[IPv6:::1]", ""),
        ("<u@[x-tag:abc]>", "u@[x-tag:abc]", ""),
        ("<\u00fc@b\u00fccher.example>", "\u00fc@b\u00fccher.example", ""),
        ("<!#$%&'*+-/=?^_`{|}~@example.org>", "!#$%&'*+-/=?^_`{|}~@example.org", ""),
    ],
)
def test_parse_path_accepts(text: str, mailbox: str, rest: str) -> None:
    assert _wire.parse_path(text, allow_null=False) == (mailbox, rest)


@pytest.mark.parametrize(
    "text",
    [
        "a@example.org",
        "<a@example.org",
        "<a@example.org >",
        "< a@example.org>",
        "<a.@example.org>",
        "<.a@example.org>",
        "<a@example..org>",
        "<a@example.org.>",
        "<a@exa_mple.org>",
        "<a>",
        "<@x.example:>",
        '<"unterminated@example.org>',
        '<"bad\x01"@example.org>',
        "<a(comment)@example.org>",
        "<u@[300.1.1.1]>",
        "<u@[IPv6:zz]>",
        "<>",
        "<" + "x" * 65 + "@example.org>",
        "<x@" + ".".join(["a" * 60] * 5) + ">",
    ],
)
def test_parse_path_refuses(text: str) -> None:
    with pytest.raises(_wire.GrammarError):
        _wire.parse_path(text, allow_null=False)


def test_null_and_postmaster_paths() -> None:
    assert _wire.parse_path("<> BODY=7BIT", allow_null=True) == ("", " BODY=7BIT")
    assert _wire.parse_path("<postMaster>", allow_null=False, allow_postmaster=True) == (
        "postMaster",
        "",
    )


def test_parse_params() -> None:
    assert _wire.parse_params("") == []
    assert _wire.parse_params(" size=10 SMTPUTF8 x-Y=\u00e9") == [
        ("SIZE", "10"),
        ("SMTPUTF8", None),
        ("X-Y", "\u00e9"),
    ]
    for bad in [" ", "  SIZE=1", " SIZE=", " SIZE=a\tb", "SIZE=1", " -X", " A=b=c", " A=1 a=2"]:
        with pytest.raises(_wire.GrammarError):
            _wire.parse_params(bad)


def test_xtext_notify_orcpt() -> None:
    assert _wire.is_xtext("abc+2B+3D")
    assert not _wire.is_xtext("a+2b")  # hex must be upper case
    assert not _wire.is_xtext("a=b")
    assert not _wire.is_xtext("a b")
    assert _wire.is_notify("never") and _wire.is_notify("DELAY,success")
    assert not _wire.is_notify("NEVER,DELAY") and not _wire.is_notify("SUCCESS,SUCCESS")
    assert _wire.is_orcpt("rfc822;a@example.org", utf8=False)
    assert _wire.is_orcpt("utf-8;a\\x{E9}@example.org", utf8=False)
    assert not _wire.is_orcpt("utf-8;\u00e9@example.org", utf8=False)
    assert _wire.is_orcpt("utf-8;\u00e9@example.org", utf8=True)
    assert not _wire.is_orcpt("rfc822;", utf8=False)


def test_split_command() -> None:
    assert _wire.split_command(b"mail FROM:<a@b>") == ("MAIL", b"FROM:<a@b>")
    assert _wire.split_command(b"QUIT") == ("QUIT", b"")
    assert _wire.split_command(b"") == ("", b"")
    assert _wire.split_command(b"M4IL x") == ("", b"M4IL x")


def test_sasl_parsers() -> None:
    assert _wire.decode_sasl(b"") == b""
    assert _wire.decode_sasl(b"AQ==") == b"\x01"
    assert _wire.decode_sasl(b"A Q==") is None
    assert _wire.decode_sasl(b"AQ=") is None
    assert _wire.parse_plain(b"\0u\0p") == ("", "u", "p")
    assert _wire.parse_plain(b"z\0u\0") == ("z", "u", "")
    assert _wire.parse_plain(b"\0\0p") is None
    assert _wire.parse_plain(b"u\0p") is None
    assert _wire.parse_xoauth2(b"user=u@x\x01auth=Bearer tok\x01\x01") == ("u@x", "tok")
    assert _wire.parse_xoauth2(b"user=u@x\x01auth=Bearer tok\x01") is None
    assert _wire.parse_xoauth2(b"user=u@x\x01auth=Basic tok\x01\x01") is None
    parsed = _wire.parse_oauthbearer(
        b"n,a=u=2Cv=3D@x,\x01host=h\x01port=25\x01auth=Bearer t\x01\x01"
    )
    assert parsed is not None
    assert (parsed.authzid, parsed.token, parsed.pairs["port"]) == ("u,v=@x", "t", "25")
    for bad in [
        b"n,a=u,\x01auth=Bearer t\x01",  # no final kvsep
        b"p=tls-unique,,\x01auth=Bearer t\x01\x01",  # channel binding
        b"n,b=u,\x01auth=Bearer t\x01\x01",
        b"n,a=u=x,\x01auth=Bearer t\x01\x01",  # bad saslname escape
        b"n,,\x01host=h\x01\x01",  # no auth
        b"n,,\x01auth=Bearer t\x01auth=Bearer t\x01\x01",
    ]:
        assert _wire.parse_oauthbearer(bad) is None, bad


def bare_reference(data: bytes) -> bool:
    return re.search(rb"\r(?!\n)|(?<!\r)\n", data) is not None


# Mostly CR, LF and CRLF, so bare and non-bare ones meet at every chunk edge.
newline_heavy = st.lists(
    st.sampled_from([b"\r", b"\n", b"\r\n", b"\r\n", b"\n\r", b"a", b"\r\r\n", b"\r\n\n"]),
    max_size=25,
).map(b"".join)


def cut_at(data: bytes, cuts: list[int]) -> list[bytes]:
    bounds = [0, *sorted(set(cuts)), len(data)]
    return [data[a:b] for a, b in itertools.pairwise(bounds)]


@settings(max_examples=500, deadline=None)
@given(data=newline_heavy | st.binary(max_size=40), draw=st.data())
def test_bare_newline_detector_whatever_the_chunking(data: bytes, draw: st.DataObject) -> None:
    cuts = draw.draw(st.lists(st.integers(0, len(data)), max_size=10))
    for pieces in (cut_at(data, cuts), [bytes([octet]) for octet in data], [data]):
        detector = _wire.BareNewlineDetector()
        for piece in pieces:
            detector.feed(piece)
        detector.finish()
        assert detector.seen == bare_reference(data), pieces


@settings(max_examples=300, deadline=None)
@given(body=bodies | newline_heavy, trailer=st.binary(max_size=10))
def test_data_reader_one_octet_at_a_time_whatever_the_body(body: bytes, trailer: bytes) -> None:
    wire = stuff(body) + trailer
    kept = _wire.DataReader(limit=10_000)
    hashed = _wire.DataReader(limit=10_000, keep=False)
    rests = []
    for reader in (kept, hashed):
        rest = feed_in_pieces(reader, wire, list(range(len(wire))))
        assert reader.done
        assert reader.size == len(canonical(body))
        assert reader.bare.seen == bare_reference(canonical(body))
        rests.append(rest)
    assert rests == [trailer, trailer]
    assert bytes(kept.data) == canonical(body)
    assert hashed.hexdigest() == hashlib.sha256(canonical(body)).hexdigest()


def test_bare_newline_detector_on_every_short_input_and_cut() -> None:
    # Exhaustive where edge cases live: every string of up to 6 octets over
    # CR, LF and one other octet, cut every possible way.
    for length in range(7):
        for data in map(bytes, itertools.product(b"\r\na", repeat=length)):
            expected = bare_reference(data)
            for mask in range(1 << max(length - 1, 0)):
                cuts = [i + 1 for i in range(length - 1) if mask >> i & 1]
                detector = _wire.BareNewlineDetector()
                for piece in cut_at(data, cuts):
                    detector.feed(piece)
                detector.finish()
                assert detector.seen == expected, cut_at(data, cuts)
