"""The state layer on its own (a real SQLite store, no HTTP): the status transition table, publish, archive,
the project-id check and the cascades between collections."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from clearml_local.auth_tokens import Identity
from clearml_local.errors import (
    InvalidProjectId,
    InvalidTaskStatus,
    ModelIsPublished,
    NotEmpty,
    TaskCannotBeDeleted,
)
from clearml_local.state import State
from clearml_local.state.tasks import TRANSITIONS
from clearml_local.storage import Store


@pytest.fixture
def state(tmp_path: Path) -> Iterator[State]:
    store = Store(tmp_path / "state.sqlite")
    try:
        yield State(store, Identity("u", "User", "c", "Company"), worker="host:1")
    finally:
        store.close()


def new_task(state: State, **fields: object) -> str:
    return state.tasks.create({"name": "t", "type": "training", **fields})


def status(state: State, task_id: str) -> str:
    return str(state.tasks.view(task_id)["status"])


@pytest.mark.parametrize("action", sorted(TRANSITIONS))
def test_every_transition_is_refused_from_a_status_it_does_not_allow_unless_forced(
    state: State, action: str
) -> None:
    task_id = new_task(state)
    disallowed = sorted(
        {"created", "queued", "in_progress", "completed", "published"} - TRANSITIONS[action].allowed_from
    )
    if not disallowed:
        pytest.skip(f"{action} is allowed from every status")
    state.store.put("tasks", {**state.tasks.view(task_id), "status": disallowed[0]})

    def run(force: bool) -> None:
        if action in ("started", "completed", "failed", "stopped", "closed"):
            state.tasks.transition(task_id, action, force)
        elif action == "enqueue":
            state.tasks.enqueue(task_id, None, "q", force)
        else:
            getattr(state.tasks, action)(task_id, force)

    with pytest.raises(InvalidTaskStatus):
        run(force=False)
    assert status(state, task_id) == disallowed[0]
    run(force=True)
    assert status(state, task_id) == TRANSITIONS[action].target


def test_enqueue_then_start_keeps_the_queue_it_ran_from_and_empties_the_queue(state: State) -> None:
    task_id = new_task(state)
    state.tasks.enqueue(task_id, None, "agents", force=False)
    queue = state.queues.find("agents")
    assert queue is not None and [e["task"] for e in queue["entries"]] == [task_id]
    entry, _ = state.queues.next_task(queue["id"]) or (None, None)
    assert entry is not None and entry["task"] == task_id
    state.tasks.transition(task_id, "started")
    task = state.tasks.view(task_id)
    assert (task["status"], task["execution"]["queue"], task["last_worker"]) == (
        "in_progress",
        queue["id"],
        "host:1",
    )
    assert state.queues.next_task(queue["id"]) is None


def test_publishing_a_task_publishes_its_output_models(state: State) -> None:
    task_id = new_task(state)
    model_id = state.models.create({"name": "m", "uri": "http://f/m.bin", "task": task_id})
    state.tasks.set_model(task_id, "output", "m", model_id)
    state.tasks.transition(task_id, "completed")
    state.tasks.publish(task_id)
    assert status(state, task_id) == "published"
    assert state.models.view(model_id)["ready"] is True
    state.models.edit(model_id, {"tags": ["winner"], "uri": "http://f/m2.bin"})  # the real server allows it


def test_model_publish_publishes_a_finished_task_once(state: State) -> None:
    task_id = new_task(state)
    model_id = state.models.create({"name": "m", "uri": "http://f/m.bin", "task": task_id})
    state.tasks.transition(task_id, "stopped")
    reply = state.models.publish(model_id, publish_task=True)
    assert reply["published_task"]["id"] == task_id
    assert status(state, task_id) == "published"
    running = new_task(state)
    other = state.models.create({"name": "m2", "uri": "http://f/m2.bin", "task": running})
    state.tasks.transition(running, "started")
    with pytest.raises(InvalidTaskStatus):
        state.models.publish(other, publish_task=True)  # the real server refuses to publish a running task
    assert (status(state, running), state.models.view(other)["ready"]) == ("in_progress", False)
    assert "published_task" not in state.models.publish(other, publish_task=False)
    with pytest.raises(ModelIsPublished):
        state.models.publish(other, publish_task=False)  # once


def test_archive_is_one_system_tag_for_every_collection(state: State) -> None:
    task_id = new_task(state, system_tags=["pipeline"])
    model_id = state.models.create({"name": "m", "uri": "http://f/m.bin"})
    for backend, doc_id in ((state.tasks, task_id), (state.models, model_id)):
        backend.set_archived(doc_id, True)
        backend.set_archived(doc_id, True)
        assert backend.view(doc_id)["system_tags"].count("archived") == 1
        backend.set_archived(doc_id, False)
        assert "archived" not in backend.view(doc_id)["system_tags"]
    assert state.tasks.view(task_id)["system_tags"] == ["pipeline"]


def test_the_project_id_check_is_shared_by_tasks_and_models(state: State) -> None:
    with pytest.raises(InvalidProjectId):
        new_task(state, project="0" * 32)
    with pytest.raises(InvalidProjectId):
        state.models.create({"name": "m", "uri": "u", "project": "0" * 32})
    assert state.tasks.all() == [] and state.models.all() == []


def test_deleting_a_project_with_its_contents_counts_what_it_deleted(state: State) -> None:
    project = state.projects.ensure("top/sub")
    parent = state.projects.find("top")
    assert parent is not None
    tasks = [new_task(state, project=project) for _ in range(3)]
    model = state.models.create({"name": "m", "uri": "u", "project": project, "task": tasks[0]})
    state.tasks.set_model(tasks[0], "output", "m", model)
    for delete_contents in (False, True):
        with pytest.raises(NotEmpty):
            state.projects.delete(parent["id"], force=False, delete_contents=delete_contents)

    reply = state.projects.delete(parent["id"], force=True, delete_contents=True)

    assert {k: v for k, v in reply.items() if k != "urls"} == {
        "deleted": 2,
        "disassociated_tasks": 0,
        "deleted_tasks": 3,
        "deleted_models": 1,
    }
    assert reply["urls"]["model_urls"] == ["u"]
    assert state.tasks.all() == [] and state.models.all() == [] and state.projects.all() == []


def test_deleting_a_project_by_force_keeps_its_tasks_without_a_project(state: State) -> None:
    project = state.projects.ensure("kept")
    task_id = new_task(state, project=project)
    reply = state.projects.delete(project, force=True, delete_contents=False)
    assert (reply["deleted_tasks"], reply["disassociated_tasks"]) == (0, 1)
    assert state.tasks.view(task_id)["project"] is None


def test_deleting_a_task_cascades_to_queue_events_models_and_children(state: State) -> None:
    task_id = new_task(state)
    child = new_task(state, parent=task_id)
    draft = state.models.create({"name": "draft", "uri": "u", "task": task_id})
    published = state.models.create({"name": "published", "uri": "p", "task": task_id, "ready": True})
    state.tasks.enqueue(task_id, None, "q", force=False)
    state.events.add_batch([{"type": "log", "task": task_id, "msg": "hello"}])
    with pytest.raises(TaskCannotBeDeleted):
        state.tasks.delete(task_id, force=False)  # queued, with a published model

    reply = state.tasks.delete(task_id, force=True, return_file_urls=True)

    assert (reply["updated_children"], reply["updated_models"], reply["deleted_models"]) == (1, 1, 1)
    assert (reply["events"]["deleted"], reply["urls"]["model_urls"]) == (1, ["u"])
    queue = state.queues.find("q")
    assert queue is not None and queue["entries"] == []
    assert state.tasks.view(child)["parent"] is None
    assert state.models.view(published)["task"] is None and not state.models.exists(draft)


def test_project_summaries_cover_its_subprojects_only(state: State) -> None:
    inside, outside = state.projects.ensure("p/sub"), state.projects.ensure("q")
    params = {"General": {"lr": {"section": "General", "name": "lr", "value": "0.1"}}}
    for project, metric in ((inside, "loss"), (outside, "other")):
        task_id = new_task(state, project=project, hyperparams=params if project == inside else {})
        state.events.add_batch(
            [
                {
                    "type": "training_stats_scalar",
                    "task": task_id,
                    "metric": metric,
                    "variant": "v",
                    "value": 1.0,
                }
            ]
        )
    parent = state.projects.find("p")
    assert parent is not None
    assert [m["metric"] for m in state.projects.metric_variants(parent["id"])] == ["loss"]
    assert state.projects.hyper_parameter_names(parent["id"]) == [{"section": "General", "name": "lr"}]
    assert len(state.projects.metric_variants(None)) == 2
