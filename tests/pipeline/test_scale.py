"""The pipeline on 200,000 generated rows: it completes, and no process of it holds more than the memory bound
(a fact about the code, whatever the machine's speed: no time is asserted)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import global_config
from asteroid import sample_data
from tests.backend.backend_harness import BackendHarness

pytestmark = [pytest.mark.integration, pytest.mark.slow]
ROWS = 200_000
# The aim is 2 GB for a million rows; 200,000 rows must stay well inside it.
PEAK_RSS_BOUND_MB = 2048


def test_pipeline_of_200k_rows_completes_within_the_memory_bound(
    backend: BackendHarness, project_env: dict[str, str], tmp_path: Path
) -> None:
    source = sample_data.write_sample_csv(tmp_path / "rows.csv", n_rows=ROWS, seed=11)
    result = backend.run(
        global_config.ROOT / "pipeline.py",
        "--seeds",
        "1",
        "--source-csv",
        str(source),
        extra_env=project_env,
        timeout=1200,
    )
    assert f"loaded {ROWS} into" in result.stdout
    summary = json.loads((Path(project_env["ASTEROID_RUNS_DIR"]) / "latest" / "summary.json").read_text())
    assert sum(summary["rows_per_split"].values()) == ROWS
    peaks = {name: step["peak_rss_mb"] for name, step in summary["timeline"].items() if name != "select_best"}
    peaks["controller (and the load)"] = summary["controller_peak_rss_mb"]
    assert set(peaks) == {"get_data", "preprocessing", "training", "controller (and the load)"}
    assert all(0 < peak < PEAK_RSS_BOUND_MB for peak in peaks.values()), peaks
