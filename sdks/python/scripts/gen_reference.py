"""Write `docs/reference.md`, the SDK's API reference, from the code itself (signatures and
docstrings through `inspect`), so the reference cannot drift from the SDK.
`--check` exits 1 when the committed file is out of date."""

from __future__ import annotations

import inspect
import re
import sys
import types
import typing
from pathlib import Path
from typing import Any

from pydantic import BaseModel

import fluxpay
from fluxpay import _resources, errors, models, webhooks

TARGET = Path(__file__).resolve().parents[1] / "docs" / "reference.md"
RESOURCES = [
    ("payments", _resources.Payments),
    ("refunds", _resources.Refunds),
    ("operators", _resources.Operators),
    ("balance", _resources.Balance),
    ("events", _resources.Events),
    ("webhook_endpoint", _resources.WebhookEndpoint),
    ("webhooks", _resources.Webhooks),
    ("api_keys", _resources.ApiKeys),
    ("payment_links", _resources.PaymentLinks),
    ("payment_types", _resources.PaymentTypes),
    ("dues", _resources.Dues),
]


def doc(obj: Any) -> str:
    return inspect.cleandoc(obj.__doc__) if obj.__doc__ else ""


def signature(name: str, func: Any) -> str:
    text = str(inspect.signature(func)).replace("(self, ", "(").replace("(self)", "()")
    # Defaults such as `<function sleep at 0x...>` change every run: show the name only.
    text = re.sub(r"<(?:built-in )?function (\w+)(?: at 0x[0-9a-f]+)?>", r"\1", text)
    return f"{name}{text}"


def public_methods(cls: type) -> list[tuple[str, Any]]:
    return [(n, f) for n, f in vars(cls).items() if inspect.isfunction(f) and not n.startswith("_")]


def section_clients() -> list[str]:
    lines = ["## Clients", ""]
    for cls in (fluxpay.FluxPay, fluxpay.AsyncFluxPay):
        lines += [f"### `{signature(cls.__name__, cls.__init__)}`", "", doc(cls), ""]
    lines += [f"### `{signature('RetryPolicy', fluxpay.RetryPolicy)}`", "",
              doc(fluxpay.RetryPolicy), ""]  # fmt: skip
    return lines


def section_resources() -> list[str]:
    lines = ["## Resources", "",
             "Identical on `AsyncFluxPay`, awaited (`list*` methods return an `AsyncPager`:"
             " `async for`).", ""]  # fmt: skip
    for attribute, cls in RESOURCES:
        lines += [f"### `client.{attribute}`", ""]
        for name, func in public_methods(cls):
            lines += [f"#### `{signature(f'{attribute}.{name}', func)}`", "", doc(func), ""]
    lines += ["### Pagination", "", doc(fluxpay.Pager), ""]
    for name, func in public_methods(fluxpay.Pager):
        lines += [f"- `{signature(name, func)}`"]
    return [*lines, ""]


def section_webhooks() -> list[str]:
    lines = ["## Webhooks (`fluxpay.webhooks`)", "", doc(webhooks), ""]
    for func in (webhooks.construct_event, webhooks.verify_header, webhooks.generate_test_header):
        lines += [f"### `{signature(func.__name__, func)}`", "", doc(func), ""]
    return lines


def section_errors() -> list[str]:
    lines = ["## Errors (`fluxpay.errors`)", "", doc(errors), ""]
    classes = [
        c
        for _, c in inspect.getmembers(errors, inspect.isclass)
        if issubclass(c, errors.FluxPayError) and c.__module__ == errors.__name__
    ]
    for cls in sorted(classes, key=lambda c: len(c.__mro__)):
        parent = cls.__mro__[1].__name__
        lines += [f"- `{cls.__name__}` ({parent}): {doc(cls)}"]
    lines += [
        "",
        "`APIStatusError` attributes: `http_status`, `type`, `code`, `message`, `param`,"
        " `doc_url`, `request_id` (the answer's `X-Request-Id`), `headers`, `body`.",
        "",
    ]
    return lines


def field_type(annotation: Any) -> str:
    """`str | None`, `Literal['a', 'b'] | str`, `list[Refund]`: as a reader writes them."""
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin in (typing.Union, types.UnionType):
        return " | ".join(field_type(a) for a in args)
    if origin is typing.Literal:
        return "Literal[" + ", ".join(repr(a) for a in args) + "]"
    if origin is not None:
        return f"{origin.__name__}[{', '.join(field_type(a) for a in args)}]"
    if annotation is type(None):
        return "None"
    return getattr(annotation, "__name__", str(annotation))


def section_models() -> list[str]:
    lines = ["## Models (`fluxpay.models`)", "", doc(models), ""]
    for name, cls in vars(models).items():
        is_model = inspect.isclass(cls) and issubclass(cls, BaseModel)
        if not is_model or cls.__module__ != models.__name__ or name == "FluxPayObject":
            continue
        lines += [f"### `{name}`", "", doc(cls), "", "| field | type |", "|---|---|"]
        for field_name, info in cls.model_fields.items():
            shown = field_type(info.annotation).replace("|", "\\|")
            lines += [f"| `{field_name}` | `{shown}` |"]
        lines += [""]
    return lines


def render() -> str:
    lines = [
        f"# `fluxpay` {fluxpay.__version__}: API reference",
        "",
        "Generated from the code by `scripts/gen_reference.py`; do not edit by hand.",
        "",
        *section_clients(),
        *section_resources(),
        *section_webhooks(),
        *section_errors(),
        *section_models(),
    ]
    text = "\n".join(line.rstrip() for line in "\n".join(lines).splitlines())
    return text.rstrip() + "\n"


def main() -> int:
    if "--check" in sys.argv:
        if not TARGET.exists() or TARGET.read_text() != render():
            print(f"{TARGET} is out of date: run python {__file__}", file=sys.stderr)
            return 1
        return 0
    TARGET.write_text(render())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
