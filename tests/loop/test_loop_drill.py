"""The loop drill's parts that need no stack: the automation settings, the launch reference, and the traffic
recorder against a small local server that answers like clearml-serving (200 with the version, the injected
fault's 500, another 500)."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import pytest

from asteroid import loop_drill
from asteroid.automation.config import QUERY_DATE_PLACEHOLDER
from asteroid.rollout import state as states
from tests.net import http_server_in_thread


def test_the_retrain_publishes_without_serving_and_takes_the_day_or_a_fixed_cutoff() -> None:
    settings = loop_drill.automation_settings(seeds=3)
    assert settings["ASTEROID_SERVING_ROLLOUT"] == "0" and settings["ASTEROID_AUTOMATION_SCHEDULES"] == "none"
    command = shlex.split(settings["ASTEROID_RETRAIN_COMMAND"])
    assert command[1:] == ["pipeline.py", "--query-date", QUERY_DATE_PLACEHOLDER, "--seeds", "3"]
    fixed = shlex.split(
        loop_drill.automation_settings(seeds=1, query_date="2012-12-31")["ASTEROID_RETRAIN_COMMAND"]
    )
    assert fixed[2:4] == ["--query-date", "2012-12-31"]


def test_the_launch_reference_names_a_process_that_ends() -> None:
    assert loop_drill._pid("pid 123, log /x/retrain-1.log") == 123
    assert loop_drill._pid(None) is None and loop_drill._running(None)  # not known yet: still waiting
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    assert loop_drill._running(os.getpid())
    child.wait()
    assert not loop_drill._running(child.pid)


class Serving(BaseHTTPRequestHandler):
    """Every third request fails by the injected fault, every fifth otherwise by another error."""

    count = 0
    lock = threading.Lock()

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers["Content-Length"]))
        with Serving.lock:
            Serving.count += 1
            n = Serving.count
        if n % 3 == 0:
            status, body = (
                500,
                {"detail": f"{loop_drill.INJECTED_FAULT_TEXT} (rollout drill): failed on purpose"},
            )
        elif n % 5 == 0:
            status, body = 500, {"detail": "something else"}
        else:
            status, body = 200, {"model": {"version": "2" if n % 2 else "1"}}
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def serving() -> Iterator[str]:
    with http_server_in_thread(Serving) as port:
        yield f"http://127.0.0.1:{port}/serve/asteroid"


def test_the_traffic_records_each_answer_and_tells_the_injected_failures_apart(serving: str) -> None:
    with loop_drill.Traffic(serving, [{"row": 1}, {"row": 2}]) as traffic:
        deadline = time.monotonic() + 30
        while len(traffic.answers) < 60 and time.monotonic() < deadline:
            time.sleep(0.05)
    answers = list(traffic.answers)
    assert len(answers) >= 60
    injected = [a for a in answers if a.injected]
    other = [a for a in answers if a.status == 500 and not a.injected]
    assert injected and other and all(a.status == 500 and a.version is None for a in injected)
    assert {a.version for a in answers if a.status == 200} == {"1", "2"}
    assert len(injected) + len(other) + sum(a.status == 200 for a in answers) == len(answers)


FAKE_CONTROLLER = """
import sys
from asteroid.rollout import state as states

store = states.StateStore()
if sys.argv[1] == "start":  # gates, begins, promotes, then dies before the champion is retired
    print("gate rows: 0 observations after 2026-12-07 and 3000 labelled predictions")
    print("gate passed: recall 0.99 >= champion's 0.99")
    print("promoted: asteroid/2 serves 100 %, tagged production")
    champion, challenger = states.Version("m1", 1, "asteroid/1"), states.Version("m2", 2, "asteroid/2")
    store.save(states.RolloutState("service", "asteroid", champion, challenger, "drill", [10, 50, 100], 1.0,
                                   phase=states.PROMOTED))
    sys.exit(1)
rollout = store.load()
rollout.phase = states.COMPLETED
store.save(rollout)
"""


def test_a_controller_that_dies_mid_rollout_is_resumed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    monkeypatch.setenv(states.STATE_ENV, str(tmp_path / "state.json"))
    monkeypatch.setenv("ASTEROID_AUTOMATION_DIR", str(tmp_path / "automation"))
    script = tmp_path / "controller.py"
    script.write_text(FAKE_CONTROLLER)
    drill = loop_drill.LoopDrill("http://127.0.0.1:9/serve/asteroid", [], tmp_path / "alerts.jsonl")
    drill.rollout_cli = [sys.executable, str(script)]

    promoted: list[bool] = []
    final = drill.rollout("m2", loop_drill.HEALTHY_EXIT, once_promoted=lambda: promoted.append(True))

    assert final["phase"] == states.COMPLETED
    assert [(r["exit_code"], r["phase"]) for r in final["resumed"]] == [(1, states.PROMOTED)]
    assert final["gate"]["verdict"].startswith("gate passed") and "3000 labelled" in final["gate"]["rows"]
    assert "resuming it" in capsys.readouterr().out
    assert promoted == [True]  # once (the faulty challenger's training starts then)


def test_tools_started_by_the_loop_do_not_inherit_the_demo_pipeline_task(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CLEARML_PROC_MASTER_ID", "1234:abc")  # what an in-process Task.init leaves behind
    monkeypatch.setenv("CLEARML_TASK_ID", "abc")
    env = loop_drill.child_env(ASTEROID_SERVING_ROLLOUT="0")
    assert "CLEARML_PROC_MASTER_ID" not in env and "CLEARML_TASK_ID" not in env
    assert env["ASTEROID_SERVING_ROLLOUT"] == "0" and env["PATH"] == os.environ["PATH"]


def decision(what: str, at: float, launched_at: float | None = None) -> dict:
    return {"decided_at": at, "source": "alert", "subject": "AsteroidFeatureDrift", "decision": what,
            "reason": "the last launch was 30 s ago" if what == "cooldown" else "new event",
            "launch_ref": "pid 1, log x" if launched_at else None, "launched_at": launched_at}  # fmt: skip


@pytest.fixture
def drill(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> loop_drill.LoopDrill:
    monkeypatch.setenv(states.STATE_ENV, str(tmp_path / "state.json"))
    monkeypatch.setenv("ASTEROID_AUTOMATION_DIR", str(tmp_path / "automation"))
    made = loop_drill.LoopDrill("http://127.0.0.1:9/serve/asteroid", [], tmp_path / "alerts.jsonl")
    made.summary_path = tmp_path / "summary.json"
    return made


def test_the_loop_stops_at_once_when_the_receiver_suppressed_the_alert(drill: loop_drill.LoopDrill) -> None:
    drill.decisions = lambda: [decision("cooldown", 100.0)]  # type: ignore[method-assign]
    with pytest.raises(RuntimeError, match="did not launch for AsteroidFeatureDrift: cooldown"):
        drill.wait_for_retrain()


def test_the_retrain_is_the_pipeline_summary_written_after_the_launch(drill: loop_drill.LoopDrill) -> None:
    launched_at = time.time() - 5
    drill.decisions = lambda: [decision("launched", launched_at - 1, launched_at)]  # type: ignore[method-assign]
    drill.summary_path.write_text(json.dumps({"winner": {"model_id": "m2"}}))
    found, model_id, finished = drill.wait_for_retrain()
    assert (found["decision"], model_id) == ("launched", "m2") and finished >= launched_at
