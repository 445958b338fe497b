"""Flow b: a dataset, its upload to the file server, a child dataset with lineage, and listing.

Usage: python flow_b_datasets.py PROJECT. Prints a JSON summary as its last line.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import tempfile
from pathlib import Path

from clearml import Dataset


def digests(folder: Path) -> dict[str, str]:
    """sha256 of every file under ``folder``, keyed by its relative path."""
    return {
        str(path.relative_to(folder)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(folder.rglob("*"))
        if path.is_file()
    }


def make_files(folder: Path, names: list[str]) -> dict[str, str]:
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        (folder / name).write_bytes(os.urandom(2048) + name.encode())
    return digests(folder)


def main(project: str) -> None:
    workdir = Path(tempfile.mkdtemp())
    parent_files = make_files(workdir / "raw", ["a.csv", "b.bin"])
    parent = Dataset.create(dataset_name="raw", dataset_project=project)
    parent.add_files(str(workdir / "raw"))
    parent.finalize(auto_upload=True)

    fetched = Dataset.get(dataset_name="raw", dataset_project=project)
    fetched_files = digests(Path(fetched.get_local_copy()))

    child_files = make_files(workdir / "extra", ["c.txt"])
    child = Dataset.create(dataset_name="derived", dataset_project=project, parent_datasets=[fetched.id])
    child.add_files(str(workdir / "extra"))
    child.finalize(auto_upload=True)

    derived = Dataset.get(dataset_name="derived", dataset_project=project)
    summary = {
        "parent_id": parent.id,
        "child_id": child.id,
        "parent_files": parent_files,
        "fetched_id": fetched.id,
        "fetched_files": fetched_files,
        "child_files": child_files,
        "derived_id": derived.id,
        "derived_graph": derived.get_dependency_graph(),
        "derived_list": sorted(derived.list_files()),
        "derived_local": digests(Path(derived.get_local_copy())),
        "listed": sorted(d["id"] for d in Dataset.list_datasets(dataset_project=project)),
    }
    print(json.dumps(summary))


if __name__ == "__main__":
    main(sys.argv[1])
