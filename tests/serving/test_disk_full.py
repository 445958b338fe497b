"""A full disk: the webhook receiver answers 507 naming the directory (nothing half-written, it keeps running)
and a stack start says "no space left in DIR" (a 64 KiB tmpfs; skipped, with the reason, where the test
cannot mount one)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from serving_local.alert_webhook import make_server, read_notifications
from tests.net import free_port
from tests.small_disk import fill, mounted_tmpfs


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    with mounted_tmpfs(tmp_path / "small", "64k") as mount:
        yield mount


def test_a_full_disk_is_a_507_naming_the_directory(small_disk: Path) -> None:
    alerts = small_disk / "alerts.jsonl"
    port = free_port()
    server = make_server("127.0.0.1", port, alerts)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{port}/alerts"
        good = {"status": "firing", "alerts": [{"status": "firing", "labels": {"alertname": "A"}}]}
        assert requests.post(url, json=good, timeout=5).status_code == 200
        filler = fill(small_disk)
        big = {**good, "alerts": [{"status": "firing", "labels": {"alertname": "A", "x": "y" * 8192}}]}
        reply = requests.post(url, json=big, timeout=5)
        assert reply.status_code == 507
        assert reply.json() == {"error": f"no space left in {small_disk}; not recorded"}
        filler.unlink()
        assert requests.post(url, json=good, timeout=5).status_code == 200
        assert len(read_notifications(alerts)) == 2
    finally:
        server.shutdown()
        server.server_close()


def test_a_start_on_a_full_disk_says_no_space_left_in_the_data_dir(small_disk: Path) -> None:
    from tests.serving.test_stack import run_stack

    fill(small_disk)
    ports = [
        "--port",
        str(free_port()),
        "--metrics-port",
        str(free_port()),
        "--broker-port",
        str(free_port()),
    ]
    result = run_stack(
        {}, "start", "--service-id", "x" * 32, "--data-dir", str(small_disk), *ports, timeout=60
    )
    assert result.returncode == 1
    assert result.stderr.strip() == (
        f"error: no space left in {small_disk}; free some or choose another --data-dir"
    )
