"""Benchmarks for the sans-IO core: DotStuffer throughput and ReplyParser rate.

Run from the repository root::

    python bench/core.py [--size-mib 256] [--repeat 5]

It prints a table of medians over ``--repeat`` runs:

* ``bytes.replace(b"\\r\\n.", b"\\r\\n..")`` on a buffer of realistic mail text
  (CRLF lines of about 76 octets, mostly base64, some lines starting with
  ``.``): the baseline, the fastest dot-stuffing Python can do when the text
  is already known to be canonical.
* :class:`DotStuffer` on the same buffer, in one ``feed()`` and in 64 KiB
  chunks, with the ratio of each to the baseline and PASS/FAIL against the
  target (0.5).
* :class:`DotStuffer` on an LF-only variant of the buffer (informational).
* :class:`ReplyParser` replies per second on 100k mixed replies fed in 4 KiB
  chunks, or "not available" when the reply module cannot be imported.

The exit status is 1 only when an output is wrong (the benchmark checks the
bytes before timing them); a FAIL against the speed target is printed, not
turned into an exit status, since timings depend on the machine.

The 64 KiB chunks are cut from the buffer before timing starts, as a file or
socket reader would hand them over.
"""

from __future__ import annotations

import argparse
import gc
import platform
import random
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from trio_smtp._core.reply import ReplyParser

TARGET_RATIO = 0.5
CHUNK = 64 * 1024
REPLY_COUNT = 100_000
REPLY_CHUNK = 4096
MIB = 1024 * 1024


def _use_source_tree() -> None:
    """Make ``import trio_smtp`` find this checkout when run as a script."""
    root = str(Path(__file__).resolve().parent.parent)
    if root not in sys.path:
        sys.path.insert(0, root)


def median_seconds(run: Callable[[], object], repeat: int) -> float:
    """Median wall time of ``run()``; its result is freed outside the timing."""
    times: list[float] = []
    for _ in range(repeat):
        gc.collect()
        start = time.perf_counter()
        result = run()
        times.append(time.perf_counter() - start)
        del result
    return statistics.median(times)


def mail_text(size: int, seed: int = 1) -> bytes:
    """About ``size`` octets of canonical mail text ending in CRLF.

    A block of headers, a text part (where some lines start with ``.``) and a
    base64 attachment (76-octet lines) is repeated; the block does not start
    with a ``.``, so the whole body stuffs exactly like ``bytes.replace``.
    """
    rng = random.Random(seed)
    words = [
        b"the", b"message", b"server", b"delivery", b"report", b"attached",
        b"please", b"find", b"queue", b"status", b"mail", b"of", b"and", b"to",
    ]  # fmt: skip
    lines = [
        b"From: Reports <reports@example.com>",
        b"To: team@example.org",
        b"Subject: nightly report",
        b"MIME-Version: 1.0",
        b'Content-Type: multipart/mixed; boundary="b1"',
        b"",
        b"--b1",
        b"Content-Type: text/plain; charset=utf-8",
        b"",
    ]
    for _ in range(400):
        line = b" ".join(rng.choice(words) for _ in range(rng.randrange(6, 13)))
        roll = rng.random()
        if roll < 0.03:
            line = b"." + line
        elif roll < 0.04:
            line = b"."
        lines.append(line[:76])
    lines += [
        b"--b1",
        b"Content-Type: application/octet-stream",
        b"Content-Transfer-Encoding: base64",
        b"",
    ]
    alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
    lines += [bytes(rng.choices(alphabet, k=76)) for _ in range(12_000)]
    lines += [b"--b1--", b""]
    block = b"\r\n".join(lines)
    buf = block * (size // len(block) + 1)
    return buf[: buf.rindex(b"\r\n", 0, size) + 2]


def stuff_one_shot(buf: bytes) -> bytes:
    from trio_smtp._core.dotstuff import DotStuffer

    stuffer = DotStuffer()
    out = stuffer.feed(buf)
    stuffer.finish()
    return out


def stuff_chunks(chunks: list[bytes]) -> int:
    from trio_smtp._core.dotstuff import DotStuffer

    stuffer = DotStuffer()
    feed = stuffer.feed
    for chunk in chunks:
        feed(chunk)
    stuffer.finish()
    return stuffer.bytes_out


def reply_stream(count: int) -> bytes:
    """``count`` replies: mostly single-line, every tenth an EHLO-like multiline one."""
    singles = [
        b"250 2.1.0 Ok\r\n",
        b"250 2.1.5 Ok\r\n",
        b"354 End data with <CR><LF>.<CR><LF>\r\n",
        b"250 2.0.0 Ok: queued as 4Xb2Lm0qYzz9\r\n",
        b"221 2.0.0 Bye\r\n",
    ]
    ehlo = (
        b"250-mail.example.com Hello client.example.org [192.0.2.1]\r\n"
        b"250-PIPELINING\r\n"
        b"250-SIZE 52428800\r\n"
        b"250-8BITMIME\r\n"
        b"250-ENHANCEDSTATUSCODES\r\n"
        b"250-CHUNKING\r\n"
        b"250-SMTPUTF8\r\n"
        b"250-DSN\r\n"
        b"250 AUTH PLAIN LOGIN XOAUTH2\r\n"
    )
    parts = [ehlo if i % 10 == 0 else singles[i % len(singles)] for i in range(count)]
    return b"".join(parts)


def _reply_parser_class() -> type[ReplyParser] | None:
    try:
        from trio_smtp._core.reply import ReplyParser
    except ImportError:
        return None
    return ReplyParser


def parse_replies(parser_class: type[ReplyParser], chunks: list[bytes]) -> int:
    parser = parser_class()
    feed = parser.feed
    return sum(len(feed(chunk)) for chunk in chunks)


def main(argv: list[str] | None = None) -> int:
    cli = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    cli.add_argument("--size-mib", type=int, default=256, help="body size in MiB (256)")
    cli.add_argument("--repeat", type=int, default=5, help="runs per case; medians (5)")
    args = cli.parse_args(argv)
    repeat: int = max(1, args.repeat)

    _use_source_tree()
    from trio_smtp._core.dotstuff import DotStuffer

    buf = mail_text(args.size_mib * MIB)
    lf_buf = buf.replace(b"\r\n", b"\n")
    chunks = [buf[i : i + CHUNK] for i in range(0, len(buf), CHUNK)]
    mib = len(buf) / MIB

    # Correctness first: every DotStuffer variant must give the baseline's bytes.
    baseline_out = buf.replace(b"\r\n.", b"\r\n..")
    stuffer = DotStuffer()
    chunked_out = b"".join([stuffer.feed(chunk) for chunk in chunks])
    if stuff_one_shot(buf) != baseline_out or chunked_out != baseline_out:
        print("DotStuffer output differs from bytes.replace: benchmark invalid", file=sys.stderr)
        return 1
    if stuff_one_shot(lf_buf) != baseline_out:
        print("DotStuffer LF-only output differs: benchmark invalid", file=sys.stderr)
        return 1
    del baseline_out, chunked_out

    base = median_seconds(lambda: buf.replace(b"\r\n.", b"\r\n.."), repeat)
    one_shot = median_seconds(lambda: stuff_one_shot(buf), repeat)
    chunked = median_seconds(lambda: stuff_chunks(chunks), repeat)
    lf_only = median_seconds(lambda: stuff_one_shot(lf_buf), repeat)

    print(
        f"trio-smtp core bench: {mib:.1f} MiB body, median of {repeat} "
        f"(Python {platform.python_version()}, {platform.machine()})"
    )
    print(f"{'case':<36} {'MiB/s':>9} {'ratio':>7}  target")
    print(f"{'bytes.replace (baseline)':<36} {mib / base:9.1f} {1.0:7.2f}")
    results = [
        ("DotStuffer one-shot", one_shot, True),
        ("DotStuffer 64 KiB chunks", chunked, True),
        ("DotStuffer LF-only one-shot", lf_only, False),
    ]
    for name, seconds, gated in results:
        ratio = base / seconds
        if gated:
            verdict = "PASS" if ratio >= TARGET_RATIO else "FAIL"
            note = f">= {TARGET_RATIO} {verdict}"
        else:
            note = "(info)"
        print(f"{name:<36} {mib / seconds:9.1f} {ratio:7.2f}  {note}")

    parser_class = _reply_parser_class()
    if parser_class is None:
        print("reply parser: not available")
    else:
        stream = reply_stream(REPLY_COUNT)
        reply_chunks = [stream[i : i + REPLY_CHUNK] for i in range(0, len(stream), REPLY_CHUNK)]
        parsed = parse_replies(parser_class, reply_chunks)
        if parsed != REPLY_COUNT:
            print(f"reply parser: parsed {parsed} of {REPLY_COUNT} replies", file=sys.stderr)
            return 1
        seconds = median_seconds(lambda: parse_replies(parser_class, reply_chunks), repeat)
        print(
            f"{'reply parser (4 KiB chunks)':<36} {REPLY_COUNT / seconds:9.0f} replies/s "
            f"({REPLY_COUNT} replies, {len(stream) / MIB / seconds:.1f} MiB/s)"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
