"""The few calls of Prometheus' HTTP API the drift drill, the demo and the tests make."""

from __future__ import annotations

from typing import Any

import requests

TIMEOUT_S = 10.0


class PrometheusError(RuntimeError):
    pass


class Prometheus:
    def __init__(self, url: str) -> None:
        self.url = url.rstrip("/")

    def _get(self, path: str, **params: Any) -> Any:
        reply = requests.get(f"{self.url}{path}", params=params, timeout=TIMEOUT_S)
        body = reply.json()
        if reply.status_code != 200 or body.get("status") != "success":
            raise PrometheusError(f"{path} {params}: {body.get('errorType')}: {body.get('error')}")
        return body["data"]

    def query(self, expr: str, time: float | None = None) -> list[dict[str, Any]]:
        """Instant query; raises on a PromQL error. Returns the result vector (or a scalar as one sample)."""
        data = self._get("/api/v1/query", query=expr, **({"time": time} if time is not None else {}))
        if data["resultType"] in ("scalar", "string"):
            return [{"metric": {}, "value": data["result"]}]
        return data["result"]

    def query_range(self, expr: str, start: float, end: float, step: float) -> list[dict[str, Any]]:
        return self._get("/api/v1/query_range", query=expr, start=start, end=end, step=step)["result"]

    def values(self, expr: str, label: str) -> dict[str, float]:
        """label value -> sample value of an instant query."""
        return {row["metric"].get(label, ""): float(row["value"][1]) for row in self.query(expr)}

    def alerts(self) -> list[dict[str, Any]]:
        return self._get("/api/v1/alerts")["alerts"]

    def rule_names(self) -> set[str]:
        groups = self._get("/api/v1/rules")["groups"]
        return {rule["name"] for group in groups for rule in group["rules"]}

    def targets_up(self) -> dict[str, bool]:
        active = self._get("/api/v1/targets")["activeTargets"]
        return {target["labels"]["job"]: target["health"] == "up" for target in active}
