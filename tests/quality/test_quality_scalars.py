"""The live quality figures as ClearML scalars of the serving service's monitoring task: computed from the
stored counts (unit), and reported to the embedded backend and read back with the SDK (integration)."""

from __future__ import annotations

from pathlib import Path

import pytest

from asteroid.quality import scalars, store
from tests.backend.backend_harness import BackendHarness
from tests.backend.conftest import backend  # noqa: F401

FLOW = Path(__file__).parent / "flows" / "scalars_flow.py"
NOW = 1_900_000_000.0
SERIES = "asteroid/1"
# 10 labels in the last hour: TP 3, FN 1, FP 2, TN 4; 2 labels from a day ago; 8 predictions unlabelled
EXPECTED = {
    scalars.ACCURACY: 0.7,
    scalars.RECALL: 0.75,
    scalars.PRECISION: 0.6,
    scalars.LABELLED: 10.0,
    scalars.COVERAGE: 0.6,
}


def prediction(request_id: str, hazardous: bool) -> store.Prediction:
    probability = 0.9 if hazardous else 0.1
    return store.Prediction(request_id, NOW - 7200, SERIES, "m", "1", None, None, {}, probability, hazardous)


def label(request_id: str, hazardous: bool, at: float) -> store.LabelRecord:
    return store.LabelRecord(request_id, hazardous, f"label of {request_id}", at, "feedback")


def fill(database_url: str) -> None:
    outcomes = [(True, True)] * 3 + [(False, True)] + [(True, False)] * 2 + [(False, False)] * 4
    predictions, labels = [], []
    for index in range(20):
        decision = outcomes[index][0] if index < 10 else False
        predictions.append(prediction(f"r{index}", decision))
        if index < 10:
            labels.append(label(f"r{index}", outcomes[index][1], NOW - 60))
        elif index < 12:
            labels.append(label(f"r{index}", False, NOW - 86400))
    with store.engine(database_url).begin() as connection:
        store.store_batch(connection, predictions, {})
        store.store_labels(connection, labels)


def test_the_figures_of_each_version_come_from_the_counts(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'quality.db'}"
    fill(url)
    with store.engine(url).connect() as connection:
        window = store.quality_counts(connection, labelled_since=NOW - 3600)
        stored = store.quality_counts(connection)
    found = {(figure.title, figure.series): figure.value for figure in scalars.figures(window, stored)}
    assert found == pytest.approx({(title, SERIES): value for title, value in EXPECTED.items()})


def test_no_figure_without_its_denominator(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'quality.db'}"
    with store.engine(url).begin() as connection:
        store.store_batch(connection, [prediction("r", False)], {})
    with store.engine(url).connect() as connection:
        window = store.quality_counts(connection, labelled_since=NOW - 3600)
        stored = store.quality_counts(connection)
    # nothing labelled: no accuracy, recall or precision; 0 labels and 0 coverage are figures
    assert {figure.title: figure.value for figure in scalars.figures(window, stored)} == {
        scalars.LABELLED: 0.0,
        scalars.COVERAGE: 0.0,
    }


@pytest.mark.integration
def test_the_monitoring_task_holds_the_figures_read_back_with_the_sdk(
    backend: BackendHarness,  # noqa: F811
    tmp_path: Path,
) -> None:
    url = f"sqlite:///{tmp_path / 'quality.db'}"
    fill(url)
    result = backend.run(FLOW, url, str(NOW), timeout=300).last_json()
    assert result["picked"] == result["controller"]  # the service's statistics controller, not another's
    assert result["reported"] == len(EXPECTED)
    read = {title: series[SERIES]["y"] for title, series in result["scalars"].items()}
    assert all(len(values) == 1 for values in read.values())
    assert {title: values[0] for title, values in read.items()} == pytest.approx(EXPECTED)
    assert all(series[SERIES]["x"] == [int(NOW)] for series in result["scalars"].values())
    # the task's last_metrics: what a ClearML trigger compares (its minimum for trigger_on_sign="min")
    for key in ("last", "min"):
        assert {title: series[SERIES][key] for title, series in result["last"].items()} == pytest.approx(
            EXPECTED
        )
