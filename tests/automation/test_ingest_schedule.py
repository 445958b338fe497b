"""The ingestion schedule with ClearML's real TaskScheduler against the embedded backend: `get data` runs with
the day's query date, and only a run that finds new data registers a raw dataset version."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from tests.backend.backend_harness import BackendHarness

FLOW_HELPERS = {"PYTHONPATH": str(Path(__file__).parents[1] / "backend" / "flows")}
FLOW = Path(__file__).parent / "flows" / "ingest_schedule_flow.py"
pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_the_schedule_ingests_the_days_data_and_registers_a_version_only_when_it_changed(
    backend: BackendHarness, tmp_path: Path
) -> None:
    result_file = tmp_path / "result.json"
    env = {
        "NEO_DATABASE_URL": f"sqlite:///{tmp_path / 'observations.db'}",
        "ASTEROID_DATA_DIR": str(tmp_path / "data"),  # the generated sample CSV goes there
        "ASTEROID_SAMPLE_ROWS": "300",
        **FLOW_HELPERS,
    }
    backend.run(FLOW, str(result_file), timeout=400, extra_env=env)
    result = json.loads(result_file.read_text())

    assert len(result["versions"]) == 1, result["log"]
    today = time.strftime("%Y-%m-%d", time.gmtime())
    assert result["log"].count(f"-m asteroid.automation ingest --query-date {today}") == 2
    assert result["descriptions"] == [f"NEO observations with close approach <= {today}"]
    assert result["log"].count("registered new dataset") == 1
