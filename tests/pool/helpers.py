"""Shared pieces of the pool tests: connect factories, fault policies, accounting.

`CountingConnect` wraps a connect factory and measures how many connections
are open (or being opened) at once, independently of the pool's own
bookkeeping. `RandomFaults` is a seeded fault policy for the test server.
`check_accounting` holds the rules every bulk run must keep against what the
server recorded.
"""

from __future__ import annotations

import random
import re
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field

import trio
import trio.testing

import trio_smtp
from trio_smtp import Delivery, DeliveryStatus, Message, SMTPClient
from trio_smtp.testing import Action as FaultAction
from trio_smtp.testing import Delay, Drop, FaultPoint, Reply, TestServer

SENDER = "pool-sender@example.com"
RECIPIENT = "rcpt@example.org"
REFUSED = "nobody@example.org"
#: Always answered 450 at RCPT by `RandomFaults`: retried, then DEFERRED.
GREYLISTED = "greylisted@example.org"
_KEY_HEADER = re.compile(rb"^X-Key: (\S+)\r$", re.MULTILINE)


def tcp_connect(
    server: TestServer, **options: object
) -> Callable[[], AbstractAsyncContextManager[SMTPClient]]:
    """A connect factory for the test server over loopback TCP."""

    def connect() -> AbstractAsyncContextManager[SMTPClient]:
        return trio_smtp.open_smtp(
            server.host,
            server.port,
            tls=trio_smtp.PLAINTEXT,
            local_hostname="pool.test",
        )

    return connect


def memory_connect(
    server: TestServer, nursery: trio.Nursery
) -> Callable[[], AbstractAsyncContextManager[SMTPClient]]:
    """A connect factory over in-memory streams (safe under `autojump_clock`)."""

    @asynccontextmanager
    async def connect() -> AsyncIterator[SMTPClient]:
        client_stream, server_stream = trio.testing.memory_stream_pair()
        nursery.start_soon(server.serve_stream, server_stream)
        client = await SMTPClient.from_stream(
            client_stream, tls=trio_smtp.PLAINTEXT, local_hostname="pool.test", peer_is_local=True
        )
        async with client:
            yield client

    return connect


@dataclass
class CountingConnect:
    """Wraps a connect factory; ``peak`` is the most connections alive at once.

    A connection counts from the moment connecting starts until its context
    manager has exited, whatever happened in between.
    """

    inner: Callable[[], AbstractAsyncContextManager[SMTPClient]]
    alive: int = 0
    peak: int = 0
    opened: int = 0

    def __call__(self) -> AbstractAsyncContextManager[SMTPClient]:
        return self._connect()

    @asynccontextmanager
    async def _connect(self) -> AsyncIterator[SMTPClient]:
        self.alive += 1
        self.opened += 1
        self.peak = max(self.peak, self.alive)
        try:
            async with self.inner() as client:
                yield client
        finally:
            self.alive -= 1


def make_messages(
    count: int, *, seed: int = 0, prefix: str = "m", mixed: bool = True
) -> list[Message]:
    """``count`` small messages keyed ``prefix0``...; some via DATA, some partly refused."""
    rng = random.Random(seed)
    messages = []
    for number in range(count):
        key = f"{prefix}{number}"
        body = f"X-Key: {key}\r\nSubject: pool test {number}\r\n\r\nHello {number}.\r\n"
        recipients = [RECIPIENT]
        transfer: trio_smtp._client.Transfer = "auto"
        if mixed:
            roll = rng.random()
            if roll < 0.02:
                recipients = [REFUSED]  # every recipient refused: REJECTED
            elif roll < 0.05:
                recipients = [RECIPIENT, REFUSED]  # partly refused: still DELIVERED
            elif roll < 0.06:
                recipients = [GREYLISTED]  # 450 every time: DEFERRED
            if rng.random() < 0.3:
                transfer = "data"
        messages.append(Message(SENDER, recipients, body, transfer=transfer, key=key))
    return messages


@dataclass
class RandomFaults:
    """A seeded fault policy: drops, 421s, 4xx and 5xx replies and slow replies.

    Faults strike at MAIL, RCPT, DATA and BDAT (before the end of data) and
    at the end of data itself; never at connect, so the pool always has a
    server to go back to. ``fired`` counts what was injected. `GREYLISTED`
    is refused with 450 every time.
    """

    seed: int
    rate: float = 1.0
    slow: float = 0.01
    rng: random.Random = field(init=False)
    fired: Counter[str] = field(default_factory=Counter)

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)

    def __call__(self, point: FaultPoint) -> FaultAction | None:
        roll = self.rng.random() / self.rate
        if point.verb == "RCPT" and point.line is not None and GREYLISTED.encode() in point.line:
            return Reply("450 4.2.0 Greylisted, try again later")
        if point.stage == "command" and point.verb == "BDAT":
            # A refusal of BDAT LAST is injected at "data_end" instead: the
            # server's command-stage override keeps the transaction open,
            # and the client chains the next MAIL behind BDAT LAST.
            table: Sequence[tuple[float, str, FaultAction]] = (
                (0.003, "drop before end of data", Drop()),
                (0.008, "slow reply", Delay(self.slow)),
            )
        elif point.stage == "command" and point.verb in ("MAIL", "RCPT", "DATA"):
            table = (
                (0.003, "drop before end of data", Drop()),
                (0.006, "421 before end of data", Reply("421 4.3.2 Shutting down")),
                (0.012, "4xx before end of data", Reply("451 4.3.0 Try again later")),
                (0.015, "5xx before end of data", Reply("554 5.7.1 Refused")),
                (0.020, "slow reply", Delay(self.slow)),
            )
        elif point.stage == "data_end":
            table = (
                (0.010, "drop after end of data", Drop()),
                (0.015, "421 at end of data", Reply("421 4.3.2 Shutting down")),
                (0.025, "4xx at end of data", Reply("451 4.3.0 Try again later")),
                (0.030, "5xx at end of data", Reply("554 5.6.0 Content refused")),
                (0.035, "slow final reply", Delay(self.slow)),
            )
        else:
            return None
        for threshold, name, action in table:
            if roll < threshold:
                self.fired[name] += 1
                return action
        return None


def server_record(server: TestServer) -> dict[str, list[bool]]:
    """Key -> the ``acknowledged`` flag of each copy the server recorded."""
    record: dict[str, list[bool]] = {}
    for message in server.messages:
        match = _KEY_HEADER.search(message.data)
        assert match is not None, message.data[:200]
        record.setdefault(match.group(1).decode(), []).append(message.acknowledged)
    return record


def check_accounting(
    messages: Iterable[Message],
    deliveries: Sequence[Delivery],
    server: TestServer,
    *,
    leftover: Iterable[Message] = (),
    max_attempts: int = 3,
) -> Counter[DeliveryStatus]:
    """Assert the bulk-send rules; returns the count of each status.

    - every message has exactly one delivery, or was never taken from the
      input (``leftover``), never both;
    - nothing the server recorded is reported as anything but DELIVERED or
      UNKNOWN, and nothing was recorded twice (no retry after an end of data);
    - everything reported DELIVERED was recorded and acknowledged;
    - attempts stay within ``max_attempts`` (NOT_SENT: none).
    """
    keys = [message.key for message in messages]
    assert len(set(keys)) == len(keys)
    delivered_keys = [delivery.key for delivery in deliveries]
    duplicates = [key for key, n in Counter(delivered_keys).items() if n > 1]
    assert not duplicates, f"deliveries reported twice: {duplicates[:10]}"
    left = {message.key for message in leftover}
    assert not left & set(delivered_keys), "a message left in the input was also reported"
    missing = set(keys) - set(delivered_keys) - left
    assert not missing, f"messages with no delivery: {sorted(map(str, missing))[:10]}"
    assert not (set(delivered_keys) - set(keys)), "deliveries for unknown keys"

    record = server_record(server)
    by_key = {delivery.key: delivery for delivery in deliveries}
    twice = {key: acks for key, acks in record.items() if len(acks) > 1}
    assert not twice, f"recorded more than once (a duplicate send): {list(twice)[:10]}"
    for key in record:
        assert key not in left, f"{key} was never taken but the server has it"
        status = by_key[key].status
        assert status in (DeliveryStatus.DELIVERED, DeliveryStatus.UNKNOWN), (
            f"{key}: recorded by the server but reported {status.name}: {by_key[key]}"
        )
    for delivery in deliveries:
        if delivery.status is DeliveryStatus.DELIVERED:
            assert record.get(str(delivery.key)) == [True], f"{delivery.key}: not recorded"
            assert delivery.outcome is not None and delivery.error is None
        if delivery.status is DeliveryStatus.NOT_SENT:
            assert delivery.attempts == 0
        assert delivery.attempts <= max_attempts, delivery
    return Counter(delivery.status for delivery in deliveries)
