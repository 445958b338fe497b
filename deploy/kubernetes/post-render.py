#!/usr/bin/env python3
"""Helm post-renderer for the serving releases: adds to clearml-serving 1.5.8's Deployments what its chart
cannot be given through values.

    helm install serving deploy/kubernetes -f deploy/kubernetes/values/serving.yaml \\
      --post-renderer .venv/bin/python --post-renderer-args deploy/kubernetes/post-render.py

Reads the rendered manifests on stdin, writes them on stdout (needs PyYAML, which the project's venv has):

- Credentials: the chart writes `CLEARML_API_ACCESS_KEY`/`CLEARML_API_SECRET_KEY` as plain values from its
  values; the project's values define them again from a Secret (`extraEnvironment`). Only the last definition
  of a variable is kept, so the pod spec holds the Secret reference alone.
- Inference readiness: the chart has no probe, so a Service (and an ingress behind it) sends requests to
  replicas that have not started (the 502s of clearml-serving issue #59). The probe asks the serving port
  (8080, where `POST /serve/<endpoint>` is answered) for `GET /metrics`, which the project's image answers
  once clearml-serving's app has finished its startup (the serving configuration loaded).
- Inference replicas: the chart hard-codes `replicas: 1`; with the HorizontalPodAutoscaler the values enable,
  that field would scale the Deployment back to 1 at every upgrade, so it is removed and the autoscaler owns
  the count.
"""

from __future__ import annotations

import sys
from typing import Any

import yaml

SERVING_LABEL = "clearml.serving.service"
SERVING_PORT = 8080
READINESS_PROBE = {
    "httpGet": {"path": "/metrics", "port": SERVING_PORT},
    "initialDelaySeconds": 5,
    "periodSeconds": 10,
    "timeoutSeconds": 5,
    "failureThreshold": 3,
}


def last_definitions(env: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The environment with every variable defined once, by its last definition, in first-seen order."""
    last = {entry["name"]: entry for entry in env}
    return [last[name] for name in dict.fromkeys(entry["name"] for entry in env)]


def fix_serving_deployment(manifest: dict[str, Any]) -> None:
    component = manifest["metadata"].get("labels", {}).get(SERVING_LABEL, "")
    spec = manifest["spec"]
    for container in spec["template"]["spec"]["containers"]:
        if "env" in container:
            container["env"] = last_definitions(container["env"])
        if component.endswith("-inference"):
            container["readinessProbe"] = dict(READINESS_PROBE)
    if component.endswith("-inference"):
        spec.pop("replicas", None)


def post_render(text: str) -> str:
    manifests = [m for m in yaml.safe_load_all(text) if m]
    for manifest in manifests:
        if manifest.get("kind") == "Deployment" and SERVING_LABEL in manifest["metadata"].get("labels", {}):
            fix_serving_deployment(manifest)
    return yaml.safe_dump_all(manifests, sort_keys=False, width=120)


if __name__ == "__main__":
    sys.stdout.write(post_render(sys.stdin.read()))
