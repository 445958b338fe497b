"""Debug images and plots scrolled by iteration (events.debug_images, events.plots) as the real
clearml-server answers them (its metric events iterator): pages of ``iters`` iterations newest first under
one scroll id, no iteration twice, empty iterations once the scroll is exhausted, recycled image urls
hiding the overwritten iterations, ``navigate_earlier: false`` and ``refresh``."""

from __future__ import annotations

import json
from typing import Any

from tests.backend.backend_harness import BackendHarness, Mark
from tests.backend.conformance import assert_replies_match_the_schema, codes, new_task


def send(backend: BackendHarness, events: list[dict[str, Any]]) -> None:
    body = "\n".join(json.dumps(event) for event in events)
    reply = backend.post("events.add_batch", data=body, headers={"Content-Type": "application/json-lines"})
    assert reply.status_code == 200, reply.text


def image(
    task: str, iteration: int, variant: str, metric: str = "img", url: str | None = None
) -> dict[str, Any]:
    url = url or f"http://files/{metric}_{variant}_{iteration}.png"
    return {"type": "training_debug_image", "task": task, "iter": iteration, "metric": metric,
            "variant": variant, "url": url, "timestamp": 1_000 + iteration}  # fmt: skip


def pages(backend: BackendHarness, endpoint: str, body: dict[str, Any]) -> tuple[list[list[Any]], set[str]]:
    """Every page of a scroll until one comes back without iterations: each page's (iter, [variants]) and the
    scroll ids seen."""
    found, scroll_ids = [], set()
    reply = backend.call(endpoint, body)
    for _ in range(20):
        scroll_ids.add(reply["scroll_id"])
        iterations = reply["metrics"][0]["iterations"]
        if not iterations:
            return found, scroll_ids
        found.append([(it["iter"], [e["variant"] for e in it["events"]]) for it in iterations])
        reply = backend.call(endpoint, {**body, "scroll_id": reply["scroll_id"]})
    raise AssertionError(f"the scroll did not end: {found[-3:]}")


def test_debug_images_scroll_by_iteration_without_repeats_and_end(
    backend: BackendHarness, mark: Mark
) -> None:
    task = new_task(backend)
    send(backend, [image(task, i, v) for i in range(5) for v in ("b", "a")] + [image(task, 9, "x", "other")])

    found, scroll_ids = pages(backend, "events.debug_images", {"metrics": [{"task": task, "metric": "img"}],
                                                               "iters": 2})  # fmt: skip

    both = ["a", "b"]
    assert found == [[(4, both), (3, both)], [(2, both), (1, both)], [(0, both)]]
    assert len(scroll_ids) == 1 and None not in scroll_ids
    assert_replies_match_the_schema(backend, mark)


def test_debug_images_of_one_variant_and_of_all_metrics(backend: BackendHarness) -> None:
    task = new_task(backend)
    send(backend, [image(task, i, v) for i in range(3) for v in ("a", "b")] + [image(task, 1, "x", "other")])

    only_b = {"metrics": [{"task": task, "metric": "img", "variants": ["b"]}], "iters": 5}
    one = pages(backend, "events.debug_images", only_b)[0]
    every = backend.call("events.debug_images", {"metrics": [{"task": task}], "iters": 1})

    assert one == [[(2, ["b"]), (1, ["b"]), (0, ["b"])]]
    assert [it["iter"] for it in every["metrics"][0]["iterations"]] == [2]
    again = backend.call(
        "events.debug_images", {"metrics": [{"task": task}], "scroll_id": every["scroll_id"]}
    )
    assert [(e["metric"], e["variant"]) for e in again["metrics"][0]["iterations"][0]["events"]] == [
        ("img", "a"), ("img", "b"), ("other", "x")]  # fmt: skip


def test_recycled_image_urls_hide_the_overwritten_iterations(backend: BackendHarness) -> None:
    task = new_task(backend)
    # the SDK names files by iteration modulo its history size: here 2, so iterations 2 and 3 overwrote 0, 1
    send(backend, [image(task, i, "a", url=f"http://files/img_a_{i % 2}.png") for i in range(4)])

    found = pages(
        backend, "events.debug_images", {"metrics": [{"task": task, "metric": "img"}], "iters": 10}
    )[0]

    assert found == [[(3, ["a"]), (2, ["a"])]]


def test_navigate_later_and_refresh(backend: BackendHarness) -> None:
    task = new_task(backend)
    send(backend, [image(task, i, "a") for i in range(5)])
    body = {"metrics": [{"task": task, "metric": "img"}], "iters": 2}

    first = backend.call("events.debug_images", body)
    second = backend.call("events.debug_images", {**body, "scroll_id": first["scroll_id"]})
    later = backend.call(
        "events.debug_images", {**body, "scroll_id": first["scroll_id"], "navigate_earlier": False}
    )
    send(backend, [image(task, 5, "a")])
    refreshed = backend.call(
        "events.debug_images", {**body, "scroll_id": first["scroll_id"], "refresh": True}
    )

    def iters(reply: dict[str, Any]) -> list[int]:
        return [it["iter"] for it in reply["metrics"][0]["iterations"]]

    assert (iters(first), iters(second), iters(later), iters(refreshed)) == ([4, 3], [2, 1], [4, 3], [5, 4])
    assert refreshed["scroll_id"] == first["scroll_id"]


def test_an_unknown_scroll_id_begins_a_new_scroll(backend: BackendHarness) -> None:
    task = new_task(backend)
    send(backend, [image(task, i, "a") for i in range(3)])

    reply = backend.call("events.debug_images", {"metrics": [{"task": task}], "scroll_id": "forgotten"})

    assert [it["iter"] for it in reply["metrics"][0]["iterations"]] == [2]
    assert reply["scroll_id"] not in (None, "", "forgotten")


def test_plots_scroll_by_iteration_with_the_latest_plot_of_each_variant(backend: BackendHarness) -> None:
    task = new_task(backend)
    plots = [{"type": "plot", "task": task, "iter": i, "metric": "p", "variant": "v", "plot_str": f"{i}-{n}",
              "timestamp": 1_000 + 10 * i + n} for i in range(3) for n in range(2)]  # fmt: skip
    send(backend, plots)

    first = backend.call("events.plots", {"metrics": [{"task": task, "metric": "p"}], "iters": 2})
    rest = backend.call(
        "events.plots",
        {"metrics": [{"task": task, "metric": "p"}], "scroll_id": first["scroll_id"], "iters": 2},
    )
    end = backend.call(
        "events.plots", {"metrics": [{"task": task, "metric": "p"}], "scroll_id": first["scroll_id"]}
    )

    def shown(reply: dict[str, Any]) -> list[str]:
        return [e["plot_str"] for it in reply["metrics"][0]["iterations"] for e in it["events"]]

    assert (shown(first), shown(rest), shown(end)) == (["2-1", "1-1"], ["0-1"], [])


def test_bad_scroll_requests_name_the_field(backend: BackendHarness) -> None:
    task = new_task(backend)
    for body, field in (
        ({"metrics": [{"task": task}], "iters": 0}, "iters"),
        ({"metrics": []}, "metrics"),
        ({"metrics": [{"task": task}], "scroll_id": 7}, "scroll_id"),
    ):
        reply = backend.post("events.debug_images", body)
        assert reply.status_code == 400 and field in reply.json()["meta"]["result_msg"], reply.text
    assert codes(backend, "events.plots", {"metrics": [{"task": "no-such-task"}]})[0] == 400


# --- one sample at a time (the image viewer) ---------------------------------------------------------------


def shown(reply: dict[str, Any]) -> tuple[str, int] | None:
    event = reply["event"]
    return None if event is None else (event["variant"], event["iter"])


def test_debug_image_sample_navigates_variants_then_iterations(backend: BackendHarness, mark: Mark) -> None:
    task = new_task(backend)
    send(backend, [image(task, i, v) for i in range(3) for v in ("a", "b")] + [image(task, 1, "x", "other")])

    first = backend.call("events.get_debug_image_sample", {"task": task, "metric": "img", "variant": "b"})
    steps = [shown(first)]
    for navigation in ({}, {}, {"next_iteration": True}, {}, {}, {"navigate_earlier": False}):
        body = {"task": task, "scroll_id": first["scroll_id"], **navigation}
        steps.append(shown(backend.call("events.next_debug_image_sample", body)))

    assert (first["min_iteration"], first["max_iteration"]) == (0, 2)
    # earlier: b@2, a@2, b@1, (next iteration) b@0, a@0, then nothing; later again from a@0: b@0
    assert steps == [("b", 2), ("a", 2), ("b", 1), ("b", 0), ("a", 0), None, ("b", 0)]
    assert_replies_match_the_schema(backend, mark)


def test_debug_image_sample_at_an_iteration_within_the_valid_range(backend: BackendHarness) -> None:
    task = new_task(backend)
    send(backend, [image(task, i, "a", url=f"http://files/img_a_{i % 2}.png") for i in range(4)])
    body = {"task": task, "metric": "img", "variant": "a"}

    at_three = backend.call("events.get_debug_image_sample", {**body, "iteration": 3})
    overwritten = backend.call("events.get_debug_image_sample", {**body, "iteration": 1})

    assert (shown(at_three), at_three["min_iteration"], at_three["max_iteration"]) == (("a", 3), 2, 3)
    assert shown(overwritten) is None and overwritten["min_iteration"] == 2


def test_debug_image_sample_states_belong_to_their_task_and_metric(backend: BackendHarness) -> None:
    task, other = new_task(backend), new_task(backend)
    send(backend, [image(task, 0, "a"), image(other, 0, "a")])
    opened = backend.call("events.get_debug_image_sample", {"task": task, "metric": "img", "variant": "a"})

    for endpoint, body in (
        ("events.next_debug_image_sample", {"task": other, "scroll_id": opened["scroll_id"]}),
        ("events.next_debug_image_sample", {"task": task, "scroll_id": "never-given"}),
        ("events.get_debug_image_sample",
         {"task": task, "metric": "other", "variant": "a", "scroll_id": opened["scroll_id"]}),
    ):  # fmt: skip
        assert codes(backend, endpoint, body)[0] == 400, (endpoint, body)


def test_plot_sample_navigates_metrics_then_iterations(backend: BackendHarness, mark: Mark) -> None:
    task = new_task(backend)
    send(backend, [{"type": "plot", "task": task, "iter": i, "metric": m, "variant": v, "plot_str": "{}",
                    "timestamp": 1_000 + i} for i in range(3) for m in "AB" for v in "yx"])  # fmt: skip

    def plots(reply: dict[str, Any]) -> tuple[str, int, list[str]] | None:
        events = reply["events"]
        return (events[0]["metric"], events[0]["iter"], [e["variant"] for e in events]) if events else None

    one = backend.call("events.get_plot_sample", {"task": task, "metric": "A"})
    one_metric = [plots(one)]
    for navigation in ({}, {"next_iteration": True}, {}, {"navigate_earlier": False}):
        body = {"task": task, "scroll_id": one["scroll_id"], **navigation}
        one_metric.append(plots(backend.call("events.next_plot_sample", body)))
    every = backend.call(
        "events.get_plot_sample", {"task": task, "metric": "B", "navigate_current_metric": False}
    )
    all_metrics = [plots(every)]
    for navigation in ({}, {}, {"next_iteration": True}, {"navigate_earlier": False}):
        body = {"task": task, "scroll_id": every["scroll_id"], **navigation}
        all_metrics.append(plots(backend.call("events.next_plot_sample", body)))

    xy = ["x", "y"]
    assert (one["min_iteration"], one["max_iteration"]) == (0, 2)
    assert one_metric == [("A", 2, xy), ("A", 1, xy), ("A", 0, xy), None, ("A", 1, xy)]
    assert all_metrics == [("B", 2, xy), ("A", 2, xy), ("B", 1, xy), ("B", 0, xy), ("A", 1, xy)]
    assert_replies_match_the_schema(backend, mark)
