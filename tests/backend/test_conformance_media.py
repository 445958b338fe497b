"""The real SDK's readers of what a task reported, against the embedded backend: ``Task.get_debug_samples``
(events.debug_images, scrolled until empty), an HTML file reported with ``Logger.report_media``,
``Task.get_reported_plots`` and ``Task.get_reported_scalars``, in one fresh SDK process."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.backend.backend_harness import BackendHarness

FLOWS = Path(__file__).parent / "flows"
pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.fixture(scope="module")
def media(backend: BackendHarness) -> dict[str, Any]:
    mark = backend.log.mark()
    result: dict[str, Any] = backend.run(FLOWS / "media_flow.py", "media flow", "media task").last_json()
    backend.log.assert_clean(mark)
    return result


def test_debug_samples_come_back_once_each_newest_first(media: dict[str, Any]) -> None:
    samples = media["samples"]
    assert {series: [it for it, _ in events] for series, events in samples.items()} == {
        "digit": [4, 3, 2, 1, 0],
        "noise": [2, 1, 0],
    }
    urls = [url for events in samples.values() for _, url in events]
    assert len(set(urls)) == len(urls) == 8


def test_html_media_round_trips_via_the_file_server(backend: BackendHarness, media: dict[str, Any]) -> None:
    assert len(media["media_urls"]) == 1
    assert media["media_urls"][0].startswith(backend.files_url + "/")
    assert media["media_urls"][0].endswith(".html")
    assert media["html"] == media["sent_html"]


def test_reported_plots_are_the_latest_iterations_asked_for(media: dict[str, Any]) -> None:
    assert media["plots"] == [["curve", "points", it] for it in range(len(media["losses"]))]


def test_reported_scalars_read_back_as_reported(media: dict[str, Any]) -> None:
    losses = media["losses"]
    assert media["scalars"]["x"] == list(range(len(losses)))
    assert media["scalars"]["y"] == losses
