"""The queries TriggerScheduler polls with (raw HTTP): dataset versions by the SDK's old and new time filter
forms, with the ``task_types`` key the real server ignores; models carrying ``last_change``."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from tests.backend.backend_harness import BackendHarness


@pytest.fixture(scope="module")
def dataset_version(backend: BackendHarness) -> tuple[str, str, str]:
    """(project, completed dataset task, an ISO time before it)."""
    before = (dt.datetime.now(dt.UTC) - dt.timedelta(seconds=5)).isoformat()
    project = backend.call("projects.create", {"name": "p/.datasets/rows", "description": ""})["id"]
    body = {"name": "v1", "type": "data_processing", "project": project, "system_tags": ["dataset"]}
    task = backend.call("tasks.create", body)["id"]
    backend.call("tasks.started", {"task": task})
    backend.call("tasks.completed", {"task": task})
    return project, task, before


def dataset_query(project: str, condition: dict[str, Any]) -> dict[str, Any]:
    return {"project": [project], "system_tags": ["dataset"], "task_types": ["data_processing"],
            "status": ["completed"], "_allow_extra_fields_": True, **condition}  # fmt: skip


@pytest.mark.parametrize("form", ["last_update", "_or_"])
def test_a_dataset_trigger_query_finds_a_new_version(
    backend: BackendHarness, dataset_version: tuple[str, str, str], form: str
) -> None:
    project, task, before = dataset_version
    after = dt.datetime.now(dt.UTC).isoformat()

    def found(since: str) -> list[str]:
        condition: dict[str, Any] = (
            {"last_update": f">{since}"}
            if form == "last_update"
            else {"_or_": {"fields": ["last_update", "last_change"], "datetime": [f">{since}"]}}
        )
        return [t["id"] for t in backend.call("tasks.get_all", dataset_query(project, condition))["tasks"]]

    assert found(before) == [task]
    assert found(after) == []


def test_models_carry_last_change_for_the_model_trigger(backend: BackendHarness) -> None:
    model = backend.call("models.create", {"name": "m", "uri": "file:///m.bin"})["id"]

    found = backend.call(
        "models.get_all", {"id": [model], "only_fields": ["id", "last_update", "last_change"]}
    )

    assert found["models"][0]["last_change"] == found["models"][0]["last_update"]
