"""ClearML task 'model training': trains an XGBoost classifier on the preprocessed dataset, evaluates it
beside the CNEOS rule and registers the model.

Run on its own (`python model_training.py`), or as a step of `pipeline.py`, which overrides its parameters.
"""

import third_party_patches
from asteroid.steps.model_training import main
from asteroid.tracking import run_step

if __name__ == "__main__":
    third_party_patches.install_clearml_sdk_patches()
    run_step(main)
