"""`make chaos`: the long fault scenario, RabbitMQ and PostgreSQL restarts included.

It restarts the machine's RabbitMQ application and PostgreSQL cluster: run it alone.
"""

from __future__ import annotations

import argparse
import asyncio
import sys

from fluxpay_testing.infra import isolated_infra

from tests.chaos.scenario import chaos_stack, report, run_chaos


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=120)
    parser.add_argument("--rate", type=float, default=20)
    parser.add_argument("--gap", type=float, default=10, help="seconds between faults")
    parser.add_argument("--no-infra", action="store_true", help="skip RabbitMQ/PG restarts")
    args = parser.parse_args()
    with isolated_infra() as infra:
        stack = chaos_stack(infra, "chaos", "0.5", "0,1,2,3,5,5,5,5")
        stack.start()
        try:
            stack.wait_ready()
            figures = asyncio.run(
                run_chaos(
                    infra,
                    stack,
                    seconds=args.seconds,
                    rate=args.rate,
                    gap=args.gap,
                    full=not args.no_infra,
                )
            )
        finally:
            codes = stack.stop()
        print(report(figures))
        print(f"exit codes on SIGTERM: {codes}; logs in {stack.log_dir}")
    sys.exit(1 if figures.problems else 0)


if __name__ == "__main__":
    main()
