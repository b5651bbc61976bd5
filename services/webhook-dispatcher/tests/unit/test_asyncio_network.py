"""The sender's network stream: a request's writes leave together, at the first read."""

import asyncio

from webhook_dispatcher.adapters import asyncio_network
from webhook_dispatcher.adapters.asyncio_network import AsyncioStream


class _Writer:
    def __init__(self) -> None:
        self.sent: list[bytes] = []

    def write(self, data: bytes) -> None:
        self.sent.append(data)

    async def drain(self) -> None:
        pass


async def test_headers_and_body_leave_in_one_send_before_the_answer_is_read() -> None:
    reader = asyncio.StreamReader()
    reader.feed_data(b"HTTP/1.1 200 OK\r\n")
    writer = _Writer()
    stream = AsyncioStream(reader, writer)  # type: ignore[arg-type]

    await stream.write(b"POST / HTTP/1.1\r\n\r\n")
    await stream.write(b'{"id":1}')
    assert writer.sent == [], "held until the answer is awaited"
    assert await stream.read(100, timeout=1) == b"HTTP/1.1 200 OK\r\n"
    assert writer.sent == [b'POST / HTTP/1.1\r\n\r\n{"id":1}']


async def test_a_large_body_is_sent_without_waiting_for_a_read(monkeypatch) -> None:
    monkeypatch.setattr(asyncio_network, "FLUSH_BYTES", 10)
    writer = _Writer()
    stream = AsyncioStream(asyncio.StreamReader(), writer)  # type: ignore[arg-type]
    await stream.write(b"head")
    await stream.write(b"a body of more than ten bytes")
    assert writer.sent == [b"heada body of more than ten bytes"]
