"""A TCP proxy that adds a fixed one-way delay, for benchmarks at a chosen round-trip time.

This module owns the latency proxy that ``bench/client.py`` puts between an
SMTP client and a server. It runs as its own process::

    python bench/latency_proxy.py --target 127.0.0.1:2525 [--delay-ms 5] [--port 0]

It listens on 127.0.0.1, prints one JSON line ``{"host": ..., "port": ...}``
once it is listening, and for every connection forwards both directions,
each chunk delayed by ``--delay-ms`` from the moment it was read (so a
request/response exchange costs twice the delay). Chunks keep their
boundaries and their order: per direction, a reader stamps each chunk with
its arrival time and queues it, and a writer sends it when its time comes,
so the delays of chunks in flight overlap instead of adding up. An end of
stream is forwarded the same way, as a half-close; a reset closes both sides.

The reader and writer of each direction are threads with blocking sockets:
``time.sleep`` wakes within tens of microseconds of the deadline, where an
event loop's epoll timeout is rounded up to whole milliseconds (which would
add up to a millisecond each way). The traffic is one benchmark connection
at a time, so a few threads cost nothing.

When a connection ends, one JSON line with its counters is printed:
``{"conn": n, "c2s_chunks": ..., "c2s_bytes": ..., "s2c_chunks": ...,
"s2c_bytes": ...}``. With a client that waits for each reply, ``s2c_chunks``
is the number of reply flights: the round trips the client paid for.

The proxy stops when its standard input closes, or on SIGTERM/SIGINT.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import queue
import signal
import socket
import sys
import threading
import time
from dataclasses import asdict, dataclass
from types import FrameType

RECEIVE_SIZE = 64 * 1024
DEFAULT_DELAY_MS = 5.0

_print_lock = threading.Lock()


@dataclass
class ConnectionStats:
    """Counters for one proxied connection (c2s: client to server)."""

    conn: int
    c2s_chunks: int = 0
    c2s_bytes: int = 0
    s2c_chunks: int = 0
    s2c_bytes: int = 0


def _emit(record: dict[str, object]) -> None:
    with _print_lock:
        sys.stdout.write(json.dumps(record) + "\n")
        sys.stdout.flush()


class _Direction:
    """One direction of one connection: a reader thread and a delaying writer thread."""

    def __init__(
        self,
        source: socket.socket,
        sink: socket.socket,
        delay: float,
        count: list[int],
        on_broken: threading.Event,
    ) -> None:
        self._source = source
        self._sink = sink
        self._delay = delay
        self._count = count  # [chunks, bytes]
        self._broken = on_broken
        self._queue: queue.SimpleQueue[tuple[float, bytes]] = queue.SimpleQueue()
        self.threads = [
            threading.Thread(target=self._read, daemon=True),
            threading.Thread(target=self._write, daemon=True),
        ]
        for thread in self.threads:
            thread.start()

    def _read(self) -> None:
        while True:
            try:
                data = self._source.recv(RECEIVE_SIZE)
            except OSError:
                self._broken.set()
                data = b""
            self._queue.put((time.monotonic() + self._delay, data))
            if not data:
                return
            self._count[0] += 1
            self._count[1] += len(data)

    def _write(self) -> None:
        while True:
            deadline, data = self._queue.get()
            wait = deadline - time.monotonic()
            if wait > 0:
                time.sleep(wait)
            try:
                if not data:
                    self._sink.shutdown(socket.SHUT_WR)
                    return
                self._sink.sendall(data)
            except OSError:
                self._broken.set()
                return


def _serve_connection(
    client: socket.socket, target: tuple[str, int], delay: float, conn: int
) -> None:
    stats = ConnectionStats(conn)
    try:
        server = socket.create_connection(target, timeout=10)
    except OSError:
        client.close()
        _emit({**asdict(stats), "error": "cannot connect to the target"})
        return
    server.settimeout(None)
    for sock in (client, server):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    broken = threading.Event()
    c2s, s2c = [0, 0], [0, 0]
    directions = [
        _Direction(client, server, delay, c2s, broken),
        _Direction(server, client, delay, s2c, broken),
    ]
    threads = [thread for direction in directions for thread in direction.threads]
    while any(thread.is_alive() for thread in threads):
        if broken.wait(0.05):
            # A reset on one side: close both, which ends every thread.
            for sock in (client, server):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
            break
    for thread in threads:
        thread.join(timeout=2)
    client.close()
    server.close()
    stats.c2s_chunks, stats.c2s_bytes = c2s
    stats.s2c_chunks, stats.s2c_bytes = s2c
    _emit(asdict(stats))


def run_proxy(target: tuple[str, int], delay: float, port: int) -> None:
    """Listen on 127.0.0.1:``port`` and proxy to ``target`` until stdin closes or a signal."""
    stopping = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stopping.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    def watch_stdin() -> None:
        with contextlib.suppress(OSError, ValueError):
            while os.read(sys.stdin.fileno(), 4096):
                pass
        stopping.set()

    threading.Thread(target=watch_stdin, daemon=True).start()
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as listener:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", port))
        listener.listen(16)
        listener.settimeout(0.1)
        host, bound_port = listener.getsockname()[:2]
        _emit({"host": host, "port": bound_port, "delay_ms": delay * 1000})
        conn = 0
        while not stopping.is_set():
            try:
                client, _ = listener.accept()
            except TimeoutError:
                continue
            client.settimeout(None)
            args = (client, target, delay, conn)
            threading.Thread(target=_serve_connection, args=args, daemon=True).start()
            conn += 1


def _parse_target(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    if not host or not port.isdigit():
        raise argparse.ArgumentTypeError(f"expected HOST:PORT, not {text!r}")
    return host, int(port)


def main(argv: list[str] | None = None) -> int:
    cli = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    cli.add_argument("--target", type=_parse_target, required=True, help="HOST:PORT to forward to")
    cli.add_argument(
        "--delay-ms", type=float, default=DEFAULT_DELAY_MS, help="one-way delay in ms (5)"
    )
    cli.add_argument("--port", type=int, default=0, help="port to listen on (0: any free one)")
    args = cli.parse_args(argv)
    run_proxy(args.target, args.delay_ms / 1000.0, args.port)
    return 0


if __name__ == "__main__":
    sys.exit(main())
