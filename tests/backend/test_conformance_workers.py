"""Workers as the real clearml-server lists them: tag filters, the last-seen window, counts."""

from __future__ import annotations

from tests.backend.backend_harness import BackendHarness
from tests.backend.conformance import codes, unique


def listed(backend: BackendHarness, **query: object) -> list[str]:
    return [w["id"] for w in backend.call("workers.get_all", query)["workers"]]


def test_tag_filters_and_counts(backend: BackendHarness) -> None:
    tag, system_tag = unique("tag"), unique("sys")
    worker = unique("worker")
    backend.call("workers.register", {"worker": worker, "tags": [tag, "gpu"], "system_tags": [system_tag]})

    assert listed(backend, tags=[tag]) == [worker]
    assert listed(backend, tags=[tag, "absent"]) == [worker]  # any of the tags
    assert listed(backend, tags=[f"-{tag}"]).count(worker) == 0
    assert listed(backend, system_tags=[system_tag], tags=["gpu"]) == [worker]
    assert listed(backend, system_tags=[f"-{system_tag}"]).count(worker) == 0
    (found,) = backend.call("workers.get_all", {"tags": [tag]})["workers"]
    assert (found["tags"], found["system_tags"]) == ([tag, "gpu"], [system_tag])

    assert backend.call("workers.get_count", {"system_tags": [system_tag]})["count"] == 1
    assert backend.call("workers.get_count", {"system_tags": [system_tag], "last_seen": 600})["count"] == 1
    assert codes(backend, "workers.get_count", {"tags": [5]})[0] == 400
    assert codes(backend, "workers.get_count", {"last_seen": "recently"})[0] == 400
