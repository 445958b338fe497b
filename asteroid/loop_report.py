"""The loop drill's record turned into the `loop` section of runs/latest/demo.json and its picture: every
decision with its time (the retrain receiver's audit, each rollout's events), the time from the alert to the
healthy challenger's first canary request and from the faulty challenger's first request to its rollback,
the 5xx the clients saw during the rollouts (the injected fault's counted apart), and the traffic share per
model version over time with the analysis verdicts marked.

Pure functions of a `LoopRecording` (plain data, JSON-ready), so they are tested on a recorded drill."""

from __future__ import annotations

import datetime as dt
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

SHARE_BIN_S = 2.0  # the picture's traffic share is counted per bin of this many seconds
INJECTED = "injected"  # an answer's version when the injected fault failed it (the challenger's)


@dataclass(frozen=True)
class Answer:
    """One client request of the drill's traffic: when it was answered, its status (0: no answer), the model
    version that answered (None for an error without one) and whether the injected fault failed it."""

    at: float
    status: int
    version: str | None
    injected: bool = False


@dataclass
class LoopRecording:
    """What the drill saw, as recorded: the receiver's decisions (`asteroid.automation audit --json`), the
    two rollouts' final states (`RolloutState.record()`), the traffic's answers, the rollback alert as the
    webhook received it, and when the pipelines ran."""

    began: float
    decisions: list[dict[str, Any]]
    healthy: dict[str, Any]
    faulty: dict[str, Any]
    answers: list[Answer]
    rollback_alert_received_at: float | None = None
    retrain_finished_at: float | None = None
    faulty_pipeline_seconds: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def record(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> LoopRecording:
        values = dict(record)
        values["answers"] = [Answer(**answer) for answer in record["answers"]]
        return cls(**values)


def iso(seconds: float | None) -> str | None:
    if seconds is None:
        return None
    return (
        dt.datetime.fromtimestamp(seconds, dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    )


def retrain_decision(decisions: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The first alert that launched a retrain."""
    launched = [d for d in decisions if d["source"] == "alert" and d["decision"] == "launched"]
    return min(launched, key=lambda d: d["decided_at"]) if launched else None


def first_canary_request(answers: list[Answer], version: str, since: float) -> float | None:
    """The first request the canary route sent to `version` after `since` (answered by it, or failed by its
    injected fault)."""
    times = [a.at for a in answers if a.at >= since and (a.version == version or a.injected)]
    return min(times) if times else None


def event_time(rollout: dict[str, Any], kind: str) -> float | None:
    times = [event["time"] for event in rollout["events"] if event["kind"] == kind]
    return min(times) if times else None


def timeline(recording: LoopRecording) -> list[dict[str, Any]]:
    """Every decision, oldest first: the receiver's (launched, cooldown, duplicate) and each rollout's
    (started, analyses with their verdict, stages, promoted, champion retired, rolling back, rolled back)."""
    entries = [
        {"time": d["decided_at"], "by": "retrain receiver", "decision": d["decision"],
         "subject": f"{d['source']} {d['subject']}", "reason": d["reason"],
         **({"launch": d["launch_state"], "launched_at": iso(d["launched_at"])} if d["launch_state"] else {})}
        for d in recording.decisions
    ]  # fmt: skip
    for name, rollout in (("healthy", recording.healthy), ("faulty", recording.faulty)):
        gate = rollout.get("gate") or {}
        if gate.get("time"):
            entries.append({"time": gate["time"], "by": f"gate ({name} challenger)",
                            "decision": gate["verdict"].split(":")[0],
                            "subject": f"model {rollout['challenger']['model_id']}",
                            "reason": gate["verdict"], "rows": gate.get("rows")})  # fmt: skip
        by = f"rollout of {rollout['challenger']['url']} ({name} challenger)"
        for resumed in rollout.get("resumed") or []:
            entries.append({"time": resumed["time"], "by": by, "decision": "controller resumed",
                            "reason": f"the controller exited {resumed['exit_code']} with the rollout "
                                      f"{resumed['phase']}"})  # fmt: skip
        for event in rollout["events"]:
            entry = {"time": event["time"], "by": by, "decision": event["kind"]}
            if "weight" in event:
                entry["weight"] = event["weight"]
            if event["kind"] == "analysis":
                entry["decision"] = verdict(event)
                entry["checks"] = {c["name"]: ("ok" if c["passed"] else "FAILED") for c in event["checks"]}
                if event.get("note"):
                    entry["note"] = event["note"]
            for key in ("check", "reason", "champion"):
                if key in event:
                    entry[key] = event[key]
            entries.append(entry)
    entries.sort(key=lambda entry: entry["time"])
    return [{"at": iso(entry["time"]), **entry} for entry in entries]


def verdict(event: dict[str, Any]) -> str:
    """An analysis event's verdict: passed, failed or inconclusive."""
    if event.get("passed"):
        return "analysis passed"
    failed = any(not check["passed"] for check in event.get("checks", []))
    return "analysis failed" if failed else "analysis inconclusive"


def request_counts(answers: list[Answer]) -> dict[str, Any]:
    server_errors = [a for a in answers if a.status >= 500]
    return {
        "total": len(answers),
        "by_version": dict(sorted(Counter(a.version for a in answers if a.status == 200).items())),
        "server_errors_not_injected": sum(not a.injected for a in server_errors),
        "server_errors_injected": sum(a.injected for a in server_errors),
        "other_failures": sum(a.status != 200 and a.status < 500 for a in answers),
    }


def summary(recording: LoopRecording, picture: Path | None) -> dict[str, Any]:
    """The `loop` section of demo.json."""
    healthy, faulty = recording.healthy, recording.faulty
    alert = retrain_decision(recording.decisions)
    healthy_first = first_canary_request(
        recording.answers, str(healthy["challenger"]["version"]), healthy["started_at"]
    )
    faulty_first = first_canary_request(
        recording.answers, str(faulty["challenger"]["version"]), faulty["started_at"]
    )
    rolled_back = event_time(faulty, "rolled_back")

    def seconds(start: float | None, end: float | None) -> float | None:
        return None if start is None or end is None else round(end - start, 1)

    return {
        "decisions": timeline(recording),
        "alert": None if alert is None else {
            "subject": alert["subject"], "received_at": iso(alert["decided_at"]),
            "decision": alert["decision"], "launch": alert["launch_ref"],
        },
        "retrain_pipeline_seconds": seconds(alert and alert["launched_at"], recording.retrain_finished_at),
        "healthy_challenger": rollout_outcome(healthy),
        "faulty_challenger": {**rollout_outcome(faulty),
                              "pipeline_seconds": recording.faulty_pipeline_seconds},
        "alert_to_first_canary_request_s": seconds(alert and alert["decided_at"], healthy_first),
        "faulty_first_request_to_rollback_s": seconds(faulty_first, rolled_back),
        "faulty_first_request_to_rollback_alert_delivered_s": seconds(
            faulty_first, recording.rollback_alert_received_at
        ),
        "requests_during_rollouts": request_counts(recording.answers),
        "picture": str(picture) if picture else None,
        **recording.extra,
    }  # fmt: skip


def rollout_outcome(rollout: dict[str, Any]) -> dict[str, Any]:
    started = rollout["started_at"]
    return {
        "model_id": rollout["challenger"]["model_id"],
        "gate": (rollout.get("gate") or {}).get("verdict"),
        "controller_resumed": len(rollout.get("resumed") or []),
        "version": rollout["challenger"]["url"],
        "champion": rollout["champion"]["url"],
        "phase": rollout["phase"],
        "failed_check": rollout["failed_check"],
        "stages": [e["weight"] for e in rollout["events"] if e["kind"] in ("started", "stage", "promoted")],
        "seconds_to_promoted": seconds_after(started, event_time(rollout, "promoted")),
        "seconds_to_rolled_back": seconds_after(started, event_time(rollout, "rolled_back")),
    }


def seconds_after(start: float, end: float | None) -> float | None:
    return None if end is None else round(end - start, 1)


def traffic_shares(answers: list[Answer], began: float, bin_s: float = SHARE_BIN_S) -> dict[str, Any]:
    """Per bin of `bin_s` seconds after `began`: the share of the requests each version answered, and the
    share the injected fault failed (`INJECTED`); 0 for all in a bin without requests."""
    bins: dict[int, Counter] = {}
    for answer in answers:
        label = INJECTED if answer.injected else answer.version
        if label is None:
            continue
        bins.setdefault(int((answer.at - began) // bin_s), Counter())[label] += 1
    labels = sorted({label for counts in bins.values() for label in counts}, key=_version_order)
    indices = list(range(min(bins), max(bins) + 1)) if bins else []
    for index in indices:
        bins.setdefault(index, Counter())  # a bin without requests shows empty
    starts = [index * bin_s for index in indices]
    shares = {label: [bins[i][label] / max(1, sum(bins[i].values())) for i in indices] for label in labels}
    return {"starts": starts, "shares": shares}


def _version_order(label: str) -> tuple[int, str]:
    return (int(label), "") if label.isdigit() else (10**9, label)


def plot_traffic(recording: LoopRecording, path: Path) -> Path:
    """Stacked traffic share per model version over the loop's rollouts, the analyses marked (▲ passed,
    ✖ failed, ● inconclusive) with the promotion and the rollback."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    shares = traffic_shares(recording.answers, recording.began)
    figure, axes = plt.subplots(figsize=(13, 4.8))
    if shares["starts"]:
        labels = list(shares["shares"])
        names = [("failed by the injected fault" if label == INJECTED else f"asteroid/{label}")
                 for label in labels]  # fmt: skip
        colours = [("#d62728" if label == INJECTED else f"C{i}") for i, label in enumerate(labels)]
        edges = [*shares["starts"], shares["starts"][-1] + SHARE_BIN_S]  # the last bin drawn to its end
        series = [[*shares["shares"][label], shares["shares"][label][-1]] for label in labels]
        axes.stackplot(edges, *series, labels=names, colors=colours, alpha=0.8, step="post")
    markers = {"analysis passed": ("^", "green"), "analysis failed": ("X", "red"),
               "analysis inconclusive": ("o", "grey")}  # fmt: skip
    shown: set[str] = set()
    for name, rollout in (("healthy", recording.healthy), ("faulty", recording.faulty)):
        for event in rollout["events"]:
            x = event["time"] - recording.began
            if event["kind"] == "analysis":
                kind = verdict(event)
                marker, colour = markers[kind]
                axes.scatter([x], [1.04], marker=marker, color=colour, s=60, clip_on=False, zorder=5,
                             label=None if kind in shown else kind)  # fmt: skip
                shown.add(kind)
            elif event["kind"] in ("started", "stage", "promoted", "rolled_back"):
                axes.axvline(x, color="black", linewidth=0.7, linestyle=":")
                text = {
                    "started": f"{name}: start",
                    "stage": f"{event.get('weight')} %",
                    "promoted": "promoted",
                    "rolled_back": f"rolled back ({rollout['failed_check']})",
                }
                axes.text(x, 1.08, text[event["kind"]], rotation=90, fontsize=7, va="bottom")  # fmt: skip
    axes.set_ylim(0, 1)
    axes.set_xlabel(f"seconds since the loop's traffic began ({iso(recording.began)})")
    axes.set_ylabel(f"share of requests per {SHARE_BIN_S:g} s")
    axes.set_title("Canary rollouts: traffic share per model version, analysis verdicts", pad=70)
    axes.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path
