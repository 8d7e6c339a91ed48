"""Streamed bodies: paths, trio files, async iterables and streams, read in
bounded chunks with the size declared when known, backpressure from the
socket, progress reports, and memory that stays flat whatever the size."""

from __future__ import annotations

import os
import random
import subprocess
import sys
import textwrap
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import trio
import trio.testing
from hypothesis import given, settings
from hypothesis import strategies as st
from trio_util import AsyncValue

import trio_smtp
from trio_smtp import InvalidInputError
from trio_smtp._body import body_source
from trio_smtp._client import BDAT_CHUNK_SIZE, BODY_READ_SIZE, Transfer
from trio_smtp.testing import open_test_server

SENDER, RECIPIENT = "sender@example.com", "rcpt@example.org"
TRANSFERS: list[Transfer] = ["data", "bdat"]


def sample_body(size: int, seed: int = 0) -> bytes:
    """CRLF text with some lines starting with a dot, ``size`` octets or a little more."""
    rng = random.Random(seed)
    lines = [b"Subject: streamed\r\n", b"\r\n"]
    total = sum(map(len, lines))
    while total < size:
        line = b"." * rng.randrange(0, 2) + bytes(rng.choices(b"abcdefgh ", k=rng.randrange(70)))
        lines.append(line + b"\r\n")
        total += len(line) + 2
    return b"".join(lines)


async def chunks_of(data: bytes, sizes: list[int]) -> AsyncIterator[bytes]:
    offset = 0
    for size in sizes:
        await trio.lowlevel.checkpoint()
        yield data[offset : offset + size]
        offset += size
    if offset < len(data):
        yield data[offset:]


class AnnouncingStream(trio.abc.ReceiveStream):
    """A stream that says it holds ``length`` octets and yields ``data``."""

    def __init__(self, data: bytes, length: int | None) -> None:
        self._data = memoryview(data)
        self.length = length
        self.read = 0

    async def receive_some(self, max_bytes: int | None = None) -> bytes:
        await trio.lowlevel.checkpoint()
        size = 65536 if max_bytes is None else max_bytes
        piece, self._data = self._data[:size], self._data[size:]
        self.read += len(piece)
        return bytes(piece)

    async def aclose(self) -> None:
        await trio.lowlevel.checkpoint()


def size_option(options: tuple[str, ...]) -> int | None:
    for option in options:
        if option.upper().startswith("SIZE="):
            return int(option[5:])
    return None


@pytest.mark.parametrize("transfer", TRANSFERS)
async def test_a_path_is_read_in_chunks_with_its_size_declared(
    tmp_path: Path, transfer: Transfer
) -> None:
    body = sample_body(300_000)
    path = tmp_path / "message.eml"
    path.write_bytes(body)
    with trio.fail_after(20):
        async with (
            open_test_server() as server,
            trio_smtp.open_smtp(server.host, server.port, tls=trio_smtp.PLAINTEXT) as smtp,
        ):
            outcome = await smtp.send_mail(SENDER, [RECIPIENT], path, transfer=transfer)
    assert outcome.transfer == transfer.upper()
    (received,) = server.messages
    assert received.data == body
    assert size_option(received.mail_options) == len(body)


@pytest.mark.parametrize("transfer", TRANSFERS)
async def test_a_trio_async_file_is_read_and_left_open(tmp_path: Path, transfer: Transfer) -> None:
    body = sample_body(200_000, seed=1)
    path = tmp_path / "message.eml"
    path.write_bytes(body.replace(b"\r\n", b"\n"))  # LF-only on disk, CRLF on the wire
    with trio.fail_after(20):
        async with (
            open_test_server() as server,
            trio_smtp.open_smtp(server.host, server.port, tls=trio_smtp.PLAINTEXT) as smtp,
            await trio.open_file(path, "rb") as file,
        ):
            await smtp.send_mail(SENDER, [RECIPIENT], file, transfer=transfer)
            assert not file.closed  # the caller opened it, the caller closes it
    (received,) = server.messages
    assert received.data == body
    assert size_option(received.mail_options) is None  # the file's size was not known


@pytest.mark.parametrize("transfer", TRANSFERS)
@pytest.mark.parametrize("seed", range(6))
async def test_an_async_iterable_arrives_whole_for_any_split(transfer: Transfer, seed: int) -> None:
    rng = random.Random(seed)
    body = sample_body(rng.randrange(1, 400_000), seed=seed)
    # Splits between 1 octet and several read sizes, including CR|LF and CRLF|"." cuts.
    sizes = [
        rng.choice([1, 2, 3, 5, 4096, BODY_READ_SIZE + 1, 3 * BODY_READ_SIZE]) for _ in range(40)
    ]
    with trio.fail_after(20):
        async with (
            open_test_server() as server,
            trio_smtp.open_smtp(server.host, server.port, tls=trio_smtp.PLAINTEXT) as smtp,
        ):
            outcome = await smtp.send_mail(
                SENDER, [RECIPIENT], chunks_of(body, sizes), transfer=transfer
            )
    (received,) = server.messages
    assert received.data == body
    assert outcome.size == len(body)


@pytest.mark.parametrize("transfer", TRANSFERS)
async def test_a_streamed_body_reports_its_canonical_size(transfer: Transfer) -> None:
    # No SIZE declared (length unknown), bare LF to normalise, no final line
    # end, and lines starting with "." for DATA to stuff: the outcome's size
    # is what the server stored, not the caller's octets nor the wire's.
    body = b"Subject: sized\n\n.one\n..two\nthree"
    with trio.fail_after(10):
        async with (
            open_test_server() as server,
            trio_smtp.open_smtp(server.host, server.port, tls=trio_smtp.PLAINTEXT) as smtp,
        ):
            outcome = await smtp.send_mail(
                SENDER, [RECIPIENT], chunks_of(body, [3, 1, 7]), transfer=transfer
            )
    (received,) = server.messages
    assert size_option(received.mail_options) is None
    expected = body.replace(b"\n", b"\r\n") + (b"\r\n" if transfer == "data" else b"")
    assert received.data == expected
    assert outcome.size == len(expected)


@settings(max_examples=200, deadline=None)
@given(
    pieces=st.lists(st.binary(max_size=300), max_size=20),
    reads=st.lists(st.integers(min_value=1, max_value=200), min_size=1, max_size=10),
)
def test_an_iterable_source_rechunks_without_losing_or_overrunning(
    pieces: list[bytes], reads: list[int]
) -> None:
    async def items() -> AsyncIterator[bytes]:
        for piece in pieces:
            yield piece

    async def drain() -> list[bytes]:
        source = body_source(items())
        got: list[bytes] = []
        for turn in range(10_000):
            limit = reads[turn % len(reads)]
            data = await source.read(limit)
            assert len(data) <= limit
            if not data:
                break
            got.append(data)
        assert await source.read(5) == b""  # stays exhausted
        assert source.consumed == sum(map(len, pieces))
        return got

    assert b"".join(trio.run(drain)) == b"".join(pieces)


@pytest.mark.parametrize("transfer", TRANSFERS)
@pytest.mark.parametrize("announced", ["short", "long"])
async def test_a_stream_that_breaks_its_announced_length_never_reaches_end_of_data(
    transfer: Transfer, announced: str
) -> None:
    body = sample_body(3 * BDAT_CHUNK_SIZE)
    length = len(body) - 1000 if announced == "short" else len(body) + 1000
    with trio.fail_after(20):
        async with (
            open_test_server() as server,
            trio_smtp.open_smtp(server.host, server.port, tls=trio_smtp.PLAINTEXT) as smtp,
        ):
            with pytest.raises(InvalidInputError, match="announced"):
                await smtp.send_mail(
                    SENDER,
                    [RECIPIENT],
                    AnnouncingStream(body, length),
                    transfer=transfer,
                )
            # Half a body was on the wire: the connection was dropped rather
            # than finished, so the server has no message.
            assert smtp.state is trio_smtp.SessionState.BROKEN
            assert not smtp.awaiting_final_reply
        await trio.sleep(0.05)
    assert server.messages == []


async def test_a_stream_length_declares_size() -> None:
    body = sample_body(100_000)
    with trio.fail_after(20):
        async with (
            open_test_server() as server,
            trio_smtp.open_smtp(server.host, server.port, tls=trio_smtp.PLAINTEXT) as smtp,
        ):
            await smtp.send_mail(SENDER, [RECIPIENT], AnnouncingStream(body, len(body)))
    (received,) = server.messages
    assert size_option(received.mail_options) == len(body)
    assert received.data == body


async def test_an_announced_length_over_the_servers_limit_sends_nothing() -> None:
    with trio.fail_after(20):
        async with (
            open_test_server(max_size=10_000) as server,
            trio_smtp.open_smtp(server.host, server.port, tls=trio_smtp.PLAINTEXT) as smtp,
        ):
            stream = AnnouncingStream(sample_body(20_000), 20_000)
            with pytest.raises(trio_smtp.PolicyError):
                await smtp.send_mail(SENDER, [RECIPIENT], stream)
            assert stream.read == 0
            assert smtp.state is trio_smtp.SessionState.READY
            assert not any(line.startswith(b"MAIL") for _, line in server.transcripts[-1])


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(lambda p: open(p, "rb"), id="sync-file"),  # noqa: SIM115
        pytest.param(lambda p: 42, id="int"),
        pytest.param(lambda p: [b"a", b"b"], id="sync-list"),
    ],
)
async def test_a_body_that_cannot_stream_is_refused_before_anything_is_sent(
    tmp_path: Path, body: object
) -> None:
    path = tmp_path / "m.eml"
    path.write_bytes(b"hi\r\n")
    value = body(path)  # type: ignore[operator]
    try:
        with trio.fail_after(10):
            async with (
                open_test_server() as server,
                trio_smtp.open_smtp(server.host, server.port, tls=trio_smtp.PLAINTEXT) as smtp,
            ):
                with pytest.raises(InvalidInputError):
                    await smtp.send_mail(SENDER, [RECIPIENT], value)
                assert smtp.state is trio_smtp.SessionState.READY
                assert not any(line.startswith(b"MAIL") for _, line in server.transcripts[-1])
    finally:
        if hasattr(value, "close"):
            value.close()


async def test_a_missing_file_is_refused_before_anything_is_sent(tmp_path: Path) -> None:
    with trio.fail_after(10):
        async with (
            open_test_server() as server,
            trio_smtp.open_smtp(server.host, server.port, tls=trio_smtp.PLAINTEXT) as smtp,
        ):
            with pytest.raises(InvalidInputError, match="cannot read"):
                await smtp.send_mail(SENDER, [RECIPIENT], tmp_path / "absent.eml")
            assert smtp.state is trio_smtp.SessionState.READY
    assert server.messages == []


@pytest.mark.parametrize("transfer", TRANSFERS)
async def test_progress_reaches_the_total_and_never_goes_back(transfer: Transfer) -> None:
    body = sample_body(5 * BDAT_CHUNK_SIZE // 2)
    seen: list[tuple[int, int | None]] = []
    value: AsyncValue[int] = AsyncValue(0)
    with trio.fail_after(20):
        async with (
            open_test_server() as server,
            trio_smtp.open_smtp(server.host, server.port, tls=trio_smtp.PLAINTEXT) as smtp,
        ):
            await smtp.send_mail(
                SENDER,
                [RECIPIENT],
                AnnouncingStream(body, len(body)),
                transfer=transfer,
                progress=lambda sent, total: seen.append((sent, total)),
            )
            await smtp.send_mail(SENDER, [RECIPIENT], chunks_of(body, [1000] * 3), progress=value)
            await smtp.send_mail(SENDER, [RECIPIENT], body, progress=value)
    assert len(seen) >= 3  # a stream is reported chunk by chunk
    assert all(total == len(body) for _, total in seen)
    sent = [s for s, _ in seen]
    assert sent == sorted(sent)
    assert sent[-1] == len(body)
    assert value.value == len(body)
    assert len(server.messages) == 3


@pytest.mark.parametrize("transfer", TRANSFERS)
async def test_the_body_is_never_read_far_ahead_of_the_socket(transfer: Transfer) -> None:
    """Backpressure: with a peer that stops reading, the source stops being read."""
    body_size = 64 * BDAT_CHUNK_SIZE
    client_end, server_end = trio.testing.lockstep_stream_pair()
    stop_after = BDAT_CHUNK_SIZE + BDAT_CHUNK_SIZE // 2  # inside the BDAT window
    peer_read = 0
    stalled = trio.Event()

    async def peer() -> None:
        nonlocal peer_read
        buffer = bytearray()

        async def line() -> bytes:
            while b"\r\n" not in buffer:
                buffer.extend(await server_end.receive_some())
            end = buffer.index(b"\r\n") + 2
            taken = bytes(buffer[:end])
            del buffer[:end]
            return taken

        await server_end.send_all(b"220 peer ESMTP\r\n")
        await line()
        await server_end.send_all(b"250-peer\r\n250-PIPELINING\r\n250 CHUNKING\r\n")
        await line()
        await line()
        if transfer == "data":
            await line()
            await server_end.send_all(b"250 ok\r\n250 ok\r\n354 go\r\n")
        else:
            await server_end.send_all(b"250 ok\r\n250 ok\r\n")
        peer_read = len(buffer)
        while peer_read < stop_after:
            peer_read += len(await server_end.receive_some(65536))
        stalled.set()
        await trio.sleep_forever()

    stream = AnnouncingStream((b"." + b"x" * 76 + b"\r\n") * (body_size // 79), None)
    with trio.fail_after(20):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(peer)
            smtp = await trio_smtp.SMTPClient.from_stream(client_end, tls=trio_smtp.PLAINTEXT)
            with trio.move_on_after(1):
                await smtp.send_mail(SENDER, [RECIPIENT], stream, transfer=transfer)
            assert stalled.is_set()
            # What the peer took, plus at most one BDAT chunk being assembled
            # and one read in flight: nowhere near the whole body.
            assert stream.read <= peer_read + BDAT_CHUNK_SIZE + 2 * BODY_READ_SIZE
            assert stream.read < body_size // 8
            nursery.cancel_scope.cancel()
        await smtp.aclose()


RSS_SCRIPT = textwrap.dedent(
    """
    import hashlib, sys, trio, trio_smtp
    from trio_smtp.testing import open_test_server

    TOTAL, TRANSFER = int(sys.argv[1]), sys.argv[2]
    LINE = b"x" * 76 + b"\\r\\n"
    BLOCK = LINE * (65536 // len(LINE))

    def status(field: str) -> int:
        with open("/proc/self/status") as lines:
            for line in lines:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) * 1024
        raise RuntimeError(f"no {field}")

    async def body(digest):
        # Whole CRLF lines, so the content arrives exactly as generated.
        sent = 0
        while sent < TOTAL:
            lines = min(len(BLOCK), TOTAL - sent) // len(LINE) or 1
            piece = BLOCK[: lines * len(LINE)]
            digest.update(piece)
            sent += len(piece)
            yield piece

    async def main() -> None:
        async with open_test_server(keep_bodies=False, max_size=2**40) as server:
            async with trio_smtp.open_smtp(
                server.host, server.port, tls=trio_smtp.PLAINTEXT
            ) as smtp:
                await smtp.send_mail("a@example.com", ["b@example.com"], b"warm up\\r\\n")
                digest = hashlib.sha256()
                before = status("VmRSS")
                with open("/proc/self/clear_refs", "w") as clear:
                    clear.write("5")  # reset the peak (VmHWM) to the current RSS
                await smtp.send_mail(
                    "a@example.com", ["b@example.com"], body(digest), transfer=TRANSFER
                )
            received = server.messages[-1]
            assert TOTAL <= received.size < TOTAL + len(LINE), received.size
            assert received.sha256 == digest.hexdigest()
            print(status("VmHWM") - before)  # the peak since clear_refs

    trio.run(main)
    """
)


@pytest.mark.skipif(not os.path.exists("/proc/self/clear_refs"), reason="needs Linux /proc")
@pytest.mark.parametrize("transfer", TRANSFERS)
def test_streaming_256_mib_grows_rss_by_less_than_64_mib(transfer: Transfer) -> None:
    total = 256 * 1024 * 1024
    result = subprocess.run(
        [sys.executable, "-c", RSS_SCRIPT, str(total), transfer],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    growth = int(result.stdout.strip())
    # The client and the test server share the process: both stay bounded.
    assert growth < 64 * 1024 * 1024, f"peak RSS grew by {growth / 2**20:.1f} MiB"


def test_the_sample_body_exercises_dot_stuffing() -> None:
    # The tests above rely on lines that start with "." being present.
    assert b"\r\n." in sample_body(10_000)


@pytest.mark.parametrize("transfer", TRANSFERS)
async def test_send_message_streams_a_composed_message_with_its_envelope(
    tmp_path: Path, transfer: Transfer
) -> None:
    from email.message import EmailMessage
    from email.parser import BytesParser
    from email.policy import default

    from trio_smtp.mime import Attachment, compose

    payload = random.Random(7).randbytes(300_001)
    path = tmp_path / "data.bin"
    path.write_bytes(payload)
    message = compose(
        sender=("Sender", SENDER),
        to=[RECIPIENT],
        cc=["copy@example.org"],
        subject="with an attachment",
        text="see attached\n",
        attachments=[Attachment(path)],
    )
    length = message.length
    assert length is not None
    with trio.fail_after(20):
        async with (
            open_test_server() as server,
            trio_smtp.open_smtp(server.host, server.port, tls=trio_smtp.PLAINTEXT) as smtp,
            message,
        ):
            await smtp.send_message(
                message, recipients=[RECIPIENT, "blind@example.org"], transfer=transfer
            )
            await smtp.send_message(
                compose(sender=SENDER, to=["x@example.org"], subject="s", text="t\n")
            )
    first, second = server.messages
    assert first.mail_from == SENDER
    assert first.rcpt_tos == (RECIPIENT, "blind@example.org")
    assert size_option(first.mail_options) == length == len(first.data)
    parsed = BytesParser(policy=default).parsebytes(first.data)
    assert isinstance(parsed, EmailMessage)
    (attachment,) = parsed.iter_attachments()
    assert attachment.get_content() == payload
    assert second.rcpt_tos == ("x@example.org",)
