"""Write `src/fluxpay/_async_resources.py` from `_resources.py`: the async client's
resources have the same methods and signatures as the sync client's, awaited; writing them
twice by hand would let the two drift. `--check` exits 1 when the file is out of date."""

from __future__ import annotations

import re
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "fluxpay"
SYNC_DOC = '"""The synchronous client\'s resources (`client.payments`, `client.refunds`...)."""'
ASYNC_DOC = (
    '"""The async client\'s resources: the same methods as the sync client\'s, awaited.\n\n'
    'Generated from `_resources.py` by `scripts/gen_async.py`; edit that file, not this one."""'
)
REPLACEMENTS = [
    (SYNC_DOC, ASYNC_DOC),
    ("from fluxpay._pagination import Pager", "from fluxpay._pagination import AsyncPager"),
    ("from fluxpay._client import FluxPay", "from fluxpay._async_client import AsyncFluxPay"),
    ("client: FluxPay", "client: AsyncFluxPay"),
    ("Pager[", "AsyncPager["),
    ("return Pager(", "return AsyncPager("),
    ("    def ", "    async def "),
    ("    async def __init__", "    def __init__"),
    ("    async def _pager", "    def _pager"),
    ("return self._client.request(", "return await self._client.request("),
    ("page = self._client.request(", "page = await self._client.request("),
]
# A list method returns its pager at once (`async for p in client.payments.list()`).
PAGER_METHOD = re.compile(r"    async def (list\w*)\(([^)]*)\) -> AsyncPager", re.S)


def render() -> str:
    source = (PACKAGE / "_resources.py").read_text()
    for old, new in REPLACEMENTS:
        source = source.replace(old, new)
    return PAGER_METHOD.sub(r"    def \1(\2) -> AsyncPager", source)


def main() -> int:
    target = PACKAGE / "_async_resources.py"
    if "--check" in sys.argv:
        if target.read_text() != render():
            print(f"{target} is out of date: run python {__file__}", file=sys.stderr)
            return 1
        return 0
    target.write_text(render())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
