"""The client side of an SMTP or LMTP session as a sans-IO state machine.

`ClientSession` owns the protocol state: which commands are legal now, which
may be pipelined behind which (RFC 2920), how every reply pairs with the
command it answers, and what each reply does to the state. It does no I/O:
``send(...)`` returns the bytes to write, ``receive_data(...)`` takes what was
read (``b""`` for end of file) and ``next_event()`` hands back one `Response`
at a time, `ConnectionClosed`, or `NEED_DATA`.

All state transitions live in `_apply_reply` (what replies do) and
`_check_legal` / `_project` (what sending does); nothing else changes state.
"""

from __future__ import annotations

import enum
from collections import deque
from dataclasses import dataclass
from typing import Final

from .address import ForwardPath
from .capabilities import Capabilities
from .commands import (
    Auth,
    AuthResponse,
    Bdat,
    Command,
    Data,
    Ehlo,
    Expn,
    Helo,
    Help,
    Lhlo,
    Mail,
    Noop,
    Quit,
    Rcpt,
    Rset,
    SmtpOp,
    StartTLS,
    Vrfy,
)
from .dotstuff import DotStuffer
from .errors import (
    ExtensionUnavailable,
    InvalidInputError,
    LocalProtocolError,
    SMTPConnectionError,
    SMTPProtocolError,
    UnsupportedMechanism,
)
from .reply import Reply, ReplyParser

__all__ = [
    "NEED_DATA",
    "ClientSession",
    "ConnectionClosed",
    "Event",
    "Response",
    "SessionState",
]


class SessionState(enum.Enum):
    """Where the session stands, as confirmed by the server's replies."""

    #: Connected; the server's greeting has not been read (or was a refusal:
    #: then only QUIT may be sent).
    GREETING = "GREETING"
    #: Greeted (or TLS just started): EHLO/LHLO, or HELO, must come next.
    HELLO = "HELLO"
    #: Between transactions.
    READY = "READY"
    #: The server said 220 to STARTTLS: the TLS handshake is due, nothing else.
    STARTTLS = "STARTTLS"
    #: The server sent a 334 challenge: an AUTH response is due.
    AUTH = "AUTH"
    #: MAIL was accepted: RCPT, DATA, BDAT or RSET may follow.
    TRANSACTION = "TRANSACTION"
    #: Body transfer: the server said 354 to DATA, or accepted a BDAT chunk.
    DATA = "DATA"
    #: QUIT was answered, a 421 arrived, or the server closed an idle connection.
    CLOSED = "CLOSED"
    #: Terminal: the protocol state is unknown (a violation, or the connection
    #: was lost mid-exchange). The connection must be closed, never reused.
    BROKEN = "BROKEN"


class _NeedData:
    def __repr__(self) -> str:
        return "NEED_DATA"


#: Returned by `ClientSession.next_event` when more bytes must be received.
NEED_DATA: Final = _NeedData()


@dataclass(frozen=True)
class Response:
    """A reply, paired with the command it answers.

    ``command`` is None for the greeting and for the end of data (whose
    ``op`` is `SmtpOp.DATA_END`). In LMTP, each accepted recipient gets its own
    end-of-data reply, and ``recipient`` names it.
    """

    op: SmtpOp
    reply: Reply
    command: Command | None = None
    recipient: ForwardPath | None = None


@dataclass(frozen=True)
class ConnectionClosed:
    """The server closed the connection, or announced it will (421 out of turn).

    ``unanswered`` lists what was still waiting for a reply; a `SmtpOp.DATA_END`
    among them means the message's fate is unknown. ``reply`` is the 421 when
    the server said one with no command outstanding.
    """

    unanswered: tuple[SmtpOp, ...] = ()
    reply: Reply | None = None


Event = Response | ConnectionClosed


@dataclass
class _Transaction:
    smtputf8: bool
    accepted: list[ForwardPath]


# Not frozen: one is made per command, and a frozen dataclass pays for its
# immutability on every construction. Nothing mutates one after it is queued.
@dataclass(slots=True)
class _Pending:
    op: SmtpOp
    command: Command | None
    transaction: _Transaction | None = None
    recipient: ForwardPath | None = None
    # LMTP's end of data is answered once per accepted recipient; the entry
    # is expanded when its first reply arrives, since with BDAT the RCPT
    # replies may still be in flight when it is sent.
    fanout: bool = False
    # The last of a group of LMTP end-of-data replies closes the transaction.
    final: bool = True


# Which classes of reply (first digit) each command may receive; anything
# else is a protocol violation (SECURITY 28). 3xx replies are listed by code
# because only one code is meaningful for each.
_INTERMEDIATE: dict[SmtpOp, int] = {SmtpOp.DATA: 354, SmtpOp.AUTH: 334}
# Commands whose success is one exact code, not any 2xx.
_EXACT_SUCCESS: dict[SmtpOp, int] = {
    SmtpOp.GREETING: 220,
    SmtpOp.STARTTLS: 220,
    SmtpOp.AUTH: 235,
}


class ClientSession:
    """The client's view of one SMTP (or LMTP) connection.

    ``lmtp`` selects LMTP (RFC 2033): LHLO instead of EHLO, and one reply per
    accepted recipient after the end of data. ``tls_active`` says the
    transport is already TLS (implicit TLS), so STARTTLS is not legal.
    """

    def __init__(self, *, lmtp: bool = False, tls_active: bool = False) -> None:
        self.lmtp = lmtp
        self._tls_active = tls_active
        self._state = SessionState.GREETING
        self._greeted = False
        self._capabilities: Capabilities | None = None
        self._authenticated = False
        self._parser = ReplyParser()
        self._replies: deque[Reply] = deque()
        self._pending: deque[_Pending] = deque()
        self._parse_error: SMTPProtocolError | None = None
        self._eof = False
        # The state the session will be in once every pending command
        # succeeds: legality of the next pipelined command is judged on it.
        self._projected = SessionState.GREETING
        self._projected_rcpts = 0
        self._bdat_open = False
        # The transaction the next RCPT/DATA/BDAT belongs to, and the one the
        # server confirmed last (they differ while MAIL is in flight).
        self._sending: _Transaction | None = None
        self._current: _Transaction | None = None
        self._stuffer: DotStuffer | None = None
        self._end_sent = False

    # -- what the caller can see ------------------------------------------

    @property
    def state(self) -> SessionState:
        """The confirmed state (replies applied so far)."""
        return self._state

    @property
    def capabilities(self) -> Capabilities | None:
        """The extensions from the last successful EHLO/LHLO, or None.

        Reset to None when TLS starts: nothing learned before the handshake
        is used after it (RFC 3207 4.2).
        """
        return self._capabilities

    @property
    def is_authenticated(self) -> bool:
        return self._authenticated

    @property
    def tls_active(self) -> bool:
        return self._tls_active

    @property
    def awaiting(self) -> tuple[SmtpOp, ...]:
        """The operations sent and not yet answered, oldest first."""
        return tuple(pending.op for pending in self._pending)

    @property
    def next_awaited(self) -> SmtpOp | None:
        """The oldest operation sent and not yet answered (``awaiting[0]``), or None."""
        return self._pending[0].op if self._pending else None

    @property
    def body_octets(self) -> int:
        """Octets of the DATA body fed so far, canonical and before dot-stuffing.

        RFC 1870's message size once `end_body` was called; 0 outside a body.
        """
        return self._stuffer.octets if self._stuffer is not None else 0

    @property
    def accepted_recipients(self) -> tuple[ForwardPath, ...]:
        """Recipients the server accepted in the current transaction."""
        return tuple(self._current.accepted) if self._current is not None else ()

    # -- sending ----------------------------------------------------------

    def send(self, command: Command) -> bytes:
        """Check that ``command`` is legal now and return its bytes.

        Raises `LocalProtocolError` when it is not legal in this state or
        cannot be pipelined behind what is pending, `ExtensionUnavailable` /
        `UnsupportedMechanism` when it needs what the server did not
        advertise, and `SMTPConnectionError` once the session is closed or
        broken. Nothing is recorded when it raises.
        """
        self._check_usable()
        self._check_legal(command)
        data = command.encode()
        self._project(command)
        recipient = command.recipient if isinstance(command, Rcpt) else None
        self._pending.append(_Pending(command.op, command, self._sending, recipient))
        return data

    def send_body(self, data: bytes | bytearray | memoryview, *, wire_safe: bool = False) -> bytes:
        """Dot-stuff one chunk of the DATA body (legal only after the 354).

        ``wire_safe=True`` passes ``data`` (bytes) to
        `DotStuffer.feed_wire_safe`: only for chunks whose producer vouches
        for them, as `trio_smtp.mime` does for its base64 lines.
        """
        stuffer = self._require_body()
        if wire_safe and isinstance(data, bytes):
            return stuffer.feed_wire_safe(data)
        return stuffer.feed(data)

    def end_body(self) -> bytes:
        """Finish the DATA body: return the rest of it and the end-of-data marker.

        In SMTP one reply is then due; in LMTP one per accepted recipient.
        """
        stuffer = self._require_body()
        data = stuffer.finish()
        self._end_sent = True
        self._projected = SessionState.READY
        self._pending.append(_Pending(SmtpOp.DATA_END, None, self._sending, fanout=self.lmtp))
        return data

    def send_chunk(self, data: bytes | bytearray | memoryview, *, last: bool) -> bytes:
        """Frame one BDAT chunk (RFC 3030): the command line followed by ``data``.

        The caller is responsible for ``data`` being what it wants on the
        wire: canonical CRLF text unless BODY=BINARYMIME was declared.
        """
        return self.send_chunk_header(len(data), last=last) + bytes(data)

    def send_chunk_header(self, size: int, *, last: bool) -> bytes:
        """The ``BDAT size [LAST]`` line alone, for a chunk the caller writes itself.

        Exactly ``size`` octets must follow it on the wire, as `send_chunk`
        would have written them; this spares a large chunk the copy of
        joining it to its command line.
        """
        command = Bdat(size, last=last)
        self._check_usable()
        self._check_legal(command)
        line = command.encode()
        transaction = self._sending
        self._project(command)
        self._pending.append(_Pending(SmtpOp.BDAT, command, transaction, fanout=last and self.lmtp))
        return line

    def tls_established(self) -> None:
        """Tell the session that the TLS handshake after STARTTLS succeeded.

        The session starts over: capabilities are forgotten and EHLO/LHLO
        must be sent again.
        """
        self._check_usable()
        if self._state is not SessionState.STARTTLS:
            raise LocalProtocolError("tls_established() without a 220 reply to STARTTLS")
        self._tls_active = True
        self._capabilities = None
        self._parser = ReplyParser()
        self._state = self._projected = SessionState.HELLO

    # -- receiving --------------------------------------------------------

    def receive_data(self, data: bytes | bytearray | memoryview) -> None:
        """Take bytes read from the server; ``b""`` means end of file."""
        if self._state is SessionState.BROKEN:
            raise SMTPConnectionError("the session is broken")
        if self._eof:
            raise LocalProtocolError("data received after end of file")
        if not data:
            self._eof = True
            return
        if self._parse_error is not None:
            return
        if self._state is SessionState.STARTTLS:
            # Whatever arrives before the handshake could only be injected
            # by a man in the middle (SECURITY 1).
            self._parse_error = SMTPProtocolError(
                "the server sent data after 220 to STARTTLS (response injection)"
            )
            return
        # Replies completed before a violation are still delivered first: a
        # 250 to the end of data must not be lost to garbage that follows it.
        replies, self._parse_error = self._parser.feed_until_error(data)
        self._replies.extend(replies)

    def next_event(self) -> Event | _NeedData:
        """Return the next event, or `NEED_DATA`.

        Raises `SMTPProtocolError` when the server broke the protocol; the
        session is then `SessionState.BROKEN`.
        """
        if self._state is SessionState.BROKEN and not self._eof:
            raise SMTPConnectionError("the session is broken")
        if self._replies:
            reply = self._replies.popleft()
            try:
                return self._apply_reply(reply)
            except SMTPProtocolError:
                self._break()
                raise
        if self._parse_error is not None:
            self._break()
            raise self._parse_error
        if self._eof:
            return self._closed_event()
        return NEED_DATA

    # -- internals --------------------------------------------------------

    def _break(self) -> None:
        self._state = self._projected = SessionState.BROKEN
        self._pending.clear()
        self._replies.clear()

    def _closed_event(self) -> ConnectionClosed:
        unanswered = self.awaiting
        if self._state not in (SessionState.CLOSED, SessionState.BROKEN):
            clean = (
                not unanswered
                and not self._parser.pending
                and self._state in (SessionState.HELLO, SessionState.READY)
            )
            self._state = SessionState.CLOSED if clean else SessionState.BROKEN
            self._projected = self._state
        self._pending.clear()
        return ConnectionClosed(unanswered)

    def _check_usable(self) -> None:
        if self._state is SessionState.BROKEN:
            raise SMTPConnectionError("the session is broken")
        if self._state is SessionState.CLOSED or self._eof:
            raise SMTPConnectionError("the connection is closed")

    def _require_body(self) -> DotStuffer:
        self._check_usable()
        if self._state is not SessionState.DATA or self._stuffer is None or self._end_sent:
            raise LocalProtocolError("the body may only be sent after a 354 reply to DATA")
        return self._stuffer

    def _expand_fanout(self, pending: _Pending) -> _Pending:
        # RFC 2033 4.2: one reply per accepted RCPT, in RCPT order. With no
        # accepted recipient the server answers once (a refusal).
        recipients = pending.transaction.accepted if pending.transaction is not None else []
        if not recipients:
            return pending
        entries = [
            _Pending(
                pending.op,
                pending.command,
                pending.transaction,
                recipient,
                final=index == len(recipients) - 1,
            )
            for index, recipient in enumerate(recipients)
        ]
        self._pending.extendleft(reversed(entries[1:]))
        return entries[0]

    def _check_legal(self, command: Command) -> None:
        if not self._greeted:
            raise LocalProtocolError("wait for the server's greeting before sending")
        if self._pending:
            last = self._pending[-1]
            pipelinable_after = last.op is SmtpOp.DATA_END or (
                last.command is not None and last.command.pipelinable
            )
            if not pipelinable_after:
                raise LocalProtocolError(
                    f"{command.op.name} cannot be sent before the reply to {last.op.name}"
                )
            if self._capabilities is None or not self._capabilities.pipelining:
                raise LocalProtocolError(
                    f"{command.op.name} cannot be pipelined: the server does not offer PIPELINING"
                )
            if not command.pipelinable and command.op not in (SmtpOp.DATA, SmtpOp.QUIT):
                # RFC 2920 3.1: EHLO, AUTH, STARTTLS, NOOP, VRFY, EXPN and HELP
                # only ever go out alone; DATA and QUIT end a group.
                raise LocalProtocolError(f"{command.op.name} cannot be pipelined")
        state = self._projected
        op = command.op
        if state is SessionState.GREETING:
            if op is not SmtpOp.QUIT:
                raise LocalProtocolError("the greeting was a refusal: only QUIT may follow")
            return
        if state in (SessionState.STARTTLS, SessionState.CLOSED, SessionState.BROKEN):
            raise LocalProtocolError(f"{op.name} is not legal in state {state.name}")
        if state is SessionState.AUTH:
            if not isinstance(command, AuthResponse):
                raise LocalProtocolError("an AUTH exchange is in progress: answer or cancel it")
            return
        if isinstance(command, AuthResponse):
            raise LocalProtocolError("AUTH response without a 334 challenge")
        if state is SessionState.DATA and not self._bdat_open:
            raise LocalProtocolError(f"{op.name} is not legal while the DATA body is open")
        checker = _LEGALITY.get(type(command))
        if checker is not None:
            checker(self, command, state)

    def _extensions(self) -> Capabilities:
        return self._capabilities if self._capabilities is not None else Capabilities.none()

    def _legal_hello(self, command: Command, state: SessionState) -> None:
        if isinstance(command, Lhlo) != self.lmtp:
            raise LocalProtocolError(
                "LMTP sessions use LHLO" if self.lmtp else "LHLO is for LMTP sessions only"
            )
        if state not in (SessionState.HELLO, SessionState.READY):
            raise LocalProtocolError(f"{command.op.name} is not legal in state {state.name}")

    def _legal_starttls(self, command: Command, state: SessionState) -> None:
        if self._tls_active:
            # SECURITY 7: a STARTTLS advertised after the handshake is ignored.
            raise LocalProtocolError("TLS is already active: STARTTLS is never sent twice")
        if state is not SessionState.READY or self._pending:
            raise LocalProtocolError("STARTTLS is only legal alone, between transactions")
        if not self._extensions().starttls:
            raise ExtensionUnavailable("STARTTLS")

    def _legal_auth(self, command: Command, state: SessionState) -> None:
        assert isinstance(command, Auth)
        if self._authenticated:
            raise LocalProtocolError("already authenticated: a second AUTH is not allowed")
        if state is not SessionState.READY:
            raise LocalProtocolError("AUTH is only legal between transactions")
        offered = self._extensions().auth
        if not offered:
            raise ExtensionUnavailable("AUTH")
        if command.mechanism.upper() not in offered:
            listed = ", ".join(sorted(offered))
            raise UnsupportedMechanism(
                f"the server does not offer {command.mechanism} (offers: {listed})"
            )

    def _legal_mail(self, command: Command, state: SessionState) -> None:
        assert isinstance(command, Mail)
        if state is not SessionState.READY:
            raise LocalProtocolError(f"MAIL is not legal in state {state.name}")
        self._require_extensions(command.params.required_extensions())

    def _legal_rcpt(self, command: Command, state: SessionState) -> None:
        assert isinstance(command, Rcpt)
        if state is not SessionState.TRANSACTION:
            raise LocalProtocolError("RCPT is only legal after MAIL")
        smtputf8 = self._sending is not None and self._sending.smtputf8
        if command.recipient.needs_smtputf8 and not smtputf8:
            raise InvalidInputError(
                "a non-ASCII recipient needs SMTPUTF8 in the MAIL command's parameters"
            )
        self._require_extensions(command.params.required_extensions())

    def _legal_data(self, command: Command, state: SessionState) -> None:
        if state is not SessionState.TRANSACTION or self._bdat_open:
            raise LocalProtocolError("DATA is only legal after MAIL and RCPT")
        if self._projected_rcpts == 0:
            raise LocalProtocolError("DATA needs at least one RCPT first")

    def _legal_bdat(self, command: Command, state: SessionState) -> None:
        if not self._extensions().chunking:
            raise ExtensionUnavailable("CHUNKING")
        if state is SessionState.DATA and self._bdat_open:
            return
        if state is not SessionState.TRANSACTION or self._projected_rcpts == 0:
            raise LocalProtocolError("BDAT is only legal after MAIL and RCPT")

    def _legal_anytime(self, command: Command, state: SessionState) -> None:
        if state is SessionState.DATA:
            raise LocalProtocolError(f"{command.op.name} is not legal during BDAT transfer")

    def _legal_rset(self, command: Command, state: SessionState) -> None:
        if state is SessionState.HELLO:
            raise LocalProtocolError("RSET is not legal before EHLO")

    def _require_extensions(self, names: tuple[str, ...]) -> None:
        extensions = self._extensions()
        for name in names:
            if not extensions.has(name):
                raise ExtensionUnavailable(name)

    def _project(self, command: Command) -> None:
        """Advance the projected state as if ``command`` will succeed."""
        if isinstance(command, (Ehlo, Lhlo, Helo, Rset)):
            self._projected = SessionState.READY
            self._projected_rcpts = 0
            self._bdat_open = False
        elif isinstance(command, Mail):
            self._projected = SessionState.TRANSACTION
            self._projected_rcpts = 0
            self._sending = _Transaction(command.params.smtputf8, [])
        elif isinstance(command, Rcpt):
            self._projected_rcpts += 1
        elif isinstance(command, Data):
            self._projected = SessionState.DATA
        elif isinstance(command, Bdat):
            self._bdat_open = not command.last
            self._projected = SessionState.DATA if not command.last else SessionState.READY
        elif isinstance(command, StartTLS):
            self._projected = SessionState.STARTTLS
        elif isinstance(command, (Auth, AuthResponse)):
            self._projected = SessionState.AUTH
        elif isinstance(command, Quit):
            self._projected = SessionState.CLOSED

    def _apply_reply(self, reply: Reply) -> Event:
        if not self._greeted:
            self._greeted = True
            return self._apply_greeting(reply)
        if not self._pending:
            if reply.code == 421:
                # A server may announce its shutdown unprompted (RFC 5321 3.8).
                self._close_by_server()
                return ConnectionClosed((), reply)
            raise SMTPProtocolError(f"reply with no command outstanding: {reply}")
        pending = self._pending.popleft()
        if pending.fanout:
            pending = self._expand_fanout(pending)
        op = pending.op
        self._check_reply_class(op, reply)
        response = Response(op, reply, pending.command, pending.recipient)
        if reply.code == 421:
            self._close_by_server()
            return response
        success = reply.is_positive or reply.code == _INTERMEDIATE.get(op)
        # The commands of a transaction come first: they are nearly every reply.
        if op is SmtpOp.MAIL:
            if success:
                self._state = SessionState.TRANSACTION
                self._current = pending.transaction
        elif op is SmtpOp.RCPT:
            if success and pending.recipient is not None and pending.transaction is not None:
                pending.transaction.accepted.append(pending.recipient)
        elif op is SmtpOp.DATA:
            if success:
                accepted = pending.transaction.accepted if pending.transaction else []
                if self.lmtp and not accepted:
                    # RFC 2033 4.2: DATA must fail when no RCPT succeeded.
                    raise SMTPProtocolError("LMTP server accepted DATA with no valid recipient")
                self._state = SessionState.DATA
                self._stuffer = DotStuffer()
                self._end_sent = False
        elif op is SmtpOp.DATA_END or op is SmtpOp.BDAT:
            last = op is SmtpOp.DATA_END or (
                isinstance(pending.command, Bdat) and pending.command.last
            )
            if last:
                if pending.final:
                    self._end_transaction()
            elif success and self._state in (SessionState.TRANSACTION, SessionState.DATA):
                self._state = SessionState.DATA
        elif op in (SmtpOp.EHLO, SmtpOp.LHLO, SmtpOp.HELO):
            if reply.is_positive:
                self._capabilities = (
                    Capabilities.none() if op is SmtpOp.HELO else Capabilities.from_reply(reply)
                )
                self._state = SessionState.READY
                self._current = None
        elif op is SmtpOp.STARTTLS:
            if success:
                if self._replies or self._parser.pending or self._parse_error is not None:
                    raise SMTPProtocolError(
                        "the server sent data after 220 to STARTTLS (response injection)"
                    )
                self._state = SessionState.STARTTLS
        elif op is SmtpOp.AUTH:
            if reply.code == 334:
                self._state = SessionState.AUTH
            else:
                self._authenticated = success
                self._state = SessionState.READY
        elif op is SmtpOp.RSET:
            if success:
                self._end_transaction()
        elif op is SmtpOp.QUIT:
            self._close_by_server()
        if not self._pending and self._state not in (SessionState.CLOSED, SessionState.BROKEN):
            self._resync_projection()
        return response

    def _apply_greeting(self, reply: Reply) -> Response:
        self._check_reply_class(SmtpOp.GREETING, reply)
        if reply.code == 421:
            self._close_by_server()
        elif reply.is_positive:
            self._state = self._projected = SessionState.HELLO
        # Otherwise (554): the session stays in GREETING, where only QUIT is
        # legal (RFC 5321 3.1, SECURITY 29).
        return Response(SmtpOp.GREETING, reply)

    def _check_reply_class(self, op: SmtpOp, reply: Reply) -> None:
        if reply.is_intermediate and reply.code != _INTERMEDIATE.get(op):
            raise SMTPProtocolError(f"unexpected {reply.code} reply to {op.name}: {reply}")
        if op is SmtpOp.DATA and reply.is_positive:
            raise SMTPProtocolError(f"unexpected {reply.code} reply to DATA: {reply}")
        exact = _EXACT_SUCCESS.get(op)
        if exact is not None and reply.is_positive and reply.code != exact:
            raise SMTPProtocolError(f"unexpected {reply.code} reply to {op.name}: {reply}")

    def _end_transaction(self) -> None:
        self._state = SessionState.READY
        self._current = None
        self._stuffer = None
        self._end_sent = False
        self._bdat_open = False

    def _close_by_server(self) -> None:
        self._state = self._projected = SessionState.CLOSED
        self._pending.clear()

    def _resync_projection(self) -> None:
        self._projected = self._state
        self._projected_rcpts = len(self.accepted_recipients)
        self._sending = self._current
        if self._state is not SessionState.DATA:
            self._bdat_open = False


_LEGALITY = {
    Ehlo: ClientSession._legal_hello,
    Lhlo: ClientSession._legal_hello,
    Helo: ClientSession._legal_hello,
    StartTLS: ClientSession._legal_starttls,
    Auth: ClientSession._legal_auth,
    Mail: ClientSession._legal_mail,
    Rcpt: ClientSession._legal_rcpt,
    Data: ClientSession._legal_data,
    Bdat: ClientSession._legal_bdat,
    Rset: ClientSession._legal_rset,
    Noop: ClientSession._legal_anytime,
    Vrfy: ClientSession._legal_anytime,
    Expn: ClientSession._legal_anytime,
    Help: ClientSession._legal_anytime,
}
