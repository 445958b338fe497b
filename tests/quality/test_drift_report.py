"""The Evidently data-drift report of the logged live features: the live rows of a time range read from the
prediction log, the report of a shifted feature against a training frame (the shifted feature drifts, the
others do not), evidently importing on pandas 3 only through its guarded patch, and the HTML attached to the
serving service's monitoring task (a media event of the task, listed by the web view, its file the HTML)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import requests

from asteroid.quality import report, store
from tests.backend.backend_harness import BackendHarness
from tests.backend.conftest import backend  # noqa: F401
from tests.webview.browser import RUNS, assert_not_blank, read_dom, render

FLOW = Path(__file__).parent / "flows" / "drift_report_flow.py"
FEATURES = ("absolute_magnitude", "eccentricity", "miss_dist_astronomical")


def frame(rows: int, seed: int, magnitude_shift: float = 0.0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "absolute_magnitude": rng.normal(22.0 + magnitude_shift, 2.0, rows),
            "eccentricity": rng.uniform(0.0, 0.9, rows),
            "miss_dist_astronomical": rng.uniform(0.0, 0.5, rows),
        }
    )


@pytest.fixture(scope="module")
def shifted(tmp_path_factory: pytest.TempPathFactory) -> report.DriftReport:
    out = tmp_path_factory.mktemp("report") / "drift_report.html"
    return report.build_report(frame(1500, 1), frame(3000, 2, magnitude_shift=-1.5), out)


def test_the_shifted_feature_drifts_and_the_others_do_not(shifted: report.DriftReport) -> None:
    assert shifted.drifted_features == ["absolute_magnitude"]
    assert shifted.drift_share == pytest.approx(1 / 3)
    assert set(shifted.scores) == set(FEATURES) and set(shifted.methods) == set(FEATURES)
    assert (shifted.live_rows, shifted.reference_rows) == (3000, 1500)


def test_the_report_is_a_self_contained_html_page(shifted: report.DriftReport) -> None:
    html = shifted.path.read_text()
    assert html.lstrip().lower().startswith("<!doctype html") or "<html" in html[:200].lower()
    assert "absolute_magnitude" in html and shifted.path.stat().st_size > 100_000


def test_same_distribution_no_drift(tmp_path: Path) -> None:
    same = report.build_report(frame(1500, 1), frame(3000, 3), tmp_path / "same.html")
    assert same.drifted_features == [] and same.drift_share == 0.0


def test_live_rows_of_a_time_range_come_from_the_prediction_log(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'quality.db'}"
    features = [{"absolute_magnitude": 20.0 + t, "eccentricity": 0.1} for t in range(10)]
    rows = [
        store.Prediction(f"r{t}", float(t), "asteroid/1", "m", "1", None, None, features[t], 0.1, False)
        for t in range(10)
    ]
    with store.engine(url).begin() as connection:
        store.store_batch(connection, rows, {})
    live = report.live_features(url, since=3.0, until=6.0, features=("absolute_magnitude", "eccentricity"))
    assert sorted(live["absolute_magnitude"]) == [23.0, 24.0, 25.0]
    with pytest.raises(ValueError, match="no live rows"):
        report.build_report(frame(10, 1)[["absolute_magnitude"]], live.iloc[0:0], tmp_path / "none.html")


def run_python(code: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-c", code]
    return subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)


def test_evidently_imports_on_pandas_3_only_through_the_patch() -> None:
    plain = run_python("import evidently")
    assert plain.returncode != 0 and "infer_dtype_from_object" in plain.stderr  # why the patch exists
    patched = run_python(
        "import third_party_patches, evidently.presets\n"
        "print(third_party_patches.let_evidently_import_on_pandas_3())"
    )
    assert patched.returncode != 0  # the patch must come first
    patched = run_python(
        "import third_party_patches\n"
        "assert third_party_patches.let_evidently_import_on_pandas_3()\n"
        "import evidently.presets\n"
        "from pandas.core.dtypes.common import infer_dtype_from_object\n"
        "try:\n    infer_dtype_from_object('float64')\nexcept NotImplementedError as exc:\n    print(exc)\n"
    )
    assert patched.returncode == 0, patched.stderr
    assert "pandas 3 removed" in patched.stdout


def test_the_patch_switches_itself_off_when_evidently_imports_something_else() -> None:
    changed = run_python(
        "import third_party_patches\n"
        "third_party_patches._REMOVED_BY_PANDAS_3 = 'a_function_evidently_does_not_import'\n"
        "print(third_party_patches.let_evidently_import_on_pandas_3())"
    )
    assert changed.stdout.strip() == "False"
    line = changed.stderr.strip()
    assert line.startswith("third_party_patches: let_evidently_import_on_pandas_3 switched off: "), line
    assert "\n" not in line


@pytest.mark.integration
def test_the_report_is_attached_to_the_monitoring_task_and_listed_by_the_web_view(
    backend: BackendHarness,  # noqa: F811
    shifted: report.DriftReport,
    tmp_path: Path,
) -> None:
    result = backend.run(FLOW, str(shifted.path), timeout=300).last_json()
    events = backend.call(
        "events.get_task_events", {"task": result["task"], "event_type": "training_debug_image"}
    )["events"]
    [sample] = events
    assert (sample["metric"], sample["variant"], sample["iter"]) == (report.REPORT_TITLE, "drift", 1)
    assert sample["url"].endswith(".html")
    page = f"{backend.api_url}/projects/{result['project']}/experiments/{result['task']}/output/debugImages"
    listed = requests.get(page, timeout=30)
    assert listed.status_code == 200 and report.REPORT_TITLE in listed.text
    [link] = re.findall(r'<a href="(/webview/files/[^"]+\.html)"', listed.text)
    assert requests.get(backend.api_url + link, timeout=30).content == shifted.path.read_bytes()
    shot = RUNS / "drift-report-media.png"
    shown = render(page, tmp_path / "profile", screenshot=shot)
    assert f"{report.REPORT_TITLE}" in read_dom(shown.dom).text
    assert_not_blank(shot)
