"""A "zygote" for the pipeline's local steps: one process that holds the steps' heavy modules imported, and
forks a child for each step the controller starts, which runs the step's script as ``python script.py``
would (same arguments, working directory, environment and exit code).

Each step is still a process of its own and its own ClearML task; what it skips is starting an interpreter
and importing clearml, pandas, pyarrow, xgboost and scikit-learn (0.5–2 s per step on this machine, measured
in docs/notes/data-at-scale.md). Used for local steps only (``third_party_patches.launch_local_steps_with``);
steps on agents are untouched.

The zygote is forked from the controller once its modules are imported and before any thread starts there
(``StepZygote.fork``: nothing imported twice), or else started as a new interpreter (``StepZygote.start``,
``python -m asteroid.step_zygote FD``); either way it imports the rest of ``PRELOADED_MODULES`` one at a time
while serving. Each child takes the step's own environment before its script runs. The SDK reads its
environment when used, except what it reads on import: the task id a process runs (``clearml.config.remote``,
reset in the child) and three class-level settings (offline mode, maximum API version, request method) the
controller never sets; the project's modules read only their own settings on import (``global_config``),
which steps inherit from the controller unchanged.

The controller talks to the zygote over a socket pair in JSON lines: a request ``{"args", "cwd", "env"}`` is
answered ``{"pid"}``, and each child's end is reported ``{"exited", "code"}`` (``Popen.returncode``'s
convention: negative for a signal). The zygote ends when the controller closes its end.
"""

import atexit
import contextlib
import importlib
import json
import os
import runpy
import select
import selectors
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NoReturn

# What the steps import that costs most to import (measured with python -X importtime), in the order the
# steps need them. xgboost imports scikit-learn, which imports SciPy: as one import, ~0.55 s during which
# the zygote could not fork the first step (it waited ~0.2 s for it); imported piecewise, ~0.2 s at most.
PRELOADED_MODULES = (
    "clearml",
    "pandas",
    "pyarrow.parquet",
    "sqlalchemy",
    "clearml.automation.controller",
    "scipy.special",
    "scipy.sparse",
    "scipy.linalg",
    "scipy.optimize",
    "scipy.stats",
    "sklearn.utils",
    "xgboost",
    "sklearn.metrics",
)
DISABLE_ENV = "ASTEROID_STEP_ZYGOTE"  # "0": no zygote


@dataclass(frozen=True)
class StepRequest:
    """A step's command line (interpreter first), working directory and environment."""

    args: list[str]
    cwd: str
    env: dict[str, str]


# --- the zygote's side -----------------------------------------------------------------------------------


def serve(channel: socket.socket, preload: tuple[str, ...] = PRELOADED_MODULES) -> StepRequest | None:
    """Import the `preload` modules one at a time, and fork a child per request (at once, whatever is
    imported by then) until the controller closes the channel; in a child, return its request (the zygote
    itself returns None)."""
    pending = list(preload)
    wake_read, wake_write = os.pipe()
    os.set_blocking(wake_write, False)
    signal.set_wakeup_fd(wake_write)
    signal.signal(signal.SIGCHLD, lambda *_: None)  # only to wake the selector; reaping is below
    selector = selectors.DefaultSelector()
    selector.register(channel, selectors.EVENT_READ)
    selector.register(wake_read, selectors.EVENT_READ)
    reader = channel.makefile("r", encoding="utf-8")
    while True:
        events = selector.select(timeout=0 if pending else None)
        if not events and pending:
            # a step that needs a missing module fails in its own process, with its own message
            with contextlib.suppress(ImportError):
                importlib.import_module(pending.pop(0))
            continue
        for key, _ in events:
            if key.fileobj is wake_read:
                os.read(wake_read, 4096)
                continue
            line = reader.readline()
            if not line:
                return None
            request = StepRequest(**json.loads(line))
            sys.stdout.flush()
            sys.stderr.flush()
            pid = os.fork()
            if pid == 0:
                selector.close()
                for fd in (wake_read, wake_write):
                    os.close(fd)
                reader.close()
                channel.close()
                return request
            _send(channel, {"pid": pid})
        _report_exits(channel)


def _report_exits(channel: socket.socket) -> None:
    while True:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        _send(channel, {"exited": pid, "code": os.waitstatus_to_exitcode(status)})


def _send(channel: socket.socket, message: dict[str, Any]) -> None:
    channel.sendall((json.dumps(message) + "\n").encode())


def become_step(request: StepRequest, base_path: list[str]) -> str:
    """Turn this forked child into the step's process; returns the script to run as ``__main__``."""
    signal.set_wakeup_fd(-1)
    for signum in (signal.SIGCHLD, signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, signal.SIG_DFL if signum != signal.SIGINT else signal.default_int_handler)
    os.chdir(request.cwd)
    os.environ.clear()
    os.environ.update(request.env)
    if "clearml.config.remote" in sys.modules:
        # the SDK reads the task id the step runs as (CLEARML_TASK_ID) once, when clearml is imported
        from clearml.config.remote import override_current_task_id

        override_current_task_id(os.environ.get("CLEARML_TASK_ID") or None)
    script = request.args[1]
    extra = [entry for entry in request.env.get("PYTHONPATH", "").split(os.pathsep) if entry]
    sys.path[:] = [os.path.dirname(os.path.abspath(script)), *extra, *base_path]
    sys.argv[:] = request.args[1:]
    return script


def interpreter_path() -> list[str]:
    """This interpreter's module path without the script's folder and ``PYTHONPATH``: what a step's own
    entries go before."""
    own_extra = {entry for entry in os.environ.get("PYTHONPATH", "").split(os.pathsep) if entry}
    return [entry for entry in sys.path[1:] if entry not in own_extra]


def run_as_main(script: str) -> int:
    """Run ``script`` as ``__main__`` and end as the interpreter would (an uncaught exception printed by
    ``sys.excepthook``, non-daemon threads waited for, ``atexit`` callbacks run); the exit code."""
    try:
        runpy.run_path(script, run_name="__main__")
        code = 0
    except SystemExit as exc:
        code = _exit_code(exc.code)
    except BaseException:
        sys.last_type, sys.last_value, sys.last_traceback = sys.exc_info()
        sys.excepthook(*sys.exc_info())
        code = 1
    shutdown = getattr(threading, "_shutdown", None)  # what the interpreter calls at exit
    if shutdown is not None:
        shutdown()
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    return code


def _exit_code(code: object) -> int:
    if code is None:
        return 0
    if isinstance(code, int):
        return code
    print(code, file=sys.stderr)
    return 1


def _forked_zygote(channel: socket.socket, base_path: list[str]) -> NoReturn:
    """The zygote forked from the controller: serve, and in each child run its step; never returns into the
    controller's code."""
    code = 1
    try:
        request = serve(channel)
        code = 0 if request is None else run_as_main(become_step(request, base_path))
    finally:
        os._exit(code)


def main(fd: int) -> None:
    channel = socket.socket(fileno=fd)
    base_path = interpreter_path()
    request = serve(channel)
    if request is None:
        os._exit(0)  # the interpreter's teardown of everything preloaded would take ~0.5 s
    runpy.run_path(become_step(request, base_path), run_name="__main__")


# --- the controller's side -------------------------------------------------------------------------------


class ForkedStep:
    """The controller's handle on a step forked by the zygote: what the SDK uses of a ``Popen``."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.args: list[str] = []
        self.returncode: int | None = None
        self._ended = threading.Event()

    def ended(self, code: int) -> None:
        self.returncode = code
        self._ended.set()

    def wait(self, timeout: float | None = None) -> int:
        if not self._ended.wait(timeout):
            raise subprocess.TimeoutExpired(self.args, timeout or 0)
        return self.returncode  # type: ignore[return-value]

    def poll(self) -> int | None:
        return self.returncode

    def send_signal(self, signum: int) -> None:
        if self.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signum)

    def terminate(self) -> None:
        self.send_signal(signal.SIGTERM)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)


class ForkedZygote:
    """The controller's handle on a zygote it forked itself: what ``StepZygote`` uses of a ``Popen``."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.returncode: int | None = None

    def wait(self, timeout: float | None = None) -> int:
        if self.returncode is None:
            pidfd = os.pidfd_open(self.pid)
            try:
                if not select.select([pidfd], [], [], timeout)[0]:
                    raise subprocess.TimeoutExpired(["step zygote"], timeout or 0)
            finally:
                os.close(pidfd)
            self.returncode = os.waitstatus_to_exitcode(os.waitpid(self.pid, 0)[1])
        return self.returncode

    def kill(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, signal.SIGKILL)


class StepZygote:
    """The controller's connection to a zygote process; ``launch`` is what the SDK calls instead of
    ``subprocess.Popen`` for a local step (``third_party_patches.launch_local_steps_with``)."""

    def __init__(self, process: subprocess.Popen[bytes] | ForkedZygote, channel: socket.socket) -> None:
        self.process = process
        self._channel = channel
        self._lock = threading.Lock()  # one request and its pid answer at a time
        self._pids: list[int] = []
        self._pid_ready = threading.Condition()
        self._steps: dict[int, ForkedStep] = {}
        self._early_exits: dict[int, int] = {}
        self._alive = True
        threading.Thread(target=self._read, name="step-zygote", daemon=True).start()

    @classmethod
    def start(cls, cwd: str) -> "StepZygote":
        ours, theirs = socket.socketpair()
        process = subprocess.Popen(
            [sys.executable, "-m", __name__, str(theirs.fileno())],
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            pass_fds=(theirs.fileno(),),
        )
        theirs.close()
        return cls(process, ours)

    @classmethod
    def fork(cls) -> "StepZygote | None":
        """A zygote forked from this process, with everything it has imported (no module imported twice);
        None while any other thread runs here (a fork copies no thread, and any lock one holds stays held).

        The steps share this process's modules as imported: the project's read only its own settings from
        the environment on import (``global_config``: ``ASTEROID_*``, ``NEO_*``), which the steps inherit
        from the controller unchanged."""
        if threading.active_count() != 1:
            return None
        ours, theirs = socket.socketpair()
        base_path = interpreter_path()
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:
            ours.close()
            _forked_zygote(theirs, base_path)
        theirs.close()
        return cls(ForkedZygote(pid), ours)

    def launch(self, args: list[str], cwd: str, env: dict[str, str]) -> ForkedStep | None:
        """A child of the zygote running ``args`` (``[python, script]``); None when the zygote is gone."""
        with self._lock:
            if not self._alive:
                return None
            try:
                _send(self._channel, {"args": list(args), "cwd": cwd, "env": dict(env)})
            except OSError:
                return None
            with self._pid_ready:
                self._pid_ready.wait_for(lambda: self._pids or not self._alive)
                if not self._pids:
                    return None
                step = ForkedStep(self._pids.pop(0))
        step.args = list(args)
        with self._pid_ready:
            self._steps[step.pid] = step
            if step.pid in self._early_exits:
                step.ended(self._early_exits.pop(step.pid))
        return step

    def _read(self) -> None:
        with self._channel.makefile("r", encoding="utf-8") as lines:
            for line in lines:
                self._dispatch(json.loads(line))
        with self._pid_ready:
            self._alive = False
            self._pid_ready.notify_all()

    def _dispatch(self, message: dict[str, Any]) -> None:
        with self._pid_ready:
            if "pid" in message:
                self._pids.append(message["pid"])
                self._pid_ready.notify_all()
            elif message["exited"] in self._steps:
                self._steps.pop(message["exited"]).ended(message["code"])
            else:
                self._early_exits[message["exited"]] = message["code"]

    def close(self, timeout: float = 5.0) -> None:
        """End the zygote (children it forked run on to their own end)."""
        self._alive = False
        with contextlib.suppress(OSError):
            self._channel.shutdown(socket.SHUT_RDWR)
        self._channel.close()
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def start_for_local_steps(queue: str | None, root: str, fork: bool = False) -> StepZygote | None:
    """A zygote for a run's local steps: forked from this process when ``fork`` and no other thread runs,
    else a new interpreter started in ``root``; none when the steps run on agents (a queue), or with
    ``ASTEROID_STEP_ZYGOTE=0`` (each local step a new interpreter, as the SDK starts them; for comparisons).
    """
    if queue or os.environ.get(DISABLE_ENV, "1") == "0":
        return None
    return (StepZygote.fork() if fork else None) or StepZygote.start(root)


def step_launcher(zygote: StepZygote) -> Callable[[list[str], str, dict[str, str]], Any]:
    """What starts a local step: a child of the zygote, or ``subprocess.Popen`` if the zygote is gone."""

    def start(args: list[str], cwd: str, env: dict[str, str]) -> Any:
        forked = zygote.launch(args, cwd, env) if len(args) == 2 else None
        return forked if forked is not None else subprocess.Popen(args=args, cwd=cwd, env=env)

    return start


if __name__ == "__main__":
    main(int(sys.argv[1]))
