"""Message bodies reach the record intact however the input is cut into reads.

The server hands body octets to its sinks straight from each read where it
can, and through its line buffer otherwise; these tests feed a whole
pipelined session through a stream that returns it in arbitrary pieces
(one octet at a time included) and compare what was recorded with the
body sent.
"""

from __future__ import annotations

import hashlib
import itertools
import re
from collections import deque

import trio
from hypothesis import given, settings
from hypothesis import strategies as st

from trio_smtp.testing import TestServer, open_test_server

TRANSCRIPT_DATA_LIMIT = 64 * 1024  # documented in the server: body bytes kept per entry


class PiecewiseStream(trio.abc.Stream):
    """Returns the scripted input in the given pieces, then end of stream."""

    def __init__(self, pieces: list[bytes]) -> None:
        self.pieces = deque(pieces)

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        await trio.lowlevel.checkpoint()

    async def wait_send_all_might_not_block(self) -> None:
        await trio.lowlevel.checkpoint()

    async def receive_some(self, max_bytes: int | None = None) -> bytes:
        await trio.lowlevel.checkpoint()
        if not self.pieces:
            return b""
        piece = self.pieces.popleft()
        if max_bytes is not None and len(piece) > max_bytes:
            self.pieces.appendleft(piece[max_bytes:])
            piece = piece[:max_bytes]
        return piece

    async def aclose(self) -> None:
        await trio.lowlevel.checkpoint()


def bare(data: bytes) -> bool:
    return re.search(rb"\r(?!\n)|(?<!\r)\n", data) is not None


def stuff(body: bytes) -> bytes:
    return (b"\r\n" + body).replace(b"\r\n.", b"\r\n..")[2:] + b".\r\n"


def serve(wire: bytes, cuts: list[int], *, keep_bodies: bool) -> TestServer:
    bounds = [0, *sorted(set(cuts)), len(wire)]
    pieces = [wire[a:b] for a, b in itertools.pairwise(bounds) if b > a]

    async def main() -> TestServer:
        async with open_test_server(keep_bodies=keep_bodies) as server:
            await server.serve_stream(PiecewiseStream(pieces))
        return server

    return trio.run(main)


HEAD = b"EHLO c\r\nMAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.org>\r\n"
octets = st.lists(
    st.sampled_from([b"\r\n", b"\r", b"\n", b"a", b".", b"BDAT 1\r\n", b"\r\n.\r\n"]), max_size=12
).map(b"".join) | st.binary(max_size=30)


def check_cuts(draw: st.DataObject, wire: bytes) -> list[int]:
    if draw.draw(st.booleans()):
        return list(range(len(wire)))  # one octet at a time
    return draw.draw(st.lists(st.integers(0, len(wire)), max_size=15))


def check_recorded(server: TestServer, body: bytes, keep: bool) -> None:
    """The one message the server recorded is ``body``, kept or hashed."""
    [message] = server.messages
    assert message.size == len(body)
    if keep:
        assert message.data == body
    else:
        assert message.sha256 == hashlib.sha256(body).hexdigest()
    assert server.bare_newlines_seen == bare(body)


@settings(max_examples=200, deadline=None)
@given(chunks=st.lists(octets, min_size=1, max_size=5), keep=st.booleans(), draw=st.data())
def test_bdat_chunks_whatever_the_reads(
    chunks: list[bytes], keep: bool, draw: st.DataObject
) -> None:
    wire = HEAD
    commands = []
    for n, chunk in enumerate(chunks):
        commands.append(b"BDAT %d%s" % (len(chunk), b" LAST" if n == len(chunks) - 1 else b""))
        wire += commands[-1] + b"\r\n" + chunk
    wire += b"NOOP\r\nQUIT\r\n"
    server = serve(wire, check_cuts(draw, wire), keep_bodies=keep)
    body = b"".join(chunks)
    check_recorded(server, body, keep)
    client = [entry for side, entry in server.transcripts[0] if side == "C"]
    assert client[3:-2:2] == commands
    assert client[4:-2:2] == chunks
    assert client[-2:] == [b"NOOP", b"QUIT"]


@settings(max_examples=200, deadline=None)
@given(body=octets, keep=st.booleans(), draw=st.data())
def test_data_whatever_the_reads(body: bytes, keep: bool, draw: st.DataObject) -> None:
    body = body if not body or body.endswith(b"\r\n") else body + b"\r\n"
    wire = HEAD + b"DATA\r\n" + stuff(body) + b"NOOP\r\nQUIT\r\n"
    server = serve(wire, check_cuts(draw, wire), keep_bodies=keep)
    check_recorded(server, body, keep)
    client = [entry for side, entry in server.transcripts[0] if side == "C"]
    assert client[-3:] == [stuff(body), b"NOOP", b"QUIT"]


@settings(max_examples=20, deadline=None)
@given(draw=st.data())
def test_big_chunks_keep_a_bounded_transcript_whatever_the_reads(draw: st.DataObject) -> None:
    chunks = [b"x" * 70_000 + b"\r\n", b"y\n" * 40_000, b"z" * 10]
    wire = HEAD
    for n, chunk in enumerate(chunks):
        last = b" LAST" if n == len(chunks) - 1 else b""
        wire += b"BDAT %d%s\r\n" % (len(chunk), last) + chunk
    wire += b"QUIT\r\n"
    cuts = draw.draw(st.lists(st.integers(0, len(wire)), max_size=40))
    server = serve(wire, cuts, keep_bodies=True)
    [message] = server.messages
    assert message.data == b"".join(chunks)
    assert server.bare_newlines_seen
    client = [entry for side, entry in server.transcripts[0] if side == "C"]
    assert client[4::2] == [chunk[:TRANSCRIPT_DATA_LIMIT] for chunk in chunks]
