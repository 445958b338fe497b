"""Parts run in the foreground as one whole: started in order (each ready before the next starts), watched,
and stopped in reverse order, with SIGTERM and then SIGKILL after each part's grace."""

from __future__ import annotations

import contextlib
import ctypes
import enum
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from process_supervisor.probes import last_line

POLL_INTERVAL_S = 0.1
REAP_TIMEOUT_S = 10.0  # after SIGKILL: how long to wait for the kernel to hand back the exit status


class SupervisorError(RuntimeError):
    """A part could not be started or does not answer; the message is one line to act on."""


class Child(Protocol):
    """What the supervisor needs of a started process (``subprocess.Popen`` is one)."""

    pid: int
    returncode: int | None

    def poll(self) -> int | None: ...

    def send_signal(self, sig: int) -> None: ...

    def kill(self) -> None: ...


class Action(enum.Enum):
    """What the supervisor does after a part exited on its own."""

    STOP_ALL = "stop all"
    RESTART = "restart"  # after the decision's delay
    LEAVE_DOWN = "leave down"  # the others keep running; the whole is degraded


@dataclass(frozen=True)
class Decision:
    action: Action
    delay: float = 0.0  # RESTART: seconds before the new start
    reason: str = ""  # LEAVE_DOWN: why the part is given up (status shows it)


class ExitPolicy(Protocol):
    """Decides, per part, what its exit (or its failure to become ready again) means for the whole; ``now``
    is the supervisor's clock."""

    def on_exit(self, part: Part, returncode: int, now: float) -> Decision: ...


@dataclass(frozen=True)
class StopAll:
    """The parts are only useful together: any part's exit stops every part."""

    def on_exit(self, part: Part, returncode: int, now: float) -> Decision:
        return Decision(Action.STOP_ALL)


STOP_ALL = StopAll()


class RestartWithBackoff:
    """Restart the part after ``first_delay`` seconds, doubling with each exit up to ``max_delay``; a part
    that exits more than ``budget`` times within ``window`` seconds is left down (the whole is degraded).
    One instance per part: it counts that part's exits."""

    def __init__(
        self, first_delay: float = 1.0, max_delay: float = 30.0, budget: int = 5, window: float = 600.0
    ) -> None:
        self.first_delay, self.max_delay, self.budget, self.window = first_delay, max_delay, budget, window
        self._exits: list[float] = []

    def on_exit(self, part: Part, returncode: int, now: float) -> Decision:
        self._exits = [at for at in self._exits if now - at < self.window] + [now]
        if len(self._exits) > self.budget:
            times = f"exited {len(self._exits)} times within {self.window:.0f} s"
            return Decision(Action.LEAVE_DOWN, reason=f"{times}, last with code {returncode}")
        return Decision(Action.RESTART, min(self.max_delay, self.first_delay * 2 ** (len(self._exits) - 1)))


def _always_ready() -> bool:
    return True


@dataclass(frozen=True)
class Part:
    """One process of the whole: how to start it, how to know it is ready, how to stop it, what its exit
    means."""

    name: str
    command: Sequence[str]
    log_path: Path  # its output, appended
    env: Mapping[str, str] | None = None  # None: this process's environment
    ready: Callable[[], bool] = _always_ready  # polled until it holds
    ready_timeout: float = 30.0
    stop_grace: float = 5.0  # seconds between SIGTERM and SIGKILL
    policy: ExitPolicy = field(default=STOP_ALL)


@dataclass(frozen=True)
class Exited:
    part: Part
    returncode: int
    decision: Decision

    @property
    def action(self) -> Action:
        return self.decision.action

    def describe(self) -> str:
        return exit_line(self.part, self.returncode)


def exit_line(part: Part, returncode: int) -> str:
    """One line on a part's exit: its code, its log's last line, where the log is."""
    return f"{part.name} exited with code {returncode}: {last_line(part.log_path)} (log: {part.log_path})"


def popen_child(part: Part) -> subprocess.Popen:
    """Start a part as the leader of a process group of its own (what it leaves behind when it dies is found
    and stopped by that group), output appended to its log; on Linux it gets SIGKILL when the supervisor
    dies, so a ``kill -9`` of the supervisor orphans no part."""
    part.log_path.parent.mkdir(parents=True, exist_ok=True)
    with part.log_path.open("ab") as log:
        return subprocess.Popen(
            list(part.command),
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=None if part.env is None else dict(part.env),
            process_group=0,
            preexec_fn=die_with_parent if _PRCTL else None,
        )


def _load_prctl() -> Callable[..., int] | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        return ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None


_PRCTL = _load_prctl()
_PR_SET_PDEATHSIG = 1


def die_with_parent() -> None:
    """A child's ``preexec_fn``: on Linux, SIGKILL to it when its parent dies (elsewhere nothing)."""
    if _PRCTL is not None:
        _PRCTL(_PR_SET_PDEATHSIG, signal.SIGKILL)


def kill_group(pgid: int, killpg: Callable[[int, int], None] = os.killpg) -> None:
    """SIGKILL to whatever is left of a part's process group (a dead leader's workers)."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        killpg(pgid, signal.SIGKILL)


def stop_child(
    child: Child,
    grace: float,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> bool:
    """SIGTERM, then SIGKILL when it has not exited after ``grace`` seconds; True when it had to be killed."""
    if child.poll() is not None:
        return False
    child.send_signal(signal.SIGTERM)
    if _exits_within(child, grace, clock, sleep):
        return False
    child.kill()
    _exits_within(child, REAP_TIMEOUT_S, clock, sleep)
    return True


def _exits_within(
    child: Child, seconds: float, clock: Callable[[], float], sleep: Callable[[float], None]
) -> bool:
    deadline = clock() + seconds
    while child.poll() is None:
        if clock() >= deadline:
            return False
        sleep(POLL_INTERVAL_S)
    return True


@dataclass
class PartStatus:
    """Where a part is: ``running``, ``restarting`` (waiting for its backoff, or started again and not yet
    ready) or ``down`` (given up: the whole is degraded); its restarts, the reason of its last exit and the
    pid of its current process."""

    state: str = "running"
    restarts: int = 0
    reason: str = ""
    pid: int | None = None  # of its current process (the leader of its process group), once started

    def as_record(self) -> dict[str, object]:
        return {"state": self.state, "restarts": self.restarts, "reason": self.reason}


class Supervisor:
    """Starts its parts in order and keeps them running as one: ``run()`` returns when asked to stop
    (``request_stop``, e.g. from a signal handler) or when a part's exit policy says to stop all, having
    stopped every part. A part its policy restarts is started again after the policy's delay (the others
    keep running); one it leaves down stays down and the whole is degraded (``degraded()``)."""

    def __init__(
        self,
        parts: Sequence[Part],
        *,
        spawn: Callable[[Part], Child] = popen_child,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        say: Callable[[str], None] = lambda line: print(line, flush=True),
        killpg: Callable[[int, int], None] = os.killpg,
        watch_interval: float = 0.5,
        whole: str = "every part",  # how messages name the set of parts ("the stack")
        on_change: Callable[[Supervisor], None] = lambda supervisor: None,  # a part restarted or went down
    ) -> None:
        names = [part.name for part in parts]
        if len(set(names)) < len(names):
            raise ValueError(f"part names must differ: {names}")
        self.parts = list(parts)
        self.children: dict[str, Child] = {}
        self.status: dict[str, PartStatus] = {name: PartStatus() for name in names}
        self._restart_at: dict[str, float] = {}  # part name -> when to start it again
        self._ready_by: dict[str, float] = {}  # part name (started again) -> readiness deadline
        self._spawn, self._clock, self._sleep, self._say = spawn, clock, sleep, say
        self._killpg = killpg
        self._watch_interval = watch_interval
        self._whole = whole
        self._on_change = on_change
        self._stop_requested = False

    def request_stop(self) -> None:
        self._stop_requested = True

    def run(self, on_ready: Callable[[dict[str, float]], None] = lambda timings: None) -> int:
        """Start every part, call ``on_ready`` with each part's seconds to readiness, watch, stop; the exit
        code: 0 when asked to stop, 1 when a part failed to start or its exit stopped the whole."""
        try:
            timings = self.start_all()
        except SupervisorError as exc:
            self._say(f"error: {exc}")
            self.stop_all()
            return 1
        try:
            on_ready(timings)
            exited = self.watch()
            if exited:
                self._say(f"error: {exited.describe()}; stopping {self._whole}")
        finally:
            self.stop_all()
        return 1 if exited else 0

    def start_all(self) -> dict[str, float]:
        """Each part started once the one before is ready; its seconds to readiness. SupervisorError when a
        part exits or is not ready in time (the parts already started keep running: call ``stop_all``)."""
        timings = {}
        for part in self.parts:
            if self._stop_requested:
                raise SupervisorError("stopped while starting")
            timings[part.name] = round(self.start(part), 2)
            pid = self.children[part.name].pid
            self._say(f"{part.name} ready in {timings[part.name]:.1f} s (pid {pid}, log {part.log_path})")
        return timings

    def start(self, part: Part) -> float:
        child = self._spawn(part)
        self.children[part.name] = child
        self.status[part.name].pid = child.pid
        return self._wait_ready(part, child)

    def _wait_ready(self, part: Part, child: Child) -> float:
        began = self._clock()
        deadline = began + part.ready_timeout
        while self._clock() < deadline:
            code = child.poll()
            if code is not None:
                raise SupervisorError(exit_line(part, code))
            if part.ready():
                return self._clock() - began
            self._sleep(POLL_INTERVAL_S)
        raise SupervisorError(
            f"{part.name} did not become ready within {part.ready_timeout:.0f} s (log: {part.log_path})"
        )

    def watch(self) -> Exited | None:
        """Until asked to stop (None) or until a part's exit policy says to stop all (that exit); restarts
        the parts their policies restart, without blocking the watch of the others."""
        while not self._stop_requested:
            for part in self.parts:
                exited = self._exited(part)
                if exited is None:
                    continue
                if exited.action is Action.STOP_ALL:
                    return exited
                self._handle(exited)
            self._restart_due()
            self._sleep(self._watch_interval)
        return None

    def degraded(self) -> dict[str, str]:
        """The parts given up, each with why."""
        return {name: status.reason for name, status in self.status.items() if status.state == "down"}

    def _exited(self, part: Part) -> Exited | None:
        """A running (or restarting) part's exit, or its failure to become ready again in time, decided by
        its policy; None while it runs."""
        child = self.children.get(part.name)
        if child is None or part.name in self._restart_at or self.status[part.name].state == "down":
            return None
        code = child.poll()
        if code is None and part.name in self._ready_by:
            code = self._check_ready_again(part, child)
        if code is None:
            return None
        kill_group(child.pid, self._killpg)  # what the part left behind (e.g. its workers)
        return Exited(part, code, part.policy.on_exit(part, code, self._clock()))

    def _check_ready_again(self, part: Part, child: Child) -> int | None:
        if part.ready():
            del self._ready_by[part.name]
            self.status[part.name].state = "running"
            self._say(f"{part.name} ready again (pid {child.pid})")
            self._on_change(self)
            return None
        if self._clock() < self._ready_by[part.name]:
            return None
        del self._ready_by[part.name]
        self._say(f"{part.name} did not become ready within {part.ready_timeout:.0f} s; stopping it")
        stop_child(child, part.stop_grace, self._clock, self._sleep)
        return child.poll() if child.poll() is not None else -signal.SIGKILL

    def _handle(self, exited: Exited) -> None:
        status = self.status[exited.part.name]
        if exited.action is Action.RESTART:
            status.state, status.reason = "restarting", exited.describe()
            self._restart_at[exited.part.name] = self._clock() + exited.decision.delay
            self._say(f"{exited.describe()}; restarting it in {exited.decision.delay:.1f} s")
        else:
            status.state, status.reason = "down", f"{exited.decision.reason}: {exited.describe()}"
            self._say(f"error: {exited.part.name} is left down ({status.reason}); {self._whole} is degraded")
        self._on_change(self)

    def _restart_due(self) -> None:
        now = self._clock()
        for part in self.parts:
            if self._stop_requested or self._restart_at.get(part.name, now + 1) > now:
                continue
            del self._restart_at[part.name]
            self.children[part.name] = self._spawn(part)
            self.status[part.name].pid = self.children[part.name].pid
            self._ready_by[part.name] = now + part.ready_timeout
            self.status[part.name].restarts += 1
            self._say(f"{part.name} started again (pid {self.children[part.name].pid})")
            self._on_change(self)

    def stop_all(self) -> None:
        """Every started part, in reverse start order; then whatever is left of each part's group."""
        for part in reversed(self.parts):
            child = self.children.get(part.name)
            if child is not None:
                stop_child(child, part.stop_grace, self._clock, self._sleep)
                kill_group(child.pid, self._killpg)

    def pids(self) -> dict[str, int]:
        return {name: child.pid for name, child in self.children.items()}


def stop_on_signals(supervisor: Supervisor, signals: Sequence[int] = (signal.SIGTERM, signal.SIGINT)) -> None:
    """SIGTERM and SIGINT ask the supervisor to stop (call from the main thread)."""
    for sig in signals:
        signal.signal(sig, lambda *_: supervisor.request_stop())
