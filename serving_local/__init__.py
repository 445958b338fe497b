"""A local stand-in for clearml-serving's docker-compose: a Kafka-protocol broker (Tansu), the stock
clearml-serving statistics controller and the stock inference app, run as processes on one machine.

Generic: it serves any clearml-serving service (``--service-id``) and imports nothing of the application.
"""
