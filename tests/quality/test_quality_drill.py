"""The quality drill's rules without a stack: which asteroids the simulated revision re-classifies, which
webhook notifications count, the labels it sends phase by phase (a fake endpoint), and its picture."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from asteroid import schema
from asteroid.quality import drill, drill_report
from asteroid.quality.drill import QualityDrillResult, quality_notifications, revised_mask
from asteroid.quality.rules import QualityThresholds


def catalogue(rows: list[tuple[bool, float, float]]) -> pd.DataFrame:
    """(hazardous, H, MOID) rows in NASA's columns the drill reads."""
    return pd.DataFrame(
        {
            schema.LABEL: [row[0] for row in rows],
            "Absolute Magnitude": [row[1] for row in rows],
            "Minimum Orbit Intersection": [row[2] for row in rows],
            schema.GROUP: list(range(len(rows))),
        }
    )


def test_the_revision_takes_bright_non_hazardous_asteroids_just_outside_the_moid_limit() -> None:
    frame = catalogue([
        (False, 21.0, 0.06),   # revised
        (False, 22.0, 0.065),  # revised: both limits inclusive
        (False, 22.1, 0.06),   # too faint
        (False, 21.0, 0.05),   # inside the CNEOS MOID limit already (and not hazardous: H or rounding)
        (False, 21.0, 0.07),   # too far
        (True, 21.0, 0.04),    # already hazardous
    ])  # fmt: skip
    assert revised_mask(frame).tolist() == [True, True, False, False, False, False]
    assert revised_mask(frame, revised_moid_au=0.08).tolist() == [True, True, False, False, True, False]


def test_only_notifications_of_the_recall_alert_after_the_moment_count(tmp_path: Path) -> None:
    path = tmp_path / "alerts.jsonl"
    records = [
        (10.0, "AsteroidModelRecallLow", "firing"),  # before
        (20.0, "AsteroidFeatureDrift", "firing"),  # another alert
        (30.0, "AsteroidModelRecallLow", "firing"),
        (40.0, "AsteroidModelRecallLow", "resolved"),
    ]
    path.write_text("".join(
        json.dumps({"received_at": at, "alerts": [{"labels": {"alertname": name}, "status": status}]}) + "\n"
        for at, name, status in records
    ))  # fmt: skip
    assert quality_notifications(path, 15.0, "firing") == [30.0]
    assert quality_notifications(path, 15.0, "resolved") == [40.0]
    assert quality_notifications(tmp_path / "none.jsonl", 0.0, "firing") == []


class FakeReply:
    def __init__(self, body: dict[str, Any]) -> None:
        self.body = body

    def raise_for_status(self) -> None:
        pass

    def json(self) -> dict[str, Any]:
        return self.body


class FakeEndpoint:
    """POST /serve answers every row not hazardous with a new request id; POST /feedback records labels."""

    def __init__(self) -> None:
        self.labels: list[list[dict[str, Any]]] = []
        self.served = 0

    def post(self, url: str, json: dict[str, Any], timeout: float) -> FakeReply:
        if url.endswith("/serve"):
            predictions = []
            for _ in json["rows"]:
                predictions.append({"request_id": f"r{self.served}", "hazardous": False})
                self.served += 1
            return FakeReply(
                {"predictions": predictions, "model": {"endpoint": "asteroid/1", "version": "1"}}
            )
        self.labels.append(json["rows"])
        return FakeReply({"accepted": len(json["rows"])})


def test_labels_follow_the_catalogue_then_the_revision_then_its_withdrawal(tmp_path: Path) -> None:
    frame = catalogue([(False, 21.0, 0.06), (True, 20.0, 0.01), (False, 25.0, 0.3)])
    subject = drill.QualityDrill(
        "http://stack/serve", "http://stack/feedback", "http://prometheus", tmp_path / "alerts.jsonl",
        drill.MonitoringConfig(), frame, QualityThresholds(0.99, 0.99, 0.05), drill.QualityDrillSettings(6),
    )  # fmt: skip
    endpoint = FakeEndpoint()
    subject.http = endpoint  # type: ignore[assignment]
    rows_of = {}

    def label_of(rows: list[dict[str, Any]]) -> dict[int, set[bool]]:
        found: dict[int, set[bool]] = {}
        for label in rows:
            found.setdefault(rows_of[label["request_id"]], set()).add(label["hazardous"])
        return found

    subject._phase("correct")
    subject.serve_batch()
    subject.serve_batch()  # labels the first batch
    rows_of.update({served.request_id: served.row for served in subject.served})
    assert subject.result.endpoint == "asteroid" and subject.result.version == "1"
    assert label_of(endpoint.labels[0]) == {row: {row == 1} for row in label_of(endpoint.labels[0])}

    subject._phase("revision")
    subject.revision_on = True
    revised = subject.relabel_changed()  # the labelled rows of asteroid 0 get a second label: hazardous
    assert revised == sum(served.row == 0 for served in subject.served[:6]) > 0  # seeded draws
    assert label_of(endpoint.labels[-1]) == {0: {True}}
    assert subject.result.revisions_sent["revision"] == revised

    subject._phase("recover")
    subject.revision_on = False
    corrected = subject.relabel_changed()
    assert corrected == revised
    assert all(served.label == (served.row == 1) for served in subject.served if served.label is not None)
    assert subject.result.labels_sent["correct"] == 6


def test_the_picture_is_drawn_from_series(tmp_path: Path) -> None:
    start = 1_000.0
    result = QualityDrillResult(started_at=start, endpoint="asteroid", version="1",
                                thresholds={"accuracy": 0.94, "recall": 0.92, "margin": 0.05})  # fmt: skip
    result.phases = {"correct": {"start": start, "end": start + 18}, "revision": {"start": start + 18,
                     "end": start + 32}, "recover": {"start": start + 32, "end": start + 36}}  # fmt: skip
    result.firing_delivered_at, result.resolved_delivered_at = start + 32, start + 36
    times = [start + t for t in range(4, 37)]
    series = {
        "accuracy": [(t, 0.99 if t - start < 21 or t - start > 35 else 0.96) for t in times],
        "recall": [(t, 0.99 if t - start < 21 or t - start > 35 else 0.79) for t in times],
    }
    path = drill_report.draw_live_quality(series, result, tmp_path / "live_quality.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 20_000
    section = drill_report.summary(result, path)
    assert section["recall_alert"]["delivered_at_s"] == 32.0
    assert section["phases_seconds"]["revision"] == [18.0, 32.0]
    assert section["recall_alert"]["recover_to_resolved_delivered"] == pytest.approx(4.0)
