"""Ground truth in: the handler of `POST /feedback/<endpoint>` (serving_local's generic feedback route runs
it: `SERVING_LOCAL_FEEDBACK_HANDLER=asteroid.quality.feedback:handle`).

    POST /feedback/asteroid  {"request_id": "<id of an answered row>", "hazardous": true}
    POST /feedback/asteroid  {"rows": [{"request_id": "...", "hazardous": false}, ...]}

Every label is validated (a `ValueError` naming the row and field: the route answers 422), then published to
the feedback topic with `acks=all` and each send confirmed before the handler returns: a 200 means the broker
holds every label of the request. The consumer (asteroid/quality/consumer.py) stores them.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from dataclasses import dataclass
from typing import Any

from asteroid.quality.config import MAX_LABEL_ROWS, broker_from_env, feedback_topic_from_env
from asteroid.serving import contract

LABEL = "hazardous"
BATCH_KEY = "rows"
MAX_REQUEST_ID_CHARS = 64
SEND_TIMEOUT_S = 10.0


@dataclass(frozen=True)
class Label:
    request_id: str
    hazardous: bool

    def message(self, endpoint: str, received_at: float) -> dict[str, Any]:
        return {
            "label_id": uuid.uuid4().hex,
            contract.REQUEST_ID: self.request_id,
            LABEL: self.hazardous,
            "endpoint": endpoint,
            "time": received_at,
        }


def parse_labels(body: Any) -> list[Label]:
    """The labels of a feedback body; ValueError naming the first wrong field."""
    if not isinstance(body, dict):
        raise ValueError(f"the body must be a JSON object, got {_json_type(body)}")
    if BATCH_KEY not in body:
        return [_label(body, "")]
    extra = sorted(str(key) for key in body if key != BATCH_KEY)
    if extra:
        raise ValueError(f"a batch body holds only {BATCH_KEY!r}; unexpected field(s) {extra}")
    rows = body[BATCH_KEY]
    if not isinstance(rows, list):
        raise ValueError(f"field {BATCH_KEY!r} must be an array of label objects, got {_json_type(rows)}")
    if not rows:
        raise ValueError(f"field {BATCH_KEY!r} is empty")
    if len(rows) > MAX_LABEL_ROWS:
        raise ValueError(
            f"field {BATCH_KEY!r} holds {len(rows)} labels; at most {MAX_LABEL_ROWS} per request"
        )
    return [_label(row, f"{BATCH_KEY}[{index}].") for index, row in enumerate(rows)]


def _label(row: Any, where: str) -> Label:
    if not isinstance(row, dict):
        raise ValueError(f"{where.rstrip('.') or 'the body'} must be a JSON object, got {_json_type(row)}")
    unknown = sorted(str(key) for key in row if key not in (contract.REQUEST_ID, LABEL))
    if unknown:
        allowed = f"{contract.REQUEST_ID!r} and {LABEL!r}"
        raise ValueError(f"field {where}{unknown[0]} is unknown (a label holds {allowed})")
    for field in (contract.REQUEST_ID, LABEL):
        if field not in row:
            raise ValueError(f"field {where}{field} is missing")
    request_id, hazardous = row[contract.REQUEST_ID], row[LABEL]
    if not isinstance(request_id, str) or not 0 < len(request_id) <= MAX_REQUEST_ID_CHARS:
        raise ValueError(
            f"field {where}{contract.REQUEST_ID} must be the text of an answer's request id "
            f"(1-{MAX_REQUEST_ID_CHARS} characters), got {_json_type(request_id)}"
        )
    if not isinstance(hazardous, bool):
        raise ValueError(f"field {where}{LABEL} must be true or false, got {_json_type(hazardous)}")
    return Label(request_id, hazardous)


def _json_type(value: Any) -> str:
    names = {dict: "an object", list: "an array", str: "a string", bool: "a boolean", type(None): "null"}
    return names.get(type(value), "a number")


class FeedbackPublisher:
    """Publishes labels to the feedback topic, each confirmed by all in-sync replicas (thread-safe)."""

    def __init__(self, broker: str, topic: str) -> None:
        self.broker = broker
        self.topic = topic
        self._producer: Any = None
        self._lock = threading.Lock()

    def publish(self, endpoint: str, labels: list[Label]) -> None:
        producer = self._get_producer()
        received_at = time.time()
        futures = [
            producer.send(
                self.topic,
                key=label.request_id.encode(),
                value=json.dumps(label.message(endpoint, received_at)).encode(),
            )
            for label in labels
        ]
        producer.flush(timeout=SEND_TIMEOUT_S)
        for future in futures:
            future.get(timeout=SEND_TIMEOUT_S)  # raises when the broker did not acknowledge

    def _get_producer(self) -> Any:
        with self._lock:
            if self._producer is None:
                from kafka import KafkaProducer

                self._producer = KafkaProducer(
                    bootstrap_servers=self.broker, acks="all", retries=3, linger_ms=5
                )
            return self._producer


_PUBLISHER: FeedbackPublisher | None = None
_PUBLISHER_LOCK = threading.Lock()


def _publisher() -> FeedbackPublisher:
    global _PUBLISHER
    with _PUBLISHER_LOCK:
        if _PUBLISHER is None:
            broker = broker_from_env()
            if not broker:
                raise RuntimeError("no broker configured for the feedback topic")
            _PUBLISHER = FeedbackPublisher(broker, feedback_topic_from_env())
        return _PUBLISHER


def handle(endpoint: str, body: Any) -> dict[str, Any]:
    """The route's handler: validate, publish durably, answer how many labels were accepted."""
    labels = parse_labels(body)
    _publisher().publish(endpoint, labels)
    return {"accepted": len(labels), "endpoint": endpoint}
