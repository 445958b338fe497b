"""The monitoring configuration of deploy/kubernetes: the rules ConfigMap holds the very rules a rollout
writes for the local stack, Prometheus' configuration and the rules pass promtool, Alertmanager's amtool."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

import global_config
import serving_local.api
from asteroid.monitoring import kubernetes_files
from tests.code.test_readme import readme_command
from tests.deploy import kubernetes as k8s
from tests.deploy.conftest import tool


@pytest.fixture(scope="module")
def rollout_rules(sample_rules: Path) -> Path:
    """The rules folder after a rollout of version 1 (what `serve.py --deploy-only` writes for the local
    stack)."""
    return sample_rules.parent


def run(argv: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False)


def test_the_rules_configmap_holds_the_local_stacks_rules(rollout_rules: Path, tmp_path: Path) -> None:
    written = kubernetes_files.write(rollout_rules, directory=tmp_path)
    manifest = yaml.safe_load((tmp_path / "generated" / "prometheus-rules.yaml").read_text())
    assert tmp_path / "generated" / "prometheus-rules.yaml" in written
    local = {path.name: path.read_text(encoding="utf-8") for path in rollout_rules.glob("*.yml")}
    assert list(local) == [f"{global_config.SERVING_ENDPOINT}.yml"]
    assert manifest["metadata"]["name"] == kubernetes_files.RULES_CONFIGMAP
    assert manifest["data"] == local
    validator = pytest.importorskip("kubernetes_validate", reason="kubernetes-validate is not installed")
    validator.validate(manifest, k8s.KUBERNETES_VERSION, strict=True)
    for relative in kubernetes_files.generated_files():  # the committed files are written unchanged
        assert (tmp_path / relative).read_text() == (k8s.CHART / relative).read_text()


def test_the_readme_command_writes_the_rules_configmap() -> None:
    # README: .venv/bin/python -m asteroid.monitoring.deploy_files --target kubernetes --rules-dir deploy/prometheus/rules  # noqa: E501
    command = readme_command(".venv/bin/python -m asteroid.monitoring.deploy_files --target kubernetes")
    argv = [sys.executable, *command.split()[1:]]
    rules_dir = global_config.ROOT / argv[argv.index("--rules-dir") + 1]
    manifest = kubernetes_files.RULES_MANIFEST
    before = manifest.read_bytes() if manifest.exists() else None  # a real rollout's, kept
    try:
        completed = subprocess.run(argv, cwd=global_config.ROOT, capture_output=True, text=True, timeout=120)
        assert completed.returncode == 0, completed.stderr
        assert f"wrote {manifest.relative_to(global_config.ROOT)}" in completed.stdout
        written = yaml.safe_load(manifest.read_text())
        assert written["data"] == {p.name: p.read_text() for p in sorted(rules_dir.glob("*.yml"))}
    finally:
        if before is None:
            manifest.unlink(missing_ok=True)
        else:
            manifest.write_bytes(before)
    for relative, text in kubernetes_files.generated_files().items():
        assert (k8s.CHART / relative).read_text() == text  # rewritten unchanged


def test_an_empty_rules_folder_gives_an_empty_configmap(tmp_path: Path) -> None:
    """Before the first rollout Prometheus still starts: it mounts the ConfigMap, with no rule file in it."""
    assert kubernetes_files.rules_configmap(tmp_path / "missing")["data"] == {}


def test_promtool_accepts_the_configuration_with_the_configmaps_rules(
    rollout_rules: Path, tmp_path: Path
) -> None:
    promtool = tool("promtool")
    manifest = kubernetes_files.rules_configmap(rollout_rules)
    mounted = tmp_path / "rules"  # the ConfigMap as the Prometheus container sees it, one file per key
    mounted.mkdir()
    for name, text in manifest["data"].items():
        (mounted / name).write_text(text)
    checked = run([promtool, "check", "rules", *map(str, sorted(mounted.glob("*.yml")))])
    assert checked.returncode == 0 and "SUCCESS" in checked.stdout, checked.stdout + checked.stderr
    document = yaml.safe_load((k8s.CHART / "files" / "prometheus.yml").read_text())
    assert document["rule_files"] == [f"{kubernetes_files.RULES_MOUNT}/*.yml"]
    document["rule_files"] = [str(mounted / "*.yml")]
    # Debian's promtool is built without Kubernetes discovery: the pod discovery is swapped for a static
    # target so that everything else (relabelling, alerting, rule loading) is checked by promtool.
    for section in [*document["scrape_configs"], *document["alerting"]["alertmanagers"]]:
        assert section.pop("kubernetes_sd_configs") == [
            {"role": "pod", "namespaces": {"own_namespace": True}}
        ]
        section["static_configs"] = [{"targets": ["pod.example:80"]}]
    config = tmp_path / "prometheus.yml"
    config.write_text(yaml.safe_dump(document))
    checked = run([promtool, "check", "config", str(config)])
    output = checked.stdout + checked.stderr
    assert checked.returncode == 0 and "SUCCESS" in output and "rules found" in output, output
    document["scrape_configs"][0]["relabel_configs"][0]["action"] = "keeps"
    config.write_text(yaml.safe_dump(document))
    assert run([promtool, "check", "config", str(config)]).returncode != 0


def test_amtool_accepts_the_alertmanager_config(tmp_path: Path) -> None:
    amtool = tool("amtool")
    path = k8s.CHART / "files" / "alertmanager.yml"
    checked = run([amtool, "check-config", str(path)])
    assert checked.returncode == 0, checked.stdout + checked.stderr
    webhook = yaml.safe_load(path.read_text())["receivers"][0]["webhook_configs"][0]["url"]
    assert webhook.startswith(f"http://{kubernetes_files.WEBHOOK_SERVICE}:")
    broken = tmp_path / "alertmanager.yml"
    broken.write_text(path.read_text().replace("receiver: webhook", "receiver: nobody"))
    assert run([amtool, "check-config", str(broken)]).returncode != 0


def test_the_scrape_jobs_are_the_ones_the_alert_rules_watch() -> None:
    document = yaml.safe_load((k8s.CHART / "files" / "prometheus.yml").read_text())
    assert {job["job_name"] for job in document["scrape_configs"]} >= {
        serving_local.api.STATISTICS_JOB,
        serving_local.api.INFERENCE_JOB,
    }
