"""Where `fluxpay login` keeps the key: `<config dir>/fluxpay/config.json`, mode 0600.

The directory is `$FLUXPAY_CONFIG_DIR` when set, else `$XDG_CONFIG_HOME/fluxpay`, else
`~/.config/fluxpay` (`%APPDATA%\\fluxpay` on Windows). A key given with `--api-key` or
`FLUXPAY_API_KEY` wins over the stored one; `FLUXPAY_BASE_URL` likewise for the API's URL.
"""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path

from fluxpay._base import DEFAULT_BASE_URL

CONFIG_FILE = "config.json"


def config_dir() -> Path:
    if override := os.environ.get("FLUXPAY_CONFIG_DIR"):
        return Path(override)
    if sys.platform == "win32" and os.environ.get("APPDATA"):
        return Path(os.environ["APPDATA"]) / "fluxpay"
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "fluxpay"


@dataclass(frozen=True)
class Profile:
    api_key: str | None = None
    base_url: str | None = None


def load() -> Profile:
    path = config_dir() / CONFIG_FILE
    try:
        stored = json.loads(path.read_text())
    except (OSError, ValueError):
        return Profile()
    return Profile(stored.get("api_key"), stored.get("base_url"))


def save(profile: Profile) -> Path:
    """Written readable by the user only, created so even a brief moment is never wider."""
    directory = config_dir()
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    path = directory / CONFIG_FILE
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        json.dump({"api_key": profile.api_key, "base_url": profile.base_url}, handle)
    os.chmod(path, 0o600)  # an older file may have had wider permissions
    return path


def resolve(api_key: str | None, base_url: str | None) -> Profile:
    stored = load()
    return Profile(
        api_key or os.environ.get("FLUXPAY_API_KEY") or stored.api_key,
        base_url or os.environ.get("FLUXPAY_BASE_URL") or stored.base_url or DEFAULT_BASE_URL,
    )
