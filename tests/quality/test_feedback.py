"""Ground truth in: `POST /feedback/asteroid` (serving_local's route with the asteroid handler, served by
uvicorn, labels published to the real broker), the consumer joining labels to predictions (revisions,
unmatched ids, a `kill -9`), the bad-body corpus, and the CSV import."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

import global_config
from asteroid.quality import labels_import, store
from asteroid.quality.config import BROKER_ENV, DATABASE_URL_ENV, FEEDBACK_TOPIC_ENV, QualityConfig
from asteroid.quality.consumer import PredictionConsumer
from asteroid.serving import contract
from serving_local.feedback_route import HANDLER_ENV, MAX_BYTES_ENV
from tests.backend.backend_harness import wait_for
from tests.net import free_port

FEEDBACK_TOPIC = "test_feedback"
PREDICTIONS_TOPIC = "test_predictions"
MAX_BYTES = 64 * 1024


@pytest.fixture
def feedback_url(broker: str, tmp_path: Path) -> Iterator[str]:
    """`http://.../feedback/asteroid` of the feedback route run by uvicorn, labels going to `broker`."""
    port = free_port()
    env = {
        **os.environ,
        HANDLER_ENV: "asteroid.quality.feedback:handle",
        MAX_BYTES_ENV: str(MAX_BYTES),
        BROKER_ENV: broker,
        FEEDBACK_TOPIC_ENV: FEEDBACK_TOPIC,
    }
    log = (tmp_path / "feedback.log").open("w")
    command = [sys.executable, "-m", "uvicorn", "tests.quality.feedback_app:app", "--port", str(port)]
    server = subprocess.Popen(command, cwd=global_config.ROOT, env=env, stdout=log, stderr=log)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: request(f"{base}/serve/asteroid", b"{}")[0] == 200, "the feedback app", 30.0)
        yield f"{base}/feedback/asteroid"
    finally:
        server.terminate()
        server.wait(timeout=10)
        log.close()


def request(url: str, body: bytes, content_type: str = "application/json", method: str = "POST") -> tuple:
    """(status, JSON answer); status 0 when nothing listens."""
    call = urllib.request.Request(url, data=body, method=method, headers={"Content-Type": content_type})
    try:
        with urllib.request.urlopen(call, timeout=30) as reply:
            return reply.status, json.loads(reply.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())
    except OSError:
        return 0, None


def post(url: str, payload: Any) -> tuple:
    return request(url, json.dumps(payload).encode())


def prediction(
    request_id: str,
    hazardous: bool,
    neo_id: int | None = None,
    date: str | None = None,
    at: float | None = None,
) -> Any:
    return store.Prediction(
        request_id, at or time.time(), "asteroid/1", "m1", "1", neo_id, date, {"absolute_magnitude": 20.0},
        0.9 if hazardous else 0.1, hazardous,
    )  # fmt: skip


def save_predictions(database_url: str, predictions: list[store.Prediction]) -> None:
    with store.engine(database_url).begin() as connection:
        store.store_batch(connection, predictions, {})


def config(broker: str, database_url: str) -> QualityConfig:
    return QualityConfig(
        database_url=database_url,
        broker=broker,
        predictions_topic=PREDICTIONS_TOPIC,
        feedback_topic=FEEDBACK_TOPIC,
    )


BAD_BODIES: list[tuple[bytes, int, str]] = [
    (b"", 422, "empty"),
    (b"not json", 422, "not valid JSON"),
    (b"\xff\xfe", 422, "UTF-8"),
    (b'{"request_id": "a", "hazardous": NaN}', 422, "NaN"),
    (b"[]", 422, "JSON object"),
    (b'"text"', 422, "JSON object"),
    (b'{"hazardous": true}', 422, "request_id is missing"),
    (b'{"request_id": "a"}', 422, "hazardous is missing"),
    (b'{"request_id": "a", "hazardous": "yes"}', 422, "hazardous must be true or false, got a string"),
    (b'{"request_id": "a", "hazardous": 1}', 422, "hazardous must be true or false, got a number"),
    (b'{"request_id": 5, "hazardous": true}', 422, "request_id must be the text"),
    (b'{"request_id": "", "hazardous": true}', 422, "request_id must be the text"),
    (b'{"request_id": "' + b"a" * 65 + b'", "hazardous": true}', 422, "request_id must be the text"),
    (b'{"request_id": "a", "hazardous": true, "extra": 1}', 422, "extra is unknown"),
    (b'{"rows": {}}', 422, "'rows' must be an array"),
    (b'{"rows": []}', 422, "'rows' is empty"),
    (b'{"rows": [], "x": 1}', 422, "unexpected field(s) ['x']"),
    (b'{"rows": [{"request_id": "a", "hazardous": true}, 3]}', 422, "rows[1] must be a JSON object"),
    (b'{"rows": [{"request_id": "a", "hazardous": null}]}', 422, "rows[0].hazardous must be true or false"),
    (b'{"rows": [{"request_id": ["a"], "hazardous": true}]}', 422, "rows[0].request_id"),
    (b'{"a": {"b": {"c": {"d": {"e": 1}}}}}', 422, "nested deeper"),
    (b"[" * 5000 + b"]" * 5000, 422, "nested deeper"),
    (json.dumps({"rows": [{"request_id": "a", "hazardous": True}] * 3000}).encode(), 413, "larger than"),
]


def test_bad_bodies_get_a_4xx_naming_the_problem_and_the_route_keeps_serving(feedback_url: str) -> None:
    for body, status, detail in BAD_BODIES:
        got, answer = request(feedback_url, body)
        assert (got, detail in answer["detail"]) == (status, True), (body[:80], answer)
    assert request(feedback_url, b"{}", content_type="text/plain")[0] == 415
    assert request(feedback_url.replace("/asteroid", "/"), b"{}")[0] == 404
    assert request(feedback_url, None, method="GET")[0] == 405
    assert post(feedback_url, {"request_id": "a", "hazardous": True}) == (
        200,
        {"accepted": 1, "endpoint": "asteroid"},
    )


def test_labels_are_joined_to_their_predictions(feedback_url: str, broker: str, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'quality.db'}"
    # predicted hazardous: p0 p1 p2; not: p3 p4 p5
    save_predictions(url, [prediction(f"p{index}", index < 3) for index in range(6)])
    # README: curl -s -X POST http://127.0.0.1:8080/feedback/asteroid -H 'Content-Type: application/json' -d '{"request_id": "<request_id of an answer>", "hazardous": true}'  # noqa: E501
    # (the same request, sent with urllib to the route on a free port)
    assert post(feedback_url, {"request_id": "p0", "hazardous": True})[0] == 200  # TP
    rows = [
        {"request_id": "p1", "hazardous": True},  # TP, revised below to FP
        {"request_id": "p3", "hazardous": True},  # FN
        {"request_id": "p4", "hazardous": False},  # TN
        {"request_id": "nobody", "hazardous": True},  # unmatched
    ]
    assert post(feedback_url, {"rows": rows})[1]["accepted"] == 4
    assert post(feedback_url, {"request_id": "p1", "hazardous": False})[0] == 200  # the revision
    consumer = PredictionConsumer(config(broker, url))
    consumer.run(max_idle_polls=4)
    consumer.run(max_idle_polls=2)  # a second run re-reads nothing and changes nothing

    with store.engine(url).connect() as connection:
        (counts,) = store.quality_counts(connection)
        labels = store.label_counts(connection)
    assert (counts.predictions, counts.labelled, counts.correct) == (6, 4, 2)
    confusion = (counts.true_positives, counts.false_positives, counts.true_negatives, counts.false_negatives)
    assert confusion == (1, 1, 1, 1)
    assert (labels.unmatched, labels.revisions) == (1, 1)
    # the unmatched label joins its prediction when that is stored later
    save_predictions(url, [prediction("nobody", False)])
    with store.engine(url).connect() as connection:
        assert store.label_counts(connection).unmatched == 0
        assert store.quality_counts(connection)[0].false_negatives == 2


def test_unmatched_labels_are_deleted_after_their_time(broker: str, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'quality.db'}"
    save_predictions(url, [prediction("p0", True)])
    with store.engine(url).begin() as connection:
        store.store_labels(
            connection,
            [
                store.LabelRecord("p0", True, "l0", 0.0, "feedback"),  # matched: kept however old
                store.LabelRecord("old", True, "l1", 0.0, "feedback"),
                store.LabelRecord("new", True, "l2", 10 * 86400.0, "feedback"),
            ],
        )
    consumer = PredictionConsumer(config(broker, url), clock=lambda: 10 * 86400.0 + 1)
    consumer.run(max_idle_polls=1)
    with store.engine(url).connect() as connection:
        ids = connection.execute(sa.select(store.LABELS.c[contract.REQUEST_ID])).scalars().all()
    assert sorted(ids) == ["new", "p0"]


def test_acknowledged_labels_survive_a_consumer_kill_9(
    feedback_url: str, broker: str, tmp_path: Path
) -> None:
    url = f"sqlite:///{tmp_path / 'quality.db'}"
    ids = [f"r{index}" for index in range(400)]
    save_predictions(url, [prediction(request_id, True) for request_id in ids])
    env = {
        **os.environ,
        BROKER_ENV: broker,
        DATABASE_URL_ENV: url,
        FEEDBACK_TOPIC_ENV: FEEDBACK_TOPIC,
        contract.PREDICTIONS_TOPIC_ENV: PREDICTIONS_TOPIC,
    }
    # README: .venv/bin/python -m asteroid.quality consume --metrics-port 9108  (here on a free port)
    metrics_port = free_port()
    command = [sys.executable, "-m", "asteroid.quality", "consume", "--metrics-port", str(metrics_port)]

    def labelled() -> int:
        with store.engine(url).connect() as connection:
            return store.quality_counts(connection)[0].labelled

    consumer = subprocess.Popen(command, cwd=global_config.ROOT, env=env)
    try:
        for start in range(0, 200, 20):
            rows = [{"request_id": rid, "hazardous": True} for rid in ids[start : start + 20]]
            assert post(feedback_url, {"rows": rows})[0] == 200
        wait_for(lambda: labelled() > 0, "the first labels stored", 60.0)
        consumer.send_signal(signal.SIGKILL)
        consumer.wait(timeout=10)
        for start in range(200, 400, 50):  # acknowledged while no consumer runs
            rows = [{"request_id": rid, "hazardous": False} for rid in ids[start : start + 50]]
            assert post(feedback_url, {"rows": rows})[0] == 200
        consumer = subprocess.Popen(command, cwd=global_config.ROOT, env=env)
        wait_for(lambda: labelled() == 400, "all 400 acknowledged labels stored", 60.0)
        with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=10) as reply:
            exported = reply.read().decode()
    finally:
        consumer.send_signal(signal.SIGTERM)
        consumer.wait(timeout=20)
    with store.engine(url).connect() as connection:
        (counts,) = store.quality_counts(connection)
        assert store.label_counts(connection).revisions == 0  # nothing stored twice
    assert (counts.true_positives, counts.false_positives) == (200, 200)
    exported_samples = samples(exported)
    assert exported_samples[("asteroid_quality_window_outcomes", ("true_positive", "asteroid", "1"))] == 200
    assert exported_samples[("asteroid_quality_window_outcomes", ("false_positive", "asteroid", "1"))] == 200
    assert exported_samples[("asteroid_quality_labelled", (None, "asteroid", "1"))] == 400


def samples(text: str) -> dict[tuple[str, tuple], float]:
    """(metric name, (outcome, endpoint, version)) -> value of an exposition text."""
    from prometheus_client.parser import text_string_to_metric_families

    return {
        (
            sample.name,
            tuple(sample.labels.get(key) for key in ("outcome", "endpoint", "version")),
        ): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def test_the_exporter_counts_the_labels_of_its_window(tmp_path: Path) -> None:
    from prometheus_client import CollectorRegistry, generate_latest

    from asteroid.quality.metrics import QualityCollector

    url = f"sqlite:///{tmp_path / 'quality.db'}"
    now = time.time()
    save_predictions(url, [prediction(f"p{index}", index < 2, at=now - 100) for index in range(4)])
    with store.engine(url).begin() as connection:
        store.store_labels(
            connection,
            [
                store.LabelRecord("p0", True, "a", now - 7200, "feedback"),  # TP, before the window
                store.LabelRecord("p1", False, "b", now - 60, "feedback"),  # FP
                store.LabelRecord("p2", True, "c", now - 30, "feedback"),  # FN
                store.LabelRecord("p3", False, "d", now - 10, "feedback"),  # TN
                store.LabelRecord("zz", False, "e", now, "feedback"),  # unmatched
            ],
        )
    registry = CollectorRegistry()
    registry.register(QualityCollector(store.engine(url), 3600.0, clock=lambda: now))
    text = generate_latest(registry).decode()
    got = samples(text)
    version = ("asteroid", "1")
    expected = {
        ("asteroid_quality_predictions", (None, *version)): 4.0,
        ("asteroid_quality_labelled", (None, *version)): 4.0,
        ("asteroid_quality_window_labelled", (None, *version)): 3.0,
        ("asteroid_quality_window_correct", (None, *version)): 1.0,
        ("asteroid_quality_window_outcomes", ("true_positive", *version)): 0.0,
        ("asteroid_quality_window_outcomes", ("false_negative", *version)): 1.0,
    }
    assert {key: got.get(key) for key in expected} == expected
    assert 'asteroid_quality_unmatched_labels{kind="request_id"} 1.0' in text
    delay = got[("asteroid_quality_window_label_delay_seconds", (None, *version))]
    assert delay == pytest.approx((40 + 70 + 90) / 3)


def test_catalogue_labels_by_neo_reference_id_and_date(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'quality.db'}"
    save_predictions(
        url,
        [
            prediction("a1", True, 2001, "2010-01-01"),
            prediction("a2", True, 2001, "2015-06-01"),
            prediction("b1", False, 2002, None),
            prediction("c1", False, 2003, "2011-01-01"),
        ],
    )
    catalogue = tmp_path / "labels.csv"
    catalogue.write_text(
        "Neo Reference ID,Name,Close Approach Date,Hazardous\n"
        "2001,(x),2015-06-01,False\n"  # only a2
        "2002,(y),,True\n"  # every prediction of 2002
        "2003,(z),,True\n"
        "9999,(w),,True\n"  # matches nothing
    )
    env = {**os.environ, DATABASE_URL_ENV: url}

    def cli(*args: str) -> str:
        done = subprocess.run(
            [sys.executable, "-m", "asteroid.quality", *args],
            cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        return done.stdout

    # README: .venv/bin/python -m asteroid.quality import labels.csv
    assert "4 row(s): 3 prediction(s) labelled, 1 row(s) unmatched" in cli("import", "labels.csv")
    with store.engine(url).connect() as connection:
        labels = dict(
            connection.execute(sa.select(store.LABELS.c.request_id, store.LABELS.c.hazardous)).all()
        )
        assert labels == {"a2": False, "b1": True, "c1": True}
        assert store.label_counts(connection).catalogue_unmatched == 1
    catalogue.write_text("Neo Reference ID,Hazardous\n2003,False\n")  # a revision of c1
    labels_import.import_labels(catalogue, url)
    with store.engine(url).connect() as connection:
        assert store.label_counts(connection).revisions == 1
    # README: .venv/bin/python -m asteroid.quality count
    counts = cli("count")
    assert "asteroid/1 version 1: 4 prediction(s), 3 labelled, 1 correct (TP 0, FP 1, TN 1, FN 1)" in counts
    assert "unmatched labels: 0 by request id, 1 catalogue row(s); revisions: 1" in counts


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("Name,Hazardous\nx,True\n", "no column 'Neo Reference ID'"),
        ("Neo Reference ID,Hazardous\nabc,True\n", "line 2, column 'Neo Reference ID'"),
        ("Neo Reference ID,Hazardous\n1,maybe\n", "line 2, column 'Hazardous'"),
        ("neo_reference_id,hazardous,close_approach_date\n1,true,June\n", "not a YYYY-MM-DD date"),
    ],
)
def test_a_bad_catalogue_is_refused_naming_line_and_column(tmp_path: Path, text: str, problem: str) -> None:
    catalogue = tmp_path / "labels.csv"
    catalogue.write_text(text)
    with pytest.raises(ValueError, match=problem.replace("(", r"\(")):
        labels_import.import_labels(catalogue, f"sqlite:///{tmp_path / 'q.db'}")


def test_labels_revisions_and_counts_on_postgresql(postgres_url: str, tmp_path: Path) -> None:
    with sa.create_engine(postgres_url).begin() as connection:
        store.METADATA.drop_all(connection)
    save_predictions(postgres_url, [prediction("p0", True, 7, "2020-01-01"), prediction("p1", False, 8)])
    now = time.time()
    with store.engine(postgres_url).begin() as connection:
        for request_id, hazardous, label_id, at in (
            ("p0", True, "a", now),
            ("p0", True, "a", now),  # the same message read again: no revision
            ("p0", False, "b", now),  # a revision
            ("zz", False, "c", 0.0),  # unmatched, old
        ):
            label = store.LabelRecord(request_id, hazardous, label_id, at, "feedback")
            store.store_labels(connection, [label])
    catalogue = tmp_path / "labels.csv"
    catalogue.write_text("neo_reference_id,hazardous\n8,true\n99,false\n")
    report = labels_import.import_labels(catalogue, postgres_url)
    assert report == labels_import.ImportReport(rows=2, labelled_predictions=1, unmatched_rows=1)
    with store.engine(postgres_url).begin() as connection:
        (counts,) = store.quality_counts(connection)
        labels = store.label_counts(connection)
        assert store.prune_unmatched(connection, older_than=1.0) == 1  # the old unmatched label only
    assert (counts.false_positives, counts.false_negatives, counts.labelled) == (1, 1, 2)
    assert (labels.unmatched, labels.catalogue_unmatched, labels.revisions) == (1, 1, 1)
