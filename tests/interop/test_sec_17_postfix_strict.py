"""SECURITY 17: the client against Postfix in its strictest settings.

The strict service runs with ``smtpd_forbid_bare_newline = reject`` (no
exclusions, so loopback is held to it) and ``smtpd_forbid_unauth_pipelining
= yes``, where the installed Postfix has them (``postconf -d``). First a
control shows the settings are in force, with raw bytes the client would
never write; then the client's own traffic (pipelined DATA batches, BDAT
chunks, bodies with bare newlines, dot lines) must be accepted without one
complaint in Postfix's log, and every SECURITY 11 vector must arrive as
exactly one message, through DATA and through BDAT.
"""

from __future__ import annotations

import pytest
import trio

from trio_smtp import Message, SendOutcome

from ._checks import TEST_TIMEOUT, canonical, delivered_once, never_delivered
from ._mailstore import wait_for, wait_for_digest
from ._messages import (
    ALICE,
    BOB,
    DOT_LINES,
    SENDER,
    SMUGGLED,
    GeneratedBody,
    Sent,
    message,
    new_message_id,
)
from ._postfix import STRICT_SETTINGS, Postfix, installed_version
from ._rawsmtp import converse
from ._smuggling import VECTORS, vector_message
from ._targets import Target

pytestmark = pytest.mark.parametrize("target", ["postfix-strict"], indirect=True)

#: What Postfix logs when a client breaks the rules the strict service enforces.
COMPLAINTS = (b"bare <LF>", b"improper command pipelining", b"reject:", b"synchronization")


@pytest.fixture
def strict_postfix(target: Target, postfix_server: Postfix) -> Postfix:
    missing = sorted(set(STRICT_SETTINGS.items()) - set(postfix_server.strict_settings.items()))
    if missing:
        pytest.skip(f"Postfix {installed_version()} lacks the strict settings {missing}")
    return postfix_server


def _log_since(postfix: Postfix, offset: int) -> bytes:
    with postfix.log_file.open("rb") as log:
        log.seek(offset)
        return log.read()


async def test_sec_17_strict_settings_are_in_force(strict_postfix: Postfix) -> None:
    port = strict_postfix.strict_port
    log_offset = strict_postfix.log_file.stat().st_size
    hello = (b"EHLO client.test\r\n", 1)
    envelope = [(f"MAIL FROM:<{SENDER}>\r\n".encode(), 1), (f"RCPT TO:<{ALICE}>\r\n".encode(), 1)]
    bare_lf_body = b"Subject: bare\r\n\r\nbare\nLF\r\n"
    with trio.fail_after(TEST_TIMEOUT):
        # Commands pipelined without waiting for the EHLO reply.
        (_, refused) = await converse(port, [(b"EHLO client.test\r\nNOOP\r\n", 1)])
        assert refused.startswith(b"554 5.5.0")
        # A bare LF inside DATA.
        replies = await converse(
            port, [hello, *envelope, (b"DATA\r\n", 1), (bare_lf_body + b".\r\n", 1)]
        )
        assert replies[-2].startswith(b"354")
        assert replies[-1].startswith(b"550 5.5.2") and b"bare <LF>" in replies[-1]
        # A bare LF inside a BDAT chunk (SECURITY 15).
        chunk = b"BDAT %d LAST\r\n" % len(bare_lf_body) + bare_lf_body
        replies = await converse(port, [hello, *envelope, (chunk, 1)])
        assert replies[-1].startswith(b"550 5.5.2") and b"bare <LF>" in replies[-1]
        # Postfix logs each refusal too (through postlogd, a moment later):
        # wait for them, so that no later test reads them as its own.
        while True:
            log = _log_since(strict_postfix, log_offset)
            if log.count(b"bare <LF> received") >= 2 and b"improper command pipelining" in log:
                break
            await trio.sleep(0.05)


@pytest.mark.interop("strict")
async def test_sec_17_client_traffic_is_accepted(target: Target, strict_postfix: Postfix) -> None:
    log_offset = strict_postfix.log_file.stat().st_size
    batch = [message(f"pipelined message {number}\r\n".encode()) for number in range(3)]
    newlines = message(b"bare LF\nbare CR\rCRLF\r\nno final newline")
    dots = message(DOT_LINES)
    large = GeneratedBody(new_message_id(), 3 * 1024 * 1024)
    with trio.fail_after(TEST_TIMEOUT):
        async with target.connect() as client:
            assert client.capabilities.pipelining and client.capabilities.chunking
            results = await client.send_batch(
                [Message(SENDER, [ALICE, BOB], sent.text, transfer="data") for sent in batch]
                + [Message(SENDER, ALICE, newlines.text, transfer="data")]
                + [Message(SENDER, BOB, newlines.text, transfer="bdat")]
                + [
                    Message(SENDER, ALICE, dots.text, transfer=transfer)
                    for transfer in ("data", "bdat")
                ]
            )
            assert all(isinstance(result, SendOutcome) for result in results), results
            # Several BDAT chunks, pipelined (the client keeps two in flight).
            outcome = await client.send_mail(SENDER, [ALICE], large, transfer="bdat")
            assert outcome.reply.is_positive
        for sent in batch:
            await delivered_once(target, ALICE, sent)
            await delivered_once(target, BOB, sent)
        normalised = Sent(newlines.message_id, canonical(newlines.text) + b"\r\n")
        await delivered_once(target, ALICE, normalised)
        await delivered_once(target, BOB, normalised)
        await twice_delivered(target, dots)
        stored = await wait_for_digest(target.store, ALICE, large.message_id)
    expected_digest, expected_size = large.digest(newline=target.store.newline)
    assert (stored.sha256, stored.size) == (expected_digest, expected_size)
    log = _log_since(strict_postfix, log_offset)
    assert not [line for line in log.splitlines() if any(c in line for c in COMPLAINTS)]


async def twice_delivered(target: Target, dots: Sent) -> None:
    """The dot-lines message went twice, through DATA and BDAT: two exact copies."""
    await wait_for(target.store, ALICE, dots.message_id, count=2)
    await target.settled()
    copies = target.store.find(ALICE, dots.message_id)
    assert [copy.content for copy in copies] == [target.store.stored_form(dots.text)] * 2


@pytest.mark.interop("smuggling")
@pytest.mark.parametrize("transfer", ["data", "bdat"])
@pytest.mark.parametrize("vector", VECTORS.values(), ids=VECTORS.keys())
async def test_sec_17_smuggling_vector_arrives_as_one_message(
    target: Target, strict_postfix: Postfix, vector: bytes, transfer: str
) -> None:
    sent = vector_message(vector)
    with trio.fail_after(TEST_TIMEOUT):
        async with target.connect() as client:
            outcome = await client.send_mail(
                SENDER, [ALICE], sent.raw, transfer="data" if transfer == "data" else "bdat"
            )
        assert outcome.reply.is_positive
        await delivered_once(target, ALICE, sent.expected)
        await never_delivered(target, SMUGGLED, sent.smuggled_id)
