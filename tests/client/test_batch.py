"""send_batch: the next transaction rides behind the previous end of data."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
import trio

import trio_smtp
from trio_smtp import (
    InvalidInputError,
    Message,
    OutcomeUnknown,
    RecipientsRefused,
    SendOutcome,
    SMTPConnectionError,
    SMTPReplyError,
)

from .conftest import EHLO_PIPELINING, Aiosmtpd, Peer, scripted

GREETING = b"220 peer.test ESMTP\r\n"


def message(number: int, rcpt: str = "b@example.org") -> Message:
    return Message("a@example.com", [rcpt], b"body %d\r\n" % number, key=number)


async def greet(peer: Peer) -> None:
    await peer.send(GREETING)
    await peer.expect(b"EHLO client.test\r\n")
    await peer.send(EHLO_PIPELINING)


def opening(rcpt: bytes = b"b@example.org", size: int = 8) -> bytes:
    return b"MAIL FROM:<a@example.com> SIZE=%d\r\nRCPT TO:<%s>\r\nDATA\r\n" % (size, rcpt)


async def test_golden_one_round_trip_per_message() -> None:
    flights: list[bytes] = []

    async def server(peer: Peer) -> None:
        await greet(peer)
        for reply in [
            b"250 ok\r\n250 ok\r\n354 go\r\n",
            b"250 queued as Q1\r\n250 ok\r\n250 ok\r\n354 go\r\n",
            b"250 queued as Q2\r\n250 ok\r\n250 ok\r\n354 go\r\n",
            b"250 queued as Q3\r\n",
        ]:
            flights.append(bytes(await peer.stream.receive_some(65536)))
            await peer.send(reply)
        await peer.read_all_until_eof()

    with trio.fail_after(5):
        async with scripted(server) as (smtp, _):
            assert smtp is not None
            results = await smtp.send_batch([message(1), message(2), message(3)])
            await smtp._abort()
    assert flights == [
        opening(),
        b"body 1\r\n.\r\n" + opening(),
        b"body 2\r\n.\r\n" + opening(),
        b"body 3\r\n.\r\n",
    ]
    assert [r.queue_id for r in results if isinstance(r, SendOutcome)] == ["Q1", "Q2", "Q3"]


async def test_failures_stay_with_their_message() -> None:
    async def server(peer: Peer) -> None:
        await greet(peer)
        # Message 1: its final reply is a refusal, while message 3 rides behind.
        await peer.expect(opening())
        await peer.send(b"250 ok\r\n250 ok\r\n354 go\r\n")
        await peer.expect(b"body 1\r\n.\r\n" + opening(b"nobody@example.org"))
        await peer.send(b"554 5.7.1 spam\r\n250 ok\r\n550 5.1.1 unknown\r\n554 no rcpt\r\n")
        # Message 3's recipients were all refused: RSET, then message 4 alone.
        await peer.expect(b"RSET\r\n")
        await peer.send(b"250 reset\r\n")
        await peer.expect(opening())
        await peer.send(b"250 ok\r\n250 ok\r\n354 go\r\n")
        await peer.expect(b"body 4\r\n.\r\n")
        await peer.send(b"250 queued as Q4\r\n")
        await peer.read_all_until_eof()

    with trio.fail_after(5):
        async with scripted(server) as (smtp, _):
            assert smtp is not None
            results = await smtp.send_batch(
                [
                    message(1),
                    Message("a@example.com", ["not an address"], b"x"),
                    message(3, "nobody@example.org"),
                    message(4),
                ]
            )
            assert smtp.state is trio_smtp.SessionState.READY
            await smtp._abort()
    assert isinstance(results[0], SMTPReplyError)
    assert results[0].reply.code == 554
    assert isinstance(results[1], InvalidInputError)
    assert isinstance(results[2], RecipientsRefused)
    assert isinstance(results[3], SendOutcome)
    assert results[3].queue_id == "Q4"


async def test_connection_lost_with_a_message_chained_behind() -> None:
    async def server(peer: Peer) -> None:
        await greet(peer)
        await peer.expect(opening())
        await peer.send(b"250 ok\r\n250 ok\r\n354 go\r\n")
        await peer.expect(b"body 1\r\n.\r\n" + opening())
        await peer.close()

    with trio.fail_after(5):
        async with scripted(server) as (smtp, _):
            assert smtp is not None
            results = await smtp.send_batch([message(1), message(2), message(3)])
            assert smtp.state is trio_smtp.SessionState.BROKEN
    assert isinstance(results[0], OutcomeUnknown)
    # Message 2 had only MAIL/RCPT/DATA out, message 3 nothing: both never sent.
    assert all(isinstance(result, SMTPConnectionError) for result in results[1:])
    assert all("not sent" in str(result) for result in results[1:])


class ClosingBody:
    """An async iterator body that records whether it was closed."""

    def __init__(self) -> None:
        self.closed = False

    def __aiter__(self) -> ClosingBody:
        return self

    async def __anext__(self) -> bytes:
        raise StopAsyncIteration

    async def aclose(self) -> None:
        self.closed = True


async def test_a_body_chained_behind_a_lost_message_is_closed() -> None:
    async def server(peer: Peer) -> None:
        await greet(peer)
        await peer.expect(opening())
        await peer.send(b"250 ok\r\n250 ok\r\n354 go\r\n")
        await peer.expect(b"body 1\r\n.\r\nMAIL FROM:<a@example.com>\r\n")
        await peer.close()

    body = ClosingBody()
    chained = Message("a@example.com", ["b@example.org"], body, key=2)
    with trio.fail_after(5):
        async with scripted(server) as (smtp, _):
            assert smtp is not None
            results = await smtp.send_batch([message(1), chained])
    assert isinstance(results[1], SMTPConnectionError)
    assert "not sent" in str(results[1])
    # Its opening was written, its body never read: still, closed.
    assert body.closed


async def test_a_whole_message_chained_behind_a_lost_one_is_unknown_not_unsent() -> None:
    # With CHUNKING a small message is one flight: message 2's BDAT LAST and
    # body ride in message 1's write. Lost before any reply, message 2 may
    # have been delivered; calling it "not sent" would invite a duplicate.
    chunking = b"250-peer.test\r\n250-PIPELINING\r\n250-CHUNKING\r\n250 SIZE 100000\r\n"

    def flight(number: int) -> bytes:
        return (
            b"MAIL FROM:<a@example.com> SIZE=8\r\nRCPT TO:<b@example.org>\r\n"
            b"BDAT 8 LAST\r\nbody %d\r\n" % number
        )

    async def server(peer: Peer) -> None:
        await peer.send(GREETING)
        await peer.expect(b"EHLO client.test\r\n")
        await peer.send(chunking)
        await peer.expect(flight(1) + b"RSET\r\n" + flight(2))
        await peer.close()

    with trio.fail_after(5):
        async with scripted(server) as (smtp, _):
            assert smtp is not None
            results = await smtp.send_batch([message(1), message(2), message(3)])
            assert smtp.state is trio_smtp.SessionState.BROKEN
    assert isinstance(results[0], OutcomeUnknown)
    assert isinstance(results[1], OutcomeUnknown)
    assert isinstance(results[2], SMTPConnectionError)
    assert not isinstance(results[2], OutcomeUnknown)
    assert "not sent" in str(results[2])


async def test_batch_against_aiosmtpd_without_pipelining(aiosmtpd_server: Aiosmtpd) -> None:
    batch = [message(number) for number in range(5)]
    batch[2] = message(2, "nobody@example.org")
    with trio.fail_after(10):
        async with trio_smtp.open_smtp(
            "127.0.0.1", aiosmtpd_server.port, tls=trio_smtp.PLAINTEXT
        ) as smtp:
            assert not smtp.capabilities.pipelining
            results = await smtp.send_batch(batch)
    assert [type(result).__name__ for result in results] == [
        "SendOutcome",
        "SendOutcome",
        "RecipientsRefused",
        "SendOutcome",
        "SendOutcome",
    ]
    contents = [envelope.content for envelope in aiosmtpd_server.handler.envelopes]
    assert contents == [b"body 0\r\n", b"body 1\r\n", b"body 3\r\n", b"body 4\r\n"]


async def test_empty_batch() -> None:
    async def server(peer: Peer) -> None:
        await greet(peer)
        await peer.read_all_until_eof()

    with trio.fail_after(5):
        async with scripted(server) as (smtp, _):
            assert smtp is not None
            with trio.testing.assert_checkpoints():
                assert await smtp.send_batch([]) == []
            await smtp._abort()


@pytest.mark.parametrize("count", [1, 7])
async def test_bdat_batch_chains_whole_messages(count: int) -> None:
    flights: list[bytes] = []

    async def server(peer: Peer) -> None:
        await peer.send(GREETING)
        await peer.expect(b"EHLO client.test\r\n")
        await peer.send(b"250-peer\r\n250-PIPELINING\r\n250 CHUNKING\r\n")
        pending = count
        buffer = b""
        while pending:
            data = bytes(await peer.stream.receive_some(65536))
            flights.append(data)
            buffer += data
            replies = b""
            # Answer command by command; a BDAT line is followed by its chunk.
            while b"\r\n" in buffer:
                line, _, rest = buffer.partition(b"\r\n")
                if line.startswith(b"BDAT "):
                    size = int(line.split()[1])
                    if len(rest) < size:
                        break
                    rest = rest[size:]
                    replies += b"250 queued\r\n"
                    pending -= 1
                else:
                    replies += b"250 ok\r\n"
                buffer = rest
            await peer.send(replies)
        await peer.read_all_until_eof()

    with trio.fail_after(5):
        async with scripted(server) as (smtp, _):
            assert smtp is not None
            results = await smtp.send_batch([message(n) for n in range(count)])
            await smtp._abort()
    assert all(isinstance(result, SendOutcome) for result in results)
    wire = b"".join(flights)
    assert wire.count(b"BDAT 8 LAST\r\n") == count
    # A message chained behind a BDAT LAST starts with RSET, in the same flight.
    chained = re.findall(rb"BDAT 8 LAST\r\nbody \d\r\nRSET\r\nMAIL FROM:", wire)
    assert len(chained) == count - 1
    if count > 1:
        assert len(flights) < count  # messages shared writes


@pytest.mark.parametrize("chained", [True, False])
async def test_a_refused_bdat_last_cannot_leak_into_the_next_transaction(chained: bool) -> None:
    """A server that keeps a transaction open after refusing BDAT LAST (RFC
    3030 does not say it ends) must not take the next message into it."""
    from trio_smtp.testing import open_test_server, reply_override

    messages = [
        Message("a@example.com", [f"r{n}@example.org"], b"body %d\r\n" % n, key=n) for n in range(3)
    ]
    with trio.fail_after(10):
        async with (
            open_test_server(
                faults=reply_override("BDAT", "554 5.6.0 content refused", stage="command")
            ) as server,
            trio_smtp.open_smtp(server.host, server.port, tls=trio_smtp.PLAINTEXT) as smtp,
        ):
            if chained:
                results = await smtp.send_batch(messages)
            else:
                results = []
                for each in messages:
                    try:
                        results.append(
                            await smtp.send_mail(each.sender, each.recipients, each.body)
                        )
                    except trio_smtp.SMTPReplyError as exc:
                        results.append(exc)
    assert isinstance(results[0], trio_smtp.SMTPReplyError)
    assert all(isinstance(result, SendOutcome) for result in results[1:])
    assert [(m.rcpt_tos, m.data) for m in server.messages] == [
        (("r1@example.org",), b"body 1\r\n"),
        (("r2@example.org",), b"body 2\r\n"),
    ]


async def test_a_refused_chunk_leaves_the_message_planned_ahead_to_be_sent() -> None:
    """Message 2 is planned while message 0's reply travels. When message 1's
    first chunk is refused, the connection is reset and still clean (nothing
    of message 2 was written), so message 2 goes out on it."""
    from trio_smtp.testing import open_test_server, reply_override

    big = b"x" * 70 + b"\r\n"
    messages = [
        message(0),
        Message("a@example.com", ["b@example.org"], big * 20_000, key=1),
        message(2),
    ]
    with trio.fail_after(10):
        async with (
            open_test_server(
                faults=reply_override("BDAT", "554 5.6.0 chunk refused", stage="bdat")
            ) as server,
            trio_smtp.open_smtp(server.host, server.port, tls=trio_smtp.PLAINTEXT) as smtp,
        ):
            results = await smtp.send_batch(messages)
            assert not smtp.is_closed
            assert smtp.state is not trio_smtp.SessionState.BROKEN
    assert isinstance(results[0], SendOutcome)
    assert isinstance(results[1], SMTPReplyError)
    assert results[1].reply.code == 554
    assert isinstance(results[2], SendOutcome)
    assert [m.data for m in server.messages] == [b"body 0\r\n", b"body 2\r\n"]


class _Recorder(trio.abc.Stream):
    """Wraps a stream, logging each write and each read that returned data."""

    def __init__(self, inner: trio.abc.Stream, log: list[str]) -> None:
        self.inner = inner
        self.log = log

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        await self.inner.send_all(data)
        self.log.append("write")

    async def receive_some(self, max_bytes: int | None = None) -> bytes | bytearray:
        data = await self.inner.receive_some(max_bytes)
        self.log.append("read")
        return data

    async def wait_send_all_might_not_block(self) -> None:
        await self.inner.wait_send_all_might_not_block()

    async def aclose(self) -> None:
        await self.inner.aclose()


@pytest.mark.parametrize("chunking", [False, True])
async def test_planning_and_reporting_wait_for_the_next_write(chunking: bool) -> None:
    """Between a reply flight and the write it allows, the stream neither
    plans a message nor reports a result: both happen after the write, while
    the next replies travel (the pool's throughput at high latency depends
    on that short path)."""
    from trio_smtp.testing import open_test_server

    log: list[str] = []
    extensions = ["PIPELINING", "SIZE"] + (["CHUNKING"] if chunking else [])
    count = 12
    pending = iter(message(number) for number in range(count))

    def take() -> Message | None:
        taken = next(pending, None)
        log.append("take" if taken is not None else "none left")
        return taken

    def conclude(number: int, result: object) -> None:
        assert isinstance(result, SendOutcome), result
        log.append(f"conclude {number}")

    def give_back(number: int) -> None:
        raise AssertionError(f"message {number} given back, yet nothing failed")

    with trio.fail_after(10):
        async with open_test_server(extensions=extensions) as server:
            stream = await trio.open_tcp_stream(server.host, server.port)
            smtp = await trio_smtp.SMTPClient.from_stream(
                _Recorder(stream, log), tls=trio_smtp.PLAINTEXT
            )
            async with smtp:
                log.clear()
                assert await smtp._send_stream(take, conclude, give_back)
    reports = [entry for entry in log if entry.startswith("conclude")]
    assert reports == [f"conclude {number}" for number in range(count)]
    assert len(server.messages) == count
    # From the first report until the input runs dry (a dry input is asked
    # again when a message could be chained, as more may have come), every
    # reply flight is followed by more reading or by the write it allows.
    steady = log[log.index("conclude 0") : log.index("none left")]
    assert steady.count("read") >= 4, " ".join(log)
    after_read = [steady[i + 1] for i in range(len(steady) - 1) if steady[i] == "read"]
    assert set(after_read) <= {"read", "write"}, " ".join(log)


async def test_an_input_that_raises_mid_batch_leaves_the_client_broken() -> None:
    """The input's own error propagates; message 1's reply was still due, so
    the connection is aborted rather than left with replies nobody reads."""

    def messages() -> Iterator[Message]:
        yield message(1)
        yield message(2)
        raise RuntimeError("the input broke")

    async def server(peer: Peer) -> None:
        await greet(peer)
        await peer.expect(opening())
        await peer.send(b"250 ok\r\n250 ok\r\n354 go\r\n")
        await peer.expect(b"body 1\r\n.\r\n" + opening())
        assert await peer.read_all_until_eof() == b""

    with trio.fail_after(5):
        async with scripted(server) as (smtp, _):
            assert smtp is not None
            with pytest.raises(RuntimeError, match="the input broke"):
                await smtp.send_batch(messages())
            assert smtp.state is trio_smtp.SessionState.BROKEN
