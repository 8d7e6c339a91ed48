"""Messages through every server, compared with what arrived in the mailbox.

Each test sends one kind of message (plain, 8-bit, SMTPUTF8, dot lines,
several recipients, DSN, pipelined batch, SIZE) and checks the stored copy
byte for byte apart from the trace fields. Where a server does not offer the
extension, the test checks that it really does not advertise it and that
the client then refuses cleanly, before any MAIL command.
"""

from __future__ import annotations

import uuid

import pytest
import trio

from trio_smtp import (
    ExtensionUnavailable,
    LMTPOutcome,
    MailParams,
    Message,
    MessageTooLarge,
    RcptParams,
    SendOutcome,
)

from ._checks import TEST_TIMEOUT, Wire, delivered_once, expect_offer
from ._mailstore import wait_for
from ._matrix import note_not_offered
from ._messages import (
    ALICE,
    BOB,
    DOT_LINES,
    EIGHT_BIT_HEADERS,
    JORAN,
    SENDER,
    UNKNOWN,
    message,
)
from ._targets import ALL_TARGETS, Target

pytestmark = pytest.mark.parametrize("target", ALL_TARGETS, indirect=True)


@pytest.mark.interop("plain")
async def test_plain_message_arrives_exactly(target: Target) -> None:
    sent = message(b"Hello from trio-smtp.\r\nSecond line.\r\n")
    with trio.fail_after(TEST_TIMEOUT):
        async with target.connect() as client:
            outcome = await client.send_mail(SENDER, [ALICE], sent.text)
        assert list(outcome.accepted) == [ALICE]
        assert outcome.rejected == {}
        assert outcome.reply.is_positive
        if isinstance(outcome, LMTPOutcome):
            assert outcome.delivered == (ALICE,)
        await delivered_once(target, ALICE, sent)


@pytest.mark.interop("pipelining")
async def test_pipelined_batch_arrives_exactly(
    target: Target, wire: Wire, request: pytest.FixtureRequest
) -> None:
    batch = [message(f"message {number} of a batch\r\n".encode()) for number in range(3)]
    with trio.fail_after(TEST_TIMEOUT):
        async with target.connect() as client:
            pipelining = expect_offer(client, target, "PIPELINING")
            results = await client.send_batch(
                [Message(SENDER, ALICE, sent.text, transfer="data") for sent in batch]
            )
        for result in results:
            assert isinstance(result, SendOutcome)
            assert result.reply.is_positive
        for sent in batch:
            await delivered_once(target, ALICE, sent)
    sequence = wire.sequence()
    mails = [index for index, line in enumerate(sequence) if line.startswith("C MAIL FROM:")]
    assert len(mails) == 3
    # The replies read between the first and the second MAIL: with PIPELINING,
    # those to MAIL, RCPT and DATA only, the end of data's reply still
    # unread (RFC 2920 3.1); without it, that final reply as well.
    between = [line for line in sequence[mails[0] : mails[1]] if line.startswith("S ")]
    if pipelining:
        assert len(between) == 3, between
        assert between[-1].startswith("S 354")
    else:
        assert len(between) == 4, between
        assert between[2].startswith("S 354")
        note_not_offered(request.node)


@pytest.mark.interop("8bitmime")
async def test_eight_bit_body_arrives_exactly(
    target: Target, wire: Wire, request: pytest.FixtureRequest
) -> None:
    sent = message("Grüße aus Zürich, naïve café, 東京.\r\n".encode(), extra=EIGHT_BIT_HEADERS)
    with trio.fail_after(TEST_TIMEOUT):
        async with target.connect() as client:
            if not expect_offer(client, target, "8BITMIME"):
                with pytest.raises(ExtensionUnavailable) as refused:
                    await client.send_mail(
                        SENDER, [ALICE], sent.text, mail_params=MailParams(body="8BITMIME")
                    )
                assert refused.value.name == "8BITMIME"
                note_not_offered(request.node)
                return
            await client.send_mail(SENDER, [ALICE], sent.text)
        await delivered_once(target, ALICE, sent)
    (mail,) = wire.commands("MAIL FROM:")
    assert " BODY=8BITMIME" in mail


@pytest.mark.interop("smtputf8")
async def test_smtputf8_addresses_arrive_exactly(
    target: Target, wire: Wire, request: pytest.FixtureRequest
) -> None:
    international_sender = "sénder@mail.test"
    sent = message(
        b"An address in UTF-8.\r\n",
        sender=international_sender,
        to=JORAN,
        subject="Grüße",
        extra=EIGHT_BIT_HEADERS,
    )
    with trio.fail_after(TEST_TIMEOUT):
        async with target.connect() as client:
            if not expect_offer(client, target, "SMTPUTF8"):
                with pytest.raises(ExtensionUnavailable) as refused:
                    await client.send_mail(international_sender, [JORAN], sent.text)
                assert refused.value.name == "SMTPUTF8"
                assert wire.commands("MAIL FROM:") == []
                note_not_offered(request.node)
                return
            outcome = await client.send_mail(international_sender, [JORAN], sent.text)
        assert list(outcome.accepted) == [JORAN]
        await delivered_once(target, JORAN, sent)
    (mail,) = wire.commands("MAIL FROM:")
    assert mail.startswith(f"MAIL FROM:<{international_sender}>")
    assert " SMTPUTF8" in mail


@pytest.mark.parametrize(
    "transfer",
    [
        pytest.param("data", marks=pytest.mark.interop("dot-lines-data")),
        pytest.param("bdat", marks=pytest.mark.interop("dot-lines-bdat")),
    ],
)
async def test_lines_starting_with_a_dot_arrive_exactly(
    target: Target, transfer: str, request: pytest.FixtureRequest
) -> None:
    sent = message(DOT_LINES)
    with trio.fail_after(TEST_TIMEOUT):
        async with target.connect() as client:
            if transfer == "bdat" and not expect_offer(client, target, "CHUNKING"):
                with pytest.raises(ExtensionUnavailable) as refused:
                    await client.send_mail(SENDER, [ALICE], sent.text, transfer="bdat")
                assert refused.value.name == "CHUNKING"
                note_not_offered(request.node)
                return
            outcome = await client.send_mail(
                SENDER, [ALICE], sent.text, transfer="data" if transfer == "data" else "bdat"
            )
        assert outcome.transfer == transfer.upper()
        await delivered_once(target, ALICE, sent)


@pytest.mark.interop("recipients")
async def test_several_recipients_one_rejected(target: Target) -> None:
    sent = message(b"To three recipients, one of whom does not exist.\r\n", to=ALICE)
    with trio.fail_after(TEST_TIMEOUT):
        async with target.connect() as client:
            outcome = await client.send_mail(SENDER, [ALICE, UNKNOWN, BOB], sent.text)
        assert list(outcome.accepted) == [ALICE, BOB]
        assert list(outcome.rejected) == [UNKNOWN]
        refusal = outcome.rejected[UNKNOWN]
        assert refusal.code == 550
        if refusal.enhanced is not None:
            assert str(refusal.enhanced) == "5.1.1"
        if isinstance(outcome, LMTPOutcome):
            assert outcome.delivered == (ALICE, BOB)
        await delivered_once(target, ALICE, sent)
        await delivered_once(target, BOB, sent)


@pytest.mark.interop("dsn")
async def test_dsn_parameters_reach_the_server(
    target: Target, wire: Wire, request: pytest.FixtureRequest
) -> None:
    envelope_id = uuid.uuid4().hex
    mail_params = MailParams(ret="HDRS", envid=envelope_id)
    rcpt_params = RcptParams(notify=("SUCCESS", "FAILURE"), orcpt=ALICE)
    sent = message(b"Tell me when it is delivered.\r\n")
    with trio.fail_after(TEST_TIMEOUT):
        async with target.connect() as client:
            if not expect_offer(client, target, "DSN"):
                with pytest.raises(ExtensionUnavailable) as refused:
                    await client.send_mail(
                        SENDER, [ALICE], sent.text, mail_params=mail_params, rcpt_params=rcpt_params
                    )
                assert refused.value.name == "DSN"
                assert wire.commands("MAIL FROM:") == []
                note_not_offered(request.node)
                return
            await client.send_mail(
                SENDER, [ALICE], sent.text, mail_params=mail_params, rcpt_params=rcpt_params
            )
        await delivered_once(target, ALICE, sent)
        # NOTIFY=SUCCESS: the server reports the delivery to the sender,
        # quoting the ENVID and ORCPT the client sent.
        (report,) = await wait_for(target.store, SENDER, envelope_id.encode(), anywhere=True)
    text = report.content.lower()
    assert b"original-envelope-id: " + envelope_id.encode() in text
    assert b"original-recipient: rfc822;" + ALICE.encode() in text
    assert b"action: delivered" in text
    (mail,) = wire.commands("MAIL FROM:")
    assert f" RET=HDRS ENVID={envelope_id}" in mail
    (rcpt,) = wire.commands("RCPT TO:")
    assert rcpt == f"RCPT TO:<{ALICE}> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;{ALICE}"


@pytest.mark.interop("size")
async def test_size_is_declared_and_the_limit_enforced_before_mail(
    target: Target, wire: Wire, request: pytest.FixtureRequest
) -> None:
    sent = message(b"A message that declares its size.\r\n")
    with trio.fail_after(TEST_TIMEOUT):
        async with target.connect() as client:
            if not expect_offer(client, target, "SIZE"):
                assert client.capabilities.size is None
                with pytest.raises(ExtensionUnavailable) as refused:
                    await client.send_mail(
                        SENDER, [ALICE], sent.text, mail_params=MailParams(size=len(sent.text))
                    )
                assert refused.value.name == "SIZE"
                note_not_offered(request.node)
            else:
                assert client.capabilities.size == target.size_limit
                assert target.size_limit is not None
                with pytest.raises(MessageTooLarge):
                    await client.send_mail(
                        SENDER,
                        [ALICE],
                        sent.text,
                        mail_params=MailParams(size=target.size_limit + 1),
                    )
            assert wire.commands("MAIL FROM:") == []
            # Refused before anything was written: the connection still works.
            await client.send_mail(SENDER, [ALICE], sent.text)
            advertised = client.capabilities.size
        await delivered_once(target, ALICE, sent)
    (mail,) = wire.commands("MAIL FROM:")
    if advertised is not None:
        assert f" SIZE={len(sent.text)}" in mail
    else:
        assert " SIZE=" not in mail
