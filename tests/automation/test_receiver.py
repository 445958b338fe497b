"""The retrain receiver over HTTP (in this process, on a free port, with a fake launcher): what retrains,
what is ignored, and the bad-input corpus — each refused with its 4xx naming the field or header, nothing
decided."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import sqlalchemy as sa

from asteroid.automation import store
from asteroid.automation.receiver import make_server, read_or_create_token
from asteroid.automation.retrain import Retrainer
from tests.automation.test_retrain_rules import FakeLauncher

TOKEN = "s3cret-token"
MAX_BODY = 64 * 1024


def notification(*alerts: dict[str, Any]) -> dict[str, Any]:
    return {"version": "4", "status": "firing", "receiver": "retrain", "alerts": list(alerts)}


def firing(name: str, fingerprint: str = "f1", **labels: str) -> dict[str, Any]:
    return {
        "status": "firing",
        "labels": {"alertname": name, **labels},
        "annotations": {"summary": "s"},
        "startsAt": "2026-05-28T10:00:00Z",
        "endsAt": "0001-01-01T00:00:00Z",
        "fingerprint": fingerprint,
    }


class Receiver:
    def __init__(self, url: str, engine: sa.Engine) -> None:
        self.url, self.engine = url, engine

    def post(self, body: Any = None, *, data: bytes | None = None, **headers: str) -> requests.Response:
        sent = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json", **headers}
        payload = json.dumps(body).encode() if data is None else data
        return requests.post(self.url, data=payload, headers=sent, timeout=10)

    def decisions(self) -> list[store.Decision]:
        with self.engine.connect() as connection:
            return list(store.decisions(connection, 100))


@pytest.fixture
def receiver(tmp_path: Path) -> Iterator[Receiver]:
    engine = store.engine(f"sqlite:///{tmp_path / 'decisions.db'}")
    retrainer = Retrainer(engine, FakeLauncher(), cooldown_seconds=0.0)
    server = make_server("127.0.0.1", 0, retrainer, TOKEN, MAX_BODY)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield Receiver(f"http://127.0.0.1:{server.server_address[1]}/alerts", engine)
    finally:
        server.shutdown()
        server.server_close()


def test_the_retraining_alerts_are_decided_and_others_ignored(receiver: Receiver) -> None:
    body = notification(
        firing("AsteroidFeatureDrift", "drift-crit", severity="critical"),
        firing("AsteroidFeatureDrift", "drift-warn", severity="warning"),
        firing("AsteroidModelRecallLow", "recall"),
        firing("AsteroidModelAccuracyLow", "accuracy"),
        firing("AsteroidServingDown", "other"),
        {**firing("AsteroidModelRecallLow", "resolved"), "status": "resolved"},
    )
    reply = receiver.post(body)

    assert reply.status_code == 200, reply.text
    answer = reply.json()
    assert [d["subject"] for d in answer["decisions"]] == [
        "AsteroidFeatureDrift",
        "AsteroidModelRecallLow",
        "AsteroidModelAccuracyLow",
    ]
    assert answer["ignored"] == 3
    assert [d.event_key for d in receiver.decisions()] == [
        "alert:drift-crit@2026-05-28T10:00:00Z",
        "alert:recall@2026-05-28T10:00:00Z",
        "alert:accuracy@2026-05-28T10:00:00Z",
    ]


def test_a_repeated_notification_is_a_duplicate(receiver: Receiver) -> None:
    body = notification(firing("AsteroidModelRecallLow"))
    decisions = [receiver.post(body).json()["decisions"][0]["decision"] for _ in range(2)]
    assert decisions == [store.LAUNCHED, store.DUPLICATE]


GOOD = notification(firing("AsteroidModelRecallLow"))
BAD_BODIES: list[tuple[str, bytes, int, str]] = [
    ("not JSON", b"{not json", 400, "not JSON"),
    ("not UTF-8", b"\xff\xfe{}", 400, "not JSON"),
    ("deeply nested", b'{"alerts": ' + b"[" * 20_000 + b"]" * 20_000 + b"}", 400, "nested too deeply"),
    ("NaN", b'{"alerts": [NaN]}', 400, "NaN is not a JSON number"),
    ("an array", b"[]", 422, "JSON object"),
    ("no alerts", json.dumps({"status": "firing"}).encode(), 422, "field alerts is missing"),
    ("alerts not a list", json.dumps({"alerts": {"a": 1}}).encode(), 422, "field alerts must be"),
    ("empty alerts", json.dumps({"alerts": []}).encode(), 422, "field alerts must be"),
    (
        "an alert not an object",
        json.dumps({"alerts": [3]}).encode(),
        422,
        "field alerts[0] must be an object",
    ),
]


def _without(field: str) -> bytes:
    alert = firing("AsteroidModelRecallLow")
    del alert[field]
    return json.dumps(notification(alert)).encode()


def _with(field: str, value: Any) -> bytes:
    return json.dumps(notification({**firing("AsteroidModelRecallLow"), field: value})).encode()


BAD_BODIES += [
    (f"no {field}", _without(field), 422, f"field alerts[0].{field} is missing")
    for field in ("status", "labels", "fingerprint", "startsAt")
]
BAD_BODIES += [
    ("status unknown", _with("status", "pending"), 422, "field alerts[0].status must be one of"),
    ("labels a list", _with("labels", ["alertname"]), 422, "field alerts[0].labels must be an object"),
    ("a label a number", _with("labels", {"alertname": "X", "n": 1}), 422, "field alerts[0].labels must"),
    ("no alertname", _with("labels", {"severity": "critical"}), 422, "field alerts[0].labels.alertname"),
    ("fingerprint a number", _with("fingerprint", 12), 422, "field alerts[0].fingerprint must be a string"),
    ("fingerprint empty", _with("fingerprint", ""), 422, "field alerts[0].fingerprint must be a string"),
    ("startsAt huge", _with("startsAt", "x" * 1000), 422, "field alerts[0].startsAt must be a string"),
]


@pytest.mark.parametrize(("case", "data", "status", "message"), BAD_BODIES, ids=[c[0] for c in BAD_BODIES])
def test_a_bad_body_is_refused_naming_the_field(
    receiver: Receiver, case: str, data: bytes, status: int, message: str
) -> None:
    reply = receiver.post(data=data)

    assert reply.status_code == status, reply.text
    assert message in reply.json()["error"]
    assert receiver.decisions() == []


def test_a_huge_body_is_refused_before_it_is_read(receiver: Receiver) -> None:
    reply = receiver.post(data=b" " * (MAX_BODY + 1))
    assert reply.status_code == 413
    assert "body: at most" in reply.json()["error"]


def test_a_declared_length_over_the_limit_is_refused_without_the_body(receiver: Receiver) -> None:
    host, port = receiver.url.split("//")[1].split("/")[0].split(":")
    with socket.create_connection((host, int(port)), timeout=10) as connection:
        connection.sendall(
            f"POST /alerts HTTP/1.1\r\nHost: {host}:{port}\r\nAuthorization: Bearer {TOKEN}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {10**12}\r\n\r\n".encode()
        )
        status_line = connection.makefile("rb").readline()
    assert b" 413 " in status_line


@pytest.mark.parametrize(
    ("headers", "status", "message"),
    [
        ({"Authorization": ""}, 401, "Authorization: Bearer <token> is required"),
        ({"Authorization": f"Basic {TOKEN}"}, 401, "Authorization: Bearer <token> is required"),
        ({"Authorization": "Bearer wrong"}, 403, "the bearer token is wrong"),
        ({"Content-Type": "text/plain"}, 415, "Content-Type must be application/json"),
        ({"Content-Type": "application/x-www-form-urlencoded"}, 415, "Content-Type must be application/json"),
    ],
)
def test_wrong_headers_are_refused(
    receiver: Receiver, headers: dict[str, str], status: int, message: str
) -> None:
    reply = receiver.post(GOOD, **headers)

    assert reply.status_code == status, reply.text
    assert message in reply.json()["error"]
    assert receiver.decisions() == []


def test_a_new_dataset_version_is_decided_once(receiver: Receiver) -> None:
    url = receiver.url.replace("/alerts", "/datasets")
    headers = {"Authorization": f"Bearer {TOKEN}"}
    replies = [
        requests.post(url, json={"dataset_id": "abc123"}, headers=headers, timeout=10) for _ in range(2)
    ]

    assert [r.json()["decisions"][0]["decision"] for r in replies] == [store.LAUNCHED, store.DUPLICATE]
    assert [d.event_key for d in receiver.decisions()] == ["dataset:abc123", "dataset:abc123"]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"dataset_id": 12}, "field dataset_id must be a dataset id"),
        ({"dataset_id": "a/b"}, "field dataset_id must be a dataset id"),
        ({"dataset_id": "a", "more": 1}, "one field, dataset_id"),
        ([], "one field, dataset_id"),
    ],
)
def test_a_bad_dataset_body_is_refused(receiver: Receiver, body: Any, message: str) -> None:
    url = receiver.url.replace("/alerts", "/datasets")
    reply = requests.post(url, json=body, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10)

    assert reply.status_code == 422 and message in reply.json()["error"]
    assert receiver.decisions() == []


def test_other_paths_and_methods_are_refused(receiver: Receiver) -> None:
    base = receiver.url.rsplit("/", 1)[0]
    assert requests.post(f"{base}/other", json=GOOD, timeout=10).status_code == 404
    assert requests.put(receiver.url, json=GOOD, timeout=10).status_code == 405
    assert requests.get(f"{base}/healthz", timeout=10).json() == {"ok": True}
    assert receiver.decisions() == []


def test_the_token_file_is_created_private_and_then_reused(tmp_path: Path) -> None:
    path = tmp_path / "auto" / "token"
    first = read_or_create_token(path)
    assert read_or_create_token(path) == first and len(first) >= 32
    assert path.stat().st_mode & 0o777 == 0o600
    path.write_text("\n")
    with pytest.raises(ValueError, match="is empty"):
        read_or_create_token(path)
