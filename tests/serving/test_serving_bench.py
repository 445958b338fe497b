"""`benchmarks/serving_bench.py --quick` runs every part of the serving benchmark end to end (its figures are
meaningless at a second a measurement; the lead's full run on a quiet machine gives the README's)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

import global_config

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_the_quick_benchmark_measures_every_part_and_prints_the_aims(tmp_path: Path) -> None:
    out = tmp_path / "results.json"
    done = subprocess.run(
        [sys.executable, "benchmarks/serving_bench.py", "--quick", "--json", str(out)],
        cwd=global_config.ROOT,
        capture_output=True,
        text=True,
        timeout=1200,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "Aims (issue 21, item 5):" in done.stdout
    results = json.loads(out.read_text())
    assert "FAILED" not in done.stdout
    for hooks in results["single_row"].values():
        for hook in ("asteroid", "pandas"):
            assert {"flat_out", "rate_100", "rate_500"} <= set(hooks[hook])
            assert hooks[hook]["flat_out"]["requests_per_second"] > 0
    for size, measured in results["batches"].items():
        assert measured["arrow"]["rows_per_second"] > 0 and measured["json"]["rows_per_second"] > 0, size
        assert results["limit"][size] > measured["arrow"]["rows_per_second"]
        assert measured["arrow"]["cpu_ms_per_request"]["inference"] > 0
    for sender in ("steady_project_sender", "steady_stock_sender"):
        assert results[sender]["answers_per_second"] and results[sender]["worst_second"] > 0
    for log in ("log_on", "log_off"):
        assert set(results[log]) == {"plain", "explain"}
        for explain in ("plain", "explain"):
            assert results[log][explain]["arrow_1000"]["rows_per_second"] > 0
            assert results[log][explain]["arrow_rate"]["latency_ms"]["p99"] > 0
    # (d): the log on and off each in a stack of its own, with the consumer; the forwarders counted apart
    assert [set(measured) for measured in results["log_rounds"]] == [{"on", "off", "stored"}]
    stored = results["log_rounds"][0]["stored"]  # every row answered with the log on reached the database
    assert stored["stored_rows"] == stored["answered_rows"] > 0
    off_cpu = results["log_off"]["plain"]["flat_out"]["cpu_ms_per_request"]
    assert {"inference", "forwarder", "broker", "asteroid-quality"} <= set(off_cpu)
    assert off_cpu["forwarder"] == 0  # no forwarder runs with the log off
    assert set(results["hook_stages"]) >= {"1 row, JSON", "1,000 rows, Arrow"}
