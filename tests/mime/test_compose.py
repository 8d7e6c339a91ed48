"""Whole messages: structure, round trips through the standard library's
parser, exact lengths, sources from memory, files and streams, and the
stream's lifecycle."""

from __future__ import annotations

import base64
import itertools
import os
import re
import tempfile
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path

import pytest
import trio
import trio.testing
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from trio_smtp import InvalidInputError
from trio_smtp._core.dotstuff import DotStuffer
from trio_smtp.mime import READ_SIZE, Attachment, SourceSizeError, compose

from .helpers import (
    REFUSED,
    SplitStream,
    assert_no_defects,
    canonical_text,
    check_wire,
    parse,
    read_all,
)

EDGE_SIZES = [0, 1, 2, 3, 56, 57, 58, 75, 76, 77, 113, 114, 115, 1000]

body_text = st.text(st.characters(codec="utf-8"), max_size=300) | st.sampled_from(
    ["", "plain ascii\n", "a" * 80, "=_ looks like a boundary\n--=_x\n", "trailing space \n", "é"]
)
payload = st.binary(max_size=400) | st.sampled_from(EDGE_SIZES).map(os.urandom)
text_payload = st.lists(
    st.sampled_from([b"line", b"\r\n", b"\n", b"\r", b" ", b"=", b"\xc3\xa9", b"x" * 90]),
    max_size=20,
).map(b"".join)
filenames = st.none() | st.text(
    st.characters(exclude_characters=REFUSED, codec="utf-8"),
    min_size=1,
    max_size=40,
)


@dataclass
class Spec:
    """One attachment as a test describes it."""

    data: bytes
    kind: str  # bytes, path, stream, sized-stream
    filename: str | None
    splits: list[int]
    content_id: str | None
    inline: bool
    quoted_printable: bool
    path_name: str | None = None  # set once written: a path's default filename

    @property
    def expected_filename(self) -> str | None:
        return self.path_name if self.filename is None else self.filename

    @property
    def expected_payload(self) -> bytes:
        if self.quoted_printable:
            return re.sub(rb"\r\n|\r|\n", b"\r\n", self.data)
        return self.data

    @property
    def length_known(self) -> bool:
        if self.kind == "stream":
            return False
        return not (self.quoted_printable and self.kind != "bytes")


@st.composite
def specs(draw: st.DrawFn) -> Spec:
    quoted_printable = draw(st.booleans())
    return Spec(
        data=draw(text_payload if quoted_printable else payload),
        kind=draw(st.sampled_from(["bytes", "path", "stream", "sized-stream"])),
        filename=draw(filenames),
        splits=draw(st.lists(st.integers(1, 300), min_size=1, max_size=4)),
        content_id=draw(
            st.none() | st.from_regex(r"[a-z]{1,8}(@[a-z]{1,8}\.test)?", fullmatch=True)
        ),
        inline=draw(st.booleans()),
        quoted_printable=quoted_printable,
    )


def make_attachment(
    spec: Spec, directory: Path, index: int
) -> tuple[Attachment, SplitStream | None]:
    stream = None
    source: str | bytes | SplitStream
    if spec.kind == "bytes":
        source = spec.data
    elif spec.kind == "path":
        path = directory / f"attachment-{index}"
        path.write_bytes(spec.data)
        spec.path_name = path.name
        source = str(path)
    else:
        stream = source = SplitStream(spec.data, spec.splits)
    attachment = Attachment(
        source,
        filename=spec.filename,
        content_type="text/plain" if spec.quoted_printable else "application/x-test",
        size=len(spec.data) if spec.kind == "sized-stream" else None,
        inline=spec.inline,
        content_id=spec.content_id,
        encoding="quoted-printable" if spec.quoted_printable else "base64",
    )
    return attachment, stream


def shape(part: EmailMessage) -> str:
    if part.is_multipart():
        inner = ",".join(shape(sub) for sub in part.iter_parts())  # type: ignore[arg-type]
        return f"{part.get_content_subtype()}({inner})"
    return part.get_content_type()


def expected_shape(text: str | None, html: str | None, specs: list[Spec]) -> str:
    def kind(spec: Spec) -> str:
        return "text/plain" if spec.quoted_printable else "application/x-test"

    related = [kind(s) for s in specs if s.content_id is not None and html is not None]
    mixed = [kind(s) for s in specs if not (s.content_id is not None and html is not None)]
    html_shape = None if html is None else "text/html"
    if related:
        html_shape = f"related({','.join(['text/html', *related])})"
    core = None
    if text is not None and html_shape is not None:
        core = f"alternative(text/plain,{html_shape})"
    else:
        core = "text/plain" if text is not None else html_shape
    if mixed:
        return f"mixed({','.join(([core] if core else []) + mixed)})"
    return core or "text/plain"


@settings(suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(
    text=st.none() | body_text,
    html=st.none() | body_text,
    specs=st.lists(specs(), max_size=4),
    read_sizes=st.lists(st.none() | st.integers(1, 5000), min_size=1, max_size=5),
)
@example(text="hi", html=None, specs=[], read_sizes=[1])
async def test_round_trip(
    text: str | None, html: str | None, specs: list[Spec], read_sizes: list[int | None]
) -> None:
    with tempfile.TemporaryDirectory() as directory:
        made = [make_attachment(spec, Path(directory), i) for i, spec in enumerate(specs)]
        message = compose(
            sender=("Sender Name", "sender@example.com"),
            to=["to@example.org"],
            subject="round trip",
            text=text,
            html=html,
            attachments=[attachment for attachment, _ in made],
        )
        async with message:
            data = await read_all(message, read_sizes)
    check_wire(data)
    if all(spec.length_known for spec in specs):
        assert message.length == len(data)
    else:
        assert message.length is None
    for _, stream in made:
        if stream is not None:
            assert stream.closed

    parsed = parse(data)
    assert_no_defects(parsed)
    assert shape(parsed) == expected_shape(text, html, specs)
    leaves = [part for part in parsed.walk() if not part.is_multipart()]
    if text is None and html is None and not specs:
        assert leaves[0].get_content() == ""
        return
    if text is not None:
        assert leaves.pop(0).get_content() == canonical_text(text)
    if html is not None:
        assert leaves.pop(0).get_content() == canonical_text(html)
    related = [s for s in specs if s.content_id is not None and html is not None]
    ordered = related + [s for s in specs if s not in related]
    assert len(leaves) == len(ordered)
    for part, spec in zip(leaves, ordered, strict=True):
        assert part.get_payload(decode=True) == spec.expected_payload
        assert part["Content-Transfer-Encoding"] == (
            "quoted-printable" if spec.quoted_printable else "base64"
        )
        disposition = part["Content-Disposition"]
        assert disposition.content_disposition == ("inline" if spec.inline else "attachment")
        assert disposition.params.get("filename") == spec.expected_filename
        if spec.content_id is None:
            assert "Content-ID" not in part
        else:
            assert part["Content-ID"] == f"<{spec.content_id}>"


@settings(suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(
    text=st.none() | body_text,
    html=st.none() | body_text,
    specs=st.lists(specs(), max_size=3),
    read_sizes=st.lists(st.none() | st.integers(1, 5000), min_size=1, max_size=5),
)
async def test_chunks_flagged_wire_safe_keep_the_promise(
    text: str | None, html: str | None, specs: list[Spec], read_sizes: list[int | None]
) -> None:
    # The client sends flagged chunks through DotStuffer.feed_wire_safe,
    # which trusts their insides: whatever the attachments hold, a flagged
    # chunk has no NUL and no ".", and its only CR and LF are CRLF pairs
    # (one may be cut at either edge by max_bytes). Both ways of stuffing
    # the whole message must agree.
    with tempfile.TemporaryDirectory() as directory:
        made = [make_attachment(spec, Path(directory), i) for i, spec in enumerate(specs)]
        message = compose(
            sender="sender@example.com",
            subject="wire-safe",
            text=text,
            html=html,
            attachments=[attachment for attachment, _ in made],
        )
        checked, trusting = DotStuffer(), DotStuffer()
        checked_out, trusting_out = bytearray(), bytearray()
        flagged = 0
        async with message:
            for size in itertools.cycle(read_sizes):
                chunk, safe = await message._receive(size)
                if not chunk:
                    break
                checked_out += checked.feed(chunk)
                if safe:
                    flagged += 1
                    assert b"\x00" not in chunk and b"." not in chunk
                    inner = chunk[chunk[:1] == b"\n" :]
                    inner = inner[: len(inner) - (inner[-1:] == b"\r")]
                    assert not re.search(rb"\r(?!\n)|(?<!\r)\n", inner)
                    trusting_out += trusting.feed_wire_safe(chunk)
                else:
                    trusting_out += trusting.feed(chunk)
    assert trusting_out + trusting.finish() == checked_out + checked.finish()
    if any(spec.data and not spec.quoted_printable for spec in specs):
        assert flagged
    if not specs or all(spec.quoted_printable for spec in specs):
        assert not flagged


async def test_text_only_is_a_single_part() -> None:
    message = compose(sender="a@example.com", subject="s", text="Hello\nworld")
    async with message:
        data = await read_all(message)
    assert data.endswith(b"\r\n\r\nHello\r\nworld\r\n")
    parsed = parse(data)
    assert not parsed.is_multipart()
    assert parsed.get_content_type() == "text/plain"
    assert parsed["Content-Transfer-Encoding"] == "7bit"


@pytest.mark.parametrize(
    "text",
    [
        "non-ascii: é\n",
        "x" * 77 + "\n",  # too long a line for 7bit at 76
        "trailing space \n",
        "a =_ that could start a boundary\n",
        "a control \x01\n",
    ],
)
async def test_text_that_7bit_cannot_carry_safely_is_quoted_printable(text: str) -> None:
    message = compose(sender="a@example.com", subject="s", text=text)
    async with message:
        parsed = parse(await read_all(message))
    assert parsed["Content-Transfer-Encoding"] == "quoted-printable"
    assert parsed.get_content() == canonical_text(text)


async def test_inline_image_goes_into_related_with_the_html() -> None:
    logo = Attachment(b"GIF89a", filename="logo.gif", content_id="logo@example.com", inline=True)
    report = Attachment(b"%PDF-1.7", filename="report.pdf")
    message = compose(
        sender="a@example.com",
        subject="s",
        text="see the logo",
        html='<img src="cid:logo@example.com">',
        attachments=[report, logo],
    )
    async with message:
        parsed = parse(await read_all(message))
    assert (
        shape(parsed)
        == "mixed(alternative(text/plain,related(text/html,image/gif)),application/pdf)"
    )
    (related,) = [part for part in parsed.walk() if part.get_content_type() == "multipart/related"]
    assert related.get_param("type") == "text/html"


async def test_length_is_known_before_reading_and_exact(tmp_path: Path) -> None:
    path = tmp_path / "data.bin"
    path.write_bytes(os.urandom(3 * READ_SIZE + 5))
    stream = SplitStream(os.urandom(1000), [7, 300])
    message = compose(
        sender="a@example.com",
        subject="s",
        text="t",
        html="h",
        attachments=[
            Attachment(path),
            Attachment(stream, filename="s.bin", size=1000),
            Attachment(
                b"abc", filename="é.txt", encoding="quoted-printable", content_type="text/plain"
            ),
        ],
    )
    length = message.length
    assert length is not None
    assert stream.delivered == 0  # nothing was read to know it
    async with message:
        data = await read_all(message, [4096])
    assert len(data) == length
    assert stream.closed


async def test_stream_without_size_has_no_length_in_advance() -> None:
    message = compose(
        sender="a@example.com", subject="s", attachments=[Attachment(SplitStream(b"x" * 10))]
    )
    assert message.length is None
    async with message:
        parsed = parse(await read_all(message))
    (part,) = parsed.iter_attachments()
    assert part.get_payload(decode=True) == b"x" * 10


@pytest.mark.skipif(not os.path.exists("/dev/null"), reason="needs /dev/null")
async def test_a_device_has_no_size_until_read_or_declared() -> None:
    undeclared = compose(sender="a@example.com", subject="s", attachments=[Attachment("/dev/null")])
    assert undeclared.length is None
    declared = compose(
        sender="a@example.com", subject="s", attachments=[Attachment("/dev/null", size=0)]
    )
    assert declared.length is not None
    async with undeclared, declared:
        for message in (undeclared, declared):
            (part,) = parse(await read_all(message)).iter_attachments()
            assert part.get_payload(decode=True) == b""
            assert part.get_filename() == "null"
    wrong = compose(
        sender="a@example.com", subject="s", attachments=[Attachment("/dev/null", size=1)]
    )
    async with wrong:
        with pytest.raises(SourceSizeError, match="shrank"):
            await read_all(wrong)


# -- size mismatches -------------------------------------------------------------


async def test_file_that_changed_size_after_compose_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "a.bin"
    path.write_bytes(b"x" * 100)
    message = compose(sender="a@example.com", subject="s", attachments=[Attachment(path)])
    path.write_bytes(b"x" * 101)
    async with message:
        with pytest.raises(SourceSizeError, match="changed size"):
            await read_all(message)
        # The message is broken for good, not silently shorter.
        with pytest.raises(trio.BrokenResourceError):
            await message.receive_some()


@pytest.mark.parametrize("change", ["grow", "shrink"])
async def test_file_that_changes_while_read_is_an_error(tmp_path: Path, change: str) -> None:
    path = tmp_path / "a.bin"
    path.write_bytes(b"x" * (3 * READ_SIZE))
    message = compose(sender="a@example.com", subject="s", attachments=[Attachment(path)])
    async with message:
        produced = 0
        while produced < READ_SIZE:  # well into the file, not at its end
            produced += len(await message.receive_some())
        if change == "grow":
            with path.open("ab") as file:
                file.write(b"more")
        else:
            os.truncate(path, READ_SIZE * 2)
        with pytest.raises(SourceSizeError, match="grew" if change == "grow" else "shrank"):
            await read_all(message)


@pytest.mark.parametrize(("size", "match"), [(11, "short"), (9, "past")])
async def test_stream_that_does_not_match_its_size_is_an_error(size: int, match: str) -> None:
    stream = SplitStream(b"x" * 10, [3])
    message = compose(
        sender="a@example.com", subject="s", attachments=[Attachment(stream, size=size)]
    )
    async with message:
        with pytest.raises(SourceSizeError, match=match):
            await read_all(message)
    assert stream.closed


async def test_attachment_path_checks_happen_at_compose(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        compose(sender="a@example.com", subject="s", attachments=[Attachment(tmp_path / "none")])
    with pytest.raises(InvalidInputError, match="directory"):
        compose(sender="a@example.com", subject="s", attachments=[Attachment(tmp_path)])
    path = tmp_path / "a.bin"
    path.write_bytes(b"12345")
    with pytest.raises(InvalidInputError, match="size=4"):
        compose(sender="a@example.com", subject="s", attachments=[Attachment(path, size=4)])
    attachment = Attachment(path)
    assert attachment.filename == "a.bin"
    first = compose(sender="a@example.com", subject="s", attachments=[attachment])
    second = compose(sender="a@example.com", subject="s", attachments=[attachment])
    async with first, second:
        # A path (or bytes) attachment can go into any number of messages.
        one, two = await read_all(first), await read_all(second)
    assert parse(one).get_payload(0).get_payload(decode=True) == b"12345"  # type: ignore[union-attr]
    assert parse(two).get_payload(0).get_payload(decode=True) == b"12345"  # type: ignore[union-attr]


# -- lifecycle -------------------------------------------------------------------


async def test_stream_attachment_can_be_composed_once() -> None:
    attachment = Attachment(SplitStream(b"x"))
    message = compose(sender="a@example.com", subject="s", attachments=[attachment])
    with pytest.raises(InvalidInputError, match="already composed"):
        compose(sender="a@example.com", subject="s", attachments=[attachment])
    await message.aclose()
    stream = SplitStream(b"y")
    with pytest.raises(InvalidInputError, match="already composed"):
        compose(
            sender="a@example.com",
            subject="s",
            attachments=[Attachment(stream), Attachment(stream, filename="again")],
        )


async def test_aclose_closes_unread_streams_and_files(tmp_path: Path) -> None:
    path = tmp_path / "a.bin"
    path.write_bytes(b"x" * (2 * READ_SIZE))
    first, second = SplitStream(b"a" * 100), SplitStream(b"b" * 100)
    message = compose(
        sender="a@example.com",
        subject="s",
        attachments=[Attachment(first), Attachment(path), Attachment(second)],
    )
    produced = 0
    while produced < 1000:  # into the file: the first stream is done, the file open
        produced += len(await message.receive_some())
    assert first.closed and not second.closed
    await message.aclose()
    assert second.closed
    with pytest.raises(trio.ClosedResourceError):
        await message.receive_some()
    await message.aclose()  # idempotent


async def test_end_of_message_is_sticky_and_max_bytes_is_checked() -> None:
    message = compose(sender="a@example.com", subject="s")
    with pytest.raises(ValueError, match="max_bytes"):
        await message.receive_some(0)
    async with message:
        assert await read_all(message)
        assert await message.receive_some() == b""
        assert await message.receive_some(10) == b""


async def test_concurrent_reads_are_refused() -> None:
    # Nothing is ever sent: the stream's first read blocks for good.
    _send, receive = trio.testing.memory_stream_one_way_pair()
    message = compose(sender="a@example.com", subject="s", attachments=[Attachment(receive)])
    async with message, trio.open_nursery() as nursery:
        await message.receive_some(10)  # the headers: no wait on the stream yet
        while b"base64" not in await message.receive_some():
            pass
        nursery.start_soon(message.receive_some)
        await trio.testing.wait_all_tasks_blocked()
        with pytest.raises(trio.BusyResourceError):
            await message.receive_some()
        nursery.cancel_scope.cancel()


async def test_a_cancelled_read_loses_nothing() -> None:
    data = os.urandom(5000)
    send, receive = trio.testing.memory_stream_one_way_pair()
    message = compose(
        sender="a@example.com", subject="s", attachments=[Attachment(receive, size=len(data))]
    )
    async with message:
        out = bytearray()
        await send.send_all(data[:1000])
        for _ in range(3):
            with trio.move_on_after(0.01):
                while chunk := await message.receive_some(50):
                    out += chunk
        # Every read above was cut off waiting for the stream; the rest comes now.
        await send.send_all(data[1000:])
        await send.aclose()
        out += await read_all(message)
    assert len(out) == message.length
    parsed = parse(bytes(out))
    assert parsed.get_payload(0).get_payload(decode=True) == data  # type: ignore[union-attr]


async def test_reader_stays_within_one_chunk_of_its_consumer() -> None:
    data = os.urandom(20 * READ_SIZE)
    stream = SplitStream(data, [READ_SIZE])
    message = compose(sender="a@example.com", subject="s", attachments=[Attachment(stream)])
    async with message:
        received = 0
        while chunk := await message.receive_some(1000):
            received += len(chunk)
            # base64 turns 3 octets into 4 (plus CRLFs): the source is never
            # more than one read ahead of what the consumer has taken.
            assert stream.delivered <= received * 3 // 4 + READ_SIZE
    assert stream.delivered == len(data)


def test_base64_of_the_whole_file_matches(tmp_path: Path) -> None:
    # A sanity anchor independent of the email package.
    data = os.urandom(READ_SIZE + 1234)
    path = tmp_path / "f"
    path.write_bytes(data)

    async def main() -> bytes:
        message = compose(sender="a@example.com", subject="s", attachments=[Attachment(path)])
        async with message:
            return await read_all(message)

    wire = trio.run(main)
    body = wire.split(b"Content-Transfer-Encoding: base64\r\n\r\n", 1)[1].split(b"\r\n--=_")[0]
    assert body == base64.encodebytes(data).replace(b"\n", b"\r\n").removesuffix(b"\r\n")
