"""The public API of the local serving stack: what code outside ``serving_local`` may use (the application
imports these names, never the modules behind them).

- ``STATISTICS_JOB``, ``INFERENCE_JOB``: the Prometheus job names of the two clearml-serving scrape targets,
  in the local stack and in the generated production configuration alike; alert rules select on them.
"""

from serving_local.monitoring import INFERENCE_JOB, STATISTICS_JOB

__all__ = ["INFERENCE_JOB", "STATISTICS_JOB"]
