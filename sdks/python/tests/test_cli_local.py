"""The CLI's local parts: where the key is stored and how, the SSE parser, the trigger
table (one scenario per event type of the seed's webhook)."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from fluxpay.cli import config, triggers
from fluxpay.cli.listen import parse_sse
from fluxpay.models import EVENT_TYPES


@pytest.fixture
def config_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("FLUXPAY_CONFIG_DIR", str(tmp_path / "cfg"))
    monkeypatch.delenv("FLUXPAY_API_KEY", raising=False)
    monkeypatch.delenv("FLUXPAY_BASE_URL", raising=False)
    return tmp_path / "cfg"


def test_the_stored_key_is_readable_by_its_owner_only(config_home: Path) -> None:
    path = config.save(config.Profile("key-1", "http://127.0.0.1:8000/api/v1"))
    assert path.parent == config_home
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(config_home.stat().st_mode) == 0o700
    assert config.load() == config.Profile("key-1", "http://127.0.0.1:8000/api/v1")


def test_a_wider_existing_file_is_narrowed(config_home: Path) -> None:
    config_home.mkdir()
    (config_home / "config.json").write_text("{}")
    (config_home / "config.json").chmod(0o644)
    path = config.save(config.Profile("key-2"))
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_flag_then_environment_then_stored_key(
    config_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config.save(config.Profile("stored", "http://stored/api/v1"))
    assert config.resolve(None, None) == config.Profile("stored", "http://stored/api/v1")
    monkeypatch.setenv("FLUXPAY_API_KEY", "from-env")
    assert config.resolve(None, None).api_key == "from-env"
    assert config.resolve("from-flag", None).api_key == "from-flag"


def test_the_default_directory_follows_xdg(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("FLUXPAY_CONFIG_DIR", raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    assert config.config_dir() == tmp_path / "fluxpay"


def test_server_sent_events_are_parsed_and_comments_skipped() -> None:
    lines = [
        *[": connected", "", "id: e1", "event: collect.payment.created", 'data: {"a": 1}', ""],
        *[": heartbeat", "", "event: error", "data: x", "data: y", ""],
    ]
    events = list(parse_sse(iter(lines)))
    assert [(e.event, e.id, e.data) for e in events] == [
        ("collect.payment.created", "e1", ['{"a": 1}']),
        ("error", None, ["x", "y"]),
    ]


def test_every_event_type_of_the_webhook_has_a_trigger() -> None:
    assert set(triggers.SCENARIOS) == set(EVENT_TYPES)
