"""`fluxpay-psp-sim --psp NAME --port N`: run one PSP simulator (see each module)."""

from __future__ import annotations

import argparse
import importlib

import uvicorn

SIMULATORS = ("novasend", "irembopay", "mtn_momo", "stripe")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--psp", required=True, choices=SIMULATORS)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    module = importlib.import_module(f"psp_simulators.{args.psp}")
    uvicorn.run(module.create_app(), host=args.host, port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
