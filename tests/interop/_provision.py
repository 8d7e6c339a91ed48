"""Getting real servers onto the machine and their processes off it again.

Owns the rule for a server that cannot be had: `unavailable` skips with the
reason on a developer machine and fails (an error in the fixture) on CI,
where the packages can always be installed and the suite must really run.
Also owns the Debian package installs (``apt-get update`` once, then
``apt-get install``), unpacking packages that conflict with the installed
MTA without installing them, free loopback ports, waiting for a listener,
and stopping a daemon, with the processes it forked, by its process id.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import NoReturn

import pytest

#: Apt may take a while on a cold cache; a hung mirror must not hang CI.
APT_TIMEOUT = 600
#: How long a daemon gets to open its listeners or to exit.
DAEMON_TIMEOUT = 30.0


class ServerUnavailable(Exception):
    """A server could not be installed or started; the message says why."""


def on_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("true", "1", "yes")


def unavailable(server: str, reason: str) -> NoReturn:
    """Skip loudly on a developer machine; fail on CI, which must run every server."""
    message = f"{server} is not available: {reason}"
    if on_ci():
        pytest.fail(f"{message} (CI=true: every interop server must run)", pytrace=False)
    pytest.skip(message)


def run(
    command: Sequence[str | Path],
    *,
    timeout: float = 60,
    check: bool = True,
    cwd: Path | None = None,
) -> str:
    """Run a command, returning its combined output; a failure carries that output.

    The output goes through a file, not a pipe: a daemon that forks off
    keeps its inherited descriptors, and a pipe would then never close.
    """
    words = " ".join(str(part) for part in command)
    with tempfile.TemporaryFile() as output:
        try:
            result = subprocess.run(
                [str(part) for part in command],
                cwd=cwd,
                stdin=subprocess.DEVNULL,
                stdout=output,
                stderr=subprocess.STDOUT,
                timeout=timeout,
                check=False,
                env={**os.environ, "DEBIAN_FRONTEND": "noninteractive", "LC_ALL": "C"},
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise ServerUnavailable(f"{words}: {exc}") from exc
        output.seek(0)
        text = output.read().decode("utf-8", "replace")
    if check and result.returncode != 0:
        tail = "\n".join(text.splitlines()[-20:])
        raise ServerUnavailable(f"{words} exited {result.returncode}:\n{tail}")
    return text


class Apt:
    """Debian packages, with ``apt-get update`` run at most once per session."""

    def __init__(self) -> None:
        self._updated = False

    def _require_apt(self) -> None:
        if shutil.which("apt-get") is None or shutil.which("dpkg-deb") is None:
            raise ServerUnavailable("apt-get and dpkg-deb are needed to install it")
        if os.geteuid() != 0:
            raise ServerUnavailable("installing Debian packages needs root")

    def _update(self) -> None:
        if not self._updated:
            run(["apt-get", "update", "-qq"], timeout=APT_TIMEOUT)
            self._updated = True

    def ensure_installed(
        self,
        packages: Sequence[str],
        *,
        provides: Sequence[str | Path],
        service_pid_file: Path | None = None,
    ) -> None:
        """Install ``packages`` unless every path in ``provides`` already exists.

        Where Debian's maintainer scripts may start the system's own
        instance of the server (no policy-rc.d forbids it), that instance,
        found by ``service_pid_file``, is stopped again if the install is
        what started it: the suite runs private instances only.
        """
        if all(Path(path).exists() for path in provides):
            return
        self._require_apt()
        self._update()
        running_before = _pid_running(service_pid_file)
        run(
            ["apt-get", "install", "-y", "-qq", "--no-install-recommends", *packages],
            timeout=APT_TIMEOUT,
        )
        if service_pid_file is not None and not running_before:
            stop_pid(read_pid(service_pid_file))
        missing = [path for path in provides if not Path(path).exists()]
        if missing:
            raise ServerUnavailable(f"installing {' '.join(packages)} did not provide {missing}")

    def unpack(self, packages: Sequence[str], into: Path) -> Path:
        """Download ``packages`` and extract them under ``into`` without installing them.

        For servers whose packages conflict with the installed MTA (Exim
        and Postfix both provide mail-transport-agent). Their library
        dependencies are installed normally, since libraries never conflict.
        """
        self._require_apt()
        self._update()
        downloads = into / "debs"
        root = into / "root"
        downloads.mkdir(parents=True, exist_ok=True)
        root.mkdir(parents=True, exist_ok=True)
        # apt's sandbox user must be able to write the download directory.
        downloads.chmod(0o777)
        run(["apt-get", "download", *packages], timeout=APT_TIMEOUT, cwd=downloads)
        libraries: set[str] = set()
        for deb in sorted(downloads.glob("*.deb")):
            run(["dpkg-deb", "-x", deb, root])
            libraries.update(_library_dependencies(run(["dpkg-deb", "-f", deb, "Depends"])))
        if libraries:
            run(
                ["apt-get", "install", "-y", "-qq", "--no-install-recommends", *sorted(libraries)],
                timeout=APT_TIMEOUT,
            )
        return root


def _library_dependencies(depends: str) -> set[str]:
    """The ``lib*`` package names in a Depends field (first of each alternative)."""
    names: set[str] = set()
    for clause in depends.split(","):
        first = clause.split("|")[0].strip()
        name = first.split(" ")[0].split(":")[0]
        if name.startswith("lib"):
            names.add(name)
    return names


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def wait_for_listener(
    address: tuple[str, int] | Path, *, what: str, timeout: float = DAEMON_TIMEOUT
) -> None:
    """Block until something accepts connections at ``address`` (TCP or unix socket)."""
    deadline = time.monotonic() + timeout
    while True:
        family = socket.AF_UNIX if isinstance(address, Path) else socket.AF_INET
        with socket.socket(family) as probe:
            probe.settimeout(1)
            try:
                probe.connect(str(address) if isinstance(address, Path) else address)
                return
            except OSError as exc:
                if time.monotonic() > deadline:
                    raise ServerUnavailable(f"{what} is not listening on {address}: {exc}") from exc
        time.sleep(0.1)


def _pid_running(pid_file: Path | None) -> bool:
    pid = read_pid(pid_file) if pid_file is not None else None
    return pid is not None and is_running(pid)


def read_pid(pid_file: Path) -> int | None:
    try:
        return int(pid_file.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def is_running(pid: int) -> bool:
    """Whether the process exists and is not a zombie waiting for its reaper."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    # The state follows the parenthesised command name, which may hold spaces.
    return stat.rpartition(")")[2].split()[0] != "Z"


def _group_alive(group: int) -> bool:
    """Whether any process of the group is still running (zombies do not count)."""
    for stat_file in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat_file.read_text().rpartition(")")[2].split()
        except OSError:
            continue
        # After the command name: state, ppid, pgrp.
        if fields[0] != "Z" and int(fields[2]) == group:
            return True
    return False


def stop_pid(pid: int | None, *, timeout: float = DAEMON_TIMEOUT) -> None:
    """Stop the daemon with this id, and the processes it started.

    Mail daemons put themselves in a process group of their own (the group
    id is the daemon's pid) and fork a child per connection and delivery;
    those outlive a SIGTERM to the daemon alone, and would go on writing
    into a directory being removed. So the group gets SIGTERM, and SIGKILL
    if it lingers. A pid that does not lead its own group is signalled alone.
    """
    if pid is None or not is_running(pid):
        return
    try:
        leads_group = os.getpgid(pid) == pid
    except ProcessLookupError:
        return
    alive: Callable[[], bool]
    if leads_group:

        def signal_all(signum: int) -> None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signum)

        def alive() -> bool:
            return is_running(pid) or _group_alive(pid)

    else:

        def signal_all(signum: int) -> None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signum)

        def alive() -> bool:
            return is_running(pid)

    signal_all(signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while alive():
        if time.monotonic() > deadline:
            signal_all(signal.SIGKILL)
            return
        time.sleep(0.05)
