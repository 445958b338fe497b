"""The release contract (asteroid/serving/contract.py): its names and numbers are written nowhere else in the
project's code, the served threshold becomes one of the probability buckets, and the rollout's histogram
configuration is the contract's."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import global_config
from asteroid import schema
from asteroid.serving import contract

CONTRACT_FILE = global_config.ROOT / "asteroid" / "serving" / "contract.py"
# The code that could restate the contract: the package, the entry points, the benchmarks (tests may spell
# the names out: they check the contract from outside).
SOURCES = sorted(
    [
        *(global_config.ROOT / "asteroid").rglob("*.py"),
        *global_config.ROOT.glob("*.py"),
        *(global_config.ROOT / "benchmarks").rglob("*.py"),
    ]
)
NAMES = (contract.PROBABILITY, contract.THRESHOLD_ATTRIBUTE)


def restatements(path: Path) -> list[str]:
    """Where a file writes a contract name as a string (alone or quoted inside a PromQL text), or the
    probability buckets as a literal list."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            text = node.value
            if text in NAMES or any(f'"{name}"' in text for name in NAMES):
                found.append(f"{path.name}:{node.lineno}: {text[:60]!r}")
        elif isinstance(node, (ast.List, ast.Tuple)) and len(node.elts) >= 5:  # not a few quantiles
            try:
                values = [float(ast.literal_eval(element)) for element in node.elts]
            except (ValueError, TypeError):
                continue
            if set(values) <= set(contract.PROBABILITY_BUCKETS):
                found.append(f"{path.name}:{node.lineno}: bucket list {values}")
    return found


def test_the_scan_finds_a_restated_name_and_bucket_list(tmp_path: Path) -> None:
    sample = tmp_path / "sample.py"
    sample.write_text(
        'STAT = "probability"\nEXPR = \'x{feature!="probability"}\'\nBUCKETS = [0.1, 0.2, 0.5, 0.9, 0.99]\n'
        'ATTR = "hazard_threshold"\nFINE = "the probability of it"\n'
    )
    assert [line.split(":")[1] for line in restatements(sample)] == ["1", "2", "3", "4"]


def test_the_contract_names_and_numbers_are_defined_once() -> None:
    assert CONTRACT_FILE in SOURCES and restatements(CONTRACT_FILE)  # the scan sees the definitions
    found = [line for path in SOURCES if path != CONTRACT_FILE for line in restatements(path)]
    assert found == []


def test_every_module_that_names_a_contract_constant_takes_the_contracts_own() -> None:
    from asteroid.monitoring import dashboard, drill, reference, report, rules

    for module in (dashboard, drill, reference, report, rules):
        for name in ("PROBABILITY", "FEATURE_STATISTICS"):
            if hasattr(module, name):
                assert getattr(module, name) is getattr(contract, name), (module.__name__, name)
    assert tuple(schema.FEATURES) == contract.FEATURE_STATISTICS


@pytest.mark.parametrize("threshold", [0.5, 0.3])
def test_a_standard_threshold_keeps_the_standard_buckets(threshold: float) -> None:
    assert contract.probability_buckets(threshold) == list(contract.PROBABILITY_BUCKETS)


def test_another_threshold_becomes_a_bucket_edge_of_its_version_only() -> None:
    edges = contract.probability_buckets(0.35)
    assert edges == sorted([*contract.PROBABILITY_BUCKETS, 0.35])
    terms = contract.ReleaseContract(0.35, {}, {})
    assert terms.hazardous_edges == [edge for edge in contract.PROBABILITY_BUCKETS if edge >= 0.4]
    assert contract.probability_buckets(0.5) == list(contract.PROBABILITY_BUCKETS)  # others unchanged


@pytest.mark.parametrize("bad", [0.0, 1.0, -0.1, 1.5, "x"])
def test_a_threshold_outside_zero_one_is_refused(bad: object) -> None:
    with pytest.raises(ValueError):
        contract.probability_buckets(bad)  # type: ignore[arg-type]


def test_a_spec_without_a_threshold_is_served_at_the_default() -> None:
    spec = {"bucket_edges": {name: [0.0, 1.0] for name in schema.FEATURES}}
    assert contract.from_feature_spec(spec).threshold == schema.HAZARD_THRESHOLD
    with pytest.raises(contract.ContractError, match=schema.FEATURES[0]):
        contract.from_feature_spec({"bucket_edges": {}})


def test_the_rollout_configures_the_contracts_histograms() -> None:
    from asteroid.serving.deploy import metric_logging

    edges = {name: [0.0, 1.0, 2.0] for name in schema.FEATURES}
    spec = contract.spec_with_threshold({"bucket_edges": edges}, 0.35)
    logging = metric_logging("asteroid/1", contract.from_feature_spec(spec), 1.0)
    buckets = {name: list(metric.buckets) for name, metric in logging.metrics.items()}
    assert buckets == {**edges, contract.PROBABILITY: contract.probability_buckets(0.35)}
