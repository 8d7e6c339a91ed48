"""The command line: both demos run and say what they did."""

from __future__ import annotations

import subprocess
import sys

from trio_smtp._cli import run_core_demo, run_demo


def test_demo_sends_through_the_embedded_server() -> None:
    lines: list[str] = []
    assert run_demo(lines.append) == 0
    transcript = "\n".join(lines)
    assert "C: STARTTLS" in transcript
    assert "C: AUTH PLAIN ***" in transcript
    assert "C: ..this line starts with a dot" in transcript
    assert "the server recorded 3 message(s)" in transcript
    assert "demo-password" not in transcript


def test_core_demo_walks_the_sans_io_session() -> None:
    lines: list[str] = []
    assert run_core_demo(lines.append) == 0
    assert "C: MAIL FROM:<alice@example.com> BODY=8BITMIME" in lines
    assert any(line.startswith("state: CLOSED") for line in lines)


def test_python_dash_m_entry_point() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "trio_smtp", "demo", "--core"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "S: 221 2.0.0 Bye" in result.stdout
