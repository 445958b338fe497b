"""ClearML task 'preprocess data': turns the raw dataset into features, labels and a group-aware split,
registered as the child Dataset preprocessed_asteroid_dataset.

Run on its own (`python preprocessing.py`), or as a step of `pipeline.py`, which overrides its parameters.
"""

import third_party_patches
from asteroid.steps.preprocessing import main
from asteroid.tracking import run_step

if __name__ == "__main__":
    third_party_patches.install_clearml_sdk_patches()
    run_step(main)
