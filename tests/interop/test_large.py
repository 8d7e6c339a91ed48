"""A 50 MiB message streamed through DATA and through BDAT to every server.

The body is a `GeneratedBody` stream, so neither the client nor the test
holds it whole; the stored copy is hashed while it is read, and compared
with the hash of the same message generated again in the store's line
ending. The size is declared with SIZE where the server offers it.
"""

from __future__ import annotations

import pytest
import trio

from trio_smtp import ExtensionUnavailable, MailParams

from ._checks import expect_offer
from ._mailstore import wait_for_digest
from ._matrix import note_not_offered
from ._messages import ALICE, SENDER, GeneratedBody, new_message_id
from ._targets import ALL_TARGETS, Target

SIZE = 50 * 1024 * 1024
#: Generous for 2 shared cores: the transfer takes seconds, delivery a few more.
LARGE_TIMEOUT = 240


@pytest.mark.parametrize(
    "transfer",
    [
        pytest.param("data", marks=pytest.mark.interop("large-data")),
        pytest.param("bdat", marks=pytest.mark.interop("large-bdat")),
    ],
)
@pytest.mark.parametrize("target", ALL_TARGETS, indirect=True)
async def test_fifty_mebibytes_streamed_arrive_exactly(
    target: Target, transfer: str, request: pytest.FixtureRequest
) -> None:
    body = GeneratedBody(new_message_id(), SIZE)
    with trio.fail_after(LARGE_TIMEOUT):
        async with target.connect() as client:
            if transfer == "bdat" and not expect_offer(client, target, "CHUNKING"):
                with pytest.raises(ExtensionUnavailable) as refused:
                    await client.send_mail(SENDER, [ALICE], body, transfer="bdat")
                assert refused.value.name == "CHUNKING"
                note_not_offered(request.node)
                return
            params = MailParams(size=SIZE) if expect_offer(client, target, "SIZE") else None
            outcome = await client.send_mail(
                SENDER,
                [ALICE],
                body,
                mail_params=params,
                transfer="data" if transfer == "data" else "bdat",
            )
        assert outcome.reply.is_positive
        assert outcome.transfer == transfer.upper()
        stored = await wait_for_digest(target.store, ALICE, body.message_id)
        await target.settled()
    expected_digest, expected_size = await trio.to_thread.run_sync(
        lambda: body.digest(newline=target.store.newline)
    )
    assert stored.size == expected_size
    assert stored.sha256 == expected_digest
