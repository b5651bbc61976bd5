"""A reverse proxy in front of the gateway that fails chosen requests, as a load balancer
or a network does: answer an error without forwarding, or forward and lose the answer.

Tests use it to show how a client behaves when the platform's answer never arrives.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx

HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "content-length", "host"}


@dataclass(frozen=True)
class Fault:
    """The answer given instead of the gateway's; `after_forwarding`: the gateway did
    handle the request, only its answer is lost."""

    status: int
    after_forwarding: bool = False
    headers: tuple[tuple[str, str], ...] = ()
    body: bytes = b'{"error": {"type": "api_error", "code": "bad_gateway", "message": "proxy"}}'


@dataclass(frozen=True)
class Seen:
    method: str
    path: str
    headers: dict[str, str]
    answered: int


@dataclass
class FlakyProxy:
    upstream: str
    faults: list[Fault] = field(default_factory=list)
    seen: list[Seen] = field(default_factory=list)
    _server: ThreadingHTTPServer | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def url(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def fail_next(self, *faults: Fault) -> None:
        with self._lock:
            self.faults.extend(faults)

    def _next_fault(self) -> Fault | None:
        with self._lock:
            return self.faults.pop(0) if self.faults else None

    def _record(self, seen: Seen) -> None:
        with self._lock:
            self.seen.append(seen)

    def start(self) -> FlakyProxy:
        proxy = self
        client = httpx.Client(base_url=self.upstream, timeout=30)

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                body = self.rfile.read(length) if length else b""
                headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP}
                fault = proxy._next_fault()
                if fault is None or fault.after_forwarding:
                    answer = client.request(self.command, self.path, content=body, headers=headers)
                    status, out_headers, out_body = (
                        answer.status_code,
                        [(k, v) for k, v in answer.headers.items() if k.lower() not in HOP_BY_HOP],
                        answer.content,
                    )
                if fault is not None:
                    status, out_headers, out_body = fault.status, list(fault.headers), fault.body
                proxy._record(Seen(self.command, self.path, dict(self.headers.items()), status))
                self.send_response(status)
                for key, value in out_headers:
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(out_body)))
                self.end_headers()
                self.wfile.write(out_body)

            do_GET = do_POST = do_PUT = do_DELETE = _handle

            def log_message(self, *_: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    def requests_to(self, method: str, path_prefix: str) -> list[Seen]:
        with self._lock:
            return [s for s in self.seen if s.method == method and s.path.startswith(path_prefix)]
