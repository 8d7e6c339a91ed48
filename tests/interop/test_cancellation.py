"""A send cancelled halfway through a streamed body must deliver nothing, on any server.

The client promises that cancellation while a body is on the wire closes
the connection without an end of data, so no server can take the truncated
message for a complete one. The cancel scope is cancelled from inside the
body stream once a few MiB have been read, while DATA lines (or BDAT
chunks) are still being written.
"""

from __future__ import annotations

import pytest
import trio

from trio_smtp import ExtensionUnavailable, SessionState

from ._checks import TEST_TIMEOUT, expect_offer, never_delivered
from ._matrix import note_not_offered
from ._messages import ALICE, SENDER, GeneratedBody, new_message_id
from ._targets import ALL_TARGETS, Target

#: The whole message would be this large; the send is cancelled after `CANCEL_AFTER`.
SIZE = 16 * 1024 * 1024
CANCEL_AFTER = 4 * 1024 * 1024


class CancellingBody(GeneratedBody):
    """A generated body that cancels ``scope`` once ``after`` bytes have been read from it."""

    def __init__(self, scope: trio.CancelScope, *, after: int) -> None:
        super().__init__(new_message_id(), SIZE)
        self._scope = scope
        self._after = after
        self.read = 0

    async def receive_some(self, max_bytes: int | None = None) -> bytes:
        chunk = await super().receive_some(max_bytes)
        self.read += len(chunk)
        if self.read >= self._after:
            self._scope.cancel()
        return chunk


@pytest.mark.interop("cancel-mid-body")
@pytest.mark.parametrize("transfer", ["data", "bdat"])
@pytest.mark.parametrize("target", ALL_TARGETS, indirect=True)
async def test_cancelled_mid_body_delivers_nothing(
    target: Target, transfer: str, request: pytest.FixtureRequest
) -> None:
    with trio.fail_after(TEST_TIMEOUT):
        with trio.CancelScope() as scope:
            body = CancellingBody(scope, after=CANCEL_AFTER)
            async with target.connect() as client:
                if transfer == "bdat" and not expect_offer(client, target, "CHUNKING"):
                    with pytest.raises(ExtensionUnavailable):
                        await client.send_mail(SENDER, [ALICE], body, transfer="bdat")
                    note_not_offered(request.node)
                    return
                await client.send_mail(
                    SENDER, [ALICE], body, transfer="data" if transfer == "data" else "bdat"
                )
        assert scope.cancelled_caught
        assert CANCEL_AFTER <= body.read < SIZE
        assert client.state is SessionState.BROKEN
        assert not client.awaiting_final_reply
        await never_delivered(target, ALICE, body.message_id)
