"""The consumer as a part of the local serving stack (serving_local/extra_parts.py, registered by serve.py):
the stack starts it on a free port named in its state, its Prometheus scrapes it, `status` shows it, a
`kill -9` of it is followed by a restart with the stack's backoff, and what was published meanwhile is stored
exactly once; stopping the stack stops it and removes its scrape target."""

from __future__ import annotations

import json
import os
import re
import signal
import threading
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from asteroid.quality import consumer, store
from asteroid.quality.config import DATABASE_URL_ENV
from asteroid.serving import contract
from process_supervisor import pid_alive
from serving_local import cli, monitoring, stack
from serving_local.api import APPLICATION_JOB, ExtraPart, StackConfig, running_stack
from tests.backend.backend_harness import wait_for
from tests.monitoring.conftest import tool
from tests.net import free_port
from tests.quality.test_consumer_crash import publish

TOPIC = "crash_predictions"  # the topic test_consumer_crash.publish writes


def test_a_part_travels_the_command_line_and_bad_ones_are_named() -> None:
    part = consumer.stack_part()
    config = StackConfig(data_dir=Path("x"), service_id="s", extra_parts=(part,))
    _, parsed, _ = cli.parse_args(["serve", *cli._arguments(config)])
    assert parsed.extra_parts == (part,)
    assert part.port == 0 and part.scrape and part.ready_path == "/metrics"
    for text, field in (
        ('{"name": "broker", "command": ["x"]}', "one of the stack's own parts"),
        ('{"name": "a b", "command": ["x"]}', "name"),
        ('{"name": "a", "command": []}', "command"),
        ('{"name": "a", "command": ["x"], "port": 70000}', "port"),
        ('{"name": "a", "command": ["x"], "scrape": true}', "scrape needs a port"),
        ('{"name": "a", "command": ["x"], "colour": 1}', "unknown field(s) colour"),
        ("[1]", "JSON object"),
    ):
        with pytest.raises(ValueError, match=re.escape(field)):
            ExtraPart.from_json(text)
    twice = StackConfig(data_dir=Path("x"), service_id="s", extra_parts=(part, part))
    with pytest.raises(ValueError, match="extra part names must differ"):
        twice.validate()


def test_serve_py_runs_the_consumer_as_a_part_and_prints_its_url(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import serve
    from serving_local import api

    for name, fake in (
        ("ensure_server", lambda: None),
        ("ensure_service", lambda: ("svc", False)),
        ("release", lambda *args: None),
        ("published_winner", lambda: None),
    ):
        monkeypatch.setattr(serve, name, fake)  # fmt: skip
    monkeypatch.setenv(api.FEEDBACK_HANDLER_ENV, "asteroid.quality.feedback:handle")  # restored afterwards
    started: list[StackConfig] = []

    def start_stack(config: StackConfig) -> api.StackState:
        started.append(config)
        return api.StackState(
            1, "svc", "http://h:1/serve", "", "", "h:2", part_urls={"asteroid-quality": "http://h:3"}
        )

    monkeypatch.setattr(api, "start_stack", start_stack)
    assert serve.main([]) == 0
    (config,) = started
    assert config.extra_parts == (consumer.stack_part(),)
    assert "live quality figures: http://h:3/metrics" in capsys.readouterr().out


@dataclass
class RunningStack:
    config: StackConfig
    stack: stack.Stack
    database_url: str


@pytest.fixture
def quality_stack(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[RunningStack]:
    """The stack's own `Stack.run()` with its broker, its monitoring parts and the consumer part (the
    clearml-serving parts left out: they need a ClearML server, and the consumer needs only the broker)."""
    tool("prometheus")
    tool("prometheus-alertmanager")
    database_url = f"sqlite:///{tmp_path / 'quality.db'}"
    monkeypatch.setenv(DATABASE_URL_ENV, database_url)
    monkeypatch.setenv(contract.PREDICTIONS_TOPIC_ENV, TOPIC)
    only_the_broker = stack.serving_parts
    monkeypatch.setattr(stack, "serving_parts", lambda config: only_the_broker(config)[:1])
    monkeypatch.setattr(stack, "stop_on_signals", lambda supervisor: None)  # not the main thread
    ports = {name: free_port() for name in ("port", "metrics_port", "broker_port", "prometheus_port",
                                             "alertmanager_port", "webhook_port",
                                             "node_exporter_port")}  # fmt: skip
    config = StackConfig(
        data_dir=tmp_path / "stack", service_id="s", monitoring="on", scrape_seconds=1.0,
        extra_parts=(consumer.stack_part(),), **ports,
    )  # fmt: skip
    running = stack.Stack(config)
    outcome: list[int] = []
    thread = threading.Thread(target=lambda: outcome.append(running.run()))
    thread.start()
    try:
        wait_for(lambda: running_stack(config.data_dir) or outcome, "the stack to be ready", 120.0)
        assert not outcome, f"the stack stopped: {outcome}"
        yield RunningStack(running.config, running, database_url)
    finally:
        running.supervisor.request_stop()
        thread.join(timeout=120)
    assert outcome == [0]


def prometheus_value(prometheus_url: str, query: str) -> float | None:
    url = f"{prometheus_url}/api/v1/query?{urllib.parse.urlencode({'query': query})}"
    with urllib.request.urlopen(url, timeout=5) as reply:
        result = json.load(reply)["data"]["result"]
    return float(result[0]["value"][1]) if result else None


def test_the_stack_runs_scrapes_restarts_and_stops_the_consumer(
    quality_stack: RunningStack, capsys: pytest.CaptureFixture[str]
) -> None:
    config, url = quality_stack.config, quality_stack.database_url
    state = running_stack(config.data_dir)
    part_url = state.part_urls[consumer.SCRAPE_TARGET]
    (part,) = config.extra_parts
    assert part.port and part_url == f"http://127.0.0.1:{part.port}"  # the free port the stack chose
    with urllib.request.urlopen(f"{part_url}/metrics", timeout=5) as reply:
        assert reply.status == 200

    sent = publish(state.broker, 0, 2000)
    wait_for(lambda: store.count_predictions(url) > 0, "the consumer part to store its first batch", 60.0)
    first_pid = state.pids[consumer.SCRAPE_TARGET]
    os.kill(first_pid, signal.SIGKILL)
    sent += publish(state.broker, 2000, 1000)  # while it is down or restarting

    def restarted() -> bool:
        now = running_stack(config.data_dir)
        record = json.loads(config.state_path.read_text())["parts"][consumer.SCRAPE_TARGET]
        return now.pids[consumer.SCRAPE_TARGET] != first_pid and record == {
            "state": "running", "restarts": 1, "reason": record["reason"]
        }  # fmt: skip

    wait_for(restarted, "the supervisor to restart the consumer part", 60.0)
    wait_for(lambda: store.count_predictions(url) >= len(sent), f"{len(sent)} stored predictions", 60.0)
    assert sorted(store.request_ids(url)) == sorted(sent)
    with store.engine(url).connect() as connection:
        assert sum(store.stored_offsets(connection, TOPIC).values()) == len(sent)  # each message stored once

    assert cli.status(config) == 0
    assert f"{consumer.SCRAPE_TARGET}:" in capsys.readouterr().out  # status names the part and its URL

    scraped = f'up{{job="{APPLICATION_JOB}", exporter="{consumer.SCRAPE_TARGET}"}}'
    wait_for(lambda: prometheus_value(config.prometheus_url, scraped) == 1.0, "Prometheus to scrape it", 60.0)
    target = monitoring.application_targets_dir(config) / f"{consumer.SCRAPE_TARGET}.json"
    assert json.loads(target.read_text())[0]["targets"] == [f"127.0.0.1:{part.port}"]

    last_pid = running_stack(config.data_dir).pids[consumer.SCRAPE_TARGET]
    quality_stack.stack.supervisor.request_stop()
    wait_for(lambda: not target.exists(), "the scrape target to be removed with the stack", 60.0)
    wait_for(lambda: not pid_alive(last_pid), "the consumer part to stop with the stack", 60.0)
