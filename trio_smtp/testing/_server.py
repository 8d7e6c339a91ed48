"""The in-process SMTP/LMTP test server: listener, sessions and what they record.

This module owns `open_test_server`, `TestServer` (the handle tests use to
reach and inspect the server), `ReceivedMessage` and `SyncViolation`, and the
per-connection session that speaks SMTP (RFC 5321) or LMTP (RFC 2033) with
PIPELINING (RFC 2920), CHUNKING/BINARYMIME (RFC 3030), STARTTLS (RFC 3207),
AUTH (RFC 4954) and the parameters of SIZE, 8BITMIME, SMTPUTF8 and DSN.

The grammar comes from `._wire`, never from the client's core: the server is
an independent reading of the RFCs, so it can disagree with the client.
It is strict where strictness catches client bugs (512-octet lines, bare
LF, pipelining where it is not allowed, parameters not advertised) and
records rather than refuses where a test wants to see what arrived (a body
with bare LF is stored as received, `bare_newlines_seen` is set).
"""

from __future__ import annotations

import base64
import email.policy
import hashlib
import hmac
import json
import os
import secrets
import socket
import ssl
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Collection, Iterable, Mapping
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.parser import BytesParser
from typing import TYPE_CHECKING, Any, ClassVar, Literal, NoReturn, TypedDict

import trio

from . import _wire
from ._faults import Delay, DelayThen, Drop, FaultPoint, FaultPolicy, Reply, Stage

if TYPE_CHECKING:
    import trustme

__all__ = [
    "ReceivedMessage",
    "ServerOptions",
    "SyncViolation",
    "TestServer",
    "open_test_server",
]

TLSMode = Literal["none", "starttls", "implicit"]

DEFAULT_MAX_SIZE = 50 * 1024 * 1024
# RFC 5321 4.5.3.1.8 asks for at least 100; a cap keeps memory bounded.
MAX_RECIPIENTS = 1000
# Body bytes kept in a transcript entry; the message itself is kept whole.
TRANSCRIPT_DATA_LIMIT = 64 * 1024
RECEIVE_SIZE = 256 * 1024
IMPLEMENTED_MECHANISMS = ("PLAIN", "LOGIN", "XOAUTH2", "OAUTHBEARER", "CRAM-MD5")
DEFAULT_MECHANISMS = ("PLAIN", "LOGIN", "XOAUTH2", "OAUTHBEARER")

# RFC 2920 3.1 (and RFC 3207 4, RFC 4954 4): these may only end a pipelined
# group, because their outcome changes what the client may send next.
MUST_END_GROUP = frozenset(
    {"EHLO", "HELO", "LHLO", "DATA", "VRFY", "EXPN", "NOOP", "QUIT", "STARTTLS", "AUTH"}
)

_REDACTED = b"***"


@dataclass(frozen=True)
class ReceivedMessage:
    """One message whose content fully arrived.

    ``data`` is the content as the client meant it: un-stuffed for DATA,
    the chunks joined for BDAT. ``rcpt_tos`` are the recipients it was
    accepted for (for LMTP: those whose end-of-data reply was 2xx, plus any
    left unanswered by a drop) and ``rcpt_options`` their parameters, in
    the same order. ``acknowledged`` is False when the connection was
    dropped instead of answering the end of data (the client cannot know
    whether the message was taken). A message refused at the end of data
    (size, a 4xx/5xx fault reply) is not recorded at all.
    """

    mail_from: str
    rcpt_tos: tuple[str, ...]
    data: bytes
    mail_options: tuple[str, ...]
    rcpt_options: tuple[tuple[str, ...], ...]
    transfer: Literal["DATA", "BDAT"]
    tls: bool
    auth_user: str | None
    smtputf8: bool
    connection: int
    acknowledged: bool = True
    queue_id: str | None = None
    helo: str | None = None
    #: Octets of content received, also when it was not kept.
    size: int = 0
    #: SHA-256 (hex) of the content when the server ran with
    #: ``keep_bodies=False``; ``data`` is then empty.
    sha256: str | None = None

    def as_email(self) -> EmailMessage:
        """The content parsed with the modern `email` policy, for header checks."""
        parsed = BytesParser(policy=email.policy.default).parsebytes(self.data)
        assert isinstance(parsed, EmailMessage)
        return parsed


@dataclass(frozen=True)
class SyncViolation:
    """The client sent more before it had the reply it had to wait for.

    ``after`` is the verb (or ``"DATA-END"`` / ``"BDAT-CHUNK"``) whose reply
    should have been awaited; ``octets`` how many bytes were already
    waiting. The bytes themselves are not kept: they may hold credentials.
    """

    connection: int
    after: str
    octets: int
    reason: str


class ServerOptions(TypedDict, total=False):
    """The keyword arguments of `open_test_server` (for factories that forward them)."""

    lmtp: bool
    tls: TLSMode
    require_tls: bool
    extensions: Iterable[str] | None
    users: Mapping[str, str] | None
    tokens: Mapping[str, str] | None
    max_size: int
    unix_path: str | os.PathLike[str] | None
    hostname: str
    faults: FaultPolicy | None
    reject_recipients: Collection[str]
    ssl_context: ssl.SSLContext | None
    keep_bodies: bool


@dataclass(frozen=True)
class _Config:
    lmtp: bool
    tls: TLSMode
    require_tls: bool
    # keyword -> the line advertised for it, in EHLO order; STARTTLS excluded
    extensions: dict[str, str]
    force_starttls: bool  # the caller listed STARTTLS itself
    mechanisms: tuple[str, ...]
    users: dict[str, str]
    tokens: dict[str, str]
    max_size: int
    hostname: str
    reject_recipients: frozenset[str]
    ssl_context: ssl.SSLContext | None
    keep_bodies: bool


def _build_config(
    *,
    lmtp: bool,
    tls: TLSMode,
    require_tls: bool,
    extensions: Iterable[str] | None,
    users: Mapping[str, str] | None,
    tokens: Mapping[str, str] | None,
    max_size: int,
    hostname: str,
    reject_recipients: Collection[str],
    ssl_context: ssl.SSLContext | None,
    keep_bodies: bool = True,
) -> _Config:
    if tls not in ("none", "starttls", "implicit"):
        raise ValueError(f"tls must be 'none', 'starttls' or 'implicit', not {tls!r}")
    if max_size < 0:
        raise ValueError("max_size must be >= 0")
    if isinstance(extensions, str):
        raise TypeError("extensions is a collection of keywords, not one string")
    if extensions is None:
        entries = [
            "PIPELINING",
            "CHUNKING",
            "BINARYMIME",
            "SIZE",
            "8BITMIME",
            "SMTPUTF8",
            "DSN",
            "ENHANCEDSTATUSCODES",
            "AUTH",
        ]
    else:
        entries = list(extensions)
    table: dict[str, str] = {}
    force_starttls = False
    mechanisms: tuple[str, ...] = ()
    for entry in entries:
        words = entry.split()
        if not words:
            raise ValueError("empty extension keyword")
        keyword = words[0].upper()
        if keyword == "STARTTLS":
            force_starttls = True
            continue
        if keyword == "SIZE" and len(words) == 1:
            line = f"SIZE {max_size}"
        elif keyword == "AUTH":
            mechanisms = tuple(w.upper() for w in words[1:]) or DEFAULT_MECHANISMS
            line = "AUTH " + " ".join(mechanisms)
        else:
            line = " ".join([keyword, *words[1:]])
        table[keyword] = line
    return _Config(
        lmtp=lmtp,
        tls=tls,
        require_tls=require_tls,
        extensions=table,
        force_starttls=force_starttls,
        mechanisms=mechanisms,
        users=dict(users or {}),
        tokens=dict(tokens or {}),
        max_size=max_size,
        hostname=hostname,
        reject_recipients=frozenset(r.lower() for r in reject_recipients),
        ssl_context=ssl_context,
        keep_bodies=keep_bodies,
    )


class TestServer:
    """Handle on a running test server: where it listens and what it saw.

    Records are plain lists a test may read at any time: ``messages``,
    ``transcripts`` (one list per connection, ``("C", line)`` without its
    CRLF, or the raw body bytes; ``("S", reply)`` as sent; AUTH payloads
    shown as ``***``), ``reply_batches`` (per connection, how many replies
    each write carried: a pipelined flight answered at once shows as one
    number > 1), ``sync_violations`` and ``bare_newlines_seen``.
    ``connections`` counts every connection served; connection ids are
    indexes into ``transcripts`` and never reused. `reset` clears the
    records but not the counters.

    For a unix-socket server ``host`` is "" and ``port`` 0; ``path`` is
    None for TCP.
    """

    __test__: ClassVar[bool] = False  # not a pytest test class, despite the name

    def __init__(self, config: _Config) -> None:
        self._config = config
        self.host = ""
        self.port = 0
        self.path: str | None = None
        self.hostname = config.hostname
        self.lmtp = config.lmtp
        self.faults: FaultPolicy | None = None
        self.messages: list[ReceivedMessage] = []
        self.connections = 0
        self.transcripts: list[list[tuple[str, bytes]]] = []
        self.reply_batches: list[list[int]] = []
        self.sync_violations: list[SyncViolation] = []
        self.bare_newlines_seen = False
        self._message_count = 0
        self._queue_prefix = secrets.token_hex(2).upper()
        self._ca: trustme.CA | None = None
        self._server_context: ssl.SSLContext | None = config.ssl_context

    @property
    def ca(self) -> trustme.CA:
        """The certificate authority that signed the server certificate (made on first use)."""
        if self._ca is None:
            import trustme  # a test-only dependency: only needed once TLS is used

            self._ca = trustme.CA()
        return self._ca

    def server_ssl_context(self) -> ssl.SSLContext:
        """The server side TLS context: a cert for localhost, 127.0.0.1 and ``hostname``."""
        if self._server_context is None:
            context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            context.minimum_version = ssl.TLSVersion.TLSv1_2
            names = ["localhost", "127.0.0.1", self.hostname]
            cert = self.ca.issue_cert(*dict.fromkeys(names))
            cert.configure_cert(context)
            self._server_context = context
        return self._server_context

    def client_ssl_context(self) -> ssl.SSLContext:
        """A fresh verifying client context that trusts this server's CA."""
        context = ssl.create_default_context()
        self.ca.configure_trust(context)
        return context

    def reset(self) -> None:
        """Forget what was recorded so far; counters and live connections carry on."""
        self.messages.clear()
        for transcript in self.transcripts:
            transcript.clear()
        for batches in self.reply_batches:
            batches.clear()
        self.sync_violations.clear()
        self.bare_newlines_seen = False

    async def serve_stream(self, stream: trio.abc.Stream) -> None:
        """Serve one already-connected stream until the session ends; closes it."""
        conn_id = self.connections
        self.connections += 1
        self.transcripts.append([])
        self.reply_batches.append([])
        session = _Session(self, stream, conn_id)
        try:
            await session.run()
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            # The client went away, or TLS failed: its business, not a server fault.
            pass
        finally:
            await trio.aclose_forcefully(session.stream)

    async def _accept_loop(self, listener: trio.SocketListener, nursery: trio.Nursery) -> None:
        while True:
            stream = await listener.accept()
            nursery.start_soon(self.serve_stream, stream)

    def _next_queue_id(self) -> str:
        return f"{self._queue_prefix}{self._message_count:06X}"

    def __repr__(self) -> str:
        where = self.path if self.path is not None else f"{self.host}:{self.port}"
        kind = "LMTP" if self.lmtp else "SMTP"
        return f"<TestServer {kind} {where} messages={len(self.messages)}>"


@asynccontextmanager
async def open_test_server(
    *,
    lmtp: bool = False,
    tls: TLSMode = "none",
    require_tls: bool = False,
    extensions: Iterable[str] | None = None,
    users: Mapping[str, str] | None = None,
    tokens: Mapping[str, str] | None = None,
    max_size: int = DEFAULT_MAX_SIZE,
    unix_path: str | os.PathLike[str] | None = None,
    hostname: str = "testserver.invalid",
    faults: FaultPolicy | None = None,
    reject_recipients: Collection[str] = (),
    ssl_context: ssl.SSLContext | None = None,
    keep_bodies: bool = True,
) -> AsyncIterator[TestServer]:
    """Run an SMTP (or LMTP) test server for the duration of the block.

    Listens on 127.0.0.1 on an ephemeral port, or on ``unix_path``; every
    connection is served in a nursery owned by the block, and leaving the
    block cancels and closes them all and the listener. An exception raised
    in the block comes out as itself, not wrapped in an exception group.

    ``extensions`` lists the EHLO keywords to advertise (default:
    PIPELINING, CHUNKING, BINARYMIME, SIZE, 8BITMIME, SMTPUTF8, DSN,
    ENHANCEDSTATUSCODES, AUTH PLAIN LOGIN XOAUTH2 OAUTHBEARER); features not
    listed are refused. "SIZE" alone advertises ``max_size``; "AUTH" alone the
    default mechanisms. STARTTLS is advertised when ``tls="starttls"`` until
    TLS is active; listing it with ``tls="none"`` advertises it falsely and
    the command then gets 454. ``users`` maps user to password (PLAIN,
    LOGIN, CRAM-MD5), ``tokens`` user to bearer token (XOAUTH2, OAUTHBEARER);
    with neither, every AUTH fails. ``reject_recipients`` get 550 at RCPT.
    ``ssl_context`` replaces the trustme-made server context (for a test
    that needs a bad certificate). ``keep_bodies=False`` records each
    message's size and SHA-256 instead of its content, so the server's
    memory stays flat for messages of any size (streaming tests, benches).
    """
    config = _build_config(
        lmtp=lmtp,
        tls=tls,
        require_tls=require_tls,
        extensions=extensions,
        users=users,
        tokens=tokens,
        max_size=max_size,
        hostname=hostname,
        reject_recipients=reject_recipients,
        ssl_context=ssl_context,
        keep_bodies=keep_bodies,
    )
    server = TestServer(config)
    server.faults = faults
    if tls != "none":
        server.server_ssl_context()  # make the certificate now, not inside a handshake
    listeners: list[trio.SocketListener] = []
    unlink: str | None = None
    body_error: Exception | None = None
    try:
        if unix_path is not None:
            path = os.fspath(unix_path)
            listeners.append(await _unix_listener(path))
            unlink = path
            server.path = path
        else:
            listeners.extend(await trio.open_tcp_listeners(0, host="127.0.0.1"))
            server.host, server.port = listeners[0].socket.getsockname()[:2]
        async with trio.open_nursery() as nursery:
            for listener in listeners:
                nursery.start_soon(server._accept_loop, listener, nursery)
            try:
                yield server
            except Exception as exc:
                # Re-raised below, outside the nursery, so the caller sees its
                # own exception rather than an ExceptionGroup around it.
                body_error = exc
            nursery.cancel_scope.cancel()
    finally:
        for listener in listeners:
            await trio.aclose_forcefully(listener)
        if unlink is not None:
            with suppress(FileNotFoundError):
                os.unlink(unlink)
    if body_error is not None:
        raise body_error


async def _unix_listener(path: str) -> trio.SocketListener:
    sock = trio.socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        await sock.bind(path)
        sock.listen(128)
    except BaseException:
        sock.close()
        raise
    return trio.SocketListener(sock)


class _EndSession(Exception):
    """Unwinds a session after QUIT, a drop or a 421; never leaves this module."""


class _AuthFailed(Exception):
    """Ends an AUTH exchange with ``reply`` (already formatted)."""

    def __init__(self, reply: bytes) -> None:
        super().__init__()
        self.reply = reply


@dataclass
class _Transaction:
    mail_from: str
    mail_options: tuple[str, ...]
    smtputf8: bool
    body: str
    rcpts: list[tuple[str, tuple[str, ...]]] = field(default_factory=list)
    # BDAT state: None until the first chunk
    chunks: bytearray | None = None
    chunk_size: int = 0
    chunk_bare: _wire.BareNewlineDetector = field(default_factory=_wire.BareNewlineDetector)
    chunk_raw: bytearray = field(default_factory=bytearray)
    chunk_digest: Any = None  # hashlib object when bodies are not kept
    failed: bool = False


class _Session:
    """One SMTP/LMTP conversation over one stream."""

    def __init__(self, server: TestServer, stream: trio.abc.Stream, conn_id: int) -> None:
        self.server = server
        self.config = server._config
        self.stream: trio.abc.Stream = stream
        self.id = conn_id
        self.transcript = server.transcripts[conn_id]
        self.batches = server.reply_batches[conn_id]
        self.buf = bytearray()
        self.out: list[bytes] = []
        self.discarding = False
        self.discard_head = b""
        self.tls = False
        self.refused = False  # after a 554 greeting only QUIT is served
        self.helo: str | None = None
        self.ext: set[str] = set()
        self.auth_user: str | None = None
        self.txn: _Transaction | None = None
        self.substitute: Reply | None = None  # replaces the next reply (Reply.perform)

    # ---- output -------------------------------------------------------

    def _enhanced(self) -> bool:
        return "ENHANCEDSTATUSCODES" in self.config.extensions

    def _fmt(self, code: int, enhanced: str | None, *texts: str) -> bytes:
        prefix = f"{enhanced} " if enhanced and self._enhanced() else ""
        lines = texts or ("",)
        out = []
        for n, text in enumerate(lines):
            sep = " " if n == len(lines) - 1 else "-"
            out.append(f"{code}{sep}{prefix}{text}".rstrip(" ").encode("utf-8") + b"\r\n")
        return b"".join(out)

    def send(self, raw: bytes) -> None:
        """Queue a reply; queued replies go out together at the next flush."""
        if self.substitute is not None:
            raw = self.substitute.to_wire()
            self.substitute = None
        self.out.append(raw)
        self.transcript.append(("S", raw))

    def reply(self, code: int, enhanced: str | None, *texts: str) -> None:
        self.send(self._fmt(code, enhanced, *texts))

    async def flush(self) -> None:
        if not self.out:
            return
        data = b"".join(self.out)
        self.batches.append(len(self.out))
        self.out.clear()
        await self.stream.send_all(data)

    async def close_now(self) -> NoReturn:
        """Flush replies already owed, then end the session."""
        await self.flush()
        raise _EndSession

    async def send_override(self, reply: Reply) -> None:
        self.send(reply.to_wire())
        if reply.code == 421:
            await self.close_now()

    # ---- input --------------------------------------------------------

    async def receive(self) -> bytes:
        """Flush owed replies, then wait for more input; b"" at end of stream."""
        await self.flush()
        data = await self.stream.receive_some(RECEIVE_SIZE)
        # Sinks get bytes, as they did when all input went through ``buf``;
        # sockets already give bytes, so only other streams pay for a copy.
        return data if isinstance(data, bytes) else bytes(data)

    async def fill(self) -> bool:
        """Like `receive`, appending the input to ``buf``; False at end of stream."""
        data = await self.receive()
        if not data:
            return False
        self.buf += data
        return True

    async def next_line(self, limit: int) -> tuple[bytes, bool] | None:
        """The next line up to and including LF, and whether it was over ``limit``.

        An over-long line is discarded as it arrives (memory stays bounded)
        and reported by its first 80 octets.
        """
        while True:
            i = self.buf.find(b"\n")
            if i >= 0:
                line = bytes(self.buf[: i + 1])
                del self.buf[: i + 1]
                if self.discarding:
                    self.discarding = False
                    return self.discard_head, True
                if len(line) > limit:
                    return line[:80], True
                return line, False
            if self.discarding:
                self.buf.clear()
            elif len(self.buf) > limit:
                self.discarding = True
                self.discard_head = bytes(self.buf[:80])
                self.buf.clear()
            if not await self.fill():
                return None

    async def consume(self, n: int, sink: Callable[[bytes], None]) -> None:
        """Pass exactly ``n`` octets of input to ``sink`` (a BDAT chunk)."""
        if n and self.buf:
            if n >= len(self.buf):
                piece = bytes(self.buf)
                self.buf.clear()
            else:
                with memoryview(self.buf) as view:
                    piece = bytes(view[:n])
                del self.buf[:n]
            sink(piece)
            n -= len(piece)
        while n:
            # Input goes to the sink as received: through ``buf`` it would be
            # copied twice more, a large share of the cost of a big chunk.
            data = await self.receive()
            if not data:
                raise _EndSession
            if len(data) > n:
                self.buf += memoryview(data)[n:]
                data = data[:n]
            sink(data)
            n -= len(data)

    # ---- faults and bookkeeping ----------------------------------------

    async def fault(
        self, stage: Stage, verb: str | None, line: bytes | None, recipient: str | None = None
    ) -> Reply | Drop | None:
        policy = self.server.faults
        if policy is None:
            return None
        point = FaultPoint(stage, verb, line, self.id, self.server._message_count, recipient)
        action = policy(point)
        while isinstance(action, (Delay, DelayThen)):
            await trio.sleep(action.seconds)
            action = action.action if isinstance(action, DelayThen) else None
        return action

    def violation(self, after: str, reason: str) -> None:
        self.server.sync_violations.append(SyncViolation(self.id, after, len(self.buf), reason))

    def pipelining(self) -> bool:
        return "PIPELINING" in self.ext

    def reset_transaction(self) -> None:
        self.txn = None

    def reset_session(self) -> None:
        self.helo = None
        self.ext = set()
        self.auth_user = None
        self.txn = None

    # ---- main loop ----------------------------------------------------

    async def run(self) -> None:
        try:
            action = await self.fault("connect", None, None)
            if isinstance(action, Drop):
                raise _EndSession
            if self.config.tls == "implicit":
                await self.start_tls()
            if isinstance(action, Reply):
                await self.send_override(action)
                # RFC 5321 3.1: after a 554 greeting, wait for QUIT.
                self.refused = action.code == 554
            else:
                kind = "LMTP" if self.config.lmtp else "ESMTP"
                self.reply(220, None, f"{self.config.hostname} {kind} trio-smtp test server")
            while True:
                got = await self.next_line(_wire.MAX_COMMAND_LINE)
                if got is None:
                    return
                await self.handle_line(*got)
        except _EndSession:
            pass

    async def handle_line(self, raw: bytes, too_long: bool) -> None:
        pending = len(self.buf) > 0  # sent before the client could see this reply
        if too_long:
            self.transcript.append(("C", self.redact(raw) + b"..."))
            self.reply(500, "5.5.2", "Error: line too long")
            return
        line = raw[:-2] if raw.endswith(b"\r\n") else raw
        if b"\r" in line or b"\n" in line:
            # RFC 5321 2.3.8: only CRLF ends a line; never guess what a bare
            # LF or CR meant. The line is recorded with its stray CR/LF.
            self.server.bare_newlines_seen = True
            self.transcript.append(("C", self.redact(line)))
            self.reply(500, "5.5.2", "Error: bare <CR> or <LF> received")
            return
        verb, arg = _wire.split_command(line)
        shown = self.redact(line)
        self.transcript.append(("C", shown))
        if b"\x00" in line:
            self.reply(500, "5.5.2", "Error: NUL character received")
            return
        if pending and verb != "BDAT":  # a BDAT chunk follows its command by design
            self.check_sync(verb, arg)
        if self.refused:
            if verb == "QUIT":
                self.reply(221, "2.0.0", "Bye")
                await self.close_now()
            self.reply(503, "5.5.1", "Error: no service, send QUIT")
            return
        action = await self.fault("command", verb, shown)
        if isinstance(action, Drop):
            await self.close_now()
        if isinstance(action, Reply) and action.perform:
            self.substitute = action
            action = None
        if isinstance(action, Reply):
            if verb == "BDAT":
                # The chunk is on its way regardless; read past it to stay in step.
                size = _bdat_args(arg)
                if size is not None:
                    await self.consume(size[0], lambda chunk: None)
            await self.send_override(action)
            if verb == "QUIT":
                await self.close_now()
            return
        handler = self.handlers().get(verb)
        try:
            if handler is None:
                self.reply(500, "5.5.2", "Error: command not recognized")
            else:
                await handler(arg, line)
        finally:
            self.substitute = None

    @staticmethod
    def redact(line: bytes) -> bytes:
        """The line as recorded: an AUTH command keeps only verb and mechanism."""
        words = line.split(b" ")
        if words[0].upper() == b"AUTH" and len(words) > 2:
            return b" ".join([*words[:2], _REDACTED])
        return line

    def check_sync(self, verb: str, arg: bytes) -> None:
        if not self.pipelining():
            self.violation(verb, "command pipelined without PIPELINING")
        elif verb in MUST_END_GROUP:
            words = arg.split(b" ")
            # RFC 4954 4: AUTH with a one-round initial response may be followed.
            if verb == "AUTH" and len(words) == 2 and words[0].upper() in (b"PLAIN", b"EXTERNAL"):
                return
            self.violation(verb, f"{verb} must be the last command of a pipelined group")

    def handlers(self) -> dict[str, Callable[[bytes, bytes], Awaitable[None]]]:
        table: dict[str, Callable[[bytes, bytes], Awaitable[None]]] = {
            "MAIL": self.do_mail,
            "RCPT": self.do_rcpt,
            "DATA": self.do_data,
            "BDAT": self.do_bdat,
            "RSET": self.do_rset,
            "NOOP": self.do_noop,
            "VRFY": self.do_vrfy,
            "EXPN": self.do_expn,
            "HELP": self.do_help,
            "QUIT": self.do_quit,
            "STARTTLS": self.do_starttls,
            "AUTH": self.do_auth,
        }
        if self.config.lmtp:
            table["LHLO"] = self.do_ehlo
        else:
            table["EHLO"] = self.do_ehlo
            table["HELO"] = self.do_helo
        return table

    # ---- greeting commands --------------------------------------------

    def advertised(self) -> list[str]:
        lines = list(self.config.extensions.values())
        if not self.tls and (self.config.tls == "starttls" or self.config.force_starttls):
            lines.append("STARTTLS")
        return lines

    async def do_ehlo(self, arg: bytes, line: bytes) -> None:
        name = arg.decode("utf-8", "replace")
        if not name or " " in name:
            verb = "LHLO" if self.config.lmtp else "EHLO"
            self.reply(501, "5.5.4", f"Syntax: {verb} hostname")
            return
        self.reset_transaction()
        self.helo = name
        keywords = self.advertised()
        self.ext = {kw.split(" ", 1)[0] for kw in keywords}
        self.send(self._fmt(250, None, f"{self.config.hostname} greets {name}", *keywords))

    async def do_helo(self, arg: bytes, line: bytes) -> None:
        name = arg.decode("utf-8", "replace")
        if not name or " " in name:
            self.reply(501, "5.5.4", "Syntax: HELO hostname")
            return
        self.reset_transaction()
        self.helo = name
        self.ext = set()  # HELO: no extensions are in effect
        self.reply(250, None, self.config.hostname)

    async def do_starttls(self, arg: bytes, line: bytes) -> None:
        if arg:
            self.reply(501, "5.5.4", "Syntax: STARTTLS")
        elif self.tls:
            self.reply(503, "5.5.1", "Error: TLS already active")
        elif self.helo is None:
            self.reply(503, "5.5.1", "Error: send EHLO first")
        elif "STARTTLS" not in self.ext:
            self.reply(502, "5.5.1", "Error: STARTTLS not available")
        elif self.config.tls != "starttls":
            self.reply(454, "4.7.0", "TLS not available")
        else:
            self.reply(220, "2.0.0", "Ready to start TLS")
            if self.buf:
                # CVE-2011-0411: bytes sent before the handshake must never be
                # read as if they came over TLS. (Recorded by check_sync.)
                self.buf.clear()
            await self.flush()
            await self.start_tls()
            # RFC 3207 4.2: forget everything learnt before TLS.
            self.reset_session()

    async def start_tls(self) -> None:
        ssl_stream = trio.SSLStream(self.stream, self.server.server_ssl_context(), server_side=True)
        self.stream = ssl_stream
        await ssl_stream.do_handshake()
        self.tls = True

    # ---- simple commands ----------------------------------------------

    async def do_rset(self, arg: bytes, line: bytes) -> None:
        if arg:
            self.reply(501, "5.5.4", "Syntax: RSET")
            return
        self.reset_transaction()
        self.reply(250, "2.0.0", "Ok")

    async def do_noop(self, arg: bytes, line: bytes) -> None:
        self.reply(250, "2.0.0", "Ok")

    async def do_vrfy(self, arg: bytes, line: bytes) -> None:
        if not arg:
            self.reply(501, "5.5.4", "Syntax: VRFY address")
            return
        # RFC 5321 3.5.3: 252 when the server will not say.
        self.reply(252, "2.0.0", "Cannot VRFY user, but will accept message and attempt delivery")

    async def do_expn(self, arg: bytes, line: bytes) -> None:
        self.reply(502, "5.5.1", "Error: EXPN not supported")

    async def do_help(self, arg: bytes, line: bytes) -> None:
        self.reply(214, "2.0.0", "trio-smtp test server; see RFC 5321")

    async def do_quit(self, arg: bytes, line: bytes) -> None:
        if arg:
            self.reply(501, "5.5.4", "Syntax: QUIT")
            return
        self.reply(221, "2.0.0", "Bye")
        await self.close_now()

    # ---- envelope -----------------------------------------------------

    def envelope_ready(self) -> bool:
        """Replies 503/530 and returns False when MAIL or AUTH may not start now."""
        if self.helo is None:
            self.reply(503, "5.5.1", "Error: send HELO/EHLO first")
            return False
        if self.config.require_tls and not self.tls:
            self.reply(530, "5.7.0", "Must issue a STARTTLS command first")
            return False
        return True

    async def do_mail(self, arg: bytes, line: bytes) -> None:
        if not self.envelope_ready():
            return
        if self.txn is not None:
            self.reply(503, "5.5.1", "Error: nested MAIL command")
            return
        try:
            text = arg.decode("utf-8")
        except UnicodeDecodeError:
            self.reply(501, "5.5.2", "Error: invalid UTF-8 in MAIL")
            return
        if text[:5].upper() != "FROM:":
            self.reply(501, "5.5.4", "Syntax: MAIL FROM:<address>")
            return
        try:
            sender, rest = _wire.parse_path(text[5:], allow_null=True)
        except _wire.TooLongError as exc:
            self.reply(501, "5.1.7", f"Bad sender address: {exc.reason}")
            return
        except _wire.GrammarError as exc:
            self.reply(501, "5.1.7", f"Bad sender address syntax: {exc.reason}")
            return
        try:
            params = _wire.parse_params(rest)
        except _wire.GrammarError as exc:
            self.reply(501, "5.5.4", f"Syntax error in parameters: {exc.reason}")
            return
        given = dict(params)
        smtputf8 = "SMTPUTF8" in given
        for key, value in params:
            problem = self.check_mail_param(key, value, smtputf8)
            if problem is not None:
                self.send(problem)
                return
        if not sender.isascii() and not smtputf8:
            self.reply(553, "5.6.7", "Non-ASCII address needs SMTPUTF8")
            return
        body = (given.get("BODY") or "7BIT").upper()
        self.txn = _Transaction(
            mail_from=sender,
            mail_options=tuple(_option(k, v) for k, v in params),
            smtputf8=smtputf8,
            body=body,
        )
        self.reply(250, "2.1.0", "Ok")

    def check_mail_param(self, key: str, value: str | None, smtputf8: bool) -> bytes | None:
        """The error reply for one MAIL parameter, or None when it is acceptable."""
        needs = {
            "SIZE": "SIZE",
            "SMTPUTF8": "SMTPUTF8",
            "RET": "DSN",
            "ENVID": "DSN",
            "AUTH": "AUTH",
            "REQUIRETLS": "REQUIRETLS",
        }
        if key == "BODY":
            wanted = (value or "").upper()
            body_needs = {"7BIT": None, "8BITMIME": "8BITMIME", "BINARYMIME": "BINARYMIME"}
            if wanted not in body_needs:
                return self._fmt(501, "5.5.4", f"Bad BODY value {value}")
            ext = body_needs[wanted]
            if ext is not None and ext not in self.ext:
                return self._fmt(555, "5.5.4", f"BODY={wanted} not supported")
            if not self.ext & {"8BITMIME", "BINARYMIME"}:
                return self._fmt(555, "5.5.4", "BODY not supported")
            return None
        extension = needs.get(key)
        if extension is None or extension not in self.ext:
            return self._fmt(555, "5.5.4", f"Unsupported option: {key}")
        if key == "SIZE":
            if value is None or not value.isdigit() or len(value) > 20:
                return self._fmt(501, "5.5.4", "Bad SIZE value")
            if int(value) > self.config.max_size:
                return self._fmt(552, "5.3.4", "Message size exceeds fixed limit")
        elif key in ("SMTPUTF8", "REQUIRETLS"):
            if value is not None:
                return self._fmt(501, "5.5.4", f"{key} takes no value")
            if key == "REQUIRETLS" and not self.tls:
                return self._fmt(530, "5.7.10", "REQUIRETLS needs TLS")
        elif key == "RET":
            if (value or "").upper() not in ("FULL", "HDRS"):
                return self._fmt(501, "5.5.4", "Bad RET value")
        elif key == "ENVID":
            if value is None or len(value) > 100 or not _wire.is_xtext(value):
                return self._fmt(501, "5.5.4", "Bad ENVID value")
        elif key == "AUTH" and (value is None or not _wire.is_xtext(value)):
            return self._fmt(501, "5.5.4", "Bad AUTH value")
        return None

    async def do_rcpt(self, arg: bytes, line: bytes) -> None:
        txn = self.txn
        if txn is None:
            self.reply(503, "5.5.1", "Error: need MAIL command")
            return
        if txn.chunks is not None:
            self.reply(503, "5.5.1", "Error: RCPT after BDAT")
            return
        try:
            text = arg.decode("utf-8")
        except UnicodeDecodeError:
            self.reply(501, "5.5.2", "Error: invalid UTF-8 in RCPT")
            return
        if text[:3].upper() != "TO:":
            self.reply(501, "5.5.4", "Syntax: RCPT TO:<address>")
            return
        try:
            rcpt, rest = _wire.parse_path(text[3:], allow_null=False, allow_postmaster=True)
        except _wire.GrammarError as exc:
            self.reply(501, "5.1.3", f"Bad recipient address syntax: {exc.reason}")
            return
        try:
            params = _wire.parse_params(rest)
        except _wire.GrammarError as exc:
            self.reply(501, "5.5.4", f"Syntax error in parameters: {exc.reason}")
            return
        for key, value in params:
            if key not in ("NOTIFY", "ORCPT") or "DSN" not in self.ext:
                self.reply(555, "5.5.4", f"Unsupported option: {key}")
                return
            if key == "NOTIFY" and (value is None or not _wire.is_notify(value)):
                self.reply(501, "5.5.4", "Bad NOTIFY value")
                return
            if key == "ORCPT" and (value is None or not _wire.is_orcpt(value, utf8=txn.smtputf8)):
                self.reply(501, "5.5.4", "Bad ORCPT value")
                return
        if not rcpt.isascii() and not txn.smtputf8:
            self.reply(553, "5.6.7", "Non-ASCII address needs SMTPUTF8")
            return
        if rcpt.lower() in self.config.reject_recipients:
            self.reply(550, "5.1.1", f"<{rcpt}>: Recipient address rejected: User unknown")
            return
        if len(txn.rcpts) >= MAX_RECIPIENTS:
            self.reply(452, "4.5.3", "Error: too many recipients")
            return
        txn.rcpts.append((rcpt, tuple(_option(k, v) for k, v in params)))
        self.reply(250, "2.1.5", "Ok")

    # ---- message content ----------------------------------------------

    async def do_data(self, arg: bytes, line: bytes) -> None:
        txn = self.txn
        if arg:
            self.reply(501, "5.5.4", "Syntax: DATA")
            return
        if txn is None:
            self.reply(503, "5.5.1", "Error: need MAIL command")
            return
        if txn.chunks is not None:
            self.reply(503, "5.5.1", "Error: DATA after BDAT")
            return
        if not txn.rcpts:
            self.reply(554, "5.5.1", "Error: no valid recipients")
            return
        if txn.body == "BINARYMIME":
            # RFC 3030 3: BINARYMIME content can only go as BDAT chunks.
            self.reply(503, "5.5.1", "Error: BODY=BINARYMIME requires BDAT")
            return
        self.reply(354, None, "End data with <CR><LF>.<CR><LF>")
        reader = _wire.DataReader(self.config.max_size, keep=self.config.keep_bodies)
        raw = bytearray()
        chunk = bytes(self.buf)
        self.buf.clear()
        while True:
            if chunk:
                rest = reader.feed(chunk)
                if len(raw) < TRANSCRIPT_DATA_LIMIT:
                    used = len(chunk) if rest is None else len(chunk) - len(rest)
                    raw += memoryview(chunk)[: min(used, TRANSCRIPT_DATA_LIMIT - len(raw))]
                if rest is not None:
                    self.buf += rest
                    break
            # As received, not through ``buf``, which would copy it twice more.
            chunk = await self.receive()
            if not chunk:
                raise _EndSession  # the client left mid-message: nothing to record
        self.transcript.append(("C", bytes(raw)))
        if reader.bare.seen:
            self.server.bare_newlines_seen = True
        if self.buf and not self.pipelining():
            self.violation("DATA-END", "command pipelined after the data without PIPELINING")
        await self.finish_message(
            "DATA", bytes(reader.data), reader.oversize, line, reader.size, reader.hexdigest()
        )

    async def do_bdat(self, arg: bytes, line: bytes) -> None:
        parsed = _bdat_args(arg)
        if parsed is None:
            # The chunk length is unknown, so the stream cannot be resynced.
            self.reply(501, "5.5.4", "Syntax: BDAT size [LAST]")
            return
        size, last = parsed
        txn = self.txn
        problem: bytes | None = None
        if "CHUNKING" not in self.ext:
            problem = self._fmt(502, "5.5.1", "Error: CHUNKING not available")
        elif txn is None:
            problem = self._fmt(503, "5.5.1", "Error: need MAIL command")
        elif not txn.rcpts:
            problem = self._fmt(554, "5.5.1", "Error: no valid recipients")
        elif txn.failed:
            problem = self._fmt(503, "5.5.1", "Error: transaction failed, send RSET")
        if problem is not None:
            # RFC 3030 2: the chunk is read and thrown away before replying.
            await self.consume(size, lambda chunk: None)
            self.after_chunk()
            self.send(problem)
            if last:
                self.reset_transaction()  # LAST ends the transaction, failed or not
            return
        assert txn is not None
        if txn.chunks is None:
            txn.chunks = bytearray()
            if not self.config.keep_bodies:
                txn.chunk_digest = hashlib.sha256()
        chunks = txn.chunks
        digest = txn.chunk_digest
        binary = txn.body == "BINARYMIME"
        limit = self.config.max_size

        def sink(piece: bytes) -> None:
            txn.chunk_size += len(piece)
            if digest is not None:
                digest.update(piece)
            elif (room := limit - len(chunks)) > 0:
                chunks.extend(piece[:room])
            if not binary:
                txn.chunk_bare.feed(piece)
            if len(txn.chunk_raw) < TRANSCRIPT_DATA_LIMIT:
                txn.chunk_raw += memoryview(piece)[: TRANSCRIPT_DATA_LIMIT - len(txn.chunk_raw)]

        txn.chunk_raw = bytearray()
        await self.consume(size, sink)
        self.transcript.append(("C", bytes(txn.chunk_raw)))
        self.after_chunk()
        if last:
            txn.chunk_bare.finish()
            if txn.chunk_bare.seen:
                self.server.bare_newlines_seen = True
            await self.finish_message(
                "BDAT",
                bytes(chunks),
                txn.chunk_size > limit,
                line,
                txn.chunk_size,
                digest.hexdigest() if digest is not None else None,
            )
            return
        if txn.chunk_size > limit:
            # RFC 3030 2: refuse the chunk; the client is to RSET, and later
            # chunks of this transaction get 503.
            txn.failed = True
            self.reply(552, "5.3.4", "Message size exceeds fixed limit")
            return
        action = await self.fault("bdat", "BDAT", line)
        if isinstance(action, Drop):
            await self.close_now()
        if isinstance(action, Reply):
            if not action.positive:
                txn.failed = True
            await self.send_override(action)
            return
        self.reply(250, "2.0.0", f"{size} octets received")

    def after_chunk(self) -> None:
        if self.buf and not self.pipelining():
            self.violation("BDAT-CHUNK", "command pipelined after BDAT without PIPELINING")

    async def finish_message(
        self,
        transfer: Literal["DATA", "BDAT"],
        data: bytes,
        oversize: bool,
        line: bytes,
        size: int,
        sha256: str | None,
    ) -> None:
        """Reply to a complete message and record it (see `ReceivedMessage`)."""
        txn = self.txn
        assert txn is not None
        self.reset_transaction()
        if oversize:
            self.server._message_count += 1
            self.reply(552, "5.3.4", "Message size exceeds fixed limit")
            return
        queue_id = self.server._next_queue_id()

        def record(rcpts: list[tuple[str, tuple[str, ...]]], acknowledged: bool) -> None:
            self.server.messages.append(
                ReceivedMessage(
                    mail_from=txn.mail_from,
                    rcpt_tos=tuple(r for r, _ in rcpts),
                    data=data,
                    mail_options=txn.mail_options,
                    rcpt_options=tuple(o for _, o in rcpts),
                    transfer=transfer,
                    tls=self.tls,
                    auth_user=self.auth_user,
                    smtputf8=txn.smtputf8,
                    connection=self.id,
                    acknowledged=acknowledged,
                    queue_id=queue_id,
                    helo=self.helo,
                    size=size,
                    sha256=sha256,
                )
            )

        if not self.config.lmtp:
            action = await self.fault("data_end", transfer, line)
            self.server._message_count += 1
            if isinstance(action, Drop):
                record(txn.rcpts, acknowledged=False)
                await self.close_now()
            if isinstance(action, Reply):
                if action.positive:
                    record(txn.rcpts, acknowledged=True)
                await self.send_override(action)
                return
            record(txn.rcpts, acknowledged=True)
            self.reply(250, "2.0.0", f"Ok: queued as {queue_id}")
            return
        # LMTP (RFC 2033 4.2): one reply per accepted recipient, in RCPT order.
        delivered: list[tuple[str, tuple[str, ...]]] = []
        try:
            for n, (rcpt, options) in enumerate(txn.rcpts):
                action = await self.fault("data_end", transfer, line, recipient=rcpt)
                if isinstance(action, Drop):
                    record(delivered + txn.rcpts[n:], acknowledged=False)
                    await self.close_now()
                if isinstance(action, Reply):
                    if action.positive:
                        delivered.append((rcpt, options))
                    self.send(action.to_wire())
                    if action.code == 421:
                        # Recipients after this one never get an answer.
                        unanswered = delivered + txn.rcpts[n + 1 :]
                        if unanswered:
                            record(unanswered, acknowledged=False)
                        await self.close_now()
                    continue
                delivered.append((rcpt, options))
                self.reply(250, "2.1.5", f"<{rcpt}> Ok: queued as {queue_id}")
        finally:
            self.server._message_count += 1
        if delivered:
            record(delivered, acknowledged=True)

    # ---- AUTH ----------------------------------------------------------

    async def do_auth(self, arg: bytes, line: bytes) -> None:
        if self.helo is None:
            self.reply(503, "5.5.1", "Error: send EHLO first")
            return
        if "AUTH" not in self.ext:
            self.reply(502, "5.5.1", "Error: authentication not enabled")
            return
        if self.auth_user is not None:
            self.reply(503, "5.5.1", "Error: already authenticated")
            return
        if self.txn is not None:
            self.reply(503, "5.5.1", "Error: AUTH not permitted during a mail transaction")
            return
        if not self.envelope_ready():
            return
        words = arg.split(b" ")
        if not words[0] or len(words) > 2:
            self.reply(501, "5.5.4", "Syntax: AUTH mechanism [initial-response]")
            return
        mechanism = words[0].decode("ascii", "replace").upper()
        if mechanism not in self.config.mechanisms or mechanism not in IMPLEMENTED_MECHANISMS:
            self.reply(504, "5.5.4", "Error: unsupported authentication mechanism")
            return
        try:
            initial: bytes | None = None
            if len(words) == 2:
                # RFC 4954 4: "=" is an empty initial response.
                initial = b"" if words[1] == b"=" else self.decode_response(words[1])
            steps = {
                "PLAIN": self.auth_plain,
                "LOGIN": self.auth_login,
                "XOAUTH2": self.auth_xoauth2,
                "OAUTHBEARER": self.auth_oauthbearer,
                "CRAM-MD5": self.auth_cram_md5,
            }
            user = await steps[mechanism](initial)
        except _AuthFailed as failed:
            self.send(failed.reply)
            return
        self.auth_user = user
        self.reply(235, "2.7.0", "Authentication successful")

    def decode_response(self, text: bytes) -> bytes:
        decoded = _wire.decode_sasl(text)
        if decoded is None:
            raise _AuthFailed(self._fmt(501, "5.5.2", "Error: invalid base64 data"))
        return decoded

    def bad_credentials(self) -> _AuthFailed:
        return _AuthFailed(self._fmt(535, "5.7.8", "Authentication credentials invalid"))

    async def challenge(self, payload: bytes) -> bytes:
        """Send ``334 base64(payload)`` and return the decoded answer."""
        self.send(b"334 " + base64.b64encode(payload) + b"\r\n")
        got = await self.next_line(_wire.MAX_AUTH_LINE)
        if got is None:
            raise _EndSession
        raw, too_long = got
        line = raw[:-2] if raw.endswith(b"\r\n") else raw
        if too_long or b"\r" in line or b"\n" in line:
            self.transcript.append(("C", _REDACTED))
            if not too_long:
                self.server.bare_newlines_seen = True
            raise _AuthFailed(self._fmt(500, "5.5.6", "Error: bad authentication exchange line"))
        keep = line in (b"", b"*", b"AQ==")  # no secret in these
        self.transcript.append(("C", line if keep else _REDACTED))
        if line == b"*":
            raise _AuthFailed(self._fmt(501, "5.0.0", "Authentication cancelled"))
        return self.decode_response(line)

    async def auth_plain(self, initial: bytes | None) -> str:
        message = initial if initial is not None else await self.challenge(b"")
        parsed = _wire.parse_plain(message)
        if parsed is None:
            raise _AuthFailed(self._fmt(501, "5.5.2", "Error: malformed PLAIN response"))
        authzid, user, password = parsed
        if authzid and authzid != user:
            raise self.bad_credentials()
        return self.check_password(user, password)

    async def auth_login(self, initial: bytes | None) -> str:
        user = initial if initial is not None else await self.challenge(b"Username:")
        password = await self.challenge(b"Password:")
        try:
            return self.check_password(user.decode("utf-8"), password.decode("utf-8"))
        except UnicodeDecodeError:
            raise self.bad_credentials() from None

    def check_password(self, user: str, password: str) -> str:
        expected = self.config.users.get(user)
        if expected is None or not hmac.compare_digest(
            expected.encode("utf-8"), password.encode("utf-8")
        ):
            raise self.bad_credentials()
        return user

    def token_ok(self, user: str | None, token: str) -> str | None:
        if user is None:
            matches = [u for u, t in self.config.tokens.items() if t == token]
            return matches[0] if len(matches) == 1 else None
        expected = self.config.tokens.get(user)
        if expected is not None and hmac.compare_digest(
            expected.encode("utf-8"), token.encode("utf-8")
        ):
            return user
        return None

    async def auth_xoauth2(self, initial: bytes | None) -> str:
        message = initial if initial is not None else await self.challenge(b"")
        parsed = _wire.parse_xoauth2(message)
        if parsed is None:
            raise _AuthFailed(self._fmt(501, "5.5.2", "Error: malformed XOAUTH2 response"))
        user = self.token_ok(parsed[0], parsed[1])
        if user is not None:
            return user
        # Google's error turn: a JSON challenge, the client answers (an empty
        # line is expected), then 535.
        error = {"status": "401", "schemes": "Bearer", "scope": "https://mail.google.com/"}
        await self.challenge(json.dumps(error).encode())
        raise self.bad_credentials()

    async def auth_oauthbearer(self, initial: bytes | None) -> str:
        message = initial if initial is not None else await self.challenge(b"")
        parsed = _wire.parse_oauthbearer(message)
        if parsed is None:
            raise _AuthFailed(self._fmt(501, "5.5.2", "Error: malformed OAUTHBEARER response"))
        user = self.token_ok(parsed.authzid, parsed.token)
        if user is not None:
            return user
        # RFC 7628 3.2.2/3.2.3: error as a JSON challenge; the client must
        # answer with a lone %x01 and then gets the failure.
        error = {"status": "invalid_token", "schemes": "bearer", "scope": "smtp"}
        answer = await self.challenge(json.dumps(error).encode())
        if answer != b"\x01":
            raise _AuthFailed(self._fmt(501, "5.5.2", "Error: expected %x01 after the error"))
        raise self.bad_credentials()

    async def auth_cram_md5(self, initial: bytes | None) -> str:
        if initial is not None:
            raise _AuthFailed(self._fmt(501, "5.5.4", "Error: CRAM-MD5 takes no initial response"))
        nonce = f"<{secrets.randbelow(10**10)}.{int(time.time())}@{self.config.hostname}>"
        answer = await self.challenge(nonce.encode())
        user_bytes, _, digest = answer.rpartition(b" ")
        try:
            user = user_bytes.decode("utf-8")
        except UnicodeDecodeError:
            raise self.bad_credentials() from None
        password = self.config.users.get(user)
        if password is None:
            raise self.bad_credentials()
        expected = hmac.new(password.encode("utf-8"), nonce.encode(), "md5").hexdigest()
        if not hmac.compare_digest(expected.encode(), digest.lower()):
            raise self.bad_credentials()
        return user


def _option(key: str, value: str | None) -> str:
    return key if value is None else f"{key}={value}"


def _bdat_args(arg: bytes) -> tuple[int, bool] | None:
    """RFC 3030: ``chunk-size [SP "LAST"]``; None when it does not parse."""
    words = arg.split(b" ")
    if not 1 <= len(words) <= 2 or not words[0].isdigit() or len(words[0]) > 20:
        return None
    if len(words) == 2 and words[1].upper() != b"LAST":
        return None
    return int(words[0]), len(words) == 2
