"""Fixtures for the pipeline tests: one embedded backend per module and an isolated project directory."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.backend.backend_harness import BackendHarness


@pytest.fixture(scope="module")
def backend(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BackendHarness]:
    harness = BackendHarness(tmp_path_factory.mktemp("pipeline-backend")).start()
    try:
        yield harness
    finally:
        harness.stop()


@pytest.fixture
def project_env(tmp_path: Path) -> dict[str, str]:
    """Data, database and run outputs in a temporary directory; no inherited data source."""
    return {
        "ASTEROID_DATA_DIR": str(tmp_path / "data"),
        "ASTEROID_RUNS_DIR": str(tmp_path / "runs"),
        "NEO_DATABASE_URL": f"sqlite:///{tmp_path / 'data' / 'asteroids.db'}",
        "NEO_SOURCE_CSV": "",
    }
