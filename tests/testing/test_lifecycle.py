"""Starting and stopping: no leaked tasks or sockets, errors pass through, the plugin works.

Also the two rules about what this package may import: the server never
uses the client's protocol core, and `trio_smtp.testing` never imports
pytest or pytest-trio.
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys
import textwrap
from contextlib import AsyncExitStack
from pathlib import Path

import pytest
import trio
import trio.lowlevel

import trio_smtp.testing
from trio_smtp.testing import TestServer, open_test_server, reply_override
from trio_smtp.testing.pytest_plugin import SMTPServerFactory

from .rawclient import RawClient

PACKAGE_DIR = Path(trio_smtp.testing.__file__).parent
REPO_ROOT = PACKAGE_DIR.parent.parent


def count_tasks() -> int:
    def walk(task: trio.lowlevel.Task) -> int:
        return 1 + sum(walk(child) for n in task.child_nurseries for child in n.child_tasks)

    root = trio.lowlevel.current_root_task()
    assert root is not None
    return walk(root)


async def test_exit_closes_listener_connections_and_tasks() -> None:
    with trio.fail_after(10):
        before = count_tasks()
        async with AsyncExitStack() as clients:
            async with open_test_server() as server:
                idle = await clients.enter_async_context(await RawClient.connect(server))
                busy = await clients.enter_async_context(await RawClient.connect(server))
                await idle.expect(None, 220)
                await busy.send(b"EHLO x\r\nMAIL FROM:<a@example.org>\r\n")
                await busy.send(b"RCPT TO:<b@example.org>\r\nDATA\r\nhalf a messa")
                for code in (220, 250, 250, 250, 354):
                    await busy.expect(None, code)
                assert count_tasks() > before
            assert count_tasks() == before
            assert await idle.at_eof()
            assert await busy.at_eof()
        with pytest.raises(OSError, match="connect"):
            await trio.open_tcp_stream(server.host, server.port)
    assert server.connections == 2
    assert server.messages == []


async def test_error_in_block_comes_out_unwrapped() -> None:
    with trio.fail_after(10), pytest.raises(KeyError, match="boom"):
        async with open_test_server():
            raise KeyError("boom")


async def test_cancellation_of_the_block() -> None:
    with trio.fail_after(10):
        with trio.move_on_after(0.05) as scope:
            async with open_test_server() as server:
                await trio.sleep_forever()
        assert scope.cancelled_caught
        with pytest.raises(OSError, match="connect"):
            await trio.open_tcp_stream(server.host, server.port)


async def test_unix_socket_file_removed(tmp_path: Path) -> None:
    path = tmp_path / "s.sock"
    with trio.fail_after(10):
        async with (
            open_test_server(unix_path=path) as server,
            await RawClient.connect(server) as client,
        ):
            await client.expect(None, 220)
            await client.expect("QUIT", 221)
        assert not path.exists()


async def test_reset_clears_records_but_not_counters(smtp_server: TestServer) -> None:
    with trio.fail_after(10):
        async with await RawClient.connect(smtp_server) as client:
            await client.expect(None, 220)
            await client.send(b"NOOP\n")
            await client.expect(None, 500)
            await client.expect("EHLO x", 250)
            await client.expect("MAIL FROM:<a@example.org>", 250)
            await client.expect("RCPT TO:<b@example.org>", 250)
            await client.send(b"DATA\r\nx\r\n.\r\n")
            await client.expect(None, 354)
            await client.expect(None, 250)
            assert smtp_server.messages and smtp_server.sync_violations
            first_id = smtp_server.messages[0].queue_id
            smtp_server.reset()
            assert smtp_server.messages == []
            assert smtp_server.transcripts == [[]]
            assert smtp_server.reply_batches == [[]]
            assert smtp_server.sync_violations == []
            assert not smtp_server.bare_newlines_seen
            await client.expect("NOOP", 250)  # the live connection keeps recording
            await client.expect("MAIL FROM:<a@example.org>", 250)
            await client.expect("RCPT TO:<b@example.org>", 250)
            await client.expect("DATA", 354)
            await client.expect(".", 250)
    assert smtp_server.transcripts[0][:2] == [("C", b"NOOP"), ("S", b"250 2.0.0 Ok\r\n")]
    assert smtp_server.connections == 1
    assert smtp_server.messages[0].queue_id != first_id


async def test_factory_starts_several_servers(smtp_server_factory: SMTPServerFactory) -> None:
    with trio.fail_after(10):
        smtp = await smtp_server_factory()
        lmtp = await smtp_server_factory(lmtp=True, faults=reply_override("NOOP", "250 hi"))
        assert smtp.port != lmtp.port
        async with await RawClient.connect(lmtp) as client:
            await client.expect(None, 220)
            await client.expect("LHLO x", 250)
            assert await client.expect("NOOP", 250) == [b"hi"]
        async with await RawClient.connect(smtp) as client:
            await client.expect(None, 220)
            await client.expect("EHLO x", 250)
    assert "LMTP" in repr(lmtp)


def test_testserver_is_not_collected_as_a_test_class() -> None:
    assert TestServer.__test__ is False


@pytest.mark.parametrize(
    "options", [{"tls": "maybe"}, {"max_size": -1}, {"extensions": "PIPELINING"}]
)
async def test_bad_options_are_refused(options: dict[str, object]) -> None:
    with trio.fail_after(10), pytest.raises((ValueError, TypeError)):
        async with open_test_server(**options):  # type: ignore[arg-type]
            pass


def test_plugin_works_when_loaded_by_pytest(tmp_path: Path) -> None:
    (tmp_path / "pytest.ini").write_text("[pytest]\ntrio_mode = true\n")
    (tmp_path / "test_user.py").write_text(
        textwrap.dedent(
            """
            import smtplib
            import trio

            async def test_default(smtp_server):
                def talk():
                    with smtplib.SMTP(smtp_server.host, smtp_server.port, timeout=5) as c:
                        c.sendmail("a@example.org", ["b@example.org"], b"hi\\r\\n")
                with trio.fail_after(10):
                    await trio.to_thread.run_sync(talk)
                assert smtp_server.messages[0].data == b"hi\\r\\n"

            async def test_factory(smtp_server_factory):
                server = await smtp_server_factory(lmtp=True, max_size=10)
                assert server.lmtp and server.port > 0
            """
        )
    )
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            str(tmp_path),
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert "2 passed" in result.stdout, result.stdout + result.stderr


def test_importing_the_package_imports_neither_pytest_nor_pytest_trio() -> None:
    probe = (
        "import sys, trio_smtp.testing\n"
        "print(','.join(sorted(m for m in sys.modules"
        " if m.split('.')[0] in ('pytest', '_pytest', 'pytest_trio', 'trustme'))))\n"
    )
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
    result = subprocess.run(
        [sys.executable, "-c", probe],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
        env=env,
    )
    assert result.stdout.strip() == ""


# The client's protocol core: the server must be an independent reading.
FORBIDDEN = ("trio_smtp._core", "trio_smtp._client", "trio_smtp._tls")
ALLOWED = ("trio_smtp._core.errors",)


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    found: set[str] = set()
    package = "trio_smtp.testing"
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                module = f"{base}.{node.module}" if node.module else base
            else:
                module = node.module or ""
            found.add(module)
            found.update(f"{module}.{alias.name}" for alias in node.names)
    return found


@pytest.mark.parametrize("path", sorted(PACKAGE_DIR.glob("*.py")), ids=lambda p: p.name)
def test_server_shares_no_protocol_code_with_the_client(path: Path) -> None:
    for module in imported_modules(path):
        if module.startswith(FORBIDDEN):
            assert module.startswith(ALLOWED), f"{path.name} imports {module}"


def test_import_check_sees_relative_imports(tmp_path: Path) -> None:
    sample = tmp_path / "sample.py"
    sample.write_text("from .._core import reply\nfrom .._core.session import X\n")
    assert {"trio_smtp._core.reply", "trio_smtp._core.session"} <= imported_modules(sample)
