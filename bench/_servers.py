"""SMTP servers that ``bench/client.py`` runs in their own processes.

This module owns the server side of the client benchmark, apart from
Postfix's ``smtp-sink`` (a binary the harness starts itself)::

    python bench/_servers.py testing              # trio_smtp.testing server, as shipped
    python bench/_servers.py testing-nochunking   # the same without CHUNKING/BINARYMIME
    python bench/_servers.py aiosmtpd             # aiosmtpd with a discarding handler
    python bench/_servers.py testing-discard      # trio_smtp.testing, bodies hashed, not kept

``--cpu LIST`` pins the process to those CPUs (as ``taskset -c LIST``).

Each listens on 127.0.0.1 on a free port and prints one JSON line
``{"host": ..., "port": ..., "server": ..., "version": ...}``. It then reads
commands, one per line, on its standard input: ``stats`` prints one JSON
line with what it saw since the last ``stats`` (messages, their transfer,
reply flights, pipelining violations) and forgets it, so memory stays
bounded over a long benchmark. ``testing-discard`` (for ``bench/stream.py``)
is the testing server with ``keep_bodies=False`` and a 1 TiB size limit: it
keeps each message's size and SHA-256 instead of its content, and its
``stats`` line adds them as ``sizes`` and ``sha256`` (one entry a message).
The server exits when its standard input closes. Exit status 2 means the
server's package is not installed.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.metadata
import importlib.util
import json
import os
import sys
from collections import Counter
from pathlib import Path
from typing import Any

SERVERS = ("testing", "testing-nochunking", "aiosmtpd", "testing-discard")
#: The default extensions of trio_smtp.testing, less CHUNKING and BINARYMIME.
NO_CHUNKING = ("PIPELINING", "SIZE", "8BITMIME", "SMTPUTF8", "DSN", "ENHANCEDSTATUSCODES")
#: The ``testing-discard`` server's size limit: far above any benchmark message.
DISCARD_MAX_SIZE = 2**40


def _emit(record: dict[str, object]) -> None:
    sys.stdout.write(json.dumps(record) + "\n")
    sys.stdout.flush()


def _use_source_tree() -> None:
    """Make ``import trio_smtp`` find this checkout when run as a script."""
    root = str(Path(__file__).resolve().parent.parent)
    if root not in sys.path:
        sys.path.insert(0, root)


# -- trio_smtp.testing --------------------------------------------------------------


def serve_testing(extensions: tuple[str, ...] | None, name: str, *, discard: bool = False) -> None:
    """Serve trio_smtp.testing; with ``discard``, hash bodies instead of keeping them."""
    import trio

    from trio_smtp.testing import TestServer, open_test_server

    def stats(server: TestServer) -> dict[str, object]:
        flights = sum(len(batches) for batches in server.reply_batches)
        record: dict[str, object] = {
            "messages": len(server.messages),
            "transfer": dict(Counter(message.transfer for message in server.messages)),
            "reply_flights": flights,
            "sync_violations": len(server.sync_violations),
            "violations": sorted({v.reason for v in server.sync_violations})[:3],
            "connections": server.connections,
        }
        if discard:
            record["sizes"] = [message.size for message in server.messages]
            record["sha256"] = [message.sha256 for message in server.messages]
        server.reset()
        return record

    async def main() -> None:
        limits: dict[str, Any] = (
            {"keep_bodies": False, "max_size": DISCARD_MAX_SIZE} if discard else {}
        )
        async with open_test_server(extensions=extensions, **limits) as server:
            _emit(
                {
                    "server": name,
                    "host": server.host,
                    "port": server.port,
                    "version": _version("trio-smtp"),
                }
            )
            commands = trio.lowlevel.FdStream(os.dup(sys.stdin.fileno()))
            async with commands:
                pending = b""
                while data := await commands.receive_some(4096):
                    pending += data
                    *lines, pending = pending.split(b"\n")
                    for line in lines:
                        if line.strip() == b"stats":
                            _emit(stats(server))

    trio.run(main)


# -- aiosmtpd ------------------------------------------------------------------------


def serve_aiosmtpd() -> None:
    from aiosmtpd.smtp import SMTP

    class Sink:
        """Accepts and discards every message, counting them."""

        def __init__(self) -> None:
            self.messages = 0

        async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
            self.messages += 1
            return "250 2.0.0 Ok: discarded"

    async def main() -> None:
        handler = Sink()
        loop = asyncio.get_running_loop()
        server = await loop.create_server(
            lambda: SMTP(handler, hostname="aiosmtpd.bench"), host="127.0.0.1", port=0
        )
        host, port = server.sockets[0].getsockname()[:2]
        _emit({"server": "aiosmtpd", "host": host, "port": port, "version": _version("aiosmtpd")})
        reader = asyncio.StreamReader()
        await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
        async with server:
            while line := await reader.readline():
                if line.strip() == b"stats":
                    _emit({"messages": handler.messages})
                    handler.messages = 0

    asyncio.run(main())


def _version(distribution: str) -> str:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def main(argv: list[str] | None = None) -> int:
    cli = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    cli.add_argument("server", choices=SERVERS)
    cli.add_argument("--cpu", metavar="LIST", help="pin this process to these CPUs (e.g. 0)")
    args = cli.parse_args(argv)
    if args.cpu and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {int(cpu) for cpu in args.cpu.split(",")})
    _use_source_tree()
    module = "aiosmtpd" if args.server == "aiosmtpd" else "trio_smtp.testing"
    try:
        found = importlib.util.find_spec(module) is not None
    except ImportError:
        found = False
    if not found:
        _emit({"server": args.server, "error": "not installed"})
        return 2
    if args.server == "aiosmtpd":
        serve_aiosmtpd()
    elif args.server == "testing":
        serve_testing(None, args.server)
    elif args.server == "testing-discard":
        serve_testing(None, args.server, discard=True)
    else:
        serve_testing(NO_CHUNKING, args.server)
    return 0


if __name__ == "__main__":
    sys.exit(main())
