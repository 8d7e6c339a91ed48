"""Tests for the sans-IO session: pairing, pipelining, states, hostile servers."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Iterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trio_smtp._core import (
    NEED_DATA,
    Auth,
    AuthMechanism,
    AuthResponse,
    ClientSession,
    ConnectionClosed,
    Data,
    Ehlo,
    ExtensionUnavailable,
    Helo,
    InvalidInputError,
    Lhlo,
    LocalProtocolError,
    Mail,
    MailParams,
    Noop,
    Quit,
    Rcpt,
    Response,
    Rset,
    SessionState,
    SMTPConnectionError,
    SmtpOp,
    SMTPProtocolError,
    StartTLS,
    UnsupportedMechanism,
    Vrfy,
    exchange_for,
)

EHLO_FULL = (
    b"250-mx.example\r\n250-PIPELINING\r\n250-CHUNKING\r\n250-BINARYMIME\r\n250-8BITMIME\r\n"
    b"250-SMTPUTF8\r\n250-DSN\r\n250-SIZE 1000000\r\n250-STARTTLS\r\n"
    b"250-AUTH PLAIN LOGIN\r\n250 ENHANCEDSTATUSCODES\r\n"
)
EHLO_PLAIN = b"250-mx.example\r\n250 8BITMIME\r\n"


def events(session: ClientSession) -> list[Response | ConnectionClosed]:
    """Every event available now."""
    found: list[Response | ConnectionClosed] = []
    while True:
        event = session.next_event()
        if event is NEED_DATA:
            return found
        assert isinstance(event, (Response, ConnectionClosed))
        found.append(event)
        if isinstance(event, ConnectionClosed):
            return found


def answer(session: ClientSession, data: bytes) -> list[Response | ConnectionClosed]:
    session.receive_data(data)
    return events(session)


def ready(ehlo: bytes = EHLO_FULL, *, lmtp: bool = False) -> ClientSession:
    session = ClientSession(lmtp=lmtp)
    (greeting,) = answer(session, b"220 mx.example ESMTP\r\n")
    assert isinstance(greeting, Response) and greeting.op is SmtpOp.GREETING
    session.send(Lhlo("client.example") if lmtp else Ehlo("client.example"))
    answer(session, ehlo)
    assert session.state is SessionState.READY
    return session


def codes(found: list[Response | ConnectionClosed]) -> list[tuple[SmtpOp, int]]:
    return [(event.op, event.reply.code) for event in found if isinstance(event, Response)]


# -- the ordinary flows -------------------------------------------------------


def test_greeting_then_ehlo_learns_capabilities() -> None:
    session = ClientSession()
    assert session.state is SessionState.GREETING
    with pytest.raises(LocalProtocolError, match="greeting"):
        session.send(Ehlo("client.example"))
    assert answer(session, b"220 hi\r\n")[0].op is SmtpOp.GREETING  # type: ignore[union-attr]
    assert session.state is SessionState.HELLO
    assert session.send(Ehlo("client.example")) == b"EHLO client.example\r\n"
    (response,) = answer(session, EHLO_FULL)
    assert isinstance(response, Response) and response.op is SmtpOp.EHLO
    caps = session.capabilities
    assert caps is not None and caps.pipelining and caps.chunking and caps.size == 1000000
    assert caps.auth == frozenset({"PLAIN", "LOGIN"})


def test_pipelined_transaction_is_one_flight_golden() -> None:
    session = ready()
    flight = (
        session.send(Mail("a@example.com", MailParams(body="8BITMIME", size=42)))
        + session.send(Rcpt("b@example.org"))
        + session.send(Rcpt("c@example.org"))
        + session.send(Data())
    )
    assert flight == (
        b"MAIL FROM:<a@example.com> BODY=8BITMIME SIZE=42\r\n"
        b"RCPT TO:<b@example.org>\r\n"
        b"RCPT TO:<c@example.org>\r\n"
        b"DATA\r\n"
    )
    assert session.awaiting == (SmtpOp.MAIL, SmtpOp.RCPT, SmtpOp.RCPT, SmtpOp.DATA)
    found = answer(session, b"250 2.1.0 ok\r\n250 2.1.5 ok\r\n550 5.1.1 no such user\r\n354 go\r\n")
    assert codes(found) == [
        (SmtpOp.MAIL, 250),
        (SmtpOp.RCPT, 250),
        (SmtpOp.RCPT, 550),
        (SmtpOp.DATA, 354),
    ]
    rcpt_responses = [event for event in found if isinstance(event, Response)][1:3]
    assert [str(event.recipient) for event in rcpt_responses] == ["b@example.org", "c@example.org"]
    assert [str(path) for path in session.accepted_recipients] == ["b@example.org"]
    assert session.state is SessionState.DATA
    wire = session.send_body(b"Subject: x\n\n.dot\n") + session.end_body()
    assert wire == b"Subject: x\r\n\r\n..dot\r\n.\r\n"
    assert codes(answer(session, b"250 2.0.0 Ok: queued as ABC\r\n")) == [(SmtpOp.DATA_END, 250)]
    assert session.state is SessionState.READY


def test_next_transaction_pipelined_behind_end_of_data() -> None:
    session = ready()
    session.send(Mail("a@example.com"))
    session.send(Rcpt("b@example.org"))
    session.send(Data())
    answer(session, b"250 ok\r\n250 ok\r\n354 go\r\n")
    flight = session.send_body(b"one\r\n") + session.end_body()
    # RFC 2920 3.1: the next transaction may follow the end of data at once.
    flight += session.send(Mail("a@example.com")) + session.send(Rcpt("d@example.org"))
    flight += session.send(Data())
    assert flight == (
        b"one\r\n.\r\nMAIL FROM:<a@example.com>\r\nRCPT TO:<d@example.org>\r\nDATA\r\n"
    )
    found = answer(session, b"250 queued\r\n250 ok\r\n250 ok\r\n354 go\r\n")
    assert codes(found) == [
        (SmtpOp.DATA_END, 250),
        (SmtpOp.MAIL, 250),
        (SmtpOp.RCPT, 250),
        (SmtpOp.DATA, 354),
    ]
    assert [str(path) for path in session.accepted_recipients] == ["d@example.org"]
    assert session.state is SessionState.DATA


def test_without_pipelining_one_command_at_a_time() -> None:
    session = ready(EHLO_PLAIN)
    session.send(Mail("a@example.com"))
    with pytest.raises(LocalProtocolError, match="PIPELINING"):
        session.send(Rcpt("b@example.org"))
    answer(session, b"250 ok\r\n")
    session.send(Rcpt("b@example.org"))
    answer(session, b"250 ok\r\n")
    session.send(Data())
    answer(session, b"354 go\r\n")
    session.end_body()
    with pytest.raises(LocalProtocolError, match="PIPELINING"):
        session.send(Mail("a@example.com"))


def test_mail_refused_rest_of_flight_fails_and_state_is_ready() -> None:
    session = ready()
    session.send(Mail("a@example.com"))
    session.send(Rcpt("b@example.org"))
    session.send(Data())
    found = answer(session, b"550 5.7.1 no\r\n503 5.5.1 need MAIL\r\n503 5.5.1 need RCPT\r\n")
    assert codes(found) == [(SmtpOp.MAIL, 550), (SmtpOp.RCPT, 503), (SmtpOp.DATA, 503)]
    assert session.state is SessionState.READY
    session.send(Mail("a@example.com"))  # a fresh transaction is legal


def test_all_rcpt_refused_but_data_accepted_allows_bare_end() -> None:
    # RFC 2920 3.1: if DATA is accepted anyway, the client sends a lone dot.
    session = ready()
    session.send(Mail("a@example.com"))
    session.send(Rcpt("b@example.org"))
    session.send(Data())
    answer(session, b"250 ok\r\n550 no\r\n354 go\r\n")
    assert session.end_body() == b".\r\n"
    assert codes(answer(session, b"554 no valid recipients\r\n")) == [(SmtpOp.DATA_END, 554)]
    assert session.state is SessionState.READY


def test_data_refused_needs_rset() -> None:
    session = ready()
    session.send(Mail("a@example.com"))
    session.send(Rcpt("b@example.org"))
    session.send(Data())
    answer(session, b"250 ok\r\n250 ok\r\n451 try later\r\n")
    assert session.state is SessionState.TRANSACTION
    with pytest.raises(LocalProtocolError):
        session.send(Mail("a@example.com"))
    session.send(Rset())
    answer(session, b"250 reset\r\n")
    assert session.state is SessionState.READY


def test_bdat_chunks_pipelined() -> None:
    session = ready()
    flight = session.send(Mail("a@example.com", MailParams(body="BINARYMIME")))
    flight += session.send(Rcpt("b@example.org"))
    flight += session.send_chunk(b"Subject: x\r\n\r\n", last=False)
    flight += session.send_chunk(b"\x00binary\r\n", last=True)
    assert flight == (
        b"MAIL FROM:<a@example.com> BODY=BINARYMIME\r\nRCPT TO:<b@example.org>\r\n"
        b"BDAT 14\r\nSubject: x\r\n\r\nBDAT 9 LAST\r\n\x00binary\r\n"
    )
    found = answer(session, b"250 ok\r\n250 ok\r\n250 14 octets\r\n250 queued\r\n")
    assert codes(found) == [
        (SmtpOp.MAIL, 250),
        (SmtpOp.RCPT, 250),
        (SmtpOp.BDAT, 250),
        (SmtpOp.BDAT, 250),
    ]
    assert session.state is SessionState.READY


def test_bdat_needs_chunking() -> None:
    session = ready(b"250-mx\r\n250 PIPELINING\r\n")
    session.send(Mail("a@example.com"))
    session.send(Rcpt("b@example.org"))
    with pytest.raises(ExtensionUnavailable) as caught:
        session.send_chunk(b"x", last=True)
    assert caught.value.name == "CHUNKING"


def test_extensions_are_checked_before_anything_is_produced() -> None:
    session = ready(EHLO_PLAIN)
    with pytest.raises(ExtensionUnavailable) as caught:
        session.send(Mail("a@example.com", MailParams(smtputf8=True)))
    assert caught.value.name == "SMTPUTF8"
    assert session.awaiting == ()
    session.send(Mail("a@example.com"))
    answer(session, b"250 ok\r\n")
    with pytest.raises(InvalidInputError):
        session.send(Rcpt("пользователь@example.org", smtputf8=True))


def test_helo_fallback_has_no_extensions() -> None:
    session = ClientSession()
    answer(session, b"220 old server\r\n")
    session.send(Ehlo("client.example"))
    assert codes(answer(session, b"502 5.5.2 what?\r\n")) == [(SmtpOp.EHLO, 502)]
    assert session.state is SessionState.HELLO
    session.send(Helo("client.example"))
    answer(session, b"250 hello\r\n")
    assert session.state is SessionState.READY
    caps = session.capabilities
    assert caps is not None and not caps.esmtp and not caps.pipelining
    with pytest.raises(ExtensionUnavailable):
        session.send(Mail("a@example.com", MailParams(body="8BITMIME")))


def test_auth_exchange_and_no_second_auth() -> None:
    session = ready()
    session.send(Auth("PLAIN"))
    assert codes(answer(session, b"334 \r\n")) == [(SmtpOp.AUTH, 334)]
    assert session.state is SessionState.AUTH
    with pytest.raises(LocalProtocolError, match="AUTH exchange"):
        session.send(Noop())
    assert session.send(AuthResponse(b"\0u\0p")) == b"AHUAcA==\r\n"
    answer(session, b"235 2.7.0 ok\r\n")
    assert session.is_authenticated and session.state is SessionState.READY
    with pytest.raises(LocalProtocolError, match="already authenticated"):
        session.send(Auth("PLAIN", b"\0u\0p"))


def test_auth_refused_and_mechanism_checks() -> None:
    session = ready()
    with pytest.raises(UnsupportedMechanism):
        session.send(Auth("CRAM-MD5"))
    with pytest.raises(LocalProtocolError, match="without a 334"):
        session.send(AuthResponse(b"x"))
    session.send(Auth("LOGIN"))
    answer(session, b"334 VXNlcm5hbWU6\r\n")
    session.send(AuthResponse(None))
    assert codes(answer(session, b"501 5.7.0 cancelled\r\n")) == [(SmtpOp.AUTH, 501)]
    assert not session.is_authenticated and session.state is SessionState.READY
    plain = ready(EHLO_PLAIN)
    with pytest.raises(ExtensionUnavailable):
        plain.send(Auth("PLAIN"))


def test_quit_closes() -> None:
    session = ready()
    session.send(Quit())
    assert codes(answer(session, b"221 bye\r\n")) == [(SmtpOp.QUIT, 221)]
    assert session.state is SessionState.CLOSED
    session.receive_data(b"")
    assert events(session) == [ConnectionClosed(())]
    with pytest.raises(SMTPConnectionError):
        session.send(Noop())


def test_idle_close_is_clean_but_mid_transaction_close_is_broken() -> None:
    idle = ready()
    idle.receive_data(b"")
    assert events(idle) == [ConnectionClosed(())]
    assert idle.state is SessionState.CLOSED
    busy = ready()
    busy.send(Mail("a@example.com"))
    busy.receive_data(b"")
    assert events(busy) == [ConnectionClosed((SmtpOp.MAIL,))]
    assert busy.state is SessionState.BROKEN


def test_lost_after_end_of_data_reports_it_unanswered() -> None:
    session = ready()
    session.send(Mail("a@example.com"))
    session.send(Rcpt("b@example.org"))
    session.send(Data())
    answer(session, b"250 ok\r\n250 ok\r\n354 go\r\n")
    session.end_body()
    session.receive_data(b"")
    assert events(session) == [ConnectionClosed((SmtpOp.DATA_END,))]
    assert session.state is SessionState.BROKEN


def test_replies_before_a_violation_are_delivered_first() -> None:
    session = ready()
    session.send(Mail("a@example.com"))
    session.send(Rcpt("b@example.org"))
    session.send(Data())
    answer(session, b"250 ok\r\n250 ok\r\n354 go\r\n")
    session.end_body()
    session.receive_data(b"250 queued\r\ngarbage\r\n")
    event = session.next_event()
    assert isinstance(event, Response) and event.op is SmtpOp.DATA_END
    with pytest.raises(SMTPProtocolError):
        session.next_event()
    assert session.state is SessionState.BROKEN
    with pytest.raises(SMTPConnectionError):
        session.send(Noop())


def test_rejected_input_records_nothing() -> None:
    session = ready()
    with pytest.raises(InvalidInputError):
        session.send(Mail("a@example.com\r\nRCPT TO:<evil@example.org>"))
    assert session.awaiting == ()
    assert session.send(Noop()) == b"NOOP\r\n"


# -- SECURITY.md -----------------------------------------------------------


@pytest.mark.parametrize(
    "injected",
    [
        b"220 Go ahead\r\n250-x\r\n250 AUTH LOGIN\r\n",
        b"220 Go ahead\r\n250-partial",
        b"220 Go ahead\r\n\r\n",
    ],
)
def test_sec_01_starttls_response_injection(injected: bytes) -> None:
    session = ready()
    session.send(StartTLS())
    session.receive_data(injected)
    with pytest.raises(SMTPProtocolError, match="after 220 to STARTTLS"):
        events(session)
    assert session.state is SessionState.BROKEN


def test_sec_01_injection_in_a_later_segment_before_handshake() -> None:
    session = ready()
    session.send(StartTLS())
    assert codes(answer(session, b"220 Go ahead\r\n")) == [(SmtpOp.STARTTLS, 220)]
    session.receive_data(b"250 AUTH PLAIN\r\n")
    with pytest.raises(SMTPProtocolError, match="after 220 to STARTTLS"):
        session.next_event()
    with pytest.raises(SMTPConnectionError):
        session.tls_established()


def test_sec_02_nothing_written_between_starttls_and_handshake() -> None:
    session = ready()
    session.send(StartTLS())
    for command in (Ehlo("client.example"), Noop(), Mail("a@example.com"), Quit()):
        with pytest.raises(LocalProtocolError):
            session.send(command)
    answer(session, b"220 go\r\n")
    assert session.state is SessionState.STARTTLS
    for command in (Ehlo("client.example"), Noop(), Quit()):
        with pytest.raises(LocalProtocolError):
            session.send(command)
    session.tls_established()
    assert session.state is SessionState.HELLO


def test_sec_03_starttls_not_advertised() -> None:
    session = ready(EHLO_PLAIN)
    with pytest.raises(ExtensionUnavailable) as caught:
        session.send(StartTLS())
    assert caught.value.name == "STARTTLS"


@pytest.mark.parametrize("code", [454, 501, 502, 500])
def test_sec_04_starttls_refused_stays_plaintext(code: int) -> None:
    session = ready()
    session.send(StartTLS())
    assert codes(answer(session, f"{code} no\r\n".encode())) == [(SmtpOp.STARTTLS, code)]
    assert session.state is SessionState.READY and not session.tls_active
    with pytest.raises(LocalProtocolError):
        session.tls_established()


@pytest.mark.parametrize("reply", [b"354 go ahead\r\n", b"221 bye\r\n", b"250 ok\r\n"])
def test_sec_04_starttls_answered_oddly_is_a_protocol_error(reply: bytes) -> None:
    session = ready()
    session.send(StartTLS())
    session.receive_data(reply)
    with pytest.raises(SMTPProtocolError):
        session.next_event()


def test_sec_04_starttls_answered_421_closes() -> None:
    session = ready()
    session.send(StartTLS())
    answer(session, b"421 4.3.2 shutting down\r\n")
    assert session.state is SessionState.CLOSED
    with pytest.raises(SMTPConnectionError):
        session.tls_established()


def test_sec_07_capabilities_from_before_tls_are_discarded() -> None:
    tampered = b"250-mx\r\n250-STARTTLS\r\n250-AUTH PLAIN LOGIN\r\n250-SIZE 1\r\n250 CHUNKING\r\n"
    session = ready(tampered)
    session.send(StartTLS())
    answer(session, b"220 go\r\n")
    session.tls_established()
    assert session.capabilities is None
    assert session.tls_active
    with pytest.raises(LocalProtocolError):
        session.send(Mail("a@example.com"))
    session.send(Ehlo("client.example"))
    answer(session, b"250-mx\r\n250-STARTTLS\r\n250 8BITMIME\r\n")
    caps = session.capabilities
    assert caps is not None and caps.auth == frozenset() and caps.size is None
    assert not caps.chunking
    with pytest.raises(LocalProtocolError, match="never sent twice"):
        session.send(StartTLS())
    with pytest.raises(ExtensionUnavailable):
        session.send(Auth("PLAIN"))


def test_sec_16_no_pipelining_past_ehlo_or_data() -> None:
    session = ready()
    session.send(Ehlo("client.example"))
    with pytest.raises(LocalProtocolError, match="before the reply to EHLO"):
        session.send(Mail("a@example.com"))
    answer(session, EHLO_FULL)
    session.send(Mail("a@example.com"))
    session.send(Rcpt("b@example.org"))
    session.send(Data())
    with pytest.raises(LocalProtocolError, match="before the reply to DATA"):
        session.send(Rcpt("c@example.org"))
    with pytest.raises(LocalProtocolError, match="354"):
        session.send_body(b"too early\r\n")
    with pytest.raises(LocalProtocolError, match="354"):
        session.end_body()


@pytest.mark.parametrize(
    ("send", "reply"),
    [
        (lambda s: s.send(Ehlo("client.example")), b"354 go\r\n"),
        (lambda s: s.send(Mail("a@example.com")), b"334 VXNlcg==\r\n"),
        (lambda s: s.send(Noop()), b"354 go\r\n"),
        (lambda s: s.send(Auth("PLAIN", b"\0u\0p")), b"250 ok\r\n"),
        (lambda s: s.send(Vrfy("postmaster")), b"334 \r\n"),
    ],
)
def test_sec_28_unexpected_reply_class(
    send: Callable[[ClientSession], bytes], reply: bytes
) -> None:
    session = ready()
    send(session)
    session.receive_data(reply)
    with pytest.raises(SMTPProtocolError, match="unexpected"):
        session.next_event()
    assert session.state is SessionState.BROKEN


def test_sec_28_reply_to_data_must_be_354() -> None:
    session = ready()
    session.send(Mail("a@example.com"))
    session.send(Rcpt("b@example.org"))
    session.send(Data())
    session.receive_data(b"250 ok\r\n250 ok\r\n250 ok\r\n")
    with pytest.raises(SMTPProtocolError, match="DATA"):
        events(session)


def test_sec_28_data_with_no_command_outstanding() -> None:
    session = ready()
    session.receive_data(b"250 surprise\r\n")
    with pytest.raises(SMTPProtocolError, match="no command outstanding"):
        session.next_event()


def test_sec_29_554_greeting_allows_only_quit() -> None:
    session = ClientSession()
    assert codes(answer(session, b"554 5.7.1 go away\r\n")) == [(SmtpOp.GREETING, 554)]
    assert session.state is SessionState.GREETING
    with pytest.raises(LocalProtocolError, match="only QUIT"):
        session.send(Ehlo("client.example"))
    assert session.send(Quit()) == b"QUIT\r\n"
    answer(session, b"221 bye\r\n")
    assert session.state is SessionState.CLOSED


def test_sec_29_421_at_any_point_closes() -> None:
    greeting = ClientSession()
    answer(greeting, b"421 4.3.2 busy\r\n")
    assert greeting.state is SessionState.CLOSED
    mid = ready()
    mid.send(Mail("a@example.com"))
    mid.send(Rcpt("b@example.org"))
    assert codes(answer(mid, b"421 4.4.2 timeout\r\n")) == [(SmtpOp.MAIL, 421)]
    assert mid.state is SessionState.CLOSED
    with pytest.raises(SMTPConnectionError):
        mid.send(Noop())
    unprompted = ready()
    (closed,) = answer(unprompted, b"421 4.4.2 idle timeout\r\n")
    assert isinstance(closed, ConnectionClosed) and closed.unanswered == ()
    assert closed.reply is not None and closed.reply.code == 421
    assert unprompted.state is SessionState.CLOSED


def lmtp_transaction(session: ClientSession, rcpts: list[str]) -> None:
    session.send(Mail("a@example.com"))
    for rcpt in rcpts:
        session.send(Rcpt(rcpt))
    session.send(Data())


def test_sec_31_lmtp_one_reply_per_accepted_recipient_in_order() -> None:
    session = ready(b"250-lmtp\r\n250-PIPELINING\r\n250 ENHANCEDSTATUSCODES\r\n", lmtp=True)
    lmtp_transaction(session, ["a@x.example", "b@x.example", "c@x.example"])
    answer(session, b"250 ok\r\n250 ok\r\n550 unknown\r\n250 ok\r\n354 go\r\n")
    session.end_body()
    found = answer(session, b"250 2.0.0 a ok\r\n452 4.2.2 c over quota\r\n")
    assert [(str(event.recipient), event.reply.code) for event in found] == [  # type: ignore[union-attr]
        ("a@x.example", 250),
        ("c@x.example", 452),
    ]
    assert session.state is SessionState.READY


def test_sec_31_lmtp_too_few_replies_then_close() -> None:
    session = ready(b"250-lmtp\r\n250 PIPELINING\r\n", lmtp=True)
    lmtp_transaction(session, ["a@x.example", "b@x.example"])
    answer(session, b"250 ok\r\n250 ok\r\n250 ok\r\n354 go\r\n")
    session.end_body()
    session.receive_data(b"250 a ok\r\n")
    session.receive_data(b"")
    found = events(session)
    assert isinstance(found[0], Response) and str(found[0].recipient) == "a@x.example"
    assert found[1] == ConnectionClosed((SmtpOp.DATA_END,))
    assert session.state is SessionState.BROKEN


def test_sec_31_lmtp_extra_replies_are_a_protocol_error() -> None:
    session = ready(b"250-lmtp\r\n250 PIPELINING\r\n", lmtp=True)
    lmtp_transaction(session, ["a@x.example"])
    answer(session, b"250 ok\r\n250 ok\r\n354 go\r\n")
    session.end_body()
    session.receive_data(b"250 a ok\r\n250 extra\r\n")
    assert session.next_event() != NEED_DATA
    with pytest.raises(SMTPProtocolError, match="no command outstanding"):
        session.next_event()


def test_sec_31_lmtp_bdat_fanout_when_rcpt_replies_still_in_flight() -> None:
    session = ready(b"250-lmtp\r\n250-PIPELINING\r\n250 CHUNKING\r\n", lmtp=True)
    session.send(Mail("a@example.com"))
    session.send(Rcpt("a@x.example"))
    session.send(Rcpt("b@x.example"))
    session.send_chunk(b"Subject: x\r\n\r\nhi\r\n", last=True)
    # The next transaction is pipelined behind; it must not disturb the fan-out.
    session.send(Mail("z@example.com"))
    found = answer(session, b"250 ok\r\n250 ok\r\n250 ok\r\n250 a\r\n451 b\r\n250 next\r\n")
    assert [(event.op, str(event.recipient), event.reply.code) for event in found] == [  # type: ignore[union-attr]
        (SmtpOp.MAIL, "None", 250),
        (SmtpOp.RCPT, "a@x.example", 250),
        (SmtpOp.RCPT, "b@x.example", 250),
        (SmtpOp.BDAT, "a@x.example", 250),
        (SmtpOp.BDAT, "b@x.example", 451),
        (SmtpOp.MAIL, "None", 250),
    ]
    assert session.state is SessionState.TRANSACTION


def test_sec_31_lmtp_data_accepted_with_no_recipient_is_a_violation() -> None:
    session = ready(b"250-lmtp\r\n250 PIPELINING\r\n", lmtp=True)
    lmtp_transaction(session, ["a@x.example"])
    session.receive_data(b"250 ok\r\n550 no\r\n354 go\r\n")
    with pytest.raises(SMTPProtocolError, match="no valid recipient"):
        events(session)


def test_lmtp_session_uses_lhlo_only() -> None:
    session = ClientSession(lmtp=True)
    answer(session, b"220 lmtp\r\n")
    with pytest.raises(LocalProtocolError, match="LHLO"):
        session.send(Ehlo("client.example"))
    with pytest.raises(LocalProtocolError, match="LHLO"):
        session.send(Helo("client.example"))
    smtp = ClientSession()
    answer(smtp, b"220 smtp\r\n")
    with pytest.raises(LocalProtocolError, match="LMTP"):
        smtp.send(Lhlo("client.example"))


# -- a scripted server transcript, chunked every way --------------------------

SCRIPT: list[tuple[str, bytes]] = [
    ("S", b"220 mx.example ESMTP\r\n"),
    ("C", b"EHLO client.example\r\n"),
    ("S", EHLO_FULL),
    ("C", b"MAIL FROM:<a@example.com>\r\nRCPT TO:<b@example.org>\r\nDATA\r\n"),
    ("S", b"250 2.1.0 ok\r\n250 2.1.5 ok\r\n354 go\r\n"),
    ("C", b"..x\r\n.\r\nMAIL FROM:<a@example.com>\r\nRCPT TO:<c@example.org>\r\nDATA\r\n"),
    ("S", b"250 2.0.0 queued as A1\r\n250 ok\r\n550 5.1.1 unknown\r\n554 5.5.1 no rcpt\r\n"),
    ("C", b"RSET\r\n"),
    ("S", b"250 reset\r\n"),
    ("C", b"QUIT\r\n"),
    ("S", b"221 bye\r\n"),
]


def drive_script(chunker: Callable[[bytes], list[bytes]]) -> list[tuple[SmtpOp, int]]:
    """Play SCRIPT against a session; check every client flight byte for byte."""
    session = ClientSession()
    produced: list[tuple[SmtpOp, int]] = []
    client_turns: Iterator[Callable[[], bytes]] = iter(
        [
            lambda: session.send(Ehlo("client.example")),
            lambda: (
                session.send(Mail("a@example.com"))
                + session.send(Rcpt("b@example.org"))
                + session.send(Data())
            ),
            lambda: (
                session.send_body(b".x")
                + session.end_body()
                + session.send(Mail("a@example.com"))
                + session.send(Rcpt("c@example.org"))
                + session.send(Data())
            ),
            lambda: session.send(Rset()),
            lambda: session.send(Quit()),
        ]
    )
    for side, data in SCRIPT:
        if side == "C":
            assert next(client_turns)() == data
            continue
        expected = sum(1 for line in data.split(b"\r\n")[:-1] if line[3:4] != b"-")
        for piece in chunker(data):
            session.receive_data(piece)
        found = events(session)
        assert len(found) == expected
        produced += codes(found)
    assert session.state is SessionState.CLOSED
    return produced


SCRIPT_CODES = [
    (SmtpOp.GREETING, 220),
    (SmtpOp.EHLO, 250),
    (SmtpOp.MAIL, 250),
    (SmtpOp.RCPT, 250),
    (SmtpOp.DATA, 354),
    (SmtpOp.DATA_END, 250),
    (SmtpOp.MAIL, 250),
    (SmtpOp.RCPT, 550),
    (SmtpOp.DATA, 554),
    (SmtpOp.RSET, 250),
    (SmtpOp.QUIT, 221),
]


def test_script_whole_turns() -> None:
    assert drive_script(lambda data: [data]) == SCRIPT_CODES


def test_script_one_byte_at_a_time() -> None:
    assert drive_script(lambda data: [data[i : i + 1] for i in range(len(data))]) == SCRIPT_CODES


@settings(max_examples=300)
@given(st.lists(st.integers(1, 40), min_size=1, max_size=10))
def test_script_every_chunking(sizes: list[int]) -> None:
    def chunker(data: bytes) -> list[bytes]:
        pieces, start, index = [], 0, 0
        while start < len(data):
            size = sizes[index % len(sizes)]
            pieces.append(data[start : start + size])
            start += size
            index += 1
        return pieces

    assert drive_script(chunker) == SCRIPT_CODES


@settings(max_examples=300)
@given(st.lists(st.binary(max_size=64), max_size=8))
def test_fuzz_session_raises_only_protocol_errors(chunks: list[bytes]) -> None:
    session = ready()
    session.send(Mail("a@example.com"))
    session.send(Rcpt("b@example.org"))
    session.send(Data())
    try:
        for chunk in chunks:
            if chunk:
                session.receive_data(chunk)
            events(session)
    except SMTPProtocolError:
        assert session.state is SessionState.BROKEN


def test_sasl_exchange_through_the_session_with_a_long_token() -> None:
    session = ready(b"250-mx\r\n250 AUTH OAUTHBEARER\r\n")
    token = "t" * 600  # too long for an initial response on a 512-octet line
    exchange = exchange_for(AuthMechanism.OAUTHBEARER, "user@example.com", token)
    assert session.send(exchange.start()) == b"AUTH OAUTHBEARER\r\n"
    (challenge,) = answer(session, b"334 \r\n")
    assert isinstance(challenge, Response)
    response_line = session.send(exchange.respond(challenge.reply))
    assert len(response_line) > 512
    assert token.encode() not in response_line  # base64 on the wire
    # The server's error turn: a 12288-octet challenge still reaches the exchange.
    error = json.dumps({"status": "invalid_token", "pad": "x" * 9000}).encode()
    wire = b"334 " + base64.b64encode(error) + b"\r\n"
    assert len(wire) > 12000
    (error_turn,) = answer(session, wire)
    assert isinstance(error_turn, Response)
    assert session.send(exchange.respond(error_turn.reply)) == b"AQ==\r\n"
    assert codes(answer(session, b"535 5.7.8 no\r\n")) == [(SmtpOp.AUTH, 535)]
    assert not session.is_authenticated
    # The JSON is over the 4 KiB cap (SECURITY 36), so it is not interpreted.
    assert exchange.error_detail == "error challenge too large"
