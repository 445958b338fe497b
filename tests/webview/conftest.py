"""Fixtures for the web view tests: one backend filled by real SDK flows, always stopped."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.backend.backend_harness import BackendHarness
from tests.webview.populate import Populated, populate


@pytest.fixture(scope="module")
def backend(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BackendHarness]:
    harness = BackendHarness(tmp_path_factory.mktemp("webview")).start()
    try:
        yield harness
    finally:
        harness.stop()


@pytest.fixture(scope="module")
def populated(backend: BackendHarness) -> Populated:
    return populate(backend)
