"""The pool's promises one at a time: cap, replacement, rate limit, checkout checks,
discarding unclean connections, connect failures, bounded retries, lazy input,
stopping jobs, statistics and audit events.
"""

from __future__ import annotations

import itertools
import math
import sys
import weakref
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

import pytest
import trio
import trio.lowlevel
import trio.testing

import trio_smtp
from trio_smtp import (
    AuditEvent,
    Delivery,
    DeliveryStatus,
    Message,
    SMTPClient,
    SMTPReplyError,
    open_pool,
)
from trio_smtp.testing import (
    Action,
    FaultPoint,
    Reply,
    TestServer,
    combine,
    drop_at,
    open_test_server,
    reply_override,
)

if sys.version_info < (3, 11):
    from exceptiongroup import BaseExceptionGroup  # type: ignore[import-not-found,unused-ignore]

from .helpers import (
    GREYLISTED,
    RECIPIENT,
    REFUSED,
    SENDER,
    CountingConnect,
    RandomFaults,
    check_accounting,
    make_messages,
    memory_connect,
    server_record,
    tcp_connect,
)


def _mail_count(server: TestServer, connection: int) -> int:
    return sum(1 for who, line in server.transcripts[connection] if line.startswith(b"MAIL "))


async def test_send_all_reports_every_message_with_its_key() -> None:
    events: list[AuditEvent] = []
    async with open_test_server(reject_recipients=[REFUSED]) as server:
        messages = make_messages(200, mixed=False)
        messages.append(Message(SENDER, [RECIPIENT, REFUSED], "X-Key: p\r\n\r\nx\r\n", key="p"))
        messages.append(Message(SENDER, [REFUSED], "X-Key: r\r\n\r\nx\r\n", key="r"))
        with trio.fail_after(20):
            async with open_pool(
                tcp_connect(server), max_connections=3, audit=events.append
            ) as pool:
                deliveries = [delivery async for delivery in pool.send_all(messages)]
                during = pool.statistics()
            after = pool.statistics()

    counts = check_accounting(messages, deliveries, server)
    assert counts == {DeliveryStatus.DELIVERED: 201, DeliveryStatus.REJECTED: 1}
    by_key = {delivery.key: delivery for delivery in deliveries}
    assert by_key["m7"].outcome is not None and by_key["m7"].outcome.queue_id is not None
    assert by_key["m7"].attempts == 1
    # Partly refused: delivered, with the refusal per recipient.
    assert by_key["p"].status is DeliveryStatus.DELIVERED
    assert by_key["p"].rejected[REFUSED].code == 550
    # Every recipient refused: REJECTED, with the replies, never retried.
    refused = by_key["r"]
    assert refused.status is DeliveryStatus.REJECTED and refused.attempts == 1
    assert refused.rejected[REFUSED].code == 550
    assert isinstance(refused.error, trio_smtp.RecipientsRefused)

    assert (during.open, during.idle, during.in_use, during.connecting) == (3, 3, 0, 0)
    assert (during.sent, during.failed, during.not_sent) == (201, 1, 0)
    assert during.connections_opened == 3 and during.connect_failures == 0
    assert (after.open, after.sent) == (0, 201)
    kinds = Counter(event.kind for event in events)
    assert kinds == {"pool_connected": 3, "pool_delivery": 202, "pool_closed": 3}
    delivered = [e for e in events if e.kind == "pool_delivery" and e.details["key"] == "m7"]
    assert delivered[0].details["status"] == "delivered" and delivered[0].details["code"] == 250


async def test_send_mail_one_message() -> None:
    async with open_test_server() as server:
        with trio.fail_after(10):
            async with open_pool(tcp_connect(server)) as pool:
                delivery = await pool.send_mail(SENDER, RECIPIENT, "Hi\n", key="one")
    assert delivery.key == "one" and delivery.status is DeliveryStatus.DELIVERED
    assert [m.rcpt_tos for m in server.messages] == [(RECIPIENT,)]


async def test_connection_cap_holds_under_churn() -> None:
    async with open_test_server(faults=RandomFaults(7, rate=4.0)) as server:
        connect = CountingConnect(tcp_connect(server))
        messages = make_messages(600, mixed=False)
        with trio.fail_after(30):
            async with open_pool(connect, max_connections=3, max_messages_per_connection=4) as pool:
                deliveries = [delivery async for delivery in pool.send_all(messages)]
    check_accounting(messages, deliveries, server)
    assert connect.peak == 3
    assert connect.opened >= 600 // 4  # every connection was replaced, many times


async def test_connection_replaced_after_max_messages() -> None:
    async with open_test_server() as server:
        with trio.fail_after(10):
            async with open_pool(
                tcp_connect(server), max_connections=1, max_messages_per_connection=7
            ) as pool:
                deliveries = [d async for d in pool.send_all(make_messages(30, mixed=False))]
    assert {d.status for d in deliveries} == {DeliveryStatus.DELIVERED}
    assert [_mail_count(server, n) for n in range(server.connections)] == [7, 7, 7, 7, 2]
    # Replaced connections said goodbye: QUIT, not a dropped socket.
    assert all(("C", b"QUIT") in transcript for transcript in server.transcripts)


async def test_rate_limit_holds_across_connections(autojump_clock: trio.abc.Clock) -> None:
    sent_at: list[float] = []

    def record(point: FaultPoint) -> Action | None:
        if point.stage == "command" and point.verb == "MAIL":
            sent_at.append(trio.current_time())
        return None

    async with open_test_server(faults=record) as server, trio.open_nursery() as nursery:
        start = trio.current_time()
        async with open_pool(
            memory_connect(server, nursery), max_connections=4, rate_limit=20
        ) as pool:
            deliveries = [d async for d in pool.send_all(make_messages(60, mixed=False))]
        nursery.cancel_scope.cancel()
    assert {d.status for d in deliveries} == {DeliveryStatus.DELIVERED}
    assert len(sent_at) == 60
    gaps = [b - a for a, b in itertools.pairwise(sent_at)]
    assert min(gaps) >= 1 / 20 - 1e-9  # never faster, whichever connection sent
    # ... and not needlessly slower: 59 gaps of 50 ms.
    assert sent_at[-1] - start == pytest.approx(59 / 20, abs=0.01)


@asynccontextmanager
async def _socketpair_server(
    server: TestServer, nursery: trio.Nursery, server_sides: list[trio.SocketStream]
) -> AsyncIterator[SMTPClient]:
    """A connection over a real socket pair, whose server side the test can close."""
    client_sock, server_sock = trio.socket.socketpair()
    server_side = trio.SocketStream(server_sock)
    server_sides.append(server_side)
    nursery.start_soon(server.serve_stream, server_side)
    client = await SMTPClient.from_stream(
        trio.SocketStream(client_sock), tls=trio_smtp.PLAINTEXT, local_hostname="pool.test"
    )
    async with client:
        yield client


async def test_idle_connection_closed_by_the_server_is_replaced_on_checkout() -> None:
    events: list[AuditEvent] = []
    server_sides: list[trio.SocketStream] = []
    async with open_test_server() as server, trio.open_nursery() as nursery:

        def connect() -> AbstractAsyncContextManager[SMTPClient]:
            return _socketpair_server(server, nursery, server_sides)

        with trio.fail_after(10):
            async with open_pool(connect, max_connections=1, audit=events.append) as pool:
                first = await pool.send_mail(SENDER, RECIPIENT, "one\n")
                # The server closes the idle connection (an idle timeout).
                await server_sides[0].aclose()
                await trio.sleep(0.05)
                second = await pool.send_mail(SENDER, RECIPIENT, "two\n")
                stats = pool.statistics()
        nursery.cancel_scope.cancel()
    assert (first.status, second.status) == (DeliveryStatus.DELIVERED,) * 2
    assert second.attempts == 1 and stats.retried == 0  # reconnected, no failed attempt
    assert stats.connections_opened == 2
    closed = [e.details["reason"] for e in events if e.kind == "pool_closed"]
    assert closed[0] == "closed while idle"


async def test_421_on_a_reused_connection_means_reconnect() -> None:
    # The second MAIL (the first on the reused connection) gets a 421.
    faults = reply_override("MAIL", "421 4.4.2 Idle too long, closing", skip=1)
    async with open_test_server(faults=faults) as server:
        with trio.fail_after(10):
            async with open_pool(tcp_connect(server), max_connections=1, max_attempts=1) as pool:
                first = await pool.send_mail(SENDER, RECIPIENT, "one\n")
                second = await pool.send_mail(SENDER, RECIPIENT, "two\n")
                stats = pool.statistics()
    # Delivered despite max_attempts=1: the stale connection did not count.
    assert (first.status, second.status) == (DeliveryStatus.DELIVERED,) * 2
    assert second.attempts == 1 and stats.retried == 1 and server.connections == 2


async def test_failure_after_end_of_data_is_unknown_and_never_retried() -> None:
    faults = drop_at("data_end")
    async with open_test_server(faults=faults) as server:
        with trio.fail_after(10):
            async with open_pool(tcp_connect(server), max_connections=1) as pool:
                lost = await pool.send_mail(SENDER, RECIPIENT, "X-Key: lost\r\n\r\nx\r\n", key="l")
                later = await pool.send_mail(SENDER, RECIPIENT, "X-Key: later\r\n\r\nx\r\n")
    assert lost.status is DeliveryStatus.UNKNOWN and lost.attempts == 1
    assert isinstance(lost.error, trio_smtp.OutcomeUnknown)
    assert server_record(server) == {"lost": [False], "later": [True]}
    # The broken connection was discarded: the next message used a new one.
    assert later.status is DeliveryStatus.DELIVERED and server.connections == 2


async def test_transient_failures_are_retried_a_bounded_number_of_times() -> None:
    def greylist(point: FaultPoint) -> Action | None:
        if point.verb == "RCPT" and point.line is not None and GREYLISTED.encode() in point.line:
            return Reply("450 4.2.0 Greylisted")
        return None

    # A drop before the end of data, once: retried on a new connection.
    faults = combine(drop_at("command", "DATA"), greylist)
    async with open_test_server(faults=faults) as server:
        with trio.fail_after(10):
            async with open_pool(tcp_connect(server), max_connections=2, max_attempts=3) as pool:
                dropped = await pool.send_mail(
                    SENDER, RECIPIENT, "X-Key: d\r\n\r\nx\r\n", transfer="data"
                )
                grey = await pool.send_mail(SENDER, GREYLISTED, "X-Key: g\r\n\r\nx\r\n")
    assert dropped.status is DeliveryStatus.DELIVERED and dropped.attempts == 2
    assert grey.status is DeliveryStatus.DEFERRED and grey.attempts == 3
    assert grey.rejected[GREYLISTED].code == 450
    rcpts = [line for t in server.transcripts for _, line in t if GREYLISTED.encode() in line]
    assert len(rcpts) == 3
    assert server_record(server) == {"d": [True]}


@pytest.mark.parametrize("greeting", ["554 5.3.2 No service", "421 4.3.2 Busy"])
async def test_connect_failure_surfaces_once(greeting: str) -> None:
    faults = reply_override(None, greeting, times=None, stage="connect")
    async with open_test_server(faults=faults) as server:
        connect = CountingConnect(tcp_connect(server))
        with trio.fail_after(10):
            async with open_pool(connect, max_connections=4) as pool:
                job = pool.send_all(make_messages(500, mixed=False))
                got: list[Delivery] = []
                with pytest.raises(SMTPReplyError) as raised:
                    async for delivery in job:
                        got.append(delivery)
                assert raised.value.reply.code == int(greeting[:3])
                with pytest.raises(SMTPReplyError):
                    await pool.send_mail(SENDER, RECIPIENT, "x\n")
                assert pool.failure is raised.value
                stats = pool.statistics()
    assert connect.opened <= 4  # not a loop: at most one attempt per connection slot
    assert stats.connect_failures == connect.opened
    # Every message (a list) has its delivery; none was sent.
    assert len(got) == 500 and {d.status for d in got} == {DeliveryStatus.NOT_SENT}
    assert all(d.error is raised.value for d in got if d.error is not None)


async def test_a_connect_factory_that_raises_a_bug_is_called_once_and_raised_once() -> None:
    # Not an SMTP or network failure but a programming error (a factory
    # returning a coroutine instead of a context manager): the pool must not
    # replace the connection in a loop while its nursery goes down.
    calls = 0

    def broken_connect() -> Any:
        nonlocal calls
        calls += 1
        raise TypeError("not a context manager")

    with trio.fail_after(10):
        with pytest.raises(BaseExceptionGroup) as raised:
            async with open_pool(broken_connect, max_connections=1) as pool:
                async for _ in pool.send_all(make_messages(200, mixed=False)):
                    pass
    assert calls == 1
    leaves = list(_leaves(raised.value))
    assert len(leaves) == 1 and isinstance(leaves[0], TypeError)


def _leaves(group: BaseExceptionGroup[Any]) -> Iterator[BaseException]:
    for exc in group.exceptions:
        if isinstance(exc, BaseExceptionGroup):
            yield from _leaves(exc)
        else:
            yield exc


async def test_login_failure_surfaces_once() -> None:
    async with open_test_server(users={"alice": "right"}) as server:
        opened = 0

        @asynccontextmanager
        async def connect() -> AsyncIterator[SMTPClient]:
            nonlocal opened
            opened += 1
            async with tcp_connect(server)() as client:
                await client.login("alice", "wrong")
                yield client

        with trio.fail_after(10):
            async with open_pool(connect, max_connections=2) as pool:
                with pytest.raises(trio_smtp.AuthRejected):
                    async for _ in pool.send_all(make_messages(50, mixed=False)):
                        pass
    assert opened <= 2


async def test_bodies_are_taken_lazily() -> None:
    pulled = 0
    window = 4 * 2 + 8  # what a pool of two connections takes ahead

    def bulk() -> Iterator[Message]:
        nonlocal pulled
        for message in make_messages(300, mixed=False):
            pulled += 1
            yield message

    async with open_test_server() as server:
        with trio.fail_after(20):
            async with open_pool(tcp_connect(server), max_connections=2) as pool:
                seen = 0
                async for _ in pool.send_all(bulk()):
                    seen += 1
                    # Taken ahead of what the consumer has seen: a bounded few.
                    assert pulled - seen <= window
                    if seen % 50 == 0:
                        await trio.sleep(0.05)  # a slow consumer: the job waits
                        assert pulled - seen <= window
    assert pulled == seen == 300 == len(server.messages)


@pytest.mark.parametrize("transfer", ["data", "auto"])
async def test_a_long_stream_lets_go_of_the_messages_it_delivered(
    transfer: trio_smtp._client.Transfer,
) -> None:
    # One connection with work always queued sends the whole job as one
    # pipelined stream. Holding on to what it sent would keep every body of
    # the job alive, and the garbage collector's pauses would grow with it.
    alive: weakref.WeakValueDictionary[int, Message] = weakref.WeakValueDictionary()
    window = 4 * 1 + 8  # what a pool of one connection takes ahead

    def bulk() -> Iterator[Message]:
        for number in range(400):
            body = f"X-Key: k{number}\r\n\r\nHello {number}.\r\n"
            message = Message(SENDER, [RECIPIENT], body, transfer=transfer, key=number)
            alive[number] = message
            yield message

    most_alive = 0
    async with open_test_server() as server:
        with trio.fail_after(20):
            async with open_pool(tcp_connect(server), max_connections=1) as pool:
                async for _ in pool.send_all(bulk()):
                    most_alive = max(most_alive, len(alive))
                opened = pool.statistics().connections_opened
    assert len(server.messages) == 400
    assert opened == 1
    assert most_alive <= window


async def test_async_inputs() -> None:
    async def generate() -> AsyncIterator[Message]:
        for message in make_messages(20, mixed=False, prefix="a"):
            yield message

    send, receive = trio.open_memory_channel[Message](math.inf)
    for message in make_messages(20, mixed=False, prefix="c"):
        send.send_nowait(message)
    send.close()
    async with open_test_server() as server:
        with trio.fail_after(10):
            async with open_pool(tcp_connect(server)) as pool:
                from_generator = [d async for d in pool.send_all(generate())]
                from_channel = [d async for d in pool.send_all(receive)]
    assert {d.key for d in from_generator} == {f"a{n}" for n in range(20)}
    assert {d.key for d in from_channel} == {f"c{n}" for n in range(20)}
    assert len(server.messages) == 40


async def test_stopping_a_job_fed_by_an_open_channel() -> None:
    send, receive = trio.open_memory_channel[Message](math.inf)
    for message in make_messages(10, mixed=False):
        send.send_nowait(message)
    async with open_test_server() as server:
        with trio.fail_after(10):
            async with open_pool(tcp_connect(server)) as pool:
                async with pool.send_all(receive) as job:
                    got = [await anext(job) for _ in range(10)]
                # The channel is still open: leaving the block stopped the job
                # without waiting for a message that may never come.
                assert job.done
                assert [d async for d in job] == []
    assert {d.status for d in got} == {DeliveryStatus.DELIVERED}
    assert len(server.messages) == 10
    send.close()


async def test_cancelled_jobs_and_leaving_the_pool() -> None:
    async with open_test_server() as server:
        with trio.fail_after(10):
            async with open_pool(tcp_connect(server)) as pool:
                # Cancelled before anything started: every message NOT_SENT.
                job = pool.send_all(make_messages(100, mixed=False, prefix="x"))
                job.cancel()
                cancelled = [d async for d in job]
                # Never consumed: leaving the pool stops it and settles everything.
                idle_job = pool.send_all(make_messages(100, mixed=False, prefix="y"))
                await trio.lowlevel.checkpoint()
        assert idle_job.done
        left = [d async for d in idle_job]
    assert len(cancelled) == 100 and {d.status for d in cancelled} == {DeliveryStatus.NOT_SENT}
    assert {d.attempts for d in cancelled} == {0}
    check_accounting(make_messages(100, mixed=False, prefix="y"), left, server)
    assert Counter(d.status for d in left)[DeliveryStatus.NOT_SENT] > 0


async def test_cancelling_the_consumer_cancels_the_job() -> None:
    async with open_test_server(faults=RandomFaults(3, slow=0.05)) as server:
        messages = make_messages(2000, mixed=False)
        with trio.fail_after(20):
            async with open_pool(tcp_connect(server), max_connections=2) as pool:
                job = pool.send_all(messages)
                got: list[Delivery] = []
                with trio.move_on_after(0.1):
                    async for delivery in job:
                        got.append(delivery)
                assert job.cancelled
                await job.aclose()
                got += [delivery async for delivery in job]
    counts = check_accounting(messages, got, server)
    assert counts[DeliveryStatus.NOT_SENT] > 0 and counts[DeliveryStatus.DELIVERED] > 0


async def test_input_error_ends_the_job_after_the_messages_taken() -> None:
    def broken() -> Iterator[Message]:
        yield from make_messages(5, mixed=False)
        raise LookupError("the queue went away")

    async with open_test_server() as server:
        with trio.fail_after(10):
            async with open_pool(tcp_connect(server)) as pool:
                got: list[Delivery] = []
                with pytest.raises(LookupError):
                    async for delivery in pool.send_all(broken()):
                        got.append(delivery)
    assert len(got) == 5 and len(server.messages) == 5


async def test_things_that_are_not_messages_are_rejected() -> None:
    async with open_test_server() as server:
        with trio.fail_after(10):
            async with open_pool(tcp_connect(server)) as pool:
                got = [d async for d in pool.send_all(["not a message"])]  # type: ignore[list-item]
    assert got[0].status is DeliveryStatus.REJECTED
    assert isinstance(got[0].error, trio_smtp.InvalidInputError)
    assert server.connections == 0


async def test_invalid_input_is_rejected_without_a_transaction() -> None:
    async with open_test_server() as server:
        with trio.fail_after(10):
            async with open_pool(tcp_connect(server)) as pool:
                bad = await pool.send_mail(SENDER, "no at sign", "x\n")
                good = await pool.send_mail(SENDER, RECIPIENT, "x\n")
    assert bad.status is DeliveryStatus.REJECTED
    assert isinstance(bad.error, trio_smtp.InvalidInputError)
    assert good.status is DeliveryStatus.DELIVERED


async def test_lmtp_partial_failure_after_data_is_delivered() -> None:
    faults = reply_override("DATA", "452 4.2.2 Mailbox full", stage="data_end", recipient=REFUSED)
    async with open_test_server(lmtp=True, faults=faults) as server:

        def connect() -> AbstractAsyncContextManager[SMTPClient]:
            return trio_smtp.open_lmtp(server.host, server.port, tls=trio_smtp.PLAINTEXT)

        with trio.fail_after(10):
            async with open_pool(connect) as pool:
                delivery = await pool.send_mail(
                    SENDER, [RECIPIENT, REFUSED], "x\n", transfer="data"
                )
    assert delivery.status is DeliveryStatus.DELIVERED
    assert isinstance(delivery.outcome, trio_smtp.LMTPOutcome)
    assert delivery.rejected[REFUSED].code == 452
    assert [m.rcpt_tos for m in server.messages] == [(RECIPIENT,)]


async def test_cancelling_the_pool_settles_messages_in_flight() -> None:
    # Replies to the end of data never come: messages are stuck after it.
    def slow_final(point: FaultPoint) -> Action | None:
        return trio_smtp.testing.Delay(60) if point.stage == "data_end" else None

    async with open_test_server(faults=slow_final) as server:
        messages = make_messages(50, mixed=False)
        job = None
        with trio.fail_after(10), trio.move_on_after(0.5):
            async with open_pool(tcp_connect(server), max_connections=2) as pool:
                job = pool.send_all(messages)
                async for _ in job:
                    raise AssertionError("nothing can finish")
        assert job is not None and job.done
        got = [d async for d in job]
    counts = check_accounting(messages, got, server)
    # The messages whose end of data had left are UNKNOWN; the rest were never started.
    assert counts[DeliveryStatus.UNKNOWN] >= 2
    assert counts[DeliveryStatus.UNKNOWN] + counts[DeliveryStatus.NOT_SENT] == 50
    assert all(d.attempts == 1 for d in got if d.status is DeliveryStatus.UNKNOWN)


@pytest.mark.parametrize(
    "option",
    [
        {"max_connections": 0},
        {"max_messages_per_connection": 0},
        {"rate_limit": 0},
        {"max_attempts": 0},
    ],
)
async def test_arguments_are_checked(option: dict[str, Any]) -> None:
    def connect() -> AbstractAsyncContextManager[SMTPClient]:
        raise AssertionError("not reached")

    with pytest.raises(trio_smtp.InvalidInputError):
        async with open_pool(connect, **option):
            raise AssertionError("not reached")


async def test_a_body_stream_cut_off_by_cancellation_is_closed() -> None:
    """The pool closes what a body source holds, as send_mail does: here an
    async generator left suspended when its send was cancelled mid-body."""
    closed = trio.Event()

    async def body() -> AsyncIterator[bytes]:
        try:
            while True:
                yield b"x" * 1000 + b"\r\n"
        finally:
            closed.set()

    async with trio.open_nursery() as nursery:

        @asynccontextmanager
        async def connect() -> AsyncIterator[SMTPClient]:
            client_end, server_end = trio.testing.lockstep_stream_pair()

            async def peer() -> None:
                await server_end.send_all(b"220 peer ESMTP\r\n")
                await server_end.receive_some()  # EHLO
                await server_end.send_all(b"250-peer\r\n250 PIPELINING\r\n")
                await server_end.receive_some()  # MAIL, RCPT, DATA
                await server_end.send_all(b"250 ok\r\n250 ok\r\n354 go\r\n")
                await trio.sleep_forever()  # and never read the body

            nursery.start_soon(peer)
            client = await SMTPClient.from_stream(client_end, tls=trio_smtp.PLAINTEXT)
            async with client:
                yield client

        with trio.fail_after(10), trio.move_on_after(0.5):
            async with open_pool(connect) as pool:
                await pool.send_mail(SENDER, RECIPIENT, body())
        assert closed.is_set()
        nursery.cancel_scope.cancel()


@pytest.mark.parametrize("extensions", [["PIPELINING"], ["PIPELINING", "CHUNKING"]])
async def test_a_message_planned_ahead_of_a_lost_connection_is_not_charged_an_attempt(
    extensions: list[str],
) -> None:
    """While message 0's reply travels, message 2 is planned (message 1 rode
    behind message 0's end of data). The connection drops: 0 is UNKNOWN,
    1 was chained and, with one attempt allowed, is DEFERRED; 2 never
    started, so it goes back to the queue uncharged and is delivered."""
    messages = make_messages(5, mixed=False)
    async with open_test_server(extensions=extensions, faults=drop_at("data_end")) as server:
        with trio.fail_after(10):
            async with open_pool(tcp_connect(server), max_connections=1, max_attempts=1) as pool:
                got = [d async for d in pool.send_all(messages)]
    check_accounting(messages, got, server, max_attempts=1)
    status = {d.key: d.status for d in got}
    assert status["m0"] is DeliveryStatus.UNKNOWN
    # Through DATA message 1's end of data never left; with BDAT its only
    # chunk rode whole behind message 0.
    chunked = "CHUNKING" in extensions
    assert status["m1"] is (DeliveryStatus.UNKNOWN if chunked else DeliveryStatus.DEFERRED)
    assert status["m2"] is DeliveryStatus.DELIVERED
    assert {d.key: d.attempts for d in got}["m2"] == 1
    assert status["m3"] is status["m4"] is DeliveryStatus.DELIVERED
