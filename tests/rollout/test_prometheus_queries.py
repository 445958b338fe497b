"""The analysis' PromQL queries evaluated by promtool on series shaped as the inference app, the statistics
controller and the quality exporter write them (non-cumulative statistics buckets, `_sum` the count)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml

from asteroid.rollout.prometheus_metrics import hazardous_le_labels, queries
from asteroid.rollout.state import Version
from tests.monitoring.conftest import tool

CHALLENGER = Version("m2", 2, "asteroid/2")
SCRAPES = 13  # one every 10 s: 0 s … 120 s
PER_SCRAPE = {"requests_200": 8, "requests_500": 2}


def input_series() -> list[dict[str, str]]:
    def grows(step: int) -> str:
        return f"0+{step}x{SCRAPES - 1}"

    version = 'endpoint="asteroid/2"'
    duration = "clearml_serving_version_request_duration_seconds_bucket"
    quality = 'endpoint="asteroid", version="2"'
    return [
        {"series": f'clearml_serving_version_requests_total{{{version}, code="200"}}', "values": grows(8)},
        {"series": f'clearml_serving_version_requests_total{{{version}, code="500"}}', "values": grows(2)},
        {"series": 'clearml_serving_version_requests_total{endpoint="asteroid/1", code="500"}',
         "values": grows(50)},  # another version's errors are not the challenger's
        # cumulative latency buckets: 5 requests ≤ 10 ms, 1 more ≤ 0.5 s, 4 more ≤ 1 s
        *({"series": f'{duration}{{{version}, le="{le}"}}', "values": grows(step)}
          for le, step in (("0.01", 5), ("0.5", 6), ("1.0", 10), ("+Inf", 10))),
        # the statistics controller: 8 rows per scrape, 3 of them above the threshold (0.5) in bucket 0.6
        *({"series": f'asteroid_2:probability_sum{{le="{le}"}}', "values": grows(8)}
          for le in ("0.1", "0.6")),
        {"series": 'asteroid_2:probability_bucket{le="0.1"}', "values": grows(5)},
        {"series": 'asteroid_2:probability_bucket{le="0.6"}', "values": grows(3)},
        {"series": f"asteroid_quality_window_labelled{{{quality}}}", "values": f"40x{SCRAPES - 1}"},
        {"series": f"asteroid_quality_window_correct{{{quality}}}", "values": f"39x{SCRAPES - 1}"},
        *({"series": f'asteroid_quality_window_outcomes{{{quality}, outcome="{outcome}"}}',
           "values": f"{count}x{SCRAPES - 1}"}
          for outcome, count in (("true_positive", 20), ("false_negative", 3), ("true_negative", 16))),
    ]  # fmt: skip


EXPECTED = {
    "requests": 60, "errors": 12, "latency_p99_s": 0.9875, "answered_rows": 48, "hazardous_rows": 18,
    "labelled": 40, "correct": 39, "true_positives": 20, "false_negatives": 3,
}  # fmt: skip


def test_every_analysis_query_reads_its_value_from_the_series(tmp_path: Path) -> None:
    expressions = queries(CHALLENGER, threshold=0.5, window="60s")
    assert set(expressions) == set(EXPECTED)
    tests = [{"expr": expressions[name], "eval_time": "2m", "exp_samples": [{"labels": "{}", "value": value}]}
             for name, value in EXPECTED.items()]  # fmt: skip
    case = {"interval": "10s", "input_series": input_series(), "promql_expr_test": tests}
    document = {"rule_files": [], "evaluation_interval": "10s", "tests": [case]}
    (tmp_path / "test.yml").write_text(yaml.safe_dump(document, sort_keys=False))
    done = subprocess.run([tool("promtool"), "test", "rules", "test.yml"], cwd=tmp_path, capture_output=True,
                          text=True, check=False)  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.parametrize(("threshold", "first"), [(0.5, "0.6"), (0.42, "0.5"), (0.9, "0.95")])
def test_hazardous_buckets_start_above_the_served_threshold(threshold: float, first: str) -> None:
    labels = hazardous_le_labels(threshold)
    assert labels[0] == first and labels[-1] == "+Inf"
