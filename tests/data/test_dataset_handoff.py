"""A dataset version's files offered by the step that registered it are taken by the next step on the same
machine only when every file it needs is there with the size the version records; the folder keeps a bounded
number of recent versions."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from asteroid import dataset_handoff


@pytest.fixture(autouse=True)
def handoff_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "handoff"
    monkeypatch.setenv(dataset_handoff.ROOT_ENV, str(root))
    return root


def written(path: Path, content: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)
    return path


def test_offered_files_are_moved_and_taken_with_their_sizes(tmp_path: Path) -> None:
    raw = written(tmp_path / "work" / "raw.parquet", b"x" * 100)
    split = written(tmp_path / "work" / "split" / "train.parquet", b"y" * 7)
    folder = dataset_handoff.offer("v1", {"raw.parquet": raw, "split/train.parquet": split})
    assert folder is not None and not raw.exists()  # moved, not copied
    assert (folder / "split" / "train.parquet").read_bytes() == b"y" * 7
    assert dataset_handoff.take("v1", {"raw.parquet": 100, "split/train.parquet": 7}) == folder
    assert dataset_handoff.take("v1", {"split/train.parquet": 7}) == folder  # a folder of the version


@pytest.mark.parametrize(
    "sizes",
    [
        {"raw.parquet": 99},  # another size than the version records
        {"raw.parquet": 100, "other.parquet": 1},  # a file the offer did not hold (e.g. a parent's)
        {"raw.parquet": None},  # a size the version does not record
        {},  # nothing asked for
    ],
)
def test_a_folder_that_does_not_match_the_version_is_not_taken(tmp_path: Path, sizes: dict) -> None:
    dataset_handoff.offer("v1", {"raw.parquet": written(tmp_path / "raw.parquet", b"x" * 100)})
    assert dataset_handoff.take("v1", sizes) is None


def test_an_unknown_version_is_not_taken() -> None:
    assert dataset_handoff.take("never-offered", {"raw.parquet": 1}) is None


def test_a_version_offered_twice_keeps_its_first_files(tmp_path: Path) -> None:
    first = dataset_handoff.offer("v1", {"a": written(tmp_path / "one", b"1")})
    again = written(tmp_path / "two", b"22")
    assert dataset_handoff.offer("v1", {"a": again}) is None
    assert again.exists() and first is not None and (first / "a").read_bytes() == b"1"


def test_a_failed_offer_leaves_nothing_to_take(tmp_path: Path, handoff_root: Path) -> None:
    assert dataset_handoff.offer("v1", {"a": tmp_path / "missing"}) is None
    assert dataset_handoff.take("v1", {"a": 0}) is None
    assert list(handoff_root.iterdir()) == []  # no partial folder left behind


def test_the_folder_keeps_the_newest_versions_and_none_too_old(tmp_path: Path, handoff_root: Path) -> None:
    now = 1_000_000.0
    for number in range(dataset_handoff.KEPT_VERSIONS + 2):  # each offer prunes what is beyond the limits
        source = written(tmp_path / f"f{number}", b"1")
        folder = dataset_handoff.offer(f"v{number}", {"a": source}, lambda at=now + number: at)
        assert folder is not None
        os.utime(folder, (now + number, now + number))
    kept = sorted(path.name for path in handoff_root.iterdir())
    assert kept == [f"v{number}" for number in range(2, dataset_handoff.KEPT_VERSIONS + 2)]
    assert dataset_handoff.prune(lambda: now + 10) == []
    later = now + 10 + dataset_handoff.MAX_AGE_S
    assert dataset_handoff.prune(lambda: later) == kept  # all older than the age limit by then
    assert list(handoff_root.iterdir()) == []
