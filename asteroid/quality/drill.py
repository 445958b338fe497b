"""A live-quality drill against the running stack: rows from the project's table are served through
`POST /serve/<endpoint>` and, one tick later, labelled through `POST /feedback/<endpoint>` with their
catalogue label, the ground truth:

1. **correct** labels until the quality alerts are armed (enough labels in the window) and have stayed quiet
   for `hold_s`;
2. **revision**: a simulated catalogue revision re-classifies as hazardous every asteroid of the served table
   that the catalogue calls not hazardous with H <= 22.0 and a MOID between 0.05 au and `revised_moid_au`
   (as if refined orbits had moved their MOID below the CNEOS limit of 0.05 au). The model, which sees the old
   orbits, answers them not hazardous: each becomes a false negative. The labels already sent for such rows
   are revised (a second label replaces the first) and new rows of them are labelled hazardous, until
   Alertmanager has delivered `AsteroidModelRecallLow` to the webhook receiver;
3. **recover**: the revision is withdrawn: the revised rows get their catalogue labels back and new rows are
   labelled correctly, until the alert is delivered as resolved.

With the sample table the revised set is ~3.6 % of the rows and ~23 % as many as the hazardous ones: live
recall falls to ~0.8 while accuracy stays above its threshold (the accuracy alert should stay quiet).

The prediction log's consumer and its exporter are given (their scrape target must be up in Prometheus):
the drill sends requests and labels and reads Prometheus and the webhook's file; every wait polls with a
deadline. Used by `make demo` and tests/quality/test_quality_drill_e2e.py.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import requests

from asteroid import schema
from asteroid.monitoring.config import MonitoringConfig
from asteroid.monitoring.drill import read_notifications
from asteroid.monitoring.prometheus_api import Prometheus, PrometheusError
from asteroid.quality import metrics
from asteroid.quality import rules as quality_rules
from asteroid.quality.consumer import SCRAPE_TARGET
from asteroid.quality.feedback import BATCH_KEY, LABEL
from asteroid.serving import contract, traffic

ACCURACY_ALERT = "AsteroidModelAccuracyLow"
RECALL_ALERT = "AsteroidModelRecallLow"
QUALITY_ALERTS = (ACCURACY_ALERT, RECALL_ALERT)
PHASES = ("correct", "revision", "recover")
REVISED_MOID_AU = 0.065  # upper MOID of the revised set (see the module docstring)
HTTP_TIMEOUT_S = 30.0
TOTALS_WAIT_S = 15.0  # for the last labels to be stored and scraped


@dataclass
class QualityDrillSettings:
    batch: int = 40  # rows served per tick
    tick_s: float = 0.5  # 80 rows/s: a 40 s window holds ~3,000 labels, ~500 of hazardous objects
    hold_s: float = 16.0  # correct phase: armed and quiet this long (longer than the short profile's for:)
    deadline_s: float = 120.0  # for each phase
    revised_moid_au: float = REVISED_MOID_AU
    seed: int = 0


@dataclass
class QualityDrillResult:
    started_at: float
    endpoint: str = ""  # as the rules label it: "asteroid"
    version: str = ""
    thresholds: dict[str, float] = field(default_factory=dict)  # accuracy, recall the alerts fire below
    phases: dict[str, dict[str, float]] = field(default_factory=dict)  # name -> start/end (unix seconds)
    revised_asteroids: int = 0  # asteroids of the table in the revised set
    rows_served: int = 0
    labels_sent: dict[str, int] = field(default_factory=dict)  # phase -> labels posted (revisions included)
    revisions_sent: dict[str, int] = field(default_factory=dict)  # phase -> labels replacing an earlier one
    live: dict[str, dict[str, float]] = field(default_factory=dict)  # phase -> accuracy/recall: last, lowest
    quiet_phase_alerts: list[dict[str, Any]] = field(default_factory=list)  # quality alerts in "correct"
    firing_seen_at: float | None = None  # first poll that saw the recall alert firing in Prometheus
    firing_delivered_at: float | None = None  # webhook received_at of its firing notification
    resolved_delivered_at: float | None = None  # webhook received_at of its resolved notification
    matched: int = 0  # stored predictions with a label, at the end (the exporter's figure)
    unmatched: int = 0  # labels matching no stored prediction, at the end
    notifications: list[dict[str, Any]] = field(default_factory=list)

    def seconds(self) -> dict[str, float | None]:
        """Revision start -> firing delivered, firing seen in Prometheus -> delivered, recover start ->
        resolved delivered."""

        def since(moment: float | None, start: float | None) -> float | None:
            return None if moment is None or start is None else round(moment - start, 1)

        revision = self.phases.get("revision", {}).get("start")
        return {
            "revision_to_firing_delivered": since(self.firing_delivered_at, revision),
            "firing_seen_to_delivered": since(self.firing_delivered_at, self.firing_seen_at),
            "recover_to_resolved_delivered": since(
                self.resolved_delivered_at, self.phases.get("recover", {}).get("start")
            ),
        }

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["seconds"] = self.seconds()
        return data


def revised_mask(frame: pd.DataFrame, revised_moid_au: float = REVISED_MOID_AU) -> np.ndarray:
    """Rows of asteroids the simulated revision re-classifies as hazardous (see the module docstring)."""
    magnitude = frame["Absolute Magnitude"].to_numpy(dtype=float)
    moid = frame["Minimum Orbit Intersection"].to_numpy(dtype=float)
    hazardous = frame[schema.LABEL].to_numpy(dtype=bool)
    near = (moid > schema.CNEOS_MOID_MAX_AU) & (moid <= revised_moid_au)
    return ~hazardous & (magnitude <= schema.CNEOS_H_MAX) & near


def quality_notifications(path: Path, since: float, status: str, alert: str = RECALL_ALERT) -> list[float]:
    """received_at of each webhook notification after `since` carrying `alert` with this status."""
    return [
        record["received_at"]
        for record in read_notifications(path)
        if record["received_at"] >= since
        and any(
            item["labels"].get("alertname") == alert and item["status"] == status for item in record["alerts"]
        )
    ]


@dataclass
class Served:
    row: int  # index into the drill's table
    request_id: str
    label: bool | None = None  # the last label sent


class QualityDrill:
    def __init__(
        self,
        serve_url: str,
        feedback_url: str,
        prometheus_url: str,
        alerts_file: Path,
        config: MonitoringConfig,
        rows: pd.DataFrame,
        thresholds: quality_rules.QualityThresholds,
        settings: QualityDrillSettings | None = None,
        say: Callable[[str], None] = print,
    ) -> None:
        """`serve_url`/`feedback_url`: POST addresses of one endpoint; `rows`: NASA's columns, the
        catalogue label among them (asteroid/serving/traffic.load_rows); `thresholds`: the served model's."""
        self.serve_url = serve_url
        self.feedback_url = feedback_url
        self.prometheus = Prometheus(prometheus_url)
        self.alerts_file = alerts_file
        self.config = config
        self.settings = settings or QualityDrillSettings()
        self.say = say
        self.records = traffic.to_records(rows)
        self.catalogue = rows[schema.LABEL].to_numpy(dtype=bool)
        self.revised = revised_mask(rows, self.settings.revised_moid_au)
        self.rng = np.random.default_rng(self.settings.seed)
        self.http = requests.Session()
        self.served: list[Served] = []
        self.unlabelled: list[Served] = []  # served in the last tick: labelled in the next
        self.revision_on = False
        self.result = QualityDrillResult(
            started_at=time.time(),
            thresholds={
                "accuracy": thresholds.accuracy,
                "recall": thresholds.recall,
                "margin": thresholds.margin,
            },
            revised_asteroids=int(rows.loc[self.revised, schema.GROUP].nunique()),
        )

    # --- requests and labels ----------------------------------------------------------------------------

    def truth(self, row: int) -> bool:
        """The label the catalogue gives now (revised or not)."""
        return bool(self.catalogue[row] or (self.revision_on and self.revised[row]))

    def serve_batch(self) -> None:
        picked = self.rng.integers(0, len(self.records), size=self.settings.batch)
        reply = self.http.post(
            self.serve_url, json={BATCH_KEY: [self.records[i] for i in picked]}, timeout=HTTP_TIMEOUT_S
        )
        reply.raise_for_status()
        answer = reply.json()
        if not self.result.endpoint:
            self.result.endpoint, self.result.version = _version_labels(answer["model"])
        batch = [
            Served(int(row), prediction[contract.REQUEST_ID])
            for row, prediction in zip(picked, answer["predictions"], strict=True)
        ]
        self.served += batch
        self.result.rows_served += len(batch)
        self.send_labels(self.unlabelled)
        self.unlabelled = batch

    def send_labels(self, rows: list[Served]) -> None:
        if not rows:
            return
        phase = list(self.result.phases)[-1]
        labels = [{contract.REQUEST_ID: served.request_id, LABEL: self.truth(served.row)} for served in rows]
        reply = self.http.post(self.feedback_url, json={BATCH_KEY: labels}, timeout=HTTP_TIMEOUT_S)
        reply.raise_for_status()
        revisions = sum(served.label is not None for served in rows)
        for served, label in zip(rows, labels, strict=True):
            served.label = label[LABEL]
        self.result.labels_sent[phase] = self.result.labels_sent.get(phase, 0) + len(rows)
        self.result.revisions_sent[phase] = self.result.revisions_sent.get(phase, 0) + revisions

    def relabel_changed(self) -> int:
        """Send the current catalogue label for every labelled row whose last label differs; how many."""
        changed = [s for s in self.served if s.label is not None and s.label != self.truth(s.row)]
        for start in range(0, len(changed), 1000):
            self.send_labels(changed[start : start + 1000])
        return len(changed)

    # --- Prometheus ---------------------------------------------------------------------------------------

    def selector(self) -> str:
        return f'endpoint="{self.result.endpoint}", version="{self.result.version}"'

    def live(self) -> dict[str, float]:
        """Live accuracy and recall over the window, as the rules record them (missing: no labels yet)."""
        figures = {}
        for name, record in (("accuracy", quality_rules.ACCURACY), ("recall", quality_rules.RECALL)):
            rows = self.prometheus.query(f"{record}{{{self.selector()}}}")
            if rows:
                figures[name] = float(rows[0]["value"][1])
        return figures

    def armed(self) -> bool:
        """Whether the window holds enough labels for both alerts to fire (they are suppressed below)."""
        labelled = self.prometheus.query(f"{metrics.WINDOW_LABELLED}{{{self.selector()}}}")
        hazardous = self.prometheus.query(
            f'sum({metrics.WINDOW_OUTCOMES}{{{self.selector()}, '
            f'{metrics.OUTCOME_LABEL}=~"{metrics.TRUE_POSITIVE}|{metrics.FALSE_NEGATIVE}"}})'
        )  # fmt: skip
        return bool(
            labelled
            and hazardous
            and float(labelled[0]["value"][1]) >= self.config.min_labelled
            and float(hazardous[0]["value"][1]) >= self.config.min_labelled_hazardous
        )

    def quality_alerts(self, state: str | None = None) -> list[dict[str, Any]]:
        return [
            alert for alert in self.prometheus.alerts()
            if alert["labels"].get("alertname") in QUALITY_ALERTS
            and (state is None or alert["state"] == state)
        ]  # fmt: skip

    def _track_live(self, phase: str) -> dict[str, float]:
        figures = self.live()
        seen = self.result.live.setdefault(phase, {})
        for name, value in figures.items():
            seen[name] = value
            seen[f"lowest_{name}"] = min(seen.get(f"lowest_{name}", value), value)
        return figures

    # --- phases -------------------------------------------------------------------------------------------

    def _run_phase(self, name: str, done: Callable[[], bool], what: str) -> None:
        """Serve and label a batch every tick until `done()`, within the deadline."""
        began = time.monotonic()
        next_tick = began
        while True:
            self.serve_batch()
            self._track_live(name)
            if done():
                return
            if time.monotonic() - began > self.settings.deadline_s:
                raise TimeoutError(f"quality drill: no {what} within {self.settings.deadline_s:.0f} s")
            next_tick += self.settings.tick_s
            time.sleep(max(0.0, next_tick - time.monotonic()))

    def _phase(self, name: str) -> None:
        now = time.time()
        if self.result.phases:
            self.result.phases[list(self.result.phases)[-1]].setdefault("end", now)
        self.result.phases[name] = {"start": now}

    def wait_until_ready(self) -> None:
        """The quality alerts loaded and the exporter scraped."""
        deadline = time.monotonic() + self.settings.deadline_s
        while True:
            try:
                up = self.prometheus.query(f'up{{exporter="{SCRAPE_TARGET}"}} == 1')
                if up and set(QUALITY_ALERTS) <= self.prometheus.rule_names():
                    return
            except (PrometheusError, OSError, ValueError):
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(
                    "quality drill: the quality alerts are not loaded or the exporter "
                    f"(exporter={SCRAPE_TARGET!r}) is not scraped by Prometheus"
                )
            time.sleep(self.settings.tick_s)

    def correct(self) -> None:
        self._phase("correct")
        self.say(f"correct labels through {self.feedback_url} until the alerts are armed "
                 f"(>= {self.config.min_labelled} labels in the {self.config.window} window) and quiet for "
                 f"{self.settings.hold_s:.0f} s ...")  # fmt: skip
        armed_since: list[float] = []

        def quiet_long_enough() -> bool:
            self.result.quiet_phase_alerts += self.quality_alerts()
            if not armed_since and self.armed():
                armed_since.append(time.monotonic())
            return bool(armed_since) and time.monotonic() - armed_since[0] >= self.settings.hold_s

        self._run_phase("correct", quiet_long_enough, "armed quality alerts")
        self.say(f"  correct: {self._figures('correct')}; quality alerts seen: "
                 f"{len(self.result.quiet_phase_alerts)}")  # fmt: skip

    def revision(self) -> None:
        self._phase("revision")
        self.revision_on = True
        revised = self.relabel_changed()
        self.say(f"catalogue revision: {self.result.revised_asteroids} asteroids re-classified hazardous "
                 f"(not hazardous, H <= {schema.CNEOS_H_MAX}, {schema.CNEOS_MOID_MAX_AU} < MOID <= "
                 f"{self.settings.revised_moid_au} au); {revised} labels revised; until {RECALL_ALERT} is "
                 "delivered ...")  # fmt: skip
        since = self.result.phases["revision"]["start"]

        def delivered() -> bool:
            if self.result.firing_seen_at is None and self._recall_alert("firing"):
                self.result.firing_seen_at = time.time()
            times = quality_notifications(self.alerts_file, since, "firing")
            self.result.firing_delivered_at = min(times) if times else None
            return bool(times)

        self._run_phase("revision", delivered, f"{RECALL_ALERT} notification")
        seconds = self.result.seconds()
        self.say(f"  revision: {self._figures('revision')}; {RECALL_ALERT} delivered "
                 f"{seconds['revision_to_firing_delivered']} s after the revision "
                 f"({seconds['firing_seen_to_delivered']} s after Prometheus showed it firing)")  # fmt: skip

    def recover(self) -> None:
        self._phase("recover")
        self.revision_on = False
        corrected = self.relabel_changed()
        self.say(f"revision withdrawn: {corrected} labels corrected; until {RECALL_ALERT} is delivered as "
                 "resolved ...")  # fmt: skip
        since = self.result.phases["recover"]["start"]

        def resolved() -> bool:
            times = quality_notifications(self.alerts_file, since, "resolved")
            self.result.resolved_delivered_at = max(times) if times else None
            return bool(times) and not self._recall_alert()

        self._run_phase("recover", resolved, f"resolved {RECALL_ALERT} notification")
        seconds = self.result.seconds()["recover_to_resolved_delivered"]
        self.say(f"  recover: {self._figures('recover')}; resolved delivered {seconds} s after withdrawal")

    def _recall_alert(self, state: str | None = None) -> bool:
        return any(alert["labels"]["alertname"] == RECALL_ALERT for alert in self.quality_alerts(state))

    def _figures(self, phase: str) -> str:
        live = self.result.live.get(phase, {})
        parts = [f"{name} {live[name]:.3f} (lowest {live[f'lowest_{name}']:.3f})"
                 for name in ("accuracy", "recall") if name in live]  # fmt: skip
        return ", ".join(parts) or "no live figures yet"

    def _totals(self) -> None:
        """Labelled predictions and unmatched labels as the exporter reports them, once every label sent
        is stored and scraped (or after TOTALS_WAIT_S)."""
        deadline = time.monotonic() + TOTALS_WAIT_S
        while True:
            labelled = self.prometheus.query(f"{metrics.LABELLED}{{{self.selector()}}}")
            unmatched = self.prometheus.query(f'{metrics.UNMATCHED}{{kind="request_id"}}')
            self.result.matched = int(float(labelled[0]["value"][1])) if labelled else 0
            self.result.unmatched = int(float(unmatched[0]["value"][1])) if unmatched else 0
            if self.result.matched >= self.result.rows_served or time.monotonic() > deadline:
                return
            time.sleep(self.settings.tick_s)

    def run(self) -> QualityDrillResult:
        try:
            self.wait_until_ready()
            self.correct()
            self.revision()
            self.recover()
            self.send_labels(self.unlabelled)
            self.unlabelled = []
        finally:
            if self.result.phases:
                self.result.phases[list(self.result.phases)[-1]].setdefault("end", time.time())
            self.result.notifications = [
                record for record in read_notifications(self.alerts_file)
                if record["received_at"] >= self.result.started_at
                and any(a["labels"].get("alertname") in QUALITY_ALERTS for a in record["alerts"])
            ]  # fmt: skip
            with contextlib.suppress(PrometheusError, OSError, ValueError):
                self._totals()
        return self.result


def _version_labels(model: dict[str, Any]) -> tuple[str, str]:
    """(endpoint, version) as the rules label them, from an answer's `model` (`endpoint` "asteroid/1")."""
    version = str(model.get("version", ""))
    return metrics.endpoint_label(str(model.get("endpoint", "")), version), version
