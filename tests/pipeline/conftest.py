"""Fixtures for the pipeline tests: one embedded backend per module and an isolated project directory."""

from __future__ import annotations

from pathlib import Path

import pytest

# The same module-scoped embedded backend (free ports, contract checking) as the backend tests.
from tests.backend.conftest import backend  # noqa: F401
from tests.project_env import isolated_project


@pytest.fixture
def project_env(tmp_path: Path) -> dict[str, str]:
    """Data, database and run outputs in a temporary directory; no inherited data source."""
    return isolated_project(tmp_path)
