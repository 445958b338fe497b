"""A split as it travels between pipeline steps: a directory of train.parquet, val.parquet, test.parquet
(features, label, group) and feature_spec.json (names, sizes, bucket edges and training fractions per
feature). A split an earlier release wrote as CSV files reads the same."""

from __future__ import annotations

import json
from pathlib import Path

from asteroid import dataset_files, feature_stats, schema
from asteroid.splitting import SPLIT_NAMES, Split, SplitPart

FEATURE_SPEC_FILE = "feature_spec.json"


def part_path(directory: Path, name: str) -> Path:
    return directory / f"{name}.parquet"


def save_split(split: Split, directory: str | Path, n_buckets: int = feature_stats.DEFAULT_BUCKETS) -> Path:
    """Write train.parquet, val.parquet, test.parquet (features + label + group) and feature_spec.json."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    for name, part in split.parts().items():
        dataset_files.write_table(part.to_frame(), part_path(directory, name))
    spec = {
        "feature_names": list(split.feature_names),
        "label": schema.LABEL_NAME,
        "group": schema.GROUP_NAME,
        "seed": split.seed,
        "rows": {name: len(part) for name, part in split.parts().items()},
        "positives": {name: part.positives for name, part in split.parts().items()},
        "bucket_edges": feature_stats.bucket_edges(split.train.features, n_buckets),
        # The drift reference: training fraction per served bucket (edges as served, then +Inf).
        "bucket_fractions": {
            name: reference["fractions"]
            for name, reference in feature_stats.training_reference(split.train.features, n_buckets).items()
        },
    }
    (directory / FEATURE_SPEC_FILE).write_text(json.dumps(spec, indent=2) + "\n", encoding="utf-8")
    return directory


def load_feature_spec(directory: str | Path) -> dict:
    """The feature_spec.json written by `save_split`."""
    path = Path(directory) / FEATURE_SPEC_FILE
    if not path.is_file():
        raise FileNotFoundError(f"no {FEATURE_SPEC_FILE} in {directory}: not a saved split")
    return json.loads(path.read_text(encoding="utf-8"))


def load_split(directory: str | Path) -> Split:
    """Read a split written by `save_split`, checking it against its feature_spec.json."""
    directory = Path(directory)
    spec = load_feature_spec(directory)
    names = list(spec["feature_names"])
    parts = {}
    for split_name in SPLIT_NAMES:
        frame = dataset_files.read_table(part_path(directory, split_name))
        expected = [*names, spec["label"], spec["group"]]
        if list(frame.columns) != expected:
            raise ValueError(f"{split_name} columns {list(frame.columns)} differ from the spec {expected}")
        if len(frame) != spec["rows"][split_name]:
            raise ValueError(f"{split_name} has {len(frame)} rows, spec says {spec['rows'][split_name]}")
        parts[split_name] = SplitPart(
            frame[names].astype("float64"),
            frame[spec["label"]].astype("int64"),
            frame[spec["group"]].astype("int64"),
        )
    return Split(parts["train"], parts["val"], parts["test"], names, spec.get("seed"))
