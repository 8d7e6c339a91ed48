"""Bulk sends against a server that misbehaves at random: every message accounted once.

The test server injects, at random, drops before and after the end of data,
421s, 4xx and 5xx replies and slow replies. Whatever happens, each message
gets exactly one `Delivery`; nothing the server recorded is reported as
anything but DELIVERED or UNKNOWN; everything reported DELIVERED was
recorded; nothing was recorded twice; and the connection cap holds. The
second test does the same while cancelling jobs at random points, in the
three ways a job can be stopped.

``TRIO_SMTP_FAULT_MESSAGES`` changes the message count (default 10,000) and
``TRIO_SMTP_FAULT_SEED`` the seed; each test prints its accounting.
"""

from __future__ import annotations

import os
import random
from collections import Counter

import trio

from trio_smtp import Delivery, DeliveryStatus, Message, open_pool
from trio_smtp.testing import open_test_server

from .helpers import (
    REFUSED,
    CountingConnect,
    RandomFaults,
    check_accounting,
    make_messages,
    tcp_connect,
)

MESSAGES = int(os.environ.get("TRIO_SMTP_FAULT_MESSAGES", "10000"))
SEED = int(os.environ.get("TRIO_SMTP_FAULT_SEED", "20260506"))
MAX_CONNECTIONS = 8


def _report(name: str, counts: Counter[DeliveryStatus], fired: Counter[str], extra: str) -> None:
    statuses = ", ".join(f"{status.name} {counts[status]}" for status in DeliveryStatus)
    faults = ", ".join(f"{name} {n}" for name, n in sorted(fired.items()))
    print(f"\n{name}: {sum(counts.values())} messages: {statuses}\n  faults: {faults}\n  {extra}")


async def test_random_faults_every_message_accounted_once() -> None:
    faults = RandomFaults(SEED)
    async with open_test_server(faults=faults, reject_recipients=[REFUSED]) as server:
        connect = CountingConnect(tcp_connect(server))
        messages = make_messages(MESSAGES, seed=SEED)
        with trio.fail_after(150):
            async with open_pool(
                connect, max_connections=MAX_CONNECTIONS, max_messages_per_connection=400
            ) as pool:
                deliveries = [delivery async for delivery in pool.send_all(messages)]
                stats = pool.statistics()

    counts = check_accounting(messages, deliveries, server)
    assert connect.peak == MAX_CONNECTIONS  # the cap was reached, and never exceeded
    # Every kind of outcome happened, so every rule above was exercised.
    for status in (
        DeliveryStatus.DELIVERED,
        DeliveryStatus.REJECTED,
        DeliveryStatus.DEFERRED,
        DeliveryStatus.UNKNOWN,
    ):
        assert counts[status] > 0, counts
    assert counts[DeliveryStatus.NOT_SENT] == 0
    assert stats.sent == counts[DeliveryStatus.DELIVERED]
    assert stats.retried > 0
    assert len(faults.fired) == 10, faults.fired
    partly = sum(
        1
        for delivery in deliveries
        if delivery.status is DeliveryStatus.DELIVERED and REFUSED in delivery.rejected
    )
    assert partly > 0
    recorded = len(server.messages)
    _report(
        "random faults",
        counts,
        faults.fired,
        f"server recorded {recorded} ({sum(not m.acknowledged for m in server.messages)} "
        f"unacknowledged); retries {stats.retried}; connections opened {connect.opened}, "
        f"peak {connect.peak} (cap {MAX_CONNECTIONS}); partly refused but delivered {partly}",
    )


async def _one_cancelled_job(
    rng: random.Random, messages: list[Message], connect: CountingConnect
) -> tuple[str, list[Delivery], list[Message]]:
    """Run one job over ``messages`` and stop it at a random point, one of three ways."""
    mode = rng.choice(["job.cancel", "consumer cancelled", "pool cancelled"])
    as_list = rng.random() < 0.5
    iterator = iter(messages)
    source = messages if as_list else iterator
    got: list[Delivery] = []
    delay = rng.uniform(0.0, 0.15)
    if mode == "pool cancelled":
        job = None
        with trio.move_on_after(delay):
            async with open_pool(connect, max_connections=MAX_CONNECTIONS) as pool:
                job = pool.send_all(source)
                async for delivery in job:
                    got.append(delivery)
        if job is not None:
            # Leaving the pool settled every message the job had taken.
            assert job.done
            got.extend([delivery async for delivery in job])
    else:
        async with open_pool(connect, max_connections=MAX_CONNECTIONS) as pool:
            job = pool.send_all(source)
            if mode == "job.cancel":
                stop_after = rng.randrange(len(messages))
                async for delivery in job:
                    got.append(delivery)
                    if len(got) == stop_after:
                        job.cancel()
            else:
                with trio.move_on_after(delay):
                    async for delivery in job:
                        got.append(delivery)
                await job.aclose()
                got.extend([delivery async for delivery in job])
    leftover = [] if as_list else list(iterator)
    return mode, got, leftover


async def test_random_faults_and_cancellation_every_message_accounted_once() -> None:
    rng = random.Random(SEED + 1)
    faults = RandomFaults(SEED + 2)
    job_size = 500
    all_messages: list[Message] = []
    deliveries: list[Delivery] = []
    leftovers: list[Message] = []
    modes: Counter[str] = Counter()
    async with open_test_server(faults=faults, reject_recipients=[REFUSED]) as server:
        connect = CountingConnect(tcp_connect(server))
        with trio.fail_after(150):
            for start in range(0, MESSAGES, job_size):
                messages = make_messages(
                    min(job_size, MESSAGES - start), seed=start, prefix=f"j{start}-"
                )
                mode, got, leftover = await _one_cancelled_job(rng, messages, connect)
                modes[mode] += 1
                all_messages += messages
                deliveries += got
                leftovers += leftover

    counts = check_accounting(all_messages, deliveries, server, leftover=leftovers)
    assert connect.peak <= MAX_CONNECTIONS
    assert sum(counts.values()) + len(leftovers) == MESSAGES
    assert counts[DeliveryStatus.NOT_SENT] > 0 and counts[DeliveryStatus.DELIVERED] > 0
    assert len(modes) == 3, modes
    _report(
        "random faults and cancellation",
        counts,
        faults.fired,
        f"never taken from an iterator input: {len(leftovers)}; jobs stopped by "
        + ", ".join(f"{mode} {n}" for mode, n in sorted(modes.items()))
        + f"; connections peak {connect.peak} (cap {MAX_CONNECTIONS})",
    )
