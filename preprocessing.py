"""ClearML task 'preprocess data': turns the raw dataset into features, labels and a group-aware split,
registered as the child Dataset preprocessed_asteroid_dataset.

Run on its own (`python preprocessing.py`), or as a step of `pipeline.py`, which overrides its parameters.
"""

from asteroid.steps.preprocessing import main
from asteroid.tracking import run_step

if __name__ == "__main__":
    run_step(main)
