"""A local stand-in for clearml-serving's docker-compose: a Kafka-protocol broker (Tansu), the stock
clearml-serving statistics controller and the stock inference app, run as processes on one machine under the
project's process supervisor (``process_supervisor``), with Prometheus, Alertmanager and an alert webhook
receiver when they are installed.

Generic: it serves any clearml-serving service (``--service-id``) and imports nothing of the application.
Code outside it uses ``serving_local.api`` only (and a hook inside the inference app
``serving_local.content_negotiation``).
"""
