"""A merchant's webhook endpoint for tests: records every request, can be told to fail."""

from __future__ import annotations

import ssl
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from fluxpay_common import signing


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    # The client's (host, port): one per connection, so kept-alive requests share it.
    peer: tuple[str, int] = ("", 0)
    at: float = field(default_factory=time.monotonic)
    wall: float = field(default_factory=time.time)


@dataclass
class WebhookReceiver:
    """`respond(received) -> status` decides each answer (default 200)."""

    respond: Callable[[Received], int] = lambda _: 200
    requests: list[Received] = field(default_factory=list)
    _server: ThreadingHTTPServer | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _scheme: str = "http"

    def start(self, ssl_context: ssl.SSLContext | None = None) -> WebhookReceiver:
        """Serve http, or https with `ssl_context` (a server context with its certificate)."""
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            # Keeps connections alive, as a merchant's web server does.
            protocol_version = "HTTP/1.1"
            # Buffered: the status line, headers and body leave in one write (flushed after
            # each request), not three small segments that Nagle's algorithm would delay on a
            # kept-alive connection.
            wbufsize = 64 * 1024

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                received = Received(
                    self.path,
                    dict(self.headers.items()),
                    self.rfile.read(length),
                    peer=self.client_address[:2],
                )
                with receiver._lock:
                    receiver.requests.append(received)
                status = receiver.respond(received)
                self.send_response(status)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *_: object) -> None:
                pass

        self._server = _QuietServer(("127.0.0.1", 0), Handler)
        if ssl_context is not None:
            self._scheme = "https"
            self._server.socket = ssl_context.wrap_socket(self._server.socket, server_side=True)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    @property
    def url(self) -> str:
        assert self._server is not None
        return f"{self._scheme}://127.0.0.1:{self._server.server_address[1]}/webhooks"

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()

    def snapshot(self) -> list[Received]:
        with self._lock:
            return list(self.requests)

    def verified_events(self, secret: str) -> list[tuple[dict[str, object], Received]]:
        """Events whose X-FluxPay-Signature verifies with `secret`, parsed.

        Checked as the receiver would have when the request arrived (the signature's timestamp
        against the arrival time), so a long run's early events still count.
        """
        import json

        out = []
        for received in self.snapshot():
            header = received.headers.get(signing.SIGNATURE_HEADER, "")
            if signing.verify(secret, header, received.body, now=received.wall):
                out.append((json.loads(received.body), received))
        return out


class _QuietServer(ThreadingHTTPServer):
    """A kept-alive connection reset by a dispatcher killed mid-run is expected, not news."""

    daemon_threads = True
    # socketserver listens with a backlog of 5: a burst of new connections from the
    # dispatcher overflowed it under load (SYNs dropped, retried 1 s, 3 s, 7 s later).
    request_queue_size = 128

    def handle_error(self, request: object, client_address: object) -> None:
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)  # type: ignore[arg-type]
