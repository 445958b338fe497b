"""A full disk: every write of the embedded backend (API call or upload) answers 507 naming the directory that
is full, it keeps serving, and takes writes again once space is freed; a start on a full disk says "no space
left in DIR". On a real small tmpfs where the test can mount one (skipped, with the reason, elsewhere), and
with the error injected, so that a CI without mount rights covers the mapping too."""

from __future__ import annotations

import errno
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from clearml_local.fileserver import _UploadReceiver
from clearml_local.storage import Store
from tests.backend.backend_harness import BackendHarness
from tests.small_disk import fill, mounted_tmpfs

BIG_COMMENT = "x" * 256 * 1024  # more than the free space a filled tmpfs leaves in SQLite's pages


@pytest.fixture
def harness(tmp_path: Path) -> Iterator[BackendHarness]:
    harness = BackendHarness(tmp_path).start()
    try:
        yield harness
    finally:
        harness.stop()


@pytest.fixture
def on_small_disk(tmp_path: Path) -> Iterator[BackendHarness]:
    with mounted_tmpfs(tmp_path / "small", "2m") as mount:
        harness = BackendHarness(mount).start()
        try:
            yield harness
        finally:
            harness.stop()


def create_task(harness: BackendHarness, comment: str = "") -> requests.Response:
    return harness.post("tasks.create", {"name": "t", "type": "training", "comment": comment})


def upload(harness: BackendHarness, name: str, content: bytes) -> requests.Response:
    headers = {"Authorization": f"Bearer {harness.token}"}
    files = {f"p/{name}": ("upload.bin", content, "application/octet-stream")}
    return requests.post(f"{harness.files_url}/", files=files, headers=headers, timeout=30)


def assert_no_space(reply: requests.Response, directory: Path) -> None:
    assert reply.status_code == 507, reply.text[:300]
    message = reply.json()["meta"]["result_msg"]
    assert message.startswith(f"No space left in {directory}: "), message


def test_every_write_on_a_full_disk_is_a_507_and_the_backend_recovers(on_small_disk: BackendHarness) -> None:
    harness = on_small_disk
    data_dir = harness.backend.config.data_dir
    assert create_task(harness).status_code == 200
    filler = fill(harness.root)
    assert_no_space(create_task(harness, "small"), data_dir)
    assert_no_space(create_task(harness, BIG_COMMENT), data_dir)
    assert_no_space(upload(harness, "model.bin", b"\1" * 512 * 1024), harness.files_root)
    assert [
        task["comment"] for task in harness.call("tasks.get_all", {"only_fields": ["comment"]})["tasks"]
    ] == [""], "reads answer, and show nothing of the writes that were refused"
    filler.unlink()
    assert create_task(harness, BIG_COMMENT).status_code == 200
    assert upload(harness, "model.bin", b"\1" * 512 * 1024).status_code == 200
    assert (harness.files_root / "p" / "model.bin").stat().st_size == 512 * 1024


def test_a_full_database_is_a_507_naming_the_data_directory(
    harness: BackendHarness, monkeypatch: pytest.MonkeyPatch
) -> None:
    full = sqlite3.OperationalError("database or disk is full")
    full.sqlite_errorcode = sqlite3.SQLITE_FULL

    def put(*_: object) -> None:
        raise full

    monkeypatch.setattr(Store, "put", put)
    assert_no_space(create_task(harness), harness.backend.config.data_dir)


def test_a_full_disk_under_an_upload_is_a_507_naming_the_files_directory(
    harness: BackendHarness, monkeypatch: pytest.MonkeyPatch
) -> None:
    def part_data(*_: object) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(_UploadReceiver, "_part_data", part_data)
    assert_no_space(upload(harness, "big.bin", b"\1" * 4 * 1024 * 1024), harness.files_root)
    assert not (harness.files_root / "p" / "big.bin").exists()


def test_a_start_on_a_full_disk_says_no_space_left_in_the_data_dir(tmp_path: Path) -> None:
    with mounted_tmpfs(tmp_path / "small", "256k") as mount:
        fill(mount)
        command = [sys.executable, "-m", "clearml_local", "start", "--data-dir", str(mount / "data"),
                   "--api-port", "0", "--files-port", "0"]  # fmt: skip
        done = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 1
    expected = f"error: no space left in {mount / 'data'}; free some or choose another --data-dir"
    assert done.stderr.strip() == expected
