"""SASL AUTH on each server's submission service: every mechanism it offers, and a wrong password.

Postfix authenticates through Dovecot's auth service, Exim through its own
plaintext and cram_md5 authenticators, aiosmtpd through its built-in PLAIN
and LOGIN. Each submission service requires STARTTLS first; after
authenticating, a message is sent and must arrive, so the login visibly
took effect (Postfix's submission refuses unauthenticated senders).
"""

from __future__ import annotations

import pytest
import trio

from trio_smtp import AuthMechanism, AuthRejected, UnsupportedMechanism

from ._checks import TEST_TIMEOUT, delivered_once
from ._matrix import note_not_offered
from ._messages import ALICE, PASSWORD, SENDER, USER, message
from ._targets import SUBMISSION_TARGETS, Endpoint, Target

#: Every password mechanism the client implements, by its AUTH keyword.
MECHANISMS = {
    "PLAIN": AuthMechanism.PLAIN,
    "LOGIN": AuthMechanism.LOGIN,
    "CRAM-MD5": AuthMechanism.CRAM_MD5,
}

pytestmark = pytest.mark.parametrize("target", SUBMISSION_TARGETS, indirect=True)


def _submission(target: Target) -> Endpoint:
    assert target.submission is not None
    return target.submission


async def test_offered_mechanisms_are_the_configured_ones(target: Target) -> None:
    """Every mechanism a server offers is one the client implements, and is tested below."""
    with trio.fail_after(TEST_TIMEOUT):
        async with target.connect(_submission(target)) as client:
            assert client.is_tls
            assert client.capabilities.auth == target.auth_mechanisms
    assert target.auth_mechanisms <= set(MECHANISMS)


@pytest.mark.parametrize(
    "mechanism",
    [pytest.param(name, marks=pytest.mark.interop(f"auth-{name.lower()}")) for name in MECHANISMS],
)
async def test_mechanism_authenticates_and_the_login_takes_effect(
    target: Target, mechanism: str, request: pytest.FixtureRequest
) -> None:
    sent = message(f"Sent after AUTH {mechanism}.\r\n".encode())
    with trio.fail_after(TEST_TIMEOUT):
        async with target.connect(_submission(target)) as client:
            assert client.capabilities.auth == target.auth_mechanisms
            if mechanism not in target.auth_mechanisms:
                with pytest.raises(UnsupportedMechanism):
                    await client.login_with(MECHANISMS[mechanism], USER, PASSWORD)
                note_not_offered(request.node)
                return
            reply = await client.login_with(MECHANISMS[mechanism], USER, PASSWORD)
            assert reply.code == 235
            assert client.is_authenticated
            outcome = await client.send_mail(SENDER, [ALICE], sent.text)
        assert outcome.tls
        await delivered_once(target, ALICE, sent)


@pytest.mark.interop("auth-wrong-password")
async def test_wrong_password_is_auth_rejected_and_the_connection_goes_on(target: Target) -> None:
    with trio.fail_after(TEST_TIMEOUT):
        async with target.connect(_submission(target)) as client:
            with pytest.raises(AuthRejected) as rejected:
                await client.login(USER, "not-the-password")
            assert rejected.value.reply.code == 535
            assert "not-the-password" not in str(rejected.value)
            assert not client.is_authenticated
            # A refused login leaves the session usable: the right password works.
            reply = await client.login(USER, PASSWORD)
            assert reply.code == 235
            assert client.is_authenticated
