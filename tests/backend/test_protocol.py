"""The API wire protocol over raw HTTP: envelope, errors, auth, the get_all query language, events, queues
and models. Every successful reply is also validated against the SDK's schema classes."""

from __future__ import annotations

import hashlib
import json
import time
import uuid
from typing import Any

import jwt
import pytest

from tests.backend.backend_harness import API_PREFIX, BackendHarness, Mark

META_KEYS = {
    "id",
    "trx",
    "endpoint",
    "result_code",
    "result_subcode",
    "result_msg",
    "error_stack",
    "error_data",
}


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def assert_valid_replies(backend: BackendHarness, mark: Mark) -> None:
    """Replies must match the schema (requests may be deliberately wrong in these tests)."""
    violations = backend.log.violations_since(mark, direction="response")
    assert not violations, "\n".join(map(str, violations))
    called = {endpoint for endpoint, _ in backend.log.calls_since(mark)}
    assert called, "the test made no API calls"
    assert all(backend.checker.knows(endpoint) for endpoint in called), "an endpoint has no schema to check"


def error_of(reply: Any, status: int) -> str:
    """The error message of a reply that must have failed with ``status``, in a well-formed envelope."""
    assert reply.status_code == status, f"expected {status}, got {reply.status_code}: {reply.text[:300]}"
    envelope = reply.json()
    assert envelope["data"] == {}
    assert envelope["meta"]["result_code"] == status
    message: str = envelope["meta"]["result_msg"]
    assert message
    return message


def new_project(backend: BackendHarness, **fields: Any) -> str:
    return str(backend.call("projects.create", {"name": unique("proto"), **fields})["id"])


def new_task(backend: BackendHarness, project: str, name: str | None = None, **fields: Any) -> str:
    body = {"name": name or unique("task"), "project": project, "type": "training", **fields}
    return str(backend.call("tasks.create", body)["id"])


def task_ids(backend: BackendHarness, query: dict[str, Any]) -> list[str]:
    return [t["id"] for t in backend.call("tasks.get_all", {"only_fields": ["id"], **query})["tasks"]]


# --- envelope, errors, auth ------------------------------------------------------------------------------


def test_success_envelope(backend: BackendHarness, mark: Mark) -> None:
    reply = backend.post("tasks.get_all", {"size": 1})
    assert reply.status_code == 200
    envelope = reply.json()
    assert set(envelope) == {"meta", "data"}
    meta = envelope["meta"]
    assert set(meta) >= META_KEYS
    assert (meta["result_code"], meta["result_subcode"], meta["result_msg"]) == (200, 0, "OK")
    assert meta["endpoint"]["name"] == "tasks.get_all"
    assert envelope["data"] == {"tasks": []}
    assert_valid_replies(backend, mark)


def test_unknown_endpoint_is_404_naming_it(backend: BackendHarness) -> None:
    message = error_of(backend.post("tasks.teleport", {}), 404)
    assert "tasks.teleport" in message


@pytest.mark.parametrize(
    "authorization",
    [None, "Bearer not-a-token", "Basic Zm9vOmJhcg=="],
    ids=["missing", "garbage", "basic-instead-of-bearer"],
)
def test_calls_without_a_valid_token_are_401(backend: BackendHarness, authorization: str | None) -> None:
    headers = {"Authorization": authorization} if authorization else {}
    reply = backend.http.post(
        f"{backend.api_url}{API_PREFIX}tasks.get_all", json={}, headers=headers, timeout=10
    )
    assert "Unauthorized" in error_of(reply, 401)


def test_forged_and_expired_tokens_are_401(backend: BackendHarness) -> None:
    claims = jwt.decode(backend.token, options={"verify_signature": False})
    forged = jwt.encode(claims, "another secret, long enough for HS256 keys", algorithm="HS256")
    assert "invalid token" in error_of(backend.post("tasks.get_all", {}, token=forged), 401)
    secret = backend.backend.credentials.token_secret
    expired = jwt.encode({**claims, "exp": int(time.time()) - 60}, secret, algorithm="HS256")
    assert "expired" in error_of(backend.post("tasks.get_all", {}, token=expired), 401)


def test_login_with_a_wrong_secret_is_401(backend: BackendHarness) -> None:
    access_key = backend.backend.credentials.access_key
    url = f"{backend.api_url}{API_PREFIX}auth.login"
    assert "invalid credentials" in error_of(
        backend.http.post(url, auth=(access_key, "wrong"), timeout=10), 401
    )
    assert error_of(backend.http.post(url, timeout=10), 401)
    assert backend.login()  # the right secret still works


def test_public_endpoints_need_no_token(backend: BackendHarness) -> None:
    reply = backend.http.post(f"{backend.api_url}{API_PREFIX}debug.ping", timeout=10)
    assert reply.status_code == 200
    assert reply.json()["meta"]["result_code"] == 200


def test_malformed_json_is_400(backend: BackendHarness) -> None:
    reply = backend.post("tasks.get_all", data=b'{"name": ', headers={"Content-Type": "application/json"})
    message = error_of(reply, 400)
    assert "Invalid JSON" in message
    assert "tasks.get_all" in message


def test_missing_required_field_is_400_naming_it(backend: BackendHarness) -> None:
    assert "'task'" in error_of(backend.post("tasks.get_by_id", {}), 400)
    assert "'name'" in error_of(backend.post("tasks.create", {"type": "training"}), 400)


def test_unknown_id_is_400_naming_it(backend: BackendHarness) -> None:
    missing = uuid.uuid4().hex
    for endpoint, field in (
        ("tasks.get_by_id", "task"),
        ("models.get_by_id", "model"),
        ("queues.get_by_id", "queue"),
    ):
        assert missing in error_of(backend.post(endpoint, {field: missing}), 400)


def test_wrong_field_types_are_400(backend: BackendHarness) -> None:
    assert "page" in error_of(backend.post("tasks.get_all", {"page": "first", "page_size": 2}), 400)
    assert "only_fields" in error_of(backend.post("tasks.get_all", {"only_fields": "name"}), 400)


# --- the get_all query language --------------------------------------------------------------------------


def test_paging_returns_disjoint_pages_and_terminates(backend: BackendHarness, mark: Mark) -> None:
    project = new_project(backend)
    created = {new_task(backend, project) for _ in range(7)}
    seen: list[str] = []
    for page in range(10):
        ids = task_ids(backend, {"project": [project], "page": page, "page_size": 3, "order_by": ["name"]})
        if not ids:
            break
        assert len(ids) <= 3
        seen += ids
    else:
        pytest.fail("paging did not terminate")
    assert page == 3
    assert len(seen) == len(set(seen)) == 7
    assert set(seen) == created
    assert_valid_replies(backend, mark)


def test_order_by_name_and_created(backend: BackendHarness, mark: Mark) -> None:
    project = new_project(backend)
    for name in ("delta", "alpha", "charlie", "bravo"):
        new_task(backend, project, name)
    by_name = backend.call(
        "tasks.get_all", {"project": [project], "order_by": ["name"], "only_fields": ["name"]}
    )
    assert [t["name"] for t in by_name["tasks"]] == ["alpha", "bravo", "charlie", "delta"]
    query = {"project": [project], "order_by": ["-name"], "only_fields": ["name"]}
    assert [t["name"] for t in backend.call("tasks.get_all", query)["tasks"]] == [
        "delta",
        "charlie",
        "bravo",
        "alpha",
    ]
    newest = backend.call(
        "tasks.get_all", {"project": [project], "order_by": ["-created"], "only_fields": ["created"]}
    )
    stamps = [t["created"] for t in newest["tasks"]]
    assert len(stamps) == 4
    assert stamps == sorted(stamps, reverse=True)
    assert_valid_replies(backend, mark)


def test_only_fields_projects_dotted_paths(backend: BackendHarness, mark: Mark) -> None:
    project = new_project(backend)
    task = new_task(backend, project, script={"entry_point": "train.py", "branch": "main"}, comment="hidden?")
    query = {"id": [task], "only_fields": ["name", "script.entry_point", "no_such_section.key"]}
    (doc,) = backend.call("tasks.get_all", query)["tasks"]
    assert set(doc) == {"id", "name", "script"}
    assert doc["script"] == {"entry_point": "train.py"}
    assert_valid_replies(backend, mark)


@pytest.fixture(scope="module")
def tagged(backend: BackendHarness) -> dict[str, str]:
    """Tasks of one project with different system tags, types and a parent, by label."""
    project = new_project(backend)
    tasks = {
        "ab": new_task(backend, project, "tagged-ab", system_tags=["a", "b"]),
        "a": new_task(backend, project, "tagged-a", system_tags=["a"]),
        "b": new_task(backend, project, "tagged-b", system_tags=["b"], type="testing"),
        "none": new_task(backend, project, "other-none"),
    }
    tasks["child"] = new_task(backend, project, "other-child", parent=tasks["ab"], type="testing")
    tasks["project"] = project
    return tasks


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        (["a"], {"ab", "a"}),
        (["a", "b"], {"ab", "a", "b"}),
        (["__$all", "a", "b"], {"ab"}),
        (["-a"], {"b", "none", "child"}),
        (["__$not", "b"], {"a", "none", "child"}),
        (["__$all", "a", "__$not", "b"], {"a"}),
    ],
)
def test_system_tags_filter(
    backend: BackendHarness, tagged: dict[str, str], spec: list[str], expected: set[str]
) -> None:
    ids = set(task_ids(backend, {"project": [tagged["project"]], "system_tags": spec}))
    assert ids == {tagged[label] for label in expected}


def test_name_type_parent_and_project_filters(
    backend: BackendHarness, tagged: dict[str, str], mark: Mark
) -> None:
    in_project = {"project": [tagged["project"]]}
    assert set(task_ids(backend, {**in_project, "name": "^tagged-a"})) == {tagged["ab"], tagged["a"]}
    assert set(task_ids(backend, {**in_project, "type": ["testing"]})) == {tagged["b"], tagged["child"]}
    assert task_ids(backend, {"parent": tagged["ab"]}) == [tagged["child"]]
    assert len(task_ids(backend, in_project)) == 5
    assert task_ids(backend, {"project": [new_project(backend)]}) == []
    assert_valid_replies(backend, mark)


def test_status_filter_follows_the_life_cycle(backend: BackendHarness, mark: Mark) -> None:
    project = new_project(backend)
    waiting, running = new_task(backend, project), new_task(backend, project)
    backend.call("tasks.started", {"task": running})
    in_project = {"project": [project]}
    assert task_ids(backend, {**in_project, "status": ["in_progress"]}) == [running]
    assert task_ids(backend, {**in_project, "status": ["created"]}) == [waiting]
    assert set(task_ids(backend, {**in_project, "status": ["created", "in_progress"]})) == {waiting, running}
    assert_valid_replies(backend, mark)


def test_hidden_tasks_and_projects_need_search_hidden(backend: BackendHarness, mark: Mark) -> None:
    hidden_project = new_project(backend, system_tags=["hidden"])
    hidden_task = new_task(backend, hidden_project, system_tags=["hidden"])
    visible_task = new_task(backend, hidden_project)
    assert task_ids(backend, {"project": [hidden_project]}) == [visible_task]
    everything = task_ids(backend, {"project": [hidden_project], "search_hidden": True})
    assert set(everything) == {hidden_task, visible_task}
    assert task_ids(backend, {"id": [hidden_task]}) == [hidden_task]

    def project_ids(**query: Any) -> list[str]:
        found = backend.call("projects.get_all", {"only_fields": ["id"], **query})["projects"]
        return [p["id"] for p in found]

    assert hidden_project not in project_ids()
    assert hidden_project in project_ids(search_hidden=True)
    assert_valid_replies(backend, mark)


# --- events -------------------------------------------------------------------------------------------------


def scalar(
    task: str, iteration: int, value: Any, metric: str = "loss", variant: str = "train"
) -> dict[str, Any]:
    return {
        "type": "training_stats_scalar",
        "task": task,
        "metric": metric,
        "variant": variant,
        "iter": iteration,
        "value": value,
        "timestamp": 1_700_000_000_000 + iteration,
    }


def add_events(backend: BackendHarness, events: list[dict[str, Any]]) -> dict[str, Any]:
    """events.add_batch the way the SDK sends it: one JSON object per line."""
    lines = "\n".join(json.dumps(event) for event in events)
    reply = backend.post(
        "events.add_batch", data=lines.encode(), headers={"Content-Type": "application/json"}
    )
    assert reply.status_code == 200, reply.text
    data: dict[str, Any] = reply.json()["data"]
    return data


def last_metric(backend: BackendHarness, task: str, metric: str, variant: str) -> dict[str, Any]:
    doc = backend.call("tasks.get_by_id", {"task": task})["task"]
    key = (hashlib.md5(metric.encode()).hexdigest(), hashlib.md5(variant.encode()).hexdigest())
    entry: dict[str, Any] = doc["last_metrics"][key[0]][key[1]]
    return {"last_iteration": doc["last_iteration"], **entry}


def test_add_batch_keeps_last_metrics_current(backend: BackendHarness, mark: Mark) -> None:
    task = new_task(backend, new_project(backend))
    first = add_events(backend, [scalar(task, 0, 3.0), scalar(task, 1, 1.0), scalar(task, 2, 2.0)])
    assert (first["added"], first["errors"]) == (3, 0)
    entry = last_metric(backend, task, "loss", "train")
    assert (entry["value"], entry["min_value"], entry["max_value"]) == (2.0, 1.0, 3.0)
    assert (entry["min_value_iteration"], entry["max_value_iteration"], entry["last_iteration"]) == (1, 0, 2)

    second = add_events(backend, [scalar(task, 5, 0.5), scalar(task, 5, 9.0, variant="val")])
    assert second["added"] == 2
    entry = last_metric(backend, task, "loss", "train")
    assert (entry["value"], entry["min_value"], entry["max_value"], entry["last_iteration"]) == (
        0.5,
        0.5,
        3.0,
        5,
    )
    assert last_metric(backend, task, "loss", "val")["value"] == 9.0
    histogram = backend.call("events.scalar_metrics_iter_histogram", {"task": task})
    assert histogram["loss"]["train"]["y"] == [3.0, 1.0, 2.0, 0.5]
    assert_valid_replies(backend, mark)


def test_add_batch_reports_invalid_events(backend: BackendHarness, mark: Mark) -> None:
    task = new_task(backend, new_project(backend))
    events = [
        scalar(task, 0, 1.0),
        {"type": "no_such_type", "task": task},
        scalar(task, 1, "not a number"),
        scalar(uuid.uuid4().hex, 0, 1.0),
        {"type": "log", "msg": "no task"},
    ]
    result = add_events(backend, events)
    assert (result["added"], result["errors"]) == (1, 4)
    problems = " | ".join(result["errors_info"])
    for fragment in ("'type'", "'value'", "unknown task", "'task'"):
        assert fragment in problems
    assert backend.call("events.get_task_events", {"task": task})["total"] == 1
    assert_valid_replies(backend, mark)


def test_add_batch_accepts_a_single_json_object(backend: BackendHarness) -> None:
    task = new_task(backend, new_project(backend))
    assert backend.call("events.add_batch", scalar(task, 0, 4.0))["added"] == 1
    assert last_metric(backend, task, "loss", "train")["value"] == 4.0


def test_task_plots_iters_counts_iterations_per_plot(backend: BackendHarness, mark: Mark) -> None:
    """The SDK's get_reported_plots sends iters=1 and expects the latest plot of every metric/variant."""
    task = new_task(backend, new_project(backend))

    def plot(metric: str, iteration: int) -> dict[str, Any]:
        plot_str = json.dumps({"data": [], "layout": {"title": f"{metric} {iteration}"}})
        return {
            "type": "plot",
            "task": task,
            "metric": metric,
            "variant": "v",
            "iter": iteration,
            "plot_str": plot_str,
        }

    assert add_events(backend, [plot("table", 0), plot("curve", 0), plot("curve", 1)])["added"] == 3
    latest = backend.call("events.get_task_plots", {"task": task, "iters": 1})["plots"]
    assert sorted((p["metric"], p["iter"]) for p in latest) == [("curve", 1), ("table", 0)]
    two = backend.call("events.get_task_plots", {"task": task, "iters": 2})["plots"]
    assert len(two) == 3
    assert_valid_replies(backend, mark)


# --- queues -------------------------------------------------------------------------------------------------


def test_queue_hands_out_each_task_once(backend: BackendHarness, mark: Mark) -> None:
    project = new_project(backend)
    queue = backend.call("queues.create", {"name": unique("queue")})["id"]
    first, second = new_task(backend, project), new_task(backend, project)
    for task in (first, second):
        assert backend.call("tasks.enqueue", {"task": task, "queue": queue})["queued"] == 1
    assert backend.call("queues.get_num_entries", {"queue": queue})["num"] == 2

    assert backend.call("queues.get_next_task", {"queue": queue})["entry"]["task"] == first
    assert backend.call("tasks.dequeue", {"task": second})["dequeued"] == 1
    assert "entry" not in backend.call("queues.get_next_task", {"queue": queue})
    statuses = {t["id"]: t["status"] for t in backend.call("tasks.get_all", {"id": [first, second]})["tasks"]}
    assert statuses == {first: "queued", second: "created"}
    assert backend.call("queues.get_by_id", {"queue": queue})["queue"]["entries"] == []
    assert_valid_replies(backend, mark)


def test_enqueue_to_an_unknown_queue_is_400(backend: BackendHarness) -> None:
    task = new_task(backend, new_project(backend))
    missing = uuid.uuid4().hex
    assert missing in error_of(backend.post("tasks.enqueue", {"task": task, "queue": missing}), 400)
    assert backend.call("tasks.get_by_id", {"task": task})["task"]["status"] == "created"


# --- models -------------------------------------------------------------------------------------------------


def test_models_filtered_by_task_uri_project_and_tags(backend: BackendHarness, mark: Mark) -> None:
    first_project, second_project = new_project(backend), new_project(backend)
    task = new_task(backend, first_project)

    def create(name: str, **fields: Any) -> str:
        return str(
            backend.call("models.create", {"name": name, "uri": f"http://files/{name}.bin", **fields})["id"]
        )

    best = create("best", task=task, project=first_project, tags=["winner"])
    other = create("other", project=second_project, tags=["loser"])

    def model_ids(**query: Any) -> set[str]:
        return {m["id"] for m in backend.call("models.get_all", {"only_fields": ["id"], **query})["models"]}

    assert model_ids(task=[task]) == {best}
    assert model_ids(uri=["http://files/other.bin"]) == {other}
    assert model_ids(project=[second_project]) == {other}
    assert model_ids(tags=["winner"]) == {best}
    assert model_ids(tags=["-winner"], project=[first_project, second_project]) == {other}
    assert model_ids(name="^best$") == {best}
    assert_valid_replies(backend, mark)


def test_a_model_is_published_once_and_stays_editable(backend: BackendHarness, mark: Mark) -> None:
    uri = "http://files/published.bin"
    draft = {"name": "published", "uri": uri, "tags": ["winner"], "ready": False}
    model = backend.call("models.create", draft)["id"]
    backend.call("models.set_ready", {"model": model})

    reply = backend.post("models.set_ready", {"model": model})  # the real server's 'model is ready'
    assert (reply.status_code, reply.json()["meta"]["result_subcode"]) == (400, 203)
    backend.call("models.edit", {"model": model, "uri": "http://files/other.bin", "tags": []})
    edited = backend.call("models.get_by_id", {"model": model})["model"]
    assert (edited["uri"], edited["tags"], edited["ready"]) == ("http://files/other.bin", [], True)
    assert_valid_replies(backend, mark)
