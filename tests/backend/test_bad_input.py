"""Bad input never gets a 500, never stalls the server and never stores anything.

Every case asserts the 4xx status, ClearML's envelope naming the problem, that the reply shows no traceback or
server path, that the server still answers, and that no document was added or changed.
"""

from __future__ import annotations

import base64
import json
import socket
import sqlite3
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import requests

from clearml_local import http_base
from tests.backend.backend_harness import API_PREFIX, BackendHarness, wait_for

DEEP = 600


def nested(depth: int, leaf: Any = "x") -> Any:
    value: Any = leaf
    for _ in range(depth):
        value = {"k": value}
    return value


def snapshot(backend: BackendHarness) -> dict[str, list[Any]]:
    """Every document the API can list, to compare before and after a bad call."""
    everything = {"search_hidden": True}
    return {
        "tasks": backend.call("tasks.get_all", everything)["tasks"],
        "models": backend.call("models.get_all", everything)["models"],
        "projects": backend.call("projects.get_all", everything)["projects"],
        "queues": backend.call("queues.get_all", {})["queues"],
    }


@pytest.fixture(scope="module")
def existing(backend: BackendHarness) -> dict[str, str]:
    """A project, a task and a model that bad calls name, so that they reach the checks past 'unknown id'."""
    project = backend.call("projects.create", {"name": f"bad-input-{uuid.uuid4().hex[:6]}"})["id"]
    task = backend.call("tasks.create", {"name": "target", "type": "training", "project": project})["id"]
    model = backend.call(
        "models.create", {"name": "target-model", "uri": "http://f/m.bin", "project": project}
    )["id"]
    return {"project": project, "task": task, "model": model}


@pytest.fixture
def unchanged(backend: BackendHarness, existing: dict[str, str]) -> Iterator[None]:
    before = snapshot(backend)
    yield
    assert backend.call("debug.ping")["msg"], "the server stopped answering"
    assert snapshot(backend) == before, "a rejected call changed what is stored"


def assert_rejected(backend: BackendHarness, reply: requests.Response, status: int, *fragments: str) -> str:
    assert reply.status_code == status, f"expected {status}, got {reply.status_code}: {reply.text[:300]}"
    envelope = reply.json()
    assert envelope["data"] == {}
    assert envelope["meta"]["result_code"] == status
    message: str = envelope["meta"]["result_msg"]
    for fragment in fragments:
        assert fragment in message, message
    assert "Traceback" not in reply.text
    assert str(backend.root) not in reply.text
    return message


# (endpoint, body, fragments the message must contain); "{task}" etc. are filled with existing ids.
BAD_CALLS: list[tuple[str, dict[str, Any], tuple[str, ...]]] = [
    ("tasks.create", {"name": "t", "type": "training", "system_tags": 5}, ("system_tags", "array")),
    ("tasks.create", {"name": "t", "type": "training", "tags": 5}, ("tags",)),
    ("tasks.create", {"name": "t", "type": "training", "tags": [1, 2]}, ("tags.",)),
    ("tasks.create", {"name": "t", "type": "training", "hyperparams": "x"}, ("hyperparams",)),
    (
        "tasks.create",
        {"name": "t", "type": "training", "hyperparams": {"s": {"p": {"value": {"v": 1}}}}},
        ("hyperparams.s.p",),
    ),
    (
        "tasks.create",
        {"name": "t", "type": "training", "hyperparams": nested(DEEP)},
        ("hyperparams", "deeper"),
    ),
    ("tasks.create", {"name": "t", "type": "training", "configuration": 5}, ("configuration",)),
    ("tasks.create", {"name": "t", "type": "training", "execution": "x"}, ("execution",)),
    (
        "tasks.create",
        {"name": "t", "type": "training", "execution": {"artifacts": [{"key": "a", "timestamp": "now"}]}},
        ("execution",),
    ),
    ("tasks.create", {"name": "t", "type": "training", "runtime": nested(40)}, ("runtime", "deeper")),
    ("tasks.create", {"name": "t", "type": "training", "models": 5}, ("models",)),
    ("tasks.create", {"name": "t", "type": "training", "script": 5}, ("script",)),
    ("tasks.create", {"name": "t", "type": "teleport"}, ("type", "one of")),
    ("tasks.create", {"type": "training"}, ("name", "required")),
    ("tasks.create", {"name": 5, "type": "training"}, ("name",)),
    ("tasks.create", {"name": "t", "type": "training", "project": 5}, ("project",)),
    ("tasks.get_by_id", {"task": 5}, ("task",)),
    ("tasks.get_by_id", {"task": ["a", "b"]}, ("task",)),
    ("tasks.get_by_id", {}, ("task", "required")),
    ("tasks.get_all", {"id": 5}, ("id",)),
    ("tasks.get_all", {"tags": 5}, ("tags",)),
    ("tasks.get_all", {"system_tags": {"a": 1}}, ("system_tags",)),
    ("tasks.get_all", {"only_fields": "name"}, ("only_fields",)),
    ("tasks.get_all", {"order_by": 5}, ("order_by",)),
    ("tasks.get_all", {"page": "first", "page_size": 2}, ("page",)),
    ("tasks.get_all", {"page": 0}, ("page_size",)),
    ("tasks.get_all", {"page": 0, "page_size": 0}, ("page_size",)),
    ("tasks.get_all", {"name": 5}, ("name",)),
    ("tasks.get_all", {"name": "(a)\\1"}, ("name", "linear time")),
    ("tasks.get_all", {"name": "^(?=x)"}, ("name", "linear time")),
    ("tasks.get_all", {"name": "("}, ("name",)),
    ("tasks.get_all", {"_any_": 5}, ("_any_",)),
    ("tasks.get_all", {"_all_": {"pattern": "(?<=a)b", "fields": ["name"]}}, ("_all_.pattern",)),
    ("tasks.edit", {"task": "{task}", "execution": 5}, ("execution",)),
    ("tasks.edit", {"task": "{task}", "hyperparams": {"s": "x"}}, ("hyperparams.s",)),
    ("tasks.edit", {"task": "{task}", "configuration": {"c": {"value": 5}}}, ("configuration.c.value",)),
    ("tasks.edit", {"task": "{task}", "script": {"diff": 5}}, ("script.diff",)),
    ("tasks.edit", {"task": "{task}", "models": {"input": [{"name": "m"}]}}, ("models.input.0.model",)),
    ("tasks.edit_hyper_params", {"task": "{task}", "hyperparams": "x"}, ("hyperparams",)),
    ("tasks.edit_configuration", {"task": "{task}", "configuration": [5]}, ("configuration.0",)),
    ("tasks.add_or_update_artifacts", {"task": "{task}", "artifacts": [{"key": "a"}]}, ("artifacts.0",)),
    ("tasks.enqueue", {"task": "{task}", "queue": 5}, ("queue",)),
    ("tasks.started", {"task": "{task}", "force": "yes"}, ("force", "boolean")),
    (
        "tasks.add_or_update_model",
        {"task": "{task}", "name": "m", "model": "{model}", "type": "x"},
        ("type",),
    ),
    (
        "tasks.add_or_update_model",
        {"task": "{task}", "name": "m", "model": "{model}", "iteration": 2**70},
        ("int64",),
    ),
    ("models.create", {"name": 5, "uri": "http://f/m.bin"}, ("name",)),
    ("models.edit", {"model": "{model}", "labels": "x"}, ("labels",)),
    ("models.get_all", {"tags": 5}, ("tags",)),
    ("models.set_ready", {"model": 5}, ("model",)),
    ("projects.create", {"name": 5}, ("name",)),
    ("projects.create", {"name": "a//b"}, ("name",)),
    ("projects.delete", {"project": "{project}", "force": "no"}, ("force",)),
    ("queues.create", {"name": []}, ("name",)),
    ("queues.get_all", {"name": "(b+)+\\1"}, ("name",)),
    ("workers.status_report", {"worker": 5, "timestamp": 1}, ("worker",)),
    ("workers.status_report", {"worker": "w", "timestamp": "now"}, ("timestamp",)),
    ("events.get_task_log", {"task": "{task}", "batch_size": "all"}, ("batch_size",)),
]


@pytest.mark.parametrize(("endpoint", "body", "fragments"), BAD_CALLS)
def test_bad_call_is_400_naming_the_field(
    backend: BackendHarness,
    existing: dict[str, str],
    unchanged: None,
    endpoint: str,
    body: dict[str, Any],
    fragments: tuple[str, ...],
) -> None:
    filled = json.loads(json.dumps(body).replace('"{task}"', json.dumps(existing["task"])))
    filled = json.loads(
        json.dumps(filled)
        .replace('"{model}"', json.dumps(existing["model"]))
        .replace('"{project}"', json.dumps(existing["project"]))
    )
    assert_rejected(backend, backend.post(endpoint, filled), 400, *fragments)


@pytest.mark.parametrize(
    ("raw", "fragment"),
    [
        (b'{"name": ', "Invalid JSON"),
        (b'{"name": "t", "tags": [' + b"[" * 5000 + b"]" * 5000 + b"]}", "Invalid JSON"),
        (b'{"name": "t", "tags": [' + b"[" * 100 + b"]" * 100 + b"]}", "deeper"),
        (b'{"name": "t", "last_iteration": ' + b"9" * 5000 + b"}", "Invalid JSON"),
        (b'{"name": "t", "comment": "x", "iteration": ' + b"9" * 30 + b"}", "int64"),
        (b'"just a string"', "JSON object"),
        (b"\xff\xfe not utf-8 {", "Invalid JSON"),
    ],
    ids=[
        "truncated",
        "deeper-than-the-parser",
        "deep",
        "5000-digits",
        "beyond-int64",
        "not-an-object",
        "bytes",
    ],
)
def test_malformed_bodies_are_400(
    backend: BackendHarness, unchanged: None, raw: bytes, fragment: str
) -> None:
    reply = backend.post("tasks.create", data=raw, headers={"Content-Type": "application/json"})
    assert_rejected(backend, reply, 400, fragment)


@pytest.mark.parametrize(
    "credentials",
    ["w\u00e4hrung:geheim", "\u00fc:\u00fc", "no-colon-\u2603"],
    ids=["latin", "short", "no-colon"],
)
def test_non_ascii_basic_credentials_are_401(backend: BackendHarness, credentials: str) -> None:
    token = base64.b64encode(credentials.encode()).decode()
    for header in (f"Basic {token}", f"Basic {credentials}"):
        reply = backend.http.get(
            f"{backend.api_url}{API_PREFIX}auth.login",
            headers={"Authorization": header.encode().decode("latin-1")},
            timeout=10,
        )
        assert_rejected(backend, reply, 401, "Unauthorized")


# --- raw HTTP -----------------------------------------------------------------------------------------------


def raw_exchange(url: str, request: bytes, timeout: float = 10.0) -> tuple[int, bytes]:
    """Send bytes as they are; the status and body of the one reply (none for HEAD)."""
    address = urlsplit(url)
    with socket.create_connection((address.hostname, address.port), timeout=timeout) as client:
        client.sendall(request)
        return read_reply(client, with_body=not request.startswith(b"HEAD "))


def read_reply(client: socket.socket, with_body: bool = True) -> tuple[int, bytes]:
    """The status and body of one HTTP reply (the socket's timeout bounds a server that never answers)."""
    received = b""
    while b"\r\n\r\n" not in received:
        chunk = client.recv(65536)
        if not chunk:
            break
        received += chunk
    head, _, rest = received.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    lengths = [
        int(line.split(b":")[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length")
    ]
    length = lengths[0] if lengths and with_body else 0
    while len(rest) < length:
        chunk = client.recv(65536)
        if not chunk:
            break
        rest += chunk
    return status, rest[:length]


def headers_request(method: str, path: str, token: str, extra: str) -> bytes:
    head = f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {token}\r\n"
    return (head + f"{extra}\r\n").encode()


@pytest.mark.parametrize(
    ("extra_headers", "status"),
    [
        ("Content-Length: abc\r\n", 400),
        ("Content-Length: -1\r\n", 400),
        ("Content-Length: 1000000000000\r\n", 413),
        ("Content-Length: \u00b2\r\n", 400),
        ("Transfer-Encoding: chunked\r\n", 411),
    ],
    ids=["non-numeric", "negative", "huge", "unicode-digit", "chunked"],
)
@pytest.mark.parametrize("server", ["api", "files"])
def test_bad_content_length_is_4xx(
    backend: BackendHarness, extra_headers: str, status: int, server: str
) -> None:
    url, path = (
        (backend.api_url, f"{API_PREFIX}tasks.get_all") if server == "api" else (backend.files_url, "/x")
    )
    request = headers_request("POST", path, backend.token, extra_headers)
    got, payload = raw_exchange(url, request)
    assert got == status, payload[:300]
    assert json.loads(payload)["meta"]["result_code"] == status
    assert backend.call("debug.ping")


def test_upload_without_content_length_is_411(backend: BackendHarness) -> None:
    request = headers_request(
        "POST", "/x", backend.token, "Content-Type: multipart/form-data; boundary=b\r\n"
    )
    status, payload = raw_exchange(backend.files_url, request)
    assert status == 411
    assert json.loads(payload)["meta"]["result_code"] == 411


@pytest.mark.parametrize("method", ["PUT", "DELETE", "PATCH", "OPTIONS", "HEAD", "FOO"])
def test_other_methods_get_the_envelope_with_405(backend: BackendHarness, method: str) -> None:
    status, payload = raw_exchange(
        backend.api_url, headers_request(method, f"{API_PREFIX}tasks.get_all", backend.token, "")
    )
    assert status == 405
    if method != "HEAD":
        assert json.loads(payload)["meta"]["result_code"] == 405
    assert backend.call("debug.ping")


@pytest.mark.parametrize("method", ["PUT", "PATCH", "OPTIONS", "FOO"])
def test_file_server_other_methods_get_405(backend: BackendHarness, method: str) -> None:
    status, payload = raw_exchange(backend.files_url, headers_request(method, "/a.txt", backend.token, ""))
    assert status == 405
    assert json.loads(payload)["meta"]["result_code"] == 405


def test_clients_that_stall_mid_body_do_not_block_others(backend: BackendHarness) -> None:
    """Connections that announce more body than they send each hold one slot, not the server."""
    address = urlsplit(backend.api_url)
    stalled = []
    try:
        for _ in range(40):
            client = socket.create_connection((address.hostname, address.port), timeout=10)
            client.sendall(
                headers_request(
                    "POST", f"{API_PREFIX}tasks.get_all", backend.token, "Content-Length: 500\r\n"
                )
                + b"{"
            )
            stalled.append(client)
        assert backend.call("debug.ping")
        assert "tasks" in backend.call("tasks.get_all", {"size": 1})
    finally:
        for client in stalled:
            client.close()


# --- regular expressions ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("pattern", "matches"),
    [("^(b+)+c$", ""), ("(a+)+$", "a"), ("^(a|aa)+$", "a"), ("(x+x+)+y", "")],
)
def test_catastrophic_backtracking_pattern_returns_within_a_second(
    backend: BackendHarness, pattern: str, matches: str
) -> None:
    project = backend.call("projects.create", {"name": f"regex-{uuid.uuid4().hex[:6]}"})["id"]
    names = {
        letter: backend.call("tasks.create", {"name": letter * 5000, "type": "training", "project": project})[
            "id"
        ]
        for letter in "bax"
    }
    # The timeout bounds a hang: a backtracking engine takes minutes on these names.
    reply = backend.http.post(
        f"{backend.api_url}{API_PREFIX}tasks.get_all",
        json={"name": pattern, "project": [project], "only_fields": ["id"]},
        headers={"Authorization": f"Bearer {backend.token}"},
        timeout=1.0,
    )
    assert reply.status_code == 200
    found = [task["id"] for task in reply.json()["data"]["tasks"]]
    assert found == ([names[matches]] if matches else [])


# --- records stored before requests were validated ---------------------------------------------------------


def store_raw_tasks(db_path: Path, docs: list[dict[str, Any]]) -> None:
    with sqlite3.connect(db_path) as db:
        for doc in docs:
            db.execute(
                "INSERT OR REPLACE INTO documents (collection, id, body) VALUES ('tasks', ?, ?)",
                (doc["id"], json.dumps(doc)),
            )


def test_poison_records_already_stored_do_not_break_reads(tmp_path: Path) -> None:
    harness = BackendHarness(tmp_path).start()
    task_id = harness.call("tasks.create", {"name": "healthy", "type": "training"})["id"]
    template = harness.call("tasks.get_by_id", {"task": task_id})["task"]
    harness.stop()
    poison = {
        "system_tags": {**template, "id": uuid.uuid4().hex, "system_tags": 5},
        "tags": {**template, "id": uuid.uuid4().hex, "tags": 5},
        "hyperparams": {**template, "id": uuid.uuid4().hex, "hyperparams": "x"},
        "configuration": {**template, "id": uuid.uuid4().hex, "configuration": 5},
        "deep": {**template, "id": uuid.uuid4().hex, "hyperparams": {"s": {"p": nested(DEEP)}}},
    }
    store_raw_tasks(harness.backend.config.db_path, list(poison.values()))
    with sqlite3.connect(harness.backend.config.db_path) as db:
        db.execute("INSERT INTO documents VALUES ('tasks', 'unreadable', '{not json')")

    restarted = BackendHarness(tmp_path).start()
    try:
        listed = {t["id"] for t in restarted.call("tasks.get_all", {})["tasks"]}
        assert listed == {task_id, *(doc["id"] for doc in poison.values())}
        assert restarted.call("tasks.get_all", {"system_tags": ["-archived"], "tags": ["x"]})["tasks"] == []
        for doc in poison.values():
            restarted.call("tasks.get_hyper_params", {"tasks": [doc["id"]]})
            restarted.call("tasks.edit", {"task": doc["id"], "comment": "edited", "force": True})
            restarted.call("tasks.clone", {"task": doc["id"]})
            restarted.call("tasks.delete", {"task": doc["id"], "force": True})
    finally:
        restarted.stop()


# --- read timeout and the bound on connections --------------------------------------------------------------


def stalled_client(url: str, token: str) -> socket.socket:
    """A connection that announces a body of 500 bytes and sends one."""
    address = urlsplit(url)
    client = socket.create_connection((address.hostname, address.port), timeout=10)
    client.sendall(
        headers_request("POST", f"{API_PREFIX}tasks.get_all", token, "Content-Length: 500\r\n") + b"{"
    )
    return client


def test_a_client_that_stops_sending_gets_408_after_the_read_timeout(
    backend: BackendHarness, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(http_base.EnvelopeHandler, "timeout", 0.5)
    with stalled_client(backend.api_url, backend.token) as client:
        status, payload = read_reply(
            client
        )  # the client's own 10 s timeout bounds a server that never answers
    assert status == 408
    assert json.loads(payload)["meta"]["result_code"] == 408


def test_connections_beyond_the_bound_are_refused_and_the_server_recovers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(http_base, "MAX_CONNECTIONS", 3)
    monkeypatch.setattr(http_base, "SLOT_WAIT_S", 0.2)
    harness = BackendHarness(tmp_path).start()
    try:
        token = harness.token  # logs in on the harness's keep-alive connection, which holds one slot
        stalled = [stalled_client(harness.api_url, token) for _ in range(2)]
        with stalled_client(harness.api_url, token) as refused:
            assert refused.recv(65536) == b""  # closed without a reply: no thread was spent on it
        for client in stalled:
            client.close()

        def answers() -> bool:
            url = f"{harness.api_url}{API_PREFIX}debug.ping"
            try:
                return requests.post(url, data=b"{}", headers={"Connection": "close"}, timeout=5).ok
            except requests.ConnectionError:
                return False

        wait_for(answers, "the server to answer once the stalled clients left", 10.0)
    finally:
        harness.stop()


def test_a_post_without_content_length_is_411(backend: BackendHarness) -> None:
    status, payload = raw_exchange(
        backend.api_url, headers_request("POST", f"{API_PREFIX}tasks.get_all", backend.token, "")
    )
    assert status == 411
    assert json.loads(payload)["meta"]["result_code"] == 411
