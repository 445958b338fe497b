"""The one generator of Prometheus' and Alertmanager's configuration, for this stack and for deployments
elsewhere (``asteroid/monitoring/deploy_files.py`` and ``kubernetes_files.py`` write the Compose and the
Kubernetes ones): what differs between them — how each target is found (static address, DNS, Kubernetes pod
discovery), the rule files' path, the webhook's address — is a parameter. The scrape job names are defined
here once; alert rules select on them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from serving_local.config import StackConfig

STATISTICS_JOB = "clearml-serving-statistics"  # the statistics controller's metrics (request statistics)
INFERENCE_JOB = "clearml-serving-inference"  # the inference app's request metrics (count, errors, latency)
NODE_JOB = "node"  # the host's CPU, memory and load (Prometheus node exporter)


class Discovery(Protocol):
    """How Prometheus finds a target: the keys of a scrape configuration besides ``job_name``, which are also
    an ``alertmanagers`` entry (``static_configs``, ``dns_sd_configs``, ``kubernetes_sd_configs`` ...)."""

    def discovery(self) -> dict[str, Any]: ...


@dataclass(frozen=True)
class Target:
    """One address, or (``dns``) every address a name resolves to (Docker's DNS answers a service name with
    one address per replica)."""

    host: str
    port: int
    dns: bool = False

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    def discovery(self) -> dict[str, Any]:
        if self.dns:
            return {"dns_sd_configs": [{"names": [self.host], "type": "A", "port": self.port}]}
        return {"static_configs": [{"targets": [self.address]}]}


@dataclass(frozen=True)
class TargetsFile:
    """Addresses Prometheus reads from a JSON file it watches (a target whose port is chosen at start)."""

    path: str
    refresh: str = "5s"

    def discovery(self) -> dict[str, Any]:
        return {"file_sd_configs": [{"files": [self.path], "refresh_interval": self.refresh}]}


def prometheus_document(
    *,
    scrape_seconds: float,
    rule_files: list[str],
    statistics: Discovery,
    inference: Discovery,
    prometheus: Discovery,
    alertmanager: Discovery,
    node: Discovery | None = None,
    extra_jobs: dict[str, Discovery] | None = None,
) -> dict[str, Any]:
    """prometheus.yml: the two clearml-serving targets, Prometheus and Alertmanager themselves, the host's
    node exporter (``node``, as job ``NODE_JOB``) and any ``extra_jobs``; the rule files, alerts sent to
    Alertmanager."""
    interval = f"{scrape_seconds:g}s"
    jobs = [(STATISTICS_JOB, statistics), (INFERENCE_JOB, inference), ("prometheus", prometheus)]
    jobs += [(NODE_JOB, node)] if node is not None else []
    jobs += list((extra_jobs or {}).items())
    return {
        "global": {"scrape_interval": interval, "evaluation_interval": interval},
        "rule_files": rule_files,
        "alerting": {"alertmanagers": [alertmanager.discovery()]},
        "scrape_configs": [
            {"job_name": job, **target.discovery()} for job, target in [*jobs, ("alertmanager", alertmanager)]
        ],
    }


def alertmanager_text(
    webhook_url: str,
    group_wait: str = StackConfig.alert_group_wait,
    group_interval: str = StackConfig.alert_group_interval,
    repeat_interval: str = StackConfig.alert_repeat_interval,
    token_file: str | None = None,
) -> str:
    """alertmanager.yml (without a header): every alert to the webhook receiver at ``webhook_url``, resolved
    ones too (with ``token_file``'s content as its bearer token); critical inhibits warning of the same
    alert; the stack's timings unless given. E-mail and Slack receivers are shown commented."""
    authorization = (
        f"\n        http_config:\n          authorization:\n            type: Bearer\n"
        f"            credentials_file: {token_file}"
        if token_file
        else ""
    )
    return f"""route:
  receiver: webhook
  group_by: ['...']          # every distinct alert (label set) is its own notification
  group_wait: {group_wait}
  group_interval: {group_interval}
  repeat_interval: {repeat_interval}
  # routes:                  # e.g. critical alerts to people as well:
  #   - matchers: [severity="critical"]
  #     receiver: team-email
  #     continue: true
receivers:
  - name: webhook
    webhook_configs:
      - url: {webhook_url}
        send_resolved: true{authorization}
  # - name: team-email
  #   email_configs:
  #     - to: ml-oncall@example.org
  #       from: alertmanager@example.org
  #       smarthost: smtp.example.org:587
  #       auth_username: alertmanager@example.org
  #       auth_password_file: /etc/alertmanager/smtp-password
  #       send_resolved: true
  # - name: team-slack
  #   slack_configs:
  #     - api_url_file: /etc/alertmanager/slack-webhook-url
  #       channel: '#ml-alerts'
  #       title: '{{{{ .CommonLabels.alertname }}}} {{{{ .CommonLabels.feature }}}}'
  #       text: '{{{{ range .Alerts }}}}{{{{ .Annotations.summary }}}}{{{{ "\\n" }}}}{{{{ end }}}}'
  #       send_resolved: true
inhibit_rules:
  - source_matchers: [severity="critical"]
    target_matchers: [severity="warning"]
    equal: [alertname, endpoint, version, feature]
"""
