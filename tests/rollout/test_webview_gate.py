"""The web view shows a rollout's decisions: the serving page each served model's tags (the gate's verdict,
production, rolled back), the model page the tags and the gate's figures kept as model metadata."""

from __future__ import annotations

from pathlib import Path

from clearml_local.storage import Store
from clearml_local.webview import WebView

ENDPOINTS = """asteroid/1 {engine_type = xgboost, serving_url = asteroid, version = "1", model_id = m1}
asteroid/2 {engine_type = xgboost, serving_url = asteroid, version = "2", model_id = m2}"""
CANARY = 'asteroid {endpoint = asteroid, weights = [90, 10], load_endpoints = ["asteroid/1", "asteroid/2"]}'


def test_the_serving_and_model_pages_show_the_gate_and_rollout_tags(tmp_path: Path) -> None:
    store = Store(tmp_path / "db.sqlite")
    store.put("projects", {"id": "p", "name": "Asteroid Hazard"})
    store.put("tasks", {
        "id": "svc", "name": "asteroid hazard serving", "project": "p", "type": "service",
        "system_tags": ["serving-control-plane"],
        "configuration": {"endpoints": {"name": "endpoints", "value": ENDPOINTS},
                          "canary": {"name": "canary", "value": CANARY}},
    })  # fmt: skip
    store.put(
        "models", {"id": "m1", "name": "champion", "project": "p", "tags": ["gate_passed", "production"]}
    )
    verdict = {"key": "gate_verdict", "type": "str", "value": "gate passed: recall 0.95"}
    store.put("models", {
        "id": "m2", "name": "challenger", "project": "p",
        "tags": ["gate_passed", "rolled_back", "rolled_back:error_rate"],
        "metadata": {"gate_verdict": verdict},
    })  # fmt: skip
    view = WebView(store)
    serving = view.handle("/serving/svc", "").body.decode()
    assert "Model tags" in serving and "rolled_back:error_rate" in serving and "production" in serving
    assert "90, 10" in serving
    model = view.handle("/projects/p/models/m2", "").body.decode()
    assert "rolled_back:error_rate" in model and "gate passed: recall 0.95" in model
