"""`fluxpay-connector --provider NAME`: one provider per process, on `connector.<NAME>`."""

from __future__ import annotations

import argparse
from importlib import resources

from fluxpay_common import runtime
from provider_connectors.bootstrap import ConnectorWorker
from provider_connectors.config import Settings

SCHEMA = "connectors"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="fluxpay-connector", description=__doc__)
    parser.add_argument("--provider", required=True, help="sandbox, novasend, mtn_momo, ...")
    parser.add_argument(
        "--http-port",
        type=int,
        default=None,
        help="callback server port (overrides FLUXPAY_CONNECTOR_HTTP_PORT)",
    )
    return parser.parse_args(argv)


async def serve(settings: Settings) -> None:
    worker = ConnectorWorker(settings)
    await runtime.serve_worker(
        f"connector-{settings.provider}",
        settings,
        schema=SCHEMA,
        migrations=resources.files("provider_connectors") / "migrations",
        register=worker.register,
        started=worker.started,
        http_app=worker.http_app,
        http_host=settings.connector_http_host,
        http_port=settings.connector_http_port,
    )


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    overrides: dict[str, object] = {"provider": args.provider}
    if args.http_port is not None:
        overrides["connector_http_port"] = args.http_port
    settings = Settings(**overrides)
    runtime.run(lambda: serve(settings))
