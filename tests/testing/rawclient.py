"""A deliberately dumb SMTP client for driving the test server byte by byte.

The tests use it for what smtplib cannot do (BDAT, pipelined flights,
protocol violations, the OAuth error turns). It reads replies with its own
few lines of parsing and shares nothing with trio-smtp's client.
"""

from __future__ import annotations

import ssl
from types import TracebackType

import trio

from trio_smtp.testing import TestServer


class RawClient:
    """Sends raw bytes, reads whole (multi-line) replies as (code, [texts])."""

    def __init__(self, stream: trio.abc.Stream) -> None:
        self.stream = stream
        self.buf = bytearray()

    @classmethod
    async def connect(cls, server: TestServer) -> RawClient:
        if server.path is not None:
            return cls(await trio.open_unix_socket(server.path))
        return cls(await trio.open_tcp_stream(server.host, server.port))

    async def __aenter__(self) -> RawClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await trio.aclose_forcefully(self.stream)

    async def send(self, data: bytes) -> None:
        await self.stream.send_all(data)

    async def _fill(self) -> None:
        data = await self.stream.receive_some(65536)
        if not data:
            raise EOFError("server closed the connection")
        self.buf += data

    async def line(self) -> bytes:
        while (i := self.buf.find(b"\r\n")) < 0:
            await self._fill()
        line = bytes(self.buf[:i])
        del self.buf[: i + 2]
        return line

    async def reply(self) -> tuple[int, list[bytes]]:
        texts: list[bytes] = []
        while True:
            line = await self.line()
            texts.append(line[4:])
            if line[3:4] != b"-":
                return int(line[:3]), texts

    async def cmd(self, line: bytes | str) -> tuple[int, list[bytes]]:
        raw = line.encode() if isinstance(line, str) else line
        await self.send(raw + b"\r\n")
        return await self.reply()

    async def expect(self, line: bytes | str | None, code: int) -> list[bytes]:
        """Send ``line`` (unless None) and check the reply code; returns the texts."""
        got, texts = await self.cmd(line) if line is not None else await self.reply()
        assert got == code, (line, got, texts)
        return texts

    async def raw(self, data: bytes, code: int) -> list[bytes]:
        """Send ``data`` exactly as given (a BDAT command with its chunk), check the reply."""
        await self.send(data)
        return await self.expect(None, code)

    async def at_eof(self) -> bool:
        """True when the server has closed (no more bytes, only EOF)."""
        if self.buf:
            return False
        try:
            data = await self.stream.receive_some(65536)
        except trio.BrokenResourceError:
            return True
        self.buf += data
        return not data

    async def start_tls(self, context: ssl.SSLContext, server_hostname: str) -> None:
        assert not self.buf, "bytes arrived before the handshake"
        tls = trio.SSLStream(self.stream, context, server_hostname=server_hostname)
        await tls.do_handshake()
        self.stream = tls
