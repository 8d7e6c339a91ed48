"""The clients that ``bench/client.py`` races: one run of one client in its own process.

This module owns the per-client send loops (trio-smtp, smtplib, aiosmtplib,
smtpproto), the message they all send, and the timing of one run. A run
connects once, sends ``--warmup`` messages untimed, then ``--messages``
messages one after the other (each send awaited before the next: the
per-message latency regime), and prints one JSON line::

    python bench/_peers.py CLIENT HOST PORT [--messages N] [--warmup W]
        [--count-io] [--profile FILE] [--cpu LIST]

    {"client": ..., "cpu_us_per_msg": ..., "version": ..., "messages": N,
     "seconds": ..., "msgs_per_s": ..., "transfer": ..., "extra": {...}}

``seconds`` is the wall time of the timed loop only (connecting, EHLO,
warm-up and QUIT are outside it); ``cpu_us_per_msg`` the process's CPU time
in that loop per message, split into user and system time in ``extra``.

Each client uses its own public API the way its documentation shows; the
body is the same ~1 KiB of canonical CRLF text for all of them (smtpproto
only takes an `email.message.EmailMessage`, so it gets the same text parsed
once, before timing). ``--count-io`` (trio-smtp only) wraps the socket in a
stream that counts ``send_all`` and ``receive_some`` calls; ``--profile``
runs the timed loop under cProfile and writes the stats to FILE (and the
top functions to stderr). Exit status 2 means the client is not installed,
1 that the run failed.
"""

from __future__ import annotations

import argparse
import asyncio
import email
import email.policy
import importlib.metadata
import importlib.util
import json
import os
import smtplib
import sys
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path

from _common import Timer

CLIENTS = ("trio-smtp", "trio-smtp-batch", "smtplib", "aiosmtplib", "smtpproto")
#: The other libraries, which the targets compare trio-smtp against.
PEERS = ("smtplib", "aiosmtplib", "smtpproto")
#: Reference floors, not clients: trio-smtp's exact exchange with bare sockets.
FLOORS = ("bare-trio", "bare-socket")
#: The module each client needs: a client whose module is missing is "not installed".
MODULES = {
    "trio-smtp": "trio_smtp",
    "trio-smtp-batch": "trio_smtp",
    "smtplib": "smtplib",
    "aiosmtplib": "aiosmtplib",
    "smtpproto": "smtpproto",
    "bare-trio": "trio",
    "bare-socket": "socket",
}
#: What installs a missing client.
INSTALL = {
    "trio-smtp": "pip install -e .",
    "trio-smtp-batch": "pip install -e .",
    "smtplib": "(standard library)",
    "aiosmtplib": "pip install aiosmtplib",
    "smtpproto": "pip install smtpproto",
    "bare-trio": "pip install trio",
    "bare-socket": "(standard library)",
}
SENDER = "bench-sender@example.com"
RECIPIENT = "bench-recipient@example.org"
EHLO_NAME = "bench-client.example.com"
BODY_SIZE = 1024


def message_body(size: int = BODY_SIZE) -> bytes:
    """About ``size`` octets of plain mail: headers and 70-column CRLF text lines."""
    head = (
        b"From: Bench Sender <bench-sender@example.com>\r\n"
        b"To: Bench Recipient <bench-recipient@example.org>\r\n"
        b"Subject: trio-smtp client benchmark\r\n"
        b"Date: Thu, 01 Jan 2026 00:00:00 +0000\r\n"
        b"Message-ID: <bench.0@example.com>\r\n"
        b"MIME-Version: 1.0\r\n"
        b"Content-Type: text/plain; charset=us-ascii\r\n"
        b"\r\n"
    )
    line = b"The quick brown fox jumps over the lazy dog; 0123456789 abcdefghij.\r\n"
    lines = max(1, (size - len(head)) // len(line))
    return head + line * lines


def client_version(client: str) -> str | None:
    """The installed version of ``client``, or None when it cannot be imported."""
    if client in ("smtplib", "bare-socket"):
        return f"Python {sys.version.split()[0]}"
    if client == "bare-trio" and importlib.util.find_spec("trio") is not None:
        return f"trio {importlib.metadata.version('trio')}"
    if client in ("trio-smtp", "trio-smtp-batch"):
        use_source_tree()
    if importlib.util.find_spec(MODULES[client]) is None:
        return None
    distribution = "trio-smtp" if client == "trio-smtp-batch" else client
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        # trio-smtp run from this checkout without being installed.
        return "source tree" if client == "trio-smtp" else "unknown"


@dataclass
class RunResult:
    """What one run measured."""

    client: str
    messages: int
    seconds: float
    transfer: str | None = None
    extra: dict[str, object] = field(default_factory=dict)
    #: CPU time of this process during the timed loop (the rest is waiting);
    #: ``extra`` splits it into user and system (kernel) time.
    cpu_seconds: float = 0.0


# -- trio-smtp -----------------------------------------------------------------


def run_trio_smtp(
    host: str,
    port: int,
    messages: int,
    warmup: int,
    timer: Timer,
    count_io: bool,
    batch: bool = False,
) -> RunResult:
    import trio

    use_source_tree()
    import trio_smtp

    body = message_body()

    class CountingStream(trio.abc.Stream):
        """Counts the calls the client makes on its transport."""

        def __init__(self, inner: trio.SocketStream) -> None:
            self.inner = inner
            self.sends = 0
            self.receives = 0

        async def send_all(self, data: bytes | bytearray | memoryview) -> None:
            self.sends += 1
            await self.inner.send_all(data)

        async def wait_send_all_might_not_block(self) -> None:
            await self.inner.wait_send_all_might_not_block()

        async def send_eof(self) -> None:
            await self.inner.send_eof()

        async def receive_some(self, max_bytes: int | None = None) -> bytes | bytearray:
            self.receives += 1
            return await self.inner.receive_some(max_bytes)

        async def aclose(self) -> None:
            await self.inner.aclose()

    async def send_all(smtp: trio_smtp.SMTPClient) -> str:
        transfer = ""
        for _ in range(warmup):
            await smtp.send_mail(SENDER, [RECIPIENT], body)
        if batch:
            # One send_batch: each message's MAIL/RCPT/DATA rides behind the
            # previous end of data (RFC 2920 3.1).
            batch_messages = [trio_smtp.Message(SENDER, [RECIPIENT], body)] * messages
            timer.start()
            results = await smtp.send_batch(batch_messages)
            timer.stop()
            last = results[-1]
            if not isinstance(last, trio_smtp.SendOutcome):
                raise RuntimeError(f"send_batch failed: {last!r}")
            return last.transfer
        timer.start()
        for _ in range(messages):
            outcome = await smtp.send_mail(SENDER, [RECIPIENT], body)
            transfer = outcome.transfer
        timer.stop()
        return transfer

    async def main() -> RunResult:
        extra: dict[str, object] = {}
        if count_io:
            counting = CountingStream(await trio.open_tcp_stream(host, port))
            smtp = await trio_smtp.SMTPClient.from_stream(
                counting, tls=trio_smtp.PLAINTEXT, local_hostname=EHLO_NAME
            )
            async with smtp:
                sends, receives = counting.sends, counting.receives
                transfer = await send_all(smtp)
                total = warmup + messages
                extra["send_all_per_msg"] = round((counting.sends - sends) / total, 3)
                extra["receive_some_per_msg"] = round((counting.receives - receives) / total, 3)
                extra["capabilities"] = sorted(smtp.capabilities.keywords)
        else:
            async with trio_smtp.open_smtp(
                host, port, tls=trio_smtp.PLAINTEXT, local_hostname=EHLO_NAME
            ) as smtp:
                transfer = await send_all(smtp)
                extra["capabilities"] = sorted(smtp.capabilities.keywords)
        name = "trio-smtp-batch" if batch else "trio-smtp"
        return RunResult(name, messages, timer.seconds, transfer, extra)

    return trio.run(main)


# -- smtplib -------------------------------------------------------------------------


def run_smtplib(host: str, port: int, messages: int, warmup: int, timer: Timer) -> RunResult:
    body = message_body()
    with smtplib.SMTP(host, port, local_hostname=EHLO_NAME) as smtp:
        smtp.ehlo()

        def send() -> None:
            refused = smtp.sendmail(SENDER, [RECIPIENT], body)
            if refused:
                raise RuntimeError(f"smtplib: recipients refused: {refused}")

        for _ in range(warmup):
            send()
        timer.start()
        for _ in range(messages):
            send()
        timer.stop()
    return RunResult("smtplib", messages, timer.seconds, "DATA")


# -- aiosmtplib ---------------------------------------------------------------


def run_aiosmtplib(host: str, port: int, messages: int, warmup: int, timer: Timer) -> RunResult:
    import aiosmtplib  # type: ignore[import-not-found,unused-ignore]

    body = message_body()

    async def main() -> RunResult:
        smtp = aiosmtplib.SMTP(
            hostname=host, port=port, use_tls=False, start_tls=False, local_hostname=EHLO_NAME
        )
        async with smtp:

            async def send() -> None:
                refused, _ = await smtp.sendmail(SENDER, [RECIPIENT], body)
                if refused:
                    raise RuntimeError(f"aiosmtplib: recipients refused: {refused}")

            for _ in range(warmup):
                await send()
            timer.start()
            for _ in range(messages):
                await send()
            timer.stop()
        return RunResult("aiosmtplib", messages, timer.seconds, "DATA")

    return asyncio.run(main())


# -- smtpproto (anyio, on trio) ----------------------------------------------------


def run_smtpproto(host: str, port: int, messages: int, warmup: int, timer: Timer) -> RunResult:
    import anyio  # type: ignore[import-not-found,unused-ignore]
    from smtpproto.client import (  # type: ignore[import-not-found,unused-ignore]
        AsyncSMTPClient,
    )

    message = email.message_from_bytes(message_body(), policy=email.policy.default)
    assert isinstance(message, EmailMessage)

    async def main() -> RunResult:
        client = AsyncSMTPClient(host, port, domain=EHLO_NAME)
        async with client.connect() as session:

            async def send() -> None:
                response = await session.send_message(
                    message, sender=SENDER, recipients=[RECIPIENT]
                )
                if response.code != 250:
                    raise RuntimeError(f"smtpproto: final reply {response.code}")

            for _ in range(warmup):
                await send()
            timer.start()
            for _ in range(messages):
                await send()
            timer.stop()
        return RunResult("smtpproto", messages, timer.seconds, "DATA")

    result: RunResult = anyio.run(main, backend="trio")
    return result


# -- floors: trio-smtp's exchange with bare sockets and no SMTP code ----------------


def _bare_flights(extensions: bytes, body: bytes) -> list[tuple[bytes, int]]:
    """What trio-smtp writes per message, as (bytes, replies to wait for) per flight."""
    assert b"\r\n." not in body and not body.startswith(b".")  # nothing to dot-stuff
    envelope = [
        f"MAIL FROM:<{SENDER}>\r\n".encode(),
        f"RCPT TO:<{RECIPIENT}>\r\n".encode(),
    ]
    if b"\r\n250-CHUNKING\r\n" in extensions or b"\r\n250 CHUNKING\r\n" in extensions:
        last = b"BDAT %d LAST\r\n" % len(body) + body
        return [(b"".join(envelope) + last, 3)]
    if b"PIPELINING" in extensions:
        return [(b"".join(envelope) + b"DATA\r\n", 3), (body + b".\r\n", 1)]
    return [(envelope[0], 1), (envelope[1], 1), (b"DATA\r\n", 1), (body + b".\r\n", 1)]


class _ReplyCounter:
    """Counts complete replies in what was read; checks they are 2xx or 3xx."""

    def __init__(self) -> None:
        self.buffer = b""
        #: The replies the last successful `take` consumed.
        self.consumed = b""

    def take(self, count: int) -> bool:
        """Consume ``count`` replies if they are all here; False if more must be read."""
        lines = self.buffer.split(b"\r\n")
        finals = [i for i, line in enumerate(lines[:-1]) if line[3:4] != b"-"]
        if len(finals) < count:
            return False
        for i in finals[:count]:
            if lines[i][:1] not in (b"2", b"3"):
                raise RuntimeError(f"bare client: refused: {lines[i]!r}")
        self.consumed = b"\r\n".join(lines[: finals[count - 1] + 1]) + b"\r\n"
        self.buffer = b"\r\n".join(lines[finals[count - 1] + 1 :])
        return True


def run_bare_socket(host: str, port: int, messages: int, warmup: int, timer: Timer) -> RunResult:
    import socket

    replies = _ReplyCounter()
    with socket.create_connection((host, port)) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

        def wait(count: int) -> None:
            while not replies.take(count):
                data = sock.recv(65536)
                if not data:
                    raise RuntimeError("bare client: the server closed the connection")
                replies.buffer += data

        wait(1)
        sock.sendall(f"EHLO {EHLO_NAME}\r\n".encode())
        wait(1)
        flights = _bare_flights(b"\r\n" + replies.consumed, message_body())
        for index in range(warmup + messages):
            if index == warmup:
                timer.start()
            for data, count in flights:
                sock.sendall(data)
                wait(count)
        timer.stop()
        sock.sendall(b"QUIT\r\n")
        wait(1)
    transfer = "BDAT" if b"\r\nBDAT " in flights[0][0] else "DATA"
    return RunResult("bare-socket", messages, timer.seconds, transfer)


def run_bare_trio(host: str, port: int, messages: int, warmup: int, timer: Timer) -> RunResult:
    import trio

    async def main() -> RunResult:
        replies = _ReplyCounter()
        stream = await trio.open_tcp_stream(host, port)
        async with stream:

            async def wait(count: int) -> None:
                while not replies.take(count):
                    data = await stream.receive_some(65536)
                    if not data:
                        raise RuntimeError("bare client: the server closed the connection")
                    replies.buffer += data

            await wait(1)
            await stream.send_all(f"EHLO {EHLO_NAME}\r\n".encode())
            await wait(1)
            flights = _bare_flights(b"\r\n" + replies.consumed, message_body())
            for index in range(warmup + messages):
                if index == warmup:
                    timer.start()
                for data, count in flights:
                    await stream.send_all(data)
                    await wait(count)
            timer.stop()
            await stream.send_all(b"QUIT\r\n")
            await wait(1)
        transfer = "BDAT" if b"\r\nBDAT " in flights[0][0] else "DATA"
        return RunResult("bare-trio", messages, timer.seconds, transfer)

    return trio.run(main)


# -- the command line ---------------------------------------------------------------


def pin_cpus(spec: str | None) -> None:
    """Run this process on the CPUs listed in ``spec`` ("0" or "0,1"); None: leave it be."""
    if spec and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {int(cpu) for cpu in spec.split(",")})


def use_source_tree() -> None:
    """Make ``import trio_smtp`` find this checkout when run as a script."""
    root = str(Path(__file__).resolve().parent.parent)
    if root not in sys.path:
        sys.path.insert(0, root)


def run(
    client: str,
    host: str,
    port: int,
    messages: int,
    warmup: int,
    *,
    count_io: bool = False,
    profile: str | None = None,
) -> RunResult:
    """One run of ``client``: connect, warm up, time ``messages`` sequential sends."""
    timer = Timer(profile)
    if client in ("trio-smtp", "trio-smtp-batch"):
        batch = client == "trio-smtp-batch"
        result = run_trio_smtp(host, port, messages, warmup, timer, count_io, batch)
    elif client == "smtplib":
        result = run_smtplib(host, port, messages, warmup, timer)
    elif client == "aiosmtplib":
        result = run_aiosmtplib(host, port, messages, warmup, timer)
    elif client == "smtpproto":
        result = run_smtpproto(host, port, messages, warmup, timer)
    elif client == "bare-trio":
        result = run_bare_trio(host, port, messages, warmup, timer)
    elif client == "bare-socket":
        result = run_bare_socket(host, port, messages, warmup, timer)
    else:
        raise ValueError(f"unknown client {client!r}")
    result.cpu_seconds = timer.cpu_seconds
    result.extra["user_us_per_msg"] = round(timer.user_seconds * 1e6 / messages, 1)
    result.extra["system_us_per_msg"] = round(timer.system_seconds * 1e6 / messages, 1)
    return result


def main(argv: list[str] | None = None) -> int:
    cli = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    cli.add_argument("client", choices=CLIENTS + FLOORS)
    cli.add_argument("host")
    cli.add_argument("port", type=int)
    cli.add_argument("--messages", type=int, default=2000, help="timed messages (2000)")
    cli.add_argument("--warmup", type=int, default=20, help="untimed messages first (20)")
    cli.add_argument("--count-io", action="store_true", help="trio-smtp: count transport calls")
    cli.add_argument("--profile", metavar="FILE", help="cProfile the timed loop into FILE")
    cli.add_argument("--cpu", metavar="LIST", help="pin this process to these CPUs (e.g. 0)")
    args = cli.parse_args(argv)
    pin_cpus(args.cpu)
    if args.client in ("trio-smtp", "trio-smtp-batch"):
        use_source_tree()
    version = client_version(args.client)
    if version is None:
        print(json.dumps({"client": args.client, "error": "not installed"}))
        return 2
    try:
        result = run(
            args.client,
            args.host,
            args.port,
            max(1, args.messages),
            max(0, args.warmup),
            count_io=args.count_io,
            profile=args.profile,
        )
    except Exception as exc:
        print(json.dumps({"client": args.client, "error": f"{type(exc).__name__}: {exc}"}))
        raise
    record = {
        "client": result.client,
        "cpu_us_per_msg": round(result.cpu_seconds * 1e6 / result.messages, 1),
        "version": version,
        "messages": result.messages,
        "seconds": result.seconds,
        "msgs_per_s": result.messages / result.seconds if result.seconds > 0 else None,
        "transfer": result.transfer,
        "extra": result.extra,
    }
    print(json.dumps(record))
    return 0


if __name__ == "__main__":
    sys.exit(main())
