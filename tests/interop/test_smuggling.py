"""SECURITY 11 against real receivers: every smuggling vector arrives as exactly one message.

The lenient receivers here are the ones the vectors were made for: Postfix
3.7 with its default ``smtpd_forbid_bare_newline = no`` takes a bare LF
line ending, so ``\\n.\\n`` ends its DATA (the control test below shows it
delivering a smuggled message when the bytes are written raw). Through the
client, each vector must arrive inside the one message it was sent in, and
the smuggled message nowhere. The strict Postfix is covered by
test_sec_17_postfix_strict.py.
"""

from __future__ import annotations

import pytest
import trio

from trio_smtp import InvalidInputError

from ._checks import TEST_TIMEOUT, Wire, delivered_once, never_delivered
from ._mailstore import wait_for
from ._messages import ALICE, SENDER, SMUGGLED
from ._rawsmtp import converse
from ._smuggling import NUL_VECTOR, VECTORS, vector_message
from ._targets import Target

#: Every target but the strict Postfix, which has its own SECURITY 17 tests.
LENIENT_TARGETS = ("postfix", "exim", "dovecot-tcp", "dovecot-unix", "aiosmtpd")


@pytest.mark.interop("smuggling")
@pytest.mark.parametrize("vector", VECTORS.values(), ids=VECTORS.keys())
@pytest.mark.parametrize("target", LENIENT_TARGETS, indirect=True)
async def test_smuggling_vector_arrives_as_one_message(target: Target, vector: bytes) -> None:
    sent = vector_message(vector)
    with trio.fail_after(TEST_TIMEOUT):
        async with target.connect() as client:
            outcome = await client.send_mail(SENDER, [ALICE], sent.raw, transfer="data")
        assert outcome.reply.is_positive
        await delivered_once(target, ALICE, sent.expected)
        await never_delivered(target, SMUGGLED, sent.smuggled_id)


@pytest.mark.interop("smuggling")
@pytest.mark.parametrize("target", LENIENT_TARGETS, indirect=True)
async def test_nul_before_the_dot_is_refused_before_anything_is_written(
    target: Target, wire: Wire
) -> None:
    sent = vector_message(NUL_VECTOR)
    with trio.fail_after(TEST_TIMEOUT):
        async with target.connect() as client:
            with pytest.raises(InvalidInputError):
                await client.send_mail(SENDER, [ALICE], sent.raw, transfer="data")
            assert "MAIL" not in wire.verbs()
        await never_delivered(target, ALICE, sent.expected.message_id)
        await never_delivered(target, SMUGGLED, sent.smuggled_id)


@pytest.mark.parametrize("target", ["postfix"], indirect=True)
async def test_control_lenient_postfix_delivers_a_raw_smuggled_message(target: Target) -> None:
    """Without the client's normalisation, the vector does smuggle: the check above can fail."""
    assert target.relay.port is not None
    sent = vector_message(VECTORS["LF.LF"])
    with trio.fail_after(TEST_TIMEOUT):
        replies = await converse(
            target.relay.port,
            [
                (b"EHLO client.test\r\n", 1),
                (f"MAIL FROM:<{SENDER}>\r\n".encode(), 1),
                (f"RCPT TO:<{ALICE}>\r\n".encode(), 1),
                (b"DATA\r\n", 1),
                # The message ends at the vector; the smuggled MAIL, RCPT,
                # DATA and message (ending in its own dot) follow, then
                # QUIT: six replies.
                (sent.raw + b"QUIT\r\n", 6),
            ],
        )
        assert [reply[:3] for reply in replies[-6:]] == [
            b"250",
            b"250",
            b"250",
            b"354",
            b"250",
            b"221",
        ]
        await wait_for(target.store, SMUGGLED, sent.smuggled_id)
