"""An in-process trio SMTP/LMTP server for tests: the project's and its users'.

This package owns the public testing API: `open_test_server` and the
`TestServer` it yields, the records it keeps (`ReceivedMessage`,
`SyncViolation`) and the fault-injection vocabulary (`FaultPoint`, `Reply`,
`Drop`, `Delay`, `DelayThen` and the policy builders). pytest fixtures live
in `trio_smtp.testing.pytest_plugin`, which is not imported from here, so
using the server needs neither pytest nor pytest-trio.

The server reads SMTP with its own code (`._wire`), independent of the
client's core, so that it can catch the client's misreadings of the RFCs.
"""

from __future__ import annotations

from ._faults import (
    Action,
    Delay,
    DelayThen,
    Drop,
    FaultPoint,
    FaultPolicy,
    Reply,
    Stage,
    combine,
    delay,
    drop_at,
    reply_override,
)
from ._server import (
    ReceivedMessage,
    ServerOptions,
    SyncViolation,
    TestServer,
    open_test_server,
)

__all__ = [
    "Action",
    "Delay",
    "DelayThen",
    "Drop",
    "FaultPoint",
    "FaultPolicy",
    "ReceivedMessage",
    "Reply",
    "ServerOptions",
    "Stage",
    "SyncViolation",
    "TestServer",
    "combine",
    "delay",
    "drop_at",
    "open_test_server",
    "reply_override",
]
