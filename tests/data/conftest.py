"""A throw-away PostgreSQL 15 cluster for the database tests: started once per session, always stopped."""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.net import free_port

START_TIMEOUT_S = 60
_SERVER_SETTINGS = "-c fsync=off -c full_page_writes=off -c synchronous_commit=off -c max_connections=20"


def _postgres_bin_dir() -> Path | None:
    """Directory holding initdb and pg_ctl (PATH first, then Debian's versioned layout)."""
    initdb = shutil.which("initdb")
    candidates = [Path(initdb).resolve().parent] if initdb else []
    candidates += [Path(p) for p in sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True)]
    for directory in candidates:
        if (directory / "initdb").is_file() and (directory / "pg_ctl").is_file():
            return directory
    return None


def _unprivileged_user() -> str | None:
    """PostgreSQL refuses to run as root: pick the postgres account, else nobody."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        try:
            pwd.getpwnam(name)
            return name
        except KeyError:
            continue
    pytest.skip("running as root and neither a 'postgres' nor a 'nobody' account exists for PostgreSQL")


class _Cluster:
    def __init__(self, bin_dir: Path, user: str | None, root: Path) -> None:
        self.bin_dir, self.user, self.root = bin_dir, user, root
        self.data_dir, self.socket_dir, self.log = root / "data", root / "socket", root / "server.log"
        self.port = 0

    def run(self, *args: str, timeout: float = START_TIMEOUT_S) -> subprocess.CompletedProcess[str]:
        command = [str(self.bin_dir / args[0]), *args[1:]]
        if self.user:
            command = ["runuser", "-u", self.user, "--", *command]
        env = {**os.environ, "LC_ALL": "C", "LANG": "C"}
        return subprocess.run(command, capture_output=True, text=True, timeout=timeout, env=env, check=False)

    def init(self) -> None:
        self.socket_dir.mkdir()
        if self.user:
            account = pwd.getpwnam(self.user)
            for path in (self.root, self.socket_dir):
                os.chown(path, account.pw_uid, account.pw_gid)
        done = self.run(
            "initdb", "-D", str(self.data_dir), "-U", "postgres", "-A", "trust", "-E", "UTF8", "--no-sync"
        )
        if done.returncode:
            raise RuntimeError(f"initdb failed:\n{done.stdout}\n{done.stderr}")

    def start(self) -> None:
        # A port taken between probing and binding makes the start fail: try a few.
        for _ in range(3):
            self.port = free_port()
            options = f"-p {self.port} -k {self.socket_dir} -c listen_addresses=127.0.0.1 {_SERVER_SETTINGS}"
            # -w makes pg_ctl poll until the server accepts connections (or -t seconds pass).
            timeout = ["-t", str(START_TIMEOUT_S)]
            done = self.run(
                "pg_ctl",
                "start",
                "-w",
                *timeout,
                "-D",
                str(self.data_dir),
                "-l",
                str(self.log),
                "-o",
                options,
            )
            if done.returncode == 0:
                return
        log = self.log.read_text(errors="replace") if self.log.exists() else ""
        raise RuntimeError(f"PostgreSQL did not start:\n{done.stdout}\n{done.stderr}\n{log[-3000:]}")

    def wait_ready(self) -> None:
        done = self.run("pg_isready", "-h", "127.0.0.1", "-p", str(self.port), "-t", str(START_TIMEOUT_S))
        if done.returncode:
            raise RuntimeError(f"PostgreSQL on port {self.port} is not ready: {done.stdout}{done.stderr}")

    def stop(self) -> None:
        if (self.data_dir / "postmaster.pid").exists():
            self.run("pg_ctl", "stop", "-w", "-m", "immediate", "-D", str(self.data_dir))


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """URL of a fresh PostgreSQL database on 127.0.0.1 (skipped when the server binaries are absent)."""
    bin_dir = _postgres_bin_dir()
    if bin_dir is None:
        pytest.skip("PostgreSQL server binaries (initdb, pg_ctl) not found; install postgresql to run these")
    user = _unprivileged_user()
    # Not under pytest's tmp_path: its parents are private to root, and the server runs as another user.
    cluster = _Cluster(bin_dir, user, Path(tempfile.mkdtemp(prefix="neo-pg-")))
    try:
        cluster.init()
        cluster.start()
        cluster.wait_ready()
        yield f"postgresql+psycopg2://postgres@127.0.0.1:{cluster.port}/postgres"
    finally:
        cluster.stop()
        shutil.rmtree(cluster.root, ignore_errors=True)
