"""The one generator of Prometheus' and Alertmanager's configuration, for this stack and for deployments
elsewhere (``asteroid/monitoring/deploy_files.py`` and ``kubernetes_files.py`` write the Compose and the
Kubernetes ones): what differs between them — how each target is found (static address, DNS, Kubernetes pod
discovery), the rule files' path, the webhook's address — is a parameter. The scrape job names are defined
here once; alert rules select on them."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
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


@dataclass(frozen=True)
class ExtraReceiver:
    """A webhook receiver besides the stack's own, sent the alerts that match any of ``routes`` (each a list
    of Alertmanager matchers, e.g. ``['alertname="X"', 'severity="critical"']``); the stack's webhook still
    gets every alert."""

    name: str
    url: str
    routes: tuple[tuple[str, ...], ...]
    token_file: str | None = None
    send_resolved: bool = False

    @classmethod
    def from_json(cls, item: Any) -> ExtraReceiver:
        """One receiver of an extra-receivers file (``SERVING_LOCAL_EXTRA_RECEIVERS``); ValueError naming the
        wrong field."""
        if not isinstance(item, dict):
            raise ValueError("each extra receiver must be a JSON object")
        for key in ("name", "url"):
            if not isinstance(item.get(key), str) or not item[key]:
                raise ValueError(f"extra receiver field {key!r} must be a non-empty string")
        routes = item.get("routes")
        if not isinstance(routes, list) or not routes or not all(_is_matchers(r) for r in routes):
            raise ValueError(f"extra receiver {item['name']!r}: 'routes' must be a list of matcher lists")
        token_file = item.get("token_file")
        if token_file is not None and not isinstance(token_file, str):
            raise ValueError(f"extra receiver {item['name']!r}: 'token_file' must be a string")
        return cls(item["name"], item["url"], tuple(tuple(r) for r in routes), token_file)


def _is_matchers(route: Any) -> bool:
    return isinstance(route, list) and bool(route) and all(isinstance(m, str) and m for m in route)


def read_extra_receivers(path: Path | None) -> list[ExtraReceiver]:
    """The receivers a JSON file lists (none without a file)."""
    if path is None:
        return []
    try:
        items = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ValueError(f"cannot read the extra receivers file {path}: {exc}") from None
    if not isinstance(items, list):
        raise ValueError(f"the extra receivers file {path} must hold a JSON list")
    return [ExtraReceiver.from_json(item) for item in items]


def _authorization(token_file: str | None, indent: str) -> str:
    if not token_file:
        return ""
    return (
        f"\n{indent}http_config:\n{indent}  authorization:\n{indent}    type: Bearer\n"
        f"{indent}    credentials_file: {token_file}"
    )


def _extra_routes(extra: Sequence[ExtraReceiver]) -> str:
    """Child routes: each extra receiver's matchers (continue: true), then every alert to the webhook (a
    matching child route would otherwise take the alert from the root's receiver)."""
    if not extra:
        return ""
    lines = ["  routes:"]
    for receiver in extra:
        for matchers in receiver.routes:
            quoted = ", ".join(json.dumps(matcher) for matcher in matchers)
            lines += [
                f"    - matchers: [{quoted}]",
                f"      receiver: {receiver.name}",
                "      continue: true",
            ]
    lines += ["    - receiver: webhook"]
    return "\n".join(lines) + "\n"


def _extra_receivers(extra: Sequence[ExtraReceiver]) -> str:
    blocks = [
        f"  - name: {r.name}\n    webhook_configs:\n      - url: {r.url}\n"
        f"        send_resolved: {str(r.send_resolved).lower()}{_authorization(r.token_file, '        ')}\n"
        for r in extra
    ]
    return "".join(blocks)


def alertmanager_text(
    webhook_url: str,
    group_wait: str = StackConfig.alert_group_wait,
    group_interval: str = StackConfig.alert_group_interval,
    repeat_interval: str = StackConfig.alert_repeat_interval,
    token_file: str | None = None,
    extra_receivers: Sequence[ExtraReceiver] = (),
) -> str:
    """alertmanager.yml (without a header): every alert to the webhook receiver at ``webhook_url``, resolved
    ones too (with ``token_file``'s content as its bearer token), and the alerts each of ``extra_receivers``
    routes to it; critical inhibits warning of the same alert; the stack's timings unless given. E-mail and
    Slack receivers are shown commented."""
    authorization = _authorization(token_file, "        ")
    return f"""route:
  receiver: webhook
  group_by: ['...']          # every distinct alert (label set) is its own notification
  group_wait: {group_wait}
  group_interval: {group_interval}
  repeat_interval: {repeat_interval}
{_extra_routes(extra_receivers)}  # routes:                  # e.g. critical alerts to people as well:
  #   - matchers: [severity="critical"]
  #     receiver: team-email
  #     continue: true
receivers:
  - name: webhook
    webhook_configs:
      - url: {webhook_url}
        send_resolved: true{authorization}
{_extra_receivers(extra_receivers)}  # - name: team-email
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
