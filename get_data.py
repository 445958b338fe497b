"""ClearML task 'get data': queries the observations database (SQLite by default, NEO_DATABASE_URL for
any SQLAlchemy URL) and registers the result as a version of the ClearML Dataset raw_asteroid_dataset.

Run on its own (`python get_data.py`), or as a step of `pipeline.py`, which overrides its parameters.
"""

import third_party_patches
from asteroid.steps.get_data import main
from asteroid.tracking import run_step

if __name__ == "__main__":
    third_party_patches.install_clearml_sdk_patches()
    run_step(main)
