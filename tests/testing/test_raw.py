"""Protocol details smtplib cannot exercise, driven with raw trio streams.

BDAT chunks, pipelined flights and their one-write answers, protocol
synchronization violations, the OAuth error turns, line limits, bare LF,
parameter checks, fault points, and `serve_stream` over memory streams
(with trio's autojump clock for delays).
"""

from __future__ import annotations

import base64
import json

import trio
import trio.testing

from trio_smtp.testing import (
    Delay,
    DelayThen,
    Drop,
    FaultPoint,
    Reply,
    TestServer,
    combine,
    delay,
    drop_at,
    open_test_server,
    reply_override,
)
from trio_smtp.testing.pytest_plugin import SMTPServerFactory

from .rawclient import RawClient


def b64(data: bytes) -> bytes:
    return base64.b64encode(data)


async def ehlo(client: RawClient, name: bytes = b"client.example") -> list[bytes]:
    await client.expect(None, 220)
    return await client.expect(b"EHLO " + name, 250)


# ---- BDAT ----------------------------------------------------------------


async def test_bdat_chunks_pipelined(smtp_server: TestServer) -> None:
    with trio.fail_after(10):
        async with await RawClient.connect(smtp_server) as client:
            await ehlo(client)
            await client.send(
                b"MAIL FROM:<a@example.org> BODY=BINARYMIME\r\n"
                b"RCPT TO:<b@example.org>\r\n"
                b"BDAT 6\r\nhello\nBDAT 9 LAST\r\n\x00world\r\r\n"
            )
            await client.expect(None, 250)
            await client.expect(None, 250)
            assert await client.expect(None, 250) == [b"2.0.0 6 octets received"]
            [final] = await client.expect(None, 250)
            await client.expect("QUIT", 221)
    [message] = smtp_server.messages
    assert final == f"2.0.0 Ok: queued as {message.queue_id}".encode()
    assert message.data == b"hello\n\x00world\r\r\n"
    assert message.transfer == "BDAT"
    assert message.mail_options == ("BODY=BINARYMIME",)
    # BINARYMIME content is binary: its bare LF is not a newline fault.
    assert not smtp_server.bare_newlines_seen
    # One flight, one write with all four replies.
    assert smtp_server.reply_batches[0][2] == 4
    assert not smtp_server.sync_violations


async def test_bdat_text_with_bare_lf_is_noticed(smtp_server: TestServer) -> None:
    with trio.fail_after(10):
        async with await RawClient.connect(smtp_server) as client:
            await ehlo(client)
            await client.expect("MAIL FROM:<a@example.org>", 250)
            await client.expect("RCPT TO:<b@example.org>", 250)
            await client.raw(b"BDAT 4\r\nab\r\r", 250)  # CR | LF split across chunks is fine
            assert not smtp_server.bare_newlines_seen
            await client.raw(b"BDAT 4 LAST\r\n\nc\nd", 250)
    assert smtp_server.messages[0].data == b"ab\r\r\nc\nd"
    assert smtp_server.bare_newlines_seen


async def test_bdat_empty_last_chunk(smtp_server: TestServer) -> None:
    with trio.fail_after(10):
        async with await RawClient.connect(smtp_server) as client:
            await ehlo(client)
            await client.expect("MAIL FROM:<>", 250)
            await client.expect("RCPT TO:<b@example.org>", 250)
            await client.raw(b"BDAT 3\r\nabc", 250)
            await client.expect(b"BDAT 0 LAST", 250)
    assert smtp_server.messages[0].data == b"abc"
    assert smtp_server.messages[0].mail_from == ""


async def test_bdat_errors_still_consume_the_chunk(smtp_server_factory: SMTPServerFactory) -> None:
    with trio.fail_after(10):
        server = await smtp_server_factory(max_size=10)
        async with await RawClient.connect(server) as client:
            await ehlo(client)
            await client.raw(b"BDAT 5\r\nNOOP\n", 503)  # no transaction
            await client.expect("NOOP", 250)
            await client.expect("MAIL FROM:<a@example.org>", 250)
            await client.raw(b"BDAT 5\r\nhello", 554)  # no recipients
            await client.expect("RCPT TO:<b@example.org>", 250)
            await client.raw(b"BDAT 20 LAST\r\n" + b"x" * 20, 552)  # over max_size
            await client.raw(b"BDAT 1 LAST\r\nx", 503)  # the transaction failed
            await client.expect("RSET", 250)
            await client.expect("MAIL FROM:<a@example.org>", 250)
            await client.expect("RCPT TO:<b@example.org>", 250)
            await client.raw(b"BDAT 2\r\nhi", 250)
            await client.expect("DATA", 503)  # no mixing DATA and BDAT
            await client.expect(b"BDAT x", 501)
    assert server.messages == []


async def test_bdat_needs_chunking(smtp_server_factory: SMTPServerFactory) -> None:
    with trio.fail_after(10):
        server = await smtp_server_factory(extensions=["PIPELINING"])
        async with await RawClient.connect(server) as client:
            await ehlo(client)
            await client.expect("MAIL FROM:<a@example.org>", 250)
            await client.expect("RCPT TO:<b@example.org>", 250)
            await client.raw(b"BDAT 4 LAST\r\nQUIT", 502)
            await client.expect("RSET", 250)
            await client.expect("MAIL FROM:<a@example.org> BODY=BINARYMIME", 555)


async def test_binarymime_refuses_data(smtp_server: TestServer) -> None:
    with trio.fail_after(10):
        async with await RawClient.connect(smtp_server) as client:
            await ehlo(client)
            await client.expect("MAIL FROM:<a@example.org> BODY=BINARYMIME", 250)
            await client.expect("RCPT TO:<b@example.org>", 250)
            await client.expect("DATA", 503)


# ---- pipelining and synchronization ---------------------------------------


async def test_pipelined_flight_answered_in_one_write(smtp_server: TestServer) -> None:
    with trio.fail_after(10):
        async with await RawClient.connect(smtp_server) as client:
            await ehlo(client)
            await client.send(
                b"MAIL FROM:<a@example.org> SIZE=20\r\n"
                b"RCPT TO:<b@example.org>\r\n"
                b"RCPT TO:<c@example.org>\r\n"
                b"DATA\r\n"
            )
            # All four replies arrive in one segment on loopback.
            first = await client.stream.receive_some(65536)
            assert first.count(b"\r\n") == 4
            assert first.endswith(b"354 End data with <CR><LF>.<CR><LF>\r\n")
            # RFC 2920 3.1: the next transaction may follow the end of data.
            await client.send(b"Subject: x\r\n\r\nbody\r\n.\r\nRSET\r\nNOOP\r\n")
            await client.expect(None, 250)
            await client.expect(None, 250)
            await client.expect(None, 250)
    assert smtp_server.reply_batches[0] == [1, 1, 4, 3]
    assert smtp_server.messages[0].rcpt_tos == ("b@example.org", "c@example.org")
    assert smtp_server.sync_violations == []


async def test_data_before_354_is_a_violation(smtp_server: TestServer) -> None:
    with trio.fail_after(10):
        async with await RawClient.connect(smtp_server) as client:
            await ehlo(client)
            await client.send(
                b"MAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.org>\r\n"
                b"DATA\r\nSubject: eager\r\n\r\n.\r\n"
            )
            for code in (250, 250, 354, 250):
                await client.expect(None, code)
    [violation] = smtp_server.sync_violations
    assert (violation.connection, violation.after) == (0, "DATA")
    assert violation.octets == len(b"Subject: eager\r\n\r\n.\r\n")
    # The server is lenient about it: the message still arrives.
    assert smtp_server.messages[0].data == b"Subject: eager\r\n\r\n"


async def test_bytes_after_starttls_are_discarded(smtp_server_factory: SMTPServerFactory) -> None:
    with trio.fail_after(10):
        server = await smtp_server_factory(tls="starttls")
        async with await RawClient.connect(server) as client:
            assert b"STARTTLS" in await ehlo(client)
            # An injected command rides along with STARTTLS (CVE-2011-0411).
            await client.send(b"STARTTLS\r\nMAIL FROM:<evil@example.org>\r\n")
            await client.expect(None, 220)
            await client.start_tls(server.client_ssl_context(), "localhost")
            await client.expect("MAIL FROM:<a@example.org>", 503)  # the session was reset
            assert b"STARTTLS" not in b"".join(await client.expect("EHLO again", 250))
            await client.expect("MAIL FROM:<a@example.org>", 250)
            await client.expect("STARTTLS", 503)
    [violation] = server.sync_violations
    assert violation.after == "STARTTLS"
    assert not any(b"evil" in entry for _, entry in server.transcripts[0])


async def test_pipelining_without_pipelining_advertised(
    smtp_server_factory: SMTPServerFactory,
) -> None:
    with trio.fail_after(10):
        server = await smtp_server_factory(extensions=["8BITMIME"])
        async with await RawClient.connect(server) as client:
            await ehlo(client)
            await client.send(b"MAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.org>\r\n")
            await client.expect(None, 250)
            await client.expect(None, 250)
            await client.expect("DATA", 354)
            await client.send(b"x\r\n.\r\nQUIT\r\n")
            await client.expect(None, 250)
            await client.expect(None, 221)
    assert [(v.after, v.reason) for v in server.sync_violations] == [
        ("MAIL", "command pipelined without PIPELINING"),
        ("DATA-END", "command pipelined after the data without PIPELINING"),
    ]


async def test_commands_that_must_end_a_group(smtp_server_factory: SMTPServerFactory) -> None:
    with trio.fail_after(10):
        server = await smtp_server_factory(users={"u": "p"})
        async with await RawClient.connect(server) as client:
            await client.expect(None, 220)
            await client.send(b"EHLO x\r\nNOOP\r\n")  # EHLO must be last
            await client.expect(None, 250)
            await client.expect(None, 250)
            assert [v.after for v in server.sync_violations] == ["EHLO"]
            # AUTH PLAIN with an initial response may be followed (RFC 4954 4).
            await client.send(
                b"AUTH PLAIN " + b64(b"\0u\0p") + b"\r\nMAIL FROM:<a@example.org>\r\n"
            )
            await client.expect(None, 235)
            await client.expect(None, 250)
            await client.send(b"RSET\r\nVRFY someone\r\nNOOP\r\n")
            for code in (250, 252, 250):
                await client.expect(None, code)
    assert [v.after for v in server.sync_violations] == ["EHLO", "VRFY"]


# ---- AUTH ------------------------------------------------------------------


async def test_auth_plain_variants(smtp_server_factory: SMTPServerFactory) -> None:
    with trio.fail_after(10):
        server = await smtp_server_factory(users={"alice": "pw"})
        async with await RawClient.connect(server) as client:
            await client.expect(None, 220)
            await client.expect("AUTH PLAIN " + b64(b"\0alice\0pw").decode(), 503)  # no EHLO
            await client.expect("EHLO x", 250)
            await client.expect("AUTH PLAIN =", 501)  # empty response: no NULs
            await client.expect("AUTH PLAIN !!!", 501)  # not base64
            await client.expect("AUTH KERBEROS_V4", 504)
            assert await client.expect("AUTH PLAIN", 334) == [b""]
            await client.expect("*", 501)  # cancelled
            await client.expect("AUTH PLAIN", 334)
            await client.expect(b64(b"bob\0alice\0pw"), 535)  # authzid must be the user
            await client.expect("AUTH PLAIN", 334)
            await client.expect(b64(b"\0alice\0pw"), 235)
            await client.expect("AUTH PLAIN " + b64(b"\0alice\0pw").decode(), 503)
            await client.expect("MAIL FROM:<a@example.org> AUTH=alice", 250)


async def test_auth_login_challenges(smtp_server_factory: SMTPServerFactory) -> None:
    with trio.fail_after(10):
        server = await smtp_server_factory(users={"alice": "pw"})
        async with await RawClient.connect(server) as client:
            await ehlo(client)
            assert await client.expect("AUTH LOGIN", 334) == [b64(b"Username:")]
            assert await client.expect(b64(b"alice"), 334) == [b64(b"Password:")]
            await client.expect(b64(b"pw"), 235)
    assert ("C", b"***") in server.transcripts[0]
    assert not any(b64(b"pw") in entry for _, entry in server.transcripts[0])


async def test_auth_line_limits(smtp_server_factory: SMTPServerFactory) -> None:
    with trio.fail_after(10):
        server = await smtp_server_factory(users={"alice": "pw"}, tokens={"alice": "t" * 9000})
        async with await RawClient.connect(server) as client:
            await ehlo(client)
            # A response line may exceed 512 octets (RFC 4954 4: up to 12288).
            await client.expect("AUTH XOAUTH2", 334)
            await client.expect(b64(b"user=alice\x01auth=Bearer " + b"t" * 9000 + b"\x01\x01"), 235)
        async with await RawClient.connect(server) as client:
            await ehlo(client)
            await client.expect("AUTH PLAIN", 334)
            await client.expect(b"A" * 13000, 500)
            await client.expect("NOOP", 250)


def xoauth2(user: str, token: str) -> bytes:
    return b64(f"user={user}\x01auth=Bearer {token}\x01\x01".encode())


def oauthbearer(user: str | None, token: str) -> bytes:
    header = f"n,a={user}," if user is not None else "n,,"
    text = f"{header}\x01host=localhost\x01port=587\x01auth=Bearer {token}\x01\x01"
    return b64(text.encode())


async def test_xoauth2(smtp_server_factory: SMTPServerFactory) -> None:
    with trio.fail_after(10):
        server = await smtp_server_factory(tokens={"alice@example.org": "ya29.good"})
        async with await RawClient.connect(server) as client:
            await ehlo(client)
            [challenge] = await client.expect(
                b"AUTH XOAUTH2 " + xoauth2("alice@example.org", "ya29.bad"), 334
            )
            assert json.loads(base64.b64decode(challenge))["status"] == "401"
            await client.expect("", 535)  # the empty answer ends the error turn
            await client.expect(b"AUTH XOAUTH2 " + b64(b"garbage"), 501)
            await client.expect(b"AUTH XOAUTH2 " + xoauth2("alice@example.org", "ya29.good"), 235)
            await client.expect("MAIL FROM:<a@example.org>", 250)
            await client.expect("RCPT TO:<b@example.org>", 250)
            await client.expect("DATA", 354)
            await client.expect(b"hi\r\n.", 250)
    assert server.messages[0].auth_user == "alice@example.org"
    assert not any(b"ya29" in entry for _, entry in server.transcripts[0])


async def test_oauthbearer_error_turn(smtp_server_factory: SMTPServerFactory) -> None:
    with trio.fail_after(10):
        server = await smtp_server_factory(tokens={"alice@example.org": "good"})
        async with await RawClient.connect(server) as client:
            await ehlo(client)
            bad = b"AUTH OAUTHBEARER " + oauthbearer("alice@example.org", "bad")
            [challenge] = await client.expect(bad, 334)
            error = json.loads(base64.b64decode(challenge))
            assert error["status"] == "invalid_token"
            await client.expect("AQ==", 535)  # the %x01 dummy response (RFC 7628 3.2.3)
            await client.expect(bad, 334)
            await client.expect(b64(b"again"), 501)  # anything else is a client bug
            await client.expect(bad, 334)
            await client.expect("*", 501)
            await client.expect(b"AUTH OAUTHBEARER " + b64(b"n,,\x01auth=Bearer"), 501)
            await client.expect("AUTH OAUTHBEARER", 334)  # no initial response
            await client.expect(oauthbearer(None, "good"), 235)  # user found by token
    assert ("C", b"AQ==") in server.transcripts[0]
    assert server.sync_violations == []


async def test_auth_not_advertised(smtp_server_factory: SMTPServerFactory) -> None:
    with trio.fail_after(10):
        server = await smtp_server_factory(extensions=["PIPELINING"], users={"a": "b"})
        async with await RawClient.connect(server) as client:
            await ehlo(client)
            await client.expect("AUTH PLAIN " + b64(b"\0a\0b").decode(), 502)
            await client.expect("MAIL FROM:<a@example.org>", 250)


# ---- lines and bodies ------------------------------------------------------


async def test_line_length_limit(smtp_server: TestServer) -> None:
    with trio.fail_after(10):
        async with await RawClient.connect(smtp_server) as client:
            await ehlo(client)
            exactly = b"NOOP " + b"x" * (512 - 7)
            await client.expect(exactly, 250)
            await client.expect(exactly + b"y", 500)
            await client.send(b"NOOP " + b"z" * 300_000)  # arrives in several reads
            await client.expect(b"", 500)
            await client.expect("NOOP", 250)
    assert smtp_server.transcripts[0][-4] == ("C", b"NOOP " + b"z" * 75 + b"...")


async def test_bare_lf_and_cr_in_commands(smtp_server: TestServer) -> None:
    with trio.fail_after(10):
        async with await RawClient.connect(smtp_server) as client:
            await ehlo(client)
            await client.send(b"NOOP\n")
            await client.expect(None, 500)
            assert smtp_server.bare_newlines_seen
            smtp_server.reset()
            await client.expect(b"NOOP\rRSET", 500)
            assert smtp_server.bare_newlines_seen
            await client.expect(b"NOOP\x00", 500)
            await client.expect("", 500)
            await client.expect("FROB", 500)
            await client.send(b"AUTH PLAIN c2VjcmV0\n")
            await client.expect(None, 500)
            await client.expect(b"AUTH PLAIN c2VjcmV0" + b"=" * 600, 500)
    assert not any(b"c2VjcmV0" in entry for _, entry in smtp_server.transcripts[0])


async def test_body_with_bare_lf_is_recorded_as_is(smtp_server: TestServer) -> None:
    # smtpsmug-style: only CRLF.CRLF ends the data, whatever else comes.
    body = b"x\n.\nMAIL FROM:<evil@example.org>\r\n\r.\r\n\r\n.\n\r\n\n.\r\n"
    with trio.fail_after(10):
        async with await RawClient.connect(smtp_server) as client:
            await ehlo(client)
            await client.expect("MAIL FROM:<a@example.org>", 250)
            await client.expect("RCPT TO:<b@example.org>", 250)
            await client.expect("DATA", 354)
            await client.send((b"\r\n" + body).replace(b"\r\n.", b"\r\n..")[2:] + b".\r\n")
            await client.expect(None, 250)
            await client.expect("QUIT", 221)
    [message] = smtp_server.messages
    assert message.data == body
    assert smtp_server.bare_newlines_seen


async def test_data_split_across_many_writes(smtp_server: TestServer) -> None:
    wire = b"..a\r\n.\r\r\n..\r\nend\r\n.\r\n"
    with trio.fail_after(10):
        async with await RawClient.connect(smtp_server) as client:
            await ehlo(client)
            await client.expect("MAIL FROM:<a@example.org>", 250)
            await client.expect("RCPT TO:<b@example.org>", 250)
            await client.expect("DATA", 354)
            for octet in wire:
                await client.send(bytes([octet]))
            await client.expect(None, 250)
    assert smtp_server.messages[0].data == b".a\r\n\r\r\n.\r\nend\r\n"


async def test_empty_message(smtp_server: TestServer) -> None:
    with trio.fail_after(10):
        async with await RawClient.connect(smtp_server) as client:
            await ehlo(client)
            await client.expect("MAIL FROM:<a@example.org>", 250)
            await client.expect("RCPT TO:<b@example.org>", 250)
            await client.expect("DATA", 354)
            await client.expect(".", 250)
    assert smtp_server.messages[0].data == b""


async def test_message_over_max_size(smtp_server_factory: SMTPServerFactory) -> None:
    with trio.fail_after(10):
        server = await smtp_server_factory(max_size=100)
        async with await RawClient.connect(server) as client:
            assert b"SIZE 100" in await ehlo(client)
            await client.expect("MAIL FROM:<a@example.org> SIZE=101", 552)
            await client.expect("MAIL FROM:<a@example.org> SIZE=100", 250)
            await client.expect("RCPT TO:<b@example.org>", 250)
            await client.expect("DATA", 354)
            await client.expect(b"y" * 200 + b"\r\n.", 552)
            await client.expect("NOOP", 250)
    assert server.messages == []


# ---- envelope --------------------------------------------------------------


async def test_sequence_errors(smtp_server: TestServer) -> None:
    with trio.fail_after(10):
        async with await RawClient.connect(smtp_server) as client:
            await client.expect(None, 220)
            await client.expect("MAIL FROM:<a@example.org>", 503)
            await client.expect("LHLO x", 500)  # not in SMTP mode
            await client.expect("HELO x", 250)
            await client.expect("MAIL FROM:<a@example.org> SIZE=10", 555)  # HELO: no extensions
            await client.expect("RCPT TO:<b@example.org>", 503)
            await client.expect("EHLO x", 250)
            await client.expect("DATA", 503)
            await client.expect("MAIL FROM:<a@example.org>", 250)
            await client.expect("MAIL FROM:<a@example.org>", 503)
            await client.expect("DATA", 554)
            await client.expect("RSET x", 501)
            await client.expect("RSET", 250)
            await client.expect("RCPT TO:<b@example.org>", 503)
            await client.expect("VRFY", 501)
            await client.expect("VRFY postmaster", 252)
            await client.expect("EXPN staff", 502)
            await client.expect("HELP", 214)
            await client.expect("NOOP whatever", 250)
            await client.expect("QUIT now", 501)
            await client.expect("QUIT", 221)
            assert await client.at_eof()


async def test_address_syntax(smtp_server: TestServer) -> None:
    with trio.fail_after(10):
        async with await RawClient.connect(smtp_server) as client:
            await ehlo(client)
            for bad in [
                "MAIL FROM: <a@example.org>",
                "MAIL FROM:a@example.org",
                "MAIL FROM:<a@example.org",
                "MAIL FROM:<a@example.org>x",
                "MAIL FROM:<a@example.org>  SIZE=1",
                "MAIL FROM:<a@b(comment).org>",
                "MAIL FROM:<ceo@victim.example .other.example>",
                "MAIL FROM:<a..b@example.org>",
                "MAIL FROM:<a@-example.org>",
                "MAIL FROM:<" + "l" * 65 + "@example.org>",
                "MAIL TO:<a@example.org>",
            ]:
                await client.expect(bad, 501)
            await client.expect('MAIL FROM:<"a@evil.example x"@internal.example>', 250)
            await client.expect("RCPT TO:<>", 501)
            await client.expect("RCPT TO:<Postmaster>", 250)
            await client.expect("RCPT TO:<@relay.example,@b.example:c@[192.0.2.1]>", 250)
            await client.expect("RCPT TO:<d@[IPv6:2001:db8::1]>", 250)
            await client.expect("RCPT TO:<e@[999.1.1.1]>", 501)
            await client.expect("DATA", 354)
            await client.expect(".", 250)
    [message] = smtp_server.messages
    assert message.mail_from == '"a@evil.example x"@internal.example'
    assert message.rcpt_tos == ("Postmaster", "c@[192.0.2.1]", "d@[IPv6:2001:db8::1]")


async def test_parameters(smtp_server: TestServer) -> None:
    with trio.fail_after(10):
        async with await RawClient.connect(smtp_server) as client:
            await ehlo(client)
            for line, code in [
                ("MAIL FROM:<a@example.org> FOO=bar", 555),
                ("MAIL FROM:<a@example.org> SIZE", 501),
                ("MAIL FROM:<a@example.org> SIZE=12x", 501),
                ("MAIL FROM:<a@example.org> BODY=9BIT", 501),
                ("MAIL FROM:<a@example.org> RET=ALL", 501),
                ("MAIL FROM:<a@example.org> ENVID=a+zz", 501),
                ("MAIL FROM:<a@example.org> ENVID=a=b", 501),
                ("MAIL FROM:<a@example.org> SMTPUTF8=yes", 501),
                ("MAIL FROM:<a@example.org> REQUIRETLS", 555),
                ("MAIL FROM:<a@example.org> SIZE=1 SIZE=2", 501),
            ]:
                await client.expect(line, code)
            await client.expect(
                "MAIL FROM:<a@example.org> size=42 BODY=8bitmime RET=HDRS ENVID=QQ+2B1", 250
            )
            for line, code in [
                ("RCPT TO:<b@example.org> NOTIFY=NEVER,SUCCESS", 501),
                ("RCPT TO:<b@example.org> NOTIFY=SOMETIMES", 501),
                ("RCPT TO:<b@example.org> ORCPT=rfc822;b+example.org", 501),
                ("RCPT TO:<b@example.org> ORCPT=nonsense", 501),
                ("RCPT TO:<b@example.org> SIZE=1", 555),
            ]:
                await client.expect(line, code)
            await client.expect(
                "RCPT TO:<b@example.org> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;b@example.org", 250
            )
            await client.expect("RCPT TO:<c@example.org> NOTIFY=NEVER", 250)
            await client.expect("DATA", 354)
            await client.expect(".", 250)
    [message] = smtp_server.messages
    assert message.mail_options == ("SIZE=42", "BODY=8bitmime", "RET=HDRS", "ENVID=QQ+2B1")
    assert message.rcpt_options == (
        ("NOTIFY=SUCCESS,FAILURE", "ORCPT=rfc822;b@example.org"),
        ("NOTIFY=NEVER",),
    )


async def test_smtputf8_addresses(smtp_server: TestServer) -> None:
    with trio.fail_after(10):
        async with await RawClient.connect(smtp_server) as client:
            await ehlo(client)
            await client.expect("MAIL FROM:<j\u00f6rg@example.org>".encode(), 553)
            await client.expect(b"MAIL FROM:<\xff@example.org>", 501)
            await client.expect("MAIL FROM:<a@example.org>", 250)
            await client.expect("RCPT TO:<\u00fc@example.org>".encode(), 553)
            await client.expect("RSET", 250)
            await client.expect("MAIL FROM:<j\u00f6rg@example.org> SMTPUTF8".encode(), 250)
            await client.expect(
                "RCPT TO:<\u00fc@\u4f8b\u3048.jp> ORCPT=utf-8;\u00fc@x".encode(), 250
            )
            await client.expect("DATA", 354)
            await client.expect(".", 250)
    [message] = smtp_server.messages
    assert message.smtputf8
    assert message.rcpt_tos == ("\u00fc@\u4f8b\u3048.jp",)


async def test_require_tls_and_requiretls(smtp_server_factory: SMTPServerFactory) -> None:
    with trio.fail_after(10):
        server = await smtp_server_factory(
            tls="starttls",
            require_tls=True,
            extensions=["PIPELINING", "REQUIRETLS", "AUTH"],
        )
        async with await RawClient.connect(server) as client:
            await ehlo(client)
            await client.expect("MAIL FROM:<a@example.org>", 530)
            await client.expect("AUTH PLAIN", 530)
            await client.expect("STARTTLS", 220)
            await client.start_tls(server.client_ssl_context(), "127.0.0.1")
            await client.expect("EHLO x", 250)
            await client.expect("MAIL FROM:<a@example.org> REQUIRETLS", 250)


async def test_starttls_refusals(smtp_server_factory: SMTPServerFactory) -> None:
    with trio.fail_after(10):
        liar = await smtp_server_factory(extensions=["STARTTLS"])
        async with await RawClient.connect(liar) as client:
            await client.expect(None, 220)
            await client.expect("STARTTLS", 503)  # EHLO first
            assert b"STARTTLS" in b"".join(await client.expect("EHLO x", 250))
            await client.expect("STARTTLS now", 501)
            await client.expect("STARTTLS", 454)  # advertised, but not really there
        plain = await smtp_server_factory()
        async with await RawClient.connect(plain) as client:
            await ehlo(client)
            await client.expect("STARTTLS", 502)


# ---- LMTP ------------------------------------------------------------------


async def test_lmtp_greeting_commands(smtp_server_factory: SMTPServerFactory) -> None:
    with trio.fail_after(10):
        server = await smtp_server_factory(lmtp=True)
        async with await RawClient.connect(server) as client:
            [banner] = await client.expect(None, 220)
            assert b"LMTP" in banner
            await client.expect("EHLO x", 500)
            await client.expect("HELO x", 500)
            assert b"PIPELINING" in await client.expect("LHLO x", 250)


async def test_lmtp_drop_between_recipient_replies(
    smtp_server_factory: SMTPServerFactory,
) -> None:
    with trio.fail_after(10):
        server = await smtp_server_factory(lmtp=True, faults=drop_at("data_end", skip=1))
        async with await RawClient.connect(server) as client:
            await client.expect(None, 220)
            await client.expect("LHLO x", 250)
            await client.send(
                b"MAIL FROM:<a@example.org>\r\nRCPT TO:<r1@example.org>\r\n"
                b"RCPT TO:<r2@example.org>\r\nRCPT TO:<r3@example.org>\r\nDATA\r\n"
            )
            for code in (250, 250, 250, 250, 354):
                await client.expect(None, code)
            await client.send(b"hi\r\n.\r\n")
            [text] = await client.expect(None, 250)
            assert text.startswith(b"2.1.5 <r1@example.org>")
            assert await client.at_eof()
    [message] = server.messages
    assert not message.acknowledged
    assert message.rcpt_tos == ("r1@example.org", "r2@example.org", "r3@example.org")


# ---- faults ----------------------------------------------------------------


async def test_fault_points_seen_by_a_policy(smtp_server: TestServer) -> None:
    seen: list[FaultPoint] = []

    def policy(point: FaultPoint) -> None:
        seen.append(point)

    smtp_server.faults = policy
    with trio.fail_after(10):
        async with await RawClient.connect(smtp_server) as client:
            await ehlo(client)
            await client.expect("AUTH PLAIN " + b64(b"\0u\0p").decode(), 535)
            await client.expect("MAIL FROM:<a@example.org>", 250)
            await client.expect("RCPT TO:<b@example.org>", 250)
            await client.raw(b"BDAT 2\r\nhi", 250)
            await client.expect(b"BDAT 0 LAST", 250)
            await client.expect("QUIT", 221)
    assert [(p.stage, p.verb, p.message_index) for p in seen] == [
        ("connect", None, 0),
        ("command", "EHLO", 0),
        ("command", "AUTH", 0),
        ("command", "MAIL", 0),
        ("command", "RCPT", 0),
        ("command", "BDAT", 0),
        ("bdat", "BDAT", 0),
        ("command", "BDAT", 0),
        ("data_end", "BDAT", 0),
        ("command", "QUIT", 1),
    ]
    assert seen[2].line == b"AUTH PLAIN ***"
    assert seen[-2].line == b"BDAT 0 LAST"
    assert {p.connection for p in seen} == {0}


async def test_fault_actions(smtp_server: TestServer) -> None:
    with trio.fail_after(10):
        smtp_server.faults = reply_override(
            None, b"220-multi\r\n220 line greeting\r\n", stage="connect"
        )
        async with await RawClient.connect(smtp_server) as client:
            assert await client.expect(None, 220) == [b"multi", b"line greeting"]
            smtp_server.faults = reply_override("EHLO", "250-fake.example\n250 AUTH PLAIN")
            assert await client.expect("EHLO x", 250) == [b"fake.example", b"AUTH PLAIN"]
            await client.expect("MAIL FROM:<a@example.org>", 503)  # the EHLO did not happen
            smtp_server.faults = reply_override("BDAT", "250 fine, thanks", times=None)
            await client.raw(b"BDAT 4\r\nNOOP", 250)
            await client.expect("EHLO x", 250)
            smtp_server.faults = reply_override("NOOP", "421 4.4.2 Timeout")
            await client.expect("NOOP", 421)
            assert await client.at_eof()

        smtp_server.faults = drop_at("connect")
        async with await RawClient.connect(smtp_server) as client:
            assert await client.at_eof()

        smtp_server.faults = reply_override(None, "554 5.7.1 Go away", stage="connect")
        async with await RawClient.connect(smtp_server) as client:
            await client.expect(None, 554)
            await client.expect("EHLO x", 503)
            await client.expect("QUIT", 221)
            assert await client.at_eof()


async def test_performed_override_tampers_with_ehlo(smtp_server: TestServer) -> None:
    smtp_server.faults = reply_override(
        "EHLO", "250-fake.example\n250-SIZE 1\n250 AUTH PLAIN", perform=True
    )
    with trio.fail_after(10):
        async with await RawClient.connect(smtp_server) as client:
            await client.expect(None, 220)
            assert await client.expect("EHLO x", 250) == [b"fake.example", b"SIZE 1", b"AUTH PLAIN"]
            # The EHLO still happened: the real limits apply.
            await client.expect("MAIL FROM:<a@example.org> SIZE=1000", 250)


async def test_performed_override_injects_after_starttls(
    smtp_server_factory: SMTPServerFactory,
) -> None:
    # SECURITY A.1: a man in the middle appends lines to the 220; the
    # handshake still follows, so a client that reads them can be caught.
    injected = b"220 Go ahead\r\n250-evil.example\r\n250 AUTH LOGIN\r\n"
    server = await smtp_server_factory(
        tls="starttls", faults=reply_override("STARTTLS", injected, perform=True)
    )
    with trio.fail_after(10):
        async with await RawClient.connect(server) as client:
            await ehlo(client)
            await client.expect("STARTTLS", 220)
            assert await client.expect(None, 250) == [b"evil.example", b"AUTH LOGIN"]
            await client.start_tls(server.client_ssl_context(), "localhost")
            assert b"AUTH PLAIN LOGIN XOAUTH2 OAUTHBEARER" in await client.expect("EHLO x", 250)
    assert server.transcripts[0][-3] == ("S", injected)


async def test_combined_policies(smtp_server: TestServer) -> None:
    smtp_server.faults = combine(
        reply_override("NOOP", "250 first", times=2),
        reply_override("NOOP", "250 second", skip=1),
        drop_at("command", "RSET"),
    )
    with trio.fail_after(10):
        async with await RawClient.connect(smtp_server) as client:
            await ehlo(client)
            assert await client.expect("NOOP", 250) == [b"first"]
            assert await client.expect("NOOP", 250) == [b"first"]
            # The second policy saw (and skipped) only the third NOOP.
            assert await client.expect("NOOP", 250) == [b"2.0.0 Ok"]
            assert await client.expect("NOOP", 250) == [b"second"]
            assert await client.expect("NOOP", 250) == [b"2.0.0 Ok"]
            await client.send(b"RSET\r\n")
            assert await client.at_eof()


async def test_lmtp_bdat_one_reply_per_recipient(smtp_server_factory: SMTPServerFactory) -> None:
    server = await smtp_server_factory(
        lmtp=True,
        faults=reply_override(
            None, "550 5.1.1 No such user", stage="data_end", recipient="R2@example.org"
        ),
    )
    with trio.fail_after(10):
        async with await RawClient.connect(server) as client:
            await client.expect(None, 220)
            await client.expect("LHLO x", 250)
            await client.send(
                b"MAIL FROM:<a@example.org>\r\nRCPT TO:<r1@example.org>\r\n"
                b"RCPT TO:<r2@example.org>\r\nBDAT 3 LAST\r\nabc"
            )
            for code in (250, 250, 250, 250, 550):
                await client.expect(None, code)
    assert server.reply_batches[0][-1] == 5
    [message] = server.messages
    assert message.rcpt_tos == ("r1@example.org",)
    assert (message.transfer, message.data) == ("BDAT", b"abc")


async def test_fault_on_bdat_chunk(smtp_server: TestServer) -> None:
    smtp_server.faults = reply_override("BDAT", "451 4.3.0 Chunk lost", stage="bdat")
    with trio.fail_after(10):
        async with await RawClient.connect(smtp_server) as client:
            await ehlo(client)
            await client.expect("MAIL FROM:<a@example.org>", 250)
            await client.expect("RCPT TO:<b@example.org>", 250)
            await client.raw(b"BDAT 2\r\nab", 451)
            await client.raw(b"BDAT 2 LAST\r\ncd", 503)
    assert smtp_server.messages == []


async def test_delay_with_autojump_clock_over_memory_streams(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with open_test_server(
        faults=delay("MAIL", 120),
    ) as server:
        with trio.fail_after(1000):  # virtual seconds
            client_stream, server_stream = trio.testing.memory_stream_pair()
            async with trio.open_nursery() as nursery:
                nursery.start_soon(server.serve_stream, server_stream)
                client = RawClient(client_stream)
                await ehlo(client)
                start = trio.current_time()
                await client.expect("MAIL FROM:<a@example.org>", 250)
                assert trio.current_time() - start >= 120
                server.faults = lambda point: DelayThen(30, Reply("450 4.7.1 Later"))
                await client.expect("RCPT TO:<b@example.org>", 450)
                assert trio.current_time() - start >= 150
                server.faults = lambda point: DelayThen(5, Drop())
                await client.send(b"NOOP\r\n")
                assert await client.at_eof()
    assert server.connections == 1
    assert server.reply_batches[0] == [1, 1, 1, 1]


async def test_delay_action_then_normal_reply(smtp_server: TestServer) -> None:
    smtp_server.faults = lambda point: Delay(0.01) if point.verb == "NOOP" else None
    with trio.fail_after(10):
        async with await RawClient.connect(smtp_server) as client:
            await ehlo(client)
            await client.expect("NOOP", 250)
