"""The model's features from a table in NASA's schema: the columns the model takes, the label and the
asteroid each row belongs to. The features are computed by `feature_rows.compute_features`, the code the
serving hook runs on request rows."""

from __future__ import annotations

import pandas as pd

from asteroid import feature_rows, schema

# The source columns `build_features` reads, by their names in NASA's table: all a step needs to load.
INPUT_COLUMNS: tuple[str, ...] = tuple(
    column.name
    for column in schema.COLUMNS
    if column.snake in (*feature_rows.SOURCE_COLUMNS, schema.LABEL_NAME, schema.GROUP_NAME)
)


def build_features(df: pd.DataFrame) -> tuple[pd.DataFrame, pd.Series, pd.Series]:
    """Model features (snake_case, float64, in `schema.FEATURES` order), label (int 0/1) and groups.

    Accepts the source columns with their original names (CSV or database) or in snake_case. The features
    come from `feature_rows.compute_features`, the same code the serving hook runs on request rows.
    """
    frame = df.rename(columns={column.name: column.snake for column in schema.COLUMNS})
    for name, (low, high) in schema.DERIVED_FEATURES.items():
        # A frame that already holds a derived feature (and not its sources) stands for sources equal to it.
        low, high = schema.snake_case(low), schema.snake_case(high)
        if name in frame and low not in frame and high not in frame:
            frame[low] = frame[high] = frame[name]
    needed = [*feature_rows.SOURCE_COLUMNS, schema.LABEL_NAME, schema.GROUP_NAME]
    missing = [name for name in needed if name not in frame]
    if missing:
        raise ValueError(f"cannot build features: missing column(s) {', '.join(map(repr, missing))}")
    sources = {name: frame[name].astype("float64") for name in feature_rows.SOURCE_COLUMNS}
    features = pd.DataFrame(feature_rows.compute_features(sources)).reset_index(drop=True)
    labels = frame[schema.LABEL_NAME].astype(bool).astype("int64").reset_index(drop=True)
    groups = frame[schema.GROUP_NAME].astype("int64").reset_index(drop=True)
    return features, labels.rename(schema.LABEL_NAME), groups.rename(schema.GROUP_NAME)
