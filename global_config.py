"""All project configuration in one place: names, paths and defaults, most of them overridable from the
environment (the variable is named beside each)."""

from __future__ import annotations

import os
from pathlib import Path

ROOT = Path(__file__).resolve().parent


def _env_path(name: str, default: Path) -> Path:
    value = os.environ.get(name)
    return Path(value).expanduser().resolve() if value else default


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    try:
        return int(value)
    except ValueError as exc:
        raise ValueError(f"environment variable {name} must be an integer, got {value!r}") from exc


# --- ClearML naming ------------------------------------------------------------------------------
PROJECT_NAME = os.environ.get("ASTEROID_PROJECT", "Asteroid Hazard")
PIPELINE_NAME = os.environ.get("ASTEROID_PIPELINE", "asteroid pipeline")
GET_DATA_TASK = "get data"
PREPROCESS_TASK = "preprocess data"
TRAINING_TASK = "model training"
RAW_DATASET_NAME = "raw_asteroid_dataset"
PREPROCESSED_DATASET_NAME = "preprocessed_asteroid_dataset"
MODEL_NAME = "asteroid-xgboost"
WINNER_TAG = "pipeline_winner"

# --- Data --------------------------------------------------------------------------------------------
DATA_DIR = _env_path("ASTEROID_DATA_DIR", ROOT / "data")
# Where users put NASA's table; used when NEO_SOURCE_CSV is not set and the file exists.
DEFAULT_SOURCE_CSV = DATA_DIR / "nasa.csv"
# The real table beside the project checkout (tests use it when present).
SHARED_NASA_CSV = ROOT.parent / "shared" / "data" / "nasa.csv"
DATABASE_URL = os.environ.get("NEO_DATABASE_URL") or f"sqlite:///{DATA_DIR / 'asteroids.db'}"
OBSERVATIONS_TABLE = "neo_observations"
REJECTED_TABLE = "neo_rejected_rows"
SAMPLE_ROWS = _env_int("ASTEROID_SAMPLE_ROWS", 4687)
SAMPLE_SEED = _env_int("ASTEROID_SAMPLE_SEED", 7)

# --- Pipeline --------------------------------------------------------------------------------------------
# How step tasks carry their code: "repository" (agents clone the recorded commit), "standalone" (each task
# holds its whole script; agents import the installed package), or "auto" (repository when there is a git
# remote, else standalone).
STEP_CODE = os.environ.get("ASTEROID_STEP_CODE", "auto")

# Split and histogram defaults of the preprocessing step (fractions are of asteroids, not rows).
VAL_FRACTION = 0.15
TEST_FRACTION = 0.15
HISTOGRAM_BUCKETS = 10  # bucket edges per feature: training quantiles, also the serving histograms' buckets

# --- Runs and outputs --------------------------------------------------------------------------------
RUNS_DIR = _env_path("ASTEROID_RUNS_DIR", ROOT / "runs")

# --- Serving (clearml-serving) ------------------------------------------------------------------------
# The clearml-serving service `make serve` creates or reuses, and the endpoint the winner is served on:
# POST /serve/<endpoint> answers with the newest version, /serve/<endpoint>/<n> with version n.
SERVING_SERVICE_NAME = os.environ.get("ASTEROID_SERVING_SERVICE", "asteroid hazard serving")
SERVING_PROJECT = os.environ.get("ASTEROID_SERVING_PROJECT", "DevOps")  # clearml-serving's default project
SERVING_ENDPOINT = os.environ.get("ASTEROID_SERVING_ENDPOINT", "asteroid")
# Model versions kept on the service; older ones are removed when a new winner is rolled out.
SERVING_MAX_VERSIONS = _env_int("ASTEROID_SERVING_MAX_VERSIONS", 2)
# Fraction of requests whose statistics are collected (clearml-serving's `metrics add --log-freq`). 1.0 suits
# drift watching at modest traffic; above a few hundred requests/s per worker lower it: the stock sender
# serializes everything queued in the last 10 s in one go, stalling its worker (benchmarks/serving_bench.py).
SERVING_METRIC_LOG_FREQ = float(os.environ.get("ASTEROID_SERVING_METRIC_LOG_FREQ") or 1.0)
# Whether the pipeline's selection step rolls its winner out to the service (when the service exists).
SERVING_AUTO_ROLLOUT = os.environ.get("ASTEROID_SERVING_ROLLOUT", "1") not in ("0", "false", "no")
# The local serving stack's data directory (state, logs, rules, alerts) is serving_local's own setting:
# SERVING_LOCAL_DATA_DIR, else .serving_local in the working directory (serving_local.api finds it).
