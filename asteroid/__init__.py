"""Potentially hazardous asteroid classification: data, features, model and reports (ClearML-free)."""
