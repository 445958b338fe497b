"""Monitoring of the served model: Prometheus rules and Grafana files, generated from the release contract
and the training reference; the drift drill and its pictures."""
