"""The ClearML tasks a stack's parts leave behind. clearml-serving's inference app and statistics controller
each create an instance task when they start ("<service> - serve instance", "<service> - statistics
controller"), set ``in_progress``; a part that dies without closing it (SIGKILL, its supervisor's death, a
restart, the statistics controller killed after the stop grace) leaves it ``in_progress`` for good.

At its next start, once its ports are free (so no part of an earlier stack runs), a stack marks ``failed``,
with the reason, every task a part of its data directory announced in its log (the SDK's "ClearML Task:
created new task id=...") that is still ``in_progress``. The service task itself is left alone:
clearml-serving sets it running whenever an inference app starts, and other deployments may serve it too.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from typing import Any

from serving_local.config import StackConfig

INSTANCE_PARTS = ("inference", "statistics")  # the parts that run clearml-serving code, and so create tasks
ANNOUNCEMENT = re.compile(  # the SDK's line for a new, a reused and a continued task
    r"ClearML Task: (?:created new|overwriting \(reusing\)|continuing previous) task id=([0-9a-f]{32})"
)
IN_PROGRESS = "in_progress"

# The SDK's Task.get_tasks(task_ids=..., task_filter=...), injectable for tests.
GetTasks = Callable[..., Iterable[Any]]


def announced_task_ids(config: StackConfig) -> list[str]:
    """Every task id the instance parts of this data directory announced, oldest first, once each."""
    found: list[str] = []
    for part in INSTANCE_PARTS:
        try:
            text = config.component_log(part).read_text(errors="replace")
        except FileNotFoundError:
            continue
        found.extend(ANNOUNCEMENT.findall(text))
    return list(dict.fromkeys(found))


def abandoned_reason(config: StackConfig) -> str:
    return f"the serving stack that ran it ({config.data_dir}) is gone; a new start of it replaced it"[:255]


def fail_abandoned(config: StackConfig, get_tasks: GetTasks | None = None) -> list[str]:
    """Mark failed, with the reason, the announced tasks still ``in_progress``; their ids. Call only when
    no part of this data directory runs (its ports are free)."""
    ids = announced_task_ids(config)
    if not ids:
        return []
    if get_tasks is None:
        from clearml import Task

        get_tasks = Task.get_tasks
    marked = []
    for task in get_tasks(task_ids=ids, task_filter={"status": [IN_PROGRESS]}):
        if task.get_status() == IN_PROGRESS:
            task.mark_failed(status_reason=abandoned_reason(config), force=True)
            marked.append(str(task.id))
    return marked


def fail_abandoned_line(config: StackConfig, get_tasks: GetTasks | None = None) -> str | None:
    """``fail_abandoned``, told in one line (None when there was nothing to mark); a failure to mark is a
    warning, not a failed start: the stack serves without this housekeeping."""
    try:
        marked = fail_abandoned(config, get_tasks)
    except Exception as exc:
        return f"warning: could not mark the instance tasks a gone stack left in_progress: {exc}"
    if not marked:
        return None
    return f"marked failed the instance tasks a gone stack left in_progress: {', '.join(marked)}"
