"""`__init__.py` of the benchmark's DMatrix variant of the project's hook (the hook itself travels beside it
as `hook.py`): no `load()`, so clearml-serving's `xgboost` engine loads the Booster itself and calls
`Booster.predict(DMatrix)`, the engine's stock path."""

import numpy as np
import xgboost

from . import schema
from .hook import Preprocess as ProjectHook


class Preprocess(ProjectHook):
    load = None

    def preprocess(self, body, state, collect_custom_statistics_fn=None):
        features = super().preprocess(body, state, collect_custom_statistics_fn)
        return xgboost.DMatrix(features.astype(np.float32), feature_names=list(schema.FEATURES))
