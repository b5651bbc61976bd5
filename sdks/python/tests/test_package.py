"""The package itself: only httpx and pydantic at run time, generated files up to date."""

from __future__ import annotations

import ast
import subprocess
import sys
import tomllib
from pathlib import Path

SDK = Path(__file__).resolve().parents[1]
ALLOWED = {"httpx", "pydantic", "fluxpay"}


def test_the_sdk_depends_on_httpx_and_pydantic_only() -> None:
    declared = tomllib.loads((SDK / "pyproject.toml").read_text())["project"]["dependencies"]
    assert sorted(d.split(">")[0].split("=")[0] for d in declared) == ["httpx", "pydantic"]
    imported: set[str] = set()
    for path in (SDK / "src" / "fluxpay").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                imported |= {a.name.split(".")[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                imported.add(node.module.split(".")[0])
    outside = {m for m in imported - ALLOWED if m not in sys.stdlib_module_names}
    assert not outside, f"imports beyond httpx and pydantic: {outside}"


def _script_check(name: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(SDK / "scripts" / name), "--check"],
        capture_output=True,
        text=True,
        check=False,
    )


def test_the_committed_api_reference_is_up_to_date() -> None:
    result = _script_check("gen_reference.py")
    assert result.returncode == 0, result.stderr


def test_the_async_resources_match_the_sync_ones() -> None:
    result = _script_check("gen_async.py")
    assert result.returncode == 0, result.stderr
