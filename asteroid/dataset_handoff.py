"""Dataset files a step has just registered, handed to the next step on the same machine without a download.

A step that uploads a dataset version offers the files it wrote (`offer`): they are moved, not copied, into a
folder of this machine named after the version. A later step asking for that version's files
(`tracking.dataset_copy`) takes them from there when every file it needs is present with the size the version
records (`take`), and downloads the version otherwise, as on an agent on another machine. A version's files
never change once it is finalized, so the folder is as good as the SDK's own cache, and it costs no transfer:
measured at a million rows, the raw version's 200 MB went up to the file server and straight back down.

The folder keeps the `KEPT_VERSIONS` newest versions offered (a pipeline run offers two) and none older than
`MAX_AGE_S`; what it no longer holds is downloaded.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
import uuid
from collections.abc import Callable, Mapping
from pathlib import Path

ROOT_ENV = "ASTEROID_HANDOFF_DIR"  # default: <temporary directory>/asteroid-dataset-handoff
KEPT_VERSIONS = 4
MAX_AGE_S = 3600.0
_PARTIAL = ".partial-"  # an offer being written: never taken, removed by the next offer's pruning when stale


def root() -> Path:
    return Path(os.environ.get(ROOT_ENV) or Path(tempfile.gettempdir()) / "asteroid-dataset-handoff")


def offer(dataset_id: str, files: Mapping[str, Path], clock: Callable[[], float] = time.time) -> Path | None:
    """Move `files` (path in the version -> local file) into the version's folder; the folder, or None when
    it was already offered (the files are left where they are). Older offers beyond the limits are removed."""
    base = root()
    base.mkdir(parents=True, exist_ok=True)
    target = base / dataset_id
    if target.exists():
        return None
    partial = base / f"{_PARTIAL}{dataset_id}-{uuid.uuid4().hex}"
    try:
        for name, source in files.items():
            destination = partial / name
            destination.parent.mkdir(parents=True, exist_ok=True)
            _move(Path(source), destination)
        os.rename(partial, target)
    except OSError:
        shutil.rmtree(partial, ignore_errors=True)
        return None
    prune(clock)
    return target


def _move(source: Path, destination: Path) -> None:
    try:
        os.replace(source, destination)
    except OSError:  # another file system
        shutil.copyfile(source, destination)


def take(dataset_id: str, sizes: Mapping[str, int | None]) -> Path | None:
    """The version's folder if it holds every file of `sizes` (path in the version -> size in bytes) with
    that size; None otherwise (then the caller downloads the version)."""
    folder = root() / dataset_id
    if not sizes or not folder.is_dir():
        return None
    for name, size in sizes.items():
        path = folder / name
        if size is None or not path.is_file() or path.stat().st_size != size:
            return None
    return folder


def prune(clock: Callable[[], float] = time.time) -> list[str]:
    """Remove the offers beyond the `KEPT_VERSIONS` newest, and any older than `MAX_AGE_S`; their names."""
    base = root()
    if not base.is_dir():
        return []
    entries = sorted(base.iterdir(), key=_modified, reverse=True)
    now = clock()
    complete = [entry for entry in entries if not entry.name.startswith(_PARTIAL)]
    stale = [entry for entry in entries if now - _modified(entry) > MAX_AGE_S]
    removed = []
    for entry in {*complete[KEPT_VERSIONS:], *stale}:
        shutil.rmtree(entry, ignore_errors=True)
        removed.append(entry.name)
    return sorted(removed)


def _modified(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:
        return 0.0
