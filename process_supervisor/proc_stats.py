"""CPU time and resident memory of processes, read from Linux's ``/proc`` (``proc(5)``): what a process's own
Prometheus client reports as ``process_cpu_seconds_total`` and ``process_resident_memory_bytes``, here read
from outside, so that one reader covers every process of a process group, workers included (a worker of a
multi-process server has no process collector of its own in prometheus_client's multiprocess mode).

Each part of a ``Supervisor`` leads a process group of its own, so "the processes of a part" are the
processes of the group its pid leads. Off Linux (no ``/proc``) every function answers with nothing."""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

PROC = Path("/proc")


def _sysconf(name: str, default: int) -> int:
    try:
        return int(os.sysconf(name))
    except (ValueError, OSError, AttributeError):
        return default


CLOCK_TICKS = _sysconf("SC_CLK_TCK", 100)  # units of utime/stime in /proc/<pid>/stat
PAGE_SIZE = _sysconf("SC_PAGE_SIZE", 4096)  # unit of rss in /proc/<pid>/stat


@dataclass(frozen=True)
class ProcessSample:
    """One process at one moment: its CPU time (user + system, seconds since it started) and resident set."""

    pid: int
    pgid: int
    cpu_seconds: float
    resident_bytes: int


def parse_stat(text: str, clock_ticks: int = CLOCK_TICKS, page_size: int = PAGE_SIZE) -> ProcessSample:
    """A ``/proc/<pid>/stat`` line. The command name (field 2, in parentheses) may hold spaces and
    parentheses, so the fields are counted from its last ``)``. ValueError on a line of another shape."""
    head, _, rest = text.rpartition(")")
    if not head or "(" not in head:
        raise ValueError(f"not a /proc/<pid>/stat line: {text[:80]!r}")
    pid = int(head.split("(", 1)[0])
    fields = rest.split()  # fields[0] is field 3 (state), so field n is fields[n - 3]
    if len(fields) < 22:
        raise ValueError(f"/proc/{pid}/stat has {len(fields) + 2} fields, fewer than 24")
    pgid = int(fields[5 - 3])
    utime, stime = int(fields[14 - 3]), int(fields[15 - 3])
    rss_pages = int(fields[24 - 3])
    return ProcessSample(pid, pgid, (utime + stime) / clock_ticks, max(rss_pages, 0) * page_size)


def read_process(pid: int, proc: Path = PROC) -> ProcessSample | None:
    """One process's sample; None when it is gone (or unreadable) by the time it is read."""
    try:
        return parse_stat((proc / str(pid) / "stat").read_text())
    except (OSError, ValueError):
        return None


def all_processes(proc: Path = PROC) -> Iterator[ProcessSample]:
    """Every process this user can read."""
    try:
        entries = [entry.name for entry in proc.iterdir() if entry.name.isdigit()]
    except OSError:
        return
    for name in entries:
        sample = read_process(int(name), proc)
        if sample is not None:
            yield sample


def group_processes(leaders: Iterable[int], proc: Path = PROC) -> dict[int, list[ProcessSample]]:
    """Leader pid -> the processes of the group it leads (itself first, then the others by pid); a leader
    that is gone maps to the members left behind, if any (one pass over ``/proc``)."""
    groups: dict[int, list[ProcessSample]] = {leader: [] for leader in leaders}
    for sample in sorted(all_processes(proc), key=lambda sample: (sample.pid != sample.pgid, sample.pid)):
        if sample.pgid in groups:
            groups[sample.pgid].append(sample)
    return groups
