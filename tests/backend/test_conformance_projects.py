"""Projects as the real clearml-server answers them: unique names, what refuses a delete, renaming,
moving and merging subtrees, searches and aggregations."""

from __future__ import annotations

from tests.backend.backend_harness import BackendHarness, Mark
from tests.backend.conformance import (
    assert_replies_match_the_schema,
    codes,
    ids,
    new_model,
    new_project,
    new_task,
    unique,
)


def project(backend: BackendHarness, project_id: str) -> dict[str, object]:
    return dict(backend.call("projects.get_by_id", {"project": project_id})["project"])


def test_a_taken_name_is_expected_unique_data(backend: BackendHarness) -> None:
    name, other = unique("unique"), new_project(backend)
    new_project(backend, name=name)
    assert codes(backend, "projects.create", {"name": name}) == (400, 801)
    assert codes(backend, "projects.update", {"project": other, "name": name}) == (400, 801)
    assert codes(backend, "projects.create", {"name": "/"}) == (400, 407)


def test_delete_is_refused_for_active_contents_unless_forced(backend: BackendHarness, mark: Mark) -> None:
    with_task, with_model, archived = new_project(backend), new_project(backend), new_project(backend)
    new_task(backend, project=with_task)
    new_model(backend, project=with_model)
    new_task(backend, project=archived, system_tags=["archived"])

    assert codes(backend, "projects.delete", {"project": with_task}) == (400, 402)
    assert codes(backend, "projects.delete", {"project": with_task, "delete_contents": True}) == (400, 402)
    assert codes(backend, "projects.delete", {"project": with_model}) == (400, 405)
    assert backend.call("projects.validate_delete", {"project": archived})["non_archived_tasks"] == 0
    assert backend.call("projects.delete", {"project": archived})["disassociated_tasks"] == 1
    reply = backend.call("projects.delete", {"project": with_model, "force": True, "delete_contents": True})
    assert (reply["deleted_models"], len(reply["urls"]["model_urls"])) == (1, 1)
    assert_replies_match_the_schema(backend, mark)


def test_datasets_and_pipelines_refuse_a_delete_until_archived(backend: BackendHarness) -> None:
    root = unique("root")
    new_project(backend, name=root)
    dataset = new_project(backend, name=f"{root}/.datasets/data", system_tags=["dataset"])
    pipeline = new_project(backend, name=f"{root}/.pipelines/flow", system_tags=["pipeline"])
    version = new_task(backend, project=dataset, system_tags=["dataset"])
    controller = new_task(backend, project=pipeline, type="controller", system_tags=["pipeline"])
    root_id = ids(backend.call("projects.get_all", {"name": f"^{root}$"})["projects"])[0]

    blockers = backend.call("projects.validate_delete", {"project": root_id})
    assert (blockers["datasets"], blockers["pipelines"]) == (1, 1)
    assert codes(backend, "projects.delete", {"project": root_id}) == (400, 413)
    backend.call("tasks.edit", {"task": controller, "system_tags": ["archived"]})
    assert codes(backend, "projects.delete", {"project": root_id}) == (400, 406)
    backend.call("tasks.delete", {"task": version})
    assert backend.call("projects.delete", {"project": root_id})["deleted"] == 5


def test_rename_keeps_the_location_and_renames_the_subtree(backend: BackendHarness) -> None:
    root = unique("rename")
    parent = new_project(backend, name=f"{root}/a")
    child = new_project(backend, name=f"{root}/a/b")
    assert codes(backend, "projects.update", {"project": parent, "name": "elsewhere/a"}) == (400, 408)
    backend.call("projects.update", {"project": parent, "name": f"{root}/c"})
    assert (project(backend, parent)["basename"], project(backend, child)["name"]) == ("c", f"{root}/c/b")


def test_move_and_merge(backend: BackendHarness) -> None:
    root = unique("tree")
    source = new_project(backend, name=f"{root}/src")
    child = new_project(backend, name=f"{root}/src/child")
    assert backend.call("projects.move", {"project": source, "new_location": f"{root}/dst"})["moved"] == 2
    assert project(backend, child)["name"] == f"{root}/dst/src/child"
    assert (
        codes(backend, "projects.move", {"project": source, "new_location": f"{root}/dst/src/child"})[1]
        == 411
    )

    target = new_project(backend, name=f"{root}/target")
    task_id = new_task(backend, project=source)
    reply = backend.call("projects.merge", {"project": source, "destination_project": target})
    assert (reply["moved_entities"], reply["moved_projects"]) == (1, 1)
    assert project(backend, child)["name"] == f"{root}/target/child"
    assert backend.call("tasks.get_by_id", {"task": task_id})["task"]["project"] == target
    assert codes(backend, "projects.get_by_id", {"project": source}) == (400, 401)


def test_searches_by_level(backend: BackendHarness) -> None:
    top = unique("level")
    first = new_project(backend, name=top)
    second = new_project(backend, name=f"{top}/{top}")
    assert ids(backend.call("projects.get_all_ex", {"name": top, "shallow_search": True})["projects"]) == [
        first
    ]
    assert set(ids(backend.call("projects.get_all_ex", {"name": top})["projects"])) == {first, second}
    nested = backend.call("projects.get_all_ex", {"name": top, "parent": [first]})["projects"]
    assert ids(nested) == [second] and nested[0]["parent"] == {"id": first}


def test_hyperparam_values_and_tags_by_project(backend: BackendHarness) -> None:
    scope, outside = new_project(backend), new_project(backend)
    for value in ("10", "9", "9"):
        params = {"Args": {"lr": {"section": "Args", "name": "lr", "value": value}}}
        new_task(backend, project=scope, hyperparams=params, tags=["in"], system_tags=["sys"])
    new_task(backend, project=outside, tags=["out"])

    body = {"projects": [scope], "section": "Args", "name": "lr"}
    assert backend.call("projects.get_hyperparam_values", body) == {"total": 2, "values": ["9", "10"]}
    assert backend.call("projects.get_hyperparam_values", {**body, "pattern": "^1"})["values"] == ["10"]
    tags = backend.call("projects.get_task_tags", {"projects": [scope]})
    assert (tags["tags"], tags["system_tags"]) == (["in"], ["sys"])


def test_task_parents_by_project_name_and_state(backend: BackendHarness) -> None:
    scope = new_project(backend, name=unique("parents"))
    first = new_task(backend, project=scope, name="Parent A")
    second = new_task(backend, project=scope, name="Parent B")
    new_task(backend, project=scope, parent=first)
    archived_child = new_task(backend, project=scope, parent=second, system_tags=["archived"])

    parents = backend.call("projects.get_task_parents", {"projects": [scope]})["parents"]
    assert ids(parents) == [first, second] and parents[0]["project"]["id"] == scope
    body = {"projects": [scope], "tasks_state": "archived"}
    assert ids(backend.call("projects.get_task_parents", body)["parents"]) == [second]
    body = {"projects": [scope], "task_name": "A$"}
    assert ids(backend.call("projects.get_task_parents", body)["parents"]) == [first]
    by_parents = backend.call("tasks.get_all", {"parent": [second, first], "project": [scope]})["tasks"]
    assert archived_child in ids(by_parents) and len(by_parents) == 2


def test_project_tags_with_a_filter(backend: BackendHarness) -> None:
    shown = new_project(backend, tags=["one", "two"])
    hidden = new_project(backend, tags=["one", "three"], system_tags=["hidden"])
    body = {"projects": [shown, hidden]}
    assert backend.call("projects.get_project_tags", body)["tags"] == ["one", "three", "two"]
    body["filter"] = {"system_tags": ["__$not", "hidden"]}
    assert backend.call("projects.get_project_tags", body)["tags"] == ["one", "two"]
