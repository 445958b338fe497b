"""Tuning the training step with ClearML's HyperParameterOptimizer and Optuna: `tune.py`."""
