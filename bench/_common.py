"""Small pieces the bench scripts share: timing a measured section, reading a reply, ending a run.

This module owns only what more than one bench script needs and imports
nothing heavy, so that ``bench/stream.py``'s workers can use it without
adding to the memory they measure (``_peers`` imports asyncio, email and
smtplib).
"""

from __future__ import annotations

import cProfile
import json
import os
import pstats
import resource
import sys
import time
from pathlib import Path
from typing import IO, Any


class Timer:
    """Times (and optionally profiles into ``profile``) the section between start and stop.

    ``cpu_seconds`` is the process's CPU time over all its threads; the
    user/system split comes from getrusage.
    """

    def __init__(self, profile: str | None) -> None:
        self.seconds = 0.0
        self.cpu_seconds = 0.0
        self.user_seconds = 0.0
        self.system_seconds = 0.0
        self._profile = profile
        self._profiler: cProfile.Profile | None = None
        self._start = 0.0
        self._cpu_start = 0.0
        self._usage_start = resource.getrusage(resource.RUSAGE_SELF)

    def start(self) -> None:
        if self._profile is not None:
            self._profiler = cProfile.Profile()
            self._profiler.enable()
        self._cpu_start = time.process_time()
        self._usage_start = resource.getrusage(resource.RUSAGE_SELF)
        self._start = time.perf_counter()

    def stop(self) -> None:
        self.seconds = time.perf_counter() - self._start
        self.cpu_seconds = time.process_time() - self._cpu_start
        usage = resource.getrusage(resource.RUSAGE_SELF)
        self.user_seconds = usage.ru_utime - self._usage_start.ru_utime
        self.system_seconds = usage.ru_stime - self._usage_start.ru_stime
        if self._profiler is not None:
            self._profiler.disable()
            assert self._profile is not None
            self._profiler.dump_stats(self._profile)
            stats = pstats.Stats(self._profiler, stream=sys.stderr)
            stats.sort_stats("tottime").print_stats(25)


def read_reply(file: IO[bytes]) -> bytes:
    """One SMTP reply (all its lines) from a blocking socket file; b"" at EOF."""
    lines = []
    while True:
        line = file.readline()
        if not line:
            return b""
        lines.append(line)
        if line[3:4] != b"-":
            return b"".join(lines)


def finish_run(
    report: dict[str, Any],
    started: float,
    json_path: str | None,
    failed: bool,
    *,
    reproduce: str | None = None,
) -> int:
    """End a bench run: its duration and load into ``report``, the closing line, the JSON.

    ``started`` is the run's `time.monotonic` start. Returns the exit status:
    1 when ``failed``, else 0.
    """
    load = os.getloadavg()
    report["load_average_end"] = load
    report["seconds"] = time.monotonic() - started
    how = f"; to reproduce: {reproduce}" if reproduce else ""
    print(
        f"\ndone in {report['seconds']:.0f} s; "
        f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}{how}"
    )
    if json_path:
        Path(json_path).write_text(json.dumps(report, indent=2) + "\n")
    return 1 if failed else 0
