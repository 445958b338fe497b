"""The dataset trigger with ClearML's real TriggerScheduler against the embedded backend: a new raw dataset
version launches once (the launcher a fake), another dataset's version not at all, a further raw version
within the cooldown is audited as suppressed."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.backend.backend_harness import BackendHarness

FLOW_HELPERS = {"PYTHONPATH": str(Path(__file__).parents[1] / "backend" / "flows")}
FLOW = Path(__file__).parent / "flows" / "dataset_trigger_flow.py"
pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_a_new_raw_dataset_version_launches_the_pipeline_once(
    backend: BackendHarness, tmp_path: Path
) -> None:
    result_file = tmp_path / "result.json"
    backend.run(FLOW, str(result_file), timeout=400, extra_env=FLOW_HELPERS)
    result = json.loads(result_file.read_text())

    assert result["launches"] == ["retrain-1"]
    assert result["decisions"] == [
        [f"dataset:{result['new']}", "launched"],
        [f"dataset:{result['within_cooldown']}", "cooldown"],
    ]
    trigger = backend.call("tasks.get_by_id", {"task": result["trigger"]})["task"]
    assert trigger["name"] == "asteroid retrain trigger"
