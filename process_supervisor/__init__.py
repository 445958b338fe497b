"""One process supervisor for the project's local services (``clearml_local``, ``serving_local``); generic, it
imports nothing of the application nor of either service.

- ``supervisor``: parts started in order, each with its log file and its readiness polled with a deadline,
  watched while they run (a part's exit is handed to its exit policy: stop them all, or restart it with
  exponential backoff until its restart budget is spent, then leave it down and report the whole degraded),
  stopped in reverse order with SIGTERM, then SIGKILL after a grace; each part leads a process group of its
  own (stopped as a group) and, on Linux, dies with the supervisor.
- ``background``: a service run in the background: started in its own session with its output in a log, its
  state file (written by the service once it answers) polled with a deadline, stopped by the pid the file
  names.
- ``probes``: free ports, accepting sockets, HTTP answers, live pids, a log's last line, room to write.

The clock, the sleep and the process factory are parameters, so the rules are tested with fakes
(tests/supervisor/).

Why not a package from PyPI: honcho's ``Manager`` starts every process at once (no start order, no readiness
gate), multiplexes their output through its printer instead of a log file per part, waits a fixed 5 s before
SIGKILL, runs each child under a ``multiprocessing.Process`` of its own and stays in the foreground (no state
file for ``start``/``stop``/``status``). supervisor's ``supervisord`` is a daemon configured by an INI file
and driven over XML-RPC; its readiness is "still running after ``startsecs``", not a probe, and a set of parts
that stops as a whole when one exits is not one of its notions. The part of either that fits (start, SIGTERM,
SIGKILL after a grace) is a few lines; what the services need beyond it is most of this package.
"""

from process_supervisor.background import (
    StateFile,
    Stopped,
    start_detached,
    stop_detached,
)
from process_supervisor.probes import (
    NoSpaceLeft,
    accepts_connections,
    check_writable,
    http_ok,
    last_line,
    pid_alive,
    port_is_free,
)
from process_supervisor.supervisor import (
    STOP_ALL,
    Action,
    Child,
    Decision,
    Exited,
    ExitPolicy,
    Part,
    PartStatus,
    RestartWithBackoff,
    StopAll,
    Supervisor,
    SupervisorError,
    die_with_parent,
    popen_child,
    stop_child,
    stop_on_signals,
)

__all__ = [
    "STOP_ALL",
    "Action",
    "Child",
    "Decision",
    "ExitPolicy",
    "Exited",
    "NoSpaceLeft",
    "Part",
    "PartStatus",
    "RestartWithBackoff",
    "StateFile",
    "StopAll",
    "Stopped",
    "Supervisor",
    "SupervisorError",
    "accepts_connections",
    "check_writable",
    "die_with_parent",
    "http_ok",
    "last_line",
    "pid_alive",
    "popen_child",
    "port_is_free",
    "start_detached",
    "stop_child",
    "stop_detached",
    "stop_on_signals",
]
