"""The folder `clearml-serving model add --preprocess` uploads: the hook, the feature code it shares with
training and the release contract (asteroid/serving/contract.py), so that a stock clearml-serving container
needs nothing of this repository installed.

clearml-serving imports a folder as a package from its `__init__.py` (which must define `Preprocess`), so the
hook travels as `__init__.py` and imports its siblings relatively.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import global_config

PACKAGE_DIR = Path(__file__).resolve().parent.parent  # the asteroid package
HOOK_SOURCE = global_config.ROOT / "preprocess_serving.py"
# File in the deployed folder -> the file of this repository it is a copy of.
HOOK_FILES: dict[str, Path] = {
    "__init__.py": HOOK_SOURCE,
    "feature_rows.py": PACKAGE_DIR / "feature_rows.py",
    "observation_rules.py": PACKAGE_DIR / "observation_rules.py",
    "schema.py": PACKAGE_DIR / "schema.py",
    "contract.py": PACKAGE_DIR / "serving" / "contract.py",
    "prediction_log.py": PACKAGE_DIR / "serving" / "prediction_log.py",
    "prediction_forwarder.py": PACKAGE_DIR / "serving" / "prediction_forwarder.py",
}


def build_hook_folder(destination: Path) -> Path:
    """Write the hook folder into `destination` (created; must not exist) and return it."""
    destination.mkdir(parents=True)
    for name, source in HOOK_FILES.items():
        shutil.copyfile(source, destination / name)
    return destination
