"""What every PSP simulator shares: simulated customers, callbacks, fault injection.

Customers are decided by the phone's last six digits (for cards: the `phone` metadata):

| last six digits | customer |
|---|---|
| `000001`, unlisted | approves after the delay; the PSP calls back |
| `000002` | refuses (insufficient funds) after the delay; the PSP calls back |
| `000003` | never answers: the PSP times the request out after its TTL |
| `000004` | approves, but the PSP's callback never comes (status polling only) |
| `000005` | approves; every refund of it fails at the PSP |
| `000006` | must confirm through the PSP's payment link; approves after the delay |

Test-only endpoints under `/_sim`: inject faults (`POST /_sim/faults`: the next `count`
matching requests answer `status` without effect, or take effect and answer after
`delay_seconds`), read the callbacks sent (`GET /_sim/callbacks`) and the requests seen
(`GET /_sim/requests`).
"""

from __future__ import annotations

import asyncio
import os
import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import asdict, dataclass, field
from enum import Enum
from typing import Any, Literal

import httpx
from fastapi import APIRouter, FastAPI, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel


class Customer(Enum):
    APPROVES = "approves"
    REFUSES = "refuses"
    SILENT = "silent"
    APPROVES_WITHOUT_CALLBACK = "approves_without_callback"
    REFUND_FAILS = "refund_fails"
    CONFIRMS_BY_LINK = "confirms_by_link"


_CUSTOMERS = {
    "000002": Customer.REFUSES,
    "000003": Customer.SILENT,
    "000004": Customer.APPROVES_WITHOUT_CALLBACK,
    "000005": Customer.REFUND_FAILS,
    "000006": Customer.CONFIRMS_BY_LINK,
}


def customer_of(phone: str | None) -> Customer:
    digits = re.sub(r"\D", "", phone or "")
    return _CUSTOMERS.get(digits[-6:], Customer.APPROVES)


def approves(customer: Customer) -> bool:
    return customer in (
        Customer.APPROVES,
        Customer.APPROVES_WITHOUT_CALLBACK,
        Customer.REFUND_FAILS,
        Customer.CONFIRMS_BY_LINK,
    )


def env_float(name: str, default: float) -> float:
    raw = os.environ.get(name)
    return float(raw) if raw else default


def env_str(name: str, default: str) -> str:
    return os.environ.get(name) or default


# ---------------------------------------------------------------- fault injection


class FaultSpec(BaseModel):
    method: str = "POST"
    path: str
    kind: Literal["error", "slow"] = "error"
    status: int = 503
    delay_seconds: float = 0.0
    count: int = 1


@dataclass
class Faults:
    pending: list[FaultSpec] = field(default_factory=list)

    def take(self, method: str, path: str) -> FaultSpec | None:
        for fault in self.pending:
            if fault.method.upper() == method.upper() and path.startswith(fault.path):
                fault.count -= 1
                if fault.count <= 0:
                    self.pending.remove(fault)
                return fault
        return None


# ---------------------------------------------------------------- callbacks out


@dataclass
class SentCallback:
    url: str
    headers: dict[str, str]
    body: str
    status: int | None


class CallbackSender:
    """Delivers a PSP's notification, retrying a few times like a real PSP would."""

    def __init__(self, attempts: int = 3, backoff_seconds: float = 0.3) -> None:
        self.sent: list[SentCallback] = []
        self._attempts = attempts
        self._backoff = backoff_seconds

    async def send(
        self, url: str | None, body: bytes, headers: Mapping[str, str], method: str = "POST"
    ) -> None:
        if not url:
            return
        async with httpx.AsyncClient(timeout=5) as client:
            for attempt in range(self._attempts):
                status: int | None = None
                try:
                    response = await client.request(
                        method, url, content=body, headers=dict(headers)
                    )
                    status = response.status_code
                except httpx.HTTPError:
                    status = None
                self.sent.append(SentCallback(url, dict(headers), body.decode(), status))
                if status is not None and status < 500 and status != 404:
                    return
                await asyncio.sleep(self._backoff * (attempt + 1))


# ---------------------------------------------------------------- the shared app shell


@dataclass
class SimulatorCore:
    """Fault injection, request log, callbacks and the simulated customers' timers."""

    faults: Faults = field(default_factory=Faults)
    callbacks: CallbackSender = field(default_factory=CallbackSender)
    requests: list[dict[str, Any]] = field(default_factory=list)
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)

    def later(self, seconds: float, action: Callable[[], Awaitable[object]]) -> None:
        """Run `action` after `seconds` (a simulated customer or PSP clock)."""

        async def run() -> None:
            await asyncio.sleep(seconds)
            await action()

        task = asyncio.create_task(run())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def install(self, app: FastAPI) -> None:
        app.middleware("http")(self._middleware)
        app.include_router(self._admin_router())

    async def _middleware(
        self, request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        path = request.url.path
        if path.startswith("/_sim"):
            return await call_next(request)
        body = (await request.body()).decode(errors="replace")[:4000]
        self.requests.append(
            {"method": request.method, "path": path, "headers": dict(request.headers), "body": body}
        )
        fault = self.faults.take(request.method, path)
        if fault is not None and fault.kind == "error":
            return JSONResponse({"error": "simulated outage"}, status_code=fault.status)
        response = await call_next(request)
        if fault is not None and fault.kind == "slow":
            await asyncio.sleep(fault.delay_seconds)
        return response

    def _admin_router(self) -> APIRouter:
        router = APIRouter(prefix="/_sim", include_in_schema=False)

        @router.post("/faults")
        async def add_fault(spec: FaultSpec) -> dict[str, int]:
            self.faults.pending.append(spec)
            return {"pending": len(self.faults.pending)}

        @router.delete("/faults")
        async def clear_faults() -> dict[str, int]:
            self.faults.pending.clear()
            return {"pending": 0}

        @router.get("/callbacks")
        async def sent_callbacks() -> list[dict[str, Any]]:
            return [asdict(c) for c in self.callbacks.sent]

        @router.get("/requests")
        async def seen_requests(path: str = "", method: str = "") -> list[dict[str, Any]]:
            return [
                r
                for r in self.requests
                if r["path"].startswith(path) and (not method or r["method"] == method.upper())
            ]

        return router
