"""The environment that gives a subprocess of the project its own data, database and run outputs."""

from __future__ import annotations

from pathlib import Path


def isolated_project(root: Path) -> dict[str, str]:
    """Data, database and run outputs under `root`; no inherited data source (sample data is generated)."""
    return {
        "ASTEROID_DATA_DIR": str(root / "data"),
        "ASTEROID_RUNS_DIR": str(root / "runs"),
        "NEO_DATABASE_URL": f"sqlite:///{root / 'data' / 'asteroids.db'}",
        "NEO_SOURCE_CSV": "",
        "ASTEROID_HANDOFF_DIR": str(root / "handoff"),  # dataset_handoff.ROOT_ENV
    }
