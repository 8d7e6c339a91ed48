"""`open_pool` and `SMTPPool`: bulk sending over a nursery-owned set of connections.

This module owns the bulk-send outcome model (`Delivery`, `DeliveryStatus`),
the jobs that turn an input of `Message` objects into deliveries
(`BulkJob`), and the pool that assigns messages to connections, retries what
is safe to retry, and keeps the connection cap and the rate limit.

How it fits together (modelled on httpcore's connection pool):

- Assignment is plain synchronous bookkeeping: a FIFO queue of pending
  messages, a set of connections, each either connecting, idle or busy. No
  lock is needed because nothing in the bookkeeping awaits.
- Each connection is a task in the pool's nursery that enters the caller's
  ``connect()`` context manager and then streams messages through the
  client's pipelined batch machinery: the next message's MAIL, RCPT and DATA
  (or its only ``BDAT ... LAST``) ride behind the previous end of data, so a
  message costs one round trip.
- Every message taken by a connection is concluded exactly once, from a
  synchronous callback, also when the connection fails or the task is
  cancelled; a connection whose protocol state is not provably clean
  afterwards is closed, never reused. The one message a connection plans
  ahead while a reply travels, if a failure means it never starts, is given
  back to the front of the queue uncharged instead.
"""

from __future__ import annotations

import enum
import math
import os
from collections import Counter, deque
from collections.abc import (
    AsyncIterable,
    AsyncIterator,
    Callable,
    Hashable,
    Iterable,
    Iterator,
    Mapping,
    Sequence,
)
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass

import trio

from ._client import Body, Message, SMTPClient, Transfer, _server_closing
from ._core.address import ForwardPath, ReversePath
from ._core.commands import MailParams, RcptParams, SmtpOp
from ._core.errors import (
    ExtensionUnavailable,
    InvalidInputError,
    OutcomeUnknown,
    PolicyError,
    RecipientsRefused,
    SMTPConnectionError,
    SMTPError,
    SMTPReplyError,
)
from ._core.reply import Reply
from ._core.session import SessionState
from ._outcome import LMTPOutcome, SendOutcome
from ._policy import AuditEvent, AuditHook, logger

__all__ = [
    "BulkJob",
    "Connect",
    "Delivery",
    "DeliveryStatus",
    "PoolStatistics",
    "SMTPPool",
    "open_pool",
]

#: What `open_pool` calls to open one connection: a zero-argument callable
#: returning an async context manager that yields a ready `SMTPClient`.
Connect = Callable[[], AbstractAsyncContextManager[SMTPClient]]

#: Attempts per message for failures that are safe to retry, unless told.
DEFAULT_MAX_ATTEMPTS = 3
#: Input items yielded without a checkpoint in between, when the input is
#: a plain iterable (a generator producing bodies should not starve others).
_CHECKPOINT_EVERY = 64


class DeliveryStatus(enum.Enum):
    """What became of one message of a bulk job."""

    #: The server accepted the message (its final reply was 2xx) for at
    #: least one recipient; refused recipients are in ``outcome.rejected``
    #: (and, over LMTP, ``outcome.failed``).
    DELIVERED = "delivered"
    #: The server refused it for good (5xx, per recipient in
    #: `Delivery.rejected`), or it could not be sent as given (an invalid
    #: address, a local policy, a missing extension, too large).
    REJECTED = "rejected"
    #: It was not delivered, and sending it again is safe: a 4xx reply, or
    #: the connection failed before the end of data left. Retries within
    #: the job were used up (see ``max_attempts``).
    DEFERRED = "deferred"
    #: The connection was lost (or the job cancelled) after the end of data
    #: left and before its reply: the message may have been delivered.
    #: Sending it again may duplicate it.
    UNKNOWN = "unknown"
    #: The job was cancelled (or the pool closed) before the message started.
    NOT_SENT = "not_sent"


@dataclass(frozen=True)
class Delivery:
    """The one, final report on one message of a bulk job.

    ``key`` is the `Message`'s own ``key``; ``outcome`` is the
    `SendOutcome` (an `LMTPOutcome` over LMTP) when DELIVERED, else None;
    ``error`` is the error that decided the status (None when DELIVERED or
    NOT_SENT by cancellation); ``attempts`` counts the transactions started
    for the message, less a reconnect after the server had closed an idle
    connection.
    """

    key: Hashable
    status: DeliveryStatus
    outcome: SendOutcome | None = None
    error: SMTPError | None = None
    attempts: int = 0

    @property
    def rejected(self) -> Mapping[str, Reply]:
        """Recipients the server refused, each with its reply.

        For DELIVERED, the partial refusals (RCPT, and over LMTP the replies
        after the data); for REJECTED or DEFERRED by a refusal of every
        recipient, each recipient's refusal; otherwise empty.
        """
        if self.outcome is not None:
            refused = dict(self.outcome.rejected)
            if isinstance(self.outcome, LMTPOutcome):
                refused.update(self.outcome.failed)
            return refused
        if isinstance(self.error, RecipientsRefused):
            return dict(self.error.rejected)
        return {}


@dataclass(frozen=True)
class PoolStatistics:
    """A snapshot of a pool: its connections and what it has done.

    ``open`` counts connections that are up (``idle`` plus ``in_use``);
    ``connecting`` those being opened. ``sent`` counts DELIVERED messages,
    ``failed`` REJECTED, DEFERRED and UNKNOWN ones, ``not_sent`` NOT_SENT
    ones; ``retried`` the retries made; ``connections_opened`` and
    ``connect_failures`` every connection attempt so far.
    """

    open: int
    idle: int
    in_use: int
    connecting: int
    sent: int
    failed: int
    not_sent: int
    retried: int
    connections_opened: int
    connect_failures: int


def _replayable(body: object) -> bool:
    """Whether a body can be sent again: in memory, or a file read afresh.

    A stream or (async) iterable was consumed by the first attempt.
    """
    return isinstance(body, (bytes, bytearray, memoryview, str, os.PathLike))


# -- outcome classification ------------------------------------------------------


def _classify(result: SendOutcome | SMTPError, *, lmtp: bool) -> DeliveryStatus | None:
    """The status a result stands for, or None when sending again is safe."""
    if isinstance(result, SendOutcome):
        return DeliveryStatus.DELIVERED
    if isinstance(result, OutcomeUnknown):
        return DeliveryStatus.UNKNOWN
    if isinstance(result, (InvalidInputError, PolicyError, ExtensionUnavailable)):
        return DeliveryStatus.REJECTED
    if isinstance(result, SMTPReplyError):
        if _server_closing(result):
            # Over LMTP some recipients may have had their 250 already.
            final = result.during in (SmtpOp.DATA_END, SmtpOp.BDAT)
            return DeliveryStatus.UNKNOWN if lmtp and final else None
        if isinstance(result, RecipientsRefused) and result.rejected:
            replies = result.rejected.values()
            return None if any(reply.is_transient for reply in replies) else DeliveryStatus.REJECTED
        return None if result.reply.is_transient else DeliveryStatus.REJECTED
    # A connection error before the end of data (SMTPClient._send_stream turns the
    # others into OutcomeUnknown).
    return None


# -- bookkeeping records -----------------------------------------------------------


class _Item:
    """One message on its way: its job, attempts and retry state."""

    __slots__ = ("attempts", "free_retry_used", "job", "last_error", "message", "reused_first")

    def __init__(self, message: Message, job: BulkJob) -> None:
        self.message = message
        self.job = job
        self.attempts = 0
        self.last_error: SMTPError | None = None
        # A 421 or a closed socket on the first message of a reused
        # connection means "reconnect", once per message, not an attempt.
        self.free_retry_used = False
        self.reused_first = False


class _ConnState(enum.Enum):
    CONNECTING = "connecting"
    IDLE = "idle"
    BUSY = "busy"


class _Connection:
    """One connection task's state, as the pool's bookkeeping sees it."""

    def __init__(self, number: int) -> None:
        self.number = number
        self.state = _ConnState.CONNECTING
        self.client: SMTPClient | None = None
        self.taken = 0
        self.wakeup = trio.Event()

    @property
    def peer(self) -> str:
        return self.client.peer if self.client is not None else "pool"


class _RateLimiter:
    """GCRA with no burst: sends are at least ``1 / rate`` seconds apart.

    Shared by every connection and checked synchronously before each send,
    so the rate holds across connections (never checked after the fact).
    Time not used is not saved up: in any window of T seconds at most
    ``T * rate + 1`` sends start.
    """

    def __init__(self, rate: float) -> None:
        self.interval = 1.0 / rate
        self._next = -math.inf

    def delay(self, now: float) -> float:
        """Seconds until the next send is allowed (0: now)."""
        return max(0.0, self._next - now)

    def try_acquire(self, now: float) -> bool:
        """Take the next send slot if it is due; False (and nothing taken) if not."""
        if now < self._next:
            return False
        self._next = now + self.interval
        return True


# -- jobs -----------------------------------------------------------------------------


class BulkJob:
    """The deliveries of one `SMTPPool.send_all` call: an async iterator of `Delivery`.

    Deliveries come in completion order, one per message the job took from
    its input. The job takes messages lazily, a few per connection ahead of
    the sends, so only those bodies are in memory.

    Stopping: `cancel` (or the iterating task being cancelled while it
    waits for the next delivery, or leaving ``async with job:``) stops the
    job. Nothing new starts; messages taken but not started become
    NOT_SENT; messages already started finish and get their real status.
    When the input is a `Sequence` (a list, a tuple), every message still in
    it also gets a NOT_SENT delivery; from an iterator, generator, async
    iterable or channel the job just stops taking, and what is left there
    was never part of the job.

    A job whose iteration was interrupted keeps its deliveries: ``await
    job.aclose()`` waits until every message has one, and iterating again
    yields the ones not yet seen. The iteration ends with the error that
    ended the job early, if any: the input's own exception, or the pool's
    connect failure.
    """

    def __init__(self, pool: SMTPPool, messages: Iterable[Message] | AsyncIterable[Message]):
        self._pool = pool
        self._input = messages
        self._send, self._receive = trio.open_memory_channel[Delivery](math.inf)
        self._cancelled = False
        self._input_done = False
        self._finished = trio.Event()
        self._room = trio.Event()
        #: Taken from the input and not yet yielded to the iterating caller.
        self._unyielded = 0
        #: Taken from the input and not yet given a delivery.
        self._outstanding = 0
        self._error: BaseException | None = None
        self._error_raised = False
        # Stops the feeder when the job stops, even while it waits on an
        # input that has nothing to give (an open channel).
        self._feed_scope = trio.CancelScope()
        self._rest: Iterator[object] = iter(())
        self.counts: Counter[DeliveryStatus] = Counter()
        """Deliveries so far, per status (including those not yet iterated)."""

    # -- what callers use ------------------------------------------------------

    @property
    def cancelled(self) -> bool:
        return self._cancelled

    @property
    def done(self) -> bool:
        """True once every message the job took has its delivery."""
        return self._finished.is_set()

    def cancel(self) -> None:
        """Stop the job: nothing new starts; started messages finish.

        Idempotent and synchronous. Messages taken and not started get
        NOT_SENT at once (DEFERRED, if a retry of theirs was waiting).
        """
        if self._cancelled:
            return
        self._cancelled = True
        self._pool._drop_pending(self)
        self._feed_scope.cancel()
        self._maybe_finish()

    async def aclose(self) -> None:
        """Cancel the job and wait until every message it took has its delivery."""
        self.cancel()
        await self._finished.wait()

    async def __aenter__(self) -> BulkJob:
        await trio.lowlevel.checkpoint()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    def __aiter__(self) -> BulkJob:
        return self

    async def __anext__(self) -> Delivery:
        try:
            delivery = await self._receive.receive()
        except trio.EndOfChannel:
            if self._error is not None and not self._error_raised:
                self._error_raised = True
                raise self._error from None
            raise StopAsyncIteration from None
        except BaseException:
            # The iterating task was cancelled: nobody waits for the rest.
            self.cancel()
            raise
        self._unyielded -= 1
        self._room.set()
        return delivery

    def __repr__(self) -> str:
        counts = ", ".join(f"{s.name}={n}" for s, n in self.counts.items())
        state = "done" if self.done else "cancelled" if self._cancelled else "running"
        return f"<BulkJob {state} {counts}>"

    # -- the pool's side ---------------------------------------------------------

    def _deliver(self, delivery: Delivery) -> None:
        self.counts[delivery.status] += 1
        self._pool._count(delivery.status)
        self._send.send_nowait(delivery)

    def _settle(self, delivery: Delivery) -> None:
        """A message taken from the input got its delivery."""
        self._outstanding -= 1
        self._deliver(delivery)
        self._maybe_finish()

    def _maybe_finish(self) -> None:
        if self._input_done and self._outstanding == 0 and not self._finished.is_set():
            self._send.close()
            self._finished.set()
            self._pool._jobs.discard(self)

    def _take_input(self, message: object) -> _Item | None:
        """Account for one input element; the item to queue, or None when settled."""
        self._outstanding += 1
        self._unyielded += 1
        if not isinstance(message, Message):
            error = InvalidInputError(
                f"send_all takes trio_smtp.Message objects, not {type(message).__name__}"
            )
            self._settle(
                Delivery(getattr(message, "key", None), DeliveryStatus.REJECTED, None, error)
            )
            return None
        if self._cancelled:
            self._settle(Delivery(message.key, DeliveryStatus.NOT_SENT))
            return None
        return _Item(message, self)

    def _end_input(self, error: BaseException | None = None) -> None:
        if error is not None and self._error is None:
            self._error = error
        self._input_done = True
        self._maybe_finish()

    def _drain_sequence(self, rest: Iterator[object], error: SMTPError | None) -> None:
        """Messages taken while stopping: each is NOT_SENT (``error`` says why)."""
        for message in rest:
            self._outstanding += 1
            self._unyielded += 1
            key = getattr(message, "key", None)
            self._settle(Delivery(key, DeliveryStatus.NOT_SENT, None, error))

    async def _wait_for_room(self) -> None:
        window = self._pool._window
        while self._unyielded >= window and not self._cancelled and self._pool._failure is None:
            self._room = trio.Event()
            await self._room.wait()

    async def _feed(self) -> None:
        """Take messages from the input as the pool has room for them (a pool task)."""
        source = self._input
        error: BaseException | None = None
        exhausted = False
        try:
            with self._feed_scope:
                exhausted = await self._take_all(source)
        except Exception as exc:
            # The input itself failed: the job ends with its error, after
            # the messages already taken.
            error = exc
        finally:
            failure = self._pool._failure
            if isinstance(source, Sequence) and not exhausted:
                # A list or tuple: every message in it gets its delivery.
                self._drain_sequence(self._rest, failure)
            if error is None and failure is not None and not self._cancelled:
                error = failure
            self._end_input(error)

    async def _take_all(self, source: Iterable[Message] | AsyncIterable[Message]) -> bool:
        """Admit every input message; True when the input was exhausted."""
        if isinstance(source, AsyncIterable):
            async for message in source:
                if not await self._admit(message):
                    return False
            return True
        self._rest = iter(source)
        count = 0
        while True:
            # Checkpoint before taking, never between taking and admitting:
            # a cancellation there would lose the message.
            if count % _CHECKPOINT_EVERY == 0:
                await trio.lowlevel.checkpoint()
            count += 1
            try:
                element = next(self._rest)
            except StopIteration:
                return True
            if not await self._admit(element):
                return False

    async def _admit(self, message: object) -> bool:
        """Queue one input message; False when the job must stop taking more."""
        failure = self._pool._failure
        if self._cancelled or failure is not None:
            # Taken from the input while the job was stopping: never started.
            self._drain_sequence(iter((message,)), failure)
            return False
        item = self._take_input(message)
        if item is not None:
            self._pool._enqueue(item)
        await self._wait_for_room()
        return not (self._cancelled or self._pool._failure is not None)


# -- the pool ------------------------------------------------------------------------


class SMTPPool:
    """Connections to one server, owned by a nursery, shared by bulk jobs.

    Get one from `open_pool`. `send_all` runs a job over an input of
    `Message` objects; `send_mail` sends one message through the same
    queue. Messages are taken first in, first out, across jobs.
    """

    def __init__(
        self,
        nursery: trio.Nursery,
        connect: Connect,
        *,
        max_connections: int,
        max_messages_per_connection: int | None,
        rate_limit: float | None,
        max_attempts: int,
        audit: AuditHook | None,
    ) -> None:
        """Use `open_pool`: the pool lives as long as its nursery."""
        self._nursery = nursery
        self._connect = connect
        self.max_connections = max_connections
        self.max_messages_per_connection = max_messages_per_connection
        self.rate_limit = rate_limit
        self.max_attempts = max_attempts
        self._audit = audit
        self._limiter = _RateLimiter(rate_limit) if rate_limit is not None else None
        self._pending: deque[_Item] = deque()
        self._connections: set[_Connection] = set()
        self._idle: deque[_Connection] = deque()
        # Lowered to the connections that work after a connect failure, so
        # a server that refuses extra connections is not hammered.
        self._cap = max_connections
        self._failure: SMTPError | None = None
        self._closing = False
        self._closed = False
        # Set once an exception escapes a connection's task: the nursery is
        # then tearing the pool down, and a replacement would only fail again
        # (a factory that raises TypeError would otherwise be retried in a
        # loop until the cancellation lands).
        self._crashed = False
        self._jobs: set[BulkJob] = set()
        self._window = 4 * max_connections + 8
        self._numbers = 0
        self._stats: Counter[str] = Counter()

    # -- public ---------------------------------------------------------------------

    def send_all(self, messages: Iterable[Message] | AsyncIterable[Message]) -> BulkJob:
        """Send every `Message` of ``messages``; returns the job, an async iterator of `Delivery`.

        ``messages`` may be an iterable, an async iterable, or a trio memory
        receive channel; it is read lazily. See `BulkJob` for stopping and
        for what happens to messages when the job is cancelled.
        """
        self._check_open()
        job = BulkJob(self, messages)
        self._jobs.add(job)
        if self._failure is not None:
            job._end_input(self._failure)
        else:
            self._nursery.start_soon(job._feed)
        return job

    async def send_mail(
        self,
        sender: str | ReversePath,
        recipients: str | ForwardPath | Sequence[str | ForwardPath],
        body: Body,
        *,
        mail_params: MailParams | None = None,
        rcpt_params: RcptParams | Mapping[str, RcptParams] | None = None,
        transfer: Transfer = "auto",
        key: Hashable = None,
    ) -> Delivery:
        """Send one message through the pool; returns its `Delivery`.

        The arguments mean what `SMTPClient.send_mail`'s mean. Raises the
        pool's connect failure when no connection can be opened. When the
        caller is cancelled before the message started, it is not sent;
        after it started, the transaction completes in the pool (its fate
        is then in `statistics` and the audit trail), because cutting it
        short could leave its fate unknown.
        """
        self._check_open()
        message = Message(
            sender,
            recipients,
            body,
            mail_params=mail_params,
            rcpt_params=rcpt_params,
            transfer=transfer,
            key=key,
        )
        job = BulkJob(self, ())
        self._jobs.add(job)
        if self._failure is None:
            item = job._take_input(message)
            if item is not None:
                self._enqueue(item)
        job._end_input(self._failure)
        async for delivery in job:
            return delivery
        raise AssertionError("unreachable: a job of one message yields one delivery")

    def statistics(self) -> PoolStatistics:
        """A snapshot of the connections and of the messages handled so far."""
        states = Counter(conn.state for conn in self._connections)
        idle, busy = states[_ConnState.IDLE], states[_ConnState.BUSY]
        stats = self._stats
        return PoolStatistics(
            open=idle + busy,
            idle=idle,
            in_use=busy,
            connecting=states[_ConnState.CONNECTING],
            sent=stats[DeliveryStatus.DELIVERED.value],
            failed=sum(
                stats[s.value]
                for s in (DeliveryStatus.REJECTED, DeliveryStatus.DEFERRED, DeliveryStatus.UNKNOWN)
            ),
            not_sent=stats[DeliveryStatus.NOT_SENT.value],
            retried=stats["retried"],
            connections_opened=stats["connections_opened"],
            connect_failures=stats["connect_failures"],
        )

    @property
    def failure(self) -> SMTPError | None:
        """The connect failure that stopped the pool, or None."""
        return self._failure

    def __repr__(self) -> str:
        s = self.statistics()
        return (
            f"<SMTPPool open={s.open}/{self.max_connections} pending={len(self._pending)} "
            f"sent={s.sent} failed={s.failed}>"
        )

    # -- jobs and items -----------------------------------------------------------------

    def _check_open(self) -> None:
        if self._closing or self._closed:
            raise SMTPConnectionError("the pool is closed")

    def _count(self, status: DeliveryStatus) -> None:
        self._stats[status.value] += 1

    def _enqueue(self, item: _Item, *, front: bool = False) -> None:
        if front:
            self._pending.appendleft(item)
        else:
            self._pending.append(item)
        self._dispatch()

    def _finish(
        self,
        item: _Item,
        status: DeliveryStatus,
        outcome: SendOutcome | None = None,
        error: SMTPError | None = None,
        peer: str = "pool",
    ) -> None:
        delivery = Delivery(item.message.key, status, outcome, error, item.attempts)
        code = outcome.reply.code if outcome is not None else None
        if code is None and isinstance(error, SMTPReplyError):
            code = error.reply.code
        self._emit(
            "pool_delivery",
            peer,
            status=status.value,
            attempts=item.attempts,
            code=code,
            key=None if item.message.key is None else str(item.message.key),
        )
        item.job._settle(delivery)

    def _drop_pending(self, job: BulkJob | None) -> None:
        """Settle the queued messages of ``job`` (every job when None) without sending."""
        keep: deque[_Item] = deque()
        dropped: list[_Item] = []
        for item in self._pending:
            (dropped if job is None or item.job is job else keep).append(item)
        self._pending = keep
        for item in dropped:
            self._finish_unsent(item)

    def _finish_unsent(self, item: _Item, peer: str = "pool") -> None:
        """Settle a message that will not be tried (again) without sending it.

        Never tried, it is NOT_SENT (its error: the pool's failure, if that
        is why); tried before and waiting for a retry, it is DEFERRED.
        """
        if item.attempts > 0:
            self._finish(item, DeliveryStatus.DEFERRED, error=item.last_error, peer=peer)
        else:
            self._finish(item, DeliveryStatus.NOT_SENT, error=self._failure, peer=peer)

    def _take(self, conn: _Connection, first_of_stream: bool) -> _Item | None:
        """The next message for ``conn``, or None (no work, rate limit, replacement due)."""
        if not self._pending or self._closed:
            return None
        limit = self.max_messages_per_connection
        if limit is not None and conn.taken >= limit:
            return None
        if self._limiter is not None and not self._limiter.try_acquire(trio.current_time()):
            return None
        item = self._pending.popleft()
        item.attempts += 1
        item.reused_first = first_of_stream and conn.taken > 0
        conn.taken += 1
        return item

    def _give_back(self, conn: _Connection, item: _Item) -> None:
        """Undo the take of a message that never started (it was only planned ahead)."""
        item.attempts -= 1
        conn.taken -= 1
        if item.job.cancelled or self._failure is not None or self._closed:
            # What _drop_pending would have made of it, had it stayed queued.
            self._finish_unsent(item, peer=conn.peer)
            return
        # Its place was the front of the queue: it was next.
        self._enqueue(item, front=True)

    def _conclude(self, conn: _Connection, item: _Item, result: SendOutcome | SMTPError) -> None:
        """Turn one transaction's result into a delivery, or a retry."""
        client = conn.client
        status = _classify(result, lmtp=client is not None and client.is_lmtp)
        if status is not None:
            if status is DeliveryStatus.DELIVERED:
                assert isinstance(result, SendOutcome)
                self._finish(item, status, outcome=result, peer=conn.peer)
            else:
                assert isinstance(result, SMTPError)
                self._finish(item, status, error=result, peer=conn.peer)
            return
        assert isinstance(result, SMTPError)
        item.last_error = result
        stale = (
            item.reused_first
            and not item.free_retry_used
            and (_server_closing(result) or type(result) is SMTPConnectionError)
        )
        if stale:
            # The server had closed the idle connection (or was closing it):
            # reconnect, and do not count this against the message.
            item.free_retry_used = True
            item.attempts -= 1
        retry = (
            (stale or item.attempts < self.max_attempts)
            and not item.job.cancelled
            and self._failure is None
            and not self._closed
            and _replayable(item.message.body)
        )
        if not retry:
            self._finish(item, DeliveryStatus.DEFERRED, error=result, peer=conn.peer)
            return
        self._stats["retried"] += 1
        code = result.reply.code if isinstance(result, SMTPReplyError) else None
        self._emit("pool_retry", conn.peer, attempts=item.attempts, code=code, stale=stale)
        # Behind the queue: another connection is likely to take it.
        self._enqueue(item)

    # -- connections ------------------------------------------------------------------

    def _dispatch(self) -> None:
        """Wake idle connections for queued work, and open new ones up to the cap."""
        if self._failure is not None or self._closed or self._crashed:
            return
        waiting = len(self._pending)
        while waiting and self._idle:
            conn = self._idle.popleft()
            conn.wakeup.set()
            waiting -= 1
        connecting = sum(1 for c in self._connections if c.state is _ConnState.CONNECTING)
        waiting -= connecting
        while waiting > 0 and len(self._connections) < self._cap:
            self._numbers += 1
            conn = _Connection(self._numbers)
            self._connections.add(conn)
            self._nursery.start_soon(self._run_connection, conn)
            waiting -= 1

    async def _run_connection(self, conn: _Connection) -> None:
        """One connection's life: connect, serve queued messages, close."""
        reason = "done"
        try:
            try:
                manager = self._connect()
                client = await manager.__aenter__()
            except (SMTPError, OSError) as exc:
                self._connect_failed(conn, exc)
                return
            try:
                conn.client = client
                conn.state = _ConnState.BUSY
                self._stats["connections_opened"] += 1
                self._cap = self.max_connections
                self._emit("pool_connected", client.peer, connection=conn.number)
                reason = await self._serve(conn, client)
            except BaseException as exc:
                reason = "error"
                if not await manager.__aexit__(type(exc), exc, exc.__traceback__):
                    raise
            else:
                await manager.__aexit__(None, None, None)
        except BaseException:
            self._crashed = True
            raise
        finally:
            self._connection_gone(conn, reason)

    def _connect_failed(self, conn: _Connection, exc: SMTPError | OSError) -> None:
        error = exc if isinstance(exc, SMTPError) else SMTPConnectionError(str(exc))
        if error is not exc:
            error.__cause__ = exc
        self._stats["connect_failures"] += 1
        self._emit("pool_connect_failed", "pool", error=type(error).__name__)
        self._connections.discard(conn)
        others = len(self._connections)
        if others == 0:
            # Nothing works: fail the pool once, instead of looping.
            self._failure = error
            self._drop_pending(None)
            for job in list(self._jobs):
                job._feed_scope.cancel()
        else:
            self._cap = max(1, others)

    def _connection_gone(self, conn: _Connection, reason: str) -> None:
        if conn in self._connections:
            self._connections.discard(conn)
            if conn in self._idle:
                self._idle.remove(conn)
            if conn.client is not None:
                self._emit("pool_closed", conn.client.peer, connection=conn.number, reason=reason)
        if not self._closed:
            self._dispatch()

    async def _serve(self, conn: _Connection, client: SMTPClient) -> str:
        """Send queued messages over ``client`` until it must close; says why it closed."""
        while True:
            if not self._pending:
                if self._closing or self._closed:
                    return "pool closing"
                conn.state = _ConnState.IDLE
                conn.wakeup = trio.Event()
                self._idle.append(conn)
                await conn.wakeup.wait()
                if conn in self._idle:
                    self._idle.remove(conn)
                conn.state = _ConnState.BUSY
                continue
            limit = self.max_messages_per_connection
            if limit is not None and conn.taken >= limit:
                return "max_messages_per_connection"
            if conn.taken > 0 and client.idle_connection_closed():
                # Closed by the server while idle (or a 421 is waiting):
                # reconnect, not an error.
                return "closed while idle"
            if self._limiter is not None:
                wait = self._limiter.delay(trio.current_time())
                if wait > 0:
                    await trio.sleep(wait)
                    continue
            if client.is_closed:
                return "closed"
            try:
                clean = await self._run_stream(conn, client)
            except SMTPConnectionError:
                return "unusable"  # _check_usable refused before any message was taken
            except Exception as exc:
                # A body stream's own error: its message was concluded (not
                # sent, or unknown), and the connection was aborted.
                logger.warning("pool: a send failed with %r; connection discarded", exc)
                return f"error: {type(exc).__name__}"
            if not clean or client.is_closed or client.state is not SessionState.READY:
                # Not provably clean: never reused.
                return "unclean"

    async def _run_stream(self, conn: _Connection, client: SMTPClient) -> bool:
        """One `SMTPClient._send_stream` over ``conn``: queued messages in, deliveries out."""
        # By the stream's numbering, and dropped once concluded: a stream can
        # last the whole job, and keeping every item would keep every body.
        in_flight: dict[int, _Item] = {}
        taken = 0

        def take() -> Message | None:
            nonlocal taken
            item = self._take(conn, first_of_stream=taken == 0)
            if item is None:
                return None
            in_flight[taken] = item
            taken += 1
            return item.message

        def conclude(number: int, result: SendOutcome | SMTPError) -> None:
            self._conclude(conn, in_flight.pop(number), result)

        def give_back(number: int) -> None:
            self._give_back(conn, in_flight.pop(number))

        return await client._send_stream(take, conclude, give_back)

    def _emit(self, kind: str, peer: str, **details: str | int | bool | None) -> None:
        if self._audit is not None:
            self._audit(AuditEvent(kind, peer, details))

    def _close_gracefully(self) -> None:
        """Leaving the pool: cancel unfinished jobs; connections finish and QUIT."""
        self._closing = True
        for job in list(self._jobs):
            job.cancel()
        for conn in list(self._idle):
            conn.wakeup.set()

    def _finalize(self) -> None:
        """After the nursery: whatever is still queued was never started."""
        self._closing = self._closed = True
        self._drop_pending(None)
        for job in list(self._jobs):
            job._end_input()


@asynccontextmanager
async def open_pool(
    connect: Connect,
    *,
    max_connections: int = 4,
    max_messages_per_connection: int | None = None,
    rate_limit: float | None = None,
    max_attempts: int = DEFAULT_MAX_ATTEMPTS,
    audit: AuditHook | None = None,
) -> AsyncIterator[SMTPPool]:
    """Run an `SMTPPool` for the duration of the block.

    ``connect`` is a zero-argument callable returning an async context
    manager that yields a ready (connected, logged-in) `SMTPClient`, for
    example ``functools.partial(open_smtp, host, tls=STARTTLS)``, or your
    own ``@asynccontextmanager`` that also logs in.

    ``max_connections`` is a hard cap on connections open or being opened.
    A connection is replaced after ``max_messages_per_connection`` messages.
    ``rate_limit`` (messages per second, across all connections) is
    enforced before each send. A message whose failure is safe to retry (a
    4xx reply, or a connection lost before its end of data) is tried up to
    ``max_attempts`` times in all, never after its end of data left.
    ``audit`` receives pool events (``pool_connected``,
    ``pool_connect_failed``, ``pool_closed``, ``pool_retry``,
    ``pool_delivery``) as `AuditEvent` values, never message content.

    Leaving the block normally cancels unfinished jobs (see `BulkJob`),
    lets started messages finish and closes the connections with QUIT. An
    exception or a cancellation stops everything at once: messages in
    flight are then UNKNOWN or DEFERRED as their end of data had left or
    not. An exception raised in the block comes out as itself.
    """
    if max_connections < 1:
        raise InvalidInputError("max_connections must be at least 1")
    if max_messages_per_connection is not None and max_messages_per_connection < 1:
        raise InvalidInputError("max_messages_per_connection must be at least 1 or None")
    if rate_limit is not None and not rate_limit > 0:
        raise InvalidInputError("rate_limit must be a positive number of messages per second")
    if max_attempts < 1:
        raise InvalidInputError("max_attempts must be at least 1")
    body_error: Exception | None = None
    pool: SMTPPool | None = None
    try:
        async with trio.open_nursery() as nursery:
            pool = SMTPPool(
                nursery,
                connect,
                max_connections=max_connections,
                max_messages_per_connection=max_messages_per_connection,
                rate_limit=rate_limit,
                max_attempts=max_attempts,
                audit=audit,
            )
            try:
                yield pool
            except Exception as exc:
                # Re-raised below, outside the nursery, so the caller sees its
                # own exception rather than an ExceptionGroup around it.
                body_error = exc
                nursery.cancel_scope.cancel()
            else:
                pool._close_gracefully()
    finally:
        if pool is not None:
            pool._finalize()
    if body_error is not None:
        raise body_error
