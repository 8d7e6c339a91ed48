"""Dovecot LMTP's per-recipient replies: one recipient unknown, one over quota, one delivered.

After the end of data an LMTP server answers once per accepted recipient
(RFC 2033 4.2). Dovecot refuses the unknown user at RCPT, then saves the
message for `ALICE` and refuses it for `FULL`, whose quota it exceeds; the
client must attribute each reply to its recipient, and the Maildirs must
agree.
"""

from __future__ import annotations

import pytest
import trio

from trio_smtp import LMTPOutcome

from ._checks import TEST_TIMEOUT, delivered_once, never_delivered
from ._messages import ALICE, FULL, SENDER, UNKNOWN, message
from ._targets import LMTP_TARGETS, Target

#: Over FULL's 1 KiB quota.
BODY = b"".join(b"line %04d of a message too large for a full mailbox\r\n" % n for n in range(80))


@pytest.mark.interop("lmtp-per-recipient")
@pytest.mark.parametrize("target", LMTP_TARGETS, indirect=True)
async def test_each_recipient_gets_its_own_reply(target: Target) -> None:
    sent = message(BODY)
    with trio.fail_after(TEST_TIMEOUT):
        async with target.connect() as client:
            outcome = await client.send_mail(SENDER, [ALICE, UNKNOWN, FULL], sent.text)
        assert isinstance(outcome, LMTPOutcome)
        assert list(outcome.accepted) == [ALICE, FULL]
        assert list(outcome.rejected) == [UNKNOWN]
        assert outcome.rejected[UNKNOWN].code == 550
        assert list(outcome.replies) == [ALICE, FULL]
        assert outcome.replies[ALICE].code == 250
        over_quota = outcome.replies[FULL]
        assert over_quota.code == 552
        assert str(over_quota.enhanced) == "5.2.2"
        assert b"<full@mail.test>" in over_quota.lines[0]
        assert outcome.delivered == (ALICE,)
        assert list(outcome.failed) == [FULL]
        await delivered_once(target, ALICE, sent)
        await never_delivered(target, FULL, sent.message_id)
