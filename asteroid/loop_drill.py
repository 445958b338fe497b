"""The closed loop, as `make demo` shows it (its phase 8; `python -m asteroid.loop_drill` alone): drift → the
retrain receiver → the pipeline → the gate → the canary → promoted; then a faulty challenger → its analysis
fails → rolled back, `AsteroidRolloutRolledBack` delivered.

Before the serving stack starts, the retrain receiver is started (`python -m asteroid.automation start`, the
ClearML schedulers off: the alert is the trigger) and its Alertmanager route file is handed to the stack
(`SERVING_LOCAL_EXTRA_RECEIVERS`): `prepare_automation`. The drift drill's critical `AsteroidFeatureDrift`
then reaches the receiver, which launches the pipeline with its winner published but not released
(`ASTEROID_SERVING_ROLLOUT=0`, `RETRAIN_SEEDS` seeds) while the live-quality drill runs; the quality drill's
feedback labels are the gate's rows. `LoopDrill.run` then waits for that retrain, sends single rows to
`POST /serve/<endpoint>` from a few threads for the whole of both rollouts (every answer's status and
version recorded), rolls the retrained winner out (`python -m asteroid.rollout start --profile drill`: the
gate, 10 → 50 → 100 %, promoted, the champion retired), meanwhile trains the faulty challenger
(`pipeline.py --seeds 1 --inject-fault serving:error_rate=0.3`), rolls it out the same way, and waits for the
rollback alert at the stack's webhook. `asteroid/loop_report.py` makes the record a summary and a picture.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import random
import shlex
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TextIO

import requests

import global_config
from asteroid import loop_report
from asteroid.loop_report import Answer, LoopRecording
from asteroid.rollout import state as states

FAULTY_CHALLENGER_FAULT = "serving:error_rate=0.3"
INJECTED_FAULT_TEXT = "injected serving fault"  # in the body of a 500 the injected fault caused (hook)
RETRAIN_SEEDS = 3
# Long enough to suppress the drill's later retraining alerts (the other drifted features within seconds, the
# recall alert about a minute later), short enough that a demo run again at once retrains (its alert comes
# over 4 minutes after the last run's).
RETRAIN_COOLDOWN_S = 180
ALERT_DEADLINE_S = 120.0  # for the first retraining alert to reach the receiver once the loop waits for it
TRAFFIC_THREADS = 4
TRAFFIC_PAUSE_S = 0.02  # between one thread's requests: about 40 requests per second in all
ROLLOUT_PROFILE = "drill"
HEALTHY_EXIT, ROLLED_BACK_EXIT = 0, 2  # `python -m asteroid.rollout start`: promoted, rolled back
GATE_VERDICT_PREFIXES = ("gate passed", "gate refused")  # the lines asteroid.rollout prints (gate.Verdict)
GATE_ROWS_PREFIX = "gate rows:"
PROMOTED_PREFIX = "promoted: "  # `promoted: asteroid/2 serves 100 %, tagged production`
MAX_RESUMES = 2  # a controller that crashed mid-rollout is resumed this many times at most


def automation_settings(seeds: int = RETRAIN_SEEDS, query_date: str | None = None) -> dict[str, str]:
    """The automation service's environment for the drill: the receiver alone (the alert is the trigger), a
    cooldown that suppresses the drill's later retraining alerts, a retrain that publishes without serving
    (the loop's rollout serves it). `query_date` fixes the retrain's cut-off (default: the day's)."""
    from asteroid.automation.config import QUERY_DATE_PLACEHOLDER

    command = [sys.executable, "pipeline.py", "--query-date", query_date or QUERY_DATE_PLACEHOLDER,
               "--seeds", str(seeds)]  # fmt: skip
    return {
        "ASTEROID_AUTOMATION_SCHEDULES": "none",
        "ASTEROID_RETRAIN_COOLDOWN_SECONDS": str(RETRAIN_COOLDOWN_S),
        "ASTEROID_RETRAIN_COMMAND": shlex.join(command),
        "ASTEROID_SERVING_ROLLOUT": "0",
    }


def child_env(**extra: str) -> dict[str, str]:
    """This process's environment for a tool it starts, without the ClearML task binding that an in-process
    pipeline (`make demo`'s first) leaves in it: a child that inherits it takes itself for a subprocess of
    that task, and its `Task.init` returns a stub."""
    from asteroid.automation.service import part_env

    return {**part_env(), **extra}


def automation_cli(*args: str, settings: dict[str, str] | None = None) -> str:
    command = [sys.executable, "-m", "asteroid.automation", *args]
    done = subprocess.run(command, cwd=global_config.ROOT, env=child_env(**(settings or {})),
                          capture_output=True, text=True, timeout=300, check=False)  # fmt: skip
    if done.returncode != 0:
        raise RuntimeError(f"{shlex.join(command[1:])} failed ({done.returncode}): {done.stderr[-2000:]}")
    return done.stdout


def prepare_automation(settings: dict[str, str]) -> str:
    """Start the retrain receiver with the drill's settings and return its Alertmanager route file, for
    SERVING_LOCAL_EXTRA_RECEIVERS before the stack starts."""
    print(automation_cli("start", settings=settings).rstrip())
    return automation_cli("alert-route", settings=settings).strip().splitlines()[-1]


def stop_automation(settings: dict[str, str]) -> None:
    print(automation_cli("stop", settings=settings).rstrip())


class Traffic:
    """Single rows posted to the endpoint by a few threads until stopped: every answer's time, status and
    version, and whether the injected fault failed it."""

    def __init__(self, url: str, rows: list[dict[str, Any]], clock: Callable[[], float] = time.time) -> None:
        self.url, self.rows, self.clock = url, rows, clock
        self.answers: list[Answer] = []
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def _post(self, seed: int) -> None:
        session, draw = requests.Session(), random.Random(seed)
        while not self._stop.is_set():
            try:
                reply = session.post(self.url, json=draw.choice(self.rows), timeout=30)
                status, body = reply.status_code, reply.text
            except requests.RequestException:
                status, body = 0, ""
            version = None
            if status == 200:
                version = str(reply.json()["model"]["version"])
            self.answers.append(Answer(self.clock(), status, version, INJECTED_FAULT_TEXT in body))
            self._stop.wait(TRAFFIC_PAUSE_S)

    def __enter__(self) -> Traffic:
        self._threads = [threading.Thread(target=self._post, args=(i,), daemon=True)
                         for i in range(TRAFFIC_THREADS)]  # fmt: skip
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=60)


class LoopDrill:
    """The loop after the alert (see the module docstring), against the running local stack."""

    def __init__(
        self,
        endpoint_url: str,
        rows: list[dict[str, Any]],
        alerts_file: Path,
        faulty_query_date: str | None = None,
        log: TextIO | None = None,
        launch_deadline_s: float = 900.0,
        rollout_deadline_s: float = 600.0,
    ) -> None:
        self.endpoint_url, self.rows, self.alerts_file = endpoint_url, rows, alerts_file
        self.faulty_query_date, self.log = faulty_query_date, log
        self.launch_deadline_s, self.rollout_deadline_s = launch_deadline_s, rollout_deadline_s
        self.summary_path = global_config.RUNS_DIR / "latest" / "summary.json"
        self.store = states.StateStore()
        self.since = automation_started_at()  # an earlier run's decisions are not this loop's
        self.rollout_cli = [sys.executable, "-m", "asteroid.rollout"]

    def say(self, message: str) -> None:
        print(message, flush=True)
        if self.log is not None:
            print(message, file=self.log, flush=True)

    def decisions(self) -> list[dict[str, Any]]:
        """The retrain receiver's decisions, as `python -m asteroid.automation audit --json` prints them."""
        from dataclasses import asdict

        from asteroid.automation import store

        with store.engine(global_config.DATABASE_URL).connect() as connection:
            rows = store.decisions(connection, limit=1000)
        return [asdict(row) for row in rows if row.decided_at >= self.since]

    def wait_for_retrain(self) -> tuple[dict[str, Any], str, float]:
        """The alert's launch, the model id its pipeline published, and when the pipeline finished."""
        began = time.monotonic()
        deadline = began + self.launch_deadline_s
        announced = False
        while time.monotonic() < deadline:
            decisions = self.decisions()
            decision = loop_report.retrain_decision(decisions)
            if decision is None:
                self._check_alert_arrived(decisions, time.monotonic() - began)
            elif decision["launched_at"]:
                if not announced:
                    self.say(f"the retrain receiver launched the pipeline for {decision['subject']} "
                             f"({decision['launch_ref']}); waiting for it")  # fmt: skip
                    announced = True
                finished = self._fresh_summary(decision["launched_at"])
                if finished is not None:
                    return decision, *finished
                if not _running(_pid(decision["launch_ref"])):
                    raise RuntimeError(
                        f"the retrain pipeline ended without a summary: {decision['launch_ref']}"
                    )
            time.sleep(1.0)
        raise TimeoutError(
            f"no retrain launched by an alert finished within {self.launch_deadline_s:.0f} s: "
            "`python -m asteroid.automation audit` shows the decisions"
        )

    def _check_alert_arrived(self, decisions: list[dict[str, Any]], waited_s: float) -> None:
        """Fail at once when the receiver suppressed the alert; after `ALERT_DEADLINE_S` when none came."""
        refused = [d for d in decisions if d["source"] == "alert" and d["decision"] != "launched"]
        if refused:
            first = refused[0]
            raise RuntimeError(f"the retrain receiver did not launch for {first['subject']}: "
                               f"{first['decision']} ({first['reason']})")  # fmt: skip
        if waited_s > ALERT_DEADLINE_S:
            raise TimeoutError(
                f"no retraining alert reached the retrain receiver within {ALERT_DEADLINE_S:.0f} s: did the "
                "serving stack start with SERVING_LOCAL_EXTRA_RECEIVERS naming its route "
                "(`python -m asteroid.automation alert-route`)?"
            )

    def _fresh_summary(self, since: float) -> tuple[str, float] | None:
        try:
            modified = self.summary_path.stat().st_mtime
            if modified < since:
                return None
            return str(json.loads(self.summary_path.read_text())["winner"]["model_id"]), modified
        except (FileNotFoundError, json.JSONDecodeError, KeyError):
            return None  # not written yet, or being written

    def faulty_pipeline(self, query_date: str, log_path: Path) -> subprocess.Popen:
        command = [sys.executable, "pipeline.py", "--seeds", "1", "--query-date", query_date,
                   "--inject-fault", FAULTY_CHALLENGER_FAULT]  # fmt: skip
        self.say(f"training the faulty challenger meanwhile: {shlex.join(command[1:])} (log {log_path})")
        log_path.parent.mkdir(parents=True, exist_ok=True)
        with log_path.open("w") as stream:
            return subprocess.Popen(command, cwd=global_config.ROOT, stdout=stream, stderr=subprocess.STDOUT,
                                    env=child_env(ASTEROID_SERVING_ROLLOUT="0"))  # fmt: skip

    def rollout(
        self, model_id: str, expected: int, once_promoted: Callable[[], None] | None = None
    ) -> dict[str, Any]:
        """`python -m asteroid.rollout start` of the model, its output relayed and its gate verdict noted; a
        controller that exits with the rollout still active is resumed (`resume`, at most `MAX_RESUMES`
        times), as the README says; `once_promoted` is called when the model has been promoted. The final
        state, with the gate verdict and the resumptions."""
        gate: dict[str, Any] = {}
        resumed: list[dict[str, Any]] = []
        code = self._controller(
            ["start", "--model", model_id, "--profile", ROLLOUT_PROFILE], gate, once_promoted
        )
        rollout = self.store.load()
        while (rollout is not None and rollout.active and rollout.challenger.model_id == model_id
               and len(resumed) < MAX_RESUMES and not self.store.controller_running()):  # fmt: skip
            self.say(f"the controller exited ({code}) with the rollout {rollout.phase}: resuming it")
            resumed.append({"time": time.time(), "exit_code": code, "phase": rollout.phase})
            code = self._controller(["resume"], gate)
            rollout = self.store.load()
        if code != expected or rollout is None or rollout.challenger.model_id != model_id:
            raise RuntimeError(f"the rollout of {model_id} exited {code} (expected {expected}): "
                               f"{rollout and rollout.phase}")  # fmt: skip
        return {**rollout.record(), "gate": gate, "resumed": resumed}

    def _controller(
        self, args: list[str], gate: dict[str, Any], once_promoted: Callable[[], None] | None = None
    ) -> int:
        """`python -m asteroid.rollout <args>` run to its end (killed after the deadline), its output relayed
        and the gate's lines noted in `gate`; its exit code."""
        command = [*self.rollout_cli, *args]
        self.say(f"$ {shlex.join(['python', *command[1:]])}")
        process = subprocess.Popen(command, cwd=global_config.ROOT, stdout=subprocess.PIPE, env=child_env(),
                                   stderr=subprocess.STDOUT, text=True, bufsize=1)  # fmt: skip
        timer = threading.Timer(self.rollout_deadline_s, process.kill)  # a rollout that hangs is ended
        timer.start()
        try:
            for line in process.stdout or ():  # relayed as it comes: the rollout's progress
                self._relay(line)
                if line.startswith(GATE_VERDICT_PREFIXES):
                    gate.update(time=time.time(), verdict=line.strip())
                elif line.startswith(GATE_ROWS_PREFIX):
                    gate["rows"] = line.strip()
                elif once_promoted is not None and line.startswith(PROMOTED_PREFIX):
                    once_promoted()
                    once_promoted = None
            return process.wait()
        finally:
            timer.cancel()

    def _relay(self, line: str) -> None:
        stream = self.log if self.log is not None else sys.stdout
        stream.write(line)
        stream.flush()

    def wait_for_rollback_alert(self, model_id: str) -> float | None:
        from asteroid.monitoring.drill import read_notifications
        from asteroid.rollout.alerts import ALERT_NAME

        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            for record in read_notifications(self.alerts_file):
                for alert in record["alerts"]:
                    labels = alert["labels"]
                    if labels.get("alertname") == ALERT_NAME and labels.get("model_id") == model_id:
                        return float(record["received_at"])
            time.sleep(0.5)
        return None

    def run(self) -> LoopRecording:
        decision, healthy_id, retrained_at = self.wait_for_retrain()
        self.say(f"retrained: model {healthy_id}, {retrained_at - decision['launched_at']:.0f} s of pipeline")
        began = time.time()
        faulty_log = global_config.RUNS_DIR / "latest" / "loop_faulty_pipeline.log"
        started: list[tuple[subprocess.Popen, float]] = []

        def train_faulty() -> None:
            """Started once the healthy challenger is promoted (overlapping the grace period only): the gate
            and warm-up read the observations table, which a pipeline's data load rewrites, and once, on this
            2-core machine, a minute of analyses without statistics coincided with its training."""
            query_date = self.faulty_query_date or decision["query_date"]
            started.append((self.faulty_pipeline(query_date, faulty_log), time.time()))

        with Traffic(self.endpoint_url, self.rows) as traffic:
            healthy = self.rollout(healthy_id, HEALTHY_EXIT, once_promoted=train_faulty)
            self.say(f"healthy challenger {healthy['challenger']['url']}: {healthy['phase']}")
            if not started:
                train_faulty()
            faulty_id, faulty_seconds = self._finished(*started[0], faulty_log)
            rolled_back = self.rollout(faulty_id, ROLLED_BACK_EXIT)
            self.say(f"faulty challenger {rolled_back['challenger']['url']}: {rolled_back['phase']} "
                     f"({rolled_back['failed_check']} failed)")  # fmt: skip
            alert_at = self.wait_for_rollback_alert(faulty_id)
        return LoopRecording(
            began=began, decisions=self.decisions(), healthy=healthy, faulty=rolled_back,
            answers=sorted(traffic.answers, key=lambda answer: answer.at),
            rollback_alert_received_at=alert_at, retrain_finished_at=retrained_at,
            faulty_pipeline_seconds=faulty_seconds,
        )  # fmt: skip

    def _finished(self, process: subprocess.Popen, began: float, log_path: Path) -> tuple[str, float]:
        try:
            code = process.wait(timeout=self.launch_deadline_s)
        except subprocess.TimeoutExpired:
            process.kill()
            raise TimeoutError(f"the faulty pipeline ran over {self.launch_deadline_s:.0f} s") from None
        finished = self._fresh_summary(began)
        if code != 0 or finished is None:
            raise RuntimeError(f"the faulty challenger's pipeline failed ({code}): {log_path}")
        return finished[0], round(finished[1] - began, 1)


def automation_started_at() -> float:
    """When the running automation service started (its state file), 0 when none runs."""
    from asteroid.automation.config import AutomationConfig
    from asteroid.automation.service import state_file

    state = state_file(AutomationConfig.from_env()).running() or {}
    return float(state.get("started_at") or 0.0)


def _pid(launch_ref: str | None) -> int | None:
    """The process id of an automation launch reference (`pid 123, log …`)."""
    if not launch_ref or not launch_ref.startswith("pid "):
        return None
    return int(launch_ref.split(",")[0].removeprefix("pid "))


def _running(pid: int | None) -> bool:
    """Whether the process runs (a zombie left for its parent to reap has ended)."""
    if pid is None:
        return True  # not known yet: the summary or the deadline decides
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, IndexError):
        return False


def report(recording: LoopRecording, out: Path) -> dict[str, Any]:
    """The `loop` section (and the picture, and the raw record beside it for a later look)."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "loop_recording.json").write_text(json.dumps(recording.record()))
    picture = loop_report.plot_traffic(recording, out / "loop_traffic.png")
    return loop_report.summary(recording, picture)


def print_summary(section: dict[str, Any]) -> None:
    for entry in section["decisions"]:
        detail = entry.get("subject") or (f"at {entry['weight']} %" if "weight" in entry else "")
        print(f"  {entry['at']} {entry['by']}: {entry['decision']} {detail}")
    requests_seen = section["requests_during_rollouts"]
    print(
        f"alert → the retrained model's first canary request: {section['alert_to_first_canary_request_s']} s;"
        f" faulty challenger's first request → rolled back: {section['faulty_first_request_to_rollback_s']} s"
    )
    print(f"requests during the rollouts: {requests_seen['total']}, 5xx not injected "
          f"{requests_seen['server_errors_not_injected']}, 5xx of the injected fault "
          f"{requests_seen['server_errors_injected']}; picture {section['picture']}")  # fmt: skip


@contextlib.contextmanager
def _log_file(path: Path | None) -> Iterator[TextIO | None]:
    if path is None:
        yield None
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as stream:
        yield stream


def main(argv: list[str] | None = None) -> int:
    import serving_local.api
    from asteroid.serving import traffic

    parser = argparse.ArgumentParser(prog="python -m asteroid.loop_drill", description=__doc__.split("\n")[0])
    parser.add_argument(
        "--faulty-query-date", help="the faulty challenger's cut-off (default: the retrain's)"
    )
    parser.add_argument("--log", type=Path, help="the rollouts' output here (default: the terminal)")
    args = parser.parse_args(argv)
    stack = serving_local.api.running_stack()
    if stack is None:
        print("no serving stack runs: `make serve` first", file=sys.stderr)
        return 1
    rows = traffic.to_records(traffic.load_rows().head(500))
    with _log_file(args.log) as log:
        drill = LoopDrill(f"{stack.serve_url}/{global_config.SERVING_ENDPOINT}", rows,
                          serving_local.api.alerts_file(), args.faulty_query_date, log)  # fmt: skip
        section = report(drill.run(), global_config.RUNS_DIR / "latest")
    (global_config.RUNS_DIR / "latest" / "loop.json").write_text(json.dumps(section, indent=1))
    print_summary(section)
    return 0


if __name__ == "__main__":
    sys.exit(main())
