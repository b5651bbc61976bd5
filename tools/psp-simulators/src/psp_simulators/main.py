"""`fluxpay-psp-sim --psp NAME --port N`: run one PSP simulator (see each module).

`--webhook-url` (where the PSP notifies; MTN uses each request's X-Callback-Url instead)
and `--delay` (seconds a simulated customer takes) override the environment settings.
"""

from __future__ import annotations

import argparse
import importlib
import os

import uvicorn

SIMULATORS = ("novasend", "irembopay", "mtn_momo", "stripe")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--psp", required=True, choices=SIMULATORS)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--webhook-url", default=None)
    parser.add_argument("--delay", type=float, default=None)
    args = parser.parse_args()
    if args.webhook_url is not None:
        os.environ[f"PSP_SIM_{args.psp.upper()}_WEBHOOK_URL"] = args.webhook_url
    if args.delay is not None:
        os.environ["PSP_SIM_DELAY_SECONDS"] = str(args.delay)
    module = importlib.import_module(f"psp_simulators.{args.psp}")
    uvicorn.run(module.create_app(), host=args.host, port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
