"""The whole platform as processes, as `make up` runs it, on free ports, for tests.

Each service is started from its console script with the test run's database and vhost.
Logs go to `artifacts/<run>/<service>.log` so a failing test can be read afterwards.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from fluxpay_testing.infra import Infra, free_port

BIN = Path(sys.executable).parent
ROOT = Path(__file__).resolve().parents[2]


@dataclass
class ServiceSpec:
    name: str
    argv: list[str]
    # Settings of this process only (its health port, say), over the stack's.
    env: dict[str, str] = field(default_factory=dict)


def default_services(providers: tuple[str, ...] = ("sandbox",)) -> list[ServiceSpec]:
    specs = [
        ServiceSpec("gateway", ["fluxpay-gateway"]),
        ServiceSpec("orchestrator", ["fluxpay-orchestrator"]),
        ServiceSpec("ledger", ["fluxpay-ledger"]),
        ServiceSpec("webhooks", ["fluxpay-webhooks"]),
    ]
    specs += [
        ServiceSpec(f"connector-{p}", ["fluxpay-connector", "--provider", p]) for p in providers
    ]
    return specs


@dataclass
class Stack:
    infra: Infra
    log_dir: Path
    extra_env: dict[str, str] = field(default_factory=dict)
    services: list[ServiceSpec] = field(default_factory=default_services)
    port: int = field(default_factory=free_port)
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("FLUXPAY_")}
        env.update(self.infra.env())
        env.update(
            {
                "FLUXPAY_GATEWAY_HOST": "127.0.0.1",
                "FLUXPAY_GATEWAY_PORT": str(self.port),
                "FLUXPAY_CHECKOUT_BASE_URL": f"{self.base_url}/checkout",
                "FLUXPAY_LOG_LEVEL": "INFO",
                "PYTHONUNBUFFERED": "1",
            }
        )
        env.update(self.extra_env)
        return env

    def start(self) -> None:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        for spec in self.services:
            self.start_service(spec.name)

    def start_service(self, name: str) -> None:
        spec = next(s for s in self.services if s.name == name)
        log = (self.log_dir / f"{name}.log").open("ab")
        self.processes[name] = subprocess.Popen(
            [str(BIN / spec.argv[0]), *spec.argv[1:]],
            env={**self.env(), **spec.env},
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=ROOT,
            start_new_session=True,
        )

    def kill(self, name: str, sig: int = signal.SIGKILL) -> None:
        process = self.processes[name]
        process.send_signal(sig)
        process.wait(timeout=30)

    def stop(self) -> dict[str, int | None]:
        """SIGTERM every service (graceful), then SIGKILL what has not exited; exit codes."""
        for process in self.processes.values():
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 20
        codes: dict[str, int | None] = {}
        for name, process in self.processes.items():
            try:
                codes[name] = process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                process.kill()
                codes[name] = None
        return codes

    def dead_services(self) -> list[str]:
        return [name for name, p in self.processes.items() if p.poll() is not None]

    def wait_ready(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if dead := self.dead_services():
                raise RuntimeError(f"services exited at start-up: {dead}; logs in {self.log_dir}")
            try:
                if httpx.get(f"{self.base_url}/api/v1/collect/openapi.json", timeout=1).is_success:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"the gateway did not answer within {timeout}s; logs in {self.log_dir}")

    def admin(self, *args: str, env: dict[str, str] | None = None) -> dict[str, object]:
        """`fluxpay-admin ARGS` with the stack's settings (plus `env`), its JSON answer."""
        result = subprocess.run(
            [str(BIN / "fluxpay-admin"), *args],
            env={**self.env(), **(env or {})},
            capture_output=True,
            cwd=ROOT,
            timeout=60,
            check=False,
        )
        if result.returncode != 0:
            raise RuntimeError(f"fluxpay-admin {args} failed: {result.stderr.decode()[-2000:]}")
        return json.loads(result.stdout)


@dataclass(frozen=True)
class Psp:
    """A PSP simulator and its connector running beside a stack."""

    sim_url: str
    callback_port: int


def add_psp(stack: Stack, provider: str, poll_seconds: str = "0.5") -> Psp:
    """Start `provider`'s simulator and connector (stopped with the stack), wired together."""
    sim_port, callback_port = free_port(), free_port()
    sim_url = f"http://127.0.0.1:{sim_port}"
    callback_url = f"http://127.0.0.1:{callback_port}/callbacks/{provider}"
    stack.extra_env[f"FLUXPAY_{provider.upper()}_BASE_URL"] = sim_url
    stack.extra_env[f"FLUXPAY_{provider.upper()}_POLL_SECONDS"] = poll_seconds
    if provider == "mtn_momo":
        stack.extra_env["FLUXPAY_MTN_MOMO_CALLBACK_URL"] = callback_url
    sim = ServiceSpec(
        f"sim-{provider}",
        ["fluxpay-psp-sim", "--psp", provider, "--port", str(sim_port),
         "--webhook-url", callback_url, "--delay", "0.3"],
    )  # fmt: skip
    connector = ServiceSpec(
        f"connector-{provider}",
        ["fluxpay-connector", "--provider", provider, "--http-port", str(callback_port)],
    )
    stack.services += [sim, connector]
    stack.start_service(sim.name)
    stack.start_service(connector.name)
    return Psp(sim_url, callback_port)
