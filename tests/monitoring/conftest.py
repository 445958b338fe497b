"""Fixtures for the monitoring tests: the training reference of a split of sample data, and rows to send."""

from __future__ import annotations

import shutil

import pandas as pd
import pytest

from asteroid import features, split_files, splitting
from asteroid.monitoring.reference import TrainingReference, from_contract
from asteroid.serving import contract, traffic


def tool(name: str) -> str:
    """Path of a Prometheus tool; the test is skipped when the Debian package is not installed."""
    path = shutil.which(name)
    if path is None:
        pytest.skip(f"{name} is not installed (apt-get install prometheus prometheus-alertmanager)")
    return path


@pytest.fixture(scope="session")
def feature_spec(tmp_path_factory: pytest.TempPathFactory, sample_frame: pd.DataFrame) -> dict:
    split = splitting.group_split(*features.build_features(sample_frame), seed=3)
    return split_files.load_feature_spec(split_files.save_split(split, tmp_path_factory.mktemp("split")))


@pytest.fixture(scope="session")
def reference(feature_spec: dict) -> TrainingReference:
    return from_contract(contract.from_feature_spec(feature_spec), "asteroid", 1)


@pytest.fixture(scope="session")
def normal_rows(sample_frame: pd.DataFrame) -> pd.DataFrame:
    frame, labels, _ = features.build_features(sample_frame)
    return frame.assign(hazardous=labels)


@pytest.fixture(scope="session")
def drifted_rows(sample_frame: pd.DataFrame) -> pd.DataFrame:
    frame, labels, _ = features.build_features(traffic.drifted(sample_frame))
    return frame.assign(hazardous=labels)
