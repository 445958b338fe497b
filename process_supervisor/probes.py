"""Questions a supervisor asks the machine: is a port free, does a socket accept, does a URL answer 2xx, is a
pid alive, what did a log say last, is there room to write."""

from __future__ import annotations

import errno
import os
import socket
import urllib.error
import urllib.request
from pathlib import Path


def port_is_free(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError:
            return False
    return True


def accepts_connections(host: str, port: int, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def http_ok(url: str, timeout: float = 2.0) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as reply:
            return 200 <= reply.status < 300
    except (OSError, urllib.error.URLError, ValueError):
        return False


def pid_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def last_line(path: Path, since: int = 0) -> str:
    """The last non-blank line of a log (at most 300 characters) written past byte ``since`` (a run's own
    output, not an earlier run's), or "no output"."""
    try:
        with path.open("rb") as log:
            log.seek(since)
            text = log.read().decode(errors="replace")
    except OSError:
        return "no output"
    lines = [line for line in text.splitlines() if line.strip()]
    return lines[-1].strip()[:300] if lines else "no output"


def log_size(path: Path) -> int:
    """Where the next run's output to an appended log begins."""
    try:
        return path.stat().st_size
    except OSError:
        return 0


WRITE_PROBE_BYTES = 64 * 1024  # a service's database, logs and state: a start needs at least this much room


class NoSpaceLeft(RuntimeError):
    """A directory's disk is full; the message is the one line a start prints."""

    def __init__(self, directory: Path) -> None:
        super().__init__(f"no space left in {directory}; free some or choose another --data-dir")
        self.directory = directory


def check_writable(directory: Path) -> None:
    """NoSpaceLeft when ``directory`` cannot take a small write (created if missing), else the OSError of any
    other failure: checked before a start, since a service on a full disk can neither work nor log why (its
    log's last line would be an earlier run's)."""
    probe = directory / ".write-probe"
    try:
        directory.mkdir(parents=True, exist_ok=True)
        with probe.open("wb", buffering=0) as out:
            out.write(b"\0" * WRITE_PROBE_BYTES)
    except OSError as exc:
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            raise NoSpaceLeft(directory) from None
        raise
    finally:
        probe.unlink(missing_ok=True)
