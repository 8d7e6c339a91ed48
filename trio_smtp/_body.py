"""Body sources: everything `SMTPClient.send_mail` accepts as a message body.

This module owns the step from what a caller hands over (bytes, str, a
`trio.abc.ReceiveStream`, a file path, a trio async file, an async iterable
of bytes) to one shape the client reads: a `BodySource`, whose `read` returns
at most a given number of octets and whose `length` says, when it is known,
how many it will return in all. The client asks for the next chunk only after
the previous one was written to the socket, so no source is ever read more
than a bounded buffer ahead of the network (DESIGN.md, "Streaming").

In-memory bodies (bytes, str) are not wrapped: the client canonicalises them
whole, which makes their size exact.
"""

from __future__ import annotations

import inspect
import os
import sys
from collections.abc import AsyncIterable, AsyncIterator, Callable
from typing import TYPE_CHECKING, Any, Protocol, TypeAlias, cast, runtime_checkable

import trio
from trio_util import AsyncValue

from ._core.errors import InvalidInputError

if TYPE_CHECKING:
    from .mime import ComposedMessage

__all__ = ["AsyncReadable", "BodySource", "Progress", "body_source"]

#: Something to follow a body's progress with: a callable receiving
#: ``(octets_sent, total_or_None)`` after each write, or a trio-util
#: `AsyncValue` whose ``value`` becomes the octets sent.
Progress: TypeAlias = "Callable[[int, int | None], object] | AsyncValue[int]"


@runtime_checkable
class AsyncReadable(Protocol):
    """A trio async file (what `trio.open_file` returns) or anything with an async ``read``."""

    async def read(self, size: int = -1, /) -> bytes: ...


class BodySource:
    """A body read in bounded chunks; the base of every streamed source.

    ``length`` is the number of octets `read` will return in all, or None
    when the source cannot tell in advance. A source whose content turns out
    longer or shorter than a length it announced raises `InvalidInputError`
    before its last chunk is handed out, so a message whose declared size
    was wrong never reaches its end of data.
    """

    length: int | None = None
    #: Whether the chunk the last `read` returned is wire-safe in the sense of
    #: `DotStuffer.feed_wire_safe`. Only a source that can vouch for it (a
    #: `trio_smtp.mime.ComposedMessage`'s base64 lines) ever sets it.
    wire_safe: bool = False

    def __init__(self) -> None:
        self._consumed = 0
        self._finished = False

    @property
    def consumed(self) -> int:
        """Octets returned by `read` so far."""
        return self._consumed

    async def read(self, max_bytes: int) -> bytes:
        """Up to ``max_bytes`` octets of the body; ``b""`` once it is exhausted."""
        if self._finished:
            await trio.lowlevel.checkpoint()
            return b""
        data = await self._read(max_bytes)
        if len(data) > max_bytes:
            raise InvalidInputError(
                f"the body source returned {len(data)} octets when asked for at most {max_bytes}"
            )
        self._consumed += len(data)
        if self.length is not None and self._consumed > self.length:
            raise InvalidInputError(
                f"the body is longer than the {self.length} octets it announced"
            )
        if not data:
            self._finished = True
            if self.length is not None and self._consumed != self.length:
                raise InvalidInputError(
                    f"the body ended after {self._consumed} of the {self.length} octets "
                    "it announced"
                )
        return data

    async def _read(self, max_bytes: int) -> bytes:
        raise NotImplementedError

    async def aclose(self) -> None:
        """Release what the source holds (files it opened); idempotent."""
        await trio.lowlevel.checkpoint()


class _StreamSource(BodySource):
    """A `trio.abc.ReceiveStream` the caller owns; it is read, never closed."""

    def __init__(self, stream: trio.abc.ReceiveStream) -> None:
        super().__init__()
        self._stream = stream
        # Not imported here: when trio_smtp.mime was never imported, no
        # stream can be one of its ComposedMessages, and the client does not
        # pay for loading it.
        mime = sys.modules.get("trio_smtp.mime")
        self._composed: ComposedMessage | None = (
            cast("ComposedMessage", stream)
            if mime is not None and isinstance(stream, mime.ComposedMessage)
            else None
        )
        # trio_smtp.mime's composer (and any stream like it) knows its size.
        length = getattr(stream, "length", None)
        if length is not None and (not isinstance(length, int) or length < 0):
            raise InvalidInputError(
                f"the body stream's length must be a non-negative int, not {length!r}"
            )
        self.length = length

    async def _read(self, max_bytes: int) -> bytes:
        if self._composed is not None:
            data, self.wire_safe = await self._composed._receive(max_bytes)
            return data
        return bytes(await self._stream.receive_some(max_bytes))


class _PathSource(BodySource):
    """A file named by a path: opened on the first read, closed at the end."""

    def __init__(self, path: os.PathLike[str] | os.PathLike[bytes]) -> None:
        super().__init__()
        self._path = path
        self._file: trio.abc.AsyncResource | None = None
        self._opened = False
        try:
            # One stat before anything is sent: SIZE is declared from it,
            # and a missing file fails before the transaction starts.
            self.length = os.stat(path).st_size
        except OSError as exc:
            raise InvalidInputError(
                f"cannot read the body file {os.fsdecode(path)!r}: {exc}"
            ) from exc

    async def _read(self, max_bytes: int) -> bytes:
        if self._file is None:
            if self._opened:
                return b""
            self._opened = True
            self._file = await trio.open_file(self._path, "rb")
        file: Any = self._file
        data: bytes = await file.read(max_bytes)
        if not data:
            await self.aclose()
        return data

    async def aclose(self) -> None:
        file, self._file = self._file, None
        if file is not None:
            await file.aclose()
        else:
            await trio.lowlevel.checkpoint()


class _FileSource(BodySource):
    """A trio async file (or other async reader) the caller opened and owns."""

    def __init__(self, file: AsyncReadable) -> None:
        super().__init__()
        self._file = file

    async def _read(self, max_bytes: int) -> bytes:
        return bytes(await self._file.read(max_bytes))


class _IterableSource(BodySource):
    """An async iterable of bytes, re-chunked so no read returns more than asked."""

    def __init__(self, iterable: AsyncIterable[bytes]) -> None:
        super().__init__()
        self._iterator: AsyncIterator[bytes] = aiter(iterable)
        self._leftover = memoryview(b"")
        self._exhausted = False

    async def _read(self, max_bytes: int) -> bytes:
        while not self._leftover and not self._exhausted:
            try:
                item = await anext(self._iterator)
            except StopAsyncIteration:
                self._exhausted = True
                break
            if not isinstance(item, (bytes, bytearray, memoryview)):
                raise InvalidInputError(
                    f"the body iterable yielded {type(item).__name__}, not bytes"
                )
            self._leftover = memoryview(bytes(item))
        if not self._leftover:
            await trio.lowlevel.checkpoint()
            return b""
        data, self._leftover = self._leftover[:max_bytes], self._leftover[max_bytes:]
        return bytes(data)

    async def aclose(self) -> None:
        closer = getattr(self._iterator, "aclose", None)
        if closer is not None:
            await closer()
        else:
            await trio.lowlevel.checkpoint()


def body_source(body: object) -> BodySource:
    """Wrap a streamed body for reading; `InvalidInputError` for anything else.

    Accepts a `trio.abc.ReceiveStream` (its optional ``length`` attribute is
    trusted as the size), an `os.PathLike` naming a file, an object with an
    async ``read`` method (a trio async file), or an async iterable of bytes.
    A plain ``str`` is message text, never a path: pass a `pathlib.Path`.
    """
    if isinstance(body, BodySource):
        return body
    if isinstance(body, trio.abc.ReceiveStream):
        return _StreamSource(body)
    if isinstance(body, os.PathLike):
        return _PathSource(body)
    read = getattr(body, "read", None)
    if read is not None and inspect.iscoroutinefunction(read):
        return _FileSource(body)  # type: ignore[arg-type]
    if isinstance(body, AsyncIterable):
        return _IterableSource(body)
    if read is not None:
        raise InvalidInputError(
            f"{type(body).__name__} reads synchronously and would block the event loop: "
            "pass a pathlib.Path, or a file from trio.open_file"
        )
    raise InvalidInputError(
        "body must be bytes, str, a trio.abc.ReceiveStream, a path, a trio async file "
        f"or an async iterable of bytes, not {type(body).__name__}"
    )


def report_progress(progress: Progress | None, sent: int, total: int | None) -> None:
    """Tell ``progress`` that ``sent`` octets of the body have been written."""
    if progress is None:
        return
    if isinstance(progress, AsyncValue):
        progress.value = sent
    else:
        progress(sent, total)
