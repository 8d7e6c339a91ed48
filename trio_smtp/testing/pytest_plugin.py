"""pytest fixtures for the trio-smtp test server (load with ``-p`` or the pytest11 entry point).

This module owns the two fixtures: ``smtp_server`` (a server with the
default configuration) and ``smtp_server_factory`` (an async callable that
starts a server with any `open_test_server` keyword arguments; every server
it started is stopped at teardown). Both are async fixtures, so they run
under pytest-trio (``trio_mode = true`` or ``@pytest.mark.trio``). Only this
module imports pytest; `trio_smtp.testing` itself does not.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, cast

import pytest
import trio

from ._server import ServerOptions, TestServer, open_test_server

if TYPE_CHECKING:
    from typing_extensions import Unpack

__all__ = ["SMTPServerFactory", "smtp_server", "smtp_server_factory"]


class SMTPServerFactory:
    """Starts test servers in a nursery that outlives the calling test task.

    A server's nursery must be entered and left by the same task; the
    fixture's task owns this nursery, and each call starts one server task
    in it, so the test may start servers freely and teardown stops them.
    """

    def __init__(self, nursery: trio.Nursery) -> None:
        self._nursery = nursery

    async def __call__(self, **options: Unpack[ServerOptions]) -> TestServer:
        server = await self._nursery.start(self._run, options)
        return cast(TestServer, server)

    @staticmethod
    async def _run(
        options: ServerOptions,
        *,
        task_status: trio.TaskStatus[TestServer] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        async with open_test_server(**options) as server:
            task_status.started(server)
            await trio.sleep_forever()


@pytest.fixture
async def smtp_server() -> AsyncIterator[TestServer]:
    """A running test server with the default configuration (SMTP, no TLS)."""
    async with open_test_server() as server:
        yield server


@pytest.fixture
async def smtp_server_factory() -> AsyncIterator[SMTPServerFactory]:
    """``await smtp_server_factory(lmtp=True, ...)`` starts a server; all stop at teardown."""
    async with trio.open_nursery() as nursery:
        yield SMTPServerFactory(nursery)
        nursery.cancel_scope.cancel()
