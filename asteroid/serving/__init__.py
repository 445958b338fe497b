"""Serving the pipeline winner through clearml-serving: the hook's deployable folder and the rollout."""
