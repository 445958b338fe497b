"""The one generator of Prometheus' and Alertmanager's configuration, for this stack and for a deployment
elsewhere (``asteroid/monitoring/deploy_files.py`` writes the Compose stack's): what differs between them —
static targets or DNS discovery of the inference replicas, the rule files' path, the addresses — is a
parameter. The scrape job names are defined here once; alert rules select on them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

STATISTICS_JOB = "clearml-serving-statistics"  # the statistics controller's metrics (request statistics)
INFERENCE_JOB = "clearml-serving-inference"  # the inference app's request metrics (count, errors, latency)


@dataclass(frozen=True)
class Target:
    """Where Prometheus finds a scrape target: one address, or (``dns``) every address a name resolves to
    (Docker's and Kubernetes' DNS answer a service name with one address per replica)."""

    host: str
    port: int
    dns: bool = False

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    def scrape_config(self, job: str) -> dict[str, Any]:
        if self.dns:
            return {
                "job_name": job,
                "dns_sd_configs": [{"names": [self.host], "type": "A", "port": self.port}],
            }
        return {"job_name": job, "static_configs": [{"targets": [self.address]}]}


def prometheus_document(
    *,
    scrape_seconds: float,
    rule_files: list[str],
    statistics: Target,
    inference: Target,
    prometheus: Target,
    alertmanager: Target,
) -> dict[str, Any]:
    """prometheus.yml: the two clearml-serving targets, Prometheus and Alertmanager themselves, the rule
    files, alerts sent to Alertmanager."""
    interval = f"{scrape_seconds:g}s"
    return {
        "global": {"scrape_interval": interval, "evaluation_interval": interval},
        "rule_files": rule_files,
        "alerting": {"alertmanagers": [{"static_configs": [{"targets": [alertmanager.address]}]}]},
        "scrape_configs": [
            statistics.scrape_config(STATISTICS_JOB),
            inference.scrape_config(INFERENCE_JOB),
            prometheus.scrape_config("prometheus"),
            alertmanager.scrape_config("alertmanager"),
        ],
    }


def alertmanager_text(webhook_url: str, group_wait: str, group_interval: str, repeat_interval: str) -> str:
    """alertmanager.yml (without a header): every alert to the webhook receiver at ``webhook_url``, resolved
    ones too; critical inhibits warning of the same alert. E-mail and Slack receivers are shown commented."""
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
        send_resolved: true
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
