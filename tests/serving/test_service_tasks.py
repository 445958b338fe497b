"""A start marks failed the clearml-serving instance tasks its data directory's earlier parts announced and
left in_progress (serving_local/service_tasks.py), with the SDK's task query replaced by a fake; the real
stack's case is in tests/serving/test_resilience.py (a supervisor killed with SIGKILL, then a new start)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from serving_local.config import StackConfig
from serving_local.service_tasks import (
    abandoned_reason,
    announced_task_ids,
    fail_abandoned,
    fail_abandoned_line,
)

LIVE, DONE, ELSEWHERE = "a" * 32, "b" * 32, "c" * 32


@dataclass
class FakeTask:
    id: str
    status: str
    marked: list[str] = field(default_factory=list)

    def get_status(self) -> str:
        return self.status

    def mark_failed(self, status_reason: str, force: bool) -> None:
        assert force
        self.marked.append(status_reason)
        self.status = "failed"


def config(tmp_path: Path) -> StackConfig:
    return StackConfig(data_dir=tmp_path, service_id="s" * 32, monitoring="off")


def test_the_announced_ids_come_from_the_instance_parts_logs_once_each(tmp_path: Path) -> None:
    stack = config(tmp_path)
    stack.component_log("inference").write_text(
        f"ClearML Task: created new task id={LIVE}\nnoise\n"
        f"ClearML Task: overwriting (reusing) task id={DONE}\nClearML Task: created new task id={LIVE}\n"
    )
    stack.component_log("statistics").write_text(f"ClearML Task: continuing previous task id={DONE}\n")
    stack.component_log("broker").write_text(f"ClearML Task: created new task id={ELSEWHERE}\n")
    assert announced_task_ids(stack) == [LIVE, DONE]


def test_only_the_announced_tasks_still_in_progress_are_marked_failed_with_the_reason(tmp_path: Path) -> None:
    stack = config(tmp_path)
    stack.component_log("inference").write_text(
        f"ClearML Task: created new task id={LIVE}\nClearML Task: created new task id={DONE}\n"
    )
    tasks = {LIVE: FakeTask(LIVE, "in_progress"), DONE: FakeTask(DONE, "completed")}
    asked = []

    def get_tasks(task_ids: list[str], task_filter: dict) -> list[FakeTask]:
        asked.append((task_ids, task_filter))
        return [tasks[task_id] for task_id in task_ids if tasks[task_id].status in task_filter["status"]]

    assert fail_abandoned(stack, get_tasks) == [LIVE]
    assert asked == [([LIVE, DONE], {"status": ["in_progress"]})]
    assert tasks[LIVE].marked == [abandoned_reason(stack)] and tasks[DONE].marked == []
    assert str(tmp_path) in abandoned_reason(stack)
    assert fail_abandoned(stack, get_tasks) == []  # nothing left to mark


def test_a_data_directory_without_logs_asks_the_server_nothing(tmp_path: Path) -> None:
    def get_tasks(**_: object) -> list[FakeTask]:
        raise AssertionError("no announced task: no query")

    assert fail_abandoned(config(tmp_path), get_tasks) == []


def test_the_start_says_what_it_marked_and_a_server_error_is_a_warning_not_a_failed_start(
    tmp_path: Path,
) -> None:
    stack = config(tmp_path)
    stack.component_log("statistics").write_text(f"ClearML Task: created new task id={LIVE}\n")
    task = FakeTask(LIVE, "in_progress")
    line = fail_abandoned_line(stack, lambda **_: [task])
    assert line == f"marked failed the instance tasks a gone stack left in_progress: {LIVE}"
    assert fail_abandoned_line(stack, lambda **_: []) is None

    def unreachable(**_: object) -> list[FakeTask]:
        raise ConnectionError("server gone")

    assert fail_abandoned_line(stack, unreachable) == (
        "warning: could not mark the instance tasks a gone stack left in_progress: server gone"
    )
