"""Serving the pipeline winner through clearml-serving: the release contract (what a served version exposes),
the release (rollout, then monitoring rules), the hook's deployable folder, and the traffic and load
generators of the client."""
