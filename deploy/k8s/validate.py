"""Render each kustomize overlay and validate every object offline (`make k8s-validate`).

Rendering: `kubectl kustomize` where a kubectl is installed, else the small renderer below,
which covers what these manifests use (resources, namespace, labels, images, strategic-merge
and JSON 6902 patches). Where both exist, they must agree. No kustomize binary is packaged
in Debian bookworm or on PyPI, hence the renderer.

Validation: core kinds against Kubernetes' OpenAPI schemas (`kubernetes-validate`, strict:
unknown fields fail); ScaledObject, TriggerAuthentication, RabbitmqCluster and Cluster
against the CRD schemas vendored in deploy/schemas/crds (unknown fields fail too).
"""

from __future__ import annotations

import copy
import functools
import json
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import yaml

K8S = Path(__file__).resolve().parent
OVERLAYS = ("staging", "production")
KUBERNETES_VERSION = "1.31.0"
CRDS = K8S.parent / "schemas" / "crds"
CLUSTER_SCOPED = {"Namespace", "ClusterRole", "ClusterRoleBinding", "CustomResourceDefinition"}
Obj = dict[str, Any]


# ---------------------------------------------------------------- rendering


def render(directory: Path) -> list[Obj]:
    kustomization = yaml.safe_load((directory / "kustomization.yaml").read_text())
    objects: list[Obj] = []
    for resource in kustomization.get("resources", []):
        path = directory / resource
        objects += render(path) if path.is_dir() else _load(path)
    for patch in kustomization.get("patches", []):
        _apply_patch(objects, directory, patch)
    for label in kustomization.get("labels", []):
        for obj in objects:
            obj.setdefault("metadata", {}).setdefault("labels", {}).update(label["pairs"])
    for image in kustomization.get("images", []):
        _set_image(objects, image)
    namespace = kustomization.get("namespace")
    if namespace:
        for obj in objects:
            if obj["kind"] not in CLUSTER_SCOPED:
                obj["metadata"]["namespace"] = namespace
    return objects


def _load(path: Path) -> list[Obj]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


def _matches(obj: Obj, target: dict[str, str]) -> bool:
    return all(
        (obj["kind"] if key == "kind" else obj["metadata"].get("name")) == value
        for key, value in target.items()
        if key in {"kind", "name"}
    )


def _apply_patch(objects: list[Obj], directory: Path, patch: dict[str, Any]) -> None:
    text = (directory / patch["path"]).read_text() if "path" in patch else patch["patch"]
    body = yaml.safe_load(text)
    if isinstance(body, list):  # JSON 6902
        hits = [o for o in objects if _matches(o, patch["target"])]
        if not hits:
            raise ValueError(f"patch target {patch['target']} matches nothing")
        for obj in hits:
            for op in body:
                _json6902(obj, op)
        return
    target = patch.get("target") or {"kind": body["kind"], "name": body["metadata"]["name"]}
    hits = [o for o in objects if _matches(o, target)]
    if not hits:
        raise ValueError(f"patch target {target} matches nothing")
    for obj in hits:
        _strategic_merge(obj, body)


def _json6902(obj: Obj, op: dict[str, Any]) -> None:
    *parents, last = [p.replace("~1", "/").replace("~0", "~") for p in op["path"][1:].split("/")]
    node: Any = obj
    for part in parents:
        node = node[int(part)] if isinstance(node, list) else node[part]
    key: Any = int(last) if isinstance(node, list) and last != "-" else last
    if op["op"] == "replace":
        node[key] = copy.deepcopy(op["value"])
    elif op["op"] == "add":
        if isinstance(node, list):
            node.insert(len(node) if key == "-" else key, copy.deepcopy(op["value"]))
        else:
            node[key] = copy.deepcopy(op["value"])
    elif op["op"] == "remove":
        del node[key]
    else:
        raise ValueError(f"unsupported JSON patch op {op['op']!r}")


def _strategic_merge(base: Any, patch: Any) -> Any:
    """Maps merge; lists of named maps (containers, env, volumes) merge by name; others
    are replaced, as kustomize does for these fields."""
    if isinstance(base, dict) and isinstance(patch, dict):
        for key, value in patch.items():
            base[key] = _strategic_merge(base[key], value) if key in base else value
        return base
    if isinstance(base, list) and isinstance(patch, list) and _named(base) and _named(patch):
        by_name = {item["name"]: item for item in base}
        for item in patch:
            if item["name"] in by_name:
                _strategic_merge(by_name[item["name"]], item)
            else:
                base.append(item)
        return base
    return patch


def _named(items: list[Any]) -> bool:
    return bool(items) and all(isinstance(i, dict) and "name" in i for i in items)


def _set_image(objects: list[Obj], image: dict[str, str]) -> None:
    for obj in objects:
        for container in _containers(obj):
            if container["image"].split(":")[0] == image["name"]:
                name = image.get("newName", image["name"])
                container["image"] = f"{name}:{image['newTag']}" if "newTag" in image else name


def _containers(obj: Obj) -> Iterator[Obj]:
    spec = obj.get("spec", {}).get("template", {}).get("spec", {})
    yield from spec.get("containers", [])


def render_with_kubectl(directory: Path) -> list[Obj] | None:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        return None
    result = subprocess.run(
        [kubectl, "kustomize", str(directory)], capture_output=True, text=True, check=True
    )
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


def _key(obj: Obj) -> tuple[str, str, str]:
    return obj["kind"], obj["metadata"].get("namespace", ""), obj["metadata"]["name"]


def render_overlay(name: str) -> list[Obj]:
    directory = K8S / "overlays" / name
    objects = render(directory)
    reference = render_with_kubectl(directory)
    if reference is not None:
        ours = {_key(o): o for o in objects}
        theirs = {_key(o): o for o in reference}
        if ours != theirs:
            keys = ours.keys() | theirs.keys()
            differing = sorted(k for k in keys if ours.get(k) != theirs.get(k))
            raise AssertionError(f"{name}: renderer and kubectl kustomize differ on {differing}")
    return sorted(objects, key=_key)


# ---------------------------------------------------------------- validation


@functools.cache
def _crd_schemas() -> dict[tuple[str, str], dict[str, Any]]:
    """(apiVersion, kind) -> that version's openAPIV3Schema, closed to unknown fields."""
    schemas: dict[tuple[str, str], dict[str, Any]] = {}
    for path in CRDS.glob("*/*.yaml"):
        crd = yaml.safe_load(path.read_text())
        group, kind = crd["spec"]["group"], crd["spec"]["names"]["kind"]
        for version in crd["spec"]["versions"]:
            schema = _closed(copy.deepcopy(version["schema"]["openAPIV3Schema"]))
            schemas[(f"{group}/{version['name']}", kind)] = schema
    return schemas


def _closed(schema: Any) -> Any:
    """Reject unknown fields where the CRD lists its fields (the API server prunes them)."""
    if isinstance(schema, dict):
        for value in schema.values():
            _closed(value)
        if (
            "properties" in schema
            and "additionalProperties" not in schema
            and not schema.get("x-kubernetes-preserve-unknown-fields")
        ):
            schema["additionalProperties"] = False
    elif isinstance(schema, list):
        for item in schema:
            _closed(item)
    return schema


def validate(obj: Obj) -> list[str]:
    where = "{}/{}".format(*_key(obj)[::2])
    crd = _crd_schemas().get((obj["apiVersion"], obj["kind"]))
    if crd is not None:
        errors = jsonschema.Draft7Validator(crd).iter_errors(obj)
        return [f"{where}: {'/'.join(map(str, e.absolute_path))}: {e.message}" for e in errors]
    try:
        kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)
    except kubernetes_validate.ValidationError as exc:
        return [f"{where}: {'/'.join(map(str, exc.path))}: {exc.message}"]
    except kubernetes_validate.SchemaNotFoundError:
        return [f"{where}: no schema for {obj['apiVersion']} {obj['kind']}"]
    return []


def main() -> int:
    failures: list[str] = []
    examples = _load(K8S / "secrets.example.yaml")
    for obj in examples:
        failures += validate(obj)
    for overlay in OVERLAYS:
        objects = render_overlay(overlay)
        for obj in objects:
            failures += [f"{overlay}: {error}" for error in validate(obj)]
        kinds = sorted({o["kind"] for o in objects})
        print(f"{overlay}: {len(objects)} objects valid ({', '.join(kinds)})")
    if failures:
        print("\n".join(failures), file=sys.stderr)
        return 1
    print(json.dumps({"overlays": list(OVERLAYS), "kubernetes": KUBERNETES_VERSION}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
