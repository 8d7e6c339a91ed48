"""The core must stay sans-IO: importing it never imports trio."""

from __future__ import annotations

import subprocess
import sys

import pytest

CORE_MODULES = [
    "trio_smtp._core",
    "trio_smtp._core.address",
    "trio_smtp._core.capabilities",
    "trio_smtp._core.commands",
    "trio_smtp._core.dotstuff",
    "trio_smtp._core.errors",
    "trio_smtp._core.reply",
    "trio_smtp._core.sasl",
    "trio_smtp._core.session",
]


@pytest.mark.parametrize("module", CORE_MODULES)
def test_core_never_imports_trio(module: str) -> None:
    probe = (
        "import importlib, sys\n"
        f"importlib.import_module({module!r})\n"
        "leaked = sorted(name for name in sys.modules"
        " if name == 'trio' or name.startswith(('trio.', 'trio_util', 'anyio', 'asyncio')))\n"
        "print(','.join(leaked))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=60
    )
    assert result.stdout.strip() == ""


def test_probe_detects_trio() -> None:
    # The probe above must be able to fail: importing trio is seen.
    result = subprocess.run(
        [sys.executable, "-c", "import sys, trio; print('trio' in sys.modules)"],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    assert result.stdout.strip() == "True"
