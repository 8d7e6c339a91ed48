"""The incremental body encoders, fed in arbitrary chunks: base64 lines and
quoted-printable must come out valid, within 76 columns, and decode to the
input whatever the chunking."""

from __future__ import annotations

import base64
import binascii
import re

from hypothesis import example, given, settings
from hypothesis import strategies as st

from trio_smtp.mime import (
    _QP_HOLD,
    READ_SIZE,
    _base64_length,
    _Base64Encoder,
    _QuotedPrintableEncoder,
    _TextLineEnds,
)

# Sizes around base64's 3-octet groups and 57-octet lines.
EDGE_SIZES = [0, 1, 2, 3, 4, 56, 57, 58, 113, 114, 115, 171, *(READ_SIZE + d for d in (-1, 0, 1))]

binary = st.one_of(
    st.binary(max_size=600),
    st.sampled_from(EDGE_SIZES).map(lambda n: bytes(range(256)) * (n // 256) + bytes(n % 256)),
)


def split(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts})
    pieces, start = [], 0
    for point in points:
        pieces.append(data[start:point])
        start = point
    pieces.append(data[start:])
    return pieces


def run(
    encoder: _Base64Encoder | _QuotedPrintableEncoder | _TextLineEnds, pieces: list[bytes]
) -> bytes:
    return b"".join([encoder.feed(piece) for piece in pieces] + [encoder.finish()])


@settings(deadline=None)
@given(binary, st.lists(st.integers(min_value=0)))
def test_base64_lines_match_a_one_shot_encoding(data: bytes, cuts: list[int]) -> None:
    out = run(_Base64Encoder(), split(data, cuts))
    # The standard library's MIME base64: 76-column lines; ours joins them
    # with CRLF and leaves the last line unterminated.
    expected = base64.encodebytes(data).replace(b"\n", b"\r\n").removesuffix(b"\r\n")
    assert out == expected
    assert len(out) == _base64_length(len(data))


def test_base64_block_is_whole_lines() -> None:
    # A READ_SIZE block must end exactly on a line, or lines straddle reads.
    data = bytes(READ_SIZE) * 2
    encoder = _Base64Encoder()
    first = encoder.feed(data[:READ_SIZE])
    assert len(first) == READ_SIZE // 57 * 78 - 2
    assert all(len(line) == 76 for line in first.split(b"\r\n"))


def qp_decode(encoded: bytes) -> bytes:
    return binascii.a2b_qp(encoded)


QP_LINE = re.compile(rb"(?:[\t\x20-\x3c\x3e-\x7e]|=[0-9A-F]{2})*=?")


def check_qp(encoded: bytes) -> None:
    """RFC 2045 6.7: only these characters, =XX in upper case, at most 76
    columns, no whitespace before a line end, and "=" only as an escape or
    a soft break at the very end of a line."""
    assert encoded.isascii()
    for line in encoded.split(b"\r\n"):
        assert len(line) <= 76, line
        assert b"\r" not in line and b"\n" not in line
        assert QP_LINE.fullmatch(line), line
        assert not line.endswith((b" ", b"\t")), line


text_like = st.lists(
    st.one_of(
        st.binary(max_size=90),
        st.sampled_from([b"\r\n", b"\r", b"\n", b" ", b"\t", b"=", b" \r\n", b"\t\r\n", b"."]),
        st.integers(min_value=70, max_value=160).map(lambda n: b"x" * n),
    ),
    max_size=12,
).map(b"".join)


@settings(deadline=None)
@given(text_like, st.lists(st.integers(min_value=0)))
@example(b"a" * 76, [])
@example(b"a" * 75 + b" ", [])
@example(b"a" * 74 + b"=", [])
@example(b"a" * 73 + b"\xff" + b"b" * 10, [])
@example(b"ab \r\ncd\t", [3, 4])
@example(b"x\r", [2])
def test_quoted_printable_is_valid_and_decodes_to_the_input(data: bytes, cuts: list[int]) -> None:
    out = run(_QuotedPrintableEncoder(), split(data, cuts))
    check_qp(out)
    assert qp_decode(out) == data


@settings(deadline=None)
@given(text_like, st.lists(st.integers(min_value=0)))
# binascii.b2a_qp writes a dot alone on one of its own lines as "=2E", and
# where its lines fall depended on where the chunk began.
@example(b"\x00" * 8 + b"x" * 159 + b"\r\n.\r\n" + b"\x00" * 8, [3427])
def test_quoted_printable_output_does_not_depend_on_the_chunking(
    data: bytes, cuts: list[int]
) -> None:
    # Lines shorter than the hold limit wait for their CRLF, so the chunking
    # changes nothing at all.
    assert run(_QuotedPrintableEncoder(), split(data, cuts)) == run(
        _QuotedPrintableEncoder(), [data]
    )


def test_quoted_printable_writes_a_lone_dot_the_same_wherever_it_falls() -> None:
    # Left as it is: SMTP's dot-stuffing is what keeps it from ending the data.
    assert run(_QuotedPrintableEncoder(), [b"."]) == b"."
    assert run(_QuotedPrintableEncoder(), [b"a\r\n.\r\n"]) == b"a\r\n.\r\n"
    assert run(_QuotedPrintableEncoder(), [b"a\r\n", b".", b"\r\n"]) == b"a\r\n.\r\n"


def test_quoted_printable_keeps_hard_line_breaks() -> None:
    out = run(_QuotedPrintableEncoder(), [b"one \r\ntwo\r", b"\nthree\nfour\r"])
    assert out == b"one=20\r\ntwo\r\nthree=0Afour=0D"


@settings(deadline=None)
@given(st.integers(min_value=1, max_value=4), st.sampled_from([b"x", b"\xff", b" ", b"\r"]))
def test_quoted_printable_memory_is_bounded_on_a_line_without_end(
    rounds: int, filler: bytes
) -> None:
    encoder = _QuotedPrintableEncoder()
    pieces = []
    for _ in range(rounds * 3):
        pieces.append(encoder.feed(filler * 40_000))
        # Never more than the hold limit plus one chunk waits for a CRLF.
        assert len(encoder._pending) <= _QP_HOLD + 1
    pieces.append(encoder.finish())
    out = b"".join(pieces)
    check_qp(out)
    assert qp_decode(out) == filler * 40_000 * rounds * 3


@settings(deadline=None)
@given(
    st.lists(st.sampled_from([b"a", b"\r", b"\n", b"\r\n", b"\n\r", b"xyz"])),
    st.lists(st.integers(0)),
)
def test_text_line_ends_become_crlf_across_chunks(parts: list[bytes], cuts: list[int]) -> None:
    data = b"".join(parts)
    out = run(_TextLineEnds(), split(data, cuts))
    expected = re.sub(rb"\r\n|\r|\n", b"\r\n", data)
    assert out == expected
