"""Streaming benchmark: one large message, its throughput and the sender's peak memory.

Run from the repository root::

    python bench/stream.py [--size-mib 1024] [--repeat 3] [--quick] [--workdir DIR]
                           [--servers smtp-sink,testing] [--affinity split|same|none]
                           [--timeout SECONDS] [--json out.json]

This module owns the streaming benchmark of issue 5. It builds, once per
run, a file attachment of random-looking octets sized so that the composed
message comes to about ``--size-mib`` MiB, and writes that message
(`trio_smtp.mime.compose` read to its end) to ``message.eml``. It then sends
the message to each server, every run in a fresh process, and reports the
throughput (MiB of message per second, from connecting to the final 250)
and the sending process's peak RSS (VmHWM) beside its RSS before it built
or read anything (``base``), so the part the message costs is visible.

Rows (``client`` / ``transfer``):

* ``trio-smtp (compose)``: ``compose(..., attachments=[Attachment(path)])``
  passed to ``send_mail(..., transfer="data"|"bdat")``: the real use case;
  the attachment is read and base64-encoded while it is sent;
* ``trio-smtp (file)``: ``send_mail`` with ``pathlib.Path("message.eml")``,
  the same pre-built octets the peers send;
* ``smtplib`` and ``aiosmtplib``: ``message.eml`` read into memory, as their
  APIs require, then ``sendmail`` (DATA only: neither speaks BDAT);
* ``raw socket``: the loopback ceiling. ``message.eml`` dot-stuffed in
  memory before connecting, then MAIL, RCPT, DATA and the octets written
  with blocking ``socket.sendall`` in 1 MiB slices; for BDAT, one
  ``BDAT <size> LAST`` and the unstuffed octets. No SMTP code at all.

Servers, each in its own process: Postfix's ``smtp-sink`` (DATA rows: it has
no CHUNKING) and ``testing``, `trio_smtp.testing` with ``keep_bodies=False``
(``bench/_servers.py testing-discard``: DATA and BDAT rows), which records
each message's size and SHA-256, so every delivery is checked: the size
always, the SHA-256 for every row that sends ``message.eml`` (a composed
message has a fresh MIME boundary, so only its size can match).

Targets, for the trio-smtp rows (medians of ``--repeat`` runs, same run):
peak RSS under 64 MiB whatever the message size, and throughput at least
0.7x the raw socket's on the same server with the same transfer. A missed
target is printed as FAIL, not turned into an exit status (timings depend on
the machine); the exit status is 1 only when a run fails (an error, or a
delivery the server did not see whole). A missing peer or server is printed
as "not installed"; a run slower than ``--timeout`` as "timeout", and that
client is not run again on that server.

CPU affinity: ``split`` by default: the server on one CPU, the client on
the other, as two machines would be. Unpinned (``--affinity none``), the
scheduler often wakes the server on the client's CPU: the table's ``srv
CPU`` column then shows client and server near 50% each, taking turns on
one core, and the same row swung between 0.55x and 0.95x of raw from run to
run on this 2-CPU machine (the raw socket, which spends 5% of a CPU, does
not care). ``same`` and ``none`` are as in ``bench/client.py``. ``srv CPU``
is the server process's CPU time over the run's wall time (Linux only): at
about 100% the server is the bottleneck, and no client can go faster.

The same file is the per-run worker, which prints one JSON line::

    python bench/stream.py --run CLIENT --transfer data|bdat --host H --port P
        --message message.eml --attachment payload.bin [--cpu LIST] [--profile FILE]

``--profile FILE`` runs the timed part under cProfile, writes the stats to
FILE and the top functions to stderr (the main thread only: trio's file
reads happen in worker threads).
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import platform
import random
import resource
import shlex
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Literal

from _common import Timer, finish_run, read_reply

if TYPE_CHECKING:
    import client as harness

    from trio_smtp.mime import ComposedMessage

# The worker (--run) imports only what its client needs: bench/_peers.py and
# bench/client.py, which the orchestration uses, would add about 15 MiB
# (email, asyncio, threading...) to every client's measured RSS.

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
SCRIPT = Path(__file__).resolve()

MIB = 1024 * 1024
#: The envelope and EHLO name, the same as bench/_peers.py's.
SENDER = "bench-sender@example.com"
RECIPIENT = "bench-recipient@example.org"
EHLO_NAME = "bench-client.example.com"
#: The throughput target: trio-smtp's MiB/s over the raw socket's, same server and transfer.
THROUGHPUT_TARGET = 0.7
#: The memory target: trio-smtp's peak RSS, in MiB, whatever the message size.
RSS_TARGET_MIB = 64.0
#: The raw socket writes the message in slices of this size.
RAW_SLICE = MIB

RUNNERS = ("raw-socket", "trio-smtp-compose", "trio-smtp-file", "smtplib", "aiosmtplib")
LABELS = {
    "raw-socket": "raw socket",
    "trio-smtp-compose": "trio-smtp (compose)",
    "trio-smtp-file": "trio-smtp (file)",
    "smtplib": "smtplib",
    "aiosmtplib": "aiosmtplib",
}
#: The rows with targets.
OURS = ("trio-smtp-compose", "trio-smtp-file")
#: Rows that send message.eml's exact octets, whose SHA-256 the server can check.
SENDS_FILE = ("raw-socket", "trio-smtp-file", "smtplib", "aiosmtplib")
ALL_SERVERS = ("smtp-sink", "testing")
#: What each server is called in bench/client.py's start_server and bench/_servers.py.
SERVER_KINDS = {"smtp-sink": "smtp-sink", "testing": "testing-discard"}
#: (runner, transfer) for each server: smtp-sink has no CHUNKING.
SERVER_ROWS = {
    "smtp-sink": [
        ("raw-socket", "data"),
        ("trio-smtp-compose", "data"),
        ("trio-smtp-file", "data"),
        ("smtplib", "data"),
        ("aiosmtplib", "data"),
    ],
    "testing": [
        ("raw-socket", "data"),
        ("raw-socket", "bdat"),
        ("trio-smtp-compose", "data"),
        ("trio-smtp-compose", "bdat"),
        ("trio-smtp-file", "data"),
        ("trio-smtp-file", "bdat"),
        ("smtplib", "data"),
        ("aiosmtplib", "data"),
    ],
}

# The message: fixed except for the MIME boundary, which compose draws afresh.
SUBJECT = "trio-smtp streaming benchmark"
TEXT = "A large attachment follows, sent by bench/stream.py.\n"
DATE = datetime(2026, 1, 1, tzinfo=timezone.utc)
MESSAGE_ID = "<stream-bench@example.com>"
ATTACHMENT_NAME = "payload.bin"
MESSAGE_NAME = "message.eml"
#: Octets of the message that are not the attachment's base64 (headers,
#: text part, boundaries), a little more than compose writes.
ENVELOPE_ALLOWANCE = 1024
#: base64 turns 57 octets into one 76-column line, plus its CRLF.
B64_LINE_INPUT, B64_LINE_OUTPUT = 57, 78


# -- the worker: one run of one client --------------------------------------------------


def memory_kib() -> tuple[int, int]:
    """This process's (current, peak) resident set size in KiB: VmRSS and VmHWM."""
    values: dict[str, int] = {}
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/status").read_text().splitlines():
            name, _, rest = line.partition(":")
            if name in ("VmRSS", "VmHWM"):
                values[name] = int(rest.split()[0])
    if len(values) == 2:
        return values["VmRSS"], values["VmHWM"]
    # Not Linux: ru_maxrss is the peak (KiB on Linux, octets on macOS).
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    peak = peak // 1024 if sys.platform == "darwin" else peak
    return peak, peak


def compose_message(attachment: Path) -> ComposedMessage:
    """The benchmark's message: a short text part and ``attachment``, base64-encoded."""
    from trio_smtp.mime import Attachment, compose

    return compose(
        sender=SENDER,
        to=RECIPIENT,
        subject=SUBJECT,
        text=TEXT,
        attachments=[Attachment(attachment, content_type="application/octet-stream")],
        date=DATE,
        message_id=MESSAGE_ID,
    )


def dot_stuff(data: bytes) -> bytes:
    """``data`` as DATA puts it on the wire, less the end marker (RFC 5321 4.5.2)."""
    stuffed = data.replace(b"\r\n.", b"\r\n..")
    return b"." + stuffed if stuffed.startswith(b".") else stuffed


@dataclass
class Sent:
    """What one timed send measured, apart from memory."""

    seconds: float
    octets: int
    reply: str


def _expect(file: IO[bytes], code: int) -> str:
    reply = read_reply(file)
    if not reply.startswith(str(code).encode()):
        raise RuntimeError(f"expected {code}, got {reply!r}")
    return reply.decode("ascii", "replace").strip().splitlines()[-1]


def run_raw_socket(host: str, port: int, message: Path, transfer: str, watch: Timer) -> Sent:
    """The ceiling: the message's wire octets from memory through a blocking socket."""
    data = message.read_bytes()
    octets = len(data)
    if transfer == "data":
        # The terminator goes separately so that the (possibly 1 GiB) payload is not copied.
        payload = dot_stuff(data)
        terminator = (b"" if payload.endswith(b"\r\n") else b"\r\n") + b".\r\n"
        opening, opening_code = b"DATA\r\n", 354
    else:
        payload, terminator = data, b""
        opening, opening_code = b"BDAT %d LAST\r\n" % octets, 0
    del data
    watch.start()
    with socket.create_connection((host, port)) as sock:
        file = sock.makefile("rb")
        _expect(file, 220)
        for command in (
            f"EHLO {EHLO_NAME}\r\n",
            f"MAIL FROM:<{SENDER}> SIZE={octets}\r\n",
            f"RCPT TO:<{RECIPIENT}>\r\n",
        ):
            sock.sendall(command.encode())
            _expect(file, 250)
        sock.sendall(opening)
        if opening_code:
            _expect(file, opening_code)
        with memoryview(payload) as view:
            for offset in range(0, len(view), RAW_SLICE):
                sock.sendall(view[offset : offset + RAW_SLICE])
        if terminator:
            sock.sendall(terminator)
        reply = _expect(file, 250)
        watch.stop()
        sock.sendall(b"QUIT\r\n")
        read_reply(file)
    return Sent(watch.seconds, octets, reply)


def run_trio_smtp(
    host: str,
    port: int,
    source: str,
    transfer: str,
    message: Path,
    attachment: Path,
    watch: Timer,
) -> Sent:
    """trio-smtp, streaming a composed message (``source="compose"``) or message.eml."""
    import trio

    import trio_smtp

    file_octets = message.stat().st_size
    mode: Literal["data", "bdat"] = "bdat" if transfer == "bdat" else "data"

    async def main() -> Sent:
        body: Any
        if source == "compose":
            body = compose_message(attachment)
            octets = body.length
        else:
            body, octets = message, file_octets
        async with contextlib.AsyncExitStack() as stack:
            if source == "compose":
                await stack.enter_async_context(body)
            watch.start()
            async with trio_smtp.open_smtp(
                host, port, tls=trio_smtp.PLAINTEXT, local_hostname=EHLO_NAME
            ) as smtp:
                outcome = await smtp.send_mail(SENDER, [RECIPIENT], body, transfer=mode)
                watch.stop()
        if outcome.transfer.lower() != transfer:
            raise RuntimeError(f"asked for {transfer}, sent with {outcome.transfer}")
        return Sent(watch.seconds, octets, str(outcome.reply))

    return trio.run(main)


def run_smtplib(host: str, port: int, message: Path, watch: Timer) -> Sent:
    """smtplib: the message in memory, then ``sendmail``."""
    import smtplib

    body = message.read_bytes()
    watch.start()
    with smtplib.SMTP(host, port, local_hostname=EHLO_NAME) as smtp:
        smtp.ehlo()
        refused = smtp.sendmail(SENDER, [RECIPIENT], body)
        watch.stop()
    if refused:
        raise RuntimeError(f"smtplib: recipients refused: {refused}")
    # sendmail raises unless the end of data got 250.
    return Sent(watch.seconds, len(body), "250")


def run_aiosmtplib(host: str, port: int, message: Path, watch: Timer) -> Sent:
    """aiosmtplib: the message in memory, then ``SMTP.sendmail``."""
    import asyncio

    import aiosmtplib  # type: ignore[import-not-found,unused-ignore]

    body = message.read_bytes()

    async def main() -> Sent:
        # Its default 60 s timeout covers the whole DATA write; a large message may need more.
        smtp = aiosmtplib.SMTP(
            hostname=host,
            port=port,
            use_tls=False,
            start_tls=False,
            local_hostname=EHLO_NAME,
            timeout=3600,
        )
        watch.start()
        await smtp.connect()
        refused, reply = await smtp.sendmail(SENDER, [RECIPIENT], body)
        watch.stop()
        await smtp.quit()
        if refused:
            raise RuntimeError(f"aiosmtplib: recipients refused: {refused}")
        return Sent(watch.seconds, len(body), str(reply))

    return asyncio.run(main())


def client_version(runner: str) -> str | None:
    """The version of what ``runner`` uses, or None when it is not installed."""
    import _peers

    if runner == "raw-socket":
        return f"Python {platform.python_version()}"
    return _peers.client_version("trio-smtp" if runner in OURS else runner)


def use_source_tree() -> None:
    """Make ``import trio_smtp`` find this checkout when run as a script."""
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))


def run_worker(args: argparse.Namespace) -> int:
    """``--run``: one send in this process; prints its JSON record."""
    if args.cpu and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {int(cpu) for cpu in args.cpu.split(",")})
    runner, transfer = args.run, args.transfer
    record: dict[str, Any] = {"client": runner, "transfer": transfer.upper()}
    # The client's modules are imported before the baseline, so that it
    # counts the library and not the message.
    try:
        if runner in OURS:
            use_source_tree()
            import trio_smtp.mime  # noqa: F401
        elif runner == "aiosmtplib":
            import asyncio  # noqa: F401

            import aiosmtplib  # type: ignore[import-not-found,unused-ignore]  # noqa: F401
        elif runner == "smtplib":
            import smtplib  # noqa: F401
    except ImportError as exc:
        record["error"] = f"not installed: {exc}"
        print(json.dumps(record))
        return 2
    base_kib, _ = memory_kib()
    watch = Timer(args.profile)
    message, attachment = Path(args.message), Path(args.attachment)
    try:
        if runner == "raw-socket":
            sent = run_raw_socket(args.host, args.port, message, transfer, watch)
        elif runner in OURS:
            source = "compose" if runner == "trio-smtp-compose" else "file"
            sent = run_trio_smtp(args.host, args.port, source, transfer, message, attachment, watch)
        elif runner == "smtplib":
            sent = run_smtplib(args.host, args.port, message, watch)
        else:
            sent = run_aiosmtplib(args.host, args.port, message, watch)
    except Exception as exc:
        record["error"] = f"{type(exc).__name__}: {exc}"
        print(json.dumps(record))
        raise
    _, peak_kib = memory_kib()
    record.update(
        seconds=sent.seconds,
        octets=sent.octets,
        mib_per_s=sent.octets / MIB / sent.seconds if sent.seconds > 0 else None,
        cpu_seconds=watch.cpu_seconds,
        base_rss_kib=base_kib,
        peak_rss_kib=peak_kib,
        reply=sent.reply,
    )
    print(json.dumps(record))
    return 0


# -- building the message ---------------------------------------------------------------


@dataclass
class Built:
    """The message every run sends, as built (or found) in the work directory."""

    attachment: Path
    message: Path
    attachment_octets: int
    octets: int
    sha256: str
    seconds: float
    reused: bool


def attachment_octets_for(message_octets: int) -> int:
    """The attachment size whose base64 makes the message about ``message_octets`` long."""
    encoded = max(B64_LINE_OUTPUT, message_octets - ENVELOPE_ALLOWANCE)
    return encoded * B64_LINE_INPUT // B64_LINE_OUTPUT


def _write_attachment(path: Path, octets: int) -> None:
    # One random MiB, repeated: random-looking octets (which is all base64
    # sees) without drawing 1 GiB of randomness.
    block = random.Random(5).randbytes(MIB)
    with path.open("wb") as file:
        left = octets
        while left > 0:
            file.write(block[: min(left, MIB)])
            left -= MIB


async def _drain(message: ComposedMessage, write: Callable[[bytes], object]) -> int:
    total = 0
    async with message:
        while chunk := await message.receive_some():
            write(chunk)
            total += len(chunk)
    return total


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as file:
        while chunk := file.read(MIB):
            digest.update(chunk)
    return digest.hexdigest()


def build_message(workdir: Path, size_mib: float) -> Built:
    """Write the attachment and message.eml into ``workdir`` (reusing them when they fit)."""
    import trio

    use_source_tree()
    started = time.monotonic()
    attachment = workdir / ATTACHMENT_NAME
    message = workdir / MESSAGE_NAME
    wanted = attachment_octets_for(int(size_mib * MIB))
    reused = attachment.exists() and attachment.stat().st_size == wanted
    if not reused:
        _write_attachment(attachment, wanted)
    length = compose_message(attachment).length
    if length is None:
        raise RuntimeError("the composed message does not know its length")
    if reused and message.exists() and message.stat().st_size == length:
        sha256 = _file_sha256(message)
    else:
        reused = False
        digest = hashlib.sha256()
        with message.open("wb") as file:

            def write(chunk: bytes) -> None:
                digest.update(chunk)
                file.write(chunk)

            written = trio.run(_drain, compose_message(attachment), write)
        if written != length:
            raise RuntimeError(f"compose announced {length} octets but produced {written}")
        sha256 = digest.hexdigest()
    return Built(attachment, message, wanted, length, sha256, time.monotonic() - started, reused)


# -- orchestration -----------------------------------------------------------------------


@dataclass
class RowResult:
    """Every repeat of one (client, transfer) on one server."""

    runner: str
    transfer: str
    command: str
    version: str | None
    mib_per_s: list[float] = field(default_factory=list)
    peak_rss_mib: list[float] = field(default_factory=list)
    base_rss_mib: list[float] = field(default_factory=list)
    cpu_share: list[float] = field(default_factory=list)
    server_cpu_share: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    not_installed: str | None = None
    timed_out: str | None = None

    @property
    def label(self) -> str:
        return LABELS[self.runner]

    @property
    def runnable(self) -> bool:
        return self.not_installed is None and self.timed_out is None


def process_cpu_seconds(pid: int) -> float | None:
    """User plus system CPU seconds of process ``pid`` so far; None where /proc is missing."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as file:
            fields = file.read().rpartition(")")[2].split()
    except OSError:
        return None
    # Fields 14 and 15 of proc(5), counted from the pid; the name before ")" may hold spaces.
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


@contextlib.contextmanager
def start_server(name: str, cpu: str | None) -> Iterator[harness.Server | str]:
    """Yield a running server, or a string saying why there is none."""
    import client as harness

    kind = SERVER_KINDS[name]
    if kind == "smtp-sink":
        with harness.start_server(kind, cpu) as server:
            yield server
        return
    argv = [str(HERE / "_servers.py"), kind, *(["--cpu", cpu] if cpu is not None else [])]
    process = harness.Managed([sys.executable, *argv])
    try:
        hello = process.json_line(harness.START_TIMEOUT)
        if hello is None:
            yield f"did not start: {process.stderr_tail()}"
        elif "error" in hello:
            yield f"{hello['error']} (pip install -e '.[test]')"
        else:
            shown = harness._display_command(argv)
            yield harness.Server(
                kind, hello["host"], int(hello["port"]), hello["version"], process, shown
            )
    finally:
        process.stop()


def worker_argv(
    runner: str, transfer: str, server: harness.Server, built: Built, cpu: str | None
) -> list[str]:
    """The arguments (after the interpreter) of one run."""
    argv = [str(SCRIPT), "--run", runner, "--transfer", transfer]
    argv += ["--host", server.host, "--port", str(server.port)]
    argv += ["--message", str(built.message), "--attachment", str(built.attachment)]
    return argv + (["--cpu", cpu] if cpu is not None else [])


def run_worker_process(argv: Sequence[str], timeout: float) -> dict[str, Any]:
    """One run in a fresh process: its JSON record, with "error", "timeout" or "not_installed"."""
    try:
        done = subprocess.run(
            [sys.executable, *argv], capture_output=True, text=True, timeout=timeout, cwd=ROOT
        )
    except subprocess.TimeoutExpired:
        return {"timeout": f"timeout (over {timeout:g} s)"}
    record: dict[str, Any] = {}
    for text in reversed(done.stdout.splitlines()):
        with contextlib.suppress(ValueError):
            record = json.loads(text)
            break
    if done.returncode == 2:
        record["not_installed"] = True
    elif done.returncode != 0 and "error" not in record:
        tail = done.stderr.strip().splitlines()[-1:] or [f"exit status {done.returncode}"]
        record["error"] = tail[0]
    return record


def check_delivery(stats: dict[str, Any] | None, runner: str, built: Built) -> str | None:
    """What is wrong with what the testing server saw of one run, or None."""
    if stats is None:
        return None  # smtp-sink keeps no record: the final 250 is all there is
    sizes, digests = stats.get("sizes") or [], stats.get("sha256") or []
    if stats.get("messages") != 1 or len(sizes) != 1:
        return f"the server received {stats.get('messages')} messages, not 1"
    if sizes[0] != built.octets:
        return f"the server received {sizes[0]} octets, not {built.octets}"
    if runner in SENDS_FILE and digests[0] != built.sha256:
        return "the server received other octets than message.eml's (SHA-256 differs)"
    return None


@dataclass
class Case:
    """One server's table."""

    server: str
    version: str
    command: str
    rows: list[RowResult]


def run_case(
    name: str,
    server: harness.Server,
    built: Built,
    repeat: int,
    cpu: str | None,
    timeout: float,
) -> Case:
    """Every row of ``name``, ``repeat`` times, interleaved (the order rotates each repeat)."""
    import _peers
    import client as harness

    rows = []
    for runner, transfer in SERVER_ROWS[name]:
        argv = worker_argv(runner, transfer, server, built, cpu)
        row = RowResult(
            runner, transfer.upper(), harness._display_command(argv), client_version(runner)
        )
        if row.version is None:
            row.not_installed = _peers.INSTALL.get(runner, "pip install -e .")
        rows.append((row, argv))
    server.stats()
    for index in range(repeat):
        order = rows[index % len(rows) :] + rows[: index % len(rows)]
        for row, argv in order:
            if not row.runnable:
                continue
            server_cpu = process_cpu_seconds(server.process.proc.pid)
            record = run_worker_process(argv, timeout)
            server_cpu_after = process_cpu_seconds(server.process.proc.pid)
            stats = server.stats()
            if record.get("not_installed"):
                row.not_installed = _peers.INSTALL.get(row.runner, "pip install -e .")
                continue
            if "timeout" in record:
                row.timed_out = str(record["timeout"])
                continue
            if "error" in record:
                row.errors.append(str(record["error"]))
                continue
            problem = check_delivery(stats, row.runner, built)
            if problem is None and record.get("octets") != built.octets:
                problem = f"the client sent {record.get('octets')} octets, not {built.octets}"
            if problem is not None:
                row.errors.append(problem)
                continue
            row.mib_per_s.append(float(record["mib_per_s"]))
            row.peak_rss_mib.append(record["peak_rss_kib"] / 1024)
            row.base_rss_mib.append(record["base_rss_kib"] / 1024)
            row.cpu_share.append(record["cpu_seconds"] / record["seconds"])
            if server_cpu is not None and server_cpu_after is not None:
                # The server idles outside the send, so the timed seconds fit.
                row.server_cpu_share.append((server_cpu_after - server_cpu) / record["seconds"])
    return Case(name, server.version, server.command, [row for row, _ in rows])


def case_rows(case: Case) -> list[dict[str, Any]]:
    """The table rows of ``case`` as plain data (also what --json writes)."""
    ceilings = {
        row.transfer: _median(row.mib_per_s) for row in case.rows if row.runner == "raw-socket"
    }
    out = []
    for row in case.rows:
        rate = _median(row.mib_per_s)
        peak = _median(row.peak_rss_mib)
        ceiling = ceilings.get(row.transfer)
        ratio = rate / ceiling if rate is not None and ceiling else None
        ours = row.runner in OURS
        if row.not_installed:
            speed_verdict = memory_verdict = "not installed"
        elif rate is None:
            speed_verdict = memory_verdict = "timeout" if row.timed_out else "ERROR"
        elif ours:
            speed_verdict = (
                "n/a" if ratio is None else "PASS" if ratio >= THROUGHPUT_TARGET else "FAIL"
            )
            memory_verdict = "n/a" if peak is None else "PASS" if peak < RSS_TARGET_MIB else "FAIL"
        else:
            speed_verdict = memory_verdict = "-"
        out.append(
            {
                "client": row.label,
                "runner": row.runner,
                "transfer": row.transfer,
                "version": row.version,
                "mib_per_s": rate,
                "runs_mib_per_s": row.mib_per_s,
                "ratio_vs_raw": ratio,
                "throughput_target": THROUGHPUT_TARGET if ours else None,
                "throughput_verdict": speed_verdict,
                "peak_rss_mib": peak,
                "runs_peak_rss_mib": row.peak_rss_mib,
                "base_rss_mib": _median(row.base_rss_mib),
                "rss_target_mib": RSS_TARGET_MIB if ours else None,
                "rss_verdict": memory_verdict,
                "client_cpu_share": _median(row.cpu_share),
                "server_cpu_share": _median(row.server_cpu_share),
                "errors": row.errors,
                "not_installed": row.not_installed,
                "timeout": row.timed_out,
                "command": row.command,
            }
        )
    return out


def _fmt(value: float | None, digits: int, suffix: str = "") -> str:
    return "-" if value is None else f"{value:.{digits}f}{suffix}"


def print_case(case: Case, built: Built, repeat: int) -> None:
    print()
    print(
        f"== {case.server} ({case.version}): {built.octets / MIB:.1f} MiB message, "
        f"{repeat} repeat{'s' if repeat > 1 else ''}, medians =="
    )
    print(f"server: {case.command}")
    print(
        "MiB/s: message octets over the seconds from connecting to the final 250; "
        "vs raw: over the raw socket's MiB/s with the same transfer;\n"
        "peak RSS: the client process's VmHWM (MiB); base: its RSS after imports, before "
        "the message; CPU: its CPU time (all threads) over the wall time; srv CPU: the server's"
    )
    print(
        f"{'client':<20} {'transfer':<8} {'MiB/s':>7} {'vs raw':>7} {'>=0.7x':<7} "
        f"{'peak RSS':>8} {'base':>6} {'<64 MiB':<7} {'CPU':>5} {'srv CPU':>7}"
    )
    rows = case_rows(case)
    for row in rows:
        if row["not_installed"]:
            print(f"{row['client']:<20} {row['transfer']:<8} not installed: {row['not_installed']}")
            continue
        cpu_share, server_share = row["client_cpu_share"], row["server_cpu_share"]
        print(
            f"{row['client']:<20} {row['transfer']:<8} {_fmt(row['mib_per_s'], 1):>7} "
            f"{_fmt(row['ratio_vs_raw'], 2, 'x'):>7} {row['throughput_verdict']:<7} "
            f"{_fmt(row['peak_rss_mib'], 1):>8} {_fmt(row['base_rss_mib'], 1):>6} "
            f"{row['rss_verdict']:<7} {_fmt(cpu_share and cpu_share * 100, 0, '%'):>5} "
            f"{_fmt(server_share and server_share * 100, 0, '%'):>7}"
        )
        if row["timeout"]:
            print(f"{'':<20} {row['timeout']}: not run again on this server")
        for error in dict.fromkeys(row["errors"]):
            print(f"{'':<20} error: {error}")
    print(
        "reproduce one run (from the repository root, with the server above running; "
        "the message files outlive the bench only with --workdir):"
    )
    for row in rows:
        if not row["not_installed"]:
            print(f"  {row['client']} {row['transfer']}: {row['command']}")


# -- main --------------------------------------------------------------------------------


def _arguments(argv: list[str] | None) -> argparse.Namespace:
    cli = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    cli.add_argument("--size-mib", type=float, help="message size in MiB (1024)")
    cli.add_argument("--repeat", type=int, help="runs per row; medians (3)")
    cli.add_argument("--quick", action="store_true", help="smoke test: 16 MiB, 1 repeat (CI)")
    cli.add_argument("--workdir", help="where to build the message (default: a temporary dir)")
    cli.add_argument(
        "--servers",
        default=",".join(ALL_SERVERS),
        help=f"comma-separated, from {','.join(ALL_SERVERS)} (default: both)",
    )
    cli.add_argument(
        "--affinity",
        choices=("none", "same", "split"),
        default="split",
        help="server and client on one CPU each (default), both on one, or unpinned",
    )
    cli.add_argument("--timeout", type=float, help="seconds per run (default: from the size)")
    cli.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    worker = cli.add_argument_group("one run (internal: what the tables' commands use)")
    worker.add_argument("--run", choices=RUNNERS, help="send once with this client")
    worker.add_argument("--transfer", choices=("data", "bdat"), default="data")
    worker.add_argument("--host", default="127.0.0.1")
    worker.add_argument("--port", type=int)
    worker.add_argument("--message", help="message.eml")
    worker.add_argument("--attachment", help="the attachment file message.eml was built from")
    worker.add_argument("--cpu", metavar="LIST", help="pin this process to these CPUs")
    worker.add_argument("--profile", metavar="FILE", help="cProfile the timed send into FILE")
    args = cli.parse_args(argv)
    if args.run is not None and (args.port is None or not args.message or not args.attachment):
        cli.error("--run needs --port, --message and --attachment")
    servers = [name.strip() for name in args.servers.split(",") if name.strip()]
    unknown = [name for name in servers if name not in ALL_SERVERS]
    if unknown:
        cli.error(f"unknown server: {', '.join(unknown)}")
    args.server_names = servers
    return args


def main(argv: list[str] | None = None) -> int:
    args = _arguments(argv)
    if args.run is not None:
        return run_worker(args)
    import client as harness

    quick = bool(args.quick)
    size_mib = args.size_mib if args.size_mib is not None else (16.0 if quick else 1024.0)
    repeat = max(1, args.repeat if args.repeat is not None else (1 if quick else 3))
    # About 6 MiB/s for 1 GiB: far below any client seen, and it keeps a
    # full run within minutes even if a peer stalls.
    timeout = args.timeout if args.timeout is not None else 60.0 + size_mib / 10
    cpus = harness.cpu_plan(args.affinity)
    started = time.monotonic()
    load = os.getloadavg()
    print(
        f"trio-smtp streaming bench: Python {platform.python_version()} "
        f"({platform.machine()}, {os.cpu_count()} CPUs), "
        f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}"
    )
    print(
        "clients: "
        + ", ".join(
            f"{name} {client_version(name) or 'not installed'}"
            for name in ("trio-smtp-file", "smtplib", "aiosmtplib")
        ).replace("trio-smtp-file", "trio-smtp")
    )
    print(
        f"CPU affinity: {args.affinity} (server on CPU {cpus['server'] or 'any'}, "
        f"clients on CPU {cpus['client'] or 'any'}); each run a fresh process; "
        f"timeout {timeout:.0f} s a run"
    )
    if load[0] > 0.5:
        print("note: load average above 0.5: other work on this machine makes timings noisy")

    report: dict[str, Any] = {
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "load_average_start": load,
        "affinity": {"mode": args.affinity, **cpus},
        "repeat": repeat,
        "targets": {"throughput_vs_raw": THROUGHPUT_TARGET, "peak_rss_mib": RSS_TARGET_MIB},
        "command": shlex.join(["python", "bench/stream.py", *(argv or sys.argv[1:])]),
        "cases": [],
    }
    failed = False
    with contextlib.ExitStack() as stack:
        if args.workdir:
            workdir = Path(args.workdir)
            workdir.mkdir(parents=True, exist_ok=True)
        else:
            workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="stream-")))
        built = build_message(workdir, size_mib)
        print(
            f"message: {built.octets} octets ({built.octets / MIB:.1f} MiB): a text part and "
            f"a {built.attachment_octets}-octet attachment in base64, "
            f"sha256 {built.sha256[:16]}..., {'reused' if built.reused else 'built'} in "
            f"{built.seconds:.1f} s in {workdir}"
        )
        report["message"] = {
            "octets": built.octets,
            "attachment_octets": built.attachment_octets,
            "sha256": built.sha256,
            "build_seconds": built.seconds,
            "workdir": str(workdir),
        }
        for name in args.server_names:
            with start_server(name, cpus["server"]) as server:
                if not isinstance(server, harness.Server):
                    print()
                    print(f"== {name}: {server} ==")
                    report["cases"].append({"server": name, "unavailable": server})
                    failed = failed or not server.startswith("not installed")
                    continue
                case = run_case(name, server, built, repeat, cpus["client"], timeout)
            print_case(case, built, repeat)
            rows = case_rows(case)
            failed = failed or any(row["errors"] for row in rows)
            report["cases"].append(
                {
                    "server": case.server,
                    "server_version": case.version,
                    "server_command": case.command,
                    "rows": rows,
                }
            )
    return finish_run(report, started, args.json, failed, reproduce=report["command"])


if __name__ == "__main__":
    sys.exit(main())
