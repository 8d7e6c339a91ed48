"""The ``trio-smtp`` command line (``python -m trio_smtp``).

For now it has one subcommand, ``demo``: it drives the sans-IO
`ClientSession` through a pipelined submission against a small in-memory
peer and prints the wire transcript. It needs no network and no trio.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

from ._core import (
    ClientSession,
    Data,
    Ehlo,
    Mail,
    MailParams,
    Quit,
    Rcpt,
    Response,
    unstuff,
)

DEMO_BODY = (
    b"From: Alice <alice@example.com>\r\n"
    b"To: Bob <bob@example.org>\r\n"
    b"Subject: trio-smtp demo\r\n"
    b"\r\n"
    b"Hello Bob,\n"
    b".this line starts with a dot and is stuffed on the wire\n"
    b"bare LF line endings become CRLF.\n"
)


class _DemoPeer:
    """A tiny pipelining SMTP responder, just enough to show a session."""

    def __init__(self) -> None:
        self.messages: list[bytes] = []
        self._in_data = False
        self._data = bytearray()

    def greeting(self) -> bytes:
        return b"220 demo.invalid ESMTP ready\r\n"

    def receive(self, wire: bytes) -> bytes:
        replies = bytearray()
        buffer = bytearray(wire)
        while buffer:
            if self._in_data:
                end = buffer.find(b"\r\n.\r\n")
                if end < 0:
                    self._data += buffer
                    break
                self._data += buffer[: end + 5]
                del buffer[: end + 5]
                self.messages.append(unstuff(bytes(self._data)))
                self._in_data = False
                replies += b"250 2.0.0 Ok: queued as D3M0\r\n"
                continue
            line, _, rest = bytes(buffer).partition(b"\r\n")
            buffer = bytearray(rest)
            verb = line.split(b" ", 1)[0].split(b":", 1)[0].upper()
            if verb == b"EHLO":
                replies += (
                    b"250-demo.invalid\r\n250-PIPELINING\r\n250-8BITMIME\r\n"
                    b"250-SIZE 10485760\r\n250 ENHANCEDSTATUSCODES\r\n"
                )
            elif verb in (b"MAIL", b"RCPT"):
                replies += b"250 2.1.0 Ok\r\n"
            elif verb == b"DATA":
                self._in_data = True
                self._data = bytearray(b"\r\n")
                replies += b"354 End data with <CR><LF>.<CR><LF>\r\n"
            elif verb == b"QUIT":
                replies += b"221 2.0.0 Bye\r\n"
            else:
                replies += b"502 5.5.2 Not implemented\r\n"
        return bytes(replies)


def _show(direction: str, wire: bytes, out: Callable[[str], None]) -> None:
    for line in wire.split(b"\r\n")[:-1] if wire.endswith(b"\r\n") else wire.split(b"\r\n"):
        out(f"{direction} {line.decode('utf-8', 'backslashreplace')}")


def run_demo(out: Callable[[str], None] = print) -> int:
    """Run one pipelined submission over the sans-IO core; return an exit code."""
    peer = _DemoPeer()
    session = ClientSession()

    def exchange(wire: bytes, replies_due: int) -> list[Response]:
        if wire:
            _show("C:", wire, out)
        answer = peer.receive(wire) if wire else peer.greeting()
        _show("S:", answer, out)
        session.receive_data(answer)
        responses: list[Response] = []
        while len(responses) < replies_due:
            event = session.next_event()
            if not isinstance(event, Response):
                raise RuntimeError(f"the demo peer misbehaved: {event!r}")
            responses.append(event)
        return responses

    exchange(b"", 1)
    exchange(session.send(Ehlo("client.invalid")), 1)
    flight = b"".join(
        [
            session.send(Mail("alice@example.com", MailParams(body="8BITMIME"))),
            session.send(Rcpt("bob@example.org")),
            session.send(Data()),
        ]
    )
    *_, data = exchange(flight, 3)
    if data.reply.code != 354:
        out(f"DATA refused: {data.reply}")
        return 1
    body = session.send_body(DEMO_BODY) + session.end_body()
    (final,) = exchange(body, 1)
    exchange(session.send(Quit()), 1)
    out("")
    out(f"state: {session.state.name}; final reply: {final.reply}")
    out(f"the peer recorded {len(peer.messages)} message(s) of {len(peer.messages[0])} octets")
    return 0 if final.reply.is_positive else 1


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="trio-smtp", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("demo", help="show a pipelined submission over the sans-IO core")
    args = parser.parse_args(argv)
    if args.command == "demo":
        return run_demo()
    parser.error(f"unknown command {args.command}")
    return 2


if __name__ == "__main__":
    sys.exit(main())
