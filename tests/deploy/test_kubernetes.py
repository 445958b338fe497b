"""deploy/kubernetes, rendered offline as `helm install` would render each release of the README's install
order (server, agents, serving, a second serving instance): the vendored charts are the dependencies Helm
expects, every object is valid for Kubernetes 1.31 (strict), images equal the Compose stack's, every
container has resource limits, no address is loopback, no credential is in a values file, and the serving
releases have what clearml-serving's chart lacks (autoscaled inference with readiness, shared monitoring)."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tarfile
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from asteroid.monitoring import kubernetes_files
from tests.deploy import kubernetes as k8s
from tests.deploy.test_compose import all_images

SERVING = k8s.RELEASES[2]
SERVING_B = k8s.RELEASES[3]
INFERENCE = "Deployment/asteroid-serving-inference"

# Objects that may have no schema in kubernetes-validate, with the reason. None do today: every kind the
# charts render is a built-in Kubernetes kind.
NO_SCHEMA: dict[str, str] = {}

# Images the Compose stacks do not run, with the reason; their tags are still checked to be versions.
NOT_IN_COMPOSE = {
    "bitnami/mongodb": "the clearml chart's MongoDB subchart (Bitnami) runs its own image; Compose: mongo",
    "bitnami/redis": "the clearml chart's Redis subchart (Bitnami) runs its own image; Compose: redis",
    "allegroai/clearml-agent-k8s-base": "the agent chart's Kubernetes glue; Compose: deploy/agent/Dockerfile",
    "jimmidyson/configmap-reload": "the Prometheus subchart's reload sidecar (Compose: SIGHUP)",
}

LOOPBACK = re.compile(r"localhost|127\.0\.0\.1|\[::1\]")
# Where loopback is right: the address is the same pod (containers of a pod share its network).
SAME_POD = {
    "ConfigMap/clearml-redis-health": "the Redis chart's probe scripts ask the Redis of their own container",
    "Deployment/asteroid-prometheus prometheus-server-configmap-reload": "reloads its own pod's Prometheus",
}
CREDENTIAL = re.compile(r"(key|secret|password|token)$", re.IGNORECASE)
NOT_CREDENTIALS = {
    "ALLOW_EMPTY_PASSWORD": "the MongoDB and Redis charts' switch (yes/no) to run without authentication",
}


def is_credential(name: str) -> bool:
    """Named like a credential; `existing…Secret` values name a Secret and hold none."""
    return bool(CREDENTIAL.search(name)) and not name.startswith("existing") and name not in NOT_CREDENTIALS


def image_name(image: str) -> tuple[str, str]:
    """(repository without docker.io/ and library/, tag)."""
    repository, _, tag = image.rpartition(":")
    for prefix in ("docker.io/", "library/"):
        repository = repository.removeprefix(prefix)
    return repository, tag


def test_the_vendored_charts_are_the_dependencies_helm_build_leaves(tmp_path: Path) -> None:
    helm = k8s.helm()
    chart = yaml.safe_load((k8s.CHART / "Chart.yaml").read_text())
    statuses = helm.dependency_list(k8s.CHART)
    assert [(d["name"], d["version"], d["status"]) for d in statuses] == [
        (d["name"], d["version"], "ok") for d in chart["dependencies"]
    ]
    for dependency in chart["dependencies"]:
        archive = k8s.CHART / "charts" / f"{dependency['name']}-{dependency['version']}.tgz"
        with tarfile.open(archive) as tar:
            licence = tar.extractfile(f"{dependency['name']}/LICENSE")
            assert licence is not None and b"Apache License" in licence.read()
    # Helm checks Chart.lock against Chart.yaml before it downloads anything: in sync, the build gets as far
    # as the (absent) repository index; a lock that names another version is refused.
    copy = tmp_path / "asteroid"
    shutil.copytree(k8s.CHART, copy)
    with pytest.raises(helm.HelmError) as in_sync:
        helm.dependency_build(copy, skip_refresh=True)
    assert "out of sync" not in str(in_sync.value)
    lock = copy / "Chart.lock"
    lock.write_text(lock.read_text().replace("version: 5.3.0", "version: 5.2.0"))
    with pytest.raises(helm.HelmError, match="out of sync"):
        helm.dependency_build(copy, skip_refresh=True)


def test_helm_lint_passes_for_every_release_strictly() -> None:
    helm = k8s.helm()
    for release in k8s.RELEASES:
        report = helm.lint(
            k8s.CHART, k8s.values(release), strict=True, kube_version=f"v{k8s.KUBERNETES_VERSION}"
        )
        assert report["total_charts_linted"] == 1 and not report["errors"], (release.name, report)
        assert not [m for m in report["messages"] if m["severity"] >= 2], (release.name, report["messages"])


def test_the_post_renderer_runs_as_helm_runs_it() -> None:
    """Helm 3 pipes the rendered manifests through post-render.py, Helm 4 through the plugin's command; both
    give what the tests validate."""
    helm = k8s.helm()
    with helm.Chart.load(k8s.CHART) as chart:
        files = chart.render(values=k8s.values(SERVING), name=SERVING.name, namespace=k8s.NAMESPACE)
    text = "\n---\n".join(body for path, body in sorted(files.items()) if not path.endswith("NOTES.txt"))
    plugin = yaml.safe_load((k8s.CHART / "helm-plugin" / "plugin.yaml").read_text())
    assert plugin["type"] == "postrenderer/v1" and plugin["runtime"] == "subprocess"
    (command,) = [c["command"] for c in plugin["runtimeConfig"]["platformCommand"]]
    plugin_command = command.replace("${HELM_PLUGIN_DIR}", str(k8s.CHART / "helm-plugin"))
    expected = [k8s.key(m) for m in k8s.render(SERVING)]
    for argv in ([sys.executable, str(k8s.CHART / "post-render.py")], ["sh", plugin_command]):
        completed = subprocess.run(argv, input=text, capture_output=True, text=True, timeout=60, check=False)
        assert completed.returncode == 0, (argv, completed.stderr)
        rendered = [m for m in yaml.safe_load_all(completed.stdout) if m]
        assert [k8s.key(m) for m in rendered] == expected, argv
        before = {k8s.key(m): m for m in yaml.safe_load_all(text) if m}[INFERENCE]
        after = {k8s.key(m): m for m in rendered}[INFERENCE]
        assert before["spec"]["replicas"] == 1 and "readinessProbe" not in k8s.containers(before)[0]
        assert "replicas" not in after["spec"] and "readinessProbe" in k8s.containers(after)[0]


def test_every_release_renders() -> None:
    counts = {release.name: len(k8s.render(release)) for release in k8s.RELEASES}
    assert counts["clearml"] > 20 and counts["agents"] >= 5 and counts["serving"] > 20, counts
    kinds = {m["kind"] for m in k8s.render(SERVING)}
    assert {"Deployment", "StatefulSet", "HorizontalPodAutoscaler", "ConfigMap", "Service"} <= kinds


def test_every_rendered_object_is_valid_kubernetes_strictly() -> None:
    validator = pytest.importorskip(
        "kubernetes_validate", reason="kubernetes-validate (requirements.txt) is not installed"
    )
    started = time.perf_counter()
    validated = 0
    for release, manifest in k8s.all_objects():
        where = f"{release.name}: {k8s.key(manifest)}"
        try:
            validator.validate(manifest, k8s.KUBERNETES_VERSION, strict=True)
        except validator.SchemaNotFoundError:
            assert k8s.key(manifest) in NO_SCHEMA, f"{where}: no schema for {manifest['apiVersion']}"
        except validator.ValidationError as exc:
            path = ".".join(str(p) for p in exc.path)
            pytest.fail(f"{where}: {path}: {exc.message}")
        validated += 1
    assert validated > 60
    seconds = time.perf_counter() - started
    print(f"{validated} objects valid for Kubernetes {k8s.KUBERNETES_VERSION} in {seconds:.2f} s")


def test_strict_validation_rejects_an_unknown_field() -> None:
    validator = pytest.importorskip("kubernetes_validate", reason="kubernetes-validate is not installed")
    manifest = k8s.by_key(SERVING)[INFERENCE]
    broken = {**manifest, "spec": {**manifest["spec"], "replica": 2}}
    with pytest.raises(validator.ValidationError):
        validator.validate(broken, k8s.KUBERNETES_VERSION, strict=True)


def test_images_are_pinned_and_the_compose_stacks_images() -> None:
    compose = {}
    for _where, image in all_images():
        repository, tag = image_name(image)
        compose.setdefault(repository, set()).add(tag)
    seen = set()
    for release, manifest in k8s.all_objects():
        for container in k8s.containers(manifest):
            repository, tag = image_name(container["image"])
            where = f"{release.name}: {k8s.key(manifest)} {container['name']}"
            assert re.search(r"\d+\.\d+", tag) and tag != "latest", (
                f"{where}: {container['image']} is unpinned"
            )
            if repository in compose:
                assert tag in compose[repository], (
                    f"{where}: {repository}:{tag}, Compose runs {compose[repository]}"
                )
            else:
                assert repository in NOT_IN_COMPOSE, f"{where}: {repository} is in no Compose stack"
            seen.add(repository)
    assert "asteroid/clearml-serving-inference" in seen and "apache/kafka" in seen
    assert set(NOT_IN_COMPOSE) <= seen, "an exception is listed for an image no release runs"


def missing_resources(objects: list[dict[str, Any]]) -> list[str]:
    """Containers (init containers too) without CPU and memory requests and limits."""
    return [
        f"{k8s.key(manifest)} {container['name']}: no {kind}"
        for manifest in objects
        for container in k8s.containers(manifest)
        for kind in ("requests", "limits")
        if not {"cpu", "memory"} <= set((container.get("resources") or {}).get(kind) or {})
    ]


def test_every_container_has_resource_requests_and_limits() -> None:
    for release in k8s.RELEASES:
        objects = k8s.render(release)
        assert objects and not missing_resources(objects), (release.name, missing_resources(objects))
    assert sum(len(k8s.containers(m)) for _r, m in k8s.all_objects()) > 15


def strings(node: Any) -> list[str]:
    if isinstance(node, dict):
        return [s for value in node.values() for s in strings(value)]
    if isinstance(node, list):
        return [s for value in node for s in strings(value)]
    return [node] if isinstance(node, str) else []


def addresses(objects: list[dict[str, Any]]) -> list[tuple[str, str]]:
    """(where, text) of what can name another service: environment values, arguments and commands of every
    container, and ConfigMap data. Probes address their own container and stay out."""
    found = []
    for manifest in objects:
        for container in k8s.containers(manifest):
            env = [e.get("value", "") for e in container.get("env", [])]
            found += [(f"{k8s.key(manifest)} {container['name']}", text)
                      for text in env + container.get("args", []) + container.get("command", [])]  # fmt: skip
        if manifest["kind"] == "ConfigMap":
            found += [(k8s.key(manifest), text) for text in strings(manifest.get("data", {}))]
    return found


def loopback(scanned: list[tuple[str, str]]) -> dict[str, str]:
    return {where: str(text)[:120] for where, text in scanned if LOOPBACK.search(str(text))}


def test_no_address_is_loopback() -> None:
    """Every object of every release and every values file (inside a pod, loopback is the pod itself)."""
    scanned = [item for release in k8s.RELEASES for item in addresses(k8s.render(release))]
    for path, document in k8s.read_values_files().items():
        scanned += [(str(path), text) for text in strings(document)]
    assert len(scanned) > 200
    assert set(loopback(scanned)) == set(SAME_POD), loopback(scanned)


def credential_values(node: Any, path: str = "") -> list[tuple[str, Any]]:
    """(path, value) of every key named like a credential (…key, …secret, …password, …token)."""
    found = []
    if isinstance(node, dict):
        for name, value in node.items():
            if name == "secretKeyRef":
                continue  # names a Secret and its key
            if is_credential(str(name)) and not isinstance(value, (dict, list)):
                found.append((f"{path}.{name}", value))
            found += credential_values(value, f"{path}.{name}")
    elif isinstance(node, list):
        for index, value in enumerate(node):
            found += credential_values(value, f"{path}[{index}]")
    return found


def credentials_set(document: Any) -> list[tuple[str, Any]]:
    return [(where, value) for where, value in credential_values(document) if value not in ("", None)]


def test_no_credential_is_in_a_values_file() -> None:
    documents = k8s.read_values_files()
    assert sum(len(credential_values(d)) for d in documents.values()) >= 4  # present, and empty
    for path, document in documents.items():
        assert not credentials_set(document), (path.name, credentials_set(document))


def plain_credentials(objects: list[dict[str, Any]], chart_secrets: set[str]) -> list[str]:
    """Variables named like a credential that are not a Secret reference, or read a Secret the charts render
    themselves (the clearml chart always renders clearml-conf, with its public default keys)."""
    found = []
    for manifest in objects:
        for container in k8s.containers(manifest):
            for variable in container.get("env", []):
                reference = variable.get("valueFrom", {}).get("secretKeyRef") or {}
                if is_credential(variable["name"]) and (
                    "value" in variable or not reference or reference["name"] in chart_secrets
                ):
                    found.append(f"{k8s.key(manifest)} {variable['name']}")
    return found


def test_credentials_reach_the_pods_only_from_secrets() -> None:
    chart_secrets = {m["metadata"]["name"] for _r, m in k8s.all_objects() if m["kind"] == "Secret"}
    for release in k8s.RELEASES:
        assert not plain_credentials(k8s.render(release), chart_secrets), release.name
    credentials = [v for _r, m in k8s.all_objects() for c in k8s.containers(m) for v in c.get("env", [])
                   if is_credential(v["name"])]  # fmt: skip
    assert len(credentials) >= 10
    # The Secrets the charts render whatever the values (unused) hold none of the charts' public default keys.
    for _release, manifest in k8s.all_objects():
        if manifest["kind"] == "Secret":
            data = manifest.get("data") or {}
            assert {name: value for name, value in data.items() if is_credential(name) and value} == {}, (
                k8s.key(manifest)
            )


def test_the_checks_find_a_loopback_address_a_missing_limit_and_a_credential() -> None:
    """The same checks on a serving release rendered with the mistakes the issue names."""
    mistakes = {
        "clearml-serving": {
            "clearml": {"apiHost": "http://localhost:8008", "apiAccessKey": "AKIAEXAMPLE"},
            "clearml_serving_statistics": {"resources": {"limits": None}},
        }
    }
    objects = k8s.render_with(SERVING, mistakes)
    assert "Deployment/asteroid-serving-inference asteroid-serving-inference" in loopback(addresses(objects))
    assert missing_resources(objects) == [
        "Deployment/asteroid-serving-statistics asteroid-serving-statistics: no limits"
    ]
    assert credentials_set(mistakes) == [(".clearml-serving.clearml.apiAccessKey", "AKIAEXAMPLE")]
    without_post_render = k8s.render_with(SERVING, mistakes, post_render=False)
    assert "Deployment/asteroid-serving-inference CLEARML_API_ACCESS_KEY" in plain_credentials(
        without_post_render, set()
    )


def test_inference_is_autoscaled_from_two_replicas_with_readiness_on_the_serving_port() -> None:
    objects = k8s.by_key(SERVING)
    deployment = objects[INFERENCE]
    (hpa,) = [m for m in objects.values() if m["kind"] == "HorizontalPodAutoscaler"]
    assert hpa["spec"]["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": "asteroid-serving-inference",
    }
    assert hpa["spec"]["minReplicas"] >= 2 and hpa["spec"]["maxReplicas"] > hpa["spec"]["minReplicas"]
    assert "replicas" not in deployment["spec"], (
        "the chart's replicas: 1 would undo the autoscaler at upgrades"
    )
    (container,) = k8s.containers(deployment)
    assert container["readinessProbe"]["httpGet"]["port"] == kubernetes_files.PORTS.port
    assert {"containerPort": kubernetes_files.PORTS.port} in container["ports"]
    env = {e["name"]: e for e in container["env"]}
    assert len(env) == len(container["env"]), "a variable is defined twice"
    budget = objects["PodDisruptionBudget/asteroid-serving-inference"]["spec"]
    assert budget["selector"]["matchLabels"] == deployment["spec"]["selector"]["matchLabels"]
    assert budget["minAvailable"] < hpa["spec"]["minReplicas"]
    service = objects["Service/asteroid-serving-inference"]
    assert env["CLEARML_DEFAULT_BASE_SERVE_URL"]["value"] == (
        f"http://{service['metadata']['name']}:{service['spec']['ports'][0]['port']}/serve"
    )


def test_serving_instances_share_one_kafka_and_prometheus() -> None:
    shared = k8s.by_key(SERVING)
    second = k8s.by_key(SERVING_B)
    assert set(second) == {
        "Deployment/asteroid-serving-b-inference", "Deployment/asteroid-serving-b-statistics",
        "Service/asteroid-serving-b-inference", "Service/asteroid-serving-b-statistics",
        "HorizontalPodAutoscaler/asteroid-serving-b-inference-hpa",
        "PodDisruptionBudget/asteroid-serving-b-inference",
    }  # fmt: skip
    kafka = shared[f"Service/{kubernetes_files.KAFKA_SERVICE}"]
    address = f"{kafka['metadata']['name']}:{kafka['spec']['ports'][0]['port']}"
    config = yaml.safe_load(shared["ConfigMap/serving-asteroid-prometheus-config"]["data"]["prometheus.yml"])
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    for objects in (shared, second):
        for name, manifest in objects.items():
            labels = manifest["metadata"].get("labels", {})
            if manifest["kind"] != "Deployment" or kubernetes_files.SERVING_LABEL not in labels:
                continue
            (container,) = k8s.containers(manifest)
            env = {e["name"]: e.get("value") for e in container["env"]}
            assert env["CLEARML_DEFAULT_KAFKA_SERVE_URL"] == address, name
            label = manifest["spec"]["template"]["metadata"]["labels"][kubernetes_files.SERVING_LABEL]
            matching = [
                job for job in jobs.values()
                if re.fullmatch(job["relabel_configs"][0]["regex"], label)
                and {"containerPort": int(job["relabel_configs"][1]["regex"])} in container["ports"]
            ]  # fmt: skip
            assert len(matching) == 1, f"{name} is scraped by {len(matching)} jobs"


def test_prometheus_and_grafana_read_the_projects_configuration() -> None:
    objects = k8s.by_key(SERVING)
    (server,) = [
        m for m in objects.values() if m["kind"] == "Deployment" and "prometheus" in m["metadata"]["name"]
    ]
    volumes = {v["name"]: v.get("configMap", {}).get("name") for v in k8s.pod_spec(server)["volumes"]}
    for container in k8s.containers(server):  # Prometheus and its reload sidecar see the same files
        mounted = {m["mountPath"]: volumes[m["name"]] for m in container["volumeMounts"]}
        assert mounted["/etc/config"] == "serving-asteroid-prometheus-config", container["name"]
        assert mounted[kubernetes_files.RULES_MOUNT] == kubernetes_files.RULES_CONFIGMAP, container["name"]
    labels = server["spec"]["template"]["metadata"]["labels"]
    assert labels[kubernetes_files.PROMETHEUS_LABEL] == "server"  # what the `prometheus` scrape job keeps
    assert objects[f"Service/{kubernetes_files.PROMETHEUS_SERVICE}"]["spec"]["ports"][0]["port"] == (
        kubernetes_files.PROMETHEUS_SERVICE_PORT
    )
    grafana = objects["Deployment/asteroid-grafana"]
    config_maps = {v.get("configMap", {}).get("name") for v in k8s.pod_spec(grafana)["volumes"]}
    assert {"asteroid-grafana-dashboard", "asteroid-grafana-alerting"} <= config_maps
    for path, text in kubernetes_files.generated_files().items():
        assert (k8s.CHART / path).read_text(encoding="utf-8") == text, (
            f"{path}: run deploy_files --target kubernetes"
        )


def service_ports() -> dict[str, set[int]]:
    """Service name -> its ports, over every release (one namespace)."""
    return {
        m["metadata"]["name"]: {p["port"] for p in m["spec"]["ports"]}
        for _r, m in k8s.all_objects()
        if m["kind"] == "Service"
    }


def host_port(address: str) -> tuple[str, int]:
    netloc = address.split("://", 1)[-1].split("/", 1)[0]
    host, _, port = netloc.partition(":")
    return host, int(port or (443 if address.startswith("https://") else 80))


def test_every_address_is_a_service_of_the_releases_on_its_port() -> None:
    """The server addresses of the agents and serving releases, Kafka, the base serve URL, the webhook
    Alertmanager calls and Grafana's datasource are Services some release renders, on a port they have."""
    addresses = []
    for release, manifest in k8s.all_objects():
        for container in k8s.containers(manifest):
            for variable in container.get("env", []):
                value = str(variable.get("value", ""))
                is_address = "://" in value or re.fullmatch(r"[\w.-]+:\d+", value)
                if variable["name"].endswith(("_HOST", "_URL", "_ADDR")) and is_address:
                    addresses.append((f"{release.name}: {k8s.key(manifest)} {variable['name']}", value))
    alertmanager = yaml.safe_load((k8s.CHART / "files" / "alertmanager.yml").read_text())
    addresses += [
        ("alertmanager webhook", c["url"]) for r in alertmanager["receivers"] for c in r["webhook_configs"]
    ]
    grafana = k8s.values(SERVING) | yaml.safe_load((k8s.CHART / "values.yaml").read_text())
    sources = grafana["clearml-serving"]["grafana"]["datasources"]["datasources.yaml"]["datasources"]
    addresses += [("grafana datasource", source["url"]) for source in sources]
    services = service_ports()
    names = {what.rsplit(" ", 1)[-1] for what, _ in addresses}
    assert {"CLEARML_API_HOST", "CLEARML_FILES_HOST", "CLEARML_DEFAULT_KAFKA_SERVE_URL"} <= names, names
    assert len(addresses) >= 12
    for what, address in addresses:
        host, port = host_port(address)
        assert host in services, f"{what}: {address} is no Service of the releases"
        assert port in services[host], f"{what}: {host} has ports {services[host]}, not {port}"


def discovered(section: dict[str, Any], objects: list[dict[str, Any]]) -> list[str]:
    """The workloads whose pods a pod-discovery section keeps: its first rule keeps a pod label's value, its
    second a declared container port."""
    label_rule, port_rule = section["relabel_configs"][:2]
    (meta_label,) = label_rule["source_labels"]
    found = []
    for manifest in objects:
        spec = k8s.pod_spec(manifest)
        if spec is None or manifest["kind"] == "Pod":
            continue
        labels = manifest["spec"]["template"]["metadata"].get("labels", {})
        values = [v for name, v in labels.items() if kubernetes_files.meta_label(name) == meta_label]
        ports = {str(p["containerPort"]) for c in spec["containers"] for p in c.get("ports", [])}
        if any(re.fullmatch(label_rule["regex"], v) for v in values) and port_rule["regex"] in ports:
            found.append(k8s.key(manifest))
    return found


def test_every_scrape_job_and_the_alertmanager_discovery_find_their_pods() -> None:
    objects = k8s.render(SERVING) + k8s.render(SERVING_B)
    config = yaml.safe_load((k8s.CHART / "files" / "prometheus.yml").read_text())
    found = {job["job_name"]: discovered(job, objects) for job in config["scrape_configs"]}
    assert found == {
        "clearml-serving-statistics": [
            "Deployment/asteroid-serving-statistics", "Deployment/asteroid-serving-b-statistics"
        ],
        "clearml-serving-inference": [
            "Deployment/asteroid-serving-inference", "Deployment/asteroid-serving-b-inference"
        ],
        "prometheus": ["Deployment/asteroid-prometheus"],
        "alertmanager": ["StatefulSet/asteroid-alertmanager"],
        "node": ["DaemonSet/asteroid-node-exporter"],
    }  # fmt: skip
    (alerting,) = config["alerting"]["alertmanagers"]
    assert discovered(alerting, objects) == ["StatefulSet/asteroid-alertmanager"]
