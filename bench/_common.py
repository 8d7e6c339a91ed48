"""Small pieces the bench scripts share: timing a measured section, reading a reply.

This module owns only what more than one bench script needs and imports
nothing heavy, so that ``bench/stream.py``'s workers can use it without
adding to the memory they measure (``_peers`` imports asyncio, email and
smtplib).
"""

from __future__ import annotations

import cProfile
import pstats
import resource
import sys
import time
from typing import IO


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
