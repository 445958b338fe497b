"""Models as the real clearml-server answers them: created ready unless told otherwise, published once,
deleted under the real rules (and the codes Task.delete in the SDK relies on), output models of tasks."""

from __future__ import annotations

from tests.backend.backend_harness import BackendHarness, Mark
from tests.backend.conformance import (
    assert_replies_match_the_schema,
    codes,
    ids,
    new_model,
    new_project,
    new_task,
    task,
)


def model(backend: BackendHarness, model_id: str) -> dict[str, object]:
    return dict(backend.call("models.get_by_id", {"model": model_id})["model"])


def running(backend: BackendHarness, **fields: object) -> str:
    task_id = new_task(backend, **fields)
    backend.call("tasks.started", {"task": task_id})
    return task_id


def test_create_is_ready_by_default_and_takes_metadata_as_an_object(backend: BackendHarness) -> None:
    metadata = {"epochs": {"key": "epochs", "type": "int", "value": "3"}}
    created = model(backend, new_model(backend, metadata=metadata))
    assert created["ready"] is True and created["metadata"]["epochs"]["value"] == "3"
    assert model(backend, new_model(backend, ready=False))["ready"] is False
    assert codes(backend, "models.create", {"name": "m", "uri": "u", "metadata": {"k": 5}}) == (400, 12)


def test_a_deleted_model_is_an_invalid_model_id(backend: BackendHarness) -> None:
    model_id = new_model(backend)
    assert backend.call("models.delete", {"model": model_id})["deleted"] is True
    assert codes(backend, "models.get_by_id", {"model": model_id}) == (400, 201)
    assert codes(backend, "models.delete", {"model": model_id}) == (400, 201)  # the SDK's "already deleted"


def test_delete_rules_of_models_in_use_or_of_published_tasks(backend: BackendHarness) -> None:
    used = new_model(backend)
    user = new_task(backend, models={"input": [{"name": "in", "model": used}]})
    assert codes(backend, "models.delete", {"model": used}) == (400, 205)
    backend.call("models.delete", {"model": used, "force": True})
    assert task(backend, user)["models"]["input"][0]["model"] == f"__DELETED__{used}"

    maker = running(backend)
    output = backend.call("models.update_for_task", {"task": maker, "uri": "file:///o.bin"})["id"]
    backend.call("tasks.stopped", {"task": maker})
    backend.call("tasks.publish", {"task": maker, "publish_model": False})
    assert codes(backend, "models.delete", {"model": output}) == (400, 206)
    backend.call("models.delete", {"model": output, "force": True})
    assert task(backend, maker)["models"]["output"][0]["model"] == f"__DELETED__{output}"


def test_publishing_a_model_publishes_its_task_only_when_it_may(backend: BackendHarness, mark: Mark) -> None:
    task_id = running(backend)
    output = backend.call("models.update_for_task", {"task": task_id, "uri": "file:///p.bin"})["id"]
    assert codes(backend, "models.set_ready", {"model": output}) == (400, 110)  # the task is running
    assert model(backend, output)["ready"] is False
    reply = backend.call("models.set_ready", {"model": output, "force_publish_task": True})
    assert reply["published_task"]["id"] == task_id and task(backend, task_id)["status"] == "published"
    assert codes(backend, "models.set_ready", {"model": output}) == (400, 203)

    other = running(backend)
    draft = backend.call("models.update_for_task", {"task": other, "uri": "file:///q.bin"})["id"]
    assert "published_task" not in backend.call("models.set_ready", {"model": draft, "publish_task": False})
    assert_replies_match_the_schema(backend, mark)


def test_update_for_task_keeps_the_iteration_and_updates_the_last_output_model(
    backend: BackendHarness,
) -> None:
    project = new_project(backend)
    task_id = new_task(backend, project=project, execution={"framework": "xgboost"})
    first = backend.call(
        "models.update_for_task", {"task": task_id, "uri": "file:///1.bin", "iteration": 999}
    )
    assert first["created"] is True and task(backend, task_id)["last_iteration"] == 999
    again = backend.call("models.update_for_task", {"task": task_id, "uri": "file:///2.bin", "iteration": 5})
    assert (again["id"], again["created"]) == (first["id"], False)
    assert (task(backend, task_id)["last_iteration"], model(backend, first["id"])["uri"]) == (
        999,
        "file:///2.bin",
    )
    assert backend.call("models.get_frameworks", {"projects": [project]})["frameworks"] == ["xgboost"]
    assert codes(backend, "models.update_for_task", {"task": task_id})[0] == 400  # uri or override needed


def test_models_update_with_a_task_raises_its_iteration(backend: BackendHarness) -> None:
    task_id, model_id = new_task(backend), new_model(backend)
    backend.call("models.update", {"model": model_id, "task": task_id, "iteration": 1000})
    backend.call("models.update", {"model": model_id, "task": task_id, "iteration": 500})
    assert task(backend, task_id)["last_iteration"] == 1000


def test_stats_tags_and_joins_of_get_all_ex(backend: BackendHarness) -> None:
    project = new_project(backend)
    model_id = new_model(backend, project=project, labels={"a": 0, "b": 1}, tags=["old"])
    backend.call("models.update_tags", {"ids": [model_id], "add_tags": ["new"], "remove_tags": ["old"]})
    (found,) = backend.call("models.get_all_ex", {"id": [model_id], "include_stats": True})["models"]
    assert (found["stats"], found["tags"], found["project"]) == (
        {"labels_count": 2},
        ["new"],
        {"id": project},
    )
    assert ids(backend.call("models.get_all", {"id": model_id})["models"]) == [model_id]
