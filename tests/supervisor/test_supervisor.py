"""The supervisor's rules, with a fake clock and fake processes: start order gated by readiness, the readiness
deadline, stop-all when one part exits, SIGTERM then SIGKILL after the grace, the background start and stop
by state file; and once with real processes."""

from __future__ import annotations

import ast
import itertools
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import process_supervisor
from process_supervisor import (
    STOP_ALL,
    Action,
    Decision,
    Part,
    RestartWithBackoff,
    StateFile,
    Supervisor,
    SupervisorError,
    pid_alive,
    start_detached,
    stop_child,
    stop_detached,
)
from process_supervisor.supervisor import POLL_INTERVAL_S

PACKAGE = Path(process_supervisor.__file__).parent


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now = round(self.now + seconds, 6)  # no float drift: ten polls of 0.1 s are 1 s


class FakeChild:
    """A process that exits at a given time, or after SIGTERM (unless it ignores it), or at SIGKILL."""

    def __init__(self, clock: FakeClock, pid: int, exits_at: float | None = None, code: int = 0,
                 ignores_sigterm: bool = False) -> None:  # fmt: skip
        self.clock, self.pid, self.exits_at, self.code = clock, pid, exits_at, code
        self.ignores_sigterm = ignores_sigterm
        self.returncode: int | None = None
        self.signals: list[tuple[int, float]] = []  # (signal, when)

    def poll(self) -> int | None:
        if self.returncode is None and self.exits_at is not None and self.clock.now >= self.exits_at:
            self.returncode = self.code
        return self.returncode

    def send_signal(self, sig: int) -> None:
        self.signals.append((sig, self.clock.now))
        if sig == signal.SIGTERM and not self.ignores_sigterm and self.returncode is None:
            self.exits_at, self.code = self.clock.now + 0.3, -signal.SIGTERM

    def kill(self) -> None:
        self.signals.append((signal.SIGKILL, self.clock.now))
        if self.returncode is None:
            self.returncode = -signal.SIGKILL


class FakeSpawn:
    """The process factory: a FakeChild per part, as scripted; records when each part was started."""

    def __init__(self, clock: FakeClock, **scripts: dict) -> None:
        self.clock, self.scripts = clock, scripts
        self.children: dict[str, FakeChild] = {}
        self.started_at: dict[str, float] = {}

    def __call__(self, part: Part) -> FakeChild:
        child = FakeChild(self.clock, pid=100 + len(self.children), **self.scripts.get(part.name, {}))
        self.children[part.name] = child
        self.started_at[part.name] = self.clock.now
        return child


def supervisor(
    clock: FakeClock, spawn: FakeSpawn, parts: list[Part], said: list[str], **options
) -> Supervisor:
    return Supervisor(
        parts, spawn=spawn, clock=clock, sleep=clock.sleep, say=said.append, whole="the stack",
        killpg=lambda pgid, sig: None, **options,
    )  # fmt: skip


def part(tmp_path: Path, name: str, **values) -> Part:
    return Part(name, ["true"], tmp_path / f"{name}.log", **values)


class ReadyAfter:
    """Ready a fixed time after the part was started (the clock at the first probe)."""

    def __init__(self, clock: FakeClock, seconds: float) -> None:
        self.clock, self.seconds, self.first = clock, seconds, None

    def __call__(self) -> bool:
        self.first = self.clock.now if self.first is None else self.first
        return self.clock.now - self.first >= self.seconds


def test_each_part_starts_once_the_one_before_is_ready(tmp_path: Path) -> None:
    clock, said = FakeClock(), []
    spawn = FakeSpawn(clock)
    parts = [
        part(tmp_path, "broker", ready=ReadyAfter(clock, 1.0)),
        part(tmp_path, "app", ready=ReadyAfter(clock, 2.0)),
    ]
    timings = supervisor(clock, spawn, parts, said).start_all()
    assert list(spawn.started_at) == ["broker", "app"]
    assert spawn.started_at["app"] >= 1.0
    assert timings == {"broker": pytest.approx(1.0, abs=0.11), "app": pytest.approx(2.0, abs=0.11)}
    assert said[0].startswith(f"broker ready in 1.0 s (pid 100, log {tmp_path / 'broker.log'})")


def test_a_part_that_exits_while_starting_fails_in_one_line_and_the_rest_is_not_started(
    tmp_path: Path,
) -> None:
    clock, said = FakeClock(), []
    spawn = FakeSpawn(clock, app={"exits_at": 0.5, "code": 3})
    (tmp_path / "app.log").write_text("starting\nOSError: address already in use\n\n")
    parts = [part(tmp_path, "broker"), part(tmp_path, "app", ready=lambda: False), part(tmp_path, "late")]
    assert supervisor(clock, spawn, parts, said).run() == 1
    assert said[-1] == (
        f"error: app exited with code 3: OSError: address already in use (log: {tmp_path / 'app.log'})"
    )
    assert "late" not in spawn.children
    assert [sig for sig, _ in spawn.children["broker"].signals] == [signal.SIGTERM]


def test_readiness_is_polled_until_the_deadline(tmp_path: Path) -> None:
    clock = FakeClock()
    spawn = FakeSpawn(clock)
    parts = [part(tmp_path, "slow", ready=lambda: False, ready_timeout=3.0), part(tmp_path, "next")]
    with pytest.raises(SupervisorError, match=r"^slow did not become ready within 3 s \(log: .*slow.log\)$"):
        supervisor(clock, spawn, parts, []).start_all()
    assert 3.0 <= clock.now < 3.0 + 2 * POLL_INTERVAL_S
    assert list(spawn.children) == ["slow"]


def test_when_one_part_exits_every_part_is_stopped_in_reverse_order(tmp_path: Path) -> None:
    clock, said = FakeClock(), []
    spawn = FakeSpawn(clock, statistics={"exits_at": 30.0, "code": 1})
    parts = [part(tmp_path, name) for name in ("broker", "statistics", "inference")]
    ready: list[dict] = []
    assert supervisor(clock, spawn, parts, said).run(on_ready=ready.append) == 1
    assert ready == [{"broker": 0.0, "statistics": 0.0, "inference": 0.0}]
    assert said[-1].startswith("error: statistics exited with code 1: no output") and said[-1].endswith(
        "; stopping the stack"
    )
    assert 30.0 <= clock.now < 31.0
    terms = {name: child.signals for name, child in spawn.children.items()}
    assert terms["statistics"] == []  # it had exited: nothing to stop
    assert terms["inference"][0][0] == terms["broker"][0][0] == signal.SIGTERM
    assert terms["inference"][0][1] < terms["broker"][0][1]  # the last started is stopped first


def test_a_part_that_ignores_sigterm_is_killed_after_its_grace(tmp_path: Path) -> None:
    clock = FakeClock()
    stubborn = FakeChild(clock, pid=7, ignores_sigterm=True)
    assert stop_child(stubborn, grace=5.0, clock=clock, sleep=clock.sleep) is True
    (term, term_at), (kill, kill_at) = stubborn.signals
    assert (term, kill) == (signal.SIGTERM, signal.SIGKILL)
    assert 5.0 <= kill_at - term_at < 5.0 + 2 * POLL_INTERVAL_S
    polite = FakeChild(clock, pid=8)
    assert stop_child(polite, grace=5.0, clock=clock, sleep=clock.sleep) is False
    assert [sig for sig, _ in polite.signals] == [signal.SIGTERM]


def test_a_stop_request_stops_every_part_with_exit_code_0(tmp_path: Path) -> None:
    clock = FakeClock()
    spawn = FakeSpawn(clock)
    sup = supervisor(clock, spawn, [part(tmp_path, "a"), part(tmp_path, "b")], [])
    assert sup.run(on_ready=lambda timings: sup.request_stop()) == 0
    assert all(child.returncode == -signal.SIGTERM for child in spawn.children.values())


def test_each_exit_goes_to_the_parts_exit_policy(tmp_path: Path) -> None:
    decided = []

    class Recording:
        def on_exit(self, part: Part, returncode: int, now: float) -> Decision:
            decided.append((part.name, returncode, now))
            return STOP_ALL.on_exit(part, returncode, now)

    clock = FakeClock()
    spawn = FakeSpawn(clock, worker={"exits_at": 2.0, "code": 9})
    parts = [part(tmp_path, "server"), part(tmp_path, "worker", policy=Recording())]
    sup = supervisor(clock, spawn, parts, [])
    sup.start_all()
    exited = sup.watch()
    assert exited is not None and (exited.part.name, exited.returncode, exited.action) == (
        "worker", 9, Action.STOP_ALL,
    )  # fmt: skip
    assert decided == [("worker", 9, 2.0)]


class ExitsAt:
    """A FakeSpawn script per start: the n-th start of a part exits at the given time after it started (None:
    runs until stopped)."""

    def __init__(self, clock: FakeClock, *after_start: float | None) -> None:
        self.clock, self.after_start, self.starts = clock, list(after_start), 0

    def child(self, pid: int) -> FakeChild:
        after = self.after_start[min(self.starts, len(self.after_start) - 1)]
        self.starts += 1
        return FakeChild(self.clock, pid, None if after is None else self.clock.now + after, code=1)


class ScriptedSpawn(FakeSpawn):
    def __init__(self, clock: FakeClock, **scripts: ExitsAt) -> None:
        super().__init__(clock)
        self.exits = scripts
        self.starts: list[tuple[str, float]] = []

    def __call__(self, part: Part) -> FakeChild:
        pid = 100 + len(self.starts)
        script = self.exits.get(part.name)
        child = script.child(pid) if script else FakeChild(self.clock, pid)
        self.children[part.name] = child
        self.starts.append((part.name, self.clock.now))
        return child


def test_a_restarted_part_waits_twice_as_long_after_each_exit_while_the_others_keep_running(
    tmp_path: Path,
) -> None:
    clock, said = FakeClock(), []
    spawn = ScriptedSpawn(clock, statistics=ExitsAt(clock, 1.0, 1.0, 1.0, None))
    policy = RestartWithBackoff(first_delay=1.0, max_delay=30.0, budget=5, window=600.0)
    parts = [
        part(tmp_path, "broker"),
        part(tmp_path, "statistics", policy=policy),
        part(tmp_path, "inference"),
    ]
    changes: list[dict] = []

    def record(sup: Supervisor) -> None:
        changes.append({name: status.state for name, status in sup.status.items()})

    sup = supervisor(clock, spawn, parts, said, watch_interval=0.1, on_change=record)
    sup.start_all()
    inference = spawn.children["inference"]

    def stop_at_20(seconds: float) -> None:
        clock.sleep(seconds)
        if clock.now >= 20.0:
            sup.request_stop()

    sup._sleep = stop_at_20
    assert sup.watch() is None
    starts = [at for name, at in spawn.starts if name == "statistics"]
    gaps = [later - earlier for earlier, later in itertools.pairwise(starts)]
    # exit 1 s after each start, then wait 1, 2, 4 s (within one watch tick)
    assert [round(gap - 1.0) for gap in gaps] == [1, 2, 4] and all(abs(g - round(g)) <= 0.21 for g in gaps)
    assert inference.signals == [] and inference.poll() is None  # never stopped
    assert sup.status["statistics"].restarts == 3 and sup.status["statistics"].state == "running"
    assert sup.degraded() == {}
    assert {"broker": "running", "statistics": "restarting", "inference": "running"} in changes
    assert any(line.startswith("statistics exited with code 1") and "restarting it in 2.0 s" in line
               for line in said)  # fmt: skip


def test_a_part_that_spends_its_restart_budget_is_left_down_and_the_whole_is_degraded(tmp_path: Path) -> None:
    clock, said = FakeClock(), []
    spawn = ScriptedSpawn(clock, webhook=ExitsAt(clock, 0.5))
    policy = RestartWithBackoff(first_delay=1.0, max_delay=2.0, budget=3, window=60.0)
    parts = [part(tmp_path, "inference"), part(tmp_path, "webhook", policy=policy)]
    sup = supervisor(clock, spawn, parts, said, watch_interval=0.1)
    sup.start_all()

    def stop_at_60(seconds: float) -> None:
        clock.sleep(seconds)
        if clock.now >= 60.0:
            sup.request_stop()

    sup._sleep = stop_at_60
    assert sup.watch() is None
    assert [name for name, _ in spawn.starts].count("webhook") == 4  # the first start and 3 restarts
    assert list(sup.degraded()) == ["webhook"]
    assert sup.degraded()["webhook"].startswith(
        "exited 4 times within 60 s, last with code 1: webhook exited"
    )
    assert spawn.children["inference"].poll() is None
    assert said[-1].startswith("error: webhook is left down (") and said[-1].endswith("the stack is degraded")


def test_exits_spread_beyond_the_window_never_spend_the_budget() -> None:
    policy = RestartWithBackoff(first_delay=1.0, max_delay=8.0, budget=2, window=100.0)
    some = Part("p", ["true"], Path("p.log"))
    decisions = [policy.on_exit(some, 1, now) for now in (0.0, 150.0, 300.0, 450.0)]
    assert [(d.action, d.delay) for d in decisions] == [(Action.RESTART, 1.0)] * 4
    burst = [policy.on_exit(some, 1, now) for now in (460.0, 461.0)]  # 450, 460, 461 within 100 s
    assert [(d.action, d.delay) for d in burst] == [(Action.RESTART, 2.0), (Action.LEAVE_DOWN, 0.0)]
    assert burst[1].reason == "exited 3 times within 100 s, last with code 1"


def test_a_restarted_part_that_does_not_become_ready_again_counts_as_an_exit(tmp_path: Path) -> None:
    clock, said = FakeClock(), []
    spawn = ScriptedSpawn(clock, app=ExitsAt(clock, 1.0, None))
    ready = iter([True] + [False] * 10_000)
    parts = [part(tmp_path, "app", ready=lambda: next(ready), ready_timeout=5.0,
                  policy=RestartWithBackoff(first_delay=1.0, budget=1))]  # fmt: skip
    sup = supervisor(clock, spawn, parts, said, watch_interval=0.1)
    sup.start_all()

    def stop_at_30(seconds: float) -> None:
        clock.sleep(seconds)
        if clock.now >= 30.0:
            sup.request_stop()

    sup._sleep = stop_at_30
    sup.watch()
    assert "app did not become ready within 5 s; stopping it" in said
    assert list(sup.degraded()) == ["app"]


def test_the_parts_of_a_supervisor_killed_with_sigkill_die_with_it(tmp_path: Path) -> None:
    script = tmp_path / "supervise.py"
    pid_file = tmp_path / "sleeper.pid"
    script.write_text(
        "import sys\n"
        "from pathlib import Path\n"
        "from process_supervisor import Part, Supervisor\n"
        "sleeper = 'import os, sys, time; open(sys.argv[1], \"w\").write(str(os.getpid())); time.sleep(99)'\n"
        "part = Part('sleeper', [sys.executable, '-c', sleeper, sys.argv[1]], Path(sys.argv[2]))\n"
        "Supervisor([part]).run()\n"
    )
    parent = subprocess.Popen(
        [sys.executable, str(script), str(pid_file), str(tmp_path / "sleeper.log")], cwd=PACKAGE.parent
    )
    try:
        deadline = time.monotonic() + 30
        while not (pid_file.exists() and pid_file.read_text()) and time.monotonic() < deadline:
            time.sleep(0.05)
        sleeper = int(pid_file.read_text())
        assert pid_alive(sleeper) and os.getpgid(sleeper) == sleeper  # a group of its own
        parent.kill()
        parent.wait(10)
        deadline = time.monotonic() + 10
        while pid_alive(sleeper) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not pid_alive(sleeper)
    finally:
        parent.kill()


def test_part_names_must_differ(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="part names must differ"):
        Supervisor([part(tmp_path, "a"), part(tmp_path, "a")])


def test_a_state_file_whose_process_is_gone_reads_as_not_running(tmp_path: Path) -> None:
    alive = {41}
    state = StateFile(tmp_path / "state.json", alive=lambda pid: pid in alive)
    assert state.running() is None
    state.write({"pid": 41, "url": "http://x"})
    assert state.running() == {"pid": 41, "url": "http://x"}
    alive.clear()
    assert state.running() is None and state.read() == {"pid": 41, "url": "http://x"}
    state.remove_if_own(pid=42)
    assert state.path.exists()
    state.remove_if_own(pid=41)
    assert not state.path.exists()


def test_a_background_start_waits_for_the_state_file_that_names_its_process(tmp_path: Path) -> None:
    clock = FakeClock()
    state = StateFile(tmp_path / "state.json", alive=lambda pid: pid == 55)
    child = FakeChild(clock, pid=55)

    def popen(command, log):
        return child

    def answers(found: dict) -> bool:
        return clock.now >= 2.0  # the service writes its state first, answers a little later

    state.write({"pid": 55, "url": "http://x"})
    started, found = start_detached(
        "svc", ["svc"], tmp_path / "svc.log", state, timeout=10, answers=answers, popen=popen,
        clock=clock, sleep=clock.sleep,
    )  # fmt: skip
    assert (started, found) == (child, {"pid": 55, "url": "http://x"}) and 2.0 <= clock.now < 2.2


def test_a_background_start_that_exits_or_never_answers_fails_in_one_line(tmp_path: Path) -> None:
    clock = FakeClock()
    state = StateFile(tmp_path / "state.json", alive=lambda pid: False)
    log = tmp_path / "svc.log"
    dying = FakeChild(clock, pid=56, exits_at=1.0, code=1)

    def popen_writing(command: list[str], log: Path) -> FakeChild:
        with log.open("a") as out:
            out.write("Traceback ...\nOSError: [Errno 98] Address already in use\n\n")
        return dying

    with pytest.raises(SupervisorError) as failed:
        start_detached("svc", ["svc"], log, state, timeout=10, popen=popen_writing,
                       clock=clock, sleep=clock.sleep)  # fmt: skip
    assert (
        str(failed.value)
        == f"svc exited with code 1: OSError: [Errno 98] Address already in use (log: {log})"
    )
    # A run that dies before it can write (a full disk) is not reported with an earlier run's last line.
    mute = FakeChild(clock, pid=58, exits_at=clock.now + 1.0, code=1)
    with pytest.raises(SupervisorError) as failed:
        start_detached("svc", ["svc"], log, state, timeout=10, popen=lambda c, log: mute,
                       clock=clock, sleep=clock.sleep)  # fmt: skip
    assert str(failed.value) == f"svc exited with code 1: no output (log: {log})"
    silent = FakeChild(clock, pid=57)
    groups: list[tuple[int, int]] = []

    def killpg(pgid: int, sig: int) -> None:
        groups.append((pgid, sig))

    with pytest.raises(SupervisorError, match=r"^svc was not ready within 10 s; see .*svc.log$"):
        start_detached("svc", ["svc"], tmp_path / "svc.log", state, timeout=10, popen=lambda c, log: silent,
                       killpg=killpg, clock=clock, sleep=clock.sleep)  # fmt: skip
    assert [sig for sig, _ in silent.signals] == [
        signal.SIGTERM
    ]  # it is stopped, and what is left of its group
    assert groups == [(57, signal.SIGKILL)]


def test_a_background_stop_terms_then_kills_and_removes_the_state_file(tmp_path: Path) -> None:
    clock = FakeClock()
    alive = {60, 61}
    sent: list[tuple[str, int, int, float]] = []

    def kill(pid: int, sig: int) -> None:
        sent.append(("kill", pid, sig, clock.now))

    def killpg(pgid: int, sig: int) -> None:
        sent.append(("killpg", pgid, sig, clock.now))

    state = StateFile(tmp_path / "state.json", alive=lambda pid: pid in alive)
    state.write({"pid": 60})  # does not lead a group: ignores SIGTERM, gets SIGKILL after the grace
    stopped = stop_detached(state, grace=10, kill=kill, killpg=killpg, alive=lambda pid: pid in alive,
                            clock=clock, sleep=clock.sleep)  # fmt: skip
    assert stopped is not None and (stopped.pid, stopped.killed) == (60, True)
    assert [(what, sig) for what, _, sig, _ in sent] == [("kill", signal.SIGTERM), ("kill", signal.SIGKILL)]
    assert 10 <= sent[1][3] - sent[0][3] < 10.2 and not state.path.exists()

    sent.clear()
    state.write({"pid": 61, "pgid": 61})  # leads its group: whatever is left of the group is killed

    def term_stops(pid: int, sig: int) -> None:
        kill(pid, sig)
        alive.discard(pid)

    stopped = stop_detached(state, grace=10, kill=term_stops, killpg=killpg, alive=lambda pid: pid in alive,
                            clock=clock, sleep=clock.sleep)  # fmt: skip
    assert stopped is not None and not stopped.killed
    assert [(what, pid, sig) for what, pid, sig, _ in sent] == [
        ("kill", 61, signal.SIGTERM), ("killpg", 61, signal.SIGKILL),
    ]  # fmt: skip
    assert stop_detached(state, grace=1, alive=lambda pid: False) is None


def test_real_processes_stop_together_when_one_exits(tmp_path: Path) -> None:
    sleeper = [sys.executable, "-c", "import time; time.sleep(120)"]
    quitter = [
        sys.executable,
        "-c",
        "import time; print('bye', flush=True); time.sleep(0.5); raise SystemExit(4)",
    ]
    parts = [
        Part("sleeper", sleeper, tmp_path / "sleeper.log"),
        Part("quitter", quitter, tmp_path / "quitter.log"),
    ]
    said: list[str] = []
    sup = Supervisor(parts, say=said.append, watch_interval=0.1)
    began = time.monotonic()
    assert sup.run() == 1
    assert time.monotonic() - began < 20
    assert said[-1].startswith("error: quitter exited with code 4: bye")
    assert sup.children["sleeper"].poll() == -signal.SIGTERM


def test_the_package_imports_only_the_standard_library() -> None:
    allowed = set(sys.stdlib_module_names) | {"process_supervisor"}
    for path in PACKAGE.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
            if isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            assert {name.split(".")[0] for name in names} <= allowed, path
