"""What deploy/serving/docker-compose.yml mounts into Prometheus, Alertmanager and Grafana: the files the
project generates, byte for byte, valid for promtool and amtool, addressed to the stack's service names, and
one Grafana datasource uid throughout."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

import yaml

import global_config
import serving_local.api
from asteroid.monitoring import dashboard, deploy_files, publish
from serving_local import monitoring, stack_health
from serving_local.api import StackConfig
from tests.deploy import compose
from tests.deploy.conftest import tool

ROOT = global_config.ROOT
SERVING = compose.DEPLOY / "serving" / "docker-compose.yml"


def mounts(service_name: str) -> dict[str, Path]:
    """Container path -> repository file or folder of one serving service's bind mounts."""
    (service,) = [s for s in compose.services(SERVING) if s.name == service_name]
    return {
        target: (service.file.parent / source).resolve() for source, target in compose.bind_mounts(service)
    }


def mounted_files() -> dict[Path, str]:
    """Every repository file the monitoring services see (folders expanded) -> service name."""
    files = {}
    for name in ("prometheus", "alertmanager", "grafana", "alert-webhook"):
        for host in mounts(name).values():
            for path in [host] if host.is_file() else sorted(p for p in host.rglob("*") if p.is_file()):
                files[path] = name
    return files


def generated() -> dict[Path, str]:
    """Repository path -> content, from both generators."""
    files = {compose.DEPLOY / rel: text for rel, text in deploy_files.generated_files().items()}
    files |= {dashboard.DASHBOARDS_DIR / rel: text for rel, text in dashboard.generated_files().items()}
    return files


def test_the_committed_deploy_files_are_the_generated_ones() -> None:
    for path, content in generated().items():
        if path.is_relative_to(compose.DEPLOY):
            assert path.read_text(encoding="utf-8") == content, (
                f"{path}: run python -m {deploy_files.__name__}"
            )


def test_the_mounted_configuration_is_the_generated_configuration() -> None:
    """Everything Prometheus, Alertmanager and Grafana read is generated, and equal to what the generators
    give; the local stack's datasource (at 127.0.0.1) is the one generated file not mounted. The rules
    folder holds what rollouts write (next test)."""
    rules_folder = compose.DEPLOY / "prometheus" / "rules"
    mounted = {
        path for path, name in mounted_files().items()
        if name != "alert-webhook" and not path.is_relative_to(rules_folder)
    }  # fmt: skip
    files = generated()
    local_datasource = dashboard.DASHBOARDS_DIR / "provisioning/datasources/prometheus.yaml"
    assert mounted == set(files) - {local_datasource}
    for path in mounted:
        assert path.read_text(encoding="utf-8") == files[path], path


def test_prometheus_reads_the_rules_folder_the_rollout_writes_into(tmp_path: Path) -> None:
    folder = mounts("prometheus")["/etc/prometheus/rules"]
    assert folder == compose.DEPLOY / "prometheus" / "rules" and folder.is_dir()
    written = publish.write_rules("groups: []\n", global_config.SERVING_ENDPOINT, tmp_path)
    assert Path("/etc/prometheus/rules", written.name).match(deploy_files.PROMETHEUS_RULES_GLOB)
    assert "deploy/prometheus/rules/*.yml" in (ROOT / ".gitignore").read_text().splitlines()


def expose(spec: dict[str, Any]) -> set[int]:
    return {int(port) for port in spec.get("expose", [])}


def test_every_target_is_a_service_on_a_port_it_listens_on() -> None:
    services = compose.merged_services(SERVING)
    document = yaml.safe_load((compose.DEPLOY / "prometheus" / "prometheus.yml").read_text())
    targets = [
        t for job in document["scrape_configs"] for c in job.get("static_configs", []) for t in c["targets"]
    ]
    targets += [
        t for c in document["alerting"]["alertmanagers"] for s in c["static_configs"] for t in s["targets"]
    ]
    dns = [(name, c["port"]) for job in document["scrape_configs"] for c in job.get("dns_sd_configs", [])
           for name in c["names"]]  # fmt: skip
    webhook = yaml.safe_load((compose.DEPLOY / "alertmanager" / "alertmanager.yml").read_text())
    urls = [w["url"] for r in webhook["receivers"] for w in r.get("webhook_configs", [])]
    datasource = yaml.safe_load(
        (compose.DEPLOY / "grafana/provisioning/datasources/prometheus.yaml").read_text()
    )
    urls += [source["url"] for source in datasource["datasources"]]
    hosts = [tuple(t.split(":")) for t in targets] + dns
    hosts += [tuple(u.split("://", 1)[1].split("/", 1)[0].split(":")) for u in urls]
    assert len(hosts) >= 7
    for host, port in hosts:
        assert host in services, f"{host}:{port} is no service of {SERVING.name}"
        assert int(port) in expose(services[host]), f"{host} does not listen on {port}"
    command = services["alert-webhook"]["command"]
    assert command[command.index("--port") + 1] == str(deploy_files.WEBHOOK_PORT)
    env = services["clearml-serving-statistics"]["environment"]
    assert int(env["CLEARML_SERVING_PORT"]) == deploy_files.STATISTICS_PORT


def scrape_jobs(prometheus_yml: str) -> set[str]:
    return {job["job_name"] for job in yaml.safe_load(prometheus_yml)["scrape_configs"]}


def test_the_scrape_jobs_are_serving_locals_in_compose_kubernetes_and_locally(tmp_path: Path) -> None:
    compose_jobs = scrape_jobs((compose.DEPLOY / "prometheus" / "prometheus.yml").read_text())
    kubernetes = scrape_jobs((compose.DEPLOY / "kubernetes" / "files" / "prometheus.yml").read_text())
    local = scrape_jobs(monitoring.prometheus_config(StackConfig(data_dir=tmp_path)))
    # the host's node exporter: locally when installed
    node = {serving_local.api.NODE_JOB} if monitoring.node_exporter_binary() else set()
    # local only: the supervisor's own job (elsewhere Compose or Kubernetes restart the containers); the
    # exporters applications run beside the local stack are, in Compose, the quality consumer's (Kubernetes
    # runs no quality consumer)
    assert compose_jobs - {monitoring.APPLICATION_JOB} == kubernetes
    assert kubernetes - {serving_local.api.NODE_JOB} | node == local - {
        stack_health.STACK_JOB,
        monitoring.APPLICATION_JOB,
    }
    assert monitoring.APPLICATION_JOB in compose_jobs and serving_local.api.NODE_JOB in kubernetes
    assert local >= {serving_local.api.STATISTICS_JOB, serving_local.api.INFERENCE_JOB}


def test_the_quality_consumer_serves_its_metrics_where_prometheus_scrapes_them() -> None:
    service = compose.merged_services(SERVING)[deploy_files.QUALITY_SERVICE]
    command = service["command"]
    assert command[0] == "consume"
    assert command[command.index("--metrics-port") + 1] == str(deploy_files.QUALITY_METRICS_PORT)
    assert command[command.index("--metrics-host") + 1] == "0.0.0.0"  # reached by the prometheus service
    env = service["environment"]
    assert env["ASTEROID_QUALITY_BROKER"] == "kafka:9092"
    inference = compose.merged_services(SERVING)[deploy_files.INFERENCE_SERVICE]["environment"]
    for topic in ("ASTEROID_PREDICTIONS_TOPIC", "ASTEROID_FEEDBACK_TOPIC"):
        assert env[topic] == inference[topic]  # the hook publishes where the consumer reads
    assert env["NEO_DATABASE_URL"] == compose.read_env_file()["NEO_DATABASE_URL"]  # the project's database
    assert "quality-data:/var/lib/asteroid" in service["volumes"]  # the SQLite file outlives the container


def test_the_quality_consumer_falls_back_to_sqlite_in_its_volume_without_a_database_url() -> None:
    consumer = compose.load_raw(SERVING)["services"][deploy_files.QUALITY_SERVICE]
    assert consumer["environment"]["NEO_DATABASE_URL"].startswith(
        "${NEO_DATABASE_URL:-sqlite:////var/lib/asteroid/"
    )


def datasource_uids(node: Any) -> list[str]:
    """Every datasource uid a dashboard or alert rule names (`datasource.uid`, `datasourceUid`)."""
    found = []
    if isinstance(node, dict):
        if isinstance(node.get("datasource"), dict) and "uid" in node["datasource"]:
            found.append(node["datasource"]["uid"])
        if "datasourceUid" in node:
            found.append(node["datasourceUid"])
        for value in node.values():
            found += datasource_uids(value)
    elif isinstance(node, list):
        for value in node:
            found += datasource_uids(value)
    return found


def test_dashboard_and_alert_rules_use_the_provisioned_datasource_uid() -> None:
    grafana = mounts("grafana")
    (source,) = yaml.safe_load(
        (grafana["/etc/grafana/provisioning/datasources"] / "prometheus.yaml").read_text()
    )["datasources"]
    assert source["uid"] == dashboard.DATASOURCE_UID and source["type"] == "prometheus"
    board = json.loads(grafana["/var/lib/grafana/dashboards/asteroid/asteroid.json"].read_text())
    alerting = yaml.safe_load(
        (grafana["/etc/grafana/provisioning/alerting"] / "asteroid-drift.yaml").read_text()
    )
    used = datasource_uids(board) + datasource_uids(alerting)
    assert len(used) > 20
    assert set(used) - {"__expr__"} == {source["uid"]}


def test_the_dashboard_provider_reads_where_the_dashboard_is_mounted() -> None:
    grafana = mounts("grafana")
    provider = yaml.safe_load((grafana["/etc/grafana/provisioning/dashboards"] / "asteroid.yaml").read_text())
    (folder,) = [p["options"]["path"] for p in provider["providers"]]
    assert any(Path(target).parent == Path(folder) and target.endswith(".json") for target in grafana)


def run(argv: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False)


def test_promtool_accepts_the_production_config_with_a_rollouts_rules(
    tmp_path: Path, sample_rules: Path
) -> None:
    promtool = tool("promtool")
    text = (compose.DEPLOY / "prometheus" / "prometheus.yml").read_text()
    assert deploy_files.PROMETHEUS_RULES_GLOB in text
    config = tmp_path / "prometheus.yml"
    config.write_text(text.replace(deploy_files.PROMETHEUS_RULES_GLOB, str(sample_rules.parent / "*.yml")))
    checked = run([promtool, "check", "config", str(config)])
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert (
        "SUCCESS" in checked.stdout + checked.stderr and sample_rules.name in checked.stdout + checked.stderr
    )
    broken = tmp_path / "broken.yml"
    broken.write_text(text.replace("dns_sd_configs", "dns_sd_config"))
    assert run([promtool, "check", "config", str(broken)]).returncode != 0


def test_every_job_the_rules_select_is_a_scrape_job(sample_rules: Path) -> None:
    selected = set(re.findall(r'job="([^"]+)"', sample_rules.read_text()))
    assert selected and selected <= scrape_jobs(
        (compose.DEPLOY / "prometheus" / "prometheus.yml").read_text()
    )


def test_amtool_accepts_the_alertmanager_config(tmp_path: Path) -> None:
    amtool = tool("amtool")
    path = compose.DEPLOY / "alertmanager" / "alertmanager.yml"
    checked = run([amtool, "check-config", str(path)])
    assert checked.returncode == 0, checked.stdout + checked.stderr
    broken = tmp_path / "alertmanager.yml"
    broken.write_text(path.read_text().replace("receiver: webhook", "receiver: nobody"))
    assert run([amtool, "check-config", str(broken)]).returncode != 0


def test_the_webhook_receiver_runs_the_mounted_package() -> None:
    service = compose.merged_services(SERVING)["alert-webhook"]
    ((target, host),) = mounts("alert-webhook").items()
    module = service["command"][service["command"].index("-m") + 1]
    assert target == f"{service['environment']['PYTHONPATH']}/{module.split('.')[0]}"
    assert (host / f"{module.split('.', 1)[1]}.py").is_file()
