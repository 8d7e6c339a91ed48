"""A deliberately naive SMTP peer: writes exactly the bytes it is given.

The control experiments need traffic the client refuses to produce (bare
LF in a body, commands pipelined without PIPELINING), to show what a server
does with it: that the strict Postfix really is strict, and that the
lenient one really would deliver a smuggled message.
"""

from __future__ import annotations

import trio

_FINAL_LINE = 4  # "250 " : three digits and a space end a reply


async def _reply(stream: trio.SocketStream, buffer: bytearray) -> bytes:
    """Read one complete (possibly multiline) reply; b"" when the server closed first."""
    lines: list[bytes] = []
    while True:
        end = buffer.find(b"\r\n")
        if end >= 0:
            line = bytes(buffer[:end])
            del buffer[: end + 2]
            lines.append(line)
            if len(line) < _FINAL_LINE or line[3:4] != b"-":
                return b"\r\n".join(lines)
            continue
        try:
            data = await stream.receive_some(65536)
        except trio.BrokenResourceError:
            data = b""
        if not data:
            return b"\r\n".join(lines)
        buffer += data


async def converse(port: int, writes: list[tuple[bytes, int]]) -> list[bytes]:
    """Read the greeting, then send each write and read the number of replies given with it.

    Stops early when the server closes; returns the greeting and every reply.
    """
    replies: list[bytes] = []
    buffer = bytearray()
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    async with stream:
        replies.append(await _reply(stream, buffer))
        for data, expected in writes:
            try:
                await stream.send_all(data)
            except trio.BrokenResourceError:
                break
            for _ in range(expected):
                reply = await _reply(stream, buffer)
                if not reply:
                    return replies
                replies.append(reply)
    return replies
