"""`SMTPClient.idle_connection_closed`: whether an idle connection can be reused as it is."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Literal

import pytest
import trio
import trio.testing

import trio_smtp
from trio_smtp import SMTPClient, SMTPReplyError
from trio_smtp.testing import TestServer, open_test_server

SENDER = "a@example.com"
RECIPIENT = "b@example.org"
UNPROMPTED_421 = b"421 4.4.2 testserver.invalid idle too long\r\n"

ServerTLS = Literal["none", "implicit"]


async def connect(
    server: TestServer, tls: ServerTLS = "none"
) -> tuple[SMTPClient, trio.socket.SocketType]:
    """A client the test owns, so that it can outlive the server, and its socket."""
    stream = await trio.open_tcp_stream(server.host, server.port)
    if tls == "implicit":
        client = await SMTPClient.from_stream(
            stream,
            tls=trio_smtp.IMPLICIT,
            ssl_context=server.client_ssl_context(),
            server_hostname="localhost",
            local_hostname="idle.test",
        )
    else:
        client = await SMTPClient.from_stream(
            stream, tls=trio_smtp.PLAINTEXT, local_hostname="idle.test"
        )
    return client, stream.socket


@asynccontextmanager
async def over_socketpair(
    server: TestServer,
) -> AsyncIterator[tuple[SMTPClient, trio.socket.SocketType, trio.SocketStream]]:
    """A client whose server end the test can also write to, as the server would."""
    client_sock, server_sock = trio.socket.socketpair()
    server_side = trio.SocketStream(server_sock)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(server.serve_stream, server_side)
        smtp = await SMTPClient.from_stream(
            trio.SocketStream(client_sock), tls=trio_smtp.PLAINTEXT, local_hostname="idle.test"
        )
        async with smtp:
            yield smtp, client_sock, server_side
        nursery.cancel_scope.cancel()


async def as_if_the_server_said(server_side: trio.SocketStream, data: bytes) -> None:
    # Only once the session waits for a command: its send of the last reply
    # may not have returned yet, and a stream takes one sender at a time.
    await trio.testing.wait_all_tasks_blocked()
    await server_side.send_all(data)


@pytest.mark.parametrize("tls", ["none", "implicit"])
async def test_a_fresh_connection_is_reusable(tls: ServerTLS) -> None:
    with trio.fail_after(10):
        async with open_test_server(tls=tls) as server:
            smtp, _ = await connect(server, tls)
            async with smtp:
                assert not smtp.idle_connection_closed()
                await smtp.send_mail(SENDER, [RECIPIENT], "Subject: x\n\nbody\n")
                assert not smtp.idle_connection_closed()


@pytest.mark.parametrize("tls", ["none", "implicit"])
async def test_closed_once_the_server_closed_it(tls: ServerTLS) -> None:
    with trio.fail_after(10):
        async with open_test_server(tls=tls) as server:
            smtp, sock = await connect(server, tls)
            assert not smtp.idle_connection_closed()
        # Leaving the block closed the server's end of every connection.
        async with smtp:
            await trio.lowlevel.wait_readable(sock)
            assert smtp.idle_connection_closed()
            assert not smtp.is_closed  # the socket told, not the client's own state


async def test_closed_once_the_server_sent_an_unprompted_421() -> None:
    with trio.fail_after(10):
        async with (
            open_test_server() as server,
            over_socketpair(server) as (smtp, sock, server_side),
        ):
            assert not smtp.idle_connection_closed()
            await as_if_the_server_said(server_side, UNPROMPTED_421)
            await trio.lowlevel.wait_readable(sock)
            assert smtp.idle_connection_closed()
            assert not smtp.is_closed
            # Both ends are still open, and the next command would take the
            # waiting 421 for its own reply.
            with pytest.raises(SMTPReplyError) as refused:
                await smtp.noop()
            assert refused.value.reply.code == 421


async def test_not_judged_while_an_operation_holds_the_connection() -> None:
    with trio.fail_after(10):
        async with (
            open_test_server() as server,
            over_socketpair(server) as (smtp, sock, server_side),
        ):
            await as_if_the_server_said(server_side, UNPROMPTED_421)
            await trio.lowlevel.wait_readable(sock)
            async with smtp._lock:
                # Whatever arrives now is for the operation holding the lock.
                assert not smtp.idle_connection_closed()
            assert smtp.idle_connection_closed()


async def test_closed_after_aclose() -> None:
    with trio.fail_after(10):
        async with open_test_server() as server:
            smtp, _ = await connect(server)
            await smtp.aclose()
            assert smtp.idle_connection_closed()


async def test_closed_after_aclose_even_without_a_socket() -> None:
    with trio.fail_after(10):
        async with open_test_server() as server, trio.open_nursery() as nursery:
            client_stream, server_stream = trio.testing.memory_stream_pair()
            nursery.start_soon(server.serve_stream, server_stream)
            smtp = await SMTPClient.from_stream(
                client_stream, tls=trio_smtp.PLAINTEXT, local_hostname="idle.test"
            )
            # Nothing to poll: the next reply will tell.
            assert not smtp.idle_connection_closed()
            await smtp.aclose()
            assert smtp.idle_connection_closed()
