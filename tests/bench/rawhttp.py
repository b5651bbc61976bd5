"""A minimal HTTP/1.1 keep-alive client for the open loop: O(1) per request.

httpx's connection pool scans its connections and queued requests on every event, which is
quadratic in the requests in flight: under overload (hundreds of creates waiting) the load
generator itself became the bottleneck and its own lateness was counted as API latency. This
client keeps idle connections in a stack, opens one more when none is idle, and speaks just
what the benchmark's POST needs (JSON body, Content-Length responses). Errors are raised as
httpx's, so the tallies read the same.
"""

from __future__ import annotations

import asyncio
from typing import Any
from urllib.parse import urlsplit

import httpx
import orjson


class RawResponse:
    def __init__(self, status_code: int, headers: dict[str, str], body: bytes) -> None:
        self.status_code = status_code
        self.headers = headers
        self.content = body

    def json(self) -> Any:
        return orjson.loads(self.content)


class RawClient:
    def __init__(self, base_url: str, headers: dict[str, str], timeout: float) -> None:
        parts = urlsplit(base_url)
        self._host = parts.hostname or "127.0.0.1"
        self._port = parts.port or 80
        self._prefix = parts.path.rstrip("/")
        self._headers = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        self._timeout = timeout
        self._idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []

    async def post(self, path: str, json: Any, headers: dict[str, str]) -> RawResponse:
        try:
            return await asyncio.wait_for(self._post(path, json, headers), self._timeout)
        except TimeoutError:
            raise httpx.ReadTimeout(f"no answer within {self._timeout}s") from None

    async def _post(self, path: str, json: Any, headers: dict[str, str]) -> RawResponse:
        body = orjson.dumps(json)
        extra = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        head = (
            f"POST {self._prefix}{path} HTTP/1.1\r\nHost: {self._host}:{self._port}\r\n"
            f"{self._headers}{extra}Content-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        )
        reader, writer = await self._connection()
        try:
            writer.write(head.encode() + body)
            status, response_headers = await self._read_head(reader)
            content = await reader.readexactly(int(response_headers.get("content-length", "0")))
        except (OSError, asyncio.IncompleteReadError, ValueError) as exc:
            writer.close()
            raise httpx.ReadError(repr(exc)) from exc
        if response_headers.get("connection", "").lower() == "close":
            writer.close()
        else:
            self._idle.append((reader, writer))
        return RawResponse(status, response_headers, content)

    async def _connection(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        while self._idle:
            reader, writer = self._idle.pop()
            if not writer.is_closing() and not reader.at_eof():
                return reader, writer
            writer.close()
        try:
            return await asyncio.open_connection(self._host, self._port)
        except OSError as exc:
            raise httpx.ConnectError(repr(exc)) from exc

    @staticmethod
    async def _read_head(reader: asyncio.StreamReader) -> tuple[int, dict[str, str]]:
        raw = await reader.readuntil(b"\r\n\r\n")
        lines = raw.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ", 2)[1])
        headers = {}
        for line in lines[1:]:
            if ":" in line:
                name, value = line.split(":", 1)
                headers[name.strip().lower()] = value.strip()
        return status, headers

    async def aclose(self) -> None:
        for _, writer in self._idle:
            writer.close()
        self._idle.clear()
