"""Task life cycle, deletion, cloning and editing as the real clearml-server answers them."""

from __future__ import annotations

import time

from tests.backend.backend_harness import BackendHarness, Mark, wait_for
from tests.backend.conformance import (
    assert_replies_match_the_schema,
    codes,
    entries,
    new_model,
    new_project,
    new_queue,
    new_task,
    task,
    unique,
)


def running(backend: BackendHarness, **fields: object) -> str:
    task_id = new_task(backend, **fields)
    backend.call("tasks.started", {"task": task_id})
    return task_id


def test_stop_without_a_live_worker_stops_the_task(backend: BackendHarness, mark: Mark) -> None:
    for fields in ({}, {"system_tags": ["development"]}):
        task_id = running(backend, **fields)
        assert backend.call("tasks.stop", {"task": task_id})["fields"]["status"] == "stopped"
        assert task(backend, task_id)["status"] == "stopped"
    assert_replies_match_the_schema(backend, mark)


def test_stop_of_a_task_a_worker_reports_only_asks_it_to_stop(backend: BackendHarness) -> None:
    task_id = running(backend)
    worker = unique("worker")
    backend.call("workers.register", {"worker": worker})
    backend.call("workers.status_report", {"worker": worker, "task": task_id, "timestamp": int(time.time())})

    fields = backend.call("tasks.stop", {"task": task_id})["fields"]

    assert (fields["status"], fields["status_message"]) == ("in_progress", "stopping")
    assert task(backend, task_id)["last_worker"] == worker


def test_stop_of_a_queued_task_takes_it_out_of_its_queue(backend: BackendHarness) -> None:
    queue = new_queue(backend)
    task_id = new_task(backend)
    backend.call("tasks.enqueue", {"task": task_id, "queue": queue})
    assert backend.call("tasks.stop", {"task": task_id})["fields"]["status"] == "stopped"
    assert entries(backend, queue) == []


def test_completed_publishes_when_asked(backend: BackendHarness, mark: Mark) -> None:
    task_id = running(backend)
    reply = backend.call("tasks.completed", {"task": task_id})
    assert (reply["fields"]["status"], reply["published"]) == ("completed", 0)
    reply = backend.call("tasks.completed", {"task": task_id, "publish": True})
    assert (reply["fields"]["status"], reply["published"]) == ("published", 1)
    assert_replies_match_the_schema(backend, mark)


def test_enqueue_drops_the_development_tag_and_dequeue_restores_the_status_before(
    backend: BackendHarness, mark: Mark
) -> None:
    queue = new_queue(backend)
    task_id = running(backend, system_tags=["development"])
    backend.call("tasks.stopped", {"task": task_id})
    backend.call("tasks.enqueue", {"task": task_id, "queue": queue})
    assert task(backend, task_id)["system_tags"] == []

    backend.call("tasks.dequeue", {"task": task_id})

    assert (task(backend, task_id)["status"], entries(backend, queue)) == ("stopped", [])
    assert backend.call("tasks.dequeue", {"task": task_id})["updated"] == 0  # not queued: left as it is
    assert_replies_match_the_schema(backend, mark)


def test_reset_reports_what_it_dequeued_and_the_urls_of_deleted_outputs(
    backend: BackendHarness, mark: Mark
) -> None:
    queue = new_queue(backend)
    task_id = new_task(backend)
    draft = new_model(backend, uri="file:///draft.bin", ready=False, task=task_id)
    published = new_model(backend, uri="file:///published.bin", task=task_id)
    backend.call(
        "tasks.add_or_update_artifacts",
        {"task": task_id, "artifacts": [{"key": "a", "type": "str", "uri": "file:///a.txt"}]},
    )
    backend.call("tasks.enqueue", {"task": task_id, "queue": queue})

    reply = backend.call("tasks.reset", {"task": task_id, "force": True, "return_file_urls": True})

    assert reply["dequeued"] == {"removed": 1}
    assert reply["urls"] == {
        "model_urls": ["file:///draft.bin"],
        "event_urls": [],
        "artifact_urls": ["file:///a.txt"],
    }
    assert codes(backend, "models.get_by_id", {"model": draft}) == (400, 201)
    assert backend.call("models.get_by_id", {"model": published})["model"]["task"] is None
    assert "urls" not in backend.call("tasks.reset", {"task": task_id})
    assert_replies_match_the_schema(backend, mark)


def test_reset_keeps_a_draft_model_another_task_uses(backend: BackendHarness) -> None:
    task_id = running(backend)
    model = backend.call("models.update_for_task", {"task": task_id, "uri": "file:///out.bin"})["id"]
    new_task(backend, models={"input": [{"name": "in", "model": model}]})
    backend.call("tasks.reset", {"task": task_id})
    assert backend.call("models.get_by_id", {"model": model})["model"]["id"] == model


def test_delete_needs_force_unless_draft_or_archived_and_answers_deleted_as_a_boolean(
    backend: BackendHarness, mark: Mark
) -> None:
    draft = new_task(backend)
    reply = backend.call("tasks.delete", {"task": draft})
    assert reply["deleted"] is True and "urls" not in reply

    archived = running(backend, system_tags=["archived"])
    assert backend.call("tasks.delete", {"task": archived})["deleted"] is True

    task_id = running(backend)
    model = new_model(backend, task=task_id)  # published (models.create makes ready models by default)
    assert codes(backend, "tasks.delete", {"task": task_id}) == (400, 123)
    reply = backend.call("tasks.delete", {"task": task_id, "force": True, "return_file_urls": True})
    assert (reply["updated_models"], reply["urls"]["model_urls"]) == (1, [])
    assert backend.call("models.get_by_id", {"model": model})["model"]["task"] is None
    assert_replies_match_the_schema(backend, mark)


def test_delete_with_published_children_needs_force(backend: BackendHarness) -> None:
    parent = new_task(backend)
    child = running(backend, parent=parent)
    backend.call("tasks.stopped", {"task": child})
    backend.call("tasks.publish", {"task": child})
    assert codes(backend, "tasks.delete", {"task": parent}) == (400, 123)
    assert backend.call("tasks.delete", {"task": parent, "force": True})["updated_children"] == 1
    assert task(backend, child)["parent"] is None


def test_clone_makes_the_source_the_parent_and_leaves_development_and_archive_behind(
    backend: BackendHarness,
) -> None:
    source = new_task(backend, system_tags=["development", "archived", "kept"], tags=["t"])
    clone = backend.call(
        "tasks.clone", {"task": source, "execution_overrides": {"model_labels": {"a": 1.0}}}
    )["id"]
    cloned = task(backend, clone)
    assert (cloned["parent"], cloned["system_tags"], cloned["tags"]) == (source, ["kept"], ["t"])
    assert cloned["execution"]["model_labels"] == {"a": 1}

    grandchild = task(backend, backend.call("tasks.clone", {"task": clone})["id"])
    assert grandchild["parent"] == source  # a source that has a parent passes it on


def test_clone_checks_an_overriding_input_model_and_references_when_asked(backend: BackendHarness) -> None:
    source = new_task(backend, models={"input": [{"name": "in", "model": "0" * 32}]})
    backend.call("tasks.clone", {"task": source})  # a dangling reference is copied as it is
    assert codes(backend, "tasks.clone", {"task": source, "validate_references": True}) == (400, 201)
    body = {"task": source, "execution_overrides": {"model": "1" * 32}}
    assert codes(backend, "tasks.clone", body) == (400, 201)
    model = new_model(backend)
    clone = backend.call("tasks.clone", {"task": source, "execution_overrides": {"model": model}})["id"]
    assert [(m["name"], m["model"]) for m in task(backend, clone)["models"]["input"]] == [
        ("Input Model", model)
    ]


def test_archive_dequeues_and_records_the_reason(backend: BackendHarness) -> None:
    queue = new_queue(backend)
    queued, idle = new_task(backend, system_tags=["x"]), new_task(backend)
    backend.call("tasks.enqueue", {"task": queued, "queue": queue})

    backend.call("tasks.archive", {"tasks": [queued, idle], "status_reason": "why", "status_message": "note"})

    for task_id in (queued, idle):
        archived = task(backend, task_id)
        assert ("archived" in archived["system_tags"], archived["status_reason"]) == (True, "why")
        assert archived["status"] == "created"
    assert "x" in task(backend, queued)["system_tags"] and entries(backend, queue) == []


def test_artifacts_are_kept_one_per_key_and_mode_in_key_order(backend: BackendHarness) -> None:
    artifacts = [
        {"key": "b", "type": "int", "uri": "2"},
        {"key": "a", "type": "str", "uri": "1", "mode": "input"},
    ]
    task_id = new_task(backend, execution={"artifacts": artifacts})
    backend.call(
        "tasks.add_or_update_artifacts",
        {"task": task_id, "artifacts": [{"key": "b", "type": "int", "uri": "3"}]},
    )
    stored = task(backend, task_id)["execution"]["artifacts"]
    assert [(a["key"], a["mode"], a["uri"]) for a in stored] == [("a", "input", "1"), ("b", "output", "3")]


def test_parameters_change_only_on_a_draft_task_except_user_properties(backend: BackendHarness) -> None:
    task_id = running(backend)
    params = [{"section": "Args", "name": "lr", "value": "0.1"}]
    assert codes(backend, "tasks.edit_hyper_params", {"task": task_id, "hyperparams": params}) == (400, 110)
    backend.call("tasks.edit_hyper_params", {"task": task_id, "hyperparams": params, "force": True})
    properties = [{"section": "properties", "name": "owner", "value": "me"}]
    backend.call("tasks.edit_hyper_params", {"task": task_id, "hyperparams": properties})
    assert set(task(backend, task_id)["hyperparams"]) == {"Args", "properties"}
    assert codes(
        backend, "tasks.edit_configuration", {"task": task_id, "configuration": [{"name": "c", "value": "1"}]}
    ) == (400, 110)


def test_update_tags_adds_and_removes_on_many_tasks(backend: BackendHarness) -> None:
    first, second = new_task(backend, tags=["old", "keep"]), new_task(backend)
    reply = backend.call(
        "tasks.update_tags", {"ids": [first, second], "add_tags": ["new"], "remove_tags": ["old"]}
    )
    assert reply["updated"] == 2
    assert (task(backend, first)["tags"], task(backend, second)["tags"]) == (["keep", "new"], ["new"])
    assert codes(backend, "tasks.update_tags", {"ids": [first], "add_tags": [5]})[0] == 400
    assert codes(backend, "tasks.update_tags", {"ids": ["0" * 32], "add_tags": ["x"]}) == (400, 101)


def test_task_types_by_project_and_an_unknown_type_refused(backend: BackendHarness) -> None:
    project = new_project(backend)
    new_task(backend, project=project, type="optimizer")
    assert backend.call("tasks.get_types", {"projects": [project]})["types"] == ["optimizer"]
    assert codes(backend, "tasks.create", {"name": "bad", "type": "Unsupported"}) == (400, 12)


def test_ping_touches_last_update(backend: BackendHarness) -> None:
    task_id = new_task(backend)
    before = task(backend, task_id)["last_update"]

    def pinged_later() -> bool:  # stamps are milliseconds: ping until one lands in a later one
        backend.call("tasks.ping", {"task": task_id})
        return bool(task(backend, task_id)["last_update"] > before)

    wait_for(pinged_later, "tasks.ping to change last_update", deadline_s=5)


def test_get_all_ex_joins_the_references_it_is_asked_about(backend: BackendHarness) -> None:
    project = new_project(backend, name=unique("joined"))
    queue = new_queue(backend, display_name="Shown")
    task_id = new_task(backend, project=project)
    backend.call("tasks.enqueue", {"task": task_id, "queue": queue})
    only = ["project.name", "execution.queue.display_name", "name"]
    found = backend.call("tasks.get_all_ex", {"id": [task_id], "only_fields": only})["tasks"][0]
    assert found["project"]["id"] == project and found["project"]["name"].startswith("joined")
    assert found["execution"]["queue"] == {"id": queue, "display_name": "Shown"}
    bare = backend.call("tasks.get_all_ex", {"id": [task_id], "only_fields": ["project"]})["tasks"][0]
    assert bare["project"] == {"id": project}
    assert (
        backend.call("tasks.get_all", {"id": [task_id], "only_fields": ["project"]})["tasks"][0]["project"]
        == project
    )


def test_a_worker_header_at_start_is_no_live_worker(backend: BackendHarness) -> None:
    task_id = new_task(backend)
    started = backend.post("tasks.started", {"task": task_id}, headers={"X-ClearML-Worker": "laptop:1"})
    assert started.status_code == 200 and task(backend, task_id)["last_worker"] == "laptop:1"
    assert backend.call("tasks.stop", {"task": task_id})["fields"]["status"] == "stopped"
