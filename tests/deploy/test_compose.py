"""docker-compose.yml is a valid Compose file (the specification's JSON schema, vendored)
and runs what `make up` runs, each service health-checked and started on its dependencies'
health."""

from __future__ import annotations

import json
import shlex
from pathlib import Path
from typing import Any

import jsonschema
import yaml

ROOT = Path(__file__).resolve().parents[2]
SCHEMA = ROOT / "deploy/schemas/compose-spec/compose-spec.json"


def _compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    return loaded


def _validator() -> jsonschema.Draft7Validator:
    # The specification is written in draft 7 (its `$schema` names draft-07 without `#`).
    return jsonschema.Draft7Validator(json.loads(SCHEMA.read_text()))


def _program(command: list[str]) -> tuple[str, ...]:
    """A process's identity: the program and which PSP it speaks for."""
    words = command[2:] if command[:1] == ["env"] else command
    words = [w for w in words if "=" not in w]
    kept = [words[0]]
    for flag in ("--provider", "--psp"):
        if flag in words:
            kept.append(words[words.index(flag) + 1])
    return tuple(kept)


def test_compose_file_is_valid_against_the_compose_specification() -> None:
    errors = sorted(_validator().iter_errors(_compose()), key=str)
    assert not errors, [f"{list(e.absolute_path)}: {e.message}" for e in errors]


def test_the_schema_check_catches_a_mistake() -> None:
    broken = _compose()
    broken["services"]["gateway"]["depends_on"]["postgres"]["condition"] = "when_ready"
    assert list(_validator().iter_errors(broken))


def test_compose_runs_every_process_of_make_up() -> None:
    procfile = (ROOT / "Procfile").read_text().splitlines()
    wanted = {_program(shlex.split(line.split(":", 1)[1])) for line in procfile if line.strip()}
    running = {_program(s["command"]) for s in _compose()["services"].values() if "command" in s}
    assert wanted <= running
    assert len(wanted) == 13


def test_every_service_is_health_checked_and_waits_for_healthy_dependencies() -> None:
    services = _compose()["services"]
    for name, service in services.items():
        assert service.get("healthcheck", {}).get("test"), name
        for dependency, condition in service.get("depends_on", {}).items():
            assert condition == {"condition": "service_healthy"}, (name, dependency)
            assert dependency in services
        if name.startswith(("gateway", "orchestrator", "ledger", "webhooks", "connector-")):
            assert "/readyz" in " ".join(service["healthcheck"]["test"]), name
            assert set(service["depends_on"]) >= {"postgres", "rabbitmq"}, name
    for psp in ("novasend", "mtn-momo", "irembopay", "stripe"):
        assert f"sim-{psp}" in services[f"connector-{psp}"]["depends_on"]
