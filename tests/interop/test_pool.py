"""The pool against every server: a bulk job's deliveries agree with the mailboxes.

One job goes through `open_pool` over a few connections, each replaced
after a few messages, with one message to an unknown recipient and one
partly refused. Every message gets the status its server's replies call
for, and each message reported DELIVERED is stored exactly once for each
recipient the server accepted.
"""

from __future__ import annotations

from collections import Counter

import pytest
import trio

from trio_smtp import AuditEvent, DeliveryStatus, Message, RecipientsRefused, open_pool

from ._checks import TEST_TIMEOUT, delivered_once
from ._messages import ALICE, BOB, SENDER, UNKNOWN, message
from ._targets import ALL_TARGETS, Target

pytestmark = pytest.mark.parametrize("target", ALL_TARGETS, indirect=True)

CONNECTIONS = 3
PER_CONNECTION = 5


@pytest.mark.interop("pool")
async def test_a_bulk_job_is_stored_once_per_delivered_message(target: Target) -> None:
    plain = [message(f"bulk message {number}\r\n".encode()) for number in range(24)]
    refused = message(b"to nobody at all\r\n", to=UNKNOWN)
    partly = message(b"to bob and to nobody\r\n", to=BOB)
    messages = [Message(SENDER, [ALICE], sent.text, key=sent.message_id) for sent in plain]
    messages.insert(7, Message(SENDER, [UNKNOWN], refused.text, key=refused.message_id))
    messages.insert(15, Message(SENDER, [BOB, UNKNOWN], partly.text, key=partly.message_id))
    events: list[AuditEvent] = []
    open_now = most_open = 0

    def audit(event: AuditEvent) -> None:
        nonlocal open_now, most_open
        events.append(event)
        if event.kind == "pool_connected":
            open_now += 1
            most_open = max(most_open, open_now)
        elif event.kind == "pool_closed":
            open_now -= 1

    with trio.fail_after(TEST_TIMEOUT):
        async with open_pool(
            target.connect,
            max_connections=CONNECTIONS,
            max_messages_per_connection=PER_CONNECTION,
            audit=audit,
        ) as pool:
            deliveries = [delivery async for delivery in pool.send_all(messages)]
        stats = pool.statistics()

        assert Counter(delivery.key for delivery in deliveries) == Counter(
            message.key for message in messages
        )
        by_key = {delivery.key: delivery for delivery in deliveries}
        rejected = by_key.pop(refused.message_id)
        assert rejected.status is DeliveryStatus.REJECTED
        assert isinstance(rejected.error, RecipientsRefused)
        assert list(rejected.error.rejected) == [UNKNOWN]
        assert rejected.rejected[UNKNOWN].code == 550
        assert {delivery.status for delivery in by_key.values()} == {DeliveryStatus.DELIVERED}
        partial = by_key[partly.message_id].outcome
        assert partial is not None
        assert list(partial.accepted) == [BOB]
        assert list(partial.rejected) == [UNKNOWN]
        assert (stats.sent, stats.failed, stats.not_sent) == (25, 1, 0)
        # 26 messages at most five per connection: at least six connections,
        # never more than three open at once.
        assert stats.connections_opened >= 6
        assert most_open <= CONNECTIONS
        assert stats.open == 0

        for sent in plain:
            await delivered_once(target, ALICE, sent)
        await delivered_once(target, BOB, partly)
