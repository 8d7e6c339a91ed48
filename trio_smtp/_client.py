"""`SMTPClient`: the trio layer over the sans-IO session; `open_smtp` / `open_lmtp`.

This module only moves bytes between a `trio.abc.Stream` and
`ClientSession`, and owns what the core cannot: TLS upgrades, cancellation,
and turning lost connections into definite outcomes. Every operation runs
under one `trio.StrictFIFOLock`; any failure or cancellation while bytes are
in flight closes the stream and leaves the client BROKEN, because the
protocol state is then unknown.
"""

from __future__ import annotations

import contextlib
import copy
import email.policy
import email.utils
import enum
import functools
import ipaddress
import os
import select
import socket
import ssl
from collections.abc import (
    AsyncIterable,
    AsyncIterator,
    Callable,
    Hashable,
    Iterable,
    Mapping,
    Sequence,
)
from contextlib import asynccontextmanager
from dataclasses import KW_ONLY, dataclass, replace
from email.message import Message as EmailMessageBase
from typing import Any, Literal, NoReturn

import trio

from ._body import AsyncReadable, BodySource, Progress, body_source, report_progress
from ._core.address import ForwardPath, ReversePath
from ._core.capabilities import Capabilities
from ._core.commands import (
    Command,
    Data,
    Ehlo,
    Expn,
    Helo,
    Help,
    Lhlo,
    Mail,
    MailParams,
    Noop,
    Quit,
    Rcpt,
    RcptParams,
    Rset,
    SmtpOp,
    StartTLS,
    Vrfy,
)
from ._core.dotstuff import NewlineNormalizer
from ._core.errors import (
    AuthRejected,
    ExtensionUnavailable,
    InvalidInputError,
    MessageTooLarge,
    OutcomeUnknown,
    PolicyError,
    RecipientsRefused,
    SMTPConnectionError,
    SMTPError,
    SMTPReplyError,
    TLSHandshakeError,
    UnsupportedMechanism,
)
from ._core.reply import Reply
from ._core.sasl import AuthMechanism, choose_mechanism, exchange_for
from ._core.session import NEED_DATA, ClientSession, ConnectionClosed, Response, SessionState
from ._outcome import LMTPOutcome, SendOutcome, queue_id_from
from ._policy import AuditEvent, AuditHook, Policy, logger
from ._tls import default_context, require_verifying
from .mime import ComposedMessage

__all__ = [
    "IMPLICIT",
    "PLAINTEXT",
    "STARTTLS",
    "Body",
    "Message",
    "SMTPClient",
    "TLSMode",
    "Transfer",
    "open_lmtp",
    "open_smtp",
]


class TLSMode(enum.Enum):
    """How the connection is protected."""

    #: TLS from the first byte (port 465, RFC 8314): the default.
    IMPLICIT = "implicit"
    #: Plaintext greeting, then STARTTLS, required: no STARTTLS means no mail.
    STARTTLS = "starttls"
    #: No TLS at all: an explicit opt-in, for loopback and unix sockets.
    PLAINTEXT = "plaintext"


IMPLICIT = TLSMode.IMPLICIT
STARTTLS = TLSMode.STARTTLS
PLAINTEXT = TLSMode.PLAINTEXT

_DEFAULT_PORTS = {TLSMode.IMPLICIT: 465, TLSMode.STARTTLS: 587, TLSMode.PLAINTEXT: 25}

Body = (
    bytes
    | bytearray
    | memoryview
    | str
    | trio.abc.ReceiveStream
    | os.PathLike[str]
    | AsyncReadable
    | AsyncIterable[bytes]
)
Transfer = Literal["auto", "data", "bdat"]

#: Bytes asked of the transport per read.
RECEIVE_SIZE = 64 * 1024
#: Bytes asked of a body stream per read.
BODY_READ_SIZE = 256 * 1024
#: BDAT chunk size for streamed bodies, and the largest in-memory body sent
#: as a single pipelined ``BDAT n LAST``.
BDAT_CHUNK_SIZE = 1024 * 1024
#: BDAT chunks sent ahead of their replies: enough to keep the pipe full,
#: few enough that unread replies never fill the server's send buffer.
BDAT_WINDOW = 2
#: A BDAT chunk smaller than this is joined to its command line for one
#: write; a larger one is written piece by piece behind it, uncopied.
_JOIN_BELOW = 64 * 1024


_NO_MAIL_PARAMS = MailParams()
_RSET = Rset()
_NO_RCPT_PARAMS = RcptParams()


@dataclass(frozen=True)
class Message:
    """One message to send with `SMTPClient.send_batch`.

    The fields mean what `SMTPClient.send_mail`'s arguments mean; ``key`` is
    the caller's own tag for the message, carried along untouched.
    """

    sender: str | ReversePath
    recipients: str | ForwardPath | Sequence[str | ForwardPath]
    body: Body
    _: KW_ONLY
    mail_params: MailParams | None = None
    rcpt_params: RcptParams | Mapping[str, RcptParams] | None = None
    transfer: Transfer = "auto"
    key: Hashable = None


# Not frozen, to spare each message the cost of a frozen construction; a
# plan is never changed once made.
@dataclass(slots=True)
class _Plan:
    """A validated transaction: everything is checked before the first byte."""

    mail: Mail
    rcpts: tuple[Rcpt, ...]
    payload: bytes | None
    stream: BodySource | None
    use_bdat: bool
    binary: bool
    progress: Progress | None = None

    @property
    def total(self) -> int | None:
        """The body's octets, when known: what progress reports count towards."""
        return len(self.payload) if self.payload is not None else self.stream.length  # type: ignore[union-attr]


class _Feed:
    """The messages a pipelined stream sends, and the work it does while replies travel.

    ``next()`` hands out the next message's plan. ``waiting()`` is called
    once a message's end of data (and whatever rides with it) is written:
    the reply is a round trip away, so the previous message's result is
    settled and the message after the chained one is planned now, off the
    path from a reply to the next write.
    """

    def __init__(self, plan_next: Callable[[], _Plan | None], settle: Callable[[], None]) -> None:
        self._plan_next = plan_next
        self._settle = settle
        #: The plan made by `waiting` and not yet handed out: nothing of it
        #: was written. Every other plan taken may have its opening out.
        self.planned_ahead: _Plan | None = None

    def next(self) -> _Plan | None:
        plan, self.planned_ahead = self.planned_ahead, None
        return plan if plan is not None else self._plan_next()

    def waiting(self) -> None:
        self._settle()
        if self.planned_ahead is None:
            # None is not kept: more work may be there by the time it is asked for.
            self.planned_ahead = self._plan_next()


class SMTPClient:
    """A connection to an SMTP or LMTP server.

    Get one from `open_smtp`, `open_lmtp` or `SMTPClient.from_stream`. One
    client may be shared by many tasks: operations are serialised in FIFO
    order. No method takes a timeout: bound them with trio cancel scopes.
    """

    def __init__(
        self,
        stream: trio.abc.Stream,
        *,
        lmtp: bool,
        tls: TLSMode,
        ssl_context: ssl.SSLContext | None,
        server_hostname: str | None,
        local_hostname: str | None,
        policy: Policy | None,
        audit: AuditHook | None,
        peer: str,
        peer_is_local: bool,
    ) -> None:
        """Use `open_smtp`, `open_lmtp` or `from_stream`: this does no I/O."""
        self._stream = stream
        self._tls_mode = tls
        self._ssl_context = require_verifying(ssl_context) if ssl_context is not None else None
        self._server_hostname = server_hostname
        self._local_hostname = local_hostname
        self._policy = policy
        self._audit = audit
        self._peer = peer
        self._peer_is_local = peer_is_local
        self._session = ClientSession(lmtp=lmtp, tls_active=isinstance(stream, trio.SSLStream))
        self._lock = trio.StrictFIFOLock()
        self._broken = False
        self._closed = False
        # Set between writing the end of data and reading its reply: a
        # connection lost then leaves the message's fate unknown.
        self._awaiting_final = False
        # RFC 3030 does not say a refused BDAT LAST ends the server's
        # transaction, so the next one starts with RSET: in the same flight
        # when chained behind a LAST (see `_opening`), or as a round trip of
        # its own after a LAST that was refused (this flag).
        self._reset_due = False

    # -- construction -----------------------------------------------------

    @classmethod
    async def from_stream(
        cls,
        stream: trio.abc.Stream,
        *,
        tls: TLSMode,
        lmtp: bool = False,
        ssl_context: ssl.SSLContext | None = None,
        server_hostname: str | None = None,
        local_hostname: str | None = None,
        policy: Policy | None = None,
        audit: AuditHook | None = None,
        peer_is_local: bool = False,
    ) -> SMTPClient:
        """Drive a stream the caller already has (a proxy tunnel, a test stream).

        Reads the greeting, says EHLO (or LHLO), and upgrades as ``tls``
        asks: IMPLICIT wraps the stream in TLS first, even a socket the
        caller thinks secure (SECURITY 41); STARTTLS requires the upgrade.
        ``server_hostname`` is the name the certificate must match.
        ``peer_is_local`` vouches that the stream reaches this machine, which
        allows `login` without TLS; sockets are inspected instead. The caller
        owns the result: ``async with client:`` or `aclose` it.
        """
        if tls is not TLSMode.PLAINTEXT and server_hostname is None:
            raise InvalidInputError("TLS needs server_hostname: the name to verify")
        client = cls(
            stream,
            lmtp=lmtp,
            tls=tls,
            ssl_context=ssl_context,
            server_hostname=server_hostname,
            local_hostname=local_hostname,
            policy=policy,
            audit=audit,
            peer=_describe_peer(stream),
            peer_is_local=peer_is_local or _is_local_stream(stream),
        )
        await client._start()
        return client

    async def __aenter__(self) -> SMTPClient:
        return self

    async def __aexit__(self, exc_type: object, exc: object, traceback: object) -> None:
        if exc is None:
            await self.aclose()
        else:
            await self._abort()

    # -- what callers can see ---------------------------------------------

    @property
    def capabilities(self) -> Capabilities:
        """The extensions from the last EHLO/LHLO (after TLS, when TLS is used)."""
        capabilities = self._session.capabilities
        return capabilities if capabilities is not None else Capabilities.none()

    @property
    def state(self) -> SessionState:
        return SessionState.BROKEN if self._broken else self._session.state

    @property
    def is_authenticated(self) -> bool:
        return self._session.is_authenticated

    @property
    def is_closed(self) -> bool:
        return self._closed or self._broken

    @property
    def is_tls(self) -> bool:
        """True when the connection is protected by verified TLS."""
        return self._session.tls_active

    @property
    def is_lmtp(self) -> bool:
        return self._session.lmtp

    @property
    def peer(self) -> str:
        return self._peer

    @property
    def awaiting_final_reply(self) -> bool:
        """True from writing an end of data until its reply has been read.

        Still True after a call was cancelled or failed in that window: the
        message it carried may have been delivered, so a pool or a retry
        loop must count it as unknown, never resend it.
        """
        return self._awaiting_final

    def idle_connection_closed(self) -> bool:
        """True when the connection cannot be reused without first reading.

        It is closed, or the server has sent something unprompted (a 421
        before closing, or its end of stream). Only meaningful between
        operations; polls the socket without blocking.
        """
        if self.is_closed:
            return True
        if self._lock.locked():
            return False  # bytes arriving now are the running operation's replies
        sock = getattr(_transport(self._stream), "socket", None)
        if sock is None or not hasattr(select, "poll"):
            return False  # a memory stream, or no poll: trust the next reply
        try:
            poller = select.poll()
            poller.register(sock.fileno(), select.POLLIN)
            return bool(poller.poll(0))
        except (OSError, ValueError):
            return True  # the descriptor is gone: nothing can be sent over it

    def __repr__(self) -> str:
        mode = "LMTP" if self.is_lmtp else "SMTP"
        tls = "TLS" if self.is_tls else "plaintext"
        return f"<SMTPClient {mode} {self._peer} {tls} {self.state.name}>"

    # -- connection set-up --------------------------------------------------

    async def _start(self) -> None:
        try:
            self._emit("connected", tls_mode=self._tls_mode.value)
            if self._tls_mode is TLSMode.IMPLICIT and not self._session.tls_active:
                await self._handshake()
                # Nothing was read before the handshake: the session starts
                # afresh, knowing it runs over TLS.
                self._session = ClientSession(lmtp=self.is_lmtp, tls_active=True)
            greeting = await self._response()
            if not greeting.reply.is_positive:
                if greeting.reply.code != 421:
                    await self._polite_quit()  # RFC 5321 3.1: the server waits for QUIT
                raise SMTPReplyError(greeting.reply, SmtpOp.GREETING)
            await self._hello()
            if self._tls_mode is TLSMode.STARTTLS and not self._session.tls_active:
                await self._starttls()
                await self._hello()
        except BaseException:
            await self._abort()
            raise

    async def _hello(self) -> None:
        name = self._local_hostname or self._default_local_hostname()
        command: Command = Lhlo(name) if self.is_lmtp else Ehlo(name)
        reply = await self._command(command)
        if reply.is_positive:
            self._emit("ehlo", esmtp=True, extensions=len(self.capabilities.keywords))
            return
        # RFC 5321 4.1.4: HELO when EHLO is refused, but only without TLS
        # requirements: a refused EHLO must never strip STARTTLS (SECURITY 5).
        if self.is_lmtp or not reply.is_permanent or self._tls_mode is not TLSMode.PLAINTEXT:
            raise SMTPReplyError(reply, command.op)
        helo = await self._command(Helo(name))
        if not helo.is_positive:
            raise SMTPReplyError(helo, SmtpOp.HELO)
        self._emit("ehlo", esmtp=False, extensions=0)

    async def _starttls(self) -> None:
        if not self.capabilities.starttls:
            # Fail closed (SECURITY 3): never go on in plaintext.
            raise ExtensionUnavailable("STARTTLS", "the server does not offer STARTTLS")
        reply = await self._command(StartTLS())
        if reply.code != 220:
            raise SMTPReplyError(reply, SmtpOp.STARTTLS)
        await self._handshake()
        self._session.tls_established()

    async def _handshake(self) -> None:
        context = self._ssl_context or default_context()
        hostname = self._server_hostname
        if hostname is None:
            raise InvalidInputError("TLS needs server_hostname: the name to verify")
        tls_stream = trio.SSLStream(self._stream, context, server_hostname=hostname)
        try:
            await tls_stream.do_handshake()
        except trio.BrokenResourceError as exc:
            cause = exc.__cause__
            reason = getattr(cause, "verify_message", None) or str(cause or exc)
            raise TLSHandshakeError(f"TLS handshake with {self._peer} failed: {reason}") from exc
        self._stream = tls_stream
        version = tls_stream.version() if hasattr(tls_stream, "version") else None
        self._emit("tls", version=str(version), server_hostname=hostname)

    def _default_local_hostname(self) -> str:
        name = _local_fqdn()
        if name is not None:
            return name
        # RFC 5321 4.1.4: with no usable name, an address literal.
        sock = getattr(_transport(self._stream), "socket", None)
        try:
            sockname = sock.getsockname() if sock is not None else None
        except OSError:
            sockname = None
        address = sockname[0] if isinstance(sockname, tuple) else None
        if isinstance(address, str):
            try:
                ip = ipaddress.ip_address(address)
            except ValueError:
                return "localhost"
            return f"[IPv6:{ip}]" if ip.version == 6 else f"[{ip}]"
        return "localhost"

    # -- authentication ----------------------------------------------------

    async def login(self, user: str, password: str) -> Reply:
        """Authenticate with the best offered of PLAIN, then LOGIN."""
        mechanism = choose_mechanism(self.capabilities.auth)
        if mechanism is None:
            await trio.lowlevel.checkpoint()
            offered = ", ".join(sorted(self.capabilities.auth)) or "none"
            raise UnsupportedMechanism(
                f"the server offers neither PLAIN nor LOGIN (offers: {offered})"
            )
        return await self.login_with(mechanism, user, password)

    async def login_xoauth2(self, user: str, token: str) -> Reply:
        """Authenticate with an OAuth 2.0 bearer token (Google/Microsoft XOAUTH2)."""
        return await self.login_with(AuthMechanism.XOAUTH2, user, token)

    async def login_oauthbearer(self, user: str, token: str) -> Reply:
        """Authenticate with an OAuth 2.0 bearer token (RFC 7628 OAUTHBEARER)."""
        return await self.login_with(AuthMechanism.OAUTHBEARER, user, token)

    async def login_with(
        self,
        mechanism: AuthMechanism,
        user: str,
        credential: str,
        *,
        authzid: str | None = None,
    ) -> Reply:
        """Authenticate with one named mechanism; returns the 235 reply.

        Raises `AuthRejected` when the server refuses (``reply.code`` tells a
        permanent 535 from a temporary 454), `UnsupportedMechanism` when it
        is not offered, and `PolicyError` when the connection is plaintext to
        a peer that is not this machine (SECURITY 32).
        """
        async with self._lock:
            self._check_usable()
            if not self.is_tls and not self._peer_is_local:
                raise PolicyError(
                    "refusing to send credentials without TLS to a peer that is not local"
                )
            exchange = exchange_for(
                mechanism,
                user,
                credential,
                authzid=authzid,
                host=self._server_hostname,
                port=_peer_port(self._stream),
            )
            response = await self._roundtrip(exchange.start())
            while response.reply.code == 334:
                response = await self._roundtrip(exchange.respond(response.reply))
            reply = response.reply
            succeeded = reply.code == 235
            self._emit("auth", mechanism=mechanism.value, code=reply.code, succeeded=succeeded)
            if not succeeded:
                detail = exchange.error_detail or exchange.cancel_reason
                raise AuthRejected(
                    reply,
                    SmtpOp.AUTH,
                    f"{mechanism.value} authentication failed: {reply}",
                    detail=detail,
                )
            return reply

    # -- sending ------------------------------------------------------------

    async def send_mail(
        self,
        sender: str | ReversePath,
        recipients: str | ForwardPath | Iterable[str | ForwardPath],
        body: Body,
        *,
        mail_params: MailParams | None = None,
        rcpt_params: RcptParams | Mapping[str, RcptParams] | None = None,
        transfer: Transfer = "auto",
        progress: Progress | None = None,
    ) -> SendOutcome:
        """Send one message; returns its `SendOutcome` (`LMTPOutcome` over LMTP).

        ``body`` is bytes-like, str (UTF-8), or a source read in chunks and
        never held whole: a `trio.abc.ReceiveStream` (such as a
        `trio_smtp.mime` message), a `pathlib.Path`, a trio async file, or an
        async iterable of bytes. The next chunk is read only once the last
        one was written, so memory stays bounded whatever the size. Bare CR
        and LF become CRLF. BDAT is used when the server offers CHUNKING
        (``transfer="auto"``), else DATA with dot-stuffing. SMTPUTF8 and
        8BITMIME are declared when the addresses or body need them, and SIZE
        when the length is known (bytes, paths, streams with a ``length``).

        ``progress``, a callable taking ``(octets_sent, total_or_None)`` or a
        trio-util `AsyncValue`, hears of the body octets written so far.

        Everything is validated before the first byte is written. Raises
        `RecipientsRefused` when no recipient is accepted (the connection is
        then reset and still usable), `SMTPReplyError` when the server refuses
        the message, and `OutcomeUnknown` when the connection is lost after
        the end of data.
        """
        await self._acquire()
        try:
            try:
                self._check_usable()
                plan = self._plan(
                    sender, recipients, body, mail_params, rcpt_params, transfer, progress
                )
            except BaseException:
                # Failing before any I/O must still yield, like every checkpoint.
                await trio.lowlevel.cancel_shielded_checkpoint()
                raise
            result, _ = await self._transact(plan)
        finally:
            self._lock.release()
        if isinstance(result, SMTPReplyError):
            raise result
        return result

    async def send_batch(self, messages: Iterable[Message]) -> list[SendOutcome | SMTPError]:
        """Send several messages, each pipelined behind the previous one's end of data.

        With PIPELINING, the next message's MAIL, RCPT and DATA travel in the
        same write as the previous message's end of data (RFC 2920 3.1), so
        each message costs one round trip. Returns one result per message, in
        order: its `SendOutcome`, or the error that stopped it: the input
        errors `send_mail` raises (`InvalidInputError`, `PolicyError`,
        `ExtensionUnavailable`), or the server's refusal (`SMTPReplyError`,
        `RecipientsRefused`), after which the batch goes on. When the
        connection fails, every message whose end of data may have left gets
        `OutcomeUnknown`: the one in flight, and with BDAT a small message
        chained whole behind it. Every other message gets an
        `SMTPConnectionError` saying it was never sent, and the client is
        then closed or broken. Bodies are planned at most two messages
        ahead, never all at once. A body chained behind a failed message and
        never sent is still closed; one only planned ahead is left as given.
        Cancellation propagates, and leaves the client broken if it struck
        mid-exchange.
        """
        results: dict[int, SendOutcome | SMTPError] = {}
        pending = iter(messages)
        never_sent = SMTPConnectionError("not sent: the connection failed before this message")

        def give_back(number: int) -> None:
            results[number] = never_sent

        clean = await self._send_stream(lambda: next(pending, None), results.__setitem__, give_back)
        if not clean:
            # Every message taken got its result, OutcomeUnknown included for
            # one whose end of data may have left; the rest never started.
            for index, _ in enumerate(pending, start=len(results)):
                results[index] = never_sent
        return [results[number] for number in sorted(results)]

    async def _send_stream(
        self,
        take: Callable[[], Message | None],
        conclude: Callable[[int, SendOutcome | SMTPError], None],
        give_back: Callable[[int], None],
    ) -> bool:
        """Send messages from ``take`` over this client, pipelined, concluding each once.

        ``take()`` is asked (synchronously) whenever another message can start
        or be chained behind an end of data, and once more while a reply is
        awaited, so that the next message is planned before it is needed;
        None means "nothing more now", and the call returns once every taken
        message is concluded. ``conclude(n, result)`` is called exactly once
        for the n-th message taken (counting from 0): the outcome or the
        error. An `OutcomeUnknown` result means the message's end of data may
        have left; any other connection error means it did not. A result is
        reported once the next write is out (or at once when none follows),
        in the order the messages were taken. A message planned ahead and
        never started, because a failure or cancellation ended the stream,
        goes to ``give_back(n)`` instead: nothing of it was written, and its
        body was not touched.

        Returns True when the stream ended because ``take`` had nothing more
        and nothing is outstanding, False when a failure ended it: every
        taken message is then concluded and the connection is closed (aborted
        if a chained message's replies were still due). Anything else that
        escapes (cancellation, a body stream's own error) concludes every
        taken message in a ``finally`` and propagates.
        """
        async with self._lock:
            self._check_usable()
            # Taken and not yet concluded: plan identity -> (number, one-shot, plan).
            open_plans: dict[int, tuple[int, bool, _Plan]] = {}
            taken = 0
            # Set when the server said 421/221 over SMTP: nothing behind the
            # command it answered was processed, so nothing left is unknown.
            server_closed = False
            # Results known but not yet reported: reporting waits for the
            # next write, so that it costs no time between a reply and that write.
            unsettled: list[tuple[int, SendOutcome | SMTPError]] = []

            def settle() -> None:
                while unsettled:
                    conclude(*unsettled.pop(0))

            def plan_next() -> _Plan | None:
                nonlocal taken
                while (message := take()) is not None:
                    number = taken
                    taken += 1
                    try:
                        plan = self._plan(
                            message.sender,
                            message.recipients,
                            message.body,
                            message.mail_params,
                            message.rcpt_params,
                            message.transfer,
                        )
                    except (InvalidInputError, PolicyError, ExtensionUnavailable) as exc:
                        settle()
                        conclude(number, exc)
                        continue
                    open_plans[id(plan)] = (number, self._one_shot(plan), plan)
                    return plan
                return None

            feed = _Feed(plan_next, settle)
            current: _Plan | None = None
            try:
                current, opened = feed.next(), False
                while current is not None:
                    try:
                        result, following = await self._transact(current, opened=opened, feed=feed)
                    except SMTPError as exc:
                        number, _, _ = open_plans.pop(id(current))
                        current = None
                        if _server_closing(exc) and not self.is_lmtp:
                            server_closed = True
                        elif not isinstance(exc, (OutcomeUnknown, SMTPReplyError)) and (
                            self.awaiting_final_reply
                        ):
                            unknown = OutcomeUnknown(f"after the end of data: {exc}")
                            unknown.__cause__ = exc
                            exc = unknown
                        settle()
                        conclude(number, exc)
                        if not self.is_closed and any(
                            plan is not feed.planned_ahead for _, _, plan in open_plans.values()
                        ):
                            # A chained message's replies would be paired with
                            # the wrong commands: the state is unknown.
                            await self._abort()
                        if self.is_closed:
                            return False
                        current, opened = feed.next(), False
                        continue
                    number, _, _ = open_plans.pop(id(current))
                    if following is not None:
                        unsettled.append((number, result))
                        current, opened = following, True
                    else:
                        settle()
                        conclude(number, result)
                        current, opened = feed.next(), False
                return True
            except BaseException:
                # Raised by the caller's input or callbacks, between the
                # exchanges that abort for themselves: with replies due or
                # a transaction open, the connection's state is unknown.
                if not self.is_closed and (
                    self._session.awaiting or self._session.state is not SessionState.READY
                ):
                    await self._abort()
                raise
            finally:
                settle()
                # Whatever ended the stream, every taken message gets its one
                # result, or is given back when it never started.
                for plan_id, (number, one_shot, plan) in list(open_plans.items()):
                    if plan is feed.planned_ahead:
                        del open_plans[plan_id]
                        give_back(number)
                        continue
                    # Chained behind the current one, a small message's only
                    # BDAT chunk went with it.
                    may_have_left = self.awaiting_final_reply if plan is current else one_shot
                    if may_have_left and not server_closed:
                        conclude(number, OutcomeUnknown())
                    else:
                        conclude(
                            number,
                            SMTPConnectionError(
                                "not sent: the connection ended before its end of data"
                            ),
                        )
                # Chained behind a failure or a cancellation and never run:
                # what their bodies opened is closed here (idempotent for the
                # current one, which _transact closed already).
                for _, _, plan in open_plans.values():
                    await _release(plan)

    async def send_message(
        self,
        message: EmailMessageBase | ComposedMessage,
        *,
        sender: str | ReversePath | None = None,
        recipients: Iterable[str | ForwardPath] | None = None,
        mail_params: MailParams | None = None,
        rcpt_params: RcptParams | Mapping[str, RcptParams] | None = None,
        transfer: Transfer = "auto",
        progress: Progress | None = None,
    ) -> SendOutcome:
        """Send an `email.message.EmailMessage`, taking the envelope from its headers.

        As smtplib does: the sender from Sender, else From (or the Resent-
        headers of the newest resend block); recipients from To, Cc and Bcc
        (or their Resent- forms). Bcc and Resent-Bcc are removed from what
        is sent. SMTPUTF8 is used when an address needs it.

        A `trio_smtp.mime.ComposedMessage` is streamed as it is composed,
        with its From as the sender and its To and Cc as the recipients
        (it has no Bcc: pass blind recipients in ``recipients``).
        """
        if isinstance(message, ComposedMessage):
            return await self.send_mail(
                sender if sender is not None else message.envelope_sender,
                list(recipients) if recipients is not None else message.envelope_recipients,
                message,
                mail_params=mail_params,
                rcpt_params=rcpt_params,
                transfer=transfer,
                progress=progress,
            )
        envelope_sender, envelope_recipients = _envelope_from_headers(message)
        if sender is None:
            sender = envelope_sender
        if recipients is None:
            recipients = envelope_recipients
        if sender is None:
            await trio.lowlevel.checkpoint()
            raise InvalidInputError("the message has no Sender or From header; pass sender=")
        reverse = sender if isinstance(sender, ReversePath) else ReversePath(sender)
        forwards = [r if isinstance(r, ForwardPath) else ForwardPath(r) for r in recipients]
        international = reverse.needs_smtputf8 or any(f.needs_smtputf8 for f in forwards)
        stripped = copy.copy(message)
        del stripped["Bcc"]
        del stripped["Resent-Bcc"]
        policy = message.policy
        if international:
            # SMTPUTF8 (RFC 6531) lets the headers carry UTF-8 as is.
            if not isinstance(policy, email.policy.EmailPolicy):
                await trio.lowlevel.checkpoint()
                raise InvalidInputError(
                    "non-ASCII addresses need a message with an email.policy.EmailPolicy"
                )
            policy = policy.clone(utf8=True)
        payload = stripped.as_bytes(policy=policy.clone(linesep="\r\n"))
        return await self.send_mail(
            reverse,
            forwards,
            payload,
            mail_params=mail_params,
            rcpt_params=rcpt_params,
            transfer=transfer,
            progress=progress,
        )

    def _plan(
        self,
        sender: str | ReversePath,
        recipients: str | ForwardPath | Iterable[str | ForwardPath],
        body: Body,
        mail_params: MailParams | None,
        rcpt_params: RcptParams | Mapping[str, RcptParams] | None,
        transfer: Transfer,
        progress: Progress | None = None,
    ) -> _Plan:
        reverse = sender if isinstance(sender, ReversePath) else ReversePath(sender)
        if isinstance(recipients, (str, ForwardPath)):
            recipients = [recipients]
        forwards = tuple(r if isinstance(r, ForwardPath) else ForwardPath(r) for r in recipients)
        if not forwards:
            raise InvalidInputError("a message needs at least one recipient")
        if transfer not in ("auto", "data", "bdat"):
            raise InvalidInputError(f"transfer must be 'auto', 'data' or 'bdat', not {transfer!r}")
        capabilities = self.capabilities
        params = mail_params if mail_params is not None else _NO_MAIL_PARAMS
        if not isinstance(params, MailParams):
            raise InvalidInputError("mail_params must be a MailParams")
        binary = params.body == "BINARYMIME"
        use_bdat = binary or transfer == "bdat" or (transfer == "auto" and capabilities.chunking)
        if use_bdat and transfer == "data":
            raise InvalidInputError("BODY=BINARYMIME needs BDAT; it cannot go through DATA")
        if use_bdat and not capabilities.chunking:
            raise ExtensionUnavailable("CHUNKING")
        # Parameters the client fills in itself, applied in one replace().
        implied: dict[str, Any] = {}
        if not params.smtputf8 and (
            reverse.needs_smtputf8 or any(path.needs_smtputf8 for path in forwards)
        ):
            implied["smtputf8"] = True

        payload: bytes | None = None
        stream: BodySource | None = None
        if isinstance(body, str):
            body = body.encode("utf-8")
        if isinstance(body, (bytes, bytearray, memoryview)):
            # Canonical CRLF text up front: the size is then exact, and a NUL
            # is refused before anything is written (SECURITY 11, 15).
            if binary:
                payload = bytes(body)
            else:
                normalizer = NewlineNormalizer()
                payload = normalizer.feed(body) + normalizer.finish()
            if params.body is None and capabilities.eightbitmime and not payload.isascii():
                implied["body"] = "8BITMIME"
            if params.size is None and capabilities.size is not None:
                implied["size"] = len(payload)
        else:
            stream = body_source(body)
            if params.size is None and capabilities.size is not None and stream.length is not None:
                implied["size"] = stream.length
        if implied:
            params = _implied_params(params, tuple(sorted(implied.items())))
        limit = capabilities.size
        if limit and params.size is not None and params.size > limit:
            raise MessageTooLarge(params.size, limit)

        per_rcpt = _rcpt_params_for(forwards, rcpt_params)
        mail = _mail_command(reverse, params)
        rcpts = tuple(
            _rcpt_command(path, rcpt, params.smtputf8)
            for path, rcpt in zip(forwards, per_rcpt, strict=True)
        )
        for name in _extensions_needed(params, tuple(per_rcpt)):
            if not capabilities.has(name):
                raise ExtensionUnavailable(name)
        if params.requiretls and not self.is_tls:
            raise ExtensionUnavailable("REQUIRETLS", "REQUIRETLS needs a TLS connection")
        if self._policy is not None:
            self._policy.check_sender(reverse)
            self._policy.check_recipients(forwards)
            self._policy.check_message_size(params.size)
        return _Plan(mail, rcpts, payload, stream, use_bdat, binary, progress)

    def _one_shot(self, plan: _Plan) -> bool:
        """Whether the whole body goes as one ``BDAT n LAST`` in the opening flight."""
        return (
            plan.use_bdat
            and plan.payload is not None
            and len(plan.payload) <= BDAT_CHUNK_SIZE
            and self.capabilities.pipelining
        )

    def _opening(self, plan: _Plan, *, behind_bdat: bool = False) -> bytes:
        """MAIL, every RCPT and DATA (or a small body's only BDAT chunk), for one write.

        RFC 2920: with PIPELINING these go out together, so a small message
        costs one round trip. ``behind_bdat`` says it follows a BDAT LAST in
        the same flight: an RSET goes first, so that a server which keeps a
        refused transaction open cannot take this message's commands into it.
        """
        commands: list[Command] = [plan.mail, *plan.rcpts]
        if behind_bdat:
            commands.insert(0, _RSET)
        if not plan.use_bdat:
            commands.append(Data())
        wire = b"".join(self._session.send(command) for command in commands)
        self._log_commands(commands)
        if self._one_shot(plan):
            assert plan.payload is not None
            wire += self._session.send_chunk(plan.payload, last=True)
            self._log_chunk(len(plan.payload), last=True)
        if self._observed():
            self._emit("mail", sender=str(plan.mail.sender), recipients=len(plan.rcpts))
        return wire

    async def _transact(
        self, plan: _Plan, *, opened: bool = False, feed: _Feed | None = None
    ) -> tuple[SendOutcome | SMTPReplyError, _Plan | None]:
        """Run one transaction; return its outcome or the server's refusal.

        ``opened`` says the opening flight was already written behind the
        previous message. ``feed`` supplies the next message, whose opening
        is then written in the same flight as this one's end of data (RFC
        2920 3.1); it comes back as the second value. Connection-level
        failures are raised: they end every later message too. Whatever
        happens, what the plan's body source opened (a file) is closed.
        """
        try:
            return await self._transaction(plan, opened, feed)
        finally:
            await _release(plan)

    async def _transaction(
        self, plan: _Plan, opened: bool, feed: _Feed | None
    ) -> tuple[SendOutcome | SMTPReplyError, _Plan | None]:
        session = self._session
        pipelining = self.capabilities.pipelining
        if not pipelining:
            feed = None
        one_shot = self._one_shot(plan)
        following: _Plan | None = None
        if self._reset_due and not opened:
            await self._ensure_ready(force=True)
        if pipelining and not opened:
            wire = self._opening(plan)
            if one_shot and feed is not None:
                following = feed.next()
                if following is not None:
                    wire += self._opening(following, behind_bdat=True)
            await self._write(wire, final=one_shot)
        elif opened and one_shot:
            self._awaiting_final = True  # its only chunk left with the previous flight
            if feed is not None:
                following = feed.next()
                if following is not None:
                    await self._write(self._opening(following, behind_bdat=True))
        if one_shot and feed is not None:
            feed.waiting()

        if pipelining:
            if self._session.next_awaited is SmtpOp.RSET:
                # The RSET `_opening` put before a chained MAIL. Its outcome
                # does not matter: MAIL's reply says whether the transaction
                # started.
                await self._response()
            mail_reply = (await self._response()).reply
            rcpt_replies = [(await self._response()).reply for _ in plan.rcpts]
        else:
            self._emit("mail", sender=str(plan.mail.sender), recipients=len(plan.rcpts))
            mail_reply = await self._command(plan.mail)
            rcpt_replies = []
            if mail_reply.is_positive:
                for rcpt in plan.rcpts:
                    rcpt_replies.append(await self._command(rcpt))
        pairs = list(zip(plan.rcpts, rcpt_replies, strict=False))
        accepted = {str(rcpt.recipient): reply for rcpt, reply in pairs if reply.is_positive}
        rejected = {str(rcpt.recipient): reply for rcpt, reply in pairs if not reply.is_positive}
        if self._observed():
            for recipient, reply in (*accepted.items(), *rejected.items()):
                self._emit("rcpt", recipient=recipient, code=reply.code)

        if one_shot:
            final = await self._final_replies(SmtpOp.BDAT, following)
            assert plan.payload is not None
            outcome = self._conclude(plan, mail_reply, accepted, rejected, final, len(plan.payload))
            return outcome, following

        refusal = _envelope_refusal(mail_reply, accepted, rejected)
        if refusal is not None:
            if pipelining and not plan.use_bdat:
                data_reply = (await self._response()).reply
                if data_reply.code == 354:
                    # RFC 2920 3.1: DATA accepted anyway; send a lone dot.
                    await self._write(session.end_body(), final=True)
                    await self._final_replies(SmtpOp.DATA_END, None)
            await self._ensure_ready()
            return refusal, None

        if plan.use_bdat:
            final, size = await self._send_chunks(plan)
        else:
            if pipelining:
                data_reply = (await self._response()).reply
            else:
                data_reply = await self._command(Data())
            if data_reply.code != 354:
                await self._ensure_ready()
                return SMTPReplyError(data_reply, SmtpOp.DATA), None
            following, size = await self._send_data_body(plan, feed)
            final = await self._final_replies(SmtpOp.DATA_END, following)
        return self._conclude(plan, mail_reply, accepted, rejected, final, size), following

    async def _send_data_body(self, plan: _Plan, feed: _Feed | None) -> tuple[_Plan | None, int]:
        """Write the DATA body and its end, with the next message's opening behind it.

        Returns the next message's plan, and the body's size (RFC 1870).
        """
        session = self._session
        if self._observed():
            self._emit("data", transfer="DATA", size=len(plan.payload) if plan.payload else None)
        if plan.payload is not None:
            wire = session.send_body(plan.payload) + session.end_body()
        else:
            source = plan.stream
            assert source is not None
            try:
                while True:
                    chunk = await source.read(BODY_READ_SIZE)
                    if not chunk:
                        break
                    await self._write(session.send_body(chunk, wire_safe=source.wire_safe))
                    report_progress(plan.progress, source.consumed, source.length)
            except BaseException:
                # Half a body is on the wire: only closing the connection keeps
                # a truncated message from being delivered.
                await self._abort()
                raise
            wire = session.end_body()
        size = session.body_octets
        following = feed.next() if feed is not None else None
        if following is not None:
            wire += self._opening(following)
        await self._write(wire, final=True)
        if plan.payload is not None:
            report_progress(plan.progress, len(plan.payload), len(plan.payload))
        if feed is not None:
            feed.waiting()
        return following, size

    async def _send_chunks(self, plan: _Plan) -> tuple[list[Response], int]:
        """Send the body as BDAT chunks, keeping at most BDAT_WINDOW unanswered.

        Returns the final replies and the body's size, the sum of its chunks.
        """
        session = self._session
        size_sent = 0
        if self._observed():
            self._emit("data", transfer="BDAT", size=len(plan.payload) if plan.payload else None)
        unanswered = 0
        last_written = False
        failure: Reply | None = None
        reader = _ChunkReader(plan)
        try:
            while (item := await reader.next()) is not None:
                pieces, size, last = item
                if unanswered >= BDAT_WINDOW:
                    reply = (await self._response()).reply
                    unanswered -= 1
                    if not reply.is_positive:
                        failure = reply
                        break
                header = session.send_chunk_header(size, last=last)
                if size <= _JOIN_BELOW:
                    await self._write(header + b"".join(pieces), final=last)
                else:
                    # Only the whole chunk makes the end of data: a failure
                    # between its pieces leaves the message undelivered.
                    await self._write(header)
                    for piece in pieces[:-1]:
                        await self._write(piece)
                    await self._write(pieces[-1], final=last)
                self._log_chunk(size, last=last)
                size_sent += size
                report_progress(plan.progress, reader.sent, plan.total)
                if last:
                    last_written = True
                    break
                unanswered += 1
        except BaseException:
            await self._abort()
            raise
        for _ in range(unanswered):
            reply = (await self._response()).reply
            if failure is None and not reply.is_positive:
                failure = reply
        if failure is not None:
            if last_written:
                # The LAST chunk's reply (one per recipient in LMTP) is due
                # too; it must not be mistaken for the RSET's below.
                while self._session.next_awaited is SmtpOp.BDAT:
                    await self._response()
                self._awaiting_final = False
            # RFC 3030 2: after a failed chunk the transaction is dead, and
            # RSET makes sure the server agrees.
            await self._ensure_ready(force=True)
            raise SMTPReplyError(failure, SmtpOp.BDAT)
        return await self._final_replies(SmtpOp.BDAT, None), size_sent

    async def _final_replies(self, op: SmtpOp, following: _Plan | None) -> list[Response]:
        """The reply to the end of data: one, or one per recipient in LMTP.

        When ``following`` was chained behind and its only chunk already left,
        its outcome is now what a lost connection would leave unknown.
        """
        responses: list[Response] = []
        lmtp = self.is_lmtp
        accepted = self._session.accepted_recipients

        def unknown_fate(message: str) -> OutcomeUnknown:
            # SECURITY 31: recipients answered before the loss keep their
            # replies; the others are unknown, never attributed a reply.
            replies = {str(r.recipient): r.reply for r in responses if r.recipient is not None}
            unanswered = tuple(str(path) for path in accepted if str(path) not in replies)
            return OutcomeUnknown(message, replies=replies, unanswered=unanswered)

        try:
            responses.append(await self._response(closing_ok=lmtp))
            while responses[-1].reply.code != 421 and self._session.next_awaited is op:
                responses.append(await self._response(closing_ok=lmtp))
        except OutcomeUnknown as exc:
            raise unknown_fate(str(exc)) from exc
        if responses[-1].reply.code == 421 and len(responses) < len(accepted):
            # RFC 2033 4.2: the LMTP server closed midway through the
            # recipients. When every one was answered, the outcome below
            # reports the 421 as that recipient's failure instead.
            raise unknown_fate(
                f"the server closed after {len(responses)} of {len(accepted)} "
                f"recipients' replies: {responses[-1].reply}"
            )
        self._awaiting_final = following is not None and self._one_shot(following)
        if op is SmtpOp.BDAT and following is None and not lmtp:
            # A chained opening began with RSET already; otherwise one is due.
            self._reset_due = not responses[-1].reply.is_positive
        if self._observed():
            for response in responses:
                self._emit("reply", op=op.name, code=response.reply.code)
        return responses

    def _conclude(
        self,
        plan: _Plan,
        mail_reply: Reply,
        accepted: dict[str, Reply],
        rejected: dict[str, Reply],
        final: list[Response],
        size: int,
    ) -> SendOutcome | SMTPReplyError:
        transfer: Literal["DATA", "BDAT"] = "BDAT" if plan.use_bdat else "DATA"
        last = final[-1].reply
        refusal = _envelope_refusal(mail_reply, accepted, rejected)
        if refusal is not None:
            return refusal
        if self.is_lmtp and any(response.recipient is not None for response in final):
            replies = {str(response.recipient): response.reply for response in final}
            if not any(reply.is_positive for reply in replies.values()):
                # Every recipient failed, at RCPT time or after the data.
                return RecipientsRefused({**rejected, **replies}, last, SmtpOp.DATA_END)
            return LMTPOutcome(
                accepted=accepted,
                rejected=rejected,
                reply=last,
                queue_id=queue_id_from(last),
                tls=self.is_tls,
                transfer=transfer,
                size=size,
                replies=replies,
            )
        if not last.is_positive:
            return SMTPReplyError(last, final[-1].op)
        return SendOutcome(
            accepted=accepted,
            rejected=rejected,
            reply=last,
            queue_id=queue_id_from(last),
            tls=self.is_tls,
            transfer=transfer,
            size=size,
        )

    async def _ensure_ready(self, *, force: bool = False) -> None:
        """Leave the session between transactions, resetting it if needed (or ``force``d)."""
        if force or self._session.state is not SessionState.READY:
            reply = await self._command(_RSET)
            if not reply.is_positive:
                raise SMTPReplyError(reply, SmtpOp.RSET)
            self._reset_due = False

    # -- other commands -----------------------------------------------------

    async def reset(self) -> Reply:
        """RSET: abandon any transaction."""
        return await self._simple(Rset())

    async def noop(self) -> Reply:
        """NOOP: check the connection is alive."""
        return await self._simple(Noop())

    async def vrfy(self, address: str) -> Reply:
        """VRFY: ask the server about an address (most servers answer 252)."""
        return await self._simple(Vrfy(address, smtputf8=not address.isascii()), check=False)

    async def expn(self, name: str) -> Reply:
        """EXPN: ask the server to expand a mailing list."""
        return await self._simple(Expn(name, smtputf8=not name.isascii()), check=False)

    async def help(self, topic: str | None = None) -> Reply:
        """HELP: the server's help text."""
        return await self._simple(Help(topic), check=False)

    async def ehlo(self) -> Reply:
        """Re-issue EHLO (LHLO in LMTP) and refresh `capabilities`."""
        name = self._local_hostname or self._default_local_hostname()
        return await self._simple(Lhlo(name) if self.is_lmtp else Ehlo(name))

    async def quit(self) -> Reply:
        """QUIT and close; returns the server's goodbye."""
        async with self._lock:
            self._check_usable()
            try:
                reply = await self._command(Quit())
            finally:
                await self._close()
            return reply

    async def aclose(self) -> None:
        """Close the connection: QUIT when the session is clean, else just close.

        Idempotent. The transport is always closed, even when the graceful
        part is cancelled.
        """
        if self._closed or self._broken:
            await self._close()
            await trio.lowlevel.checkpoint()
            return
        try:
            async with self._lock:
                if self._session.state in (SessionState.READY, SessionState.HELLO):
                    await self._command(Quit())
        except SMTPError:
            pass
        finally:
            await self._close()

    async def _simple(self, command: Command, *, check: bool = True) -> Reply:
        async with self._lock:
            self._check_usable()
            reply = await self._command(command)
            if check and not reply.is_positive:
                raise SMTPReplyError(reply, command.op)
            return reply

    # -- I/O under the rules of cancellation ----------------------------------

    async def _acquire(self) -> None:
        """Take the lock, without a trip through the scheduler when it is free.

        The I/O that follows yields to the scheduler anyway, so the free case
        needs only the cancellation check; a caller cancelled while waiting
        here has changed nothing.
        """
        await trio.lowlevel.checkpoint_if_cancelled()
        try:
            self._lock.acquire_nowait()
        except trio.WouldBlock:
            await self._lock.acquire()

    def _check_usable(self) -> None:
        if self._broken:
            raise SMTPConnectionError(
                "the client is broken: an operation was cancelled or failed mid-exchange"
            )
        if self._closed or self._session.state is SessionState.CLOSED:
            raise SMTPConnectionError("the connection is closed")

    async def _command(self, command: Command) -> Reply:
        return (await self._roundtrip(command)).reply

    async def _roundtrip(self, command: Command) -> Response:
        wire = self._session.send(command)
        self._log_commands([command])
        await self._write(wire)
        return await self._response()

    async def _write(self, data: bytes | memoryview, *, final: bool = False) -> None:
        try:
            await self._stream.send_all(data)
        except BaseException as exc:
            await self._fail(exc)
        if final:
            self._awaiting_final = True

    async def _response(self, *, closing_ok: bool = False) -> Response:
        """The next response; a 421 closes the client and raises, unless ``closing_ok``."""
        session = self._session
        while True:
            try:
                event = session.next_event()
                if event is NEED_DATA:
                    data = await self._stream.receive_some(RECEIVE_SIZE)
                    session.receive_data(data)
                    continue
            except BaseException as exc:
                await self._fail(exc)
            if isinstance(event, ConnectionClosed):
                await self._lost(event)
            assert isinstance(event, Response)
            if logger.isEnabledFor(10):
                logger.debug("S: %s %s", self._peer, event.reply)
            if event.reply.code == 421:
                # The server is closing (RFC 5321 3.8): a clean, temporary failure.
                await self._close()
                if self._awaiting_final and event.op in (SmtpOp.DATA_END, SmtpOp.BDAT):
                    self._awaiting_final = False
                if closing_ok:
                    return event
                raise SMTPReplyError(event.reply, event.op)
            return event

    async def _lost(self, event: ConnectionClosed) -> NoReturn:
        await self._abort()
        if event.reply is not None:
            raise SMTPReplyError(event.reply, SmtpOp.QUIT, f"the server is closing: {event.reply}")
        if self._awaiting_final:
            raise OutcomeUnknown()
        raise SMTPConnectionError(f"{self._peer} closed the connection")

    async def _fail(self, exc: BaseException) -> NoReturn:
        """Close after a failure mid-exchange and raise what the caller should see."""
        await self._abort()
        if isinstance(exc, (trio.BrokenResourceError, trio.ClosedResourceError, OSError)):
            if self._awaiting_final:
                raise OutcomeUnknown() from exc
            raise SMTPConnectionError(f"connection to {self._peer} failed: {exc}") from exc
        raise exc

    async def _abort(self) -> None:
        """Forcefully close; the protocol state is unknown, so the client is broken."""
        if not self._closed and self._session.state is not SessionState.CLOSED:
            self._broken = True
        await self._close()

    async def _close(self) -> None:
        if not self._closed:
            self._closed = True
            await trio.aclose_forcefully(self._stream)
            self._emit("closed", broken=self._broken)

    async def _polite_quit(self) -> None:
        with contextlib.suppress(SMTPError):
            await self._command(Quit())

    def _log_commands(self, commands: Sequence[Command]) -> None:
        if logger.isEnabledFor(10):
            for command in commands:
                logger.debug("C: %s %s", self._peer, command.redacted())

    def _log_chunk(self, size: int, *, last: bool) -> None:
        if logger.isEnabledFor(10):
            logger.debug("C: %s BDAT %d%s", self._peer, size, " LAST" if last else "")

    def _observed(self) -> bool:
        """Whether anyone receives audit events: skip building them otherwise."""
        return self._audit is not None or logger.isEnabledFor(10)

    def _emit(self, kind: str, **details: str | int | bool | None) -> None:
        if self._audit is not None:
            self._audit(AuditEvent(kind, self._peer, details))
        if logger.isEnabledFor(10):
            logger.debug("%s: %s %s", kind, self._peer, details)


# Commands are immutable values, validated and encoded once: a bulk job
# repeats its senders, recipients and parameters, so each is built once.
@functools.lru_cache(maxsize=1024)
def _mail_command(sender: ReversePath, params: MailParams) -> Mail:
    return Mail(sender, params)


@functools.lru_cache(maxsize=1024)
def _implied_params(params: MailParams, implied: tuple[tuple[str, Any], ...]) -> MailParams:
    return replace(params, **dict(implied))


@functools.lru_cache(maxsize=1024)
def _extensions_needed(params: MailParams, per_rcpt: tuple[RcptParams, ...]) -> tuple[str, ...]:
    needed = set(params.required_extensions())
    for rcpt in per_rcpt:
        needed.update(rcpt.required_extensions())
    return tuple(sorted(needed))


@functools.lru_cache(maxsize=4096)
def _rcpt_command(recipient: ForwardPath, params: RcptParams, smtputf8: bool) -> Rcpt:
    return Rcpt(recipient, params, smtputf8=smtputf8)


def _envelope_refusal(
    mail_reply: Reply, accepted: Mapping[str, Reply], rejected: Mapping[str, Reply]
) -> SMTPReplyError | None:
    """The refusal when MAIL or every RCPT was refused, else None."""
    if not mail_reply.is_positive:
        return SMTPReplyError(mail_reply, SmtpOp.MAIL)
    if not accepted:
        return RecipientsRefused(rejected, list(rejected.values())[-1], SmtpOp.RCPT)
    return None


def _server_closing(error: SMTPError) -> bool:
    """Whether ``error`` is the server saying it is closing the connection (221, 421)."""
    return isinstance(error, SMTPReplyError) and error.reply.code in (221, 421)


class _ChunkReader:
    """The body in BDAT-sized chunks, each flagged with whether it is the last.

    A chunk comes as the pieces it is made of (whole reads of a stream, or a
    view of an in-memory body), never joined: they are written one after the
    other behind the chunk's command line, which spares copying each
    megabyte. A stream is read ahead by one read, so that the final chunk
    can carry LAST; chunk sizes vary around BDAT_CHUNK_SIZE, and memory
    stays at about two chunks whatever the body's size.
    """

    def __init__(self, plan: _Plan) -> None:
        self._payload = memoryview(plan.payload) if plan.payload is not None else None
        self._offset = 0
        #: Octets of the body (as the caller gave it) in the chunks handed out.
        self.sent = 0
        self._stream = plan.stream
        self._normalizer = None if plan.binary else NewlineNormalizer()
        self._pieces: list[bytes | memoryview] = []
        self._held = 0
        self._eof = False
        self._done = False

    async def next(self) -> tuple[list[bytes | memoryview], int, bool] | None:
        """The next chunk's pieces, its size, and whether it is the last; None after it."""
        if self._done:
            return None
        if self._payload is not None:
            start, end = self._offset, self._offset + BDAT_CHUNK_SIZE
            self._offset = end
            self._done = end >= len(self._payload)
            view = self._payload[start:end]
            self.sent += len(view)
            return [view], len(view), self._done
        assert self._stream is not None
        pieces = self._pieces
        normalizer = self._normalizer
        while not self._eof and self._held <= BDAT_CHUNK_SIZE:
            data = await self._stream.read(BODY_READ_SIZE)
            if not data:
                self._eof = True
                piece = normalizer.finish() if normalizer is not None else b""
            elif normalizer is None:
                piece = data
            elif self._stream.wire_safe:
                piece = normalizer.feed_wire_safe(data)
            else:
                piece = normalizer.feed(data)
            if piece:
                pieces.append(piece)
                self._held += len(piece)
        if self._eof:
            size, self._pieces, self._held = self._held, [], 0
            self._done = True
        else:
            # The newest read stays behind: it proves more follows, so this
            # chunk is not the LAST.
            newest = pieces.pop()
            size, self._pieces, self._held = self._held - len(newest), [newest], len(newest)
        # Progress counts the caller's octets; canonicalising may add some, so
        # what is still held back is an estimate until the end.
        consumed = self._stream.consumed
        self.sent = consumed if self._done else max(0, consumed - self._held)
        return pieces, size, self._done


async def _release(plan: _Plan) -> None:
    """Close what a plan's body source opened (a file), whatever became of the send."""
    if plan.stream is not None:
        with trio.CancelScope(shield=True):
            await plan.stream.aclose()


def _rcpt_params_for(
    forwards: Sequence[ForwardPath], params: RcptParams | Mapping[str, RcptParams] | None
) -> list[RcptParams]:
    if params is None:
        return [_NO_RCPT_PARAMS] * len(forwards)
    if isinstance(params, RcptParams):
        return [params] * len(forwards)
    by_address = {str(ForwardPath(address)): value for address, value in params.items()}
    unknown = set(by_address) - {str(path) for path in forwards}
    if unknown:
        raise InvalidInputError(f"rcpt_params names addresses that are not recipients: {unknown}")
    return [by_address.get(str(path), _NO_RCPT_PARAMS) for path in forwards]


def _envelope_from_headers(message: EmailMessageBase) -> tuple[str | None, list[str]]:
    """Sender and recipients from headers, the way smtplib.send_message reads them."""
    resent = message.get_all("Resent-Date")
    if resent is None:
        prefix = ""
    elif len(resent) == 1:
        prefix = "Resent-"
    else:
        raise InvalidInputError("the message has several Resent- blocks: pass the envelope")
    sender_header = message[prefix + "Sender"] or message[prefix + "From"]
    sender = None
    if sender_header is not None:
        parsed = email.utils.getaddresses([str(sender_header)])
        sender = parsed[0][1] if parsed and parsed[0][1] else None
    fields = [
        str(value)
        for name in ("To", "Cc", "Bcc")
        for value in (message.get_all(prefix + name) or [])
    ]
    recipients = [address for _, address in email.utils.getaddresses(fields) if address]
    return sender, recipients


_fqdn: str | None = None
_fqdn_known = False


def _local_fqdn() -> str | None:
    """The machine's FQDN, if it is a usable EHLO name (looked up once)."""
    global _fqdn, _fqdn_known
    if not _fqdn_known:
        name = socket.getfqdn()
        usable = "." in name and not name.startswith("localhost") and name.isascii()
        _fqdn = name if usable else None
        _fqdn_known = True
    return _fqdn


def _transport(stream: trio.abc.Stream) -> trio.abc.Stream:
    while isinstance(stream, trio.SSLStream):
        stream = stream.transport_stream
    return stream


def _describe_peer(stream: trio.abc.Stream) -> str:
    sock = getattr(_transport(stream), "socket", None)
    if sock is None:
        return type(stream).__name__
    try:
        address = sock.getpeername()
    except OSError:
        return "unconnected"
    if isinstance(address, tuple):
        host, port = address[0], address[1]
        return f"[{host}]:{port}" if ":" in str(host) else f"{host}:{port}"
    return str(address) or "unix-socket"


def _peer_port(stream: trio.abc.Stream) -> int | None:
    sock = getattr(_transport(stream), "socket", None)
    try:
        address = sock.getpeername() if sock is not None else None
    except OSError:
        return None
    return int(address[1]) if isinstance(address, tuple) else None


def _is_local_stream(stream: trio.abc.Stream) -> bool:
    """True for a unix socket or a loopback peer: where plaintext login is allowed."""
    sock = getattr(_transport(stream), "socket", None)
    if sock is None:
        return False
    if sock.family == getattr(socket, "AF_UNIX", None):
        return True
    try:
        host = sock.getpeername()[0]
        return ipaddress.ip_address(host).is_loopback
    except (OSError, ValueError, IndexError, TypeError):
        return False


async def _connect(host: str | None, port: int, path: str | None) -> trio.abc.Stream:
    try:
        if path is not None:
            return await trio.open_unix_socket(path)
        assert host is not None
        return await trio.open_tcp_stream(host, port)
    except OSError as exc:
        where = path if path is not None else f"{host}:{port}"
        raise SMTPConnectionError(f"cannot connect to {where}: {exc}") from exc


async def _open_client(
    host: str | None,
    port: int,
    path: str | None,
    ssl_context: ssl.SSLContext | None,
    **options: Any,
) -> SMTPClient:
    """Connect and start a client on a stream we own, closing it if starting fails.

    The TLS context is checked before connecting, so a refused one leaves
    no socket behind.
    """
    if ssl_context is not None:
        require_verifying(ssl_context)
    stream = await _connect(host, port, path)
    try:
        return await SMTPClient.from_stream(stream, ssl_context=ssl_context, **options)
    except BaseException:
        await trio.aclose_forcefully(stream)
        raise


@asynccontextmanager
async def open_smtp(
    host: str,
    port: int | None = None,
    *,
    tls: TLSMode = IMPLICIT,
    ssl_context: ssl.SSLContext | None = None,
    server_hostname: str | None = None,
    local_hostname: str | None = None,
    policy: Policy | None = None,
    audit: AuditHook | None = None,
) -> AsyncIterator[SMTPClient]:
    """Connect to an SMTP server; yields a ready `SMTPClient`.

    Reads the greeting, says EHLO, and with ``tls=STARTTLS`` upgrades (fail
    closed when STARTTLS is not offered; EHLO again afterwards). The port
    follows the mode: 465 (IMPLICIT, the default), 587 (STARTTLS), 25
    (PLAINTEXT). Certificates are verified against ``server_hostname``
    (default: ``host``) with ``ssl_context`` (default: the system store).
    On a clean exit QUIT is sent; on an error or cancellation the
    connection is just closed.
    """
    if not isinstance(tls, TLSMode):
        raise InvalidInputError(f"tls must be IMPLICIT, STARTTLS or PLAINTEXT, not {tls!r}")
    client = await _open_client(
        host,
        port or _DEFAULT_PORTS[tls],
        None,
        ssl_context,
        tls=tls,
        server_hostname=server_hostname or host,
        local_hostname=local_hostname,
        policy=policy,
        audit=audit,
    )
    async with client:
        yield client


@asynccontextmanager
async def open_lmtp(
    host: str | None = None,
    port: int = 24,
    *,
    path: str | None = None,
    tls: TLSMode | None = None,
    ssl_context: ssl.SSLContext | None = None,
    server_hostname: str | None = None,
    local_hostname: str | None = None,
    policy: Policy | None = None,
    audit: AuditHook | None = None,
) -> AsyncIterator[SMTPClient]:
    """Connect to an LMTP server (RFC 2033) over TCP or a unix socket ``path``.

    LHLO replaces EHLO, and `SMTPClient.send_mail` returns an `LMTPOutcome`
    with one reply per recipient. ``tls`` defaults to PLAINTEXT for a unix
    socket and STARTTLS over TCP.
    """
    if (host is None) == (path is None):
        raise InvalidInputError("open_lmtp needs exactly one of host or path")
    if tls is None:
        tls = PLAINTEXT if path is not None else STARTTLS
    if path is not None and tls is not PLAINTEXT:
        raise InvalidInputError("TLS over a unix socket is not supported; use PLAINTEXT")
    client = await _open_client(
        host,
        port,
        path,
        ssl_context,
        tls=tls,
        lmtp=True,
        server_hostname=server_hostname or host,
        local_hostname=local_hostname,
        policy=policy,
        audit=audit,
    )
    async with client:
        yield client
