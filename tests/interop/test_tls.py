"""STARTTLS, implicit TLS, and every way a real server or certificate makes the client refuse.

The refusal paths against real servers: a service that requires TLS refuses
MAIL in plaintext (530) and hides AUTH; a service that does not offer
STARTTLS makes a client that requires it fail before any MAIL; a certificate
from an untrusted CA, or for another name, fails the handshake; implicit TLS
against a plaintext banner fails the handshake. None of them falls back to
plaintext.
"""

from __future__ import annotations

import pytest
import trio

import trio_smtp
from trio_smtp import (
    ExtensionUnavailable,
    SMTPReplyError,
    TLSHandshakeError,
    UnsupportedMechanism,
)

from ._checks import TEST_TIMEOUT, Wire, delivered_once
from ._messages import ALICE, PASSWORD, SENDER, USER, message
from ._targets import SUBMISSION_TARGETS, Endpoint, Target

#: Targets whose relay endpoint offers STARTTLS.
STARTTLS_TARGETS = ("postfix", "exim", "aiosmtpd", "dovecot-tcp")
#: Targets with an endpoint that does not offer STARTTLS at all.
NO_STARTTLS_TARGETS = ("postfix", "postfix-strict", "exim", "aiosmtpd")


def _endpoint(endpoint: Endpoint | None) -> Endpoint:
    assert endpoint is not None
    return endpoint


@pytest.mark.interop("starttls")
@pytest.mark.parametrize("target", STARTTLS_TARGETS, indirect=True)
async def test_starttls_upgrade_and_delivery(target: Target) -> None:
    sent = message(b"Sent after STARTTLS.\r\n")
    with trio.fail_after(TEST_TIMEOUT):
        async with target.connect(tls=trio_smtp.STARTTLS) as client:
            assert client.is_tls
            # RFC 3207 4.2: the capabilities are those of the EHLO after TLS.
            assert not client.capabilities.starttls
            outcome = await client.send_mail(SENDER, [ALICE], sent.text)
        assert outcome.tls
        await delivered_once(target, ALICE, sent)


@pytest.mark.interop("starttls-refusals")
@pytest.mark.parametrize("target", SUBMISSION_TARGETS, indirect=True)
async def test_server_requiring_tls_refuses_plaintext_mail_and_hides_auth(
    target: Target, wire: Wire
) -> None:
    submission = _endpoint(target.submission)
    with trio.fail_after(TEST_TIMEOUT):
        async with target.connect(submission, tls=trio_smtp.PLAINTEXT) as client:
            assert client.capabilities.starttls
            assert client.capabilities.auth == frozenset()
            with pytest.raises(UnsupportedMechanism):
                await client.login(USER, PASSWORD)
            with pytest.raises(SMTPReplyError) as refused:
                await client.send_mail(SENDER, [ALICE], message(b"never\r\n").text)
    assert refused.value.reply.code == 530
    assert "AUTH" not in wire.verbs()


@pytest.mark.interop("starttls-refusals")
@pytest.mark.parametrize("target", NO_STARTTLS_TARGETS, indirect=True)
async def test_required_starttls_not_offered_fails_before_mail(target: Target, wire: Wire) -> None:
    with trio.fail_after(TEST_TIMEOUT):
        with pytest.raises(ExtensionUnavailable) as refused:
            async with target.connect(_endpoint(target.no_starttls), tls=trio_smtp.STARTTLS):
                pytest.fail("connected without TLS")
    assert refused.value.name == "STARTTLS"
    assert wire.verbs() == ["EHLO"]


def _tls_endpoint(target: Target) -> Endpoint:
    """The endpoint where the target's certificate is presented after STARTTLS."""
    return target.submission or target.relay


@pytest.mark.interop("starttls-refusals")
@pytest.mark.parametrize("target", STARTTLS_TARGETS, indirect=True)
async def test_untrusted_certificate_fails_the_handshake(target: Target, wire: Wire) -> None:
    with trio.fail_after(TEST_TIMEOUT):
        with pytest.raises(TLSHandshakeError):
            async with target.connect(
                _tls_endpoint(target),
                tls=trio_smtp.STARTTLS,
                ssl_context=target.certificates.stranger_context,
            ):
                pytest.fail("connected with an untrusted certificate")
    # Nothing after STARTTLS: no second hello, no AUTH, no MAIL.
    assert wire.verbs() == ["LHLO" if target.lmtp else "EHLO", "STARTTLS"]


@pytest.mark.interop("starttls-refusals")
@pytest.mark.parametrize("target", STARTTLS_TARGETS, indirect=True)
async def test_certificate_for_another_name_fails_the_handshake(target: Target) -> None:
    with trio.fail_after(TEST_TIMEOUT):
        with pytest.raises(TLSHandshakeError):
            async with target.connect(
                _tls_endpoint(target), tls=trio_smtp.STARTTLS, server_hostname="other.test"
            ):
                pytest.fail("connected to a certificate for another name")


@pytest.mark.interop("implicit-tls")
@pytest.mark.parametrize("target", SUBMISSION_TARGETS, indirect=True)
async def test_implicit_tls_login_and_delivery(target: Target) -> None:
    sent = message(b"Sent over implicit TLS.\r\n")
    with trio.fail_after(TEST_TIMEOUT):
        async with target.connect(_endpoint(target.smtps)) as client:
            assert client.is_tls
            await client.login(USER, PASSWORD)
            outcome = await client.send_mail(SENDER, [ALICE], sent.text)
        assert outcome.tls
        await delivered_once(target, ALICE, sent)


@pytest.mark.interop("implicit-tls")
@pytest.mark.parametrize("target", SUBMISSION_TARGETS, indirect=True)
async def test_implicit_tls_against_a_plaintext_banner_fails(target: Target, wire: Wire) -> None:
    with trio.fail_after(TEST_TIMEOUT):
        with pytest.raises(TLSHandshakeError):
            async with target.connect(target.relay, tls=trio_smtp.IMPLICIT):
                pytest.fail("connected over implicit TLS to a plaintext service")
    assert wire.verbs() == []
