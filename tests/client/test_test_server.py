"""The client against trio_smtp.testing, for what aiosmtpd lacks: CHUNKING,
BINARYMIME, pipelining measured on the server side, and injected faults."""

from __future__ import annotations

import contextlib

import pytest
import trio
import trio.testing

import trio_smtp
from trio_smtp import MailParams, Message, OutcomeUnknown, SendOutcome, SMTPReplyError
from trio_smtp._client import BDAT_CHUNK_SIZE
from trio_smtp.testing import TestServer, drop_at, open_test_server, reply_override


async def connect_plain(server: TestServer) -> trio_smtp.SMTPClient:
    stream = await trio.open_tcp_stream(server.host, server.port)
    return await trio_smtp.SMTPClient.from_stream(stream, tls=trio_smtp.PLAINTEXT)


async def test_streamed_body_goes_as_bounded_bdat_chunks() -> None:
    body = b"".join(b"line %06d with some text\n" % n for n in range(120_000))  # ~3.2 MiB
    send_stream, receive_stream = trio.testing.memory_stream_one_way_pair()

    async def produce() -> None:
        for start in range(0, len(body), 50_000):
            await send_stream.send_all(body[start : start + 50_000])
        await send_stream.aclose()

    with trio.fail_after(30):
        async with open_test_server() as server:
            smtp = await connect_plain(server)
            async with smtp, trio.open_nursery() as nursery:
                nursery.start_soon(produce)
                outcome = await smtp.send_mail("a@example.com", ["b@example.org"], receive_stream)
    assert outcome.transfer == "BDAT"
    (message,) = server.messages
    assert message.transfer == "BDAT"
    assert message.data == body.replace(b"\n", b"\r\n")
    assert not server.bare_newlines_seen
    assert not server.sync_violations
    chunk_lines = [
        line for _, line in server.transcripts[0] if line.startswith(b"BDAT ") and b" " in line
    ]
    sizes = [int(line.split()[1]) for line in chunk_lines]
    assert len(sizes) >= 3
    assert max(sizes) <= BDAT_CHUNK_SIZE
    assert chunk_lines[-1].endswith(b" LAST")


async def test_binarymime_keeps_bytes_exactly() -> None:
    body = bytes(range(256)) * 4 + b"\r\n.\r\n\n\r"
    with trio.fail_after(10):
        async with open_test_server() as server:
            smtp = await connect_plain(server)
            async with smtp:
                await smtp.send_mail(
                    "a@example.com",
                    ["b@example.org"],
                    body,
                    mail_params=MailParams(body="BINARYMIME"),
                )
    (message,) = server.messages
    assert message.data == body
    assert "BODY=BINARYMIME" in message.mail_options


async def test_data_transfer_on_request_with_chunking_offered() -> None:
    with trio.fail_after(10):
        async with open_test_server() as server:
            smtp = await connect_plain(server)
            async with smtp:
                outcome = await smtp.send_mail(
                    "a@example.com", ["b@example.org"], b".x\n", transfer="data"
                )
    assert outcome.transfer == "DATA"
    assert server.messages[0].data == b".x\r\n"
    assert server.messages[0].transfer == "DATA"


async def test_refused_chunk_resets_and_the_connection_goes_on() -> None:
    body = b"x" * (3 * BDAT_CHUNK_SIZE)
    with trio.fail_after(30):
        async with open_test_server(
            faults=reply_override("BDAT", "452 4.3.1 disk full", stage="bdat")
        ) as server:
            smtp = await connect_plain(server)
            async with smtp:
                send_stream, receive_stream = trio.testing.memory_stream_one_way_pair()

                async def produce() -> None:
                    # The client stops reading the body after the refusal.
                    with contextlib.suppress(trio.BrokenResourceError):
                        await send_stream.send_all(body)
                    await send_stream.aclose()

                async with trio.open_nursery() as nursery:
                    nursery.start_soon(produce)
                    with pytest.raises(SMTPReplyError) as caught:
                        await smtp.send_mail("a@example.com", ["b@example.org"], receive_stream)
                    await receive_stream.aclose()
                assert caught.value.reply.code == 452
                assert smtp.state is trio_smtp.SessionState.READY
                await smtp.send_mail("a@example.com", ["b@example.org"], b"after\r\n")
    assert [message.data for message in server.messages] == [b"after\r\n"]


async def test_batch_flights_are_answered_in_single_writes() -> None:
    with trio.fail_after(10):
        async with open_test_server() as server:
            smtp = await connect_plain(server)
            async with smtp:
                results = await smtp.send_batch(
                    [Message("a@example.com", ["b@example.org"], b"m%d\r\n" % n) for n in range(6)]
                )
    assert all(isinstance(result, SendOutcome) for result in results)
    assert [message.data for message in server.messages] == [b"m%d\r\n" % n for n in range(6)]
    assert max(server.reply_batches[0]) >= 6  # two whole messages answered in one write
    assert not server.sync_violations


async def test_drop_after_end_of_data_is_outcome_unknown_and_the_server_has_it() -> None:
    with trio.fail_after(10):
        async with open_test_server(faults=drop_at("data_end")) as server:
            smtp = await connect_plain(server)
            with pytest.raises(OutcomeUnknown):
                await smtp.send_mail("a@example.com", ["b@example.org"], b"x\r\n")
            await smtp.aclose()
    (message,) = server.messages
    assert message.acknowledged is False


async def test_421_at_mail_is_a_transient_refusal() -> None:
    with trio.fail_after(10):
        async with open_test_server(
            faults=reply_override("MAIL", "421 4.3.2 going down")
        ) as server:
            smtp = await connect_plain(server)
            with pytest.raises(SMTPReplyError) as caught:
                await smtp.send_mail("a@example.com", ["b@example.org"], b"x\r\n")
            assert caught.value.reply.is_transient
            assert smtp.state is trio_smtp.SessionState.CLOSED
            await smtp.aclose()
    assert server.messages == []
