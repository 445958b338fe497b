"""Fixtures shared by the data, model and code tests."""

from __future__ import annotations

import gc
import socket
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest

import global_config
from asteroid import sample_data

SAMPLE_ROWS = 3000
SAMPLE_SEED = 11


@pytest.fixture(autouse=True)
def no_frozen_objects_after_a_test() -> Iterator[None]:
    """The serving hook freezes what is alive after loading a model (`gc.freeze`, as a worker should); in the
    test process that would keep every later test's garbage from the earlier tests' frozen objects."""
    yield
    if gc.get_freeze_count():
        gc.unfreeze()


@pytest.fixture(scope="session")
def nasa_csv() -> Path:
    """NASA's real table beside the checkout; tests that need it are skipped when it is absent."""
    path = Path(global_config.SHARED_NASA_CSV)
    if not path.is_file():
        pytest.skip(f"NASA table not present at {path}")
    return path


@pytest.fixture(scope="session")
def nasa_frame(nasa_csv: Path) -> pd.DataFrame:
    return pd.read_csv(nasa_csv)


@pytest.fixture(scope="session")
def sample_frame() -> pd.DataFrame:
    """Generated sample data (treat as read-only: it is shared by the whole session)."""
    return sample_data.generate_sample(SAMPLE_ROWS, SAMPLE_SEED)


@pytest.fixture(scope="session")
def sample_csv(tmp_path_factory: pytest.TempPathFactory, sample_frame: pd.DataFrame) -> Path:
    return sample_data.to_nasa_csv(sample_frame, tmp_path_factory.mktemp("sample") / "sample.csv")


@pytest.fixture
def taken_port() -> Iterator[int]:
    """A loopback port something else is listening on."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        yield int(listener.getsockname()[1])
