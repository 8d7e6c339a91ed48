"""Smaller promises of the client: trust sources, AUTH failure kinds, DSN,
REQUIRETLS, and reading queue ids from the usual MTA wordings."""

from __future__ import annotations

import logging
import ssl
from collections.abc import AsyncIterator

import pytest
import trio

import trio_smtp
from trio_smtp import AuthRejected, ExtensionUnavailable, MailParams, RcptParams, Reply
from trio_smtp._outcome import queue_id_from
from trio_smtp.testing import delay, open_test_server, reply_override

USER, PASSWORD = "user@example.com", "correct horse"


@pytest.mark.parametrize("trust", ["system", "certifi", "truststore"])
def test_trust_sources_build_verifying_contexts(trust: str) -> None:
    if trust == "truststore":
        pytest.importorskip("truststore", reason="the truststore extra is not installed")
    context = trio_smtp.tls_context(trust=trust)  # type: ignore[arg-type]
    assert context.verify_mode == ssl.CERT_REQUIRED
    assert context.check_hostname
    assert context.minimum_version == ssl.TLSVersion.TLSv1_2


def test_certifi_context_trusts_certifi_roots() -> None:
    certifi = pytest.importorskip("certifi")
    context = trio_smtp.tls_context(trust="certifi")
    with open(certifi.where(), "rb") as bundle:
        assert bundle.read().count(b"BEGIN CERTIFICATE") == len(context.get_ca_certs())


@pytest.mark.parametrize(
    ("reply", "transient"), [("454 4.7.0 try again later", True), ("535 5.7.8 bad", False)]
)
async def test_454_and_535_are_told_apart(reply: str, transient: bool) -> None:
    with trio.fail_after(10):
        async with (
            open_test_server(
                users={USER: PASSWORD}, faults=reply_override("AUTH", reply)
            ) as server,
            trio_smtp.open_smtp(server.host, server.port, tls=trio_smtp.PLAINTEXT) as smtp,
        ):
            with pytest.raises(AuthRejected) as caught:
                await smtp.login(USER, PASSWORD)
            assert caught.value.reply.is_transient is transient
            assert caught.value.reply.is_permanent is not transient
            # The fault fired once: the retry succeeds.
            assert (await smtp.login(USER, PASSWORD)).code == 235


async def test_dsn_parameters_reach_the_server() -> None:
    with trio.fail_after(10):
        async with (
            open_test_server() as server,
            trio_smtp.open_smtp(server.host, server.port, tls=trio_smtp.PLAINTEXT) as smtp,
        ):
            await smtp.send_mail(
                "a@example.com",
                ["b@example.org", "c@example.org"],
                b"x\r\n",
                mail_params=MailParams(ret="HDRS", envid="QQ+314159"),
                rcpt_params={
                    "b@example.org": RcptParams(
                        notify=("SUCCESS", "FAILURE"), orcpt="b@example.org"
                    )
                },
            )
    (message,) = server.messages
    assert "RET=HDRS" in message.mail_options
    assert "ENVID=QQ+2B314159" in message.mail_options
    assert message.rcpt_options[0] == ("NOTIFY=SUCCESS,FAILURE", "ORCPT=rfc822;b@example.org")
    assert message.rcpt_options[1] == ()


async def test_requiretls_needs_tls() -> None:
    with trio.fail_after(10):
        async with (
            open_test_server(extensions=["PIPELINING", "REQUIRETLS"]) as server,
            trio_smtp.open_smtp(server.host, server.port, tls=trio_smtp.PLAINTEXT) as smtp,
        ):
            with pytest.raises(ExtensionUnavailable, match="REQUIRETLS"):
                await smtp.send_mail(
                    "a@example.com",
                    ["b@example.org"],
                    b"x",
                    mail_params=MailParams(requiretls=True),
                )
    assert server.messages == []


@pytest.mark.parametrize(
    ("text", "queue_id"),
    [
        (b"2.0.0 Ok: queued as 4XyZ1abC", "4XyZ1abC"),  # Postfix
        (b"OK id=1rABCd-000Abc-Xy", "1rABCd-000Abc-Xy"),  # Exim
        (b"2.0.0 4AL9abcd012345 Message accepted for delivery", "4AL9abcd012345"),  # Sendmail
        (b"2.6.0 <abc@host.example> [InternalId=123] Queued mail for delivery", "abc@host.example"),
        (b"Ok", None),
    ],
)
def test_queue_ids_from_the_usual_wordings(text: bytes, queue_id: str | None) -> None:
    assert queue_id_from(Reply(250, (text,))) == queue_id
    assert queue_id_from(Reply(451, (text,))) is None  # only a success names a queue id


@pytest.mark.parametrize("extensions", [None, ["PIPELINING", "SIZE", "8BITMIME"]])
async def test_a_cancelled_send_says_whether_its_end_of_data_had_left(
    extensions: list[str] | None,
) -> None:
    """`awaiting_final_reply` tells a pool an unknown outcome from a safe retry."""
    with trio.fail_after(10):
        async with (
            open_test_server(
                extensions=extensions, faults=delay(None, 5, stage="data_end")
            ) as server,
            trio_smtp.open_smtp(server.host, server.port, tls=trio_smtp.PLAINTEXT) as smtp,
        ):
            assert not smtp.awaiting_final_reply
            with trio.move_on_after(0.5) as scope:
                await smtp.send_mail(
                    "a@example.com", ["b@example.com"], b"Subject: x\r\n\r\nhi\r\n"
                )
            assert scope.cancelled_caught
            assert smtp.awaiting_final_reply
            assert smtp.state is trio_smtp.SessionState.BROKEN

    with trio.fail_after(10):
        async with (
            open_test_server(extensions=["PIPELINING", "SIZE"], faults=delay("RCPT", 5)) as server,
            trio_smtp.open_smtp(server.host, server.port, tls=trio_smtp.PLAINTEXT) as smtp,
        ):
            with trio.move_on_after(0.5) as scope:
                await smtp.send_mail("a@example.com", ["b@example.com"], b"hi\r\n")
            assert scope.cancelled_caught
            assert not smtp.awaiting_final_reply
            async with (
                open_test_server() as other,
                trio_smtp.open_smtp(other.host, other.port, tls=trio_smtp.PLAINTEXT) as fresh,
            ):
                await fresh.send_mail("a@example.com", ["b@example.com"], b"hi\r\n")
                assert not fresh.awaiting_final_reply


async def test_lmtp_421_midway_keeps_earlier_replies_and_leaves_the_rest_unknown() -> None:
    recipients = ["a@example.com", "b@example.com", "c@example.com"]
    with trio.fail_after(10):
        async with (
            open_test_server(
                lmtp=True,
                faults=reply_override(
                    None, "421 4.3.2 shutting down", stage="data_end", recipient=recipients[1]
                ),
            ) as server,
            trio_smtp.open_lmtp(server.host, server.port, tls=trio_smtp.PLAINTEXT) as lmtp,
        ):
            with pytest.raises(trio_smtp.OutcomeUnknown) as caught:
                await lmtp.send_mail("s@example.com", recipients, b"Subject: x\r\n\r\nhi\r\n")
            assert lmtp.is_closed
    assert caught.value.replies[recipients[0]].code == 250
    assert caught.value.replies[recipients[1]].code == 421
    assert caught.value.unanswered == (recipients[2],)


async def test_lmtp_421_to_the_last_recipient_is_that_recipients_failure() -> None:
    recipients = ["a@example.com", "b@example.com"]
    with trio.fail_after(10):
        async with (
            open_test_server(
                lmtp=True,
                faults=reply_override(
                    None, "421 4.3.2 shutting down", stage="data_end", recipient=recipients[1]
                ),
            ) as server,
            trio_smtp.open_lmtp(server.host, server.port, tls=trio_smtp.PLAINTEXT) as lmtp,
        ):
            outcome = await lmtp.send_mail("s@example.com", recipients, b"hi\r\n")
            assert lmtp.is_closed
    assert isinstance(outcome, trio_smtp.LMTPOutcome)
    assert outcome.replies[recipients[0]].code == 250
    assert outcome.replies[recipients[1]].code == 421


async def test_a_refused_chunk_leaves_no_final_reply_awaited() -> None:
    body = b"x" * 70 + b"\r\n"
    # Two chunks: the refusal of the first arrives after LAST was written.
    stream_body = body * (3 * 512 * 1024 // len(body))

    async def chunks() -> AsyncIterator[bytes]:
        for start in range(0, len(stream_body), 65536):
            yield stream_body[start : start + 65536]

    with trio.fail_after(10):
        async with (
            open_test_server(
                faults=reply_override("BDAT", "452 4.3.1 full", stage="bdat")
            ) as server,
            trio_smtp.open_smtp(server.host, server.port, tls=trio_smtp.PLAINTEXT) as smtp,
        ):
            with pytest.raises(trio_smtp.SMTPReplyError) as caught:
                await smtp.send_mail("a@example.com", ["b@example.com"], chunks())
            assert caught.value.reply.code == 452
            assert not smtp.awaiting_final_reply
            assert smtp.state is trio_smtp.SessionState.READY
            await smtp.send_mail("a@example.com", ["b@example.com"], b"again\r\n")
    assert [m.data for m in server.messages] == [b"again\r\n"]


async def test_the_debug_log_shows_bdat_command_lines(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="trio_smtp")
    body = b"x" * 78 + b"\r\n"

    async def stream() -> AsyncIterator[bytes]:
        yield body * (3 * 1024 * 1024 // len(body) // 2)

    with trio.fail_after(10):
        async with (
            open_test_server() as server,
            trio_smtp.open_smtp(server.host, server.port, tls=trio_smtp.PLAINTEXT) as smtp,
        ):
            await smtp.send_mail("a@example.com", ["b@example.com"], body)
            await smtp.send_mail("a@example.com", ["b@example.com"], stream())
    lines = [r.getMessage() for r in caplog.records if "BDAT" in r.getMessage()]
    assert any(line.endswith(f"BDAT {len(body)} LAST") for line in lines)
    assert any(line.endswith(f"BDAT {1024 * 1024}") for line in lines)
