"""Renders deploy/kubernetes the way `helm install` would, offline, with Helm's own library (PyPI
helm-python-sdk), and reads what the rendered objects contain."""

from __future__ import annotations

import importlib.util
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml

import global_config

CHART = global_config.ROOT / "deploy" / "kubernetes"
NAMESPACE = "asteroid"
# Kubernetes version the objects are validated against: the newest clearml-serving 1.5.8 supports (< 1.32).
KUBERNETES_VERSION = "1.31.0"


@dataclass(frozen=True)
class Release:
    name: str
    values_file: str  # under deploy/kubernetes/values/
    post_render: bool  # installed with --post-renderer deploy/kubernetes/post-render.py


# The releases of the README's install order, and a second serving instance sharing the monitoring.
RELEASES = (
    Release("clearml", "server.yaml", post_render=False),
    Release("agents", "agents.yaml", post_render=False),
    Release("serving", "serving.yaml", post_render=True),
    Release("serving-b", "serving-instance.yaml", post_render=True),
)


def helm() -> ModuleType:
    return pytest.importorskip("helm_python", reason="helm-python-sdk (requirements.txt) is not installed")


def post_renderer() -> ModuleType:
    spec = importlib.util.spec_from_file_location("post_render", CHART / "post-render.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def values(release: Release) -> dict[str, Any]:
    return yaml.safe_load((CHART / "values" / release.values_file).read_text())


def merged(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """`base` with `override` merged in, as Helm merges values files (maps key by key; None deletes)."""
    result = dict(base)
    for name, value in override.items():
        if value is None:
            result.pop(name, None)
        elif isinstance(value, dict) and isinstance(result.get(name), dict):
            result[name] = merged(result[name], value)
        else:
            result[name] = value
    return result


def render_with(
    release: Release, overrides: dict[str, Any] | None = None, *, post_render: bool | None = None
) -> list[dict[str, Any]]:
    """The release's objects, with `overrides` on top of its values file (like a second `-f`)."""
    library = helm()
    # A chart handle is loaded per render: rendering drops the disabled subcharts from it.
    with library.Chart.load(CHART) as chart:
        files = chart.render(
            values=merged(values(release), overrides or {}),
            name=release.name,
            namespace=NAMESPACE,
            is_install=True,
        )
    text = "\n---\n".join(body for path, body in sorted(files.items()) if not path.endswith("NOTES.txt"))
    if release.post_render if post_render is None else post_render:
        text = post_renderer().post_render(text)
    return [m for m in yaml.safe_load_all(text) if m]


@cache
def _render(name: str) -> tuple[dict[str, Any], ...]:
    (release,) = [r for r in RELEASES if r.name == name]
    return tuple(render_with(release))


def render(release: Release) -> list[dict[str, Any]]:
    """The objects `helm install <release> deploy/kubernetes -f values/<file>` would create."""
    return [dict(m) for m in _render(release.name)]


def all_objects() -> Iterator[tuple[Release, dict[str, Any]]]:
    for release in RELEASES:
        for manifest in render(release):
            yield release, manifest


def key(manifest: dict[str, Any]) -> str:
    return f"{manifest['kind']}/{manifest['metadata']['name']}"


def pod_spec(manifest: dict[str, Any]) -> dict[str, Any] | None:
    """The pod template of a workload (or the spec of a bare Pod); None for other kinds."""
    kind = manifest["kind"]
    if kind == "Pod":
        return manifest["spec"]
    if kind in {"Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job"}:
        return manifest["spec"]["template"]["spec"]
    if kind == "CronJob":
        return manifest["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    return None


def containers(manifest: dict[str, Any]) -> list[dict[str, Any]]:
    spec = pod_spec(manifest)
    if spec is None:
        return []
    return [*spec.get("initContainers", []), *spec.get("containers", [])]


def by_key(release: Release) -> dict[str, dict[str, Any]]:
    return {key(m): m for m in render(release)}


def read_values_files() -> dict[Path, Any]:
    return {
        path: yaml.safe_load(path.read_text()) for path in [CHART / "values.yaml", *CHART.glob("values/*")]
    }
