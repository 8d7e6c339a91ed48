"""The ``trio-smtp`` command line (``python -m trio_smtp``).

``demo`` starts the embedded test server (`trio_smtp.testing`) on
127.0.0.1, sends through it with the real client (STARTTLS with a
throwaway CA, AUTH, a DATA message and a pipelined BDAT batch) and prints
the server's transcript. ``demo --core`` instead walks the sans-IO
`ClientSession` through a submission against an in-memory peer, with no
trio and no sockets.
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


def run_core_demo(out: Callable[[str], None] = print) -> int:
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


DEMO_USER = "alice@example.com"
DEMO_PASSWORD = "demo-password"


async def _send_through_test_server(out: Callable[[str], None]) -> int:
    import trio

    import trio_smtp
    from trio_smtp.testing import open_test_server

    async with open_test_server(tls="starttls", users={DEMO_USER: DEMO_PASSWORD}) as server:
        with trio.fail_after(30):
            async with trio_smtp.open_smtp(
                server.host,
                server.port,
                tls=trio_smtp.STARTTLS,
                ssl_context=server.client_ssl_context(),
                server_hostname="localhost",
                local_hostname="client.example",
            ) as smtp:
                await smtp.login(DEMO_USER, DEMO_PASSWORD)
                first = await smtp.send_mail(
                    DEMO_USER, ["bob@example.org"], DEMO_BODY, transfer="data"
                )
                batch = await smtp.send_batch(
                    [
                        trio_smtp.Message(DEMO_USER, [rcpt], b"Subject: batch\r\n\r\nhi\r\n")
                        for rcpt in ("carol@example.org", "dave@example.org")
                    ]
                )
        for direction, data in server.transcripts[0]:
            lines = data.split(b"\r\n")
            if lines[-1] == b"":
                lines.pop()
            for line in lines:
                out(f"{direction}: {line.decode('utf-8', 'backslashreplace')}")
        out("")
        out(f"DATA message: {first.reply} (tls={first.tls})")
        for outcome in batch:
            out(f"batch message: {outcome if isinstance(outcome, Exception) else outcome.reply}")
        out(f"the server recorded {len(server.messages)} message(s); replies per write:")
        out(f"  {server.reply_batches[0]}  (a number above 1 is a pipelined flight)")
        ok = len(server.messages) == 3 and not server.sync_violations
        return 0 if ok else 1


def run_demo(out: Callable[[str], None] = print) -> int:
    """Send through the embedded test server and print its transcript."""
    try:
        import trustme  # noqa: F401  (the demo's STARTTLS certificate)
    except ImportError:
        out("the demo needs trustme: python3 -m pip install 'trio-smtp[testing]'")
        return 2
    import trio

    return trio.run(_send_through_test_server, out)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="trio-smtp", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    demo = commands.add_parser("demo", help="send a message through the embedded test server")
    demo.add_argument(
        "--core", action="store_true", help="walk the sans-IO core instead (no trio, no sockets)"
    )
    args = parser.parse_args(argv)
    if args.command == "demo":
        return run_core_demo() if args.core else run_demo()
    parser.error(f"unknown command {args.command}")
    return 2


if __name__ == "__main__":
    sys.exit(main())
