"""The parameters of the pipeline's steps and what one step hands the next: each step's parameter defaults
(the pipeline controller passes overrides of them), the file names inside dataset versions, and the training
task's output parameter the selection step reads. Light enough for the controller to import without the
steps' heavy dependencies (xgboost, pandas)."""

from __future__ import annotations

from typing import Any

import global_config
from asteroid import schema

# File of the raw dataset version (and what versions made by earlier releases hold instead), and folder of the
# split inside the preprocessed version.
RAW_FILE = "asteroid_observations.parquet"
LEGACY_RAW_FILE = "asteroid_observations.csv"
SPLIT_DIR = "split"

GET_DATA_DEFAULTS: dict[str, Any] = {
    # Observations with a close approach on or before this date (the NASA table ends 2016-09-08).
    "query_date": "2016-09-08",
}
PREPROCESSING_DEFAULTS: dict[str, Any] = {
    "raw_dataset_id": "",  # empty: the latest raw dataset version
    "split_seed": 42,
    "val_fraction": global_config.VAL_FRACTION,
    "test_fraction": global_config.TEST_FRACTION,
    "n_buckets": global_config.HISTOGRAM_BUCKETS,
}
TRAINING_DEFAULTS: dict[str, Any] = {
    "preprocessed_dataset_id": "",  # empty: the latest preprocessed dataset version
    "seeds": 3,  # one model per seed 0..seeds-1, all trained by the one training task
    "threshold": schema.HAZARD_THRESHOLD,
    "fault": "",  # drills only: a deliberately broken model (asteroid/rollout/faults.py)
}
# The scalar the training task reports after each seed (iteration: the seed): the best validation PR-AUC of
# the seeds trained so far, the model selection would pick among them. Hyperparameter tuning maximises its
# last value and prunes on its iterations.
OBJECTIVE_TITLE = "selection"
OBJECTIVE_SERIES = "best val_pr_auc"
# The training task's output parameter listing its models: JSON [{seed, model_id, val_pr_auc, val_logloss}].
MODELS_OUTPUT = "models"


def seed_prefix(seed: int) -> str:
    """Prefix of one seed's single values on the training task, e.g. ``seed_1/test/accuracy``."""
    return f"seed_{seed}/"
