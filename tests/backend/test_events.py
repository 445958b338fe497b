"""The events API as the real server answers it (raw HTTP): last_metrics upkeep, histograms, raw scalar
paging, single values, plot and debug-image samples, multi-task reads, log navigation, scroll ids."""

from __future__ import annotations

import hashlib
import itertools
from typing import Any

import pytest

from tests.backend.backend_harness import BackendHarness

SINGLE = -(2**31)
_names = itertools.count()


def md5(text: str) -> str:
    return hashlib.md5(text.encode()).hexdigest()


def new_task(backend: BackendHarness, name: str = "events") -> str:
    return str(backend.call("tasks.create", {"name": f"{name} {next(_names)}", "type": "training"})["id"])


def scalar(task: str, iteration: int, value: float, metric: str = "m", variant: str = "v") -> dict[str, Any]:
    return {"type": "training_stats_scalar", "task": task, "iter": iteration, "metric": metric,
            "variant": variant, "value": value, "timestamp": 1_000_000 + max(iteration, 0)}  # fmt: skip


def send(backend: BackendHarness, events: list[dict[str, Any]]) -> dict[str, Any]:
    body = "\n".join(__import__("json").dumps(e) for e in events)
    reply = backend.post("events.add_batch", data=body, headers={"Content-Type": "application/json-lines"})
    assert reply.status_code == 200, reply.text
    return dict(reply.json()["data"])


def last_metric(backend: BackendHarness, task: str, metric: str = "m", variant: str = "v") -> dict[str, Any]:
    return dict(
        backend.call("tasks.get_by_id", {"task": task})["task"]["last_metrics"][md5(metric)][md5(variant)]
    )


def test_last_metrics_hold_value_extremes_first_count_and_mean_across_batches(
    backend: BackendHarness,
) -> None:
    task = new_task(backend)
    events = [scalar(task, i, float(i)) for i in range(10)]
    send(backend, events[5:])
    send(backend, events[:5])  # an older batch later: the value stays the batch's own latest

    entry = last_metric(backend, task)

    assert (entry["min_value"], entry["min_value_iteration"]) == (0.0, 0)
    assert (entry["max_value"], entry["max_value_iteration"]) == (9.0, 9)
    assert (entry["first_value"], entry["count"], entry["mean_value"]) == (5.0, 10, 4.5)
    assert (entry["metric"], entry["variant"]) == ("m", "v")


def test_last_metrics_order_filter_and_project_by_md5_paths(backend: BackendHarness) -> None:
    project = backend.call("projects.create", {"name": f"lm {next(_names)}", "description": ""})["id"]
    tasks = {}
    for loss in (0.3, 0.1, 0.2):
        task = str(
            backend.call("tasks.create", {"name": f"t{loss}", "type": "training", "project": project})["id"]
        )
        send(backend, [scalar(task, 0, loss + 1), scalar(task, 1, loss)])
        tasks[task] = loss
    path = f"last_metrics.{md5('m')}.{md5('v')}"

    ordered = backend.call(
        "tasks.get_all",
        {
            "project": [project],
            "order_by": [f"-{path}.min_value"],
            "only_fields": [path],
            "page": 0,
            "page_size": 2,
        },
    )["tasks"]
    below = backend.call("tasks.get_all", {"project": [project], f"{path}.min_value": [None, 0.25]})["tasks"]

    assert [tasks[t["id"]] for t in ordered] == [0.3, 0.2]
    assert set(ordered[0]) == {"id", "last_metrics"}
    assert ordered[0]["last_metrics"][md5("m")][md5("v")]["value"] == 0.3
    assert sorted(tasks[t["id"]] for t in below) == [0.1, 0.2]


def test_histogram_averages_buckets_and_leaves_single_values_out(backend: BackendHarness) -> None:
    task = new_task(backend)
    send(backend, [scalar(task, i, float(i)) for i in range(100)] + [scalar(task, SINGLE, 7.0)])

    full = backend.call("events.scalar_metrics_iter_histogram", {"task": task, "key": "iter"})["m"]["v"]
    ten = backend.call("events.scalar_metrics_iter_histogram", {"task": task, "samples": 10})["m"]["v"]

    assert full["x"] == list(range(100))
    assert ten["x"] == list(range(0, 100, 10))
    assert ten["y"] == [i * 10 + 4.5 for i in range(10)]


def test_a_single_value_replaces_the_previous_one(backend: BackendHarness) -> None:
    task = new_task(backend)
    send(backend, [scalar(task, SINGLE, 1.0), scalar(task, 1, 2.0)])
    send(backend, [scalar(task, SINGLE, 1000.0)])

    values = backend.call("events.get_task_single_value_metrics", {"tasks": [task]})["tasks"]
    raw = backend.call("events.scalar_metrics_iter_raw", {"task": task, "metric": {"metric": "m"}})

    assert [v["value"] for v in values[0]["values"]] == [1000.0]
    assert values[0]["task_name"].startswith("events")
    assert raw["variants"]["v"] == {"iter": [SINGLE, 1], "y": [1000.0, 2.0]}
    assert last_metric(backend, task)["value"] == 1000.0


def test_raw_scalars_page_with_the_first_requests_batch_size(backend: BackendHarness) -> None:
    task = new_task(backend)
    send(backend, [scalar(task, i, float(i)) for i in range(20)])
    page = backend.call(
        "events.scalar_metrics_iter_raw", {"task": task, "metric": {"metric": "m"}, "batch_size": 8}
    )
    seen = list(page["variants"]["v"]["iter"])
    while page["returned"]:
        page = backend.call(
            "events.scalar_metrics_iter_raw",
            {"task": task, "metric": {"metric": "m"}, "scroll_id": page["scroll_id"]},
        )
        seen += page["variants"].get("v", {}).get("iter", [])
        assert page["returned"] in (8, 4, 0)

    assert seen == list(range(20))


@pytest.mark.parametrize("endpoint", ["events.get_task_events", "events.scalar_metrics_iter_raw"])
def test_an_unknown_scroll_id_is_a_400(backend: BackendHarness, endpoint: str) -> None:
    task = new_task(backend)
    reply = backend.post(endpoint, {"task": task, "metric": {"metric": "m"}, "scroll_id": "1" * 25})

    assert reply.status_code == 400
    assert reply.json()["meta"]["result_subcode"] == 1104


def test_events_add_stores_one_event_and_a_batch_of_only_bad_events_is_refused(
    backend: BackendHarness,
) -> None:
    task = new_task(backend)
    added = backend.call("events.add", scalar(task, 3, 1.5))
    refused = backend.post("events.add", scalar("no-such-task", 3, 1.5))

    assert added["added"] == 1
    assert last_metric(backend, task)["value"] == 1.5
    assert (refused.status_code, refused.json()["meta"]["result_subcode"]) == (400, 131)


def plot(task: str, iteration: int, metric: str, variant: str) -> dict[str, Any]:
    return {"type": "plot", "task": task, "iter": iteration, "metric": metric, "variant": variant,
            "plot_str": f"{metric}-{variant}-{iteration}", "timestamp": 1_000_000}  # fmt: skip


def test_plot_samples_multi_task_plots_and_metrics(backend: BackendHarness) -> None:
    first, second = new_task(backend), new_task(backend)
    send(backend, [plot(first, 1, "A", "x"), plot(first, 3, "A", "x"), plot(second, 2, "B", "y")])
    image = {
        "type": "training_debug_image",
        "task": first,
        "iter": 4,
        "metric": "img",
        "variant": "v",
        "url": "u",
    }
    send(backend, [image])

    sample = backend.call("events.get_plot_sample", {"task": first, "metric": "A", "iteration": 2})
    latest = backend.call("events.get_plot_sample", {"task": first, "metric": "A"})
    multi = backend.call("events.get_multi_task_plots", {"tasks": [first, second]})["plots"]
    plots = backend.call("events.plots", {"metrics": [{"task": first, "metric": "A"}], "iters": 2})["metrics"]
    debug = backend.call("events.get_debug_image_sample", {"task": first, "metric": "img", "variant": "v"})
    metrics = backend.call("events.get_multi_task_metrics", {"tasks": [first, second]})["metrics"]

    assert [e["plot_str"] for e in sample["events"]] == ["A-x-1"]
    assert (latest["min_iteration"], latest["max_iteration"]) == (1, 3)
    assert multi["A"]["x"][first]["3"]["plots"][0]["plot_str"] == "A-x-3"
    assert multi["B"]["y"][second]["2"]["plots"][0]["plot_str"] == "B-y-2"
    assert [i["iter"] for i in plots[0]["iterations"]] == [3, 1]
    assert debug["event"]["url"] == "u"
    assert metrics == [
        {"metric": "A", "variants": ["x"]},
        {"metric": "B", "variants": ["y"]},
        {"metric": "img", "variants": ["v"]},
    ]


def test_task_log_pages_by_timestamp_filters_metrics_and_clears_all_but_excluded(
    backend: BackendHarness,
) -> None:
    task = new_task(backend)
    logs = [{"type": "log", "task": task, "msg": f"line {i}", "timestamp": 1_000 + i} for i in range(6)]
    send(backend, [*logs, {"type": "log", "task": task, "msg": "tagged", "metric": "keep", "timestamp": 999}])

    newest = backend.call("events.get_task_log", {"task": task, "batch_size": 3})
    older = backend.call("events.get_task_log", {"task": task, "batch_size": 3, "from_timestamp": 1_003})
    later = backend.call(
        "events.get_task_log",
        {"task": task, "batch_size": 2, "from_timestamp": 1_003, "navigate_earlier": False},
    )
    tagged = backend.call("events.get_task_log", {"task": task, "metrics": [{"metric": "keep"}]})
    backend.call("events.clear_task_log", {"task": task, "exclude_metrics": ["keep"]})
    left = backend.call("events.get_task_log", {"task": task})

    assert [e["msg"] for e in newest["events"]] == ["line 5", "line 4", "line 3"]
    assert newest["total"] == 7
    assert [e["msg"] for e in older["events"]] == ["line 2", "line 1", "line 0"]
    assert [e["msg"] for e in later["events"]] == ["line 4", "line 5"]
    assert tagged["total"] == 1
    assert [e["msg"] for e in left["events"]] == ["tagged"]


def test_unique_metric_variants_of_the_tasks_named(backend: BackendHarness) -> None:
    first, second = new_task(backend), new_task(backend)
    send(backend, [scalar(first, 0, 1.0, metric="one"), scalar(second, 0, 1.0, metric="two")])

    named = backend.call("projects.get_unique_metric_variants", {"ids": [first]})["metrics"]
    both = backend.call("projects.get_unique_metric_variants", {"ids": [first, second]})["metrics"]

    assert [m["metric"] for m in named] == ["one"]
    assert sorted(m["metric"] for m in both) == ["one", "two"]


def test_model_events_keep_the_models_metrics_and_refuse_log_lines(backend: BackendHarness) -> None:
    model = backend.call("models.create", {"name": "reported", "uri": "file:///m.bin", "ready": False})["id"]
    events = [{**scalar(model, i, float(i), variant=f"v{i}"), "model_event": True, "x_axis_label": "epoch"}
              for i in range(2)]  # fmt: skip
    log = {"type": "log", "task": model, "msg": "no", "model_event": True, "timestamp": 1}

    send(backend, events)
    refused = backend.post("events.add", log)
    histogram = backend.call("events.scalar_metrics_iter_histogram", {"task": model, "model_events": True})
    stored = backend.call(
        "models.get_all", {"id": [model], "only_fields": ["last_metrics", "last_iteration"]}
    )

    assert histogram["m"]["v1"] == {"name": "v1", "x": [1], "y": [1.0], "x_axis_label": "epoch"}
    assert stored["models"][0]["last_iteration"] == 1
    assert stored["models"][0]["last_metrics"][md5("m")][md5("v0")]["value"] == 0.0
    assert refused.json()["meta"]["result_subcode"] == 131
