"""trio-smtp's own cost per message, with the network taken out.

This module owns the "no I/O" measurement that ``bench/client.py`` prints
beside its tables: `SMTPClient.send_mail` (and `send_batch`) over a stream
that answers every write at once with canned replies (a checkpoint per
call, as a real socket stream makes), so what is timed is trio-smtp's
Python work per message plus trio's scheduling, and nothing of the kernel,
the server or the network::

    python bench/_canned.py [--messages 5000] [--rounds 3] [--cpu LIST]

It prints one JSON line with microseconds per message (the best of
``--rounds``, as other processes only ever add time) for BDAT (a server
offering CHUNKING) and DATA, each with the addresses given as strings (what
callers usually pass, parsed on every call), as pre-built
`ReversePath`/`ForwardPath` values (parsed once), and through `send_batch`
(``_batch``: the pipelined loop the pool runs too).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time

import _peers
import trio


class CannedStream(trio.abc.Stream):
    """Answers what trio-smtp writes, one message at a time or pipelined, instantly.

    Each write is read as the server would: commands line by line, a DATA
    body (written whole, after the 354) up to its end marker, a BDAT chunk
    by its announced size, across writes if need be; each gets its canned
    reply, all queued for the next ``receive_some``.
    """

    def __init__(self, chunking: bool) -> None:
        self._chunking = chunking
        self._replies = bytearray(b"220 canned.example ESMTP\r\n")
        self._in_body = False
        self._skip = 0

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        await trio.lowlevel.checkpoint()
        data = bytes(data)
        at = 0
        while at < len(data):
            if self._skip:
                taken = min(self._skip, len(data) - at)
                self._skip -= taken
                at += taken
                if not self._skip:
                    self._replies += b"250 2.0.0 Ok: queued as C0FFEE\r\n"
                continue
            if self._in_body:
                end = data.find(b"\r\n.\r\n", at)
                if end < 0:
                    raise RuntimeError("canned stream: a body split over writes")
                self._in_body = False
                self._replies += b"250 2.0.0 Ok: queued as C0FFEE\r\n"
                at = end + 5
                continue
            end = data.index(b"\r\n", at)
            line = data[at:end]
            at = end + 2
            self._answer(line)

    def _answer(self, line: bytes) -> None:
        verb = line[:4].upper()
        if verb == b"EHLO":
            extensions = b"250-CHUNKING\r\n" if self._chunking else b""
            self._replies += b"250-canned.example\r\n250-PIPELINING\r\n" + extensions
            self._replies += b"250 8BITMIME\r\n"
        elif verb == b"MAIL":
            self._replies += b"250 2.1.0 Ok\r\n"
        elif verb == b"RCPT":
            self._replies += b"250 2.1.5 Ok\r\n"
        elif verb == b"DATA":
            self._replies += b"354 End data with <CR><LF>.<CR><LF>\r\n"
            self._in_body = True
        elif verb == b"BDAT":
            self._skip = int(line.split()[1])
            if not self._skip:
                self._replies += b"250 2.0.0 Ok: queued as C0FFEE\r\n"
        elif verb == b"RSET":
            self._replies += b"250 2.0.0 Ok\r\n"
        elif verb == b"QUIT":
            self._replies += b"221 2.0.0 Bye\r\n"
        else:
            raise RuntimeError(f"canned stream: unexpected command {line[:40]!r}")

    async def receive_some(self, max_bytes: int | None = None) -> bytes:
        await trio.lowlevel.checkpoint()
        if not self._replies:
            raise RuntimeError("canned stream: the client waits for a reply it will not get")
        replies, self._replies = bytes(self._replies), bytearray()
        return replies

    async def send_eof(self) -> None:
        await trio.lowlevel.checkpoint()

    async def wait_send_all_might_not_block(self) -> None:
        await trio.lowlevel.checkpoint()

    async def aclose(self) -> None:
        await trio.lowlevel.checkpoint()


async def per_message_us(
    chunking: bool, parsed: bool, messages: int, batch: bool = False
) -> tuple[float, str]:
    """Microseconds of wall time per message over a `CannedStream`, and the transfer used.

    One `send_mail` after another, or with ``batch`` one `send_batch` of
    them all (each message's opening behind the previous end of data).
    """
    import trio_smtp

    body = _peers.message_body()
    smtp = await trio_smtp.SMTPClient.from_stream(
        CannedStream(chunking), tls=trio_smtp.PLAINTEXT, local_hostname=_peers.EHLO_NAME
    )
    sender: str | trio_smtp.ReversePath = _peers.SENDER
    recipient: str | trio_smtp.ForwardPath = _peers.RECIPIENT
    if parsed:
        sender = trio_smtp.ReversePath(_peers.SENDER)
        recipient = trio_smtp.ForwardPath(_peers.RECIPIENT)

    async def send(count: int) -> str:
        if batch:
            message = trio_smtp.Message(sender, [recipient], body)
            results = await smtp.send_batch(message for _ in range(count))
            outcomes = [r for r in results if isinstance(r, trio_smtp.SendOutcome)]
            if len(outcomes) != count:
                raise RuntimeError(f"canned batch: {results[-1]!r}")
            return outcomes[-1].transfer
        transfer = ""
        for _ in range(count):
            transfer = (await smtp.send_mail(sender, [recipient], body)).transfer
        return transfer

    async with smtp:
        await send(min(200, messages))
        start = time.perf_counter()
        transfer = await send(messages)
        seconds = time.perf_counter() - start
    return seconds * 1e6 / messages, transfer


def main(argv: list[str] | None = None) -> int:
    cli = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    cli.add_argument("--messages", type=int, default=5000, help="timed messages per round")
    cli.add_argument("--rounds", type=int, default=3, help="rounds per case; the best is kept")
    cli.add_argument("--cpu", metavar="LIST", help="pin this process to these CPUs (e.g. 0)")
    args = cli.parse_args(argv)
    _peers.pin_cpus(args.cpu)
    _peers.use_source_tree()
    record: dict[str, float] = {}
    for chunking in (True, False):
        for parsed, batch in ((False, False), (True, False), (False, True)):
            best = math.inf
            for _ in range(max(1, args.rounds)):
                us, transfer = trio.run(
                    per_message_us, chunking, parsed, max(1, args.messages), batch
                )
                best = min(best, us)
            suffix = "_parsed" if parsed else "_batch" if batch else ""
            record[f"{transfer}{suffix}_us"] = round(best, 1)
    print(json.dumps(record))
    return 0


if __name__ == "__main__":
    sys.exit(main())
