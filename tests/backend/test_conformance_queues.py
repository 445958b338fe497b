"""Queues as the real clearml-server answers them: what leaving a queue does to a task, hidden queues,
entry limits and the error codes the SDK and agents see."""

from __future__ import annotations

from tests.backend.backend_harness import BackendHarness, Mark
from tests.backend.conformance import (
    assert_replies_match_the_schema,
    codes,
    entries,
    ids,
    new_queue,
    new_task,
    task,
    unique,
)


def queued(backend: BackendHarness, queue: str, count: int = 1) -> list[str]:
    task_ids = [new_task(backend) for _ in range(count)]
    for task_id in task_ids:
        backend.call("tasks.enqueue", {"task": task_id, "queue": queue})
    return task_ids


def test_remove_task_changes_the_task_status_only_when_asked(backend: BackendHarness, mark: Mark) -> None:
    queue = new_queue(backend)
    kept, returned = queued(backend, queue, 2)

    assert backend.call("queues.remove_task", {"queue": queue, "task": kept})["removed"] == 1
    body = {"queue": queue, "task": returned, "update_task_status": True}
    assert backend.call("queues.remove_task", body)["removed"] == 1

    assert (task(backend, kept)["status"], task(backend, kept)["execution"]["queue"]) == ("queued", queue)
    assert (task(backend, returned)["status"], task(backend, returned)["execution"]["queue"]) == (
        "created",
        None,
    )
    assert codes(backend, "queues.remove_task", {"queue": queue, "task": kept}) == (400, 703)
    assert_replies_match_the_schema(backend, mark)


def test_add_task_points_the_task_at_the_queue_once(backend: BackendHarness) -> None:
    first, second = new_queue(backend), new_queue(backend)
    (task_id,) = queued(backend, first)
    backend.call("queues.remove_task", {"queue": first, "task": task_id})

    assert backend.call("queues.add_task", {"queue": second, "task": task_id})["added"] == 1

    assert (entries(backend, second), task(backend, task_id)["execution"]["queue"]) == ([task_id], second)
    assert codes(backend, "queues.add_task", {"queue": second, "task": task_id}) == (400, 706)


def test_clearing_or_deleting_a_queue_returns_its_tasks_to_created(backend: BackendHarness) -> None:
    cleared, deleted = new_queue(backend), new_queue(backend)
    in_cleared, in_deleted = queued(backend, cleared, 2), queued(backend, deleted)

    assert backend.call("queues.clear_queue", {"queue": cleared})["removed_tasks"] == in_cleared
    assert codes(backend, "queues.delete", {"queue": deleted}) == (400, 702)
    backend.call("queues.delete", {"queue": deleted, "force": True})

    assert [task(backend, t)["status"] for t in in_cleared + in_deleted] == ["created"] * 3
    assert entries(backend, cleared) == []
    assert backend.call("queues.clear_queue", {"queue": cleared})["removed_tasks"] == []


def test_queue_name_is_unique(backend: BackendHarness) -> None:
    name = unique("queue")
    backend.call("queues.create", {"name": name})
    assert codes(backend, "queues.create", {"name": name}) == (400, 801)


def test_hidden_queues_only_when_asked_for(backend: BackendHarness) -> None:
    name = unique("glue")
    hidden = new_queue(backend, name=name, system_tags=["k8s-glue"])
    assert hidden not in ids(backend.call("queues.get_all", {})["queues"])
    for query in ({"search_hidden": True}, {"id": [hidden]}, {"name": f"^{name}$"}):
        assert hidden in ids(backend.call("queues.get_all", query)["queues"])


def test_max_task_entries_and_entry_names(backend: BackendHarness, mark: Mark) -> None:
    queue = new_queue(backend, display_name="Shown")
    task_ids = queued(backend, queue, 3)
    body = {"id": [queue], "max_task_entries": 2}
    (limited,) = backend.call("queues.get_all", body)["queues"]
    assert [e["task"] for e in limited["entries"]] == task_ids[:2]
    (detailed,) = backend.call("queues.get_all_ex", body)["queues"]
    assert [e["task"]["id"] for e in detailed["entries"]] == task_ids[:2]
    assert detailed["entries"][0]["task"]["name"] == task(backend, task_ids[0])["name"]
    assert detailed["display_name"] == "Shown"
    assert_replies_match_the_schema(backend, mark)


def test_dequeue_keeps_the_queue_the_task_ran_from(backend: BackendHarness) -> None:
    """clearml-agent dequeues each task it runs with ``new_status=in_progress``; the task must still name its
    queue (the pipeline controller and ``Task.get_task(...).data.execution.queue`` read it)."""
    queue = new_queue(backend)
    (task_id,) = queued(backend, queue)
    backend.call("tasks.dequeue", {"task": task_id, "new_status": "in_progress"})
    assert (task(backend, task_id)["status"], task(backend, task_id)["execution"]["queue"]) == (
        "in_progress",
        queue,
    )
    assert entries(backend, queue) == []
