"""The guard in front of the stack's Prometheus and Alertmanager (serving_local/loopback_guard.py), here in
front of a small recording server: foreign ``Host`` names and cross-origin writes never reach the service,
what passes reaches it with the guard's basic-auth credentials, answers (chunked ones too) come back whole
and without CORS headers; run as a process, it hands signals to its child and takes it down when it dies."""

from __future__ import annotations

import base64
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar

import bcrypt
import pytest
import requests

from process_supervisor import pid_alive
from serving_local.loopback_guard import MAX_BODY_BYTES, USER, Upstream, make_server, write_web_config
from tests.backend.backend_harness import wait_for
from tests.net import free_port

PASSWORD = "guard-password"


class Recorder(BaseHTTPRequestHandler):
    """Stands for Prometheus/Alertmanager: records each request; /chunked answers in chunks, like Go does."""

    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # as Go's servers do
    seen: ClassVar[list[dict]] = []

    def log_message(self, format: str, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        length = int(self.headers.get("Content-Length", "0"))
        body = self.rfile.read(length) if length else b""
        self.seen.append({"path": self.path, "headers": dict(self.headers), "body": body})
        self.send_response(200)
        self.send_header("Access-Control-Allow-Origin", "*")
        self.send_header("Content-Type", "application/json")
        if self.path == "/chunked":
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for piece in (b'{"a":', b"1}"):
                self.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece))
            self.wfile.write(b"0\r\n\r\n")
            return
        payload = json.dumps({"path": self.path}).encode()
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    do_POST = do_DELETE = do_OPTIONS = do_GET


@pytest.fixture
def guard() -> Iterator[tuple[str, int]]:
    Recorder.seen = []
    service = ThreadingHTTPServer(("127.0.0.1", 0), Recorder)
    port = free_port()
    server = make_server("127.0.0.1", port, Upstream("127.0.0.1", service.server_address[1], PASSWORD))
    for each in (service, server):
        threading.Thread(target=each.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{port}", port
    finally:
        for each in (server, service):
            each.shutdown()
            each.server_close()


def test_a_foreign_host_and_a_cross_origin_write_never_reach_the_service(guard: tuple[str, int]) -> None:
    url, port = guard
    silence = {"matchers": [{"name": "alertname", "value": ".+", "isRegex": True}], "endsAt": "2099-01-01"}
    rebound = requests.get(f"{url}/api/v2/silences", headers={"Host": f"evil.example:{port}"}, timeout=5)
    assert rebound.status_code == 421
    for origin in ("http://evil.example", "null", f"http://127.0.0.1:{port + 1}"):
        page = {"Origin": origin, "Content-Type": "text/plain"}
        assert requests.post(f"{url}/api/v2/silences", data=json.dumps(silence), headers=page, timeout=5
                             ).status_code == 403  # fmt: skip
        assert requests.delete(f"{url}/api/v2/silence/x", headers=page, timeout=5).status_code == 403
        preflight = {"Origin": origin, "Access-Control-Request-Method": "POST"}
        assert requests.options(f"{url}/api/v2/silences", headers=preflight, timeout=5).status_code == 403
    assert Recorder.seen == []


def test_what_passes_reaches_the_service_with_the_guards_credentials(guard: tuple[str, int]) -> None:
    url, port = guard
    same_origin = {"Origin": f"http://localhost:{port}", "Host": f"localhost:{port}"}
    assert requests.post(f"{url}/api/v2/silences", json={"a": 1}, headers=same_origin, timeout=5).ok
    assert requests.post(f"{url}/api/v2/alerts", json=[{"b": 2}], timeout=5).ok  # Prometheus: no Origin
    read = requests.get(f"{url}/api/v1/query?query=up", headers={"Origin": "http://evil.example"}, timeout=5)
    assert read.ok and read.json() == {"path": "/api/v1/query?query=up"}
    assert "Access-Control-Allow-Origin" not in read.headers  # no other origin can read the answer
    chunked = requests.get(f"{url}/chunked", timeout=5)
    assert chunked.json() == {"a": 1}
    expected = "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
    assert [seen["headers"]["Authorization"] for seen in Recorder.seen] == [expected] * 4
    assert [json.loads(seen["body"]) for seen in Recorder.seen[:2]] == [{"a": 1}, [{"b": 2}]]
    assert Recorder.seen[0]["headers"]["Host"] == f"localhost:{port}"


def test_answers_on_a_kept_alive_connection_do_not_wait_for_delayed_acks(guard: tuple[str, int]) -> None:
    """With Nagle's algorithm on, each answer waited ~40 ms for the client's delayed ACK (46 ms a query
    through the guard against 1.1 ms to Prometheus itself, measured); 50 answers take far less than 50 such
    waits."""
    url, _ = guard
    with requests.Session() as session:
        assert session.get(f"{url}/warm", timeout=5).ok
        began = time.perf_counter()
        for index in range(50):
            assert session.get(f"{url}/{index}", timeout=5).ok
        elapsed = time.perf_counter() - began
    assert elapsed < 50 * 0.040 / 2, f"50 answers took {elapsed:.2f} s"


def test_a_body_over_the_limit_is_a_413_and_a_service_not_answering_a_502(guard: tuple[str, int]) -> None:
    url, _ = guard
    too_big = requests.post(f"{url}/api/v2/alerts", data=b" " * (MAX_BODY_BYTES + 1), timeout=30)
    assert too_big.status_code == 413
    nobody = make_server("127.0.0.1", free_port(), Upstream("127.0.0.1", free_port(), PASSWORD))
    threading.Thread(target=nobody.serve_forever, daemon=True).start()
    try:
        reply = requests.get(f"http://127.0.0.1:{nobody.server_address[1]}/-/ready", timeout=5)
        assert reply.status_code == 502
    finally:
        nobody.shutdown()
        nobody.server_close()


def test_the_web_config_holds_a_bcrypt_hash_of_the_password_for_its_owner_only(tmp_path: Path) -> None:
    path = tmp_path / "web.yml"
    write_web_config(path, PASSWORD)
    write_web_config(path, PASSWORD)  # a restart writes it again
    hashed = path.read_text().split(f"{USER}: '")[1].split("'")[0]
    assert bcrypt.checkpw(PASSWORD.encode(), hashed.encode())
    assert path.stat().st_mode & 0o777 == 0o600


CHILD = """
import signal, sys, time
signal.signal(signal.SIGHUP, lambda *_: print("HUP", flush=True))
signal.signal(signal.SIGTERM, lambda *_: sys.exit(3))
print(" ".join(sys.argv[1:]), flush=True)
while True:
    time.sleep(0.05)
"""


def children(pid: int) -> list[int]:
    found = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True, check=False)
    return [int(line) for line in found.stdout.split()]


def test_the_guard_hands_signals_to_its_child_and_takes_it_down_when_it_dies(tmp_path: Path) -> None:
    log = tmp_path / "guard.log"
    port = free_port()
    command = [sys.executable, "-m", "serving_local.loopback_guard", "--listen", f"127.0.0.1:{port}",
               "--web-config", str(tmp_path / "web.yml"), "--", sys.executable, "-c", CHILD,
               "--web.listen-address={upstream}", "--web.config.file={web_config}"]  # fmt: skip
    with log.open("wb") as out:
        guard = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)
    try:
        wait_for(lambda: "--web.config.file=" in log.read_text(), "the child to start", 30)
        assert f"--web.config.file={tmp_path / 'web.yml'}" in log.read_text()
        assert f"--web.listen-address=127.0.0.1:{port}" not in log.read_text()  # a private port
        guard.send_signal(signal.SIGHUP)
        wait_for(lambda: "HUP" in log.read_text().splitlines(), "SIGHUP to reach the child", 10)
        guard.send_signal(signal.SIGTERM)
        assert guard.wait(timeout=10) == 3  # the child's own exit code
        with log.open("wb") as out:
            guard = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)
        wait_for(lambda: children(guard.pid), "the child to start again", 30)
        child_pid = children(guard.pid)[0]
        os.kill(guard.pid, signal.SIGKILL)
        guard.wait(timeout=10)
        wait_for(lambda: not pid_alive(child_pid), "the child to die with the guard", 10)
    finally:
        if guard.poll() is None:
            guard.kill()
            guard.wait()


def test_a_taken_port_is_one_line(tmp_path: Path) -> None:
    with ThreadingHTTPServer(("127.0.0.1", 0), Recorder) as taken:
        port = taken.server_address[1]
        done = subprocess.run(
            [sys.executable, "-m", "serving_local.loopback_guard", "--listen", f"127.0.0.1:{port}",
             "--web-config", str(tmp_path / "web.yml"), "--", sys.executable, "-c", "pass"],
            capture_output=True, text=True, timeout=30,
        )  # fmt: skip
    assert done.returncode == 1
    assert done.stderr.strip() == f"error: port 127.0.0.1:{port} is taken"
