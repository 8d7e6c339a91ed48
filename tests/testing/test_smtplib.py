"""The test server against a client nobody here wrote: CPython's smtplib.

smtplib is blocking, so each conversation runs in a worker thread while the
server runs in trio. Every smtplib connection has a socket timeout, so a
hung conversation ends the thread instead of the test run.
"""

from __future__ import annotations

import base64
import smtplib
import ssl
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import pytest
import trio

from trio_smtp.testing import (
    TestServer,
    combine,
    delay,
    drop_at,
    open_test_server,
    reply_override,
)
from trio_smtp.testing.pytest_plugin import SMTPServerFactory

from .rawclient import RawClient

T = TypeVar("T")
TIMEOUT = 5


async def in_thread(fn: Callable[[], T]) -> T:
    return await trio.to_thread.run_sync(fn)


def smtp(server: TestServer) -> smtplib.SMTP:
    return smtplib.SMTP(server.host, server.port, timeout=TIMEOUT)


MESSAGE = b"From: a@example.org\r\nTo: b@example.org\r\nSubject: hi\r\n\r\nHello.\r\n"


async def test_ehlo_lists_default_features(smtp_server: TestServer) -> None:
    with trio.fail_after(10):

        def talk() -> dict[str, str]:
            with smtp(smtp_server) as client:
                code, _ = client.ehlo("client.example")
                assert code == 250
                return client.esmtp_features

        features = await in_thread(talk)
    assert features == {
        "pipelining": "",
        "chunking": "",
        "binarymime": "",
        "size": str(50 * 1024 * 1024),
        "8bitmime": "",
        "smtputf8": "",
        "dsn": "",
        "enhancedstatuscodes": "",
        "auth": " PLAIN LOGIN XOAUTH2 OAUTHBEARER",
    }
    assert smtp_server.transcripts[0][1] == ("C", b"ehlo client.example")


async def test_extension_subset_and_starttls_advertised(
    smtp_server_factory: SMTPServerFactory,
) -> None:
    with trio.fail_after(10):
        server = await smtp_server_factory(
            extensions=["PIPELINING", "SIZE 1000"], tls="starttls", max_size=1000
        )

        def talk() -> dict[str, str]:
            with smtp(server) as client:
                client.ehlo()
                return client.esmtp_features

        features = await in_thread(talk)
    assert features == {"pipelining": "", "size": "1000", "starttls": ""}


async def test_send_to_several_recipients_one_rejected() -> None:
    with trio.fail_after(10):
        async with open_test_server(reject_recipients=["nobody@example.org"]) as server:

            def talk() -> tuple[dict[str, tuple[int, bytes]], tuple[int, bytes]]:
                with smtp(server) as client:
                    refused = client.sendmail(
                        "a@example.org",
                        ["b@example.org", "nobody@example.org", "c@example.net"],
                        MESSAGE,
                    )
                    return refused, client.noop()

            refused, noop = await in_thread(talk)
    assert refused == {
        "nobody@example.org": (
            550,
            b"5.1.1 <nobody@example.org>: Recipient address rejected: User unknown",
        )
    }
    assert noop == (250, b"2.0.0 Ok")
    [message] = server.messages
    assert message.mail_from == "a@example.org"
    assert message.rcpt_tos == ("b@example.org", "c@example.net")
    assert message.rcpt_options == ((), ())
    assert message.data == MESSAGE
    assert message.transfer == "DATA"
    assert message.mail_options == (f"SIZE={len(MESSAGE)}",)
    assert (message.tls, message.auth_user, message.smtputf8) == (False, None, False)
    assert message.acknowledged and message.connection == 0
    assert message.queue_id is not None
    assert message.as_email()["Subject"] == "hi"
    assert ("S", f"250 2.0.0 Ok: queued as {message.queue_id}\r\n".encode()) in (
        server.transcripts[0]
    )
    assert not server.sync_violations
    assert not server.bare_newlines_seen


async def test_queue_ids_are_fresh(smtp_server: TestServer) -> None:
    with trio.fail_after(10):

        def talk() -> list[bytes]:
            with smtp(smtp_server) as client:
                client.ehlo()
                replies = []
                for _ in range(3):
                    client.mail("a@example.org")
                    client.rcpt("b@example.org")
                    replies.append(client.data(MESSAGE)[1])
                return replies

        replies = await in_thread(talk)
    ids = [m.queue_id for m in smtp_server.messages]
    assert len(set(ids)) == 3
    assert replies == [f"2.0.0 Ok: queued as {qid}".encode() for qid in ids]


async def test_dot_stuffed_lines_round_trip(smtp_server: TestServer) -> None:
    body = b"Subject: dots\r\n\r\n.\r\n..\r\n.leading dot\r\nmiddle . dot\r\n...\r\n. \r\nlast\r\n"
    with trio.fail_after(10):

        def talk() -> None:
            with smtp(smtp_server) as client:
                client.sendmail("a@example.org", ["b@example.org"], body)

        await in_thread(talk)
    assert smtp_server.messages[0].data == body
    # On the wire smtplib doubled every leading dot; the server removed them.
    wire = next(
        entry for kind, entry in smtp_server.transcripts[0] if kind == "C" and b"dots" in entry
    )
    assert wire == (
        b"Subject: dots\r\n\r\n..\r\n...\r\n..leading dot\r\nmiddle . dot\r\n"
        b"....\r\n.. \r\nlast\r\n.\r\n"
    )


async def test_message_without_final_newline_and_leading_dot(smtp_server: TestServer) -> None:
    with trio.fail_after(10):

        def talk() -> None:
            with smtp(smtp_server) as client:
                client.sendmail("a@example.org", ["b@example.org"], b".first\r\nno newline")

        await in_thread(talk)
    # smtplib adds the final CRLF; the first line's dot was stuffed and removed.
    assert smtp_server.messages[0].data == b".first\r\nno newline\r\n"


async def test_8bitmime_and_smtputf8(smtp_server: TestServer) -> None:
    eight_bit = "Subject: caf\u00e9\r\n\r\nna\u00efve\r\n".encode()
    with trio.fail_after(10):

        def talk() -> None:
            with smtp(smtp_server) as client:
                client.sendmail(
                    "a@example.org", ["b@example.org"], eight_bit, mail_options=["BODY=8BITMIME"]
                )
                client.sendmail(
                    "j\u00f6rg@b\u00fccher.example",
                    ["\u00fc\u00f1\u00ee@\u4f8b\u3048.jp"],
                    eight_bit,
                    mail_options=["SMTPUTF8", "BODY=8BITMIME"],
                )

        await in_thread(talk)
    first, second = smtp_server.messages
    assert first.data == eight_bit
    assert first.mail_options == (f"SIZE={len(eight_bit)}", "BODY=8BITMIME")
    assert not first.smtputf8
    assert second.smtputf8
    assert second.mail_from == "j\u00f6rg@b\u00fccher.example"
    assert second.rcpt_tos == ("\u00fc\u00f1\u00ee@\u4f8b\u3048.jp",)
    assert "SMTPUTF8" in second.mail_options


async def test_starttls(smtp_server_factory: SMTPServerFactory) -> None:
    with trio.fail_after(10):
        server = await smtp_server_factory(tls="starttls")

        def talk() -> tuple[dict[str, str], dict[str, str]]:
            with smtp(server) as client:
                client.ehlo()
                before = dict(client.esmtp_features)
                code, _ = client.starttls(context=server.client_ssl_context())
                assert code == 220
                client.ehlo()
                after = dict(client.esmtp_features)
                client.sendmail("a@example.org", ["b@example.org"], MESSAGE)
                return before, after

        before, after = await in_thread(talk)
    assert "starttls" in before
    assert "starttls" not in after
    assert server.messages[0].tls
    assert not server.sync_violations


async def test_certificate_names(smtp_server_factory: SMTPServerFactory) -> None:
    # The certificate names "localhost", "127.0.0.1" and the configured hostname.
    with trio.fail_after(10):
        server = await smtp_server_factory(tls="starttls", hostname="mx.test.invalid")
        for name in ["localhost", "127.0.0.1", "mx.test.invalid"]:
            async with await RawClient.connect(server) as client:
                await client.expect(None, 220)
                await client.expect("EHLO x", 250)
                await client.expect("STARTTLS", 220)
                await client.start_tls(server.client_ssl_context(), name)
                await client.expect("EHLO x", 250)
        async with await RawClient.connect(server) as client:
            await client.expect(None, 220)
            await client.expect("EHLO x", 250)
            await client.expect("STARTTLS", 220)
            with pytest.raises(trio.BrokenResourceError):
                await client.start_tls(server.client_ssl_context(), "other.invalid")


async def test_implicit_tls(smtp_server_factory: SMTPServerFactory) -> None:
    with trio.fail_after(10):
        server = await smtp_server_factory(tls="implicit")

        def talk() -> dict[str, str]:
            context = server.client_ssl_context()
            with smtplib.SMTP_SSL(server.host, server.port, context=context, timeout=5) as c:
                c.ehlo()
                c.sendmail("a@example.org", ["b@example.org"], MESSAGE)
                return c.esmtp_features

        features = await in_thread(talk)
    assert "starttls" not in features
    assert server.messages[0].tls


async def test_implicit_tls_refuses_plaintext_and_keeps_serving(
    smtp_server_factory: SMTPServerFactory,
) -> None:
    with trio.fail_after(10):
        server = await smtp_server_factory(tls="implicit")

        def plaintext() -> None:
            # No plaintext greeting ever comes: the server waits for a ClientHello.
            smtplib.SMTP(server.host, server.port, timeout=0.5)

        with pytest.raises((smtplib.SMTPServerDisconnected, OSError)):
            await in_thread(plaintext)

        def untrusted() -> None:
            context = ssl.create_default_context()  # does not trust the test CA
            smtplib.SMTP_SSL(server.host, server.port, context=context, timeout=5)

        with pytest.raises(ssl.SSLCertVerificationError):
            await in_thread(untrusted)

        def good() -> int:
            context = server.client_ssl_context()
            with smtplib.SMTP_SSL(server.host, server.port, context=context, timeout=5) as c:
                return c.noop()[0]

        assert await in_thread(good) == 250


async def test_require_tls_refuses_mail_and_auth_before_starttls(
    smtp_server_factory: SMTPServerFactory,
) -> None:
    with trio.fail_after(10):
        server = await smtp_server_factory(
            tls="starttls", require_tls=True, users={"alice": "secret"}
        )

        def talk() -> tuple[int, int, int]:
            with smtp(server) as client:
                client.ehlo()
                mail = client.mail("a@example.org")[0]
                client.user, client.password = "alice", "secret"
                try:
                    client.auth("PLAIN", client.auth_plain)
                    auth = 235
                except smtplib.SMTPAuthenticationError as exc:
                    auth = exc.smtp_code
                client.starttls(context=server.client_ssl_context())
                client.ehlo()
                client.login("alice", "secret")
                return mail, auth, client.mail("a@example.org")[0]

        assert await in_thread(talk) == (530, 530, 250)


async def test_auth_plain_and_login(smtp_server_factory: SMTPServerFactory) -> None:
    with trio.fail_after(10):
        server = await smtp_server_factory(users={"alice": "s3cret-pw", "bob": "hunter2"})

        def attempt(mechanism: str, user: str, password: str, initial: bool) -> int:
            with smtp(server) as client:
                client.ehlo()
                client.user, client.password = user, password
                method = client.auth_plain if mechanism == "PLAIN" else client.auth_login
                try:
                    code = client.auth(mechanism, method, initial_response_ok=initial)[0]
                except smtplib.SMTPAuthenticationError as exc:
                    return exc.smtp_code
                client.sendmail("a@example.org", ["b@example.org"], MESSAGE)
                return code

        results = [
            await in_thread(lambda: attempt("PLAIN", "alice", "s3cret-pw", True)),
            await in_thread(lambda: attempt("PLAIN", "alice", "s3cret-pw", False)),
            await in_thread(lambda: attempt("LOGIN", "bob", "hunter2", True)),
            await in_thread(lambda: attempt("LOGIN", "bob", "hunter2", False)),
            await in_thread(lambda: attempt("PLAIN", "alice", "wrong", True)),
            await in_thread(lambda: attempt("LOGIN", "bob", "wrong", False)),
            await in_thread(lambda: attempt("PLAIN", "mallory", "s3cret-pw", True)),
        ]
    assert results == [235, 235, 235, 235, 535, 535, 535]
    assert [m.auth_user for m in server.messages] == ["alice", "alice", "bob", "bob"]
    # Credentials, plain or base64, never reach the transcripts.
    secrets = [b"s3cret-pw", b"hunter2", base64.b64encode(b"hunter2"), b"wrong"]
    secrets.append(base64.b64encode(b"\0alice\0s3cret-pw"))
    for transcript in server.transcripts:
        for _, entry in transcript:
            assert not any(secret in entry for secret in secrets), entry
    assert ("C", b"AUTH PLAIN ***") in server.transcripts[0]
    assert ("C", b"***") in server.transcripts[1]


async def test_auth_cram_md5_when_listed(smtp_server_factory: SMTPServerFactory) -> None:
    with trio.fail_after(10):
        server = await smtp_server_factory(
            extensions=["AUTH CRAM-MD5 PLAIN"], users={"carol": "pa55"}
        )

        def talk(password: str) -> int:
            with smtp(server) as client:
                try:
                    return client.login("carol", password)[0]  # smtplib prefers CRAM-MD5
                except smtplib.SMTPAuthenticationError as exc:
                    return exc.smtp_code

        assert await in_thread(lambda: talk("pa55")) == 235
        assert await in_thread(lambda: talk("nope")) == 535
    assert b"AUTH CRAM-MD5" in server.transcripts[0][2][1]


async def test_second_auth_is_refused(smtp_server_factory: SMTPServerFactory) -> None:
    with trio.fail_after(10):
        server = await smtp_server_factory(users={"alice": "pw"})

        def talk() -> tuple[int, int]:
            with smtp(server) as client:
                first = client.login("alice", "pw")[0]
                # smtplib.auth returns a 503 instead of raising.
                client.user, client.password = "alice", "pw"
                return first, client.auth("PLAIN", client.auth_plain)[0]

        assert await in_thread(talk) == (235, 503)


def lmtp_exchange(client: smtplib.LMTP, recipients: list[str]) -> list[tuple[int, bytes]]:
    code, _ = client.ehlo()  # smtplib.LMTP sends LHLO
    assert code == 250
    client.mail("a@example.org")
    accepted = [r for r in recipients if client.rcpt(r)[0] == 250]
    replies = [client.data(MESSAGE)]
    replies.extend(client.getreply() for _ in accepted[1:])
    return replies


async def test_lmtp_over_tcp_one_reply_per_recipient(
    smtp_server_factory: SMTPServerFactory,
) -> None:
    with trio.fail_after(10):
        server = await smtp_server_factory(
            lmtp=True,
            reject_recipients=["gone@example.org"],
            faults=reply_override(
                "DATA", "452 4.2.2 Mailbox full", stage="data_end", recipient="full@example.org"
            ),
        )

        def talk() -> list[tuple[int, bytes]]:
            with smtplib.LMTP(server.host, server.port, timeout=TIMEOUT) as client:
                rcpts = ["b@example.org", "gone@example.org", "full@example.org", "c@example.org"]
                return lmtp_exchange(client, rcpts)

        replies = await in_thread(talk)
    assert [code for code, _ in replies] == [250, 452, 250]
    assert b"<b@example.org>" in replies[0][1]
    assert b"<c@example.org>" in replies[2][1]
    [message] = server.messages
    assert message.rcpt_tos == ("b@example.org", "c@example.org")
    assert message.data == MESSAGE
    assert server.transcripts[0][1] == ("C", b"lhlo " + server.transcripts[0][1][1][5:])


async def test_lmtp_over_unix_socket(tmp_path: Path) -> None:
    path = tmp_path / "lmtp.sock"
    with trio.fail_after(10):
        async with open_test_server(lmtp=True, unix_path=path) as server:
            assert server.path == str(path)
            assert (server.host, server.port) == ("", 0)

            def talk() -> list[tuple[int, bytes]]:
                with smtplib.LMTP(str(path), timeout=TIMEOUT) as client:
                    return lmtp_exchange(client, ["x@example.org", "y@example.org"])

            replies = await in_thread(talk)
        assert not path.exists()
    assert [code for code, _ in replies] == [250, 250]
    assert server.messages[0].rcpt_tos == ("x@example.org", "y@example.org")


# ---- faults ------------------------------------------------------------


async def test_fault_reply_override_on_rcpt(smtp_server_factory: SMTPServerFactory) -> None:
    with trio.fail_after(10):
        server = await smtp_server_factory(
            faults=reply_override("RCPT", "452 4.5.3 Too many recipients")
        )

        def talk() -> dict[str, tuple[int, bytes]]:
            with smtp(server) as client:
                return client.sendmail("a@example.org", ["b@example.org", "c@example.org"], MESSAGE)

        refused = await in_thread(talk)
    assert refused == {"b@example.org": (452, b"4.5.3 Too many recipients")}
    assert server.messages[0].rcpt_tos == ("c@example.org",)


async def test_fault_drop_before_data_end(smtp_server_factory: SMTPServerFactory) -> None:
    with trio.fail_after(10):
        server = await smtp_server_factory(faults=drop_at("command", "DATA"))

        def talk() -> None:
            with smtp(server) as client:
                client.sendmail("a@example.org", ["b@example.org"], MESSAGE)

        with pytest.raises(smtplib.SMTPServerDisconnected):
            await in_thread(talk)
    assert server.messages == []


async def test_fault_drop_at_data_end_records_unacknowledged(
    smtp_server_factory: SMTPServerFactory,
) -> None:
    with trio.fail_after(10):
        server = await smtp_server_factory(faults=drop_at("data_end"))

        def talk() -> None:
            with smtp(server) as client:
                client.sendmail("a@example.org", ["b@example.org"], MESSAGE)

        with pytest.raises(smtplib.SMTPServerDisconnected):
            await in_thread(talk)
    [message] = server.messages
    assert not message.acknowledged
    assert message.data == MESSAGE


async def test_fault_refusal_at_data_end_is_not_recorded(
    smtp_server_factory: SMTPServerFactory,
) -> None:
    with trio.fail_after(10):
        server = await smtp_server_factory(
            faults=reply_override("DATA", "451 4.3.0 Try again later", stage="data_end")
        )

        def talk() -> None:
            with smtp(server) as client:
                client.sendmail("a@example.org", ["b@example.org"], MESSAGE)
                client.sendmail("a@example.org", ["b@example.org"], MESSAGE)

        with pytest.raises(smtplib.SMTPDataError) as info:
            await in_thread(talk)
    assert info.value.smtp_code == 451
    assert server.messages == []


async def test_fault_421_closes(smtp_server_factory: SMTPServerFactory) -> None:
    with trio.fail_after(10):
        server = await smtp_server_factory(faults=reply_override("MAIL", "421 4.3.2 Shutting down"))

        def talk() -> None:
            with smtp(server) as client:
                client.sendmail("a@example.org", ["b@example.org"], MESSAGE)

        with pytest.raises(smtplib.SMTPSenderRefused) as info:
            await in_thread(talk)
    assert info.value.smtp_code == 421
    assert server.transcripts[0][-1] == ("S", b"421 4.3.2 Shutting down\r\n")


async def test_fault_short_real_delay(smtp_server_factory: SMTPServerFactory) -> None:
    with trio.fail_after(10):
        server = await smtp_server_factory(faults=combine(delay("MAIL", 0.3), None))

        def talk() -> None:
            with smtp(server) as client:
                client.sendmail("a@example.org", ["b@example.org"], MESSAGE)

        start = trio.current_time()
        await in_thread(talk)
        assert trio.current_time() - start >= 0.3
    assert len(server.messages) == 1


async def test_fault_on_greeting(smtp_server_factory: SMTPServerFactory) -> None:
    with trio.fail_after(10):
        server = await smtp_server_factory(
            faults=reply_override(None, "554 5.3.2 No service", stage="connect")
        )

        def talk() -> None:
            smtp(server)

        with pytest.raises(smtplib.SMTPConnectError) as info:
            await in_thread(talk)
        assert info.value.smtp_code == 554

        def again() -> int:  # times=1: the next connection is greeted normally
            with smtp(server) as client:
                return client.noop()[0]

        assert await in_thread(again) == 250
