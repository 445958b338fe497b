"""The preprocessing code clearml-serving uploads for the test endpoint (never executed by the tests)."""

from __future__ import annotations

from typing import Any


class Preprocess:
    def preprocess(self, body: dict[str, Any], state: dict[str, Any], collect_stats: Any = None) -> Any:
        return [[body["x"]]]

    def postprocess(self, data: Any, state: dict[str, Any], collect_stats: Any = None) -> Any:
        return {"y": data.tolist()}
