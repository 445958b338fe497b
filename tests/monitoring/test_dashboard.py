"""The Grafana files: the committed copies equal the generator's output, and the checks that
grafana-foundation-sdk's `from_json` does not make (it does not validate): every feature has its heatmap,
every query names the fixed datasource uid, panels do not overlap, the provisioning files have the fields
Grafana requires."""

from __future__ import annotations

import json

import pytest
import yaml
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models.dashboard import Dashboard

from asteroid import schema
from asteroid.monitoring import dashboard


@pytest.fixture(scope="module")
def files() -> dict[str, str]:
    return dashboard.generated_files()


def test_the_committed_files_equal_the_generator(files: dict[str, str]) -> None:
    for relative, content in files.items():
        path = dashboard.DASHBOARDS_DIR / relative
        assert path.read_text(encoding="utf-8") == content, (
            f"{path} differs from the generator: run python -m asteroid.monitoring.dashboard"
        )


def test_the_dashboard_round_trips_through_the_sdk_model(files: dict[str, str]) -> None:
    data = json.loads(files["asteroid.json"])
    again = json.loads(JSONEncoder(sort_keys=True).encode(Dashboard.from_json(data)))
    assert again == data


def test_every_feature_has_its_heatmap_and_every_query_the_datasource(files: dict[str, str]) -> None:
    panels = json.loads(files["asteroid.json"])["panels"]
    heatmaps = [panel["title"].split(":")[0] for panel in panels if panel["type"] == "heatmap"]
    assert heatmaps == list(schema.FEATURES)
    for panel in panels:
        if panel["type"] == "row":
            continue
        assert panel["datasource"] == {"type": "prometheus", "uid": dashboard.DATASOURCE_UID}, panel["title"]
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            assert target["datasource"]["uid"] == dashboard.DATASOURCE_UID and target["expr"], panel["title"]
    titles = {panel["title"] for panel in panels}
    for wanted in ("Request rate by endpoint and status", "Latency percentiles (inference app)",
                   "Error rate by status (4xx/5xx)", "Firing alerts"):  # fmt: skip
        assert wanted in titles


def test_panels_fit_the_grid_without_overlapping(files: dict[str, str]) -> None:
    cells: set[tuple[int, int]] = set()
    for panel in json.loads(files["asteroid.json"])["panels"]:
        grid = panel["gridPos"]
        assert grid["x"] >= 0 and grid["x"] + grid["w"] <= 24, panel["title"]
        area = {
            (x, y)
            for x in range(grid["x"], grid["x"] + grid["w"])
            for y in range(grid["y"], grid["y"] + grid["h"])
        }
        assert not area & cells, f"{panel['title']} overlaps another panel"
        cells |= area


def test_provisioning_files_have_what_grafana_requires(files: dict[str, str]) -> None:
    datasources = yaml.safe_load(files["provisioning/datasources/prometheus.yaml"])
    assert datasources["apiVersion"] == 1
    assert (
        datasources["datasources"][0] | {"uid": dashboard.DATASOURCE_UID, "type": "prometheus"}
        == (datasources["datasources"][0])
    )
    providers = yaml.safe_load(files["provisioning/dashboards/asteroid.yaml"])["providers"]
    assert providers[0]["type"] == "file" and providers[0]["options"]["path"]
    alerting = yaml.safe_load(files["provisioning/alerting/asteroid-drift.yaml"])
    assert alerting["apiVersion"] == 1
    for group in alerting["groups"]:
        assert {"orgId", "name", "folder", "interval", "rules"} <= set(group)
        for rule in group["rules"]:
            assert {"uid", "title", "condition", "data", "for", "noDataState", "execErrState"} <= set(rule)
            assert rule["condition"] in {query["refId"] for query in rule["data"]}
            assert len(rule["uid"]) <= 40
    assert len(dashboard.expressions(files)) >= len(schema.FEATURES) + 7
