"""Composed messages sent for real: through the project's test server (BDAT
and DATA) and through aiosmtpd, arriving byte for byte and parsing back into
the same parts."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import trio

import trio_smtp
from trio_smtp.mime import READ_SIZE, Attachment, ComposedMessage, compose
from trio_smtp.testing import open_test_server

from ..client.conftest import run_aiosmtpd
from .helpers import SplitStream, assert_no_defects, canonical_text, check_wire, parse

TEXT = "Hello,\n\nthe report is attached. Ünïcödé text, and a line of dots:\n.\n..\n"
HTML = "<p>Hello, <b>the report</b> is attached.</p>\n<p>.</p>\n"


def build(tmp_path: Path, report: bytes, notes: bytes) -> ComposedMessage:
    path = tmp_path / "report.bin"
    path.write_bytes(report)
    return compose(
        sender=("Sënder", "sender@example.com"),
        to=[("Recipient", "rcpt@example.org")],
        subject="Quarterly report, with a subject long enough to need folding " * 2,
        text=TEXT,
        html=HTML,
        attachments=[
            Attachment(path, filename="rapport trimestriel é.bin"),
            Attachment(SplitStream(notes, [1000, 7]), filename="notes.txt", size=len(notes)),
        ],
    )


def check_received(data: bytes, report: bytes, notes: bytes) -> None:
    check_wire(data)
    message = parse(data)
    assert_no_defects(message)
    assert message["Subject"] == "Quarterly report, with a subject long enough to need folding " * 2
    body = message.get_body(("plain",))
    html = message.get_body(("html",))
    assert body is not None and html is not None
    assert body.get_content() == canonical_text(TEXT)
    assert html.get_content() == canonical_text(HTML)
    attachments = list(message.iter_attachments())
    assert [part.get_filename() for part in attachments] == [
        "rapport trimestriel é.bin",
        "notes.txt",
    ]
    assert attachments[0].get_payload(decode=True) == report
    assert attachments[1].get_payload(decode=True) == notes


@pytest.mark.parametrize("extensions", [None, ["PIPELINING", "SIZE", "8BITMIME"]])
async def test_through_the_test_server(tmp_path: Path, extensions: list[str] | None) -> None:
    report, notes = os.urandom(3 * READ_SIZE + 17), b"plain notes\r\n" * 500
    composed = build(tmp_path, report, notes)
    with trio.fail_after(30):
        async with open_test_server(extensions=extensions) as server:
            stream = await trio.open_tcp_stream(server.host, server.port)
            smtp = await trio_smtp.SMTPClient.from_stream(stream, tls=trio_smtp.PLAINTEXT)
            async with smtp, composed:
                await smtp.send_mail("sender@example.com", ["rcpt@example.org"], composed)
    (received,) = server.messages
    assert received.transfer == ("BDAT" if extensions is None else "DATA")
    assert len(received.data) == composed.length
    # The length known in advance became the SIZE declaration (RFC 1870).
    assert f"SIZE={composed.length}" in received.mail_options
    check_received(received.data, report, notes)


async def test_through_aiosmtpd(tmp_path: Path) -> None:
    report, notes = os.urandom(100_000), b"notes\n"
    composed = build(tmp_path, report, notes)
    expected_length = composed.length
    with run_aiosmtpd() as server, trio.fail_after(30):
        async with (
            trio_smtp.open_smtp("127.0.0.1", server.port, tls=trio_smtp.PLAINTEXT) as smtp,
            composed,
        ):
            await smtp.send_mail("sender@example.com", ["rcpt@example.org"], composed)
    (envelope,) = server.handler.envelopes
    assert f"SIZE={expected_length}" in envelope.mail_options
    data = envelope.original_content
    assert isinstance(data, bytes)
    assert len(data) == expected_length
    check_received(data, report, notes)


async def test_what_arrives_is_exactly_what_the_stream_yielded(tmp_path: Path) -> None:
    report, notes = os.urandom(5000), b"n"
    composed = build(tmp_path, report, notes)
    async with open_test_server() as server:
        stream = await trio.open_tcp_stream(server.host, server.port)
        smtp = await trio_smtp.SMTPClient.from_stream(stream, tls=trio_smtp.PLAINTEXT)
        tee = Tee(composed)
        async with smtp, composed:
            await smtp.send_mail("sender@example.com", ["rcpt@example.org"], tee)
    (received,) = server.messages
    assert received.data == bytes(tee.seen)
    assert len(tee.seen) == composed.length


async def test_too_large_is_refused_before_anything_is_read() -> None:
    notes = SplitStream(b"x" * 5000)
    composed = compose(
        sender="a@example.com", subject="s", attachments=[Attachment(notes, size=5000)]
    )
    async with open_test_server(max_size=4000) as server:
        stream = await trio.open_tcp_stream(server.host, server.port)
        smtp = await trio_smtp.SMTPClient.from_stream(stream, tls=trio_smtp.PLAINTEXT)
        async with smtp, composed:
            with pytest.raises(trio_smtp.MessageTooLarge):
                await smtp.send_mail("a@example.com", ["b@example.org"], composed)
    assert notes.delivered == 0
    assert not server.messages


class Tee(trio.abc.ReceiveStream):
    """Passes a stream through, keeping a copy of what went by."""

    def __init__(self, inner: trio.abc.ReceiveStream) -> None:
        self.inner = inner
        self.seen = bytearray()

    async def receive_some(self, max_bytes: int | None = None) -> bytes:
        chunk = await self.inner.receive_some(max_bytes)
        self.seen += chunk
        return bytes(chunk)

    async def aclose(self) -> None:
        await self.inner.aclose()
