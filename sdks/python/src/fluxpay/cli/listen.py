"""`fluxpay listen --forward-to URL`: your test events, delivered to a local server.

The CLI holds one long-lived HTTPS request to `GET /api/v1/events/stream` (Server-Sent
Events, test keys only): FluxPay pushes each new test event down it with its raw body and a
fresh `X-FluxPay-Signature` made with your webhook secret, and the CLI POSTs both to your
local URL exactly as a webhook delivery would. No public URL, no tunnel: the connection is
outgoing. A dropped stream is reopened; events created while it was down are not replayed
here (`fluxpay` lists them in `GET /api/v1/events`, `events.replay` sends them again).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime

import httpx

from fluxpay._base import ClientConfig, status_error
from fluxpay.errors import FluxPayError
from fluxpay.webhooks import EVENT_ID_HEADER, SIGNATURE_HEADER

Say = Callable[[str], None]
RECONNECT_DELAYS = (1.0, 2.0, 5.0, 10.0)
# The stream sends a heartbeat every 15 s; silence for longer means it is gone.
READ_TIMEOUT = 45.0


@dataclass
class ServerSentEvent:
    event: str = "message"
    id: str | None = None
    data: list[str] = field(default_factory=list)


def parse_sse(lines: Iterator[str]) -> Iterator[ServerSentEvent]:
    """Events of a `text/event-stream`, comments (`: ...`) skipped."""
    current = ServerSentEvent()
    for line in lines:
        if not line:
            if current.data:
                yield current
            current = ServerSentEvent()
            continue
        if line.startswith(":"):
            continue
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "event":
            current.event = value
        elif name == "id":
            current.id = value
        elif name == "data":
            current.data.append(value)


@dataclass
class Forwarder:
    forward_to: str
    say: Say
    http: httpx.Client
    event_types: frozenset[str] | None = None
    forwarded: int = 0

    def forward(self, item: dict[str, str]) -> None:
        if self.event_types and item["type"] not in self.event_types:
            return
        at = datetime.now().strftime("%H:%M:%S")
        try:
            answer = self.http.post(
                self.forward_to,
                content=item["body"].encode(),
                headers={
                    "Content-Type": "application/json",
                    SIGNATURE_HEADER: item["signature"],
                    EVENT_ID_HEADER: item["id"],
                    "User-Agent": "fluxpay-cli-listen",
                },
            )
            outcome = f"[{answer.status_code} {answer.reason_phrase}]"
        except httpx.HTTPError as exc:
            outcome = f"[failed: {exc!r}]"
        self.forwarded += 1
        self.say(f"{at}  --> {item['type']} [{item['id']}]  <-- {outcome} POST {self.forward_to}")


def listen(
    config: ClientConfig,
    forward_to: str,
    say: Say,
    event_types: frozenset[str] | None = None,
    max_events: int | None = None,
) -> int:
    """Forward until interrupted (or `max_events` forwarded); the exit code."""
    with httpx.Client(timeout=config.timeout) as http:
        forwarder = Forwarder(forward_to, say, http, event_types)
        failures = 0
        while max_events is None or forwarder.forwarded < max_events:
            try:
                _stream_once(config, forwarder, say, max_events)
                failures = 0
                time.sleep(RECONNECT_DELAYS[0])  # the server closed it: reopen, gently
            except httpx.HTTPError as exc:
                delay = RECONNECT_DELAYS[min(failures, len(RECONNECT_DELAYS) - 1)]
                failures += 1
                say(f"Stream interrupted ({exc!r}); reconnecting in {delay:.0f} s...")
                time.sleep(delay)
    return 0


def _stream_once(
    config: ClientConfig, forwarder: Forwarder, say: Say, max_events: int | None
) -> None:
    timeout = httpx.Timeout(config.timeout.connect or 10.0, read=READ_TIMEOUT)
    url = config.base_url + "/events/stream"
    with httpx.stream("GET", url, headers=config.headers(), timeout=timeout) as response:
        if response.status_code != 200:
            response.read()
            raise status_error(response)
        say(f"Ready! Forwarding your test events to {forwarder.forward_to} (^C to quit)")
        for message in parse_sse(response.iter_lines()):
            item = json.loads("\n".join(message.data))
            if message.event == "error":
                raise FluxPayError(f"The stream stopped: {item.get('error', item)}")
            forwarder.forward(item)
            if max_events is not None and forwarder.forwarded >= max_events:
                return
