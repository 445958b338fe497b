"""Monitoring of the served model: Prometheus rules and Grafana files, generated from the training
reference."""
