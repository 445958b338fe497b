"""The generic-service test's hook: two numbers in, the class out (shaped like clearml-serving's example)."""

from typing import Any

import numpy as np


class Preprocess:
    def preprocess(self, body: dict, state: dict, collect_custom_statistics_fn: Any = None) -> Any:
        return [[body.get("x0"), body.get("x1")]]

    def postprocess(self, data: Any, state: dict, collect_custom_statistics_fn: Any = None) -> dict:
        return {"y": data.tolist() if isinstance(data, np.ndarray) else data}
