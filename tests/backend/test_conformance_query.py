"""The get_all query language as the real clearml-server answers it: paging and scrolling, ordering,
ranges and date-time conditions, list filters and projections. Pure functions are tested without HTTP;
scrolling and the request shapes over HTTP."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from clearml_local.errors import InvalidScrollId
from clearml_local.query import MAX_PAGE_SIZE, Scrolls, project, run_query, run_scrolled_query
from tests.backend.backend_harness import BackendHarness
from tests.backend.conformance import codes, ids, new_project, new_task, unique


def docs_with(field: str, values: list[Any]) -> list[dict[str, Any]]:
    return [{"id": f"{i:02d}", field: value} for i, value in enumerate(values)]


def ordered(docs: list[dict[str, Any]], order_by: list[str]) -> list[str]:
    return [doc["id"] for doc in run_query(docs, {"order_by": order_by})]


def test_empty_values_come_last_whichever_the_direction() -> None:
    docs = [*docs_with("started", ["2024-01-02", None, "2024-01-01", ""]), {"id": "04"}]
    ascending, descending = ordered(docs, ["started"]), ordered(docs, ["-started"])
    assert (ascending[:2], descending[:2]) == (["02", "00"], ["00", "02"])
    assert set(ascending[2:]) == set(descending[2:]) == {"01", "03", "04"}


def test_parameter_values_order_as_numbers_and_ties_by_id() -> None:
    params = [{"value": v} for v in ("10", "9", "x", "9")]
    docs = [{"id": f"{i}", "hyperparams": {"s": {"p": p}}} for i, p in enumerate(params)]
    assert ordered(docs, ["hyperparams.s.p.value"]) == ["1", "3", "0", "2"]
    assert ordered(docs, ["hyperparams.s.p"]) == ["1", "3", "0", "2"]  # embedded documents field by field
    names = docs_with("name", ["run 10", "run 9"])
    assert ordered(names, ["name"]) == ["00", "01"]  # names keep plain string order


def test_pages_are_capped_and_start_size_pages_too() -> None:
    docs = docs_with("n", list(range(MAX_PAGE_SIZE + 5)))
    assert len(run_query(docs, {})) == MAX_PAGE_SIZE
    assert len(run_query(docs, {"page": 1, "page_size": MAX_PAGE_SIZE})) == 5
    assert [d["n"] for d in run_query(docs, {"start": 3, "size": 2, "order_by": ["n"]})] == [3, 4]


def test_a_scroll_continues_refreshes_and_refuses_an_unknown_id() -> None:
    docs, scrolls = docs_with("n", list(range(5))), Scrolls()
    body = {"order_by": ["n"], "size": 2, "scroll_id": ""}
    pages = []
    for _ in range(4):
        page, body["scroll_id"] = run_scrolled_query(docs, body, scrolls=scrolls)
        pages.append([d["n"] for d in page])
    assert pages == [[0, 1], [2, 3], [4], []]
    refreshed, _ = run_scrolled_query(docs, {**body, "refresh_scroll": True}, scrolls=scrolls)
    assert [d["n"] for d in refreshed] == [0, 1, 2, 3, 4]
    with pytest.raises(InvalidScrollId):
        run_scrolled_query(docs, {**body, "scroll_id": "1" * 25}, scrolls=scrolls)


def test_a_scroll_is_forgotten_after_its_time_to_live() -> None:
    now = [0.0]
    scrolls = Scrolls(ttl_s=10, clock=lambda: now[0])
    _, scroll_id = run_scrolled_query(docs_with("n", [1, 2]), {"size": 1, "scroll_id": ""}, scrolls=scrolls)
    assert scroll_id is not None
    now[0] = 11.0
    with pytest.raises(InvalidScrollId):
        scrolls.position(scroll_id)


def test_ranges_and_date_time_conditions() -> None:
    docs = docs_with("started", ["2024-01-01T10:00:00+00:00", "2024-01-02T10:00:00+00:00", None])
    assert ids(run_query(docs, {"started": ["2024-01-01T12:00:00", None]})) == ["01"]
    assert ids(run_query(docs, {"started": [None, "2024-01-01T12:00:00"]})) == ["00", "02"]
    assert ids(run_query(docs, {"started": [">=2024-01-01T10:00:00", "<2024-01-02"]})) == ["00"]
    counted = docs_with("last_iteration", [5, 50])
    assert ids(run_query(counted, {"last_iteration": [10, 100]})) == ["01"]
    statuses = docs_with("status", ["created", "queued", "failed"])
    assert ids(run_query(statuses, {"status": ["created", "queued"]})) == ["00", "01"]  # a list, not a range


def test_or_and_and_over_time_fields() -> None:
    docs = [
        {"id": "a", "last_update": "2024-01-01T00:00:00+00:00", "last_change": "2024-03-01T00:00:00+00:00"},
        {"id": "b", "last_update": "2024-03-01T00:00:00+00:00", "last_change": "2024-03-01T00:00:00+00:00"},
    ]
    either = {"fields": ["last_update", "last_change"], "datetime": [">2024-02-01T00:00:00"]}
    assert ids(run_query(docs, {"_or_": either})) == ["a", "b"]  # TriggerScheduler's form (server >= 1.16.3)
    assert ids(run_query(docs, {"_and_": either})) == ["b"]
    assert ids(run_query(docs, {"last_update": ">2024-02-01T00:00:00"})) == ["b"]  # the older form


@pytest.mark.parametrize(
    ("condition", "expected"),
    [
        ({"any": {"include": [None]}}, ["00"]),
        ({"any": {"include": ["a", None]}}, ["00", "01", "02"]),
        ({"any": {"exclude": ["b"]}}, ["00", "01"]),
        ({"all": {"include": ["a", "b"]}}, ["02"]),
        ({"all": {"exclude": ["b", None]}}, ["01"]),
        ({"any": {"include": ["a"]}, "all": {"exclude": ["b"]}}, ["01"]),
        ({"any": {"include": ["b"]}, "all": {"include": [None]}, "op": "or"}, ["00", "02"]),
    ],
)
def test_list_filters(condition: dict[str, Any], expected: list[str]) -> None:
    docs = docs_with("tags", [[], ["a"], ["a", "b"]])
    assert ids(run_query(docs, {"filters": {"tags": condition}})) == expected


def test_tag_operators() -> None:
    docs = docs_with("system_tags", [[], ["a"], ["a", "b"]])
    assert ids(run_query(docs, {"system_tags": ["-b"]})) == ["00", "01"]
    assert ids(run_query(docs, {"system_tags": ["__$all", "a", "b"]})) == ["02"]
    assert ids(run_query(docs, {"system_tags": ["a", "__$not", "b"]})) == ["01"]


def test_projections() -> None:
    doc = {"id": "x", "name": "n", "execution": {"queue": "q", "parameters": {}}, "tags": ["t"]}
    assert project(doc, ["execution.*"]) == {"id": "x", "execution": doc["execution"]}
    assert project(doc, ["*", "-execution.queue"]) == {**doc, "execution": {"parameters": {}}}
    assert project(doc, ["-name"]) == {"id": "x", "execution": doc["execution"], "tags": ["t"]}
    assert doc["execution"]["queue"] == "q"  # the stored document is not changed


def test_scrolling_over_http_and_its_errors(backend: BackendHarness) -> None:
    project = new_project(backend)
    created = sorted(new_task(backend, project=project, name=unique("scroll")) for _ in range(5))
    body = {"project": project, "order_by": ["id"], "size": 2, "scroll_id": None}
    seen: list[str] = []
    for _ in range(3):
        reply = backend.call("tasks.get_all", body)
        seen += ids(reply["tasks"])
        body["scroll_id"] = reply["scroll_id"]
    assert seen == created
    assert codes(backend, "tasks.get_all", {**body, "scroll_id": "9" * 25}) == (400, 1104)
    assert codes(backend, "tasks.get_all", {"scroll_id": None})[0] == 400  # a scroll needs a size


def test_one_id_or_project_string_where_the_schema_says_list(backend: BackendHarness) -> None:
    project = new_project(backend)
    task_id = new_task(backend, project=project)
    assert ids(backend.call("tasks.get_all", {"id": task_id})["tasks"]) == [task_id]
    assert ids(backend.call("tasks.get_all_ex", {"project": project})["tasks"]) == [task_id]
    assert codes(backend, "tasks.get_all", {"only_fields": "name"})[0] == 400


def test_subproject_tasks_with_include_subprojects(backend: BackendHarness) -> None:
    name = unique("parent")
    parent, child = new_project(backend, name=name), new_project(backend, name=f"{name}/child")
    tasks = {new_task(backend, project=parent), new_task(backend, project=child)}
    assert len(backend.call("tasks.get_all", {"project": [parent]})["tasks"]) == 1
    reply = backend.call("tasks.get_all", {"project": [parent], "include_subprojects": True})
    assert set(ids(reply["tasks"])) == tasks


def test_date_time_filter_over_http(backend: BackendHarness) -> None:
    before = dt.datetime.now(dt.UTC).replace(tzinfo=None).isoformat()
    task_id = new_task(backend)
    backend.call("tasks.started", {"task": task_id})
    found = backend.call("tasks.get_all", {"started": [before, None], "id": [task_id]})["tasks"]
    assert ids(found) == [task_id]
    assert backend.call("tasks.get_all", {"started": [None, before], "id": [task_id]})["tasks"] == []


@pytest.mark.parametrize(
    ("endpoint", "body"),
    [
        ("tasks.get_all", {"filters": {"tags": {"any": {"include": "a"}}}}),
        ("tasks.get_all", {"filters": {"tags": {"any": {"include": [{"x": 1}]}}}}),
        ("tasks.get_all", {"filters": {"tags": {"test": ["1"]}}}),
        ("tasks.get_all", {"filters": 5}),
        ("tasks.get_all", {"_or_": {"fields": ["last_update"], "pattern": "a", "datetime": ">2024-01-01"}}),
        ("tasks.get_all", {"started": [{}, None]}),
        ("tasks.get_all", {"started": [None, None]}),
        ("tasks.get_all", {"last_update": ">not a date"}),
        ("tasks.get_all", {"projection": [5]}),
        ("tasks.get_all", {"start": -1, "size": 2}),
        ("tasks.get_all", {"scroll_id": "", "size": 0}),
        ("tasks.get_all", {"project": ["x"], "include_subprojects": "yes"}),
        ("tasks.edit", {"task": "{task}", "status": "bogus"}),
        ("queues.get_all", {"max_task_entries": -1}),
        ("queues.remove_task", {"queue": "{queue}", "task": "{task}", "update_task_status": "yes"}),
        ("workers.get_count", {"tags": {"a": 1}}),
        ("workers.get_count", {"last_seen": -5}),
        ("tasks.update_tags", {"ids": [1]}),
        ("projects.get_task_parents", {"task_name": "(("}),
        ("projects.get_task_parents", {"tasks_state": "gone"}),
        ("projects.get_hyperparam_values", {"section": "a", "name": "b", "pattern": "(("}),
        ("projects.get_hyperparam_values", {"section": "a", "name": "b", "page": "x"}),
    ],
)
def test_malformed_query_values_are_400_and_change_nothing(
    backend: BackendHarness, endpoint: str, body: dict[str, Any]
) -> None:
    task_id = new_task(backend)
    queue = str(backend.call("queues.create", {"name": unique("q")})["id"])
    backend.call("tasks.enqueue", {"task": task_id, "queue": queue})
    filled = {
        k: {"{task}": task_id, "{queue}": queue}.get(v, v) if isinstance(v, str) else v
        for k, v in body.items()
    }
    status, _ = codes(backend, endpoint, filled)
    assert status == 400
    assert backend.call("tasks.get_by_id", {"task": task_id})["task"]["status"] == "queued"
