"""Fixtures for the embedded-backend tests: a backend per test module, always stopped."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.backend.backend_harness import BackendHarness, Mark


@pytest.fixture(scope="module")
def backend(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BackendHarness]:
    """An embedded backend on free ports with a fresh data directory and a contract-checking observer."""
    harness = BackendHarness(tmp_path_factory.mktemp("backend")).start()
    try:
        yield harness
    finally:
        harness.stop()


@pytest.fixture
def mark(backend: BackendHarness) -> Mark:
    """Where this test's API calls begin in the backend's call log."""
    return backend.log.mark()
