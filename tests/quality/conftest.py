"""Fixtures of the live-quality tests: a real Kafka-protocol broker (Tansu) on a free port, and waiting."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator

import pytest

from process_supervisor import accepts_connections
from serving_local.stack import broker_binary
from tests.backend.backend_harness import wait_for
from tests.data.conftest import postgres_url  # noqa: F401  (the PostgreSQL fixture of the database tests)
from tests.monitoring.conftest import feature_spec, reference  # noqa: F401  (the training reference of asteroid/1)
from tests.net import free_port
from tests.serving.conftest import engine, offline_booster, sample_records, trained_model  # noqa: F401

BROKER_START_S = 15.0


@pytest.fixture
def broker() -> Iterator[str]:
    """host:port of a fresh Tansu broker (memory storage), stopped after the test."""
    port = free_port()
    listener = f"tcp://127.0.0.1:{port}"
    process = subprocess.Popen(
        [broker_binary(), "broker", "--listener-url", listener, "--advertised-listener-url", listener],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for(lambda: accepts_connections("127.0.0.1", port), "the broker to listen", BROKER_START_S)
        yield f"127.0.0.1:{port}"
    finally:
        process.kill()
        process.wait(timeout=10)
