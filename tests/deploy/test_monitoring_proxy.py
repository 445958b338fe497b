"""The production stack's monitoring-proxy (deploy/proxy/Caddyfile), run with Debian's Caddy in front of a
small recording server standing for Prometheus and Alertmanager: nothing passes without the user and password
of deploy/.env, and a cross-origin write is refused even with them (a page the operator opens could post one
with the browser's cached credentials). Skipped, with the reason, where Caddy is not installed."""

from __future__ import annotations

import base64
import os
import shutil
import subprocess
import threading
from collections.abc import Iterator
from http.server import ThreadingHTTPServer
from pathlib import Path

import bcrypt
import pytest
import requests

from tests.backend.backend_harness import wait_for
from tests.deploy import compose
from tests.net import free_port
from tests.serving.test_loopback_guard import Recorder

CADDYFILE = compose.DEPLOY / "proxy" / "Caddyfile"
USER, PASSWORD = "ops", "correct horse"


def caddy() -> str:
    path = shutil.which("caddy")
    if path is None:
        pytest.skip("Caddy is not installed (apt-get install caddy)")
    return path


def caddy_env(tmp_path: Path, listen: dict[str, int], upstream: int) -> dict[str, str]:
    hashed = bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(4)).decode()
    return {
        **os.environ, "HOME": str(tmp_path), "XDG_DATA_HOME": str(tmp_path), "XDG_CONFIG_HOME": str(tmp_path),
        "MONITORING_USER": USER, "MONITORING_PASSWORD_HASH": hashed, "PROXY_BIND": "127.0.0.1",
        "PROMETHEUS_LISTEN": f":{listen['prometheus']}", "PROMETHEUS_UPSTREAM": f"127.0.0.1:{upstream}",
        "ALERTMANAGER_LISTEN": f":{listen['alertmanager']}", "ALERTMANAGER_UPSTREAM": f"127.0.0.1:{upstream}",
    }  # fmt: skip


def test_the_caddyfile_is_valid_and_formatted(tmp_path: Path) -> None:
    binary = caddy()
    env = caddy_env(tmp_path, {"prometheus": 9090, "alertmanager": 9093}, 9090)
    done = subprocess.run([binary, "validate", "--config", str(CADDYFILE), "--adapter", "caddyfile"],
                          capture_output=True, text=True, env=env, timeout=60)  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    formatted = subprocess.run([binary, "fmt", str(CADDYFILE)], capture_output=True, text=True, timeout=60)
    assert formatted.stdout == CADDYFILE.read_text()


def test_the_compose_service_mounts_this_caddyfile_and_publishes_the_monitoring_ports() -> None:
    service = compose.load(compose.DEPLOY / "serving" / "docker-compose.yml")["services"]["monitoring-proxy"]
    assert "../proxy/Caddyfile:/etc/caddy/Caddyfile:ro" in service["volumes"]
    assert service["ports"] == ["127.0.0.1:9090:9090", "127.0.0.1:9093:9093"]
    serving = compose.load(compose.DEPLOY / "serving" / "docker-compose.yml")["services"]
    assert "ports" not in serving["prometheus"] and "ports" not in serving["alertmanager"]
    assert "--web.enable-lifecycle" not in serving["prometheus"]["command"]


@pytest.fixture
def proxy(tmp_path: Path) -> Iterator[dict[str, str]]:
    binary = caddy()
    Recorder.seen = []
    service = ThreadingHTTPServer(("127.0.0.1", 0), Recorder)
    threading.Thread(target=service.serve_forever, daemon=True).start()
    listen = {"prometheus": free_port(), "alertmanager": free_port()}
    env = caddy_env(tmp_path, listen, service.server_address[1])
    log = (tmp_path / "caddy.log").open("wb")
    process = subprocess.Popen([binary, "run", "--config", str(CADDYFILE), "--adapter", "caddyfile"],
                               env=env, stdout=log, stderr=subprocess.STDOUT)  # fmt: skip
    urls = {name: f"http://127.0.0.1:{port}" for name, port in listen.items()}
    try:
        for url in urls.values():
            wait_for(lambda url=url: answers(url), f"Caddy at {url}", 30, 0.1)
        yield urls
    finally:
        process.terminate()
        process.wait(timeout=15)
        log.close()
        service.shutdown()
        service.server_close()


def answers(url: str) -> bool:
    try:
        requests.get(url, timeout=1)
    except requests.ConnectionError:
        return False
    return True


def test_nothing_passes_without_the_credentials_nor_a_cross_origin_write_with_them(
    proxy: dict[str, str],
) -> None:
    for url in proxy.values():
        assert requests.get(f"{url}/api/v2/silences", timeout=5).status_code == 401
        assert requests.get(f"{url}/api/v2/silences", auth=(USER, "guessed"), timeout=5).status_code == 401
        page = {"Origin": "http://evil.example", "Content-Type": "text/plain"}
        forged = requests.post(f"{url}/api/v2/silences", data="{}", headers=page, auth=(USER, PASSWORD),
                               timeout=5)  # fmt: skip
        assert forged.status_code == 403
    assert Recorder.seen == []
    prometheus, alertmanager = proxy["prometheus"], proxy["alertmanager"]
    assert requests.get(f"{prometheus}/api/v1/query?query=up", auth=(USER, PASSWORD), timeout=5).ok
    assert requests.post(f"{alertmanager}/api/v2/silences", json={}, auth=(USER, PASSWORD), timeout=5).ok
    same_origin = {"Origin": alertmanager}
    assert requests.post(f"{alertmanager}/api/v2/silences", json={}, headers=same_origin,
                         auth=(USER, PASSWORD), timeout=5).ok  # fmt: skip
    assert [seen["path"] for seen in Recorder.seen] == ["/api/v1/query?query=up"] + ["/api/v2/silences"] * 2
    expected = "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
    assert {seen["headers"].get("Authorization") for seen in Recorder.seen} == {expected}
