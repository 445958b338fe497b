"""Safe rollout of a pipeline winner: the champion/challenger gate on ClearML (`challenger.py`, the verdict in
`asteroid/gate.py`), then a progressive canary on clearml-serving (`controller.py`) judged at every interval
by an analysis of Prometheus series per model version (`analysis.py`, `prometheus_metrics.py`), rolled back
automatically on failure (`alerts.py` fires `AsteroidRolloutRolledBack`). `python -m asteroid.rollout`."""
