"""The loop section of demo.json and its picture, from a recording whose figures are known: an alert received
at t=990, the healthy challenger's first canary answer at t=1012, the faulty one's first injected failure at
t=1104 and its rollback at t=1121."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from asteroid import loop_report
from asteroid.loop_report import Answer, LoopRecording

RECORDED = Path(__file__).with_name("loop_recording.json")


def check(name: str, passed: bool) -> dict:
    return {"name": name, "passed": passed, "detail": ""}


def analysis(at: float, weight: int, passed: bool, failed: str | None = None) -> dict:
    checks = [check("error_rate", failed != "error_rate"), check("latency_p99", True)]
    return {"time": at, "kind": "analysis", "weight": weight, "passed": passed, "conclusive": True,
            "note": "", "checks": checks}  # fmt: skip


def rollout(champion: int, challenger: int, started: float, events: list[dict], phase: str,
            failed: str | None = None) -> dict:  # fmt: skip
    def version(n: int) -> dict:
        return {"model_id": f"model{n}", "version": n, "url": f"asteroid/{n}"}

    gate = {"time": started - 1, "verdict": "gate passed: recall not lower", "rows": "gate rows: 60"}
    return {"champion": version(champion), "challenger": version(challenger), "started_at": started,
            "phase": phase, "failed_check": failed, "events": events, "gate": gate}  # fmt: skip


def recording() -> LoopRecording:
    decisions = [
        {"decided_at": 990.0, "source": "alert", "subject": "AsteroidFeatureDrift", "decision": "launched",
         "reason": "new", "launch_state": "started", "launch_ref": "pid 7, log x", "launched_at": 991.0},
        {"decided_at": 1005.0, "source": "alert", "subject": "AsteroidModelRecallLow", "decision": "cooldown",
         "reason": "launched 15 s ago", "launch_state": None, "launch_ref": None, "launched_at": None},
    ]  # fmt: skip
    healthy = rollout(1, 2, 1010.0, [
        {"time": 1010.0, "kind": "started", "weight": 10}, analysis(1030.0, 10, True),
        {"time": 1030.0, "kind": "stage", "weight": 50}, analysis(1050.0, 50, False),
        analysis(1055.0, 50, True), {"time": 1055.0, "kind": "promoted", "weight": 100},
        {"time": 1080.0, "kind": "champion_retired", "champion": "asteroid/1"},
    ], "completed")  # fmt: skip
    faulty = rollout(2, 3, 1100.0, [
        {"time": 1100.0, "kind": "started", "weight": 10}, analysis(1120.0, 10, False, "error_rate"),
        {"time": 1120.0, "kind": "rolling_back", "check": "error_rate", "reason": "5xx 30 %"},
        {"time": 1121.0, "kind": "rolled_back", "check": "error_rate"},
    ], "rolled_back", "error_rate")  # fmt: skip
    answers = [Answer(1000.0 + i, 200, "1") for i in range(12)]
    answers += [Answer(1012.0, 200, "2"), Answer(1013.0, 200, "1"), Answer(1040.0, 502, None)]
    answers += [Answer(1100.0 + i, 200, "2") for i in range(4)]
    answers += [Answer(1104.0, 500, None, injected=True), Answer(1105.0, 200, "3"), Answer(1106.0, 0, None)]
    return LoopRecording(began=1000.0, decisions=decisions, healthy=healthy, faulty=faulty, answers=answers,
                         rollback_alert_received_at=1124.0, retrain_finished_at=1008.0,
                         faulty_pipeline_seconds=40.0)  # fmt: skip


def test_the_timings_are_measured_from_the_alert_and_the_faulty_first_request() -> None:
    section = loop_report.summary(recording(), None)
    assert section["alert_to_first_canary_request_s"] == 22.0  # 990 -> 1012
    assert section["faulty_first_request_to_rollback_s"] == 17.0  # 1104 -> 1121
    assert section["faulty_first_request_to_rollback_alert_delivered_s"] == 20.0
    assert section["retrain_pipeline_seconds"] == 17.0  # launched 991, summary at 1008
    assert section["alert"]["received_at"] == "1970-01-01T00:16:30.000Z"


def test_server_errors_of_the_injected_fault_are_counted_apart() -> None:
    counts = loop_report.summary(recording(), None)["requests_during_rollouts"]
    assert counts == {"total": 22, "by_version": {"1": 13, "2": 5, "3": 1}, "server_errors_not_injected": 1,
                      "server_errors_injected": 1, "other_failures": 1}  # fmt: skip


def test_every_decision_is_in_the_timeline_in_order_with_its_verdict() -> None:
    section = loop_report.summary(recording(), None)
    decisions = [(entry["by"].split(" (")[0], entry["decision"]) for entry in section["decisions"]]
    assert decisions[:4] == [("retrain receiver", "launched"), ("retrain receiver", "cooldown"),
                             ("gate", "gate passed"), ("rollout of asteroid/2", "started")]  # fmt: skip
    assert ("gate", "gate passed") in decisions[4:]  # the faulty challenger passes the gate too
    verdicts = [d for _, d in decisions if d.startswith("analysis")]
    assert verdicts == ["analysis passed", "analysis inconclusive", "analysis passed", "analysis failed"]
    times = [entry["time"] for entry in section["decisions"]]
    assert times == sorted(times) and decisions[-1] == ("rollout of asteroid/3", "rolled_back")
    assert section["healthy_challenger"]["stages"] == [10, 50, 100]
    assert section["healthy_challenger"]["seconds_to_promoted"] == 45.0
    assert section["faulty_challenger"]["seconds_to_rolled_back"] == 21.0


def test_traffic_shares_per_bin_sum_to_one_or_zero_without_answers() -> None:
    shares = loop_report.traffic_shares(recording().answers, 1000.0, bin_s=2.0)
    assert list(shares["shares"]) == ["1", "2", "3", loop_report.INJECTED]  # the fault last
    at_1012 = shares["starts"].index(12.0)
    assert shares["shares"]["1"][at_1012] == 0.5 and shares["shares"]["2"][at_1012] == 0.5
    for index, start in enumerate(shares["starts"]):
        total = sum(series[index] for series in shares["shares"].values())
        assert total == pytest.approx(1.0 if start in (0, 2, 4, 6, 8, 10, 12, 100, 102, 104) else 0.0)


def test_the_picture_is_drawn(tmp_path: Path) -> None:
    path = loop_report.plot_traffic(recording(), tmp_path / "loop.png")
    assert path.stat().st_size > 10_000


@pytest.mark.skipif(not RECORDED.exists(), reason="no recorded drill beside the test")
def test_a_recorded_drill_reads_back_and_summarises(tmp_path: Path) -> None:
    """A drill recorded on the local stack (every 20th answer kept, every 4th the injected fault failed):
    promoted, then rolled back on error_rate; the 5xx were all the injected fault's."""
    recorded = LoopRecording.from_record(json.loads(RECORDED.read_text()))
    section = loop_report.summary(recorded, loop_report.plot_traffic(recorded, tmp_path / "loop.png"))
    assert section["healthy_challenger"]["phase"] == "completed"
    assert section["healthy_challenger"]["stages"] == [10, 50, 100]
    verdicts = [
        entry["decision"] for entry in section["decisions"] if entry["decision"].startswith("analysis")
    ]
    assert verdicts == ["analysis inconclusive", "analysis passed", "analysis passed", "analysis failed"]
    assert section["faulty_challenger"]["failed_check"] == "error_rate"
    counts = section["requests_during_rollouts"]
    assert counts["server_errors_not_injected"] == 0 and counts["server_errors_injected"] > 0
    assert 0 < section["faulty_first_request_to_rollback_s"] < section["alert_to_first_canary_request_s"]
