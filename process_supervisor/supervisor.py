"""Parts run in the foreground as one whole: started in order (each ready before the next starts), watched,
and stopped in reverse order, with SIGTERM and then SIGKILL after each part's grace."""

from __future__ import annotations

import enum
import signal
import subprocess
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


class ExitPolicy(Protocol):
    """Decides, per part, what its exit means for the whole (a restart policy would be another
    implementation, with an action of its own)."""

    def on_exit(self, part: Part, returncode: int) -> Action: ...


@dataclass(frozen=True)
class StopAll:
    """The parts are only useful together: any part's exit stops every part."""

    def on_exit(self, part: Part, returncode: int) -> Action:
        return Action.STOP_ALL


STOP_ALL = StopAll()


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
    action: Action

    def describe(self) -> str:
        return exit_line(self.part, self.returncode)


def exit_line(part: Part, returncode: int) -> str:
    """One line on a part's exit: its code, its log's last line, where the log is."""
    return f"{part.name} exited with code {returncode}: {last_line(part.log_path)} (log: {part.log_path})"


def popen_child(part: Part) -> subprocess.Popen:
    """Start a part in this process group (stopping the group stops it), output appended to its log."""
    part.log_path.parent.mkdir(parents=True, exist_ok=True)
    with part.log_path.open("ab") as log:
        return subprocess.Popen(
            list(part.command),
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=None if part.env is None else dict(part.env),
        )


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


class Supervisor:
    """Starts its parts in order and keeps them running as one: ``run()`` returns when asked to stop
    (``request_stop``, e.g. from a signal handler) or when a part exits, having stopped every part."""

    def __init__(
        self,
        parts: Sequence[Part],
        *,
        spawn: Callable[[Part], Child] = popen_child,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        say: Callable[[str], None] = lambda line: print(line, flush=True),
        watch_interval: float = 0.5,
        whole: str = "every part",  # how messages name the set of parts ("the stack")
    ) -> None:
        names = [part.name for part in parts]
        if len(set(names)) < len(names):
            raise ValueError(f"part names must differ: {names}")
        self.parts = list(parts)
        self.children: dict[str, Child] = {}
        self._spawn, self._clock, self._sleep, self._say = spawn, clock, sleep, say
        self._watch_interval = watch_interval
        self._whole = whole
        self._stop_requested = False

    def request_stop(self) -> None:
        self._stop_requested = True

    def run(self, on_ready: Callable[[dict[str, float]], None] = lambda timings: None) -> int:
        """Start every part, call ``on_ready`` with each part's seconds to readiness, watch, stop; the exit
        code: 0 when asked to stop, 1 when a part failed to start or exited."""
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
        """Until asked to stop (None) or until a part's exit policy says to stop all (that exit)."""
        while not self._stop_requested:
            for part in self.parts:
                exited = self._exited(part)
                if exited and exited.action is Action.STOP_ALL:
                    return exited
            self._sleep(self._watch_interval)
        return None

    def _exited(self, part: Part) -> Exited | None:
        child = self.children.get(part.name)
        code = child.poll() if child else None
        return None if code is None else Exited(part, code, part.policy.on_exit(part, code))

    def stop_all(self) -> None:
        """Every started part, in reverse start order."""
        for part in reversed(self.parts):
            child = self.children.get(part.name)
            if child is not None:
                stop_child(child, part.stop_grace, self._clock, self._sleep)

    def pids(self) -> dict[str, int]:
        return {name: child.pid for name, child in self.children.items()}


def stop_on_signals(supervisor: Supervisor, signals: Sequence[int] = (signal.SIGTERM, signal.SIGINT)) -> None:
    """SIGTERM and SIGINT ask the supervisor to stop (call from the main thread)."""
    for sig in signals:
        signal.signal(sig, lambda *_: supervisor.request_stop())
