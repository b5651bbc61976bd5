"""The `fluxpay` command: log in with a test key, create and read payments, trigger every
webhook event type in the sandbox, and forward your test events to a local server."""

from __future__ import annotations

import argparse
import getpass
import json
import sys
import uuid
from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel

from fluxpay import FluxPay
from fluxpay._base import ClientConfig
from fluxpay.cli import config, listen, triggers
from fluxpay.errors import FluxPayError
from fluxpay.models import EVENT_TYPES


def say(line: str) -> None:
    print(line, flush=True)


def show(value: BaseModel | list[Any]) -> None:
    if isinstance(value, BaseModel):
        say(value.model_dump_json(indent=2, exclude_none=True))
    else:
        say(json.dumps([v.model_dump(mode="json", exclude_none=True) for v in value], indent=2))


def _client(args: argparse.Namespace) -> FluxPay:
    profile = config.resolve(args.api_key, args.base_url)
    if not profile.api_key:
        raise FluxPayError("Not logged in: run `fluxpay login` (or set FLUXPAY_API_KEY).")
    return FluxPay(api_key=profile.api_key, base_url=profile.base_url)


def cmd_login(args: argparse.Namespace) -> int:
    key = args.api_key or getpass.getpass("Your FluxPay test API key: ").strip()
    profile = config.resolve(key, args.base_url)
    with FluxPay(api_key=key, base_url=profile.base_url) as client:
        environment = client.balance.retrieve().environment
    if environment != "test":
        # The CLI creates payments and forwards events: never with real money.
        print("error: this is a live key; `fluxpay login` stores test keys only.", file=sys.stderr)
        return 2
    path = config.save(config.Profile(key, profile.base_url))
    say(f"Logged in with a test key (saved in {path}, readable by you only).")
    return 0


def cmd_payments(args: argparse.Namespace) -> int:
    with _client(args) as client:
        if args.action == "create":
            show(
                client.payments.create(
                    reference=args.reference or f"cli-{uuid.uuid4()}",
                    amount=args.amount,
                    currency=args.currency,
                    country=args.country,
                    mode=args.mode,
                    operator=args.operator if args.mode == "direct" else None,
                    phone=args.phone if args.mode == "direct" else None,
                    description=args.description,
                )
            )
        elif args.action == "get":
            show(client.payments.retrieve(args.payment))
        else:
            pager = client.payments.list(status=args.status, limit=min(args.limit, 100))
            show(list(pager.first_page().data[: args.limit]))
    return 0


def cmd_trigger(args: argparse.Namespace) -> int:
    with _client(args) as client:
        triggers.trigger(client, args.event_type, say)
    return 0


def cmd_listen(args: argparse.Namespace) -> int:
    profile = config.resolve(args.api_key, args.base_url)
    if not profile.api_key:
        raise FluxPayError("Not logged in: run `fluxpay login` (or set FLUXPAY_API_KEY).")
    client_config = ClientConfig.build(profile.api_key, profile.base_url, None, None, None)
    types = frozenset(args.events.split(",")) if args.events else None
    try:
        return listen.listen(client_config, args.forward_to, say, types, args.max_events)
    except KeyboardInterrupt:
        return 0


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="fluxpay", description=__doc__)
    _connection_options(root, None)
    # Accepted after the command too (`fluxpay login --api-key K`); given there, they win.
    common = argparse.ArgumentParser(add_help=False)
    _connection_options(common, argparse.SUPPRESS)
    commands = root.add_subparsers(dest="command", required=True)

    login = commands.add_parser(
        "login", parents=[common], help="store a test API key for the other commands"
    )
    login.set_defaults(run=cmd_login)

    payments = commands.add_parser(
        "payments", parents=[common], help="create, get or list payments"
    )
    actions = payments.add_subparsers(dest="action", required=True)
    create = actions.add_parser(
        "create", parents=[common], help="create a payment (sandbox with a test key)"
    )
    create.add_argument("--amount", type=int, default=3000, help="major units (3000 XOF)")
    create.add_argument("--currency", default="XOF")
    create.add_argument("--country", default="BJ")
    create.add_argument("--mode", choices=["direct", "hosted"], default="direct")
    create.add_argument("--operator", default="mtn")
    create.add_argument("--phone", default="+22997000001", help="000001 approves in sandbox")
    create.add_argument("--reference")
    create.add_argument("--description")
    get = actions.add_parser("get", parents=[common], help="a payment by id or reference")
    get.add_argument("payment")
    listing = actions.add_parser("list", parents=[common], help="your latest payments")
    listing.add_argument("--status")
    listing.add_argument("--limit", type=int, default=10)
    payments.set_defaults(run=cmd_payments)

    trigger = commands.add_parser(
        "trigger", parents=[common], help="make the sandbox produce one event type"
    )
    trigger.add_argument("event_type", choices=EVENT_TYPES)
    trigger.set_defaults(run=cmd_trigger)

    forward = commands.add_parser(
        "listen", parents=[common], help="forward your test events to a local URL"
    )
    forward.add_argument("--forward-to", required=True, help="e.g. http://localhost:3000/hooks")
    forward.add_argument("--events", help="only these types, comma-separated")
    forward.add_argument("--max-events", type=int, help=argparse.SUPPRESS)
    forward.set_defaults(run=cmd_listen)
    return root


def _connection_options(parser: argparse.ArgumentParser, default: Any) -> None:
    parser.add_argument(
        "--api-key", default=default, help="overrides FLUXPAY_API_KEY and the stored key"
    )
    parser.add_argument(
        "--base-url", default=default, help="the API, e.g. http://127.0.0.1:8000/api/v1"
    )


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        code: int = args.run(args)
    except FluxPayError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return code


def entrypoint() -> None:
    raise SystemExit(main())


if __name__ == "__main__":
    entrypoint()
