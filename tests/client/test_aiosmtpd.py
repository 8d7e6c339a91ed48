"""The client against aiosmtpd, a server nobody here wrote, over loopback."""

from __future__ import annotations

import logging
import ssl
from email.message import EmailMessage
from pathlib import Path

import pytest
import trio
import trustme

import trio_smtp
from trio_smtp import (
    AuditEvent,
    AuthMechanism,
    AuthRejected,
    BoundedPolicy,
    ExtensionUnavailable,
    InvalidInputError,
    LMTPOutcome,
    PolicyError,
    RcptParams,
    RecipientsRefused,
    SessionState,
    TLSHandshakeError,
    UnsupportedMechanism,
)

from .conftest import PASSWORD, TOKEN, USER, Aiosmtpd, Recorder, run_aiosmtpd

PLAIN = trio_smtp.PLAINTEXT


async def test_send_mail_with_partial_rejection(aiosmtpd_server: Aiosmtpd) -> None:
    with trio.fail_after(10):
        async with trio_smtp.open_smtp("127.0.0.1", aiosmtpd_server.port, tls=PLAIN) as smtp:
            assert smtp.state is SessionState.READY
            outcome = await smtp.send_mail(
                "a@example.com",
                ["b@example.org", "nobody@example.org"],
                "Subject: hi\n\nhello\n",
            )
    assert list(outcome.accepted) == ["b@example.org"]
    assert outcome.rejected["nobody@example.org"].code == 550
    assert outcome.reply.code == 250
    assert outcome.queue_id == "AIO1"
    assert outcome.tls is False
    assert outcome.transfer == "DATA"
    (envelope,) = aiosmtpd_server.handler.envelopes
    assert envelope.mail_from == "a@example.com"
    assert envelope.rcpt_tos == ["b@example.org"]
    assert envelope.content == b"Subject: hi\r\n\r\nhello\r\n"


async def test_all_recipients_refused_then_connection_still_usable(
    aiosmtpd_server: Aiosmtpd,
) -> None:
    with trio.fail_after(10):
        async with trio_smtp.open_smtp("127.0.0.1", aiosmtpd_server.port, tls=PLAIN) as smtp:
            with pytest.raises(RecipientsRefused) as caught:
                await smtp.send_mail("a@example.com", ["nobody@example.org"], b"x\r\n")
            assert caught.value.rejected["nobody@example.org"].code == 550
            assert smtp.state is SessionState.READY
            await smtp.send_mail("a@example.com", "b@example.org", b"second\r\n")
    assert [e.content for e in aiosmtpd_server.handler.envelopes] == [b"second\r\n"]


async def test_dot_lines_and_bare_newlines_arrive_exactly(aiosmtpd_server: Aiosmtpd) -> None:
    body = b".leading dot\n..two dots\r\n.\rmiddle\n.\nlast line without newline"
    with trio.fail_after(10):
        async with trio_smtp.open_smtp("127.0.0.1", aiosmtpd_server.port, tls=PLAIN) as smtp:
            await smtp.send_mail("a@example.com", ["b@example.org"], body)
    (envelope,) = aiosmtpd_server.handler.envelopes
    expected = body.replace(b"\r\n", b"\n").replace(b"\r", b"\n").replace(b"\n", b"\r\n")
    assert envelope.content == expected + b"\r\n"


async def test_eight_bit_body_declares_8bitmime(aiosmtpd_server: Aiosmtpd) -> None:
    with trio.fail_after(10):
        async with trio_smtp.open_smtp("127.0.0.1", aiosmtpd_server.port, tls=PLAIN) as smtp:
            await smtp.send_mail("a@example.com", ["b@example.org"], "Subject: café\n\nnaïve\n")
    (envelope,) = aiosmtpd_server.handler.envelopes
    assert "BODY=8BITMIME" in envelope.mail_options
    assert envelope.content == "Subject: café\r\n\r\nnaïve\r\n".encode()


async def test_smtputf8_addresses(aiosmtpd_server: Aiosmtpd) -> None:
    with trio.fail_after(10):
        async with trio_smtp.open_smtp("127.0.0.1", aiosmtpd_server.port, tls=PLAIN) as smtp:
            await smtp.send_mail("jörg@exämple.de", ["用户@例子.广告"], b"Subject: x\r\n\r\nx\r\n")
    (envelope,) = aiosmtpd_server.handler.envelopes
    assert envelope.smtp_utf8
    assert envelope.mail_from == "jörg@exämple.de"
    assert envelope.rcpt_tos == ["用户@例子.广告"]


async def test_smtputf8_refused_when_not_offered() -> None:
    with run_aiosmtpd(enable_SMTPUTF8=False) as server:
        async with trio_smtp.open_smtp("127.0.0.1", server.port, tls=PLAIN) as smtp:
            with pytest.raises(ExtensionUnavailable) as caught:
                await smtp.send_mail("jörg@exämple.de", ["b@example.org"], b"x\r\n")
            assert caught.value.name == "SMTPUTF8"
            # Nothing was half-sent: the session is still between transactions.
            assert smtp.state is SessionState.READY
            await smtp.noop()
    assert server.handler.envelopes == []


async def test_send_message_envelope_from_headers_and_bcc_stripped(
    aiosmtpd_server: Aiosmtpd,
) -> None:
    message = EmailMessage()
    message["From"] = "Alice <a@example.com>"
    message["To"] = "Bob <b@example.org>, c@example.org"
    message["Cc"] = "d@example.org"
    message["Bcc"] = "secret@example.org"
    message["Subject"] = "envelope test"
    message.set_content("hello\n.dot line\n")
    with trio.fail_after(10):
        async with trio_smtp.open_smtp("127.0.0.1", aiosmtpd_server.port, tls=PLAIN) as smtp:
            outcome = await smtp.send_message(message)
    assert set(outcome.accepted) == {
        "b@example.org",
        "c@example.org",
        "d@example.org",
        "secret@example.org",
    }
    (envelope,) = aiosmtpd_server.handler.envelopes
    assert envelope.mail_from == "a@example.com"
    assert isinstance(envelope.content, bytes)
    assert b"secret@example.org" not in envelope.content
    assert b"Bcc" not in envelope.content
    assert b"\r\n.dot line\r\n" in envelope.content
    assert message["Bcc"] == "secret@example.org"  # the caller's message is untouched


async def test_send_message_international_uses_smtputf8(aiosmtpd_server: Aiosmtpd) -> None:
    message = EmailMessage()
    message["From"] = "Jörg <jörg@exämple.de>"
    message["To"] = "用户@例子.广告"
    message["Subject"] = "grüße"
    message.set_content("hallo")
    with trio.fail_after(10):
        async with trio_smtp.open_smtp("127.0.0.1", aiosmtpd_server.port, tls=PLAIN) as smtp:
            await smtp.send_message(message)
    (envelope,) = aiosmtpd_server.handler.envelopes
    assert envelope.smtp_utf8
    assert isinstance(envelope.content, bytes)
    assert "jörg@exämple.de".encode() in envelope.content


async def test_dsn_parameters_reach_the_server(aiosmtpd_server: Aiosmtpd) -> None:
    with trio.fail_after(10):
        async with trio_smtp.open_smtp("127.0.0.1", aiosmtpd_server.port, tls=PLAIN) as smtp:
            # aiosmtpd does not advertise DSN, so the client refuses first...
            with pytest.raises(ExtensionUnavailable):
                await smtp.send_mail(
                    "a@example.com",
                    ["b@example.org"],
                    b"x\r\n",
                    rcpt_params=RcptParams(notify=("SUCCESS", "FAILURE")),
                )
            # ...and SIZE, which it does advertise, is declared automatically.
            await smtp.send_mail("a@example.com", ["b@example.org"], b"0123456789\r\n")
    (envelope,) = aiosmtpd_server.handler.envelopes
    assert "SIZE=12" in envelope.mail_options


async def test_message_over_server_size_is_refused_before_sending() -> None:
    with run_aiosmtpd(data_size_limit=100) as server:
        async with trio_smtp.open_smtp("127.0.0.1", server.port, tls=PLAIN) as smtp:
            with pytest.raises(trio_smtp.MessageTooLarge) as caught:
                await smtp.send_mail("a@example.com", ["b@example.org"], b"x" * 200)
            assert (caught.value.size, caught.value.limit) == (200, 100)
            assert smtp.state is SessionState.READY
    assert server.handler.envelopes == []


async def test_streamed_body_through_data(aiosmtpd_server: Aiosmtpd) -> None:
    send_channel, receive_channel = trio.testing.memory_stream_one_way_pair()
    body = b"".join(b".line %d\n" % index for index in range(20000))

    async def produce() -> None:
        for start in range(0, len(body), 1000):
            await send_channel.send_all(body[start : start + 1000])
        await send_channel.aclose()

    with trio.fail_after(20):
        async with (
            trio_smtp.open_smtp("127.0.0.1", aiosmtpd_server.port, tls=PLAIN) as smtp,
            trio.open_nursery() as nursery,
        ):
            nursery.start_soon(produce)
            await smtp.send_mail("a@example.com", ["b@example.org"], receive_channel)
    (envelope,) = aiosmtpd_server.handler.envelopes
    assert envelope.content == body.replace(b"\n", b"\r\n")


async def test_vrfy_noop_help_rset_ehlo(aiosmtpd_server: Aiosmtpd) -> None:
    with trio.fail_after(10):
        async with trio_smtp.open_smtp("127.0.0.1", aiosmtpd_server.port, tls=PLAIN) as smtp:
            assert (await smtp.noop()).code == 250
            assert (await smtp.vrfy("b@example.org")).code == 252
            assert (await smtp.help()).code == 250
            assert (await smtp.reset()).code == 250
            before = smtp.capabilities
            assert (await smtp.ehlo()).code == 250
            assert smtp.capabilities == before
            reply = await smtp.quit()
            assert reply.code == 221
            assert smtp.is_closed


# -- TLS -------------------------------------------------------------------


async def test_starttls_with_trustme(
    server_context: ssl.SSLContext, client_context: ssl.SSLContext
) -> None:
    with run_aiosmtpd(tls_context=server_context, require_starttls=True) as server:
        with trio.fail_after(10):
            async with trio_smtp.open_smtp(
                "127.0.0.1",
                server.port,
                tls=trio_smtp.STARTTLS,
                ssl_context=client_context,
                server_hostname="localhost",
            ) as smtp:
                assert smtp.is_tls
                assert not smtp.capabilities.starttls  # the post-TLS EHLO
                outcome = await smtp.send_mail("a@example.com", ["b@example.org"], b"x\r\n")
        assert outcome.tls is True
        assert len(server.handler.envelopes) == 1


async def test_implicit_tls_with_trustme(
    server_context: ssl.SSLContext, client_context: ssl.SSLContext
) -> None:
    with run_aiosmtpd(ssl_context=server_context) as server:
        with trio.fail_after(10):
            async with trio_smtp.open_smtp(
                "127.0.0.1", server.port, ssl_context=client_context, server_hostname="localhost"
            ) as smtp:
                assert smtp.is_tls
                await smtp.send_mail("a@example.com", ["b@example.org"], b"x\r\n")
        assert len(server.handler.envelopes) == 1


async def test_starttls_untrusted_certificate_fails_closed(
    server_context: ssl.SSLContext,
) -> None:
    other_ca = trustme.CA()
    untrusting = trio_smtp.tls_context(trust=None, cadata=other_ca.cert_pem.bytes().decode())
    with run_aiosmtpd(tls_context=server_context) as server:
        with trio.fail_after(10), pytest.raises(TLSHandshakeError, match="certificate"):
            async with trio_smtp.open_smtp(
                "127.0.0.1",
                server.port,
                tls=trio_smtp.STARTTLS,
                ssl_context=untrusting,
                server_hostname="localhost",
            ):
                pass  # pragma: no cover - never reached
        assert server.handler.envelopes == []


async def test_starttls_not_offered_fails_closed() -> None:
    with (
        run_aiosmtpd() as server,
        trio.fail_after(10),
        pytest.raises(ExtensionUnavailable, match="STARTTLS"),
    ):
        async with trio_smtp.open_smtp(
            "127.0.0.1", server.port, tls=trio_smtp.STARTTLS, server_hostname="localhost"
        ):
            pass  # pragma: no cover - never reached


# -- authentication -----------------------------------------------------------


@pytest.mark.parametrize("mechanism", [None, AuthMechanism.PLAIN, AuthMechanism.LOGIN])
async def test_login_plain_and_login(
    aiosmtpd_server: Aiosmtpd, mechanism: AuthMechanism | None
) -> None:
    with trio.fail_after(10):
        async with trio_smtp.open_smtp("127.0.0.1", aiosmtpd_server.port, tls=PLAIN) as smtp:
            if mechanism is None:
                reply = await smtp.login(USER, PASSWORD)
            else:
                reply = await smtp.login_with(mechanism, USER, PASSWORD)
            assert reply.code == 235
            assert smtp.is_authenticated
            await smtp.send_mail(USER, ["b@example.org"], b"x\r\n")


@pytest.mark.parametrize("mechanism", [AuthMechanism.PLAIN, AuthMechanism.LOGIN])
async def test_wrong_password_is_auth_rejected(
    aiosmtpd_server: Aiosmtpd, mechanism: AuthMechanism
) -> None:
    with trio.fail_after(10):
        async with trio_smtp.open_smtp("127.0.0.1", aiosmtpd_server.port, tls=PLAIN) as smtp:
            with pytest.raises(AuthRejected) as caught:
                await smtp.login_with(mechanism, USER, "wrong")
            assert caught.value.reply.code == 535
            assert not smtp.is_authenticated
            # The connection is still usable after a refusal.
            await smtp.login(USER, PASSWORD)


async def test_xoauth2_and_oauthbearer(aiosmtpd_server: Aiosmtpd) -> None:
    with trio.fail_after(10):
        async with trio_smtp.open_smtp("127.0.0.1", aiosmtpd_server.port, tls=PLAIN) as smtp:
            assert {"XOAUTH2", "OAUTHBEARER"} <= smtp.capabilities.auth
            assert (await smtp.login_xoauth2(USER, TOKEN)).code == 235
        async with trio_smtp.open_smtp("127.0.0.1", aiosmtpd_server.port, tls=PLAIN) as smtp:
            assert (await smtp.login_oauthbearer(USER, TOKEN)).code == 235


async def test_oauthbearer_error_turn(aiosmtpd_server: Aiosmtpd) -> None:
    with trio.fail_after(10):
        async with trio_smtp.open_smtp("127.0.0.1", aiosmtpd_server.port, tls=PLAIN) as smtp:
            with pytest.raises(AuthRejected) as caught:
                await smtp.login_oauthbearer(USER, "expired-token")
            assert caught.value.reply.code == 535
            assert caught.value.detail is not None
            assert "invalid_token" in caught.value.detail


async def test_cram_md5_never_chosen_automatically(aiosmtpd_server: Aiosmtpd) -> None:
    with trio.fail_after(10):
        async with trio_smtp.open_smtp("127.0.0.1", aiosmtpd_server.port, tls=PLAIN) as smtp:
            with pytest.raises(UnsupportedMechanism):
                await smtp.login_with(AuthMechanism.CRAM_MD5, USER, PASSWORD)
            assert smtp.state is SessionState.READY


# -- LMTP ----------------------------------------------------------------------


async def test_lmtp_per_recipient_replies() -> None:
    handler = Recorder(lmtp_failures={"full@example.org": "452 4.2.2 mailbox full"})
    with run_aiosmtpd(lmtp=True, handler=handler) as server:
        with trio.fail_after(10):
            async with trio_smtp.open_lmtp(
                "127.0.0.1", server.port, tls=trio_smtp.PLAINTEXT
            ) as lmtp:
                outcome = await lmtp.send_mail(
                    "a@example.com",
                    ["b@example.org", "nobody@example.org", "full@example.org"],
                    b"Subject: lmtp\r\n\r\nhi\r\n",
                )
    assert isinstance(outcome, LMTPOutcome)
    assert outcome.rejected["nobody@example.org"].code == 550
    assert outcome.delivered == ("b@example.org",)
    assert outcome.failed["full@example.org"].code == 452
    assert list(outcome.replies) == ["b@example.org", "full@example.org"]


async def test_lmtp_over_a_unix_socket(tmp_path: Path) -> None:
    path = str(tmp_path / "lmtp.sock")
    with run_aiosmtpd(unix_path=path) as server:
        with trio.fail_after(10):
            async with trio_smtp.open_lmtp(path=path) as lmtp:
                # A unix socket is local: login without TLS is allowed.
                assert (await lmtp.login(USER, PASSWORD)).code == 235
                outcome = await lmtp.send_mail("a@example.com", ["b@example.org"], b"x\r\n")
    assert isinstance(outcome, LMTPOutcome)
    assert outcome.delivered == ("b@example.org",)
    assert len(server.handler.envelopes) == 1


# -- policy, audit, logging ---------------------------------------------------


async def test_bounded_policy_refuses_before_any_command(aiosmtpd_server: Aiosmtpd) -> None:
    policy = BoundedPolicy(
        max_recipients=2, max_message_size=50, allowed_sender_domains=["example.com"]
    )
    events: list[AuditEvent] = []
    with trio.fail_after(10):
        async with trio_smtp.open_smtp(
            "127.0.0.1", aiosmtpd_server.port, tls=PLAIN, policy=policy, audit=events.append
        ) as smtp:
            with pytest.raises(PolicyError, match="sender domain"):
                await smtp.send_mail("a@evil.example", ["b@example.org"], b"x\r\n")
            with pytest.raises(PolicyError, match="recipients"):
                await smtp.send_mail("a@example.com", ["b@x.org", "c@x.org", "d@x.org"], b"x")
            with pytest.raises(PolicyError, match="octets"):
                await smtp.send_mail("a@example.com", ["b@example.org"], b"x" * 100)
            assert not [event for event in events if event.kind == "mail"]
            await smtp.send_mail("a@example.com", ["b@example.org"], b"ok\r\n")
    kinds = [event.kind for event in events]
    assert kinds[:2] == ["connected", "ehlo"]
    assert {"mail", "rcpt", "data", "reply", "closed"} <= set(kinds)


async def test_bad_input_is_refused_with_nothing_sent(aiosmtpd_server: Aiosmtpd) -> None:
    with trio.fail_after(10):
        async with trio_smtp.open_smtp("127.0.0.1", aiosmtpd_server.port, tls=PLAIN) as smtp:
            for sender, recipients, body in [
                ("a@example.com\r\nRCPT TO:<x@y.z>", ["b@example.org"], b"x"),
                ("a@example.com", [], b"x"),
                ("a@example.com", ["b@example.org"], b"nul \x00 byte"),
                ("a@example.com", ["b@example.org"], 12345),
            ]:
                with pytest.raises(InvalidInputError):
                    await smtp.send_mail(sender, recipients, body)  # type: ignore[arg-type]
                assert smtp.state is SessionState.READY
            await smtp.send_mail("a@example.com", ["b@example.org"], b"fine\r\n")
    assert [envelope.content for envelope in aiosmtpd_server.handler.envelopes] == [b"fine\r\n"]


async def test_sec_37_credentials_never_leak(
    aiosmtpd_server: Aiosmtpd, caplog: pytest.LogCaptureFixture
) -> None:
    """A known password and token go through every auth path, right and wrong;
    then repr, exceptions, logs and audit events are searched for them."""
    caplog.set_level(logging.DEBUG, logger="trio_smtp")
    events: list[AuditEvent] = []
    seen: list[str] = []
    secrets = [PASSWORD, TOKEN, "wrong-" + PASSWORD, "wrong-" + TOKEN]
    with trio.fail_after(20):
        for mechanism, credential in [
            (AuthMechanism.PLAIN, PASSWORD),
            (AuthMechanism.LOGIN, PASSWORD),
            (AuthMechanism.XOAUTH2, TOKEN),
            (AuthMechanism.OAUTHBEARER, TOKEN),
            (AuthMechanism.PLAIN, "wrong-" + PASSWORD),
            (AuthMechanism.LOGIN, "wrong-" + PASSWORD),
            (AuthMechanism.XOAUTH2, "wrong-" + TOKEN),
            (AuthMechanism.OAUTHBEARER, "wrong-" + TOKEN),
        ]:
            async with trio_smtp.open_smtp(
                "127.0.0.1", aiosmtpd_server.port, tls=PLAIN, audit=events.append
            ) as smtp:
                try:
                    reply = await smtp.login_with(mechanism, USER, credential)
                    seen += [repr(reply), str(reply)]
                except AuthRejected as exc:
                    seen += [repr(exc), str(exc), repr(exc.reply), str(exc.detail)]
                seen += [repr(smtp), repr(smtp.capabilities)]
    seen += [record.getMessage() for record in caplog.records]
    seen += [repr(event) for event in events]
    assert any("auth" in text for text in seen)  # the search looked at real material
    for secret in secrets:
        for text in seen:
            assert secret not in text
            assert secret.encode().hex() not in text
            import base64

            assert base64.b64encode(secret.encode()).decode()[:16] not in text


async def test_lmtp_all_refused_reports_rcpt_and_final_refusals() -> None:
    handler = Recorder(lmtp_failures={"full@example.org": "452 4.2.2 mailbox full"})
    with run_aiosmtpd(lmtp=True, handler=handler) as server:
        async with trio_smtp.open_lmtp("127.0.0.1", server.port, tls=trio_smtp.PLAINTEXT) as lmtp:
            with pytest.raises(RecipientsRefused) as caught:
                await lmtp.send_mail(
                    "a@example.com", ["nobody@example.org", "full@example.org"], b"x\r\n"
                )
    assert {rcpt: reply.code for rcpt, reply in caught.value.rejected.items()} == {
        "nobody@example.org": 550,
        "full@example.org": 452,
    }


async def test_open_lmtp_refuses_a_non_verifying_context_before_connecting() -> None:
    unverified = ssl.create_default_context()
    unverified.check_hostname = False
    unverified.verify_mode = ssl.CERT_NONE
    with pytest.raises(InvalidInputError, match="verify"):
        async with trio_smtp.open_lmtp("127.0.0.1", 9, ssl_context=unverified):
            pass  # pragma: no cover - never reached


def test_tls_context_errors_are_invalid_input(tmp_path: Path) -> None:
    with pytest.raises(InvalidInputError, match="CA certificates"):
        trio_smtp.tls_context(cafile=str(tmp_path / "missing.pem"))
    with pytest.raises(InvalidInputError, match="CA certificates"):
        trio_smtp.tls_context(trust=None, cadata="not a certificate")
    with pytest.raises(InvalidInputError, match="trust=None"):
        trio_smtp.tls_context(trust=None)
