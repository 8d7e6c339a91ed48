"""The server x feature matrix: collected from test reports, printed, optionally written.

Every interop test carries ``@pytest.mark.interop("feature")``; its server is
its ``target`` parameter (or the marker's ``server=``). A cell reads "pass"
when every test in it passed, "fail" when any failed or errored, "not
offered" when the tests proved that the server does not advertise the
feature (and that the client then refuses it cleanly), and "skipped" with
the reason when the server could not be had. The table is printed at the
end of every run and, with ``--interop-matrix PATH``, written as a
reStructuredText list-table for docs/interop.rst.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import pytest

#: Rows, in order: feature key -> what the row shows.
FEATURES = {
    "plain": "plain message",
    "pipelining": "PIPELINING (batch, next MAIL behind the end of data)",
    "8bitmime": "8BITMIME",
    "smtputf8": "SMTPUTF8 addresses",
    "large-data": "50 MiB stream through DATA",
    "large-bdat": "50 MiB stream through BDAT (CHUNKING)",
    "dot-lines-data": "lines starting with '.' (DATA)",
    "dot-lines-bdat": "lines starting with '.' (BDAT)",
    "recipients": "several recipients, one rejected",
    "dsn": "DSN parameters (RET, ENVID, NOTIFY, ORCPT)",
    "size": "SIZE",
    "auth-plain": "AUTH PLAIN",
    "auth-login": "AUTH LOGIN",
    "auth-cram-md5": "AUTH CRAM-MD5",
    "auth-wrong-password": "wrong password -> AuthRejected",
    "starttls": "STARTTLS",
    "starttls-refusals": "STARTTLS refusal paths",
    "implicit-tls": "implicit TLS",
    "lmtp-per-recipient": "LMTP per-recipient replies",
    "cancel-mid-body": "cancelled mid-body: nothing delivered",
    "pool": "pool: bulk job, replaced connections, stored once",
    "smuggling": "SECURITY 11 smuggling vectors: one message",
    "strict": "SECURITY 17 strictest settings accept the client",
}
#: Columns, in order: target key -> default title (fixtures record versions).
SERVERS = {
    "postfix": "Postfix",
    "postfix-strict": "Postfix, strict",
    "exim": "Exim",
    "dovecot-tcp": "Dovecot LMTP, TCP",
    "dovecot-unix": "Dovecot LMTP, unix socket",
    "aiosmtpd": "aiosmtpd",
}

NOT_OFFERED = "not offered"
_CELL_KEY = "interop_cell"
_NOTE_KEY = "interop_note"


def note_not_offered(item: pytest.Item) -> None:
    """Record that this test proved the server does not offer its feature."""
    item.user_properties.append((_NOTE_KEY, NOT_OFFERED))


def tag(item: pytest.Item) -> None:
    """Attach the (server, feature) cell of an interop-marked item to its reports."""
    marker = item.get_closest_marker("interop")
    if marker is None:
        return
    feature = marker.args[0]
    if feature not in FEATURES:
        raise pytest.UsageError(f"{item.nodeid}: unknown interop feature {feature!r}")
    server = marker.kwargs.get("server")
    if server is None:
        callspec = getattr(item, "callspec", None)
        server = callspec.params.get("target") if callspec is not None else None
    if server not in SERVERS:
        raise pytest.UsageError(f"{item.nodeid}: no interop server (target parameter or server=)")
    item.user_properties.append((_CELL_KEY, (server, feature)))


class Matrix:
    """A pytest plugin that fills the matrix from the test reports."""

    def __init__(self, output: Path | None) -> None:
        self.output = output
        self.titles = dict(SERVERS)
        self._results: dict[tuple[str, str], list[str]] = defaultdict(list)

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        properties = dict(report.user_properties)
        cell = properties.get(_CELL_KEY)
        if cell is None:
            return
        assert isinstance(cell, tuple)
        if report.failed:
            self._results[cell].append("fail")
        elif report.skipped:
            reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else "skipped"
            self._results[cell].append(f"skipped ({reason.removeprefix('Skipped: ')})")
        elif report.when == "call":
            self._results[cell].append(str(properties.get(_NOTE_KEY, "pass")))

    def cell(self, server: str, feature: str) -> str:
        results = self._results.get((server, feature))
        if not results:
            return "-"
        if "fail" in results:
            return "fail"
        skipped = [result for result in results if result.startswith("skipped")]
        if skipped:
            return skipped[0]
        if all(result == NOT_OFFERED for result in results):
            return NOT_OFFERED
        return "pass"

    def _rows(self) -> tuple[list[str], list[list[str]]]:
        servers = [key for key in SERVERS if any(s == key for s, _ in self._results)]
        header = ["feature", *(self.titles[key] for key in servers)]
        rows = [
            [title, *(self.cell(server, feature) for server in servers)]
            for feature, title in FEATURES.items()
            if any(f == feature for _, f in self._results)
        ]
        return header, rows

    def text(self) -> str:
        header, rows = self._rows()
        widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
        lines = [
            " | ".join(value.ljust(width) for value, width in zip(header, widths, strict=True))
        ]
        lines.append("-+-".join("-" * width for width in widths))
        lines += [
            " | ".join(value.ljust(w) for value, w in zip(row, widths, strict=True)) for row in rows
        ]
        return "\n".join(lines)

    def rst(self) -> str:
        header, rows = self._rows()
        lines = [".. list-table::", "   :header-rows: 1", ""]
        for row in [header, *rows]:
            lines.append(f"   * - {row[0]}")
            lines += [f"     - {value}" for value in row[1:]]
        return "\n".join(lines) + "\n"

    def pytest_terminal_summary(self, terminalreporter: pytest.TerminalReporter) -> None:
        if not self._results:
            return
        terminalreporter.write_sep("=", "interop matrix: server x feature")
        terminalreporter.write_line(self.text())
        if self.output is not None:
            self.output.write_text(self.rst(), encoding="utf-8")
            terminalreporter.write_line(f"matrix written to {self.output}")
