"""httpcore's network layer on plain asyncio streams, for the webhook sender.

httpcore's default backend goes through anyio (cancel scopes, task lookups, typed attribute
maps on every read, write and keep-alive check): on the dispatcher's hot path that was the
largest single share of its CPU. The sender needs nothing anyio adds: it runs on asyncio
only and bounds every attempt with its own deadline. Connecting, TLS (the SNI hostname and
certificate check httpcore asks for: pinned requests keep the merchant's hostname) and
reading behave as httpcore expects of any backend; errors map to httpcore's exceptions, which
the sender reports by name as before (`ConnectError`, `ReadTimeout`, ...).
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Iterable
from types import TracebackType
from typing import Any

import httpcore

# Bytes held back at most before they are sent without waiting for the next read.
FLUSH_BYTES = 64 * 1024

SocketOption = (
    tuple[int, int, int] | tuple[int, int, bytes | bytearray] | tuple[int, int, None, int]
)


class _Mapped:
    """A deadline (None: none) and httpcore's exceptions for what goes wrong within it."""

    __slots__ = ("_deadline", "_on_error", "_on_timeout")

    def __init__(
        self, timeout: float | None, on_timeout: type[Exception], on_error: type[Exception]
    ) -> None:
        self._deadline = asyncio.timeout(timeout)
        self._on_timeout = on_timeout
        self._on_error = on_error

    async def __aenter__(self) -> None:
        await self._deadline.__aenter__()

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        try:
            await self._deadline.__aexit__(kind, exc, tb)
        except TimeoutError as timeout:
            raise self._on_timeout("timed out") from timeout
        if isinstance(exc, TimeoutError):
            raise self._on_timeout(str(exc) or "timed out") from exc
        if isinstance(exc, OSError):  # ssl.SSLError included
            raise self._on_error(str(exc) or type(exc).__name__) from exc


class AsyncioStream(httpcore.AsyncNetworkStream):
    """Writes are held until the next read (or `FLUSH_BYTES`): a request's headers and body
    leave in one send, not two (each send to a local receiver costs a system call and its
    wake-up; a small second segment may also wait on Nagle or a delayed ACK)."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader = reader
        self._writer = writer
        self._unsent: list[bytes] = []
        self._unsent_bytes = 0

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        if self._unsent:
            await self._flush(timeout)
        async with _Mapped(timeout, httpcore.ReadTimeout, httpcore.ReadError):
            return await self._reader.read(max_bytes)

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:
        if not buffer:
            return
        self._unsent.append(buffer)
        self._unsent_bytes += len(buffer)
        if self._unsent_bytes >= FLUSH_BYTES:
            await self._flush(timeout)

    async def _flush(self, timeout: float | None) -> None:
        data = b"".join(self._unsent)
        self._unsent.clear()
        self._unsent_bytes = 0
        async with _Mapped(timeout, httpcore.WriteTimeout, httpcore.WriteError):
            self._writer.write(data)
            await self._writer.drain()

    async def aclose(self) -> None:
        self._writer.close()

    async def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore.AsyncNetworkStream:
        async with _Mapped(timeout, httpcore.ConnectTimeout, httpcore.ConnectError):
            try:
                await self._writer.start_tls(ssl_context, server_hostname=server_hostname)
            except BaseException:
                self._writer.close()
                raise
        return self

    def get_extra_info(self, info: str) -> Any:
        if info == "is_readable":
            # An idle kept-alive connection with something to read: the server closed it
            # (or broke the protocol); httpcore then drops it instead of reusing it. The
            # reader's buffer holds what arrived unasked (StreamReader has no public peek).
            return self._reader.at_eof() or bool(getattr(self._reader, "_buffer", b""))
        key = {"client_addr": "sockname", "server_addr": "peername"}.get(info, info)
        return self._writer.get_extra_info(key)


class AsyncioBackend(httpcore.AsyncNetworkBackend):
    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[SocketOption] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        local = (local_address, 0) if local_address else None
        async with _Mapped(timeout, httpcore.ConnectTimeout, httpcore.ConnectError):
            reader, writer = await asyncio.open_connection(host, port, local_addr=local)
        sock = writer.get_extra_info("socket")
        for option in socket_options or ():
            sock.setsockopt(*option)
        return AsyncioStream(reader, writer)

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: Iterable[SocketOption] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        raise httpcore.ConnectError("unix sockets are not a webhook destination")

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)
