"""Exact wire transcripts, cancellation and checkpoints, on trio memory streams."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import pytest
import trio
import trio.testing

import trio_smtp
from trio_smtp import (
    OutcomeUnknown,
    SessionState,
    SMTPClient,
    SMTPConnectionError,
    SMTPReplyError,
)

from .conftest import EHLO_PIPELINING, Peer, scripted

GREETING = b"220 peer.test ESMTP\r\n"


async def greet(peer: Peer, ehlo: bytes = EHLO_PIPELINING) -> None:
    await peer.send(GREETING)
    await peer.expect(b"EHLO client.test\r\n")
    await peer.send(ehlo)


async def test_golden_pipelined_transaction_is_one_write() -> None:
    flights: list[bytes] = []

    async def server(peer: Peer) -> None:
        await greet(peer)
        flights.append(bytes(await peer.stream.receive_some(65536)))
        await peer.send(b"250 2.1.0 ok\r\n250 2.1.5 ok\r\n550 5.1.1 unknown\r\n354 go\r\n")
        await peer.expect(b"Subject: x\r\n\r\n..dot\r\n.\r\n")
        await peer.send(b"250 2.0.0 Ok: queued as 4Xyz\r\n")
        await peer.expect(b"QUIT\r\n")
        await peer.send(b"221 bye\r\n")

    with trio.fail_after(5):
        async with scripted(server) as (smtp, _):
            assert smtp is not None
            outcome = await smtp.send_mail(
                "a@example.com", ["b@example.org", "c@example.org"], b"Subject: x\n\n.dot\n"
            )
            await smtp.aclose()
    assert flights == [
        b"MAIL FROM:<a@example.com> SIZE=20\r\n"  # "Subject: x" CRLF CRLF ".dot" CRLF
        b"RCPT TO:<b@example.org>\r\n"
        b"RCPT TO:<c@example.org>\r\n"
        b"DATA\r\n"
    ]
    assert outcome.queue_id == "4Xyz"
    assert list(outcome.rejected) == ["c@example.org"]


async def test_golden_small_bdat_message_is_one_round_trip() -> None:
    flights: list[bytes] = []

    async def server(peer: Peer) -> None:
        await greet(peer, b"250-peer.test\r\n250-PIPELINING\r\n250 CHUNKING\r\n")
        flights.append(bytes(await peer.stream.receive_some(65536)))
        await peer.send(b"250 ok\r\n250 ok\r\n250 2.0.0 queued as B1\r\n")
        await peer.read_all_until_eof()

    with trio.fail_after(5):
        async with scripted(server) as (smtp, _):
            assert smtp is not None
            outcome = await smtp.send_mail("a@example.com", ["b@example.org"], b"hi\n")
            await smtp._abort()
    assert flights == [
        b"MAIL FROM:<a@example.com>\r\nRCPT TO:<b@example.org>\r\nBDAT 4 LAST\r\nhi\r\n"
    ]
    assert outcome.transfer == "BDAT"
    assert outcome.queue_id == "B1"


async def test_without_pipelining_commands_go_one_at_a_time() -> None:
    async def server(peer: Peer) -> None:
        await greet(peer, b"250-peer.test\r\n250 8BITMIME\r\n")
        for line, reply in [
            (b"MAIL FROM:<a@example.com>\r\n", b"250 ok\r\n"),
            (b"RCPT TO:<b@example.org>\r\n", b"250 ok\r\n"),
            (b"DATA\r\n", b"354 go\r\n"),
            (b"x\r\n.\r\n", b"250 queued\r\n"),
        ]:
            received = await peer.stream.receive_some(65536)
            assert received == line
            await peer.send(reply)
        await peer.read_all_until_eof()

    with trio.fail_after(5):
        async with scripted(server) as (smtp, _):
            assert smtp is not None
            await smtp.send_mail("a@example.com", ["b@example.org"], b"x")
            await smtp._abort()


# -- cancellation ---------------------------------------------------------------


async def test_cancel_mid_command_breaks_the_client(autojump_clock: trio.abc.Clock) -> None:
    async def server(peer: Peer) -> None:
        await greet(peer)
        await peer.expect(b"NOOP\r\n")
        assert await peer.read_all_until_eof() == b""  # the client closed

    async with scripted(server) as (smtp, _):
        assert smtp is not None
        with trio.move_on_after(30):
            await smtp.noop()
        assert smtp.state is SessionState.BROKEN
        assert smtp.is_closed
        with pytest.raises(SMTPConnectionError, match="broken"):
            await smtp.noop()
        with pytest.raises(SMTPConnectionError, match="broken"):
            await smtp.send_mail("a@example.com", ["b@example.org"], b"x")
        await smtp.aclose()  # idempotent, and harmless on a broken client


async def test_cancel_while_waiting_for_the_lock_changes_nothing(
    autojump_clock: trio.abc.Clock,
) -> None:
    release = trio.Event()

    async def server(peer: Peer) -> None:
        await greet(peer)
        await peer.expect(b"NOOP\r\n")
        await release.wait()
        await peer.send(b"250 slow ok\r\n")
        await peer.expect(b"NOOP\r\n")
        await peer.send(b"250 ok\r\n")
        await peer.read_all_until_eof()

    async with scripted(server) as (smtp, _):
        assert smtp is not None
        client = smtp
        results: list[int] = []

        async def holder() -> None:
            results.append((await client.noop()).code)

        async with trio.open_nursery() as nursery:
            nursery.start_soon(holder)
            await trio.testing.wait_all_tasks_blocked()
            with trio.move_on_after(5) as scope:
                await client.noop()  # waits for the lock, then is cancelled
            assert scope.cancelled_caught
            release.set()
        assert results == [250]
        assert client.state is SessionState.READY
        assert (await client.noop()).code == 250
        await client._abort()


async def test_lost_after_end_of_data_is_outcome_unknown() -> None:
    async def server(peer: Peer) -> None:
        await greet(peer)
        await peer.stream.receive_some(65536)
        await peer.send(b"250 ok\r\n250 ok\r\n354 go\r\n")
        await peer.expect(b"body\r\n.\r\n")
        await peer.close()  # the message may or may not have been queued

    with trio.fail_after(5):
        async with scripted(server) as (smtp, _):
            assert smtp is not None
            with pytest.raises(OutcomeUnknown) as caught:
                await smtp.send_mail("a@example.com", ["b@example.org"], b"body\r\n")
            assert not isinstance(caught.value, SMTPConnectionError)
            assert smtp.state is SessionState.BROKEN


async def test_lost_before_end_of_data_is_a_connection_error() -> None:
    async def server(peer: Peer) -> None:
        await greet(peer)
        await peer.stream.receive_some(65536)
        await peer.close()

    with trio.fail_after(5):
        async with scripted(server) as (smtp, _):
            assert smtp is not None
            with pytest.raises(SMTPConnectionError):
                await smtp.send_mail("a@example.com", ["b@example.org"], b"body\r\n")
            assert smtp.state is SessionState.BROKEN


async def test_failing_body_stream_never_ends_the_data() -> None:
    class FailingBody(trio.abc.ReceiveStream):
        def __init__(self) -> None:
            self.calls = 0

        async def receive_some(self, max_bytes: int | None = None) -> bytes:
            await trio.lowlevel.checkpoint()
            self.calls += 1
            if self.calls == 1:
                return b"first part\r\n"
            raise OSError("disk went away")

        async def aclose(self) -> None:
            await trio.lowlevel.checkpoint()

    received: list[bytes] = []

    async def server(peer: Peer) -> None:
        await greet(peer)
        await peer.stream.receive_some(65536)
        await peer.send(b"250 ok\r\n250 ok\r\n354 go\r\n")
        received.append(await peer.read_all_until_eof())

    with trio.fail_after(5):
        async with scripted(server) as (smtp, _):
            assert smtp is not None
            with pytest.raises(OSError, match="disk went away"):
                await smtp.send_mail("a@example.com", ["b@example.org"], FailingBody())
            assert smtp.state is SessionState.BROKEN
    assert received == [b"first part\r\n"]  # no end-of-data marker ever left


async def test_421_closes_cleanly_with_a_transient_error() -> None:
    async def server(peer: Peer) -> None:
        await greet(peer)
        await peer.expect(b"NOOP\r\n")
        await peer.send(b"421 4.3.2 shutting down\r\n")
        await peer.read_all_until_eof()

    with trio.fail_after(5):
        async with scripted(server) as (smtp, _):
            assert smtp is not None
            with pytest.raises(SMTPReplyError) as caught:
                await smtp.noop()
            assert caught.value.reply.is_transient
            assert smtp.state is SessionState.CLOSED
            with pytest.raises(SMTPConnectionError, match="closed"):
                await smtp.noop()


async def test_aclose_sends_quit_once_and_is_idempotent() -> None:
    async def server(peer: Peer) -> None:
        await greet(peer)
        await peer.expect(b"QUIT\r\n")
        await peer.send(b"221 bye\r\n")
        assert await peer.read_all_until_eof() == b""

    with trio.fail_after(5):
        async with scripted(server) as (smtp, _):
            assert smtp is not None
            await smtp.aclose()
            await smtp.aclose()
            assert smtp.is_closed


async def test_aclose_cancelled_still_closes_the_transport(
    autojump_clock: trio.abc.Clock,
) -> None:
    async def server(peer: Peer) -> None:
        await greet(peer)
        await peer.expect(b"QUIT\r\n")
        assert await peer.read_all_until_eof() == b""  # never answered; closed

    async with scripted(server) as (smtp, _):
        assert smtp is not None
        with trio.move_on_after(10):
            await smtp.aclose()
        assert smtp.is_closed


# -- every public async method is a checkpoint ----------------------------------


def _ready_server(replies: int) -> Callable[[Peer], Awaitable[None]]:
    async def server(peer: Peer) -> None:
        await greet(peer, EHLO_PIPELINING.replace(b"250 SIZE", b"250-AUTH PLAIN\r\n250 SIZE"))
        for _ in range(replies):
            line = await peer.read_line()
            if line.startswith(b"MAIL"):
                await peer.read_line()
                await peer.read_line()
                await peer.send(b"250 ok\r\n250 ok\r\n354 go\r\n")
                await peer.expect(b"x\r\n.\r\n")
                await peer.send(b"250 queued\r\n")
            elif line.startswith(b"AUTH"):
                await peer.send(b"235 ok\r\n")
            elif line.startswith(b"QUIT"):
                await peer.send(b"221 bye\r\n")
            elif line.startswith(b"EHLO"):
                await peer.send(EHLO_PIPELINING)
            else:
                await peer.send(b"250 ok\r\n")
        await peer.read_all_until_eof()

    return server


CALLS: dict[str, Callable[[SMTPClient], Awaitable[object]]] = {
    "noop": lambda smtp: smtp.noop(),
    "reset": lambda smtp: smtp.reset(),
    "vrfy": lambda smtp: smtp.vrfy("b@example.org"),
    "expn": lambda smtp: smtp.expn("list"),
    "help": lambda smtp: smtp.help(),
    "ehlo": lambda smtp: smtp.ehlo(),
    "send_mail": lambda smtp: smtp.send_mail("a@example.com", ["b@example.org"], b"x"),
    "login": lambda smtp: smtp.login("user", "password"),
    "quit": lambda smtp: smtp.quit(),
    "aclose": lambda smtp: smtp.aclose(),
}


@pytest.mark.parametrize("name", sorted(CALLS))
async def test_every_public_method_is_a_checkpoint(name: str) -> None:
    with trio.fail_after(5):
        async with scripted(_ready_server(1), peer_is_local=True) as (smtp, _):
            assert smtp is not None
            with trio.testing.assert_checkpoints():
                await CALLS[name](smtp)
            await smtp._abort()


@pytest.mark.parametrize("name", sorted(set(CALLS) - {"aclose"}))
async def test_failing_fast_is_still_a_checkpoint(name: str) -> None:
    with trio.fail_after(5):
        async with scripted(_ready_server(0)) as (smtp, _):
            assert smtp is not None
            await smtp._abort()
            with trio.testing.assert_checkpoints(), pytest.raises(trio_smtp.SMTPError):
                await CALLS[name](smtp)
