"""`AsteroidRolloutRolledBack`, pushed to Alertmanager's API (`POST /api/v2/alerts`), as Prometheus itself
sends alerts.

Why pushed, not a metric a Prometheus rule turns into an alert: a rollback is an event the controller knows
the moment it happens, with the labels worth routing on (the version, the model, the failing check). A metric
would need the controller's process to be scraped (it may have finished by the next scrape), a rule loaded
beside the drift rules, and an evaluation plus `for:` before anyone hears of it. Pushed, it reaches the
receivers after Alertmanager's `group_wait`. It carries an `endsAt` (`RESOLVE_AFTER_S`) so it resolves by
itself; re-sending the same labels (a resumed controller) is one alert to Alertmanager, not two.

The address: `ASTEROID_ALERTMANAGER_URL`, else the running local stack's (serving_local.api). Without either
the alert is printed and kept in the rollout's state only (`python -m asteroid.rollout status`).
"""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from typing import Any

import requests

import serving_local.api
from asteroid.rollout.state import RolloutState

ALERT_NAME = "AsteroidRolloutRolledBack"
URL_ENV = "ASTEROID_ALERTMANAGER_URL"
RESOLVE_AFTER_S = 3600.0
TIMEOUT_S = 10.0


def alertmanager_url() -> str | None:
    configured = os.environ.get(URL_ENV)
    if configured:
        return configured.rstrip("/")
    stack = serving_local.api.running_stack()
    return stack.alertmanager_url.rstrip("/") if stack and stack.alertmanager_url else None


def alert(rollout: RolloutState, now: datetime) -> dict[str, Any]:
    challenger = rollout.challenger
    endpoint, version = challenger.url.rsplit("/", 1)
    return {
        "labels": {
            "alertname": ALERT_NAME, "severity": "critical", "endpoint": endpoint, "version": version,
            "model_id": challenger.model_id, "check": rollout.failed_check or "",
        },
        "annotations": {
            "summary": f"Rollout of /serve/{challenger.url} rolled back: {rollout.failed_check} failed; "
                       f"/serve/{endpoint} answers with {rollout.champion.url} again",
            "description": rollout.reason,
            "runbook": "README.md#progressive-rollout",
        },
        "startsAt": now.isoformat(),
        "endsAt": (now + timedelta(seconds=RESOLVE_AFTER_S)).isoformat(),
    }  # fmt: skip


class AlertmanagerAlerts:
    def __init__(self, url: str | None, clock: Any = None) -> None:
        self.url = url
        self.clock = clock or (lambda: datetime.now(UTC))

    def rolled_back(self, rollout: RolloutState) -> None:
        payload = alert(rollout, self.clock())
        if self.url is None:
            print(
                f"no Alertmanager configured ({URL_ENV}): {ALERT_NAME} not delivered: "
                f"{payload['annotations']}"
            )
            return
        reply = requests.post(f"{self.url}/api/v2/alerts", json=[payload], timeout=TIMEOUT_S)
        if reply.status_code != 200:
            raise RuntimeError(
                f"Alertmanager at {self.url} refused {ALERT_NAME}: {reply.status_code} {reply.text}"
            )
        print(f"{ALERT_NAME} sent to Alertmanager at {self.url}")
