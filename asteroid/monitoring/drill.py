"""A drift drill against the running stack: normal traffic (no drift alert may fire), drifted traffic from
`inference.py --drift` until Alertmanager has delivered `AsteroidFeatureDrift` for the shifted features to
the webhook receiver, then normal traffic again until every one of those alerts is delivered as resolved.
Used by `make demo` and the end-to-end test; every wait polls with a deadline."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import global_config
from asteroid.monitoring import rules
from asteroid.monitoring.config import MonitoringConfig
from asteroid.monitoring.prometheus_api import Prometheus, PrometheusError
from asteroid.serving import traffic
from asteroid.serving.contract import FEATURE_STATISTICS

DRIFT_ALERT = "AsteroidFeatureDrift"
POLL_S = 0.5


@dataclass
class DrillSettings:
    batch: int = 20  # rows per request
    rate: float = 10.0  # requests per second: 200 rows/s, thousands of observations per short window
    normal_s: float = 50.0  # the first normal phase: longer than the window, so its scores are of normal rows
    deadline_s: float = 180.0  # for each wait
    drift_features: tuple[str, ...] = traffic.DEFAULT_DRIFT


@dataclass
class DrillResult:
    started_at: float
    phases: dict[str, dict[str, float]] = field(default_factory=dict)  # name -> start/end (unix seconds)
    normal_drift_alerts: list[dict[str, Any]] = field(default_factory=list)  # seen in the normal phase
    normal_max_psi: dict[str, float] = field(default_factory=dict)
    drift_max_psi: dict[str, float] = field(default_factory=dict)
    firing_seen_at: dict[str, float] = field(default_factory=dict)  # feature -> first poll that saw firing
    firing_delivered_at: dict[str, float] = field(default_factory=dict)  # feature -> webhook received_at
    resolved_delivered_at: dict[str, float] = field(default_factory=dict)  # feature -> its last resolution
    notifications: list[dict[str, Any]] = field(default_factory=list)

    @property
    def fired_features(self) -> set[str]:
        return set(self.firing_delivered_at)

    def delivery_seconds(self) -> dict[str, dict[str, float]]:
        """Per fired feature: drift start -> firing delivered, firing seen in Prometheus -> delivered, drift
        end -> resolved delivered."""
        drift = self.phases["drift"]["start"]
        recover = self.phases.get("recover", {}).get("start", 0.0)
        return {
            feature: {
                "drift_start_to_delivered": round(delivered - drift, 1),
                "firing_to_delivered": round(delivered - self.firing_seen_at.get(feature, delivered), 1),
                "drift_end_to_resolved_delivered": round(self.resolved_delivered_at[feature] - recover, 1)
                if feature in self.resolved_delivered_at
                else None,
            }
            for feature, delivered in sorted(self.firing_delivered_at.items())
        }

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["delivery_seconds"] = self.delivery_seconds()
        return data


def read_notifications(path: Path) -> list[dict[str, Any]]:
    try:
        return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    except FileNotFoundError:
        return []


def drift_notifications(path: Path, since: float, status: str) -> dict[tuple[str, str], float]:
    """(feature, severity) -> first received_at of a drift alert notification with this status after
    `since`."""
    first: dict[tuple[str, str], float] = {}
    for record in read_notifications(path):
        if record["received_at"] < since:
            continue
        for alert in record["alerts"]:
            labels = alert["labels"]
            if labels.get("alertname") == DRIFT_ALERT and alert["status"] == status:
                first.setdefault((labels["feature"], labels.get("severity", "")), record["received_at"])
    return first


def per_feature(times: dict[tuple[str, str], float], pick: Callable[..., float]) -> dict[str, float]:
    features: dict[str, list[float]] = {}
    for (feature, _), moment in times.items():
        features.setdefault(feature, []).append(moment)
    return {feature: pick(moments) for feature, moments in features.items()}


class Drill:
    def __init__(
        self,
        prometheus_url: str,
        alerts_file: Path,
        config: MonitoringConfig,
        env: Mapping[str, str] | None = None,
        settings: DrillSettings | None = None,
        say: Callable[[str], None] = print,
    ) -> None:
        self.prometheus = Prometheus(prometheus_url)
        self.alerts_file = alerts_file
        self.config = config
        self.env = dict(env) if env is not None else None
        self.settings = settings or DrillSettings()
        self.say = say
        self.traffic: subprocess.Popen | None = None
        self.fired: dict[tuple[str, str], float] = {}
        self.result = DrillResult(started_at=time.time())

    # --- traffic -------------------------------------------------------------------------------------------

    def _start_traffic(self, drifted: bool) -> None:
        self._stop_traffic()
        command = [
            sys.executable, str(global_config.ROOT / "inference.py"), "--batch", str(self.settings.batch),
            "--rate", str(self.settings.rate), "--concurrency", "2", "--duration", "3600", "--json",
        ]  # fmt: skip
        if drifted:
            command += ["--drift", "--drift-features", ",".join(self.settings.drift_features)]
        self.traffic = subprocess.Popen(
            command,
            env=self.env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            cwd=global_config.ROOT,
        )

    def _stop_traffic(self) -> None:
        if self.traffic and self.traffic.poll() is None:
            self.traffic.terminate()
            try:
                self.traffic.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.traffic.kill()
                self.traffic.wait(timeout=10)
        self.traffic = None

    def _check_traffic(self) -> None:
        if self.traffic and self.traffic.poll() is not None:
            raise RuntimeError(f"inference.py exited with code {self.traffic.returncode} during the drill")

    # --- polling -------------------------------------------------------------------------------------------

    def _poll_until(self, done: Callable[[], bool], what: str, minimum_s: float = 0.0) -> None:
        began = time.monotonic()
        deadline = began + self.settings.deadline_s + minimum_s
        while not (done() and time.monotonic() - began >= minimum_s):
            self._check_traffic()
            if time.monotonic() > deadline:
                raise TimeoutError(f"drift drill: no {what} within {deadline - began:.0f} s")
            time.sleep(POLL_S)

    def psi(self) -> dict[str, float]:
        """The scores the drift alert sees: only where the window holds enough observations."""
        return self.prometheus.values(rules.gated_psi(self.config), "feature")

    def observations(self) -> float:
        first = FEATURE_STATISTICS[0]
        values = self.prometheus.values(f'{rules.OBSERVATIONS}{{feature="{first}"}}', "feature")
        return max(values.values(), default=0.0)

    def drift_alerts(self, state: str | None = None) -> list[dict[str, Any]]:
        return [
            alert for alert in self.prometheus.alerts()
            if alert["labels"].get("alertname") == DRIFT_ALERT and (state is None or alert["state"] == state)
        ]  # fmt: skip

    def _track(self, into: dict[str, float]) -> None:
        for feature, score in self.psi().items():
            into[feature] = max(into.get(feature, 0.0), score)

    # --- phases --------------------------------------------------------------------------------------------

    def wait_until_ready(self) -> None:
        def ready() -> bool:
            try:
                up = self.prometheus.targets_up()
                return DRIFT_ALERT in self.prometheus.rule_names() and all(up.values()) and len(up) >= 2
            except (PrometheusError, OSError, ValueError):
                return False

        self._poll_until(ready, "rules loaded and every scrape target up in Prometheus")

    def _phase(self, name: str) -> None:
        now = time.time()
        if self.result.phases:
            self.result.phases[list(self.result.phases)[-1]].setdefault("end", now)
        self.result.phases[name] = {"start": now}

    def normal(self) -> None:
        self._phase("normal")
        self.say(f"normal traffic for {self.settings.normal_s:.0f} s (window {self.config.window}) ...")
        self._start_traffic(drifted=False)

        def scored() -> bool:
            for alert in self.drift_alerts():
                self.result.normal_drift_alerts.append(alert)
            scores = self.psi()
            self._track(self.result.normal_max_psi)
            enough = self.observations() >= self.config.min_observations
            return len(scores) == len(FEATURE_STATISTICS) and enough

        self._poll_until(scored, "PSI of every feature over a full window", minimum_s=self.settings.normal_s)
        worst = max(self.result.normal_max_psi.items(), key=lambda item: item[1])
        self.say(f"  normal: {len(self.result.normal_drift_alerts)} drift alerts; highest PSI {worst[1]:.3f} "
                 f"({worst[0]})")  # fmt: skip

    def drift(self) -> None:
        self._phase("drift")
        shifted = set(self.expected_features())
        self.say(f"drifted traffic ({', '.join(self.settings.drift_features)}) until {DRIFT_ALERT} is "
                 f"delivered for {', '.join(sorted(shifted))} ...")  # fmt: skip
        self._start_traffic(drifted=True)
        since = self.result.phases["drift"]["start"]

        def delivered() -> bool:
            self._track(self.result.drift_max_psi)
            now = time.time()
            for alert in self.drift_alerts("firing"):
                self.result.firing_seen_at.setdefault(alert["labels"]["feature"], now)
            self.fired = drift_notifications(self.alerts_file, since, "firing")
            self.result.firing_delivered_at = per_feature(self.fired, min)
            return shifted <= self.result.fired_features

        self._poll_until(delivered, f"{DRIFT_ALERT} notification for each of {sorted(shifted)}")
        for feature, seconds in self.result.delivery_seconds().items():
            self.say(f"  {feature}: delivered {seconds['drift_start_to_delivered']} s after the drift began "
                     f"({seconds['firing_to_delivered']} s after Prometheus showed it firing)")  # fmt: skip

    def recover(self) -> None:
        self._phase("recover")
        fired = self.result.fired_features
        self.say(
            f"normal traffic again until every {DRIFT_ALERT} (each severity) is delivered as resolved ..."
        )
        self._start_traffic(drifted=False)
        since = self.result.phases["recover"]["start"]

        def resolved() -> bool:
            # every (feature, severity) notified as firing since the drift began must be notified as resolved
            fired_pairs = set(
                drift_notifications(self.alerts_file, self.result.phases["drift"]["start"], "firing")
            )
            done = drift_notifications(self.alerts_file, since, "resolved")
            self.result.resolved_delivered_at = per_feature(done, max)
            return fired_pairs <= set(done) and not self.drift_alerts()

        self._poll_until(resolved, f"resolved notification for each of {sorted(fired)}")
        for feature in sorted(fired):
            seconds = self.result.resolved_delivered_at[feature] - since
            self.say(
                f"  {feature}: resolved (each severity), delivered {seconds:.1f} s after the drift stopped"
            )

    def expected_features(self) -> list[str]:
        """The model features the shifts change (est_dia_km_avg follows the absolute magnitude)."""
        return traffic.affected_features(self.settings.drift_features)

    def run(self) -> DrillResult:
        try:
            self.wait_until_ready()
            self.normal()
            self.drift()
            self.recover()
        finally:
            self._stop_traffic()
            if self.result.phases:
                self.result.phases[list(self.result.phases)[-1]].setdefault("end", time.time())
            self.result.notifications = [
                record for record in read_notifications(self.alerts_file)
                if record["received_at"] >= self.result.started_at
            ]  # fmt: skip
        return self.result
