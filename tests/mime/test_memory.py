"""Memory stays flat whatever the attachment's size (the issue's goal: a
5 GiB message costs what a 5 KiB one does)."""

from __future__ import annotations

import tracemalloc
from pathlib import Path

import trio

from trio_smtp.mime import READ_SIZE, Attachment, ComposedMessage, compose

BIG = 64 * 1024 * 1024
# A few encoded chunks in flight: the read, its base64, the joined lines.
# Sixteen raw chunks: a bound set by the chunk size, never by the message's.
PEAK_LIMIT = 16 * READ_SIZE


class ZeroStream(trio.abc.ReceiveStream):
    """``size`` zero octets, made as they are asked for."""

    def __init__(self, size: int) -> None:
        self.left = size

    async def receive_some(self, max_bytes: int | None = None) -> bytes:
        await trio.lowlevel.checkpoint()
        size = min(self.left, max_bytes or 65536)
        self.left -= size
        return bytes(size)

    async def aclose(self) -> None:
        await trio.lowlevel.checkpoint()


async def drain_measuring_peak(message: ComposedMessage) -> tuple[int, int]:
    """Read ``message`` to the end; return the octets and the traced peak."""
    total = 0
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        async with message:
            while chunk := await message.receive_some(65536):
                total += len(chunk)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return total, peak


async def test_large_file_attachment_reads_in_bounded_memory(tmp_path: Path) -> None:
    path = tmp_path / "big.bin"
    with path.open("wb") as file:
        file.truncate(BIG)  # sparse: cheap to make, read like any file
    message = compose(
        sender="a@example.com", subject="big", text="see attached", attachments=[Attachment(path)]
    )
    length = message.length
    total, peak = await drain_measuring_peak(message)
    assert total == length
    assert total > BIG * 4 // 3
    assert peak < PEAK_LIMIT, f"peak {peak} octets"


async def test_large_stream_attachment_reads_in_bounded_memory() -> None:
    message = compose(
        sender="a@example.com", subject="big", attachments=[Attachment(ZeroStream(BIG), size=BIG)]
    )
    length = message.length
    total, peak = await drain_measuring_peak(message)
    assert total == length
    assert peak < PEAK_LIMIT, f"peak {peak} octets"


async def test_the_peak_measurement_sees_a_buffered_message() -> None:
    # The bound above must be able to fail: a message held whole trips it.
    data = bytes(4 * READ_SIZE * 16)
    message = compose(sender="a@example.com", subject="big", attachments=[Attachment(data)])
    tracemalloc.start()
    try:
        async with message:
            whole = b""
            while chunk := await message.receive_some():
                whole += chunk
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak > PEAK_LIMIT
