"""Imported for its effect by the module of the pipeline's function step (``asteroid/steps/select_best.py``):
the SDK copies that module's imports into the script it generates for the step, and they are the only code
of ours that runs there before the script's ``Task.init``. Importing this module installs the clearml SDK
patches (``third_party_patches.install_clearml_sdk_patches``); no other module installs anything on import.
"""

import third_party_patches

third_party_patches.install_clearml_sdk_patches()
