"""Readiness of the statistics path: a probe record sent through the broker shows up on the controller's
`/metrics`.

The stock controller consumes without a consumer group, from the newest offset once its consumer is assigned,
so whatever the inference app sends before that moment is lost. The stack therefore starts the inference app
only after a probe has gone all the way through: the probe is a statistics record of its own endpoint name
(`serving_local_readiness`, with `_count` 0), so it appears as `serving_local_readiness:_count_total 0.0` and
counts nothing of any real endpoint.
"""

from __future__ import annotations

import json
import urllib.request

PROBE_ENDPOINT = "serving_local_readiness"
PROBE_METRIC = f"{PROBE_ENDPOINT}:_count_total"
TOPIC = "clearml_inference_stats"  # clearml-serving's ModelRequestProcessor._kafka_topic


class StatisticsProbe:
    """Callable readiness check: sends a probe record each time and reports whether one has been consumed."""

    def __init__(self, broker: str, metrics_url: str) -> None:
        self.broker = broker
        self.metrics_url = metrics_url
        self._producer = None

    def __call__(self) -> bool:
        if self._seen():
            self.close()
            return True
        self._send()
        return False

    def _send(self) -> None:
        from kafka import KafkaProducer
        from kafka.errors import KafkaError

        try:
            if self._producer is None:
                self._producer = KafkaProducer(
                    bootstrap_servers=self.broker,
                    value_serializer=lambda value: json.dumps(value).encode("utf-8"),
                    compression_type="lz4",  # as the inference app sends them
                )
            self._producer.send(TOPIC, value=[{"_url": PROBE_ENDPOINT, "_count": 0}])
            self._producer.flush(timeout=2)
        except KafkaError:
            self.close()  # the broker is still starting: try again on the next poll

    def _seen(self) -> bool:
        try:
            with urllib.request.urlopen(self.metrics_url, timeout=1.0) as reply:
                return PROBE_METRIC in reply.read().decode("utf-8", errors="replace")
        except OSError:
            return False

    def close(self) -> None:
        if self._producer is not None:
            self._producer.close(timeout=2)
            self._producer = None
