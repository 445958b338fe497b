"""Helpers of the conformance tests: behaviours of the real clearml-server's API (its own test suite and
its code, revision 2976ce6) re-stated over raw HTTP against the embedded backend."""

from __future__ import annotations

import uuid
from typing import Any

from tests.backend.backend_harness import BackendHarness, Mark


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def codes(backend: BackendHarness, endpoint: str, body: dict[str, Any]) -> tuple[int, int]:
    """(HTTP status, result subcode) of a call that must fail, in a well-formed error envelope."""
    reply = backend.post(endpoint, body)
    envelope = reply.json()
    assert reply.status_code != 200, f"{endpoint} should have failed: {reply.text[:300]}"
    assert envelope["data"] == {} and envelope["meta"]["result_msg"]
    return reply.status_code, int(envelope["meta"]["result_subcode"])


def new_task(backend: BackendHarness, **fields: Any) -> str:
    body = {"name": unique("task"), "type": "testing", **fields}
    return str(backend.call("tasks.create", body)["id"])


def new_model(backend: BackendHarness, **fields: Any) -> str:
    body = {"name": unique("model"), "uri": f"file:///{unique('weights')}.bin", **fields}
    return str(backend.call("models.create", body)["id"])


def new_queue(backend: BackendHarness, **fields: Any) -> str:
    return str(backend.call("queues.create", {"name": unique("queue"), **fields})["id"])


def new_project(backend: BackendHarness, name: str | None = None, **fields: Any) -> str:
    return str(backend.call("projects.create", {"name": name or unique("project"), **fields})["id"])


def task(backend: BackendHarness, task_id: str) -> dict[str, Any]:
    return dict(backend.call("tasks.get_by_id", {"task": task_id})["task"])


def entries(backend: BackendHarness, queue_id: str) -> list[str]:
    queue = backend.call("queues.get_by_id", {"queue": queue_id})["queue"]
    return [entry["task"] for entry in queue["entries"]]


def ids(items: list[dict[str, Any]]) -> list[str]:
    return [item["id"] for item in items]


def assert_replies_match_the_schema(backend: BackendHarness, mark: Mark) -> None:
    """Every successful reply since ``mark`` that the SDK has a schema for matches it."""
    violations = backend.log.violations_since(mark, direction="response")
    assert not violations, "\n".join(map(str, violations))
