"""Client benchmark: trio-smtp against smtplib, aiosmtplib and smtpproto, message by message.

Run from the repository root::

    python bench/client.py [--messages N] [--proxy-messages N] [--repeat R] [--quick]
                           [--servers testing,smtp-sink] [--json out.json]
                           [--clients ...] [--affinity same|split|none] [--delay-ms 5]

This module owns the benchmark's orchestration: it starts each server in its
own process, runs every client in a fresh process per repeat (so no two
event loops share a process and the client's loop times only the client),
puts the latency proxy in front of the server for the high-latency runs,
and prints one table per (server, network) with medians, ratios and the
targets. The pieces it drives live beside it: ``_peers.py`` (the clients),
``_servers.py`` (the Python servers), ``latency_proxy.py`` and ``_canned.py``
(trio-smtp's own work per message with no I/O, printed first).

Every client sends N small (~1 KiB) messages over ONE connection, each send
awaited before the next: the per-message latency regime. Targets (medians
of one run, trio-smtp messages/s divided by the peer's):

* loopback: >= 1.5x smtplib and >= 5x aiosmtplib (smtpproto: shown, no target);
* through the proxy (5 ms each way, 10 ms round trip): >= 3.5x every peer.

Servers: ``testing`` (trio_smtp.testing as shipped: PIPELINING and
CHUNKING), ``smtp-sink`` (Postfix's, PIPELINING but no CHUNKING), and, for
information only (no targets), ``testing-nochunking`` and ``aiosmtpd``
(no PIPELINING). ``--clients`` may add two reference floors, ``bare-trio``
and ``bare-socket``: trio-smtp's exact exchange (one BDAT flight, or
MAIL/RCPT/DATA then the body) over bare trio or blocking sockets with no
SMTP code, which shows how much of trio-smtp's time is its own. A missing
client or server is printed as "not installed"
with its install command. Each table row ends with the exact command that
reproduces one run. ``rt/msg`` is the number of reply flights the server
sent per message (the round trips a sequential client waits for), counted
by the test server or the proxy, less the greeting, EHLO and QUIT;
``wr/msg`` the client's writes per message, as the proxy saw them (TCP may
merge or split a few); ``cpu us/msg`` the client process's CPU time per
message during the timed loop. After each table, one short extra trio-smtp
run with ``--count-io`` reports its ``send_all``/``receive_some`` calls
per message.

CPU affinity: by default the server and every client run on the same CPU
(``--affinity same``). A sequential client and its server take turns, so
nothing is lost, and a run then measures what both sides cost per message.
On one CPU each (``split``) or unpinned (``none``), each round trip also
has to wake an idle CPU, which on a virtual machine can cost more than the
work itself and varies with whatever else the machine is doing; those
modes are there to look at that effect, not to judge the client. The
latency proxy is never pinned.

The exit status is 1 only when a run fails (an error, or the server saw
fewer messages than were sent); a FAIL against a target is printed, not
turned into an exit status, since timings depend on the machine.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import queue
import shlex
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import _peers
from _common import finish_run, read_reply

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
PEERS = HERE / "_peers.py"
SERVERS = HERE / "_servers.py"
PROXY = HERE / "latency_proxy.py"
CANNED = HERE / "_canned.py"

LOOPBACK_TARGETS = {"smtplib": 1.5, "aiosmtplib": 5.0}
PROXY_TARGET = 3.5
#: Servers whose tables carry the targets; the others are for information.
TARGET_SERVERS = ("testing", "smtp-sink")
ALL_SERVERS = ("testing", "smtp-sink", "testing-nochunking", "aiosmtpd")
SERVER_INSTALL = {
    "testing": "pip install -e '.[test]'",
    "testing-nochunking": "pip install -e '.[test]'",
    "aiosmtpd": "pip install aiosmtpd",
    "smtp-sink": "apt-get install -y postfix (smtp-sink is /usr/sbin/smtp-sink)",
}
SMTP_SINK_PATHS = ("/usr/sbin/smtp-sink", "/usr/lib/postfix/sbin/smtp-sink")
#: Reply flights and client writes of a connection that are not messages:
#: the greeting, EHLO and QUIT replies; the EHLO and QUIT commands.
SETUP_FLIGHTS = 3
SETUP_WRITES = 2
STOP_TIMEOUT = 5.0
START_TIMEOUT = 30.0


# -- processes -----------------------------------------------------------------------


class Managed:
    """A child process with a line-reading thread on its stdout; always stopped in time."""

    def __init__(self, argv: Sequence[str], *, stdin_pipe: bool = True) -> None:
        self.argv = list(argv)
        # Closed by stop(), which every owner calls in a finally block.
        self._stderr: IO[bytes] = tempfile.TemporaryFile()  # noqa: SIM115
        self.proc = subprocess.Popen(
            self.argv,
            stdin=subprocess.PIPE if stdin_pipe else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            cwd=ROOT,
        )
        self._lines: queue.Queue[str | None] = queue.Queue()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for raw in self.proc.stdout:
            self._lines.put(raw.decode("utf-8", "replace").rstrip("\n"))
        self._lines.put(None)

    def line(self, timeout: float) -> str | None:
        """The next stdout line, or None at EOF or after ``timeout`` seconds."""
        try:
            return self._lines.get(timeout=timeout)
        except queue.Empty:
            return None

    def json_line(self, timeout: float) -> dict[str, Any] | None:
        """The next stdout line that is a JSON object, or None."""
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            text = self.line(left)
            if text is None:
                return None
            with contextlib.suppress(ValueError):
                record = json.loads(text)
                if isinstance(record, dict):
                    return record
        return None

    def send(self, text: str) -> None:
        if self.proc.stdin is not None and self.proc.poll() is None:
            with contextlib.suppress(OSError):
                self.proc.stdin.write(text.encode())
                self.proc.stdin.flush()

    def stderr_tail(self, lines: int = 8) -> str:
        self._stderr.seek(0)
        return "\n".join(self._stderr.read().decode("utf-8", "replace").splitlines()[-lines:])

    def stop(self) -> None:
        """Close stdin (the polite stop), then SIGTERM, then SIGKILL; bounded in time."""
        if self.proc.stdin is not None:
            with contextlib.suppress(OSError):
                self.proc.stdin.close()
        for signal_it in (None, self.proc.terminate, self.proc.kill):
            if signal_it is not None:
                with contextlib.suppress(OSError):
                    signal_it()
            try:
                self.proc.wait(timeout=STOP_TIMEOUT)
                break
            except subprocess.TimeoutExpired:
                continue
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        self._stderr.close()


def _cpu_set(spec: str) -> set[int]:
    return {int(cpu) for cpu in spec.split(",")}


def cpu_plan(mode: str) -> dict[str, str | None]:
    """Which CPUs the server and the clients run on, as ``--cpu`` lists (None: anywhere).

    ``same``: one CPU for both, so every hand-over is a context switch on a
    busy CPU and a run measures the CPU cost of both sides per message.
    ``split``: one CPU each, so every round trip also wakes the other CPU
    (on an idle virtual machine that wake-up costs more than the work).
    ``none``: the scheduler decides.
    """
    if mode == "none" or not hasattr(os, "sched_getaffinity"):
        return {"server": None, "client": None}
    available = sorted(os.sched_getaffinity(0))
    if mode == "split" and len(available) >= 2:
        return {"server": str(available[1]), "client": str(available[0])}
    return {"server": str(available[0]), "client": str(available[0])}


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


# -- servers -------------------------------------------------------------------------


@dataclass
class Server:
    """A running server: where it listens, what it is, and its process."""

    name: str
    host: str
    port: int
    version: str
    process: Managed
    command: str

    def stats(self) -> dict[str, Any] | None:
        """What the server saw since the last call (Python servers only)."""
        if self.name == "smtp-sink":
            return None
        self.process.send("stats\n")
        return self.process.json_line(10.0)


def smtp_sink_path() -> str | None:
    found = shutil.which("smtp-sink")
    if found:
        return found
    return next((path for path in SMTP_SINK_PATHS if os.access(path, os.X_OK)), None)


def _postfix_version() -> str:
    try:
        out = subprocess.run(
            ["postconf", "-d", "mail_version"], capture_output=True, text=True, timeout=10
        ).stdout
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    return out.partition("=")[2].strip() or "unknown"


def _wait_for_greeting(host: str, port: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((host, port), timeout=2) as sock:
                file = sock.makefile("rb")
                greeting = read_reply(file)
                sock.sendall(b"QUIT\r\n")
                read_reply(file)
                if greeting.startswith(b"220"):
                    return True
        except OSError:
            pass
        time.sleep(0.05)
    return False


@contextlib.contextmanager
def start_server(name: str, cpu: str | None) -> Iterator[Server | str]:
    """Yield a running `Server` (pinned to ``cpu``), or a string saying why there is none."""
    if name == "smtp-sink":
        path = smtp_sink_path()
        if path is None:
            yield f"not installed ({SERVER_INSTALL[name]})"
            return
        port = _free_port()
        argv = [path]
        if os.geteuid() == 0:
            argv += ["-u", "nobody"]  # smtp-sink refuses to run as root without it
        argv += [f"127.0.0.1:{port}", "100"]
        process = Managed(argv, stdin_pipe=False)
        shown = shlex.join(argv)
        try:
            if cpu is not None:
                # smtp-sink is one single-threaded process: pinning its pid is taskset's effect.
                os.sched_setaffinity(process.proc.pid, _cpu_set(cpu))
                shown = f"taskset -c {cpu} {shown}"
            if not _wait_for_greeting("127.0.0.1", port, START_TIMEOUT):
                yield f"did not start: {process.stderr_tail()}"
                return
            version = f"Postfix {_postfix_version()}"
            yield Server(name, "127.0.0.1", port, version, process, shown)
        finally:
            process.stop()
        return
    argv = [str(SERVERS), name, *(["--cpu", cpu] if cpu is not None else [])]
    process = Managed([sys.executable, *argv])
    try:
        hello = process.json_line(START_TIMEOUT)
        if hello is None:
            yield f"did not start: {process.stderr_tail()}"
        elif "error" in hello:
            yield f"{hello['error']} ({SERVER_INSTALL[name]})"
        else:
            host, port = hello["host"], int(hello["port"])
            shown = _display_command(argv)
            yield Server(name, host, port, hello["version"], process, shown)
    finally:
        process.stop()


@contextlib.contextmanager
def start_proxy(host: str, port: int, delay_ms: float) -> Iterator[tuple[Managed, int]]:
    """Run the latency proxy in front of ``host:port``; yields it and its port."""
    argv = [sys.executable, str(PROXY), "--target", f"{host}:{port}", "--delay-ms", str(delay_ms)]
    process = Managed(argv)
    try:
        hello = process.json_line(START_TIMEOUT)
        if hello is None or "port" not in hello:
            raise RuntimeError(f"the latency proxy did not start: {process.stderr_tail()}")
        yield process, int(hello["port"])
    finally:
        process.stop()


# -- round-trip checks --------------------------------------------------------------


@contextlib.contextmanager
def echo_server() -> Iterator[int]:
    """A blocking echo server on a thread (one connection at a time); yields its port."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(4)
    listener.settimeout(0.2)
    stopping = threading.Event()

    def serve() -> None:
        while not stopping.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            with conn:
                conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                conn.settimeout(10)
                with contextlib.suppress(OSError):
                    while data := conn.recv(65536):
                        conn.sendall(data)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1]
    finally:
        stopping.set()
        thread.join(timeout=STOP_TIMEOUT)
        listener.close()


def ping_pong_ms(port: int, count: int = 30) -> list[float]:
    """Round-trip times of ``count`` 32-octet pings through 127.0.0.1:``port``."""
    times = []
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for _ in range(count):
            start = time.perf_counter()
            sock.sendall(b"p" * 32)
            got = 0
            while got < 32:
                chunk = sock.recv(64)
                if not chunk:
                    raise RuntimeError("the echo connection closed")
                got += len(chunk)
            times.append((time.perf_counter() - start) * 1000)
    return times


def noop_ms(port: int, count: int = 10) -> list[float]:
    """Round-trip times of ``count`` NOOPs to the SMTP server behind 127.0.0.1:``port``."""
    times = []
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        file = sock.makefile("rb")
        read_reply(file)
        sock.sendall(b"EHLO rtt-check.example.com\r\n")
        read_reply(file)
        for _ in range(count):
            start = time.perf_counter()
            sock.sendall(b"NOOP\r\n")
            if not read_reply(file):
                raise RuntimeError("the server closed the connection")
            times.append((time.perf_counter() - start) * 1000)
        sock.sendall(b"QUIT\r\n")
        read_reply(file)
    return times


def _describe_ms(times: list[float]) -> str:
    return (
        f"median {statistics.median(times):.2f} ms "
        f"(min {min(times):.2f}, max {max(times):.2f}, n={len(times)})"
    )


# -- client runs ---------------------------------------------------------------------


@dataclass
class ClientResult:
    """Every repeat of one client in one case."""

    client: str
    command: str
    version: str | None = None
    rates: list[float] = field(default_factory=list)
    cpu_us: list[float] = field(default_factory=list)
    flights_per_msg: list[float] = field(default_factory=list)
    writes_per_msg: list[float] = field(default_factory=list)
    transfer: str | None = None
    errors: list[str] = field(default_factory=list)
    not_installed: str | None = None

    @property
    def median(self) -> float | None:
        return statistics.median(self.rates) if self.rates else None


@dataclass
class Case:
    """One table: a server reached directly or through the proxy."""

    server: str
    server_version: str
    server_command: str
    network: str
    messages: int
    warmup: int
    repeat: int
    targets: dict[str, float]
    gated: bool
    results: dict[str, ClientResult] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def _display_command(argv: Sequence[str]) -> str:
    shown = ["python", *(os.path.relpath(a, ROOT) if a.startswith(str(HERE)) else a for a in argv)]
    return shlex.join(shown)


def client_argv(
    client: str,
    host: str,
    port: int,
    messages: int,
    warmup: int,
    cpu: str | None,
    extra: Sequence[str] = (),
) -> list[str]:
    """The arguments (after the interpreter) of one run of ``client``."""
    argv = [str(PEERS), client, host, str(port), "--messages", str(messages)]
    argv += ["--warmup", str(warmup), *extra]
    if cpu is not None:
        argv += ["--cpu", cpu]
    return argv


def run_client(argv: Sequence[str], timeout: float) -> dict[str, Any]:
    """One run (``client_argv``) in a fresh process; its JSON record, with "error" on failure."""
    client = argv[1]
    try:
        done = subprocess.run(
            [sys.executable, *argv], capture_output=True, text=True, timeout=timeout, cwd=ROOT
        )
    except subprocess.TimeoutExpired:
        return {"client": client, "error": f"timed out after {timeout:.0f} s"}
    record: dict[str, Any] = {}
    for text in reversed(done.stdout.splitlines()):
        with contextlib.suppress(ValueError):
            record = json.loads(text)
            break
    if done.returncode != 0 and "error" not in record:
        tail = done.stderr.strip().splitlines()[-1:] or [f"exit status {done.returncode}"]
        record = {"client": client, "error": tail[0]}
    if done.returncode == 2:
        record["not_installed"] = True
    return record


def run_case(
    case: Case,
    clients: Sequence[str],
    server: Server,
    port: int,
    proxy: Managed | None,
    cpu: str | None,
) -> None:
    """Every client, ``case.repeat`` times, interleaved (the order rotates each repeat)."""
    timeout = 60 + case.messages * (0.25 if proxy is not None else 0.05)
    host = server.host if proxy is None else "127.0.0.1"
    argvs = {
        name: client_argv(name, host, port, case.messages, case.warmup, cpu) for name in clients
    }
    for name in clients:
        result = ClientResult(name, _display_command(argvs[name]), _peers.client_version(name))
        if result.version is None:
            result.not_installed = _peers.INSTALL[name]
        case.results[name] = result
    runnable = [name for name in clients if case.results[name].not_installed is None]
    sent = case.messages + case.warmup
    for index in range(case.repeat):
        shift = index % max(1, len(runnable))
        for name in runnable[shift:] + runnable[:shift]:
            result = case.results[name]
            record = run_client(argvs[name], timeout)
            stats = server.stats()
            conn = _proxy_connection(proxy)
            if record.get("not_installed"):
                result.not_installed = _peers.INSTALL[name]
                continue
            if "error" in record:
                result.errors.append(str(record["error"]))
                continue
            result.rates.append(float(record["msgs_per_s"]))
            result.cpu_us.append(float(record["cpu_us_per_msg"]))
            result.transfer = record.get("transfer") or result.transfer
            if stats is not None:
                if stats.get("messages") != sent:
                    result.errors.append(
                        f"the server received {stats.get('messages')} messages, not {sent}"
                    )
                if "reply_flights" in stats and conn is None:
                    flights = stats["reply_flights"] - SETUP_FLIGHTS
                    result.flights_per_msg.append(flights / sent)
                if stats.get("sync_violations"):
                    case.notes.append(
                        f"{name}: {stats['sync_violations']} pipelining violations "
                        f"reported by the server: {stats.get('violations')}"
                    )
            if conn is not None:
                result.flights_per_msg.append((conn["s2c_chunks"] - SETUP_FLIGHTS) / sent)
                result.writes_per_msg.append((conn["c2s_chunks"] - SETUP_WRITES) / sent)
    if "trio-smtp" in runnable:
        _count_io(case, server, port, proxy, cpu)


def _proxy_connection(proxy: Managed | None) -> dict[str, Any] | None:
    """The counters of the connection the last run made through the proxy."""
    if proxy is None:
        return None
    return proxy.json_line(10.0)


def _count_io(
    case: Case, server: Server, port: int, proxy: Managed | None, cpu: str | None
) -> None:
    """One extra short trio-smtp run that counts its transport calls per message."""
    host = server.host if proxy is None else "127.0.0.1"
    messages = min(case.messages, 100)
    argv = client_argv("trio-smtp", host, port, messages, 2, cpu, ["--count-io"])
    record = run_client(argv, timeout=120 + messages)
    server.stats()
    _proxy_connection(proxy)
    extra = record.get("extra") or {}
    if "error" in record:
        case.notes.append(f"trio-smtp --count-io run failed: {record['error']}")
    elif "send_all_per_msg" in extra:
        case.notes.append(
            f"trio-smtp transport calls per message ({messages} messages, --count-io): "
            f"{extra['send_all_per_msg']} send_all, {extra['receive_some_per_msg']} "
            f"receive_some; transfer {record.get('transfer')}; "
            f"server offers {', '.join(extra.get('capabilities', []))}"
        )


# -- output ------------------------------------------------------------------------------


def _fmt_median(values: list[float], digits: int) -> str:
    return f"{statistics.median(values):.{digits}f}" if values else "-"


def case_rows(case: Case) -> list[dict[str, Any]]:
    """The table rows of ``case``, as plain data (also what --json writes)."""
    ours = case.results.get("trio-smtp")
    ours_median = ours.median if ours is not None else None
    batch = case.results.get("trio-smtp-batch")
    batch_median = batch.median if batch is not None else None
    rows = []

    def judge(ratio: float | None, target: float | None, result: Any) -> str:
        if result.not_installed is not None:
            return "not installed"
        if result.errors and result.median is None:
            return "ERROR"
        if target is None or ratio is None:
            return "-" if target is None else "n/a"
        if not case.gated:
            return "(info)"
        return "PASS" if ratio >= target else "FAIL"

    for name, result in case.results.items():
        median = result.median
        peer = name in _peers.PEERS
        target = case.targets.get(name) if peer else None
        ratio = ours_median / median if ours_median and median and peer else None
        batch_ratio = batch_median / median if batch_median and median and peer else None
        verdict = judge(ratio, target, result)
        batch_verdict = judge(batch_ratio, target, result)
        rows.append(
            {
                "client": name,
                "version": result.version,
                "msgs_per_s": median,
                "runs": result.rates,
                "ratio": ratio,
                "target": target,
                "verdict": verdict,
                "batch_ratio": batch_ratio,
                "batch_verdict": batch_verdict,
                "rt_per_msg": statistics.median(result.flights_per_msg)
                if result.flights_per_msg
                else None,
                "writes_per_msg": statistics.median(result.writes_per_msg)
                if result.writes_per_msg
                else None,
                "cpu_us_per_msg": statistics.median(result.cpu_us) if result.cpu_us else None,
                "transfer": result.transfer,
                "errors": result.errors,
                "install": result.not_installed,
                "command": result.command,
            }
        )
    return rows


def print_case(case: Case) -> None:
    print()
    targets = "targets" if case.gated else "no targets: for information"
    print(
        f"== {case.server} ({case.server_version}), {case.network}: "
        f"{case.messages} messages x {case.repeat} repeats, median msgs/s ({targets}) =="
    )
    print(f"server: {case.server_command}")
    header = (
        f"{'client':<15} {'msgs/s':>9} {'ratio':>7} {'target':>8} {'verdict':<8} "
        f"{'batch':>7} {'verdict':<8} "
        f"{'rt/msg':>6} {'wr/msg':>6} {'cpu us/msg':>10} {'transfer':<8}  command"
    )
    print("ratio: trio-smtp (send_mail, one at a time) / peer; batch: trio-smtp-batch / peer")
    print(header)
    for row in case_rows(case):
        if row["install"] is not None:
            print(f"{row['client']:<15} {'not installed: ' + row['install']}")
            continue
        rate = f"{row['msgs_per_s']:.1f}" if row["msgs_per_s"] is not None else "-"
        ratio = f"{row['ratio']:.2f}x" if row["ratio"] is not None else "-"
        batch_ratio = f"{row['batch_ratio']:.2f}x" if row["batch_ratio"] is not None else "-"
        target = f">={row['target']}x" if row["target"] is not None else "-"
        rt = f"{row['rt_per_msg']:.2f}" if row["rt_per_msg"] is not None else "-"
        wr = f"{row['writes_per_msg']:.2f}" if row["writes_per_msg"] is not None else "-"
        cpu = f"{row['cpu_us_per_msg']:.0f}" if row["cpu_us_per_msg"] is not None else "-"
        print(
            f"{row['client']:<15} {rate:>9} {ratio:>7} {target:>8} {row['verdict']:<8} "
            f"{batch_ratio:>7} {row['batch_verdict']:<8} "
            f"{rt:>6} {wr:>6} {cpu:>10} {row['transfer'] or '-':<8}  {row['command']}"
        )
        for error in dict.fromkeys(row["errors"]):
            print(f"{'':<15} error: {error}")
    for note in dict.fromkeys(case.notes):
        print(f"  note: {note}")


def canned_costs(messages: int, cpu: str | None) -> dict[str, float] | None:
    """bench/_canned.py's figures (microseconds per message), or None if it failed."""
    argv = [sys.executable, str(CANNED), "--messages", str(messages)]
    if cpu is not None:
        argv += ["--cpu", cpu]
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=300, cwd=ROOT)
        record = json.loads(done.stdout.strip().splitlines()[-1])
    except (subprocess.TimeoutExpired, ValueError, IndexError):
        print("trio-smtp's own work per message: bench/_canned.py failed")
        return None
    return {str(key): float(value) for key, value in record.items()}


def _versions(clients: Sequence[str]) -> str:
    parts = []
    for name in clients:
        version = _peers.client_version(name)
        parts.append(f"{name} {version}" if version else f"{name} not installed")
    return ", ".join(parts)


# -- main ----------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    cli = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    cli.add_argument("--messages", type=int, help="messages per loopback run (2000)")
    cli.add_argument(
        "--proxy-messages", type=int, help="messages per run through the proxy (200; 0: skip)"
    )
    cli.add_argument("--repeat", type=int, help="runs per client and case; medians (5)")
    cli.add_argument(
        "--quick", action="store_true", help="smoke test: 200/20 messages, 1 repeat (CI)"
    )
    cli.add_argument(
        "--servers",
        default="testing,smtp-sink",
        help=f"comma-separated, from {','.join(ALL_SERVERS)} (default: testing,smtp-sink)",
    )
    cli.add_argument(
        "--clients",
        default=",".join(_peers.CLIENTS),
        help=(
            f"comma-separated, from {','.join(_peers.CLIENTS + _peers.FLOORS)} "
            f"(default: {','.join(_peers.CLIENTS)}; the bare-* floors are opt-in)"
        ),
    )
    cli.add_argument("--delay-ms", type=float, default=5.0, help="proxy delay each way (5)")
    cli.add_argument(
        "--affinity",
        choices=("same", "split", "none"),
        default="same",
        help="server and client on the same CPU (default), one CPU each, or unpinned",
    )
    cli.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    args = cli.parse_args(argv)

    quick = bool(args.quick)
    messages = args.messages if args.messages is not None else (200 if quick else 2000)
    proxy_messages = (
        args.proxy_messages if args.proxy_messages is not None else (20 if quick else 200)
    )
    repeat = max(1, args.repeat if args.repeat is not None else (1 if quick else 5))
    servers = [name.strip() for name in args.servers.split(",") if name.strip()]
    clients = [name.strip() for name in args.clients.split(",") if name.strip()]
    unknown = [s for s in servers if s not in ALL_SERVERS] + [
        c for c in clients if c not in _peers.CLIENTS + _peers.FLOORS
    ]
    if unknown:
        cli.error(f"unknown server or client: {', '.join(unknown)}")
    if "trio-smtp" not in clients:
        clients.insert(0, "trio-smtp")

    cpus = cpu_plan(args.affinity)
    started = time.monotonic()
    load = os.getloadavg()
    print(
        f"trio-smtp client bench: Python {platform.python_version()} ({platform.machine()}, "
        f"{os.cpu_count()} CPUs), load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}"
    )
    print(f"clients: {_versions(clients)}")
    print(
        f"each client: one connection, sequential sends of a {len(_peers.message_body())}-octet "
        f"message, a fresh process per run; the clients' order rotates between repeats"
    )
    print(
        f"CPU affinity: {args.affinity} (server on CPU {cpus['server'] or 'any'}, "
        f"clients on CPU {cpus['client'] or 'any'}; the latency proxy is not pinned)"
    )
    if load[0] > 0.5:
        print("note: load average above 0.5: other work on this machine makes loopback noisy")

    canned = canned_costs(1000 if quick else 5000, cpus["client"])
    if canned is not None:
        print(
            "trio-smtp's own work per message, no I/O (bench/_canned.py): "
            + ", ".join(
                f"{key.removesuffix('_us')} {value:.0f} us" for key, value in canned.items()
            )
        )

    report: dict[str, Any] = {
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "load_average_start": load,
        "affinity": {"mode": args.affinity, **cpus},
        "clients": {name: _peers.client_version(name) for name in clients},
        "canned_us_per_msg": canned,
        "rtt_check": None,
        "cases": [],
    }
    failed = False
    delay_ms = float(args.delay_ms)

    if proxy_messages > 0:
        with (
            echo_server() as echo_port,
            start_proxy("127.0.0.1", echo_port, delay_ms) as (
                proxy,
                proxy_port,
            ),
        ):
            direct = ping_pong_ms(echo_port, 20)
            via_proxy = ping_pong_ms(proxy_port, 30)
            proxy.json_line(5.0)
        print(
            f"latency proxy check ({delay_ms:g} ms each way): ping-pong through the proxy "
            f"{_describe_ms(via_proxy)}; direct {_describe_ms(direct)}"
        )
        report["rtt_check"] = {"proxy_ms": via_proxy, "direct_ms": direct}

    for name in servers:
        with start_server(name, cpus["server"]) as server:
            if not isinstance(server, Server):
                print()
                print(f"== {name}: {server} ==")
                report["cases"].append({"server": name, "unavailable": server})
                failed = failed or not server.startswith("not installed")
                continue
            gated = name in TARGET_SERVERS
            loopback = Case(
                name,
                server.version,
                server.command,
                "loopback",
                messages,
                5 if quick else 20,
                repeat,
                dict(LOOPBACK_TARGETS),
                gated,
            )
            loopback.notes.append(f"NOOP round trip, direct: {_describe_ms(noop_ms(server.port))}")
            server.stats()
            run_case(loopback, clients, server, server.port, None, cpus["client"])
            print_case(loopback)
            cases = [loopback]
            if proxy_messages > 0:
                with start_proxy(server.host, server.port, delay_ms) as (proxy, proxy_port):
                    network = f"{2 * delay_ms:g} ms RTT via latency_proxy"
                    slow = Case(
                        name,
                        server.version,
                        server.command,
                        network,
                        proxy_messages,
                        2 if quick else 5,
                        repeat,
                        {c: PROXY_TARGET for c in clients if c in _peers.PEERS},
                        gated,
                    )
                    slow.notes.append(
                        f"NOOP round trip through the proxy: {_describe_ms(noop_ms(proxy_port))}"
                    )
                    proxy.json_line(5.0)
                    server.stats()
                    run_case(slow, clients, server, proxy_port, proxy, cpus["client"])
                print_case(slow)
                cases.append(slow)
            for case in cases:
                rows = case_rows(case)
                failed = failed or any(row["errors"] for row in rows)
                report["cases"].append(
                    {
                        "server": case.server,
                        "server_version": case.server_version,
                        "server_command": case.server_command,
                        "network": case.network,
                        "messages": case.messages,
                        "warmup": case.warmup,
                        "repeat": case.repeat,
                        "targets_apply": case.gated,
                        "rows": rows,
                        "notes": case.notes,
                    }
                )

    return finish_run(report, started, args.json, failed)


if __name__ == "__main__":
    sys.exit(main())
