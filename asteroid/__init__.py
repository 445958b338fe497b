"""Potentially hazardous asteroid classification: the domain (schema, data, features, model, evaluation)
without ClearML, and the ClearML side in `steps/`, `pipeline`, `tracking` and `serving/`."""
