"""`__init__.py` of the benchmark's variant of the project's hook without the prediction log (the hook itself
travels beside it as `hook.py`): the same code, its process-wide log replaced by one without a broker, so the
log's cost on the request path shows side by side with the project's hook in the same stack."""

from . import hook
from .hook import Preprocess
from .prediction_log import PredictionLog

hook.PREDICTION_LOG = PredictionLog(None, "unused")

__all__ = ["Preprocess"]
