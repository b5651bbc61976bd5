"""The image builds from this checkout (buildah, no Docker daemon) and every entry point
runs inside it; the gateway started in it against this machine's PostgreSQL and RabbitMQ
(its own database and vhost) answers its readiness route.

Slow (a full image build): runs when FLUXPAY_IMAGE_TESTS=1, as `make image-test` and
.ci/run do.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from fluxpay_testing.infra import Infra, free_port, isolated_infra, wait_for

ROOT = Path(__file__).resolve().parents[2]
IMAGE = "localhost/fluxpay:latest"
BUILDAH = ["buildah", "--storage-driver", "vfs"]
ENTRY_POINTS = [
    ["fluxpay-admin", "--help"],
    ["fluxpay-gateway", "--help"],
    ["fluxpay-orchestrator", "--help"],
    ["fluxpay-ledger", "--help"],
    ["fluxpay-webhooks", "--help"],
    ["fluxpay-connector", "--help"],
    ["fluxpay-psp-sim", "--help"],
]

pytestmark = pytest.mark.skipif(
    os.environ.get("FLUXPAY_IMAGE_TESTS") != "1" or shutil.which("buildah") is None,
    reason="image build: FLUXPAY_IMAGE_TESTS=1 and buildah (make image-test)",
)


@pytest.fixture(scope="module")
def infra() -> Iterator[Infra]:
    """The gateway's own database and vhost, like every test fixture's."""
    with isolated_infra() as own:
        yield own


@pytest.fixture(scope="module")
def image() -> str:
    started = time.monotonic()
    subprocess.run(["bash", "deploy/image/build.sh"], cwd=ROOT, check=True, timeout=1800)
    print(f"image built in {time.monotonic() - started:.0f}s")
    return IMAGE


@pytest.fixture(scope="module")
def container(image: str) -> Iterator[str]:
    name = f"fluxpay-test-{uuid.uuid4().hex[:8]}"
    subprocess.run([*BUILDAH, "from", "--name", name, image], check=True, capture_output=True)
    yield name
    subprocess.run([*BUILDAH, "rm", name], check=True, capture_output=True)


def _run(container: str, *command: str, env: dict[str, str] | None = None) -> list[str]:
    flags = [f"--env={k}={v}" for k, v in (env or {}).items()]
    return [*BUILDAH, "run", "--isolation", "chroot", *flags, container, "--", *command]


def test_image_runs_as_a_fixed_non_root_user_without_dev_dependencies(
    image: str, container: str
) -> None:
    inspected = subprocess.run(
        [*BUILDAH, "inspect", "--type", "image", image], check=True, capture_output=True
    )
    assert json.loads(inspected.stdout)["OCIv1"]["config"]["User"] == "10001:10001"
    whoami = subprocess.run(_run(container, "id", "-u"), capture_output=True, text=True)
    assert whoami.stdout.strip() == "10001"
    dev = subprocess.run(_run(container, "python3", "-c", "import pytest"), capture_output=True)
    assert dev.returncode != 0


@pytest.mark.parametrize("command", ENTRY_POINTS, ids=lambda c: c[0])
def test_every_console_script_runs_in_the_image(container: str, command: list[str]) -> None:
    result = subprocess.run(_run(container, *command), capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "usage:" in result.stdout


@contextlib.contextmanager
def _started(command: list[str]) -> Iterator[subprocess.Popen[bytes]]:
    process = subprocess.Popen(
        command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    try:
        yield process
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


async def test_gateway_in_the_image_becomes_ready_on_this_machines_servers(
    container: str, infra: Infra
) -> None:
    port = free_port()
    env = {
        **infra.env(),
        "FLUXPAY_GATEWAY_HOST": "127.0.0.1",
        "FLUXPAY_GATEWAY_PORT": str(port),
    }
    # chroot isolation shares this machine's network: 127.0.0.1 is the host's.
    with _started(_run(container, "fluxpay-gateway", env=env)) as process:

        async def ready() -> dict[str, object] | None:
            async with httpx.AsyncClient(timeout=5) as client:
                try:
                    response = await client.get(f"http://127.0.0.1:{port}/readyz")
                except httpx.TransportError:
                    return None
            return response.json() if response.status_code == 200 else None

        body = await wait_for(ready, timeout=120, interval=0.5, what="gateway /readyz in image")
        assert process.poll() is None
    assert body["checks"] == {"database": True, "broker": True}
