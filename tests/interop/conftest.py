"""The real-server interop suite's switch, its servers, and its matrix.

Opt-in: ``python -m pytest tests/interop --run-interop`` (as root, on a
Debian machine). Without the option every test here is deselected, with
one line saying why, so the normal ``python -m pytest`` never installs or
starts anything. With it, the session fixtures install (apt) and start
each server once, on loopback, from configuration generated into one
temporary directory, and stop each by its process id or handle at the end,
also after failures. A server that cannot be had skips its tests with the
reason, or fails them when ``CI=true``.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from collections.abc import Generator, Iterator
from importlib.metadata import version
from pathlib import Path
from typing import Protocol, TypeVar

import pytest

import trio_smtp

from ._aiosmtpd import DATA_SIZE_LIMIT as AIOSMTPD_SIZE_LIMIT
from ._aiosmtpd import Aiosmtpd
from ._checks import Wire
from ._dovecot import BINARY as DOVECOT
from ._dovecot import Dovecot
from ._exim import MESSAGE_SIZE_LIMIT as EXIM_SIZE_LIMIT
from ._exim import Exim
from ._matrix import Matrix, tag
from ._pki import Certificates, make_certificates
from ._postfix import MESSAGE_SIZE_LIMIT as POSTFIX_SIZE_LIMIT
from ._postfix import Postfix, installed_version
from ._provision import Apt, ServerUnavailable, run, unavailable
from ._targets import Endpoint, Target, queue_drained

HERE = Path(__file__).parent
RUN_COMMAND = "python -m pytest tests/interop --run-interop"
#: Keep the run's directory (configs, logs, Maildirs) for a post-mortem.
KEEP_ENV = "TRIO_SMTP_INTEROP_KEEP"

_SMTP_EXTENSIONS = frozenset({"PIPELINING", "CHUNKING", "8BITMIME", "SMTPUTF8", "DSN", "SIZE"})


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("interop", "real-server interop suite (tests/interop)")
    group.addoption(
        "--run-interop",
        action="store_true",
        default=False,
        help="install and start Postfix, Dovecot, Exim and aiosmtpd, and run tests/interop",
    )
    group.addoption(
        "--interop-matrix",
        metavar="PATH",
        default=None,
        help="also write the server x feature matrix to PATH as a reStructuredText table",
    )


def _enabled(config: pytest.Config) -> bool:
    return bool(config.getoption("run_interop", default=False))


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "interop(feature, server=None): a cell of the interop matrix (tests/interop)"
    )
    if _enabled(config) and not config.pluginmanager.has_plugin("interop-matrix"):
        output = config.getoption("interop_matrix", default=None)
        config.pluginmanager.register(
            Matrix(Path(output) if output else None), name="interop-matrix"
        )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    ours = [item for item in items if item.path.is_relative_to(HERE)]
    if not _enabled(config):
        if ours:
            config.hook.pytest_deselected(items=ours)
            items[:] = [item for item in items if not item.path.is_relative_to(HERE)]
            config.stash[_DESELECTED] = len(ours)
        return
    for item in ours:
        tag(item)


_DESELECTED = pytest.StashKey[int]()


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    deselected = terminalreporter.config.stash.get(_DESELECTED, 0)
    if deselected:
        terminalreporter.write_line(
            f"tests/interop: {deselected} real-server tests deselected: the suite is opt-in "
            f"(needs root and Debian packages): {RUN_COMMAND}"
        )


def _matrix(config: pytest.Config) -> Matrix | None:
    plugin = config.pluginmanager.get_plugin("interop-matrix")
    return plugin if isinstance(plugin, Matrix) else None


def _title(request: pytest.FixtureRequest, key: str, title: str) -> None:
    matrix = _matrix(request.config)
    if matrix is not None:
        matrix.titles[key] = title


# -- the run's directory, certificates and package manager -------------------


@pytest.fixture(scope="session")
def interop_root() -> Iterator[Path]:
    if os.geteuid() != 0:
        unavailable("the interop servers", "they must be installed and started as root")
    root = Path(tempfile.mkdtemp(prefix="trio-smtp-interop-"))
    # The servers' unprivileged users (postfix, dovecot, Debian-exim,
    # nobody) must reach their parts of the tree.
    root.chmod(0o755)
    yield root
    if os.environ.get(KEEP_ENV):
        print(f"\ninterop: kept {root}")
    else:
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def certificates(interop_root: Path) -> Certificates:
    return make_certificates(interop_root / "pki")


@pytest.fixture(scope="session")
def apt() -> Apt:
    return Apt()


# -- the servers ---------------------------------------------------------------


class _Installed(Protocol):
    def start(self, apt: Apt) -> None: ...

    def stop(self) -> None: ...


_Server = TypeVar("_Server", bound=_Installed)


def _running(server: _Server, name: str, apt: Apt) -> Iterator[_Server]:
    """Start ``server`` (or report it unavailable), and stop it by its pid afterwards."""
    try:
        server.start(apt)
    except ServerUnavailable as exc:
        server.stop()
        unavailable(name, str(exc))
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def dovecot_server(interop_root: Path, certificates: Certificates, apt: Apt) -> Iterator[Dovecot]:
    yield from _running(Dovecot(interop_root / "dovecot", certificates), "Dovecot", apt)


@pytest.fixture(scope="session")
def postfix_server(
    interop_root: Path, certificates: Certificates, apt: Apt, request: pytest.FixtureRequest
) -> Iterator[Postfix]:
    # Postfix's SASL goes through Dovecot's auth service: no Dovecot, no Postfix.
    dovecot: Dovecot = request.getfixturevalue("dovecot_server")
    yield from _running(Postfix(interop_root / "postfix", certificates, dovecot), "Postfix", apt)


@pytest.fixture(scope="session")
def exim_server(interop_root: Path, certificates: Certificates, apt: Apt) -> Iterator[Exim]:
    yield from _running(Exim(interop_root / "exim", certificates), "Exim", apt)


@pytest.fixture(scope="session")
def aiosmtpd_server(certificates: Certificates) -> Iterator[Aiosmtpd]:
    server = Aiosmtpd(certificates)
    server.start()
    try:
        yield server
    finally:
        server.stop()


# -- the same servers as targets -------------------------------------------------


def _postfix_target(request: pytest.FixtureRequest, *, strict: bool) -> Target:
    server: Postfix = request.getfixturevalue("postfix_server")
    key = "postfix-strict" if strict else "postfix"
    title = f"Postfix {installed_version()}" + (", strict" if strict else "")
    _title(request, key, title)
    plain = trio_smtp.PLAINTEXT
    return Target(
        key=key,
        title=title,
        lmtp=False,
        relay=Endpoint(plain, port=server.strict_port if strict else server.smtp_port),
        store=server.store,
        certificates=server.certificates,
        offers=_SMTP_EXTENSIONS | ({"STARTTLS"} if not strict else set()),
        auth_mechanisms=frozenset() if strict else frozenset({"PLAIN", "LOGIN", "CRAM-MD5"}),
        submission=None if strict else Endpoint(trio_smtp.STARTTLS, port=server.submission_port),
        smtps=None if strict else Endpoint(trio_smtp.IMPLICIT, port=server.smtps_port),
        no_starttls=Endpoint(trio_smtp.STARTTLS, port=server.strict_port),
        size_limit=POSTFIX_SIZE_LIMIT,
        settle=queue_drained(server.queued, what="Postfix"),
        logs=server.log_tail,
    )


def _exim_target(request: pytest.FixtureRequest) -> Target:
    server: Exim = request.getfixturevalue("exim_server")
    banner = re.search(r"Exim version (\S+)", run([server.binary, "-C", server.config_file, "-bV"]))
    title = f"Exim {banner.group(1) if banner else '(unknown version)'}"
    _title(request, "exim", title)
    return Target(
        key="exim",
        title=title,
        lmtp=False,
        relay=Endpoint(trio_smtp.PLAINTEXT, port=server.smtp_port),
        store=server.store,
        certificates=server.certificates,
        offers=_SMTP_EXTENSIONS | {"STARTTLS"},
        auth_mechanisms=frozenset({"PLAIN", "LOGIN", "CRAM-MD5"}),
        submission=Endpoint(trio_smtp.STARTTLS, port=server.submission_port),
        smtps=Endpoint(trio_smtp.IMPLICIT, port=server.smtps_port),
        no_starttls=Endpoint(trio_smtp.STARTTLS, port=server.plain_port),
        size_limit=EXIM_SIZE_LIMIT,
        settle=queue_drained(server.queued, what="Exim"),
        logs=server.log_tail,
    )


def _dovecot_target(request: pytest.FixtureRequest, *, unix: bool) -> Target:
    server: Dovecot = request.getfixturevalue("dovecot_server")
    dovecot_version = run([DOVECOT, "--version"]).split()[0]
    key = "dovecot-unix" if unix else "dovecot-tcp"
    title = f"Dovecot {dovecot_version} LMTP, " + ("unix socket" if unix else "TCP")
    _title(request, key, title)
    return Target(
        key=key,
        title=title,
        lmtp=True,
        relay=(
            Endpoint(trio_smtp.PLAINTEXT, path=server.lmtp_socket)
            if unix
            # Over TCP, open_lmtp requires STARTTLS by default; Dovecot offers it.
            else Endpoint(trio_smtp.STARTTLS, port=server.lmtp_port)
        ),
        store=server.store,
        certificates=server.certificates,
        offers=frozenset(
            {"PIPELINING", "CHUNKING", "8BITMIME"} | (set() if unix else {"STARTTLS"})
        ),
        logs=server.log_tail,
    )


def _aiosmtpd_target(request: pytest.FixtureRequest) -> Target:
    server: Aiosmtpd = request.getfixturevalue("aiosmtpd_server")
    title = f"aiosmtpd {version('aiosmtpd')}"
    _title(request, "aiosmtpd", title)
    return Target(
        key="aiosmtpd",
        title=title,
        lmtp=False,
        relay=Endpoint(trio_smtp.PLAINTEXT, port=server.smtp_port),
        store=server.store,
        certificates=server.certificates,
        offers=frozenset({"8BITMIME", "SMTPUTF8", "SIZE", "STARTTLS"}),
        auth_mechanisms=frozenset({"PLAIN", "LOGIN"}),
        submission=Endpoint(trio_smtp.STARTTLS, port=server.submission_port),
        smtps=Endpoint(trio_smtp.IMPLICIT, port=server.smtps_port),
        no_starttls=Endpoint(trio_smtp.STARTTLS, port=server.plain_port),
        size_limit=AIOSMTPD_SIZE_LIMIT,
    )


_BUILDERS = {
    "postfix": lambda request: _postfix_target(request, strict=False),
    "postfix-strict": lambda request: _postfix_target(request, strict=True),
    "exim": _exim_target,
    "dovecot-tcp": lambda request: _dovecot_target(request, unix=False),
    "dovecot-unix": lambda request: _dovecot_target(request, unix=True),
    "aiosmtpd": _aiosmtpd_target,
}


@pytest.fixture(scope="session")
def built_targets() -> dict[str, Target]:
    """Targets built so far, so that each is built once per session."""
    return {}


@pytest.fixture
def target(request: pytest.FixtureRequest, built_targets: dict[str, Target]) -> Target:
    """The server under test: parametrise with ``indirect=True`` over `_targets` keys."""
    key = request.param
    if key not in built_targets:
        built_targets[key] = _BUILDERS[key](request)
    return built_targets[key]


@pytest.fixture
def wire(caplog: pytest.LogCaptureFixture) -> Wire:
    """The client's command lines and replies, as its DEBUG log shows them."""
    return Wire(caplog)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """Attach the server's log to a failing test's report: CI keeps nothing else."""
    report = yield
    target = getattr(item, "funcargs", {}).get("target")
    if report.failed and isinstance(target, Target) and target.logs is not None:
        report.sections.append((f"{target.title} log (last lines)", target.logs()))
    return report
