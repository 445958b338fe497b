"""Continuous training: scheduled ingestion (ClearML's TaskScheduler), retraining on a new raw dataset version
(TriggerScheduler) and on alerts (a retrain receiver Alertmanager posts to), each retrain decision audited in
the project's SQL database. `python -m asteroid.automation start|stop|status|audit`."""
