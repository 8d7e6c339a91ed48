"""Bulk benchmark: `trio_smtp.open_pool` against aiosmtplib, both over N connections.

Run from the repository root::

    python bench/bulk.py [--messages 10000] [--connections 1,4,16] [--repeat 3]
                         [--delay-ms 5] [--proxy-messages N] [--quick] [--json out.json]

This module owns the bulk benchmark: it starts Postfix's ``smtp-sink`` (with
``bench/client.py``'s helpers), and for each network (loopback, then the
latency proxy with ``--delay-ms`` each way) and each connection count, runs
every client in a fresh process per repeat, the clients' order rotating
between repeats, and prints one table with medians and the ratio of
trio-smtp's (and bare-trio's) messages/s to aiosmtplib's measured in the same
run.

- ``trio-smtp``: ``open_pool(connect, max_connections=N)`` and one
  ``send_all`` over a generator of ``--messages`` `trio_smtp.Message` objects
  (bodies made lazily); every delivery must be DELIVERED.
- ``aiosmtplib``: N connected ``aiosmtplib.SMTP`` clients and one asyncio
  task per message over an ``asyncio.Semaphore(N)``, each borrowing an idle
  client, the usual way to send in bulk with it.
- ``bare-trio``: not a client under test but the reference: trio-smtp's
  exchange with no SMTP library code, over N plain ``trio.open_tcp_stream``
  connections (one task each, the messages split evenly). Each reads the
  greeting, sends EHLO, then MAIL, RCPT and DATA in one write; per message
  it writes the (dot-stuffed) body and end of data with the next message's
  MAIL/RCPT/DATA behind it, and reads the 1 or 4 replies, checking each
  code (250 or 354). Its msgs/s is what any client with this exchange can
  reach through this proxy and server: the gap between its figure and 4x
  aiosmtplib is in the path (proxy, server, kernel), not in trio-smtp. Its
  ratio to aiosmtplib is shown with the verdict ``floor``; the target is
  judged on trio-smtp's row only.

Each run's time covers connecting and every send (not the final QUIT). The
message is bench/_peers.py's ~1 KiB text. Through the proxy, a run with
fewer than 16 connections sends ``messages * connections / 16`` messages
(at least 200; ``--proxy-messages`` sets a fixed count), so that the slow,
few-connection cases do not take minutes; the 16-connection case sends all.

Target (medians, same run): through the proxy (10 ms round trip) with 16
connections, trio-smtp >= 4x aiosmtplib. The other rows are for information.

Through the proxy two more columns come from its per-connection counters:
``rt/msg``, the reply flights per message (each connection's greeting, EHLO
and QUIT included), and ``ms/rt``, each connection's mean round trip
(seconds x connections / reply flights). At this round trip the ratio is
about aiosmtplib's ``rt/msg`` over trio-smtp's times their ``ms/rt`` the
other way round. smtp-sink offers no CHUNKING, so every message goes
through DATA, whose body must wait for the 354 (RFC 2920 3.1; SECURITY.md
16): trio-smtp's floor is one round trip per message (MAIL, RCPT and DATA
ride with the previous message's end of data), aiosmtplib's is four, and
4x is the ceiling unless trio-smtp's round trips are shorter than
aiosmtplib's. bare-trio does exactly trio-smtp's flights, so its ``ms/rt``
is the shortest round trip this path gives that exchange, and its ratio
the most trio-smtp can show here.

The same file is the per-run worker: ``python bench/bulk.py --run CLIENT
HOST PORT --messages N --connections C`` prints one JSON line. The exit
status is 1 when a run fails (an error, or a message not delivered); a miss
of the target is printed, not an exit status, since timings depend on the
machine.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import shlex
import statistics
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import _peers
import client as harness
from _common import finish_run

if TYPE_CHECKING:
    import trio

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
CLIENTS = ("trio-smtp", "aiosmtplib", "bare-trio")
#: Not a client under test: trio-smtp's exchange with no SMTP code (see above).
FLOOR = "bare-trio"
PROXY_TARGET_CONNECTIONS = 16
PROXY_TARGET = 4.0
RUN_TIMEOUT = 900.0


# -- one run, in its own process ------------------------------------------------------


def run_trio_smtp(host: str, port: int, messages: int, connections: int) -> dict[str, Any]:
    import functools

    import trio

    _peers.use_source_tree()
    import trio_smtp

    body = _peers.message_body()
    # trio_smtp imports its modules on first use: resolve the names before the
    # clock starts, as the aiosmtplib run imports aiosmtplib before its own.
    message, open_pool, open_smtp = trio_smtp.Message, trio_smtp.open_pool, trio_smtp.open_smtp

    def bulk() -> Iterator[trio_smtp.Message]:
        for number in range(messages):
            yield message(_peers.SENDER, [_peers.RECIPIENT], body, key=number)

    async def main() -> dict[str, Any]:
        connect = functools.partial(
            open_smtp,
            host,
            port,
            tls=trio_smtp.PLAINTEXT,
            local_hostname=_peers.EHLO_NAME,
        )
        counts: Counter[str] = Counter()
        start = time.perf_counter()
        async with open_pool(connect, max_connections=connections) as pool:
            async for delivery in pool.send_all(bulk()):
                counts[delivery.status.name] += 1
            seconds = time.perf_counter() - start
            stats = pool.statistics()
        if counts["DELIVERED"] != messages:
            raise RuntimeError(f"not every message was delivered: {dict(counts)}")
        return {"seconds": seconds, "connections_opened": stats.connections_opened}

    result: dict[str, Any] = trio.run(main)
    return result


def run_aiosmtplib(host: str, port: int, messages: int, connections: int) -> dict[str, Any]:
    import aiosmtplib  # type: ignore[import-not-found,unused-ignore]

    body = _peers.message_body()

    async def main() -> dict[str, Any]:
        clients = [
            aiosmtplib.SMTP(
                hostname=host,
                port=port,
                use_tls=False,
                start_tls=False,
                local_hostname=_peers.EHLO_NAME,
            )
            for _ in range(connections)
        ]
        start = time.perf_counter()
        await asyncio.gather(*(smtp.connect() for smtp in clients))
        idle: asyncio.Queue[Any] = asyncio.Queue()
        for smtp in clients:
            idle.put_nowait(smtp)
        semaphore = asyncio.Semaphore(connections)

        async def send_one() -> None:
            async with semaphore:
                smtp = await idle.get()
                try:
                    refused, _ = await smtp.sendmail(_peers.SENDER, [_peers.RECIPIENT], body)
                    if refused:
                        raise RuntimeError(f"aiosmtplib: recipients refused: {refused}")
                finally:
                    idle.put_nowait(smtp)

        await asyncio.gather(*(send_one() for _ in range(messages)))
        seconds = time.perf_counter() - start
        for smtp in clients:
            await smtp.quit()
        return {"seconds": seconds, "connections_opened": connections}

    return asyncio.run(main())


def _dot_stuffed(body: bytes) -> bytes:
    """``body`` as it goes after DATA: CRLF-terminated, each leading "." doubled."""
    if not body.endswith(b"\r\n"):
        body += b"\r\n"
    body = body.replace(b"\r\n.", b"\r\n..")
    return b"." + body if body.startswith(b".") else body


class _BareReplies:
    """Reads replies off one connection and checks each final line's code."""

    def __init__(self, stream: trio.abc.ReceiveStream) -> None:
        self._stream = stream
        self._buffer = bytearray()

    async def expect(self, *codes: bytes) -> None:
        """Read one complete reply per code in ``codes``; raise if a code differs."""
        for code in codes:
            while True:
                end = self._buffer.find(b"\r\n")
                if end < 0:
                    data = await self._stream.receive_some(65536)
                    if not data:
                        raise RuntimeError("bare-trio: the server closed the connection")
                    self._buffer += data
                    continue
                line = bytes(self._buffer[:end])
                del self._buffer[: end + 2]
                if line[3:4] == b"-":
                    continue  # a continuation line of a multiline reply
                if line[:3] != code:
                    raise RuntimeError(f"bare-trio: expected {code.decode()}, got {line!r}")
                break


def run_bare_trio(host: str, port: int, messages: int, connections: int) -> dict[str, Any]:
    """trio-smtp's pool exchange with no SMTP library: the floor of that exchange."""
    import trio

    envelope = f"MAIL FROM:<{_peers.SENDER}>\r\nRCPT TO:<{_peers.RECIPIENT}>\r\nDATA\r\n".encode()
    end_of_data = _dot_stuffed(_peers.message_body()) + b".\r\n"
    with_next = end_of_data + envelope
    opened = max(1, min(connections, messages))
    # Split evenly, the remainder spread one each over the first connections.
    shares = [messages // opened + int(index < messages % opened) for index in range(opened)]

    async def main() -> dict[str, Any]:
        sent = 0
        running = opened
        all_sent = trio.Event()
        finished = 0.0

        async def one_connection(share: int) -> None:
            nonlocal sent, running, finished
            stream = await trio.open_tcp_stream(host, port)
            async with stream:
                replies = _BareReplies(stream)
                await replies.expect(b"220")
                await stream.send_all(f"EHLO {_peers.EHLO_NAME}\r\n".encode())
                await replies.expect(b"250")
                if share:
                    await stream.send_all(envelope)
                    await replies.expect(b"250", b"250", b"354")
                for number in range(share):
                    if number < share - 1:
                        await stream.send_all(with_next)
                        await replies.expect(b"250", b"250", b"250", b"354")
                    else:
                        await stream.send_all(end_of_data)
                        await replies.expect(b"250")
                    sent += 1
                running -= 1
                if not running:
                    finished = time.perf_counter()
                    all_sent.set()
                # QUIT once every connection is done, outside the timing.
                await all_sent.wait()
                await stream.send_all(b"QUIT\r\n")
                await replies.expect(b"221")

        start = time.perf_counter()
        async with trio.open_nursery() as nursery:
            for share in shares:
                nursery.start_soon(one_connection, share)
        if sent != messages:
            raise RuntimeError(f"bare-trio: {sent} of {messages} messages sent")
        return {"seconds": finished - start, "connections_opened": opened}

    result: dict[str, Any] = trio.run(main)
    return result


RUNNERS = {"trio-smtp": run_trio_smtp, "aiosmtplib": run_aiosmtplib, "bare-trio": run_bare_trio}


def worker(argv: Sequence[str]) -> int:
    cli = argparse.ArgumentParser(prog="bench/bulk.py --run")
    cli.add_argument("client", choices=CLIENTS)
    cli.add_argument("host")
    cli.add_argument("port", type=int)
    cli.add_argument("--messages", type=int, required=True)
    cli.add_argument("--connections", type=int, required=True)
    cli.add_argument("--cpu", metavar="LIST")
    args = cli.parse_args(argv)
    _peers.pin_cpus(args.cpu)
    version = _peers.client_version(args.client)
    if version is None:
        print(json.dumps({"client": args.client, "error": "not installed"}))
        return 2
    runner = RUNNERS[args.client]
    try:
        result = runner(args.host, args.port, args.messages, args.connections)
    except Exception as exc:
        print(json.dumps({"client": args.client, "error": f"{type(exc).__name__}: {exc}"}))
        raise
    seconds = float(result["seconds"])
    record = {
        "client": args.client,
        "version": version,
        "messages": args.messages,
        "connections": args.connections,
        "seconds": seconds,
        "msgs_per_s": args.messages / seconds if seconds > 0 else None,
        "connections_opened": result["connections_opened"],
    }
    print(json.dumps(record))
    return 0


# -- orchestration ----------------------------------------------------------------------


@dataclass
class Row:
    """Every repeat of one client in one (network, connections) case."""

    network: str
    connections: int
    messages: int
    client: str
    command: str
    rates: list[float] = field(default_factory=list)
    # Through the proxy only: reply flights per message, and each
    # connection's mean round trip in ms.
    flights_per_message: list[float] = field(default_factory=list)
    round_trip_ms: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    not_installed: bool = False

    @property
    def median(self) -> float | None:
        return statistics.median(self.rates) if self.rates else None


def _argv(client: str, port: int, messages: int, connections: int, cpu: str | None) -> list[str]:
    argv = [str(HERE / "bulk.py"), "--run", client, "127.0.0.1", str(port)]
    argv += ["--messages", str(messages), "--connections", str(connections)]
    if cpu is not None:
        argv += ["--cpu", cpu]
    return argv


def _shown(argv: Sequence[str]) -> str:
    return shlex.join(["python", os.path.relpath(argv[0], ROOT), *argv[1:]])


def _run(argv: Sequence[str]) -> dict[str, Any]:
    try:
        done = subprocess.run(
            [sys.executable, *argv], capture_output=True, text=True, timeout=RUN_TIMEOUT, cwd=ROOT
        )
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {RUN_TIMEOUT:.0f} s"}
    record: dict[str, Any] = {}
    for line in reversed(done.stdout.splitlines()):
        try:
            record = json.loads(line)
            break
        except ValueError:
            continue
    if done.returncode == 2:
        record["not_installed"] = True
    elif done.returncode != 0 and "error" not in record:
        tail = done.stderr.strip().splitlines()[-1:] or [f"exit status {done.returncode}"]
        record = {"error": tail[0]}
    return record


def run_cases(
    network: str,
    port: int,
    counts: dict[int, int],
    repeat: int,
    cpu: str | None,
    proxy: harness.Managed | None,
) -> list[Row]:
    """Every client for every connection count, ``repeat`` times, order rotating."""
    rows: list[Row] = []
    for connections, messages in counts.items():
        case = {
            name: Row(
                network,
                connections,
                messages,
                name,
                _shown(_argv(name, port, messages, connections, cpu)),
            )
            for name in CLIENTS
        }
        for index in range(repeat):
            turn = index % len(CLIENTS)
            order = CLIENTS[turn:] + CLIENTS[:turn]
            for name in order:
                row = case[name]
                if row.not_installed:
                    continue
                record = _run(_argv(name, port, messages, connections, cpu))
                flights = _reply_flights(proxy, int(record.get("connections_opened") or 0))
                if record.get("not_installed"):
                    row.not_installed = True
                elif "error" in record:
                    row.errors.append(str(record["error"]))
                else:
                    row.rates.append(float(record["msgs_per_s"]))
                    if flights:
                        row.flights_per_message.append(flights / messages)
                        seconds = float(record["seconds"])
                        row.round_trip_ms.append(1000 * seconds * connections / flights)
        rows.extend(case.values())
    return rows


def _reply_flights(proxy: harness.Managed | None, connections: int) -> int | None:
    """Server-to-client chunks over the run's ``connections``, from the proxy's lines.

    The proxy prints one line per connection as it ends, a little after the
    client exits: wait up to 5 s for them all. A missing one makes the count
    None; one arriving later still would be counted in the next run (they
    come within milliseconds here), and anything else waiting is dropped.
    """
    if proxy is None:
        return None
    flights, seen = 0, 0
    deadline = time.monotonic() + 5.0
    while seen < connections and (left := deadline - time.monotonic()) > 0:
        record = proxy.json_line(left)
        if record is None:
            break
        if "s2c_chunks" in record:
            flights += int(record["s2c_chunks"])
            seen += 1
    while proxy.line(0.01) is not None:
        pass
    return flights if seen == connections and connections else None


def _median_text(values: list[float], digits: int) -> str:
    return f"{statistics.median(values):.{digits}f}" if values else "-"


def print_rows(rows: list[Row]) -> list[dict[str, Any]]:
    """Print the table; returns its rows as plain data."""
    out = []
    print(
        f"{'network':<28} {'conns':>5} {'messages':>8} {'client':<11} {'msgs/s':>9} "
        f"{'runs':<26} {'rt/msg':>6} {'ms/rt':>6} {'ratio':>7} {'target':>7} {'verdict':<7}  "
        "command"
    )
    medians = {(r.network, r.connections, r.client): r.median for r in rows}
    for row in rows:
        # trio-smtp's ratio is the one judged; the floor's is shown beside it.
        ours = medians.get((row.network, row.connections, row.client))
        theirs = medians.get((row.network, row.connections, "aiosmtplib"))
        compared = row.client in ("trio-smtp", FLOOR)
        ratio = ours / theirs if compared and ours and theirs else None
        gated = row.network != "loopback" and row.connections == PROXY_TARGET_CONNECTIONS
        target = PROXY_TARGET if gated and row.client == "trio-smtp" else None
        if row.not_installed:
            verdict = "not installed"
        elif row.errors and row.median is None:
            verdict = "ERROR"
        elif row.client == FLOOR:
            verdict = "floor"
        elif target is None or ratio is None:
            verdict = "-"
        else:
            verdict = "PASS" if ratio >= target else "FAIL"
        rate = f"{row.median:.0f}" if row.median is not None else "-"
        runs = ",".join(f"{r:.0f}" for r in row.rates) or "-"
        print(
            f"{row.network:<28} {row.connections:>5} {row.messages:>8} {row.client:<11} "
            f"{rate:>9} {runs:<26} {_median_text(row.flights_per_message, 2):>6} "
            f"{_median_text(row.round_trip_ms, 2):>6} {f'{ratio:.2f}x' if ratio else '-':>7} "
            f"{f'>={target:g}x' if target else '-':>7} {verdict:<7}  {row.command}"
        )
        for error in dict.fromkeys(row.errors):
            print(f"{'':<28} error: {error}")
        out.append(
            {
                "network": row.network,
                "connections": row.connections,
                "messages": row.messages,
                "client": row.client,
                "msgs_per_s": row.median,
                "runs": row.rates,
                "reply_flights_per_message": row.flights_per_message,
                "round_trip_ms": row.round_trip_ms,
                "ratio_vs_aiosmtplib": ratio,
                "target": target,
                "verdict": verdict,
                "errors": row.errors,
                "command": row.command,
            }
        )
    return out


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--run"]:
        return worker(argv[1:])
    cli = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    cli.add_argument("--messages", type=int, help="messages per run (10000)")
    cli.add_argument(
        "--proxy-messages", type=int, help="messages per run through the proxy (scaled)"
    )
    cli.add_argument("--connections", default="1,4,16", help="connection counts (1,4,16)")
    cli.add_argument("--repeat", type=int, help="runs per client and case; medians (3)")
    cli.add_argument("--delay-ms", type=float, default=5.0, help="proxy delay each way (5)")
    cli.add_argument(
        "--affinity",
        choices=("same", "split", "none"),
        default="none",
        help="CPU pinning of server and clients, as in bench/client.py (default: none)",
    )
    cli.add_argument("--quick", action="store_true", help="smoke test: 300 messages, 1 repeat")
    cli.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    args = cli.parse_args(argv)

    quick = bool(args.quick)
    messages = args.messages or (300 if quick else 10_000)
    repeat = max(1, args.repeat or (1 if quick else 3))
    connection_counts = [int(n) for n in args.connections.split(",") if n.strip()]

    def through_proxy(connections: int) -> int:
        if args.proxy_messages:
            return int(args.proxy_messages)
        scaled = messages * connections // PROXY_TARGET_CONNECTIONS
        return min(messages, max(200 if not quick else 50, scaled))

    cpus = harness.cpu_plan(args.affinity)
    load = os.getloadavg()
    print(
        f"trio-smtp bulk bench: Python {platform.python_version()} ({platform.machine()}, "
        f"{os.cpu_count()} CPUs), load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}"
    )
    print(
        "clients: "
        + ", ".join(f"{name} {_peers.client_version(name) or 'not installed'}" for name in CLIENTS)
    )
    print(
        f"{len(_peers.message_body())}-octet messages; {repeat} repeat(s), a fresh process per "
        f"run; CPU affinity {args.affinity}"
    )
    started = time.monotonic()
    report: dict[str, Any] = {"python": platform.python_version(), "load_start": load, "rows": []}
    failed = False
    with harness.start_server("smtp-sink", cpus["server"]) as server:
        if not isinstance(server, harness.Server):
            print(f"smtp-sink: {server}")
            return 0 if server.startswith("not installed") else 1
        print(f"server: {server.command} ({server.version})")
        rows = run_cases(
            "loopback",
            server.port,
            dict.fromkeys(connection_counts, messages),
            repeat,
            cpus["client"],
            None,
        )
        with harness.start_proxy(server.host, server.port, args.delay_ms) as (proxy, proxy_port):
            print(
                f"latency proxy: {args.delay_ms:g} ms each way; NOOP round trip through it "
                f"{harness._describe_ms(harness.noop_ms(proxy_port))}"
            )
            proxy.json_line(5.0)
            network = f"{2 * args.delay_ms:g} ms RTT via latency_proxy"
            counts = {n: through_proxy(n) for n in connection_counts}
            rows += run_cases(network, proxy_port, counts, repeat, cpus["client"], proxy)
    print()
    report["rows"] = print_rows(rows)
    failed = any(row.errors for row in rows)
    return finish_run(report, started, args.json, failed)


if __name__ == "__main__":
    sys.exit(main())
