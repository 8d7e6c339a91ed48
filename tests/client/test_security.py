"""SECURITY.md items the trio layer owns, each test named after its number.

The hostile server is a scripted peer on memory streams; where TLS matters
it speaks real TLS through `trio.SSLStream` with trustme certificates (and
hand-built ones where trustme cannot make them: self-signed, IP-as-DNS).
Core-level items live in tests/core.
"""

from __future__ import annotations

import datetime
import ipaddress
import ssl
import warnings
from collections.abc import Awaitable, Callable

import pytest
import trio
import trio.testing
import trustme
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

import trio_smtp
from trio_smtp import (
    AuthMechanism,
    ExtensionUnavailable,
    OutcomeUnknown,
    PolicyError,
    SessionState,
    SMTPClient,
    SMTPProtocolError,
    SMTPReplyError,
    TLSHandshakeError,
    UnsupportedMechanism,
)

from .conftest import USER, Peer

GREETING = b"220 peer.test ESMTP\r\n"
EHLO_STARTTLS = b"250-peer.test\r\n250-PIPELINING\r\n250 STARTTLS\r\n"


async def connect(
    server: Callable[[Peer], Awaitable[None]], **kwargs: object
) -> tuple[SMTPClient | None, BaseException | None, Peer]:
    """Run ``server`` against a client connecting over memory streams.

    Returns the client (or None) and the error connecting raised, if any.
    """
    client_stream, server_stream = trio.testing.memory_stream_pair()
    peer = Peer(server_stream)
    kwargs.setdefault("tls", trio_smtp.PLAINTEXT)
    kwargs.setdefault("local_hostname", "client.test")
    result: list[SMTPClient] = []
    error: list[BaseException] = []

    async def run_server() -> None:
        try:
            await server(peer)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass  # the client hung up, as it should
        finally:
            # As a real server's socket would be when its process gives up.
            await trio.aclose_forcefully(server_stream)

    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(run_server)
            try:
                result.append(await SMTPClient.from_stream(client_stream, **kwargs))  # type: ignore[arg-type]
            except trio_smtp.SMTPError as exc:
                error.append(exc)
            if result:
                await result[0]._abort()
    return (result[0] if result else None), (error[0] if error else None), peer


async def drain(peer: Peer) -> bytes:
    """What the client sent before hanging up, however abruptly it did."""
    try:
        return await peer.read_all_until_eof()
    except trio.BrokenResourceError:
        return bytes(peer.received)


async def hello(peer: Peer, ehlo: bytes = EHLO_STARTTLS) -> None:
    await peer.send(GREETING)
    await peer.expect(b"EHLO client.test\r\n")
    await peer.send(ehlo)


async def tls_server_side(peer: Peer, context: ssl.SSLContext) -> Peer:
    tls = trio.SSLStream(peer.stream, context, server_side=True)
    await tls.do_handshake()
    return Peer(tls)


def self_signed(name: str) -> tuple[bytes, bytes]:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return cert.public_bytes(serialization.Encoding.PEM), key_pem


def server_context_for(cert_pem: bytes, key_pem: bytes, tmp: str) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    with open(f"{tmp}/cert.pem", "wb") as file:
        file.write(cert_pem)
    with open(f"{tmp}/key.pem", "wb") as file:
        file.write(key_pem)
    context.load_cert_chain(f"{tmp}/cert.pem", f"{tmp}/key.pem")
    return context


def leaf_context(leaf: trustme.LeafCert) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    leaf.configure_cert(context)
    return context


# -- A. STARTTLS ----------------------------------------------------------------


@pytest.mark.parametrize(
    "injected", [b"220 Go ahead\r\n250-x\r\n250 AUTH LOGIN\r\n", b"220 Go ahead\r\n250-x"]
)
async def test_sec_01_starttls_response_injection(
    injected: bytes, client_context: ssl.SSLContext
) -> None:
    after_starttls: list[bytes] = []

    async def server(peer: Peer) -> None:
        await hello(peer)
        await peer.expect(b"STARTTLS\r\n")
        await peer.send(injected)
        after_starttls.append(await peer.read_all_until_eof())

    client, error, _ = await connect(
        server, tls=trio_smtp.STARTTLS, ssl_context=client_context, server_hostname="localhost"
    )
    assert client is None
    assert isinstance(error, SMTPProtocolError)
    assert "STARTTLS" in str(error)
    # Aborted before the handshake: not even a ClientHello was written.
    assert after_starttls == [b""]


async def test_sec_02_nothing_between_starttls_and_handshake(
    server_context: ssl.SSLContext, client_context: ssl.SSLContext
) -> None:
    first_tls_byte: list[bytes] = []

    async def server(peer: Peer) -> None:
        await hello(peer)
        await peer.expect(b"STARTTLS\r\n")
        await peer.send(b"220 go ahead\r\n")
        first_tls_byte.append(bytes(await peer.stream.receive_some(1)))
        await peer.close()

    await connect(
        server, tls=trio_smtp.STARTTLS, ssl_context=client_context, server_hostname="localhost"
    )
    assert first_tls_byte == [b"\x16"]  # a TLS handshake record, nothing in plaintext


@pytest.mark.parametrize(
    "ehlo",
    [
        b"250-peer.test\r\n250 PIPELINING\r\n",  # EAST O_1: no STARTTLS
        b"250-peer.test\r\n250 AUTH PLAIN LOGIN\r\n",  # EAST X_1: AUTH in plaintext only
    ],
)
async def test_sec_03_starttls_not_advertised(ehlo: bytes) -> None:
    rest: list[bytes] = []

    async def server(peer: Peer) -> None:
        await hello(peer, ehlo)
        rest.append(await peer.read_all_until_eof())

    client, error, _ = await connect(server, tls=trio_smtp.STARTTLS, server_hostname="localhost")
    assert client is None
    assert isinstance(error, ExtensionUnavailable)
    assert error.name == "STARTTLS"
    assert rest == [b""]  # no AUTH, no MAIL, nothing after EHLO


@pytest.mark.parametrize(
    "reply",
    [
        *(b"454 4.7.0 TLS not available\r\n", b"501 no\r\n", b"502 no\r\n", b"500 what\r\n"),
        *(b"354 go ahead\r\n", b"221 bye\r\n", b"421 4.3.2 closing\r\n"),
    ],
)
async def test_sec_04_starttls_refused_never_continues_in_plaintext(reply: bytes) -> None:
    rest: list[bytes] = []

    async def server(peer: Peer) -> None:
        await hello(peer)
        await peer.expect(b"STARTTLS\r\n")
        await peer.send(reply)
        rest.append(await peer.read_all_until_eof())

    client, error, _ = await connect(server, tls=trio_smtp.STARTTLS, server_hostname="localhost")
    assert client is None
    assert isinstance(error, (SMTPReplyError, SMTPProtocolError))
    assert rest == [b""]


async def test_sec_05_ehlo_rejected_helo_accepted_aborts_in_required_mode() -> None:
    rest: list[bytes] = []

    async def server(peer: Peer) -> None:
        await peer.send(GREETING)
        await peer.expect(b"EHLO client.test\r\n")
        await peer.send(b"502 5.5.1 EHLO not implemented\r\n")
        rest.append(await peer.read_all_until_eof())

    client, error, _ = await connect(server, tls=trio_smtp.STARTTLS, server_hostname="localhost")
    assert client is None
    assert isinstance(error, SMTPReplyError)
    assert rest == [b""]  # no HELO downgrade


async def test_sec_05_helo_fallback_only_in_plaintext_mode() -> None:
    async def server(peer: Peer) -> None:
        await peer.send(GREETING)
        await peer.expect(b"EHLO client.test\r\n")
        await peer.send(b"502 5.5.1 EHLO not implemented\r\n")
        await peer.expect(b"HELO client.test\r\n")
        await peer.send(b"250 hello\r\n")
        await peer.read_all_until_eof()

    client, error, _ = await connect(server)
    assert error is None
    assert client is not None
    assert not client.capabilities.esmtp


async def test_sec_06_handshake_fails_after_220(client_context: ssl.SSLContext) -> None:
    async def server(peer: Peer) -> None:
        await hello(peer)
        await peer.expect(b"STARTTLS\r\n")
        await peer.send(b"220 go ahead\r\n")
        await peer.stream.receive_some(65536)  # the ClientHello
        await peer.send(b"250 plaintext instead of a ServerHello\r\n")
        await peer.read_all_until_eof()

    client, error, _ = await connect(
        server, tls=trio_smtp.STARTTLS, ssl_context=client_context, server_hostname="localhost"
    )
    assert client is None
    assert isinstance(error, TLSHandshakeError)


async def test_sec_07_tampered_capabilities_before_tls_are_not_used(
    server_context: ssl.SSLContext, client_context: ssl.SSLContext
) -> None:
    async def server(peer: Peer) -> None:
        await hello(peer, b"250-peer\r\n250-STARTTLS\r\n250-AUTH PLAIN LOGIN\r\n250 SIZE 1\r\n")
        await peer.expect(b"STARTTLS\r\n")
        await peer.send(b"220 go\r\n")
        tls = await tls_server_side(peer, server_context)
        await tls.expect(b"EHLO client.test\r\n")
        await tls.send(b"250-peer\r\n250-STARTTLS\r\n250 AUTH XOAUTH2\r\n")
        await tls.read_all_until_eof()

    client, error, _ = await connect(
        server, tls=trio_smtp.STARTTLS, ssl_context=client_context, server_hostname="localhost"
    )
    assert error is None
    assert client is not None
    assert client.is_tls
    assert client.capabilities.auth == frozenset({"XOAUTH2"})
    assert client.capabilities.size is None


async def test_sec_08_reply_text_from_the_server_is_escaped() -> None:
    async def server(peer: Peer) -> None:
        await hello(peer)
        await peer.expect(b"STARTTLS\r\n")
        await peer.send(b"454 4.7.0 visit \x1b[31mhttp://evil.example/\xe2\x80\xae\r\n")
        await peer.read_all_until_eof()

    client, error, _ = await connect(server, tls=trio_smtp.STARTTLS, server_hostname="localhost")
    assert client is None
    assert isinstance(error, SMTPReplyError)
    text = str(error)
    assert "\x1b" not in text
    assert "\u202e" not in text
    assert "\\x1b[31m" in text


async def test_sec_09_plaintext_is_recorded_in_the_outcome() -> None:
    async def server(peer: Peer) -> None:
        await hello(peer, b"250-peer\r\n250 PIPELINING\r\n")
        await peer.stream.receive_some(65536)
        await peer.send(b"250 ok\r\n250 ok\r\n354 go\r\n")
        await peer.expect(b"x\r\n.\r\n")
        await peer.send(b"250 ok\r\n")
        await peer.read_all_until_eof()

    client_stream, server_stream = trio.testing.memory_stream_pair()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(server, Peer(server_stream))
        smtp = await SMTPClient.from_stream(
            client_stream, tls=trio_smtp.PLAINTEXT, local_hostname="client.test"
        )
        outcome = await smtp.send_mail("a@example.com", ["b@example.org"], b"x")
        await smtp._abort()
    assert outcome.tls is False


# -- D. replies --------------------------------------------------------------------


async def test_sec_29_554_greeting_sends_quit_and_no_ehlo() -> None:
    seen: list[bytes] = []

    async def server(peer: Peer) -> None:
        await peer.send(b"554 5.7.1 no service for you\r\n")
        seen.append(await peer.read_line())
        await peer.send(b"221 bye\r\n")
        seen.append(await peer.read_all_until_eof())

    client, error, _ = await connect(server)
    assert client is None
    assert isinstance(error, SMTPReplyError)
    assert error.reply.code == 554
    assert seen == [b"QUIT\r\n", b""]


async def test_sec_29_421_greeting_is_a_temporary_failure() -> None:
    async def server(peer: Peer) -> None:
        await peer.send(b"421 4.3.2 try later\r\n")
        assert await peer.read_all_until_eof() == b""

    client, error, _ = await connect(server)
    assert client is None
    assert isinstance(error, SMTPReplyError)
    assert error.reply.is_transient


async def test_sec_30_slow_drip_is_bounded_by_the_callers_scope(
    autojump_clock: trio.abc.Clock,
) -> None:
    async def server(peer: Peer) -> None:
        await hello(peer, b"250 peer\r\n")
        await peer.expect(b"NOOP\r\n")
        try:
            for byte in b"250 drip drip drip drip drip drip drip\r\n":
                await trio.sleep(20)
                await peer.send(bytes([byte]))
        except trio.BrokenResourceError:
            pass  # the client gave up and closed, as it should

    client_stream, server_stream = trio.testing.memory_stream_pair()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(server, Peer(server_stream))
        smtp = await SMTPClient.from_stream(
            client_stream, tls=trio_smtp.PLAINTEXT, local_hostname="client.test"
        )
        start = trio.current_time()
        # RFC 5321 4.5.3.2 suggests 5 minutes for a reply: the scope bounds
        # the whole reply, not each read, however slowly it drips.
        with pytest.raises(trio.TooSlowError):
            with trio.fail_after(300):
                await smtp.noop()
        assert trio.current_time() - start == pytest.approx(300)
        assert smtp.state is SessionState.BROKEN
        nursery.cancel_scope.cancel()


async def test_sec_31_lmtp_early_close_keeps_per_recipient_replies() -> None:
    async def server(peer: Peer) -> None:
        await peer.send(b"220 lmtp\r\n")
        await peer.expect(b"LHLO client.test\r\n")
        await peer.send(b"250-lmtp\r\n250 PIPELINING\r\n")
        await peer.stream.receive_some(65536)
        await peer.send(b"250 ok\r\n250 ok\r\n250 ok\r\n354 go\r\n")
        await peer.expect(b"x\r\n.\r\n")
        await peer.send(b"250 2.0.0 a delivered\r\n")
        await peer.close()

    client_stream, server_stream = trio.testing.memory_stream_pair()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(server, Peer(server_stream))
        lmtp = await SMTPClient.from_stream(
            client_stream, tls=trio_smtp.PLAINTEXT, lmtp=True, local_hostname="client.test"
        )
        with pytest.raises(OutcomeUnknown) as caught:
            await lmtp.send_mail("s@example.com", ["a@x.example", "b@x.example"], b"x")
    assert {rcpt: reply.code for rcpt, reply in caught.value.replies.items()} == {
        "a@x.example": 250
    }
    assert caught.value.unanswered == ("b@x.example",)


# -- E. SASL -------------------------------------------------------------------------


async def test_sec_32_no_credentials_over_plaintext_to_a_remote_peer() -> None:
    rest: list[bytes] = []

    async def server(peer: Peer) -> None:
        await hello(peer, b"250-peer\r\n250 AUTH PLAIN LOGIN XOAUTH2 OAUTHBEARER\r\n")
        rest.append(await peer.read_all_until_eof())

    client_stream, server_stream = trio.testing.memory_stream_pair()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(server, Peer(server_stream))
        smtp = await SMTPClient.from_stream(
            client_stream, tls=trio_smtp.PLAINTEXT, local_hostname="client.test"
        )
        for mechanism in AuthMechanism:
            with pytest.raises(PolicyError, match="without TLS"):
                await smtp.login_with(mechanism, USER, "password")
        assert smtp.state is SessionState.READY
        await smtp._abort()
    assert rest == [b""]  # no AUTH line ever left


async def test_sec_37_configured_strong_mechanism_missing_after_tls_no_fallback(
    server_context: ssl.SSLContext, client_context: ssl.SSLContext
) -> None:
    after_ehlo: list[bytes] = []

    async def server(peer: Peer) -> None:
        await hello(peer, b"250-peer\r\n250-STARTTLS\r\n250 AUTH XOAUTH2 PLAIN\r\n")
        await peer.expect(b"STARTTLS\r\n")
        await peer.send(b"220 go\r\n")
        tls = await tls_server_side(peer, server_context)
        await tls.expect(b"EHLO client.test\r\n")
        await tls.send(b"250-peer\r\n250 AUTH PLAIN LOGIN\r\n")
        after_ehlo.append(await drain(tls))

    client_stream, server_stream = trio.testing.memory_stream_pair()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(server, Peer(server_stream))
        smtp = await SMTPClient.from_stream(
            client_stream,
            tls=trio_smtp.STARTTLS,
            ssl_context=client_context,
            server_hostname="localhost",
            local_hostname="client.test",
        )
        with pytest.raises(UnsupportedMechanism):
            await smtp.login_xoauth2(USER, "token")
        await smtp._abort()
    assert after_ehlo == [b""]  # no AUTH at all: no silent fall back to PLAIN


# -- F. TLS --------------------------------------------------------------------------


async def implicit_tls_attempt(
    server_context: ssl.SSLContext,
    client_context: ssl.SSLContext,
    server_hostname: str = "localhost",
) -> tuple[BaseException | None, list[bytes]]:
    after_handshake: list[bytes] = []

    async def server(peer: Peer) -> None:
        tls = await tls_server_side(peer, server_context)
        await tls.send(GREETING)
        await tls.expect(b"EHLO client.test\r\n")
        await tls.send(b"250 peer.test\r\n")
        after_handshake.append(await tls.read_all_until_eof())

    _, error, _ = await connect(
        server,
        tls=trio_smtp.IMPLICIT,
        ssl_context=client_context,
        server_hostname=server_hostname,
    )
    return error, after_handshake


@pytest.mark.parametrize(
    "case", ["T1-self-signed", "T2-unknown-root", "T3-wrong-name", "T4-expired"]
)
async def test_sec_38_bad_certificates_abort_before_any_smtp_byte(
    case: str, ca: trustme.CA, client_context: ssl.SSLContext, tmp_path: object
) -> None:
    if case == "T1-self-signed":
        context = server_context_for(*self_signed("localhost"), str(tmp_path))
    elif case == "T2-unknown-root":
        context = leaf_context(trustme.CA().issue_cert("localhost"))
    elif case == "T3-wrong-name":
        context = leaf_context(ca.issue_cert("mail.other.test"))
    else:
        past = datetime.datetime(2020, 1, 1, tzinfo=datetime.timezone.utc)
        expired = ca.issue_cert(
            "localhost", not_before=past, not_after=past + datetime.timedelta(days=1)
        )
        context = leaf_context(expired)
    error, after_handshake = await implicit_tls_attempt(context, client_context)
    assert isinstance(error, TLSHandshakeError)
    assert after_handshake == []  # the server never even completed a handshake


async def test_sec_38_a_good_certificate_passes(
    server_context: ssl.SSLContext, client_context: ssl.SSLContext
) -> None:
    # The control for the cases above: the same path succeeds when it should.
    error, _ = await implicit_tls_attempt(server_context, client_context)
    assert error is None


@pytest.mark.parametrize(
    ("hostname", "ok"),
    [("mail.example.test", True), ("example.test", False), ("a.b.example.test", False)],
)
async def test_sec_39_wildcards_match_exactly_one_label(
    hostname: str, ok: bool, ca: trustme.CA, client_context: ssl.SSLContext
) -> None:
    context = leaf_context(ca.issue_cert("*.example.test"))
    error, _ = await implicit_tls_attempt(context, client_context, hostname)
    assert (error is None) is ok
    if not ok:
        assert isinstance(error, TLSHandshakeError)


async def test_sec_39_ip_literal_needs_an_ip_address_san(
    ca: trustme.CA, client_context: ssl.SSLContext, tmp_path: object
) -> None:
    good = leaf_context(ca.issue_cert("127.0.0.1"))  # trustme makes an iPAddress SAN
    error, _ = await implicit_tls_attempt(good, client_context, "127.0.0.1")
    assert error is None
    # A certificate naming the address as a DNS name must not match it.
    key = ec.generate_private_key(ec.SECP256R1())
    ca_key = serialization.load_pem_private_key(ca.private_key_pem.bytes(), None)
    ca_cert = x509.load_pem_x509_certificate(ca.cert_pem.bytes())
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("127.0.0.1")]), critical=False)
        .sign(ca_key, hashes.SHA256())  # type: ignore[arg-type]
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    dns_only = server_context_for(
        cert.public_bytes(serialization.Encoding.PEM), key_pem, str(tmp_path)
    )
    error, _ = await implicit_tls_attempt(dns_only, client_context, "127.0.0.1")
    assert isinstance(error, TLSHandshakeError)
    assert ipaddress.ip_address("127.0.0.1")  # the name really is an address literal


async def test_sec_40_tls_below_1_2_is_refused(
    server_context: ssl.SSLContext, client_context: ssl.SSLContext, ca: trustme.CA
) -> None:
    old = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ca.issue_cert("localhost").configure_cert(old)
    with warnings.catch_warnings():
        # Building the legacy server on purpose: Python warns about it.
        warnings.simplefilter("ignore", DeprecationWarning)
        old.minimum_version = ssl.TLSVersion.TLSv1
        old.maximum_version = ssl.TLSVersion.TLSv1_1
    old.set_ciphers("DEFAULT:@SECLEVEL=0")
    error, _ = await implicit_tls_attempt(old, client_context)
    assert isinstance(error, TLSHandshakeError)
    for weak in (ssl.TLSVersion.TLSv1, ssl.TLSVersion.TLSv1_1):
        context = trio_smtp.tls_context(trust=None, cadata=ca.cert_pem.bytes().decode())
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            context.minimum_version = weak
        with pytest.raises(trio_smtp.InvalidInputError, match=r"TLS 1\.2"):
            await SMTPClient.from_stream(
                trio.testing.memory_stream_pair()[0],
                tls=trio_smtp.IMPLICIT,
                ssl_context=context,
                server_hostname="localhost",
            )


async def test_sec_41_plaintext_greeting_on_the_implicit_port(
    client_context: ssl.SSLContext,
) -> None:
    async def server(peer: Peer) -> None:
        await peer.send(GREETING)  # a plaintext server on port 465
        await peer.read_all_until_eof()

    client, error, _ = await connect(
        server, tls=trio_smtp.IMPLICIT, ssl_context=client_context, server_hostname="localhost"
    )
    assert client is None
    assert isinstance(error, TLSHandshakeError)


async def test_sec_41_a_supplied_stream_in_secure_mode_is_still_wrapped(
    client_context: ssl.SSLContext,
) -> None:
    first: list[bytes] = []

    async def server(peer: Peer) -> None:
        first.append(bytes(await peer.stream.receive_some(1)))
        await peer.close()

    await connect(
        server, tls=trio_smtp.IMPLICIT, ssl_context=client_context, server_hostname="localhost"
    )
    assert first == [b"\x16"]  # the ClientHello comes first


async def test_non_verifying_contexts_are_refused_before_connecting() -> None:
    unverified = ssl.create_default_context()
    unverified.check_hostname = False
    unverified.verify_mode = ssl.CERT_NONE
    no_hostname = ssl.create_default_context()
    no_hostname.check_hostname = False
    for context, reason in [(unverified, "verify"), (no_hostname, "hostname")]:
        # Port 9 on loopback: had it tried to connect, it would be refused
        # with SMTPConnectionError instead.
        with pytest.raises(trio_smtp.InvalidInputError, match=reason):
            async with trio_smtp.open_smtp("127.0.0.1", 9, ssl_context=context):
                pass  # pragma: no cover - never reached
