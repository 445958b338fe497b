"""The comparison hook for benchmarks/serving_bench.py, built like the original example's: a pandas DataFrame
per request, a DMatrix for the stock `xgboost` engine, no validation. Batches (`{"rows": [...]}`, which the
original could not take) become one DataFrame, the way pandas is best used. Single file; needs the project
installed (the local stack's environment has it) for the column names."""

from __future__ import annotations

from typing import Any

import pandas as pd
import xgboost as xgb

from asteroid import schema
from asteroid.serving import contract

RENAME = {column.name: column.snake for column in schema.COLUMNS}
# As the project's hook: statistics for at most this many rows of a batch (here simply the first ones).
STATISTICS_ROWS = 50


class Preprocess:
    def preprocess(self, body: dict, state: dict, collect_custom_statistics_fn: Any = None) -> Any:
        state["batch"] = "rows" in body
        frame = pd.DataFrame(body["rows"] if state["batch"] else [body]).rename(columns=RENAME)
        frame["est_dia_km_avg"] = (frame["est_dia_in_km_min"] + frame["est_dia_in_km_max"]) / 2
        # the model's computed feature, as a pandas hook would compute it
        inside = (frame["minimum_orbit_intersection"] <= schema.CNEOS_MOID_MAX_AU) & (
            frame["absolute_magnitude"] <= schema.CNEOS_H_MAX
        )
        frame[schema.CNEOS_CELL] = inside.astype(float)
        features = frame[list(schema.FEATURES)].astype(float)
        if collect_custom_statistics_fn:
            collect_custom_statistics_fn(
                features.head(STATISTICS_ROWS).to_dict(orient="list")
                if state["batch"]
                else features.iloc[0].to_dict()
            )
        return xgb.DMatrix(features)

    def postprocess(self, data: Any, state: dict, collect_custom_statistics_fn: Any = None) -> dict:
        probabilities = [float(p) for p in data]
        if collect_custom_statistics_fn:
            collect_custom_statistics_fn(
                {contract.PROBABILITY: probabilities if state["batch"] else probabilities[0]}
            )
        threshold = schema.HAZARD_THRESHOLD
        predictions = [{"hazardous": p >= threshold, contract.PROBABILITY: p} for p in probabilities]
        return {"predictions": predictions} if state["batch"] else predictions[0]
