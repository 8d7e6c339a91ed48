"""Tests for trio_smtp._core.dotstuff: CRLF canonicalisation and dot-stuffing.

The reference ("oracle") below is written independently of the implementation
with regular expressions, in the way CPython's smtplib does it (``_fix_eols``
then ``_quote_periods``); every property compares the incremental, chunked
code against it. Tests named ``test_sec_*`` cover SECURITY.md section B.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterable, Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from trio_smtp._core.dotstuff import DotStuffer, NewlineNormalizer, unstuff
from trio_smtp._core.errors import InvalidInputError, LocalProtocolError

# ---------------------------------------------------------------------------
# Reference model and helpers
# ---------------------------------------------------------------------------

_EOL = re.compile(rb"\r\n|\r|\n")
_LINE_START_DOT = re.compile(rb"(?m)^\.")
_MARKER = b"\r\n.\r\n"


def fix_eols(data: bytes) -> bytes:
    """Bare CR and bare LF to CRLF (CPython smtplib's ``_fix_eols``)."""
    return _EOL.sub(b"\r\n", data)


def oracle_body(data: bytes) -> bytes:
    """What unstuff() must give back: canonical, with a final CRLF if non-empty."""
    canon = fix_eols(data)
    if canon and not canon.endswith(b"\r\n"):
        canon += b"\r\n"
    return canon


def oracle_wire(data: bytes) -> bytes:
    """The full DATA wire form of ``data``."""
    return _LINE_START_DOT.sub(b"..", oracle_body(data)) + b".\r\n"


def has_bare_newline(data: bytes) -> bool:
    return fix_eols(data) != data


def split_at(data: bytes, cuts: Iterable[int]) -> list[bytes]:
    points = sorted({0, len(data), *cuts})
    return [data[a:b] for a, b in itertools.pairwise(points)]


def fixed_chunks(data: bytes, size: int) -> list[bytes]:
    return [data[i : i + size] for i in range(0, len(data), size)]


def one_byte_chunks(data: bytes) -> list[bytes]:
    return fixed_chunks(data, 1)


def run_stuffer(chunks: Iterable[bytes], **options: bool) -> tuple[bytes, bytes]:
    """Return (concatenated feed() outputs, finish() output)."""
    stuffer = DotStuffer(**options)
    fed = b"".join(stuffer.feed(chunk) for chunk in chunks)
    return fed, stuffer.finish()


def stuff(chunks: Iterable[bytes], **options: bool) -> bytes:
    fed, end = run_stuffer(chunks, **options)
    return fed + end


def normalize(chunks: Iterable[bytes], **options: bool) -> bytes:
    normalizer = NewlineNormalizer(**options)
    out = b"".join(normalizer.feed(chunk) for chunk in chunks)
    return out + normalizer.finish()


# ---------------------------------------------------------------------------
# Strategies
# ---------------------------------------------------------------------------

# Small pieces that make boundary cases likely: newlines of every kind next to
# dots, at the start, at the end, and across chunk boundaries.
_PIECES = [b"\r", b"\n", b"\r\n", b".", b"..", b"a", b"Z", b" ", b"\r\n.", b"\n.", b"\r."]

text_bodies = st.one_of(
    st.lists(st.sampled_from(_PIECES), max_size=40).map(b"".join),
    st.binary(max_size=60).map(lambda b: b.replace(b"\x00", b"")),
)
canonical_bodies = st.lists(
    st.sampled_from([b"\r\n", b".", b"a", b"Z", b"\r\n.", b"\r\n\r\n", b".\r\n"]), max_size=40
).map(b"".join)
nul_bodies = st.lists(st.sampled_from([*_PIECES, b"\x00", b"\r\n\x00."]), max_size=40).map(b"".join)


@st.composite
def chunked(draw: st.DrawFn, bodies: st.SearchStrategy[bytes]) -> tuple[bytes, list[bytes]]:
    """A body and an arbitrary split of it into chunks (empty chunks included)."""
    data = draw(bodies)
    cuts = draw(st.lists(st.integers(0, len(data)), max_size=12))
    chunks = split_at(data, cuts)
    if draw(st.booleans()):
        # Sprinkle empty chunks: they must change nothing.
        chunks = [c for chunk in chunks for c in (chunk, b"")]
    return data, chunks


PROPERTY = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


# ---------------------------------------------------------------------------
# Properties
# ---------------------------------------------------------------------------


@PROPERTY
@given(chunked(text_bodies))
def test_every_chunking_matches_one_shot(case: tuple[bytes, list[bytes]]) -> None:
    data, chunks = case
    one_shot = stuff([data])
    assert one_shot == oracle_wire(data)
    assert stuff(chunks) == one_shot
    assert stuff(one_byte_chunks(data)) == one_shot


@PROPERTY
@given(chunked(text_bodies))
def test_unstuff_inverts(case: tuple[bytes, list[bytes]]) -> None:
    data, chunks = case
    assert unstuff(stuff(chunks)) == oracle_body(data)


@PROPERTY
@given(chunked(text_bodies))
def test_no_end_marker_before_finish(case: tuple[bytes, list[bytes]]) -> None:
    _, chunks = case
    fed, end = run_stuffer(chunks)
    # The start of the body is a line start (the DATA line ended in CRLF).
    assert _MARKER not in b"\r\n" + fed
    # Nor anything a lenient server would take for one.
    assert not re.search(rb"[\r\n]\.[\r\n]", b"\r\n" + fed)
    total = b"\r\n" + fed + end
    assert total.count(_MARKER) == 1
    assert total.endswith(_MARKER)
    assert len(re.findall(rb"[\r\n]\.[\r\n]", total)) == 1


@PROPERTY
@given(chunked(text_bodies))
def test_output_has_only_crlf_line_ends(case: tuple[bytes, list[bytes]]) -> None:
    _, chunks = case
    for out in (stuff(chunks), normalize(chunks)):
        crlf = out.count(b"\r\n")
        assert out.count(b"\r") == crlf
        assert out.count(b"\n") == crlf


@PROPERTY
@given(chunked(text_bodies))
def test_strict_mode_raises_on_bare_newlines_for_every_chunking(
    case: tuple[bytes, list[bytes]],
) -> None:
    data, chunks = case
    for split in (chunks, one_byte_chunks(data), [data]):
        for cls in (DotStuffer, NewlineNormalizer):
            obj = cls(normalize_newlines=False)
            if has_bare_newline(data):
                with pytest.raises(InvalidInputError):
                    for chunk in split:
                        obj.feed(chunk)
                    obj.finish()
            else:
                out = b"".join(obj.feed(chunk) for chunk in split) + obj.finish()
                expected = oracle_wire(data) if cls is DotStuffer else data
                assert out == expected


@PROPERTY
@given(chunked(canonical_bodies))
def test_strict_mode_accepts_canonical_input(case: tuple[bytes, list[bytes]]) -> None:
    data, chunks = case
    assert stuff(chunks, normalize_newlines=False) == oracle_wire(data)
    assert normalize(chunks, normalize_newlines=False) == data


@PROPERTY
@given(chunked(text_bodies))
def test_normalizer_chunking_invariance_and_equivalence(case: tuple[bytes, list[bytes]]) -> None:
    data, chunks = case
    one_shot = normalize([data])
    assert one_shot == fix_eols(data)
    assert normalize(chunks) == one_shot
    assert normalize(one_byte_chunks(data)) == one_shot
    # The normaliser is exactly the non-stuffing part of the DotStuffer.
    final_crlf = b"\r\n" if one_shot and not one_shot.endswith(b"\r\n") else b""
    assert oracle_body(data) == one_shot + final_crlf
    assert unstuff(stuff(chunks)) == oracle_body(data)


@PROPERTY
@given(chunked(nul_bodies))
def test_nul_refused_unless_allowed(case: tuple[bytes, list[bytes]]) -> None:
    data, chunks = case
    if b"\x00" in data:
        with pytest.raises(InvalidInputError):
            stuff(chunks)
        with pytest.raises(InvalidInputError):
            normalize(chunks)
    else:
        assert stuff(chunks) == oracle_wire(data)
    # allow_nul passes NUL through verbatim (for peers known to keep it).
    wire = stuff(chunks, allow_nul=True)
    assert wire == oracle_wire(data)
    assert stuff(one_byte_chunks(data), allow_nul=True) == wire
    assert unstuff(wire) == oracle_body(data)
    assert normalize(chunks, allow_nul=True) == fix_eols(data)


@PROPERTY
@given(chunked(text_bodies))
def test_byte_counters(case: tuple[bytes, list[bytes]]) -> None:
    data, chunks = case
    stuffer = DotStuffer()
    out = b"".join(stuffer.feed(chunk) for chunk in chunks)
    assert stuffer.bytes_in == len(data)
    assert stuffer.bytes_out == len(out)
    out += stuffer.finish()
    assert stuffer.bytes_out == len(out)
    assert stuffer.bytes_in == len(data)


@PROPERTY
@given(chunked(text_bodies))
def test_octets_count_the_canonical_body_without_stuffing(case: tuple[bytes, list[bytes]]) -> None:
    # RFC 1870's message size: the canonical body with its final CRLF, not
    # the doubled dots nor the end-of-data marker.
    data, chunks = case
    stuffer, normalizer = DotStuffer(), NewlineNormalizer()
    for chunk in chunks:
        stuffer.feed(chunk)
        normalizer.feed(chunk)
    stuffer.finish()
    normalizer.finish()
    assert stuffer.octets == len(oracle_body(data))
    assert normalizer.octets == normalizer.bytes_out == len(fix_eols(data))


# What trio_smtp.mime vouches for: lines of the base64 alphabet joined by
# CRLF, as a part's first chunk (no leading CRLF, possibly a leading "." to
# exercise the edge check) or a later one (leading CRLF).
_B64_LINES = st.lists(st.text("AZaz09+/=", min_size=1, max_size=8), min_size=1, max_size=5)


@st.composite
def wire_safe_runs(draw: st.DrawFn) -> list[tuple[bytes, bool]]:
    """Chunks, each flagged wire-safe or not: safe runs cut anywhere, free text between."""
    chunks: list[tuple[bytes, bool]] = []
    for _ in range(draw(st.integers(1, 6))):
        if draw(st.booleans()):
            chunks.append((draw(text_bodies), False))
            continue
        run = "\r\n".join(draw(_B64_LINES)).encode()
        lead = draw(st.sampled_from([b"", b"\r\n", b"."]))
        run = lead + run
        cuts = draw(st.lists(st.integers(0, len(run)), max_size=4))
        chunks.extend((piece, True) for piece in split_at(run, cuts))
    return chunks


@PROPERTY
@given(wire_safe_runs())
def test_feed_wire_safe_gives_what_feed_gives(chunks: list[tuple[bytes, bool]]) -> None:
    # Including chunks cut inside a CRLF, after a held CR, and starting with
    # "." at the start of a line: the edges feed_wire_safe must still check.
    for cls in (DotStuffer, NewlineNormalizer):
        checked, trusting = cls(), cls()
        for chunk, safe in chunks:
            expected = checked.feed(chunk)
            got = trusting.feed_wire_safe(chunk) if safe else trusting.feed(chunk)
            assert got == expected
            assert (trusting.bytes_in, trusting.bytes_out) == (checked.bytes_in, checked.bytes_out)
            assert trusting.octets == checked.octets
        assert trusting.finish() == checked.finish()
        assert trusting.bytes_out == checked.bytes_out
        assert trusting.octets == checked.octets


def test_feed_wire_safe_still_canonicalises_its_edges() -> None:
    # A leading LF with no CR held before it breaks the promise at the edge,
    # which is the one place feed_wire_safe looks: it becomes CRLF anyway.
    for cls in (DotStuffer, NewlineNormalizer):
        stuffer = cls()
        assert stuffer.feed(b"abc") == b"abc"
        assert stuffer.feed_wire_safe(b"\nQUJD") == b"\r\nQUJD"
        assert stuffer.feed_wire_safe(b"\r\nQUJD\r") == b"\r\nQUJD"
        assert stuffer.feed_wire_safe(b"QUJD") == b"\r\nQUJD"


def test_feed_wire_safe_is_refused_when_finished_or_broken() -> None:
    stuffer = DotStuffer()
    stuffer.finish()
    with pytest.raises(LocalProtocolError):
        stuffer.feed_wire_safe(b"QUJD")
    broken = DotStuffer()
    with pytest.raises(InvalidInputError):
        broken.feed(b"\x00")
    with pytest.raises(InvalidInputError):
        broken.feed_wire_safe(b"QUJD")


# ---------------------------------------------------------------------------
# SECURITY.md section B
# ---------------------------------------------------------------------------


def test_sec_10_bare_lf_and_cr_become_crlf() -> None:
    assert stuff([b"a\nb\rc\r\nd"]) == b"a\r\nb\r\nc\r\nd\r\n.\r\n"
    assert stuff([b"one\n.\ntwo\n"]) == b"one\r\n..\r\ntwo\r\n.\r\n"
    assert stuff([b"\r\r\n\n"]) == b"\r\n\r\n\r\n.\r\n"
    assert normalize([b"a\nb\rc\r\nd\r"]) == b"a\r\nb\r\nc\r\nd\r\n"
    for body in (b"a\nb", b"a\rb", b"a\r", b"\n", b"a\r\n\n"):
        with pytest.raises(InvalidInputError):
            stuff([body], normalize_newlines=False)


SMUGGLED = (
    b"MAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nDATA\r\n"
    b"From: a@b\r\nTo: c@d\r\nSubject: smuggled\r\n\r\nsmuggled body\r\n"
)

SMTPSMUG_VECTORS = [
    b"\n.\n",
    b"\r.\r",
    b"\r.\n",
    b"\n.\r",
    b"\n.\r\n",
    b"\r\n.\n",
    b"\r.\r\n",
    b"\r\n.\r",
    b"\r\n\x00.\r\n",
]

_STRICT_EOL = re.compile(rb"\r\n")
_STRICT_EOD = re.compile(rb"\r\n\.\r\n")
_LENIENT_EOL = re.compile(rb"\r\n|\r|\n")
_LENIENT_EOD = re.compile(rb"(?:\r\n|\r|\n)\.(?:\r\n|\r|\n)")


def receive(stream: bytes, *, lenient: bool) -> list[bytes]:
    """A minimal SMTP receiver: the message bodies it would accept from ``stream``.

    The strict receiver ends lines only at CRLF and data only at CRLF.CRLF (as
    fixed servers do). The lenient one, like the unfixed servers smtpsmug
    targets, strips NUL, takes CR, LF or CRLF as a line end and ends data at
    any "." line between them (LF.LF, CR.CR, LF.CRLF, ...).
    """
    if lenient:
        stream = stream.replace(b"\x00", b"")
    eol, eod = (_LENIENT_EOL, _LENIENT_EOD) if lenient else (_STRICT_EOL, _STRICT_EOD)
    messages: list[bytes] = []
    pos = 0
    while (line_end := eol.search(stream, pos)) is not None:
        line = stream[pos : line_end.start()]
        pos = line_end.end()
        if line.upper() != b"DATA":
            continue
        # The line end of the DATA command makes the first body line a line
        # start, so search for the marker from there.
        end = eod.search(stream, line_end.start())
        if end is None:
            break  # unterminated DATA: the connection closed, no message
        messages.append(stream[pos : max(pos, end.start())])
        pos = end.end()
    return messages


def session(wire_body: bytes) -> bytes:
    return b"MAIL FROM:<s@x>\r\nRCPT TO:<r@y>\r\nDATA\r\n" + wire_body + b"QUIT\r\n"


def naive_stuff(data: bytes) -> bytes:
    """A stuffer with the smuggling bugs: no newline normalisation, no NUL check."""
    body = data.replace(b"\r\n.", b"\r\n..")
    if body.startswith(b"."):
        body = b"." + body
    if not body.endswith(b"\r\n"):
        body += b"\r\n"
    return body + b".\r\n"


@pytest.mark.parametrize("vector", SMTPSMUG_VECTORS, ids=repr)
def test_sec_11_smtpsmug_vectors(vector: bytes) -> None:
    body = b"Subject: hi\r\n\r\nhello" + vector + SMUGGLED

    # Controls, to show the receivers can see smuggling: sent without any
    # stuffing, the lenient receiver takes the smuggled commands for a second
    # message; so it does behind a stuffer that only stuffs after CRLF and
    # does not normalise, except for the two vectors that start with CRLF ".".
    verbatim = body + b".\r\n"
    assert len(receive(session(verbatim), lenient=True)) == 2
    naive_messages = receive(session(naive_stuff(body)), lenient=True)
    assert len(naive_messages) == (1 if vector.startswith(b"\r\n.") else 2)

    for split in ([body], one_byte_chunks(body), fixed_chunks(body, 3)):
        if b"\x00" in vector:
            # NUL is refused. The client aborts: it closes the connection
            # without an end marker after what it already sent, and neither
            # receiver sees any message, smuggled or not.
            stuffer = DotStuffer()
            sent = b""
            with pytest.raises(InvalidInputError):
                for chunk in split:
                    sent += stuffer.feed(chunk)
            assert b"\x00" not in sent
            for lenient in (False, True):
                assert receive(session(sent)[: -len(b"QUIT\r\n")], lenient=lenient) == []
            continue
        wire = stuff(split)
        assert wire == stuff([body])
        for lenient in (False, True):
            messages = receive(session(wire), lenient=lenient)
            assert len(messages) == 1, (lenient, messages)
            assert b"MAIL FROM:<a@b>" in messages[0]
        # The strict receiver sees exactly the stuffed body (up to the marker).
        assert receive(session(wire), lenient=False) == [wire[: -len(_MARKER)]]


def test_sec_12_dot_after_double_crlf() -> None:
    body = b"Subject: x\r\n\r\n.\r\nMAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nDATA\r\n"
    wire = stuff([body])
    assert b"\r\n\r\n..\r\nMAIL FROM" in wire
    assert wire.count(_MARKER) == 1 and wire.endswith(_MARKER)
    for lenient in (False, True):
        assert len(receive(session(wire), lenient=lenient)) == 1
    # Also when the chunk boundary falls at every spot around the dot.
    for cut in range(len(b"Subject: x\r\n\r\n.\r\n") + 1):
        assert stuff([body[:cut], body[cut:]]) == wire


@pytest.mark.parametrize(
    ("body", "wire"),
    [
        (b"", b".\r\n"),
        (b".", b"..\r\n.\r\n"),
        (b".\r\n", b"..\r\n.\r\n"),
        (b"..", b"...\r\n.\r\n"),
        (b".leading", b"..leading\r\n.\r\n"),
        (b".first\r\nsecond", b"..first\r\nsecond\r\n.\r\n"),
        (b"no final crlf", b"no final crlf\r\n.\r\n"),
        (b"ends in cr\r", b"ends in cr\r\n.\r\n"),
        (b"ends in lf\n", b"ends in lf\r\n.\r\n"),
        (b"x\r\n.", b"x\r\n..\r\n.\r\n"),
        (b"\r\n", b"\r\n.\r\n"),
    ],
)
def test_sec_13_leading_dot_empty_body_no_final_crlf(body: bytes, wire: bytes) -> None:
    assert stuff([body]) == wire
    assert stuff(one_byte_chunks(body)) == wire
    assert unstuff(wire) == oracle_body(body)


_SPLIT_VECTORS = [b"\r", b"\n.\r\n", b"\r\n", b".", b"\r\n.\r\n", b"\n.\n", b"\r.\r", b"x"]


@PROPERTY
@given(
    st.lists(st.sampled_from(_SPLIT_VECTORS), min_size=1, max_size=30).map(b"".join),
    st.integers(1, 40),
)
def test_sec_14_streaming_split_fuzzed(data: bytes, size: int) -> None:
    expected = oracle_wire(data)
    assert stuff([data]) == expected
    # Fixed chunk sizes from 1 byte upward, and every single cut.
    for n in range(1, min(size, len(data)) + 1):
        assert stuff(fixed_chunks(data, n)) == expected
    for cut in range(len(data) + 1):
        fed, end = run_stuffer([data[:cut], data[cut:]])
        assert fed + end == expected
        assert _MARKER not in b"\r\n" + fed


def test_sec_14_explicit_boundaries() -> None:
    # "\r" | "\n.\r\n": the CR and LF are one CRLF, and the dot is stuffed.
    assert stuff([b"a\r", b"\n.\r\n", b"b"]) == b"a\r\n..\r\nb\r\n.\r\n"
    # "\r\n" | ".": the dot after the boundary starts a line.
    assert stuff([b"a\r\n", b".b"]) == b"a\r\n..b\r\n.\r\n"
    # "\r" | "\r": two bare CRs, two line ends.
    assert stuff([b"a\r", b"\r", b".b"]) == b"a\r\n\r\n..b\r\n.\r\n"
    # A held CR never leaves before the chunk that decides it.
    stuffer = DotStuffer()
    assert stuffer.feed(b"a\r") == b"a"
    assert stuffer.feed(b"\n") == b"\r\n"
    assert stuffer.feed(b".") == b".."
    assert stuffer.finish() == b"\r\n.\r\n"


def test_sec_15_bdat_text_canonical_before_counting() -> None:
    normalizer = NewlineNormalizer()
    chunks = [b"line one\nline two\r", b"\nline three\r", b"\rend"]
    outputs = [normalizer.feed(chunk) for chunk in chunks] + [normalizer.finish()]
    assert outputs == [b"line one\r\nline two", b"\r\nline three", b"\r\n\r\nend", b""]
    whole = b"".join(outputs)
    # Only CRLF is left, so each len() is the exact BDAT octet count.
    assert whole.count(b"\r") == whole.count(b"\n") == whole.count(b"\r\n") == 4
    assert normalizer.bytes_out == len(whole) == sum(len(o) for o in outputs)
    # No dot-stuffing and no end marker in BDAT.
    normalizer = NewlineNormalizer()
    assert normalizer.feed(b".\n.") == b".\r\n."
    assert normalizer.finish() == b""
    normalizer = NewlineNormalizer()
    assert normalizer.feed(b"held\r") == b"held"
    assert normalizer.finish() == b"\r\n"
    # Strict mode refuses bare LF (like Postfix's "reject" mode).
    with pytest.raises(InvalidInputError):
        NewlineNormalizer(normalize_newlines=False).feed(b"bare\nlf")


# ---------------------------------------------------------------------------
# Unit tests: API, states, input types, fast paths
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("cls", [DotStuffer, NewlineNormalizer])
def test_feed_or_finish_after_finish_is_a_local_protocol_error(
    cls: type[DotStuffer] | type[NewlineNormalizer],
) -> None:
    obj = cls()
    obj.feed(b"x")
    obj.finish()
    with pytest.raises(LocalProtocolError):
        obj.feed(b"more")
    with pytest.raises(LocalProtocolError):
        obj.feed(b"")
    with pytest.raises(LocalProtocolError):
        obj.finish()


@pytest.mark.parametrize("cls", [DotStuffer, NewlineNormalizer])
def test_unusable_after_invalid_input(cls: type[DotStuffer] | type[NewlineNormalizer]) -> None:
    obj = cls()
    assert obj.feed(b"ok\r\n") == b"ok\r\n"
    with pytest.raises(InvalidInputError):
        obj.feed(b"\x00")
    with pytest.raises(InvalidInputError):
        obj.feed(b"fine")
    with pytest.raises(InvalidInputError):
        obj.finish()


def test_strict_mode_held_cr_errors() -> None:
    stuffer = DotStuffer(normalize_newlines=False)
    assert stuffer.feed(b"a\r") == b"a"
    with pytest.raises(InvalidInputError):
        stuffer.finish()
    stuffer = DotStuffer(normalize_newlines=False)
    stuffer.feed(b"a\r")
    with pytest.raises(InvalidInputError):
        stuffer.feed(b"b")
    stuffer = DotStuffer(normalize_newlines=False)
    assert stuffer.feed(b"a\r") + stuffer.feed(b"\nb") + stuffer.finish() == b"a\r\nb\r\n.\r\n"


def test_nul_message_and_no_partial_state() -> None:
    stuffer = DotStuffer()
    with pytest.raises(InvalidInputError, match="NUL"):
        stuffer.feed(b"a\x00b")
    assert stuffer.bytes_in == 0
    assert stuffer.bytes_out == 0


@pytest.mark.parametrize("kind", [bytes, bytearray, memoryview])
def test_accepts_bytes_like(kind: type[bytes] | type[bytearray] | type[memoryview]) -> None:
    stuffer = DotStuffer()
    out = stuffer.feed(kind(b".a\nb\r"))
    assert type(out) is bytes
    out += stuffer.feed(kind(b"\n.c")) + stuffer.finish()
    assert out == b"..a\r\nb\r\n..c\r\n.\r\n"
    normalizer = NewlineNormalizer()
    assert type(normalizer.feed(kind(b"x\r\n"))) is bytes


def test_memoryview_of_wider_items_counts_octets() -> None:
    view = memoryview(bytearray(b"ab\r\ncd")).cast("H")
    stuffer = DotStuffer()
    assert stuffer.feed(view) == b"ab\r\ncd"
    assert stuffer.bytes_in == 6


def test_empty_feeds_change_nothing() -> None:
    stuffer = DotStuffer()
    assert stuffer.feed(b"") == b""
    assert stuffer.feed(b".") == b".."
    assert stuffer.feed(b"") == b""
    assert stuffer.finish() == b"\r\n.\r\n"


def _large_lines(count: int, eol: bytes) -> Iterator[bytes]:
    for i in range(count):
        start = b"." if i % 7 == 0 else b"Q"
        yield start + b"x" * (i % 80) + eol


@pytest.mark.parametrize(
    "eols",
    [[b"\r\n"], [b"\n"], [b"\r"], [b"\r\n", b"\n", b"\r"]],
    ids=["canonical", "lf-only", "cr-only", "mixed"],
)
@pytest.mark.parametrize("chunk_size", [1 << 20, 65536, 4093, 77])
def test_fast_paths_on_large_bodies(eols: list[bytes], chunk_size: int) -> None:
    data = b"".join(line for i, eol in enumerate(eols) for line in _large_lines(3000 + i, eol))
    expected = oracle_wire(data)
    assert stuff(fixed_chunks(data, chunk_size)) == expected
    assert normalize(fixed_chunks(data, chunk_size)) == fix_eols(data)


def _dot_lines(count: int, every: int, eol: bytes = b"\r\n") -> bytes:
    """``count`` lines of 60 octets where every ``every``-th line starts with "."."""
    return b"".join((b"." if i % every == 0 else b"L") + b"%059d" % i + eol for i in range(count))


_DENSITY_BODIES = {
    "sparse": _dot_lines(6000, 100),
    "dense": _dot_lines(6000, 2),
    "sparse-then-dense": _dot_lines(5000, 100) + _dot_lines(1000, 1),
    "dense-then-sparse": _dot_lines(200, 1) + _dot_lines(5000, 100),
    "lf-sparse-then-dense": _dot_lines(5000, 100, b"\n") + _dot_lines(1000, 1, b"\n"),
    "mixed-dense": _dot_lines(3000, 3, b"\r") + _dot_lines(3000, 1, b"\n"),
}


@pytest.mark.parametrize("name", sorted(_DENSITY_BODIES))
@pytest.mark.parametrize(
    ("head", "tail"),
    [(b"", b""), (b".", b"\r"), (b"\r", b"x\r"), (b"\r", b"\n."), (b"x\r", b"\n\r")],
)
def test_stuffing_density_paths(name: str, head: bytes, tail: bytes) -> None:
    # The one-shot stuffing finds sparse dot lines with find() and hands dense
    # ones to bytes.replace: every mix, with every boundary prefix and held-back
    # tail, must give the reference output.
    data = head + _DENSITY_BODIES[name] + tail
    expected = oracle_wire(data)
    assert stuff([data]) == expected
    assert stuff(split_at(data, [len(head)])) == expected
    assert stuff(split_at(data, [len(head), len(data) - len(tail)])) == expected
    assert stuff(fixed_chunks(data, 100_003)) == expected


def test_canonical_input_without_dots_is_not_copied() -> None:
    data = b"abc\r\n" * 100
    assert DotStuffer().feed(data) is data
    assert NewlineNormalizer().feed(data) is data


@pytest.mark.parametrize(
    "wire",
    [b"", b"x", b"x\r\n", b".\r\n.\r\n", b"a\r\n.\r\nb\r\n.\r\n", b"a.\r\n"],
)
def test_unstuff_refuses_malformed_wire(wire: bytes) -> None:
    with pytest.raises(InvalidInputError):
        unstuff(wire)
