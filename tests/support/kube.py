"""Build a kustomize overlay offline, well enough to check it (tests/unit/test_deploy_k8s.py).

Supports what deploy/k8s uses: ``resources`` (files and directories), ``namespace``, ``images``
(name -> newName:newTag), ``labels`` and ``patches`` given as strategic-merge files (a patch
matches a resource by kind and name; maps merge, lists of named items merge by name, other lists
are replaced). Anything else in a kustomization.yaml is refused, so the check never silently
ignores part of the real build.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml

SUPPORTED = {"apiVersion", "kind", "resources", "namespace", "images", "labels", "patches"}
CLUSTER_SCOPED = {"Namespace"}


def load_documents(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def merge(target: Any, patch: Any) -> Any:
    if isinstance(target, dict) and isinstance(patch, dict):
        merged = dict(target)
        for key, value in patch.items():
            merged[key] = merge(target[key], value) if key in target else copy.deepcopy(value)
        return merged
    if (
        isinstance(target, list)
        and isinstance(patch, list)
        and all(isinstance(i, dict) and "name" in i for i in [*target, *patch])
    ):
        by_name = {item["name"]: item for item in target}
        result = [merge(item, next((p for p in patch if p["name"] == item["name"]), {})) for item in target]
        return result + [copy.deepcopy(p) for p in patch if p["name"] not in by_name]
    return copy.deepcopy(patch)


def _key(resource: dict[str, Any]) -> tuple[str, str]:
    return resource["kind"], resource["metadata"]["name"]


def build(directory: Path) -> list[dict[str, Any]]:
    """The resources ``kubectl kustomize directory`` would print (for the features above)."""
    kustomization = yaml.safe_load((directory / "kustomization.yaml").read_text())
    unknown = set(kustomization) - SUPPORTED
    if unknown:
        raise ValueError(f"{directory}: kustomization fields this check does not build: {sorted(unknown)}")
    resources: list[dict[str, Any]] = []
    for entry in kustomization.get("resources", []):
        path = (directory / entry).resolve()
        resources += build(path) if path.is_dir() else load_documents(path)
    index = {_key(r): r for r in resources}
    if len(index) != len(resources):
        raise ValueError(f"{directory}: two resources share a kind and name")
    for patch_entry in kustomization.get("patches", []):
        for patch in load_documents(directory / patch_entry["path"]):
            if _key(patch) not in index:
                raise ValueError(f"{directory}: patch for {_key(patch)} matches no resource")
            index[_key(patch)].update(merge(index[_key(patch)], patch))
    for resource in resources:
        if "namespace" in kustomization and resource["kind"] not in CLUSTER_SCOPED:
            resource["metadata"]["namespace"] = kustomization["namespace"]
        for entry in kustomization.get("labels", []):
            resource["metadata"].setdefault("labels", {}).update(entry["pairs"])
        for container in containers(resource):
            for image in kustomization.get("images", []):
                name, _, tag = container["image"].partition(":")
                if name == image["name"]:
                    container["image"] = f"{image.get('newName', name)}:{image.get('newTag', tag)}"
    return resources


def pod_spec(resource: dict[str, Any]) -> dict[str, Any] | None:
    if resource["kind"] in {"Deployment", "Job", "StatefulSet", "DaemonSet"}:
        return dict(resource["spec"]["template"]["spec"])
    return None


def containers(resource: dict[str, Any]) -> list[dict[str, Any]]:
    spec = pod_spec(resource)
    return [] if spec is None else [*spec.get("initContainers", []), *spec["containers"]]


def find(resources: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    matches = [r for r in resources if _key(r) == (kind, name)]
    assert matches, f"no {kind} {name}"
    return matches[0]


def env_problems(resources: list[dict[str, Any]], setting_names: frozenset[str]) -> list[str]:
    """Every variable a pod sees (ConfigMap, Secret, env:) must be a setting, every reference must
    resolve, and the values must parse as the settings' types."""
    from libs.settings import Settings

    problems = []
    sources: dict[tuple[str, str], dict[str, str]] = {}
    for r in resources:
        if r["kind"] == "ConfigMap":
            sources["ConfigMap", r["metadata"]["name"]] = dict(r.get("data", {}))
        elif r["kind"] == "Secret":
            sources["Secret", r["metadata"]["name"]] = {**r.get("data", {}), **r.get("stringData", {})}
    # Only what pods load as their environment holds settings (a Secret only KEDA reads does not).
    loaded = {
        ("ConfigMap", ref["configMapRef"]["name"])
        if "configMapRef" in ref
        else ("Secret", ref["secretRef"]["name"])
        for r in resources
        for container in containers(r)
        for ref in container.get("envFrom", [])
    }
    for (kind, name), values in sources.items():
        if (kind, name) in loaded:
            problems += [
                f"{kind} {name}: {key} is not a setting" for key in values if key not in setting_names
            ]
    for r in resources:
        for container in containers(r):
            where = f"{r['kind']} {r['metadata']['name']}"
            env: dict[str, str] = {}
            for ref in container.get("envFrom", []):
                kind, spec = (
                    ("ConfigMap", ref["configMapRef"])
                    if "configMapRef" in ref
                    else ("Secret", ref["secretRef"])
                )
                if (kind, spec["name"]) not in sources:
                    problems.append(f"{where}: envFrom {kind} {spec['name']} does not exist")
                env.update(sources.get((kind, spec["name"]), {}))
            for item in container.get("env", []):
                if item["name"] not in setting_names:
                    problems.append(f"{where}: {item['name']} is not a setting")
                env[item["name"]] = str(item.get("value", ""))
            try:
                Settings.from_env({k: v for k, v in env.items() if k in setting_names})
            except ValueError as exc:
                problems.append(f"{where}: {exc}")
    return problems
