"""The web view over HTTP, on data made by real SDK flows (a reporting task, two dataset versions, a pipeline
run, a model, a clearml-serving service): every URL the SDK printed opens its page, every list and tab holds
what was reported, the API still answers beside it, and a non-loopback bind asks for the keys."""

from __future__ import annotations

import base64
import hashlib
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import requests

from clearml_local.config import BackendConfig
from clearml_local.server import EmbeddedBackend
from tests.backend.backend_harness import BackendHarness
from tests.webview.browser import RUNS, assert_not_blank, read_dom, render
from tests.webview.populate import Populated

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def page(backend: BackendHarness, path: str, status: int = 200) -> str:
    reply = requests.get(backend.api_url + path, timeout=30)
    assert reply.status_code == status, f"{path} -> {reply.status_code}: {reply.text[:300]}"
    return reply.text


def task(backend: BackendHarness, task_id: str) -> dict[str, Any]:
    return backend.call("tasks.get_by_id", {"task": task_id})["task"]


def html_text(value: str) -> str:
    return value.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;")


def test_every_url_the_sdk_printed_opens_its_page(backend: BackendHarness, populated: Populated) -> None:
    urls = populated.printed_urls
    shapes = {urlsplit(u).path.split("/")[1] for u in urls}
    assert shapes == {"projects", "datasets", "pipelines"}, urls
    assert all(u.startswith(backend.api_url + "/") for u in urls)  # web_server is the API server's address
    for url in urls:
        path = urlsplit(url).path
        body = page(backend, path)
        shown = task(backend, path.split("/experiments/")[1].split("/")[0])
        assert html_text(shown["name"]) in body and shown["status"] in body, url
    assert "&lt;b&gt;task&lt;/b&gt;" in page(backend, urlsplit(urls[0]).path)  # the task name is text


def test_experiment_tabs_hold_what_the_task_reported(backend: BackendHarness, populated: Populated) -> None:
    reported = task(backend, populated.task["task_id"])
    base = f"/projects/{reported['project']}/experiments/{reported['id']}"
    assert populated.task["marker"] in page(backend, base + "/output/log")
    config = page(backend, base + "/hyper-params/hyper-param/_all_")
    assert "binary:logistic" in config and "depth" in config
    artifacts = page(backend, base + "/artifacts")
    assert "frame" in artifacts and "flow a model" in artifacts
    # the file server wants a token a browser lacks: its objects download through the view
    links = re.findall(r'<a href="(/webview/files/[^"]+)">download</a>', artifacts)
    model = next(link for link in links if link.endswith("model.bin"))
    served = requests.get(backend.api_url + model, timeout=30)
    assert served.status_code == 200 and "attachment" in served.headers["Content-Disposition"]
    assert hashlib.sha256(served.content).hexdigest() == populated.task["model_sha256"]
    assert len(links) >= 2 and backend.files_url not in artifacts
    assert "loss/train" in page(backend, "/projects/*/experiments")
    scalars = json.loads(page(backend, f"/webview/api/tasks/{reported['id']}/scalars"))
    assert scalars["loss"]["train"]["y"] == populated.task["losses"]
    plots = json.loads(page(backend, f"/webview/api/tasks/{reported['id']}/plots"))
    assert {(p["metric"], p["variant"]) for p in plots} == {("importance", "top"), ("curve", "loss")}
    assert all(p["figure"]["data"] for p in plots)  # the plotly figure as the SDK reported it


def test_datasets_pipelines_models_and_serving(backend: BackendHarness, populated: Populated) -> None:
    child = task(backend, populated.datasets["child_id"])
    assert {"raw", "derived"} <= set(_cells(page(backend, "/datasets")))
    version = page(backend, f"/datasets/simple/{child['project']}/experiments/{child['id']}")
    assert "c.txt" in version and "a.csv" in version
    assert f"/experiments/{populated.datasets['parent_id']}" in version  # the parent version, linked

    controller = task(backend, populated.pipeline["pipeline_id"])
    assert controller["name"] in page(backend, "/pipelines")
    run = page(backend, f"/pipelines/{controller['project']}/experiments/{controller['id']}")
    for step in ("one", "two", "combine"):
        assert f">{step}</text>" in run
    assert run.count("completed") >= 4

    models = page(backend, "/models")
    assert "web model" in models and "flow a model" in models and "xgboost" in models
    service = page(backend, f"/serving/{populated.service_id}")
    assert "web model" in service and "asteroid_canary" in service and "0.1, 0.9" in service
    assert "0.0, 1.0, 2.0" in service and "max_versions" in service
    assert "web service" in page(backend, "/serving")


def _cells(body: str) -> list[str]:
    return [part.split("<", 1)[0] for part in body.split('">')[1:]]


def test_the_api_answers_beside_the_view(backend: BackendHarness, populated: Populated) -> None:
    assert backend.call("tasks.get_all", {"id": [populated.task["task_id"]]})["tasks"]
    unauthenticated = requests.post(backend.api_url + "/v2.23/projects.get_all", json={}, timeout=30)
    assert unauthenticated.status_code == 401 and unauthenticated.json()["meta"]["result_code"] == 401
    head = requests.head(backend.api_url + "/projects", timeout=30)
    assert head.status_code == 200 and head.headers["Content-Type"].startswith("text/html")
    assert "script-src 'self'" in head.headers["Content-Security-Policy"]
    assert requests.post(backend.api_url + "/projects", json={}, timeout=30).status_code == 400
    page(backend, "/projects/*/experiments/0123456789abcdef/output/log", status=404)


GUARDED_PATHS = (
    "/projects",
    "/webview/static/view.js",
    "/projects/x/experiments/y/output/log",
    "/webview/files/secret project/model.bin",
    "/webview/api/tasks/x/scalars",
)


@pytest.fixture
def guarded(tmp_path: Path) -> Iterator[EmbeddedBackend]:
    """A backend whose web view asks for the keys, as it does when bound to another interface."""
    config = BackendConfig(tmp_path / "data", api_port=0, files_port=0, web_auth=True)
    backend = EmbeddedBackend(config).start()
    try:
        yield backend
    finally:
        backend.stop()


def test_a_non_loopback_view_needs_the_backends_keys(guarded: EmbeddedBackend) -> None:
    keys = guarded.credentials
    basic = base64.b64encode(f"{keys.access_key}:{keys.secret_key}".encode()).decode()
    token = requests.get(
        guarded.api_url + "/v2.23/auth.login", headers={"Authorization": f"Basic {basic}"}, timeout=30
    ).json()["data"]["token"]
    created = requests.post(
        guarded.api_url + "/v2.23/projects.create",
        json={"name": "secret project", "description": ""},
        headers={"Authorization": f"Bearer {token}"},
        timeout=30,
    )
    assert created.status_code == 200
    wrong = base64.b64encode(f"{keys.access_key}:wrong".encode()).decode()
    for headers in ({}, {"Authorization": f"Basic {wrong}"}, {"Authorization": f"Bearer {token}"}):
        for path in GUARDED_PATHS:
            denied = requests.get(guarded.api_url + path, headers=headers, timeout=30)
            assert denied.status_code == 401, (path, headers)
            assert denied.headers["WWW-Authenticate"].startswith("Basic")
            assert denied.headers["Content-Type"].startswith("text/html") and "<h1>401</h1>" in denied.text
            assert "secret project" not in denied.text and "Traceback" not in denied.text
    keyed = {"Authorization": f"Basic {basic}"}
    allowed = requests.get(guarded.api_url + "/projects", headers=keyed, timeout=30)
    assert allowed.status_code == 200 and "secret project" in allowed.text
    missing = requests.get(
        guarded.api_url + "/projects/x/experiments/y/output/log", headers=keyed, timeout=30
    )
    assert missing.status_code == 404 and "<h1>404</h1>" in missing.text  # with the keys: the page is missing


def test_bound_to_every_interface_the_view_asks_for_the_keys(tmp_path: Path) -> None:
    """No ``web_auth`` override: the bind address alone decides (here all interfaces, so keys)."""
    config = BackendConfig(tmp_path / "data", host="0.0.0.0", api_port=0, files_port=0)
    backend = EmbeddedBackend(config).start()
    try:
        port = backend.api.server_address[1]
        for path in GUARDED_PATHS:
            denied = requests.get(f"http://127.0.0.1:{port}{path}", timeout=30)
            assert denied.status_code == 401 and "<h1>401</h1>" in denied.text, path
            assert "Traceback" not in denied.text
    finally:
        backend.stop()


@pytest.mark.parametrize(
    "path",
    [
        "/projects/*/experiments/0123456789abcdef/output/log",  # no such experiment
        "/projects/0123456789abcdef/experiments",  # no such project
        "/projects/{project}/experiments/{task}/output/no-such-tab",
        "/datasets/simple/{project}/experiments/{task}",  # an experiment, not a dataset version
        "/pipelines/{project}/experiments/{task}",  # not a pipeline run
        "/serving/{task}",  # not a serving service
        "/models/0123456789abcdef/details",  # no such page
        "/webview/files/no/such/file.png",
        "/webview/api/tasks/0123456789abcdef/scalars",
    ],
)
def test_bad_ids_and_missing_pages_get_a_404_page(
    backend: BackendHarness, populated: Populated, path: str
) -> None:
    reported = task(backend, populated.task["task_id"])
    url = backend.api_url + path.format(project=reported["project"], task=reported["id"])
    reply = requests.get(url, timeout=30)
    assert reply.status_code == 404 and reply.headers["Content-Type"].startswith("text/html"), url
    assert "<h1>404</h1>" in reply.text and "Traceback" not in reply.text
    assert "script-src 'self'" in reply.headers["Content-Security-Policy"]


def test_a_failing_page_is_a_500_page_naming_an_incident(
    backend: BackendHarness, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(path: str, query: str) -> None:
        raise RuntimeError("secret detail of a bug")

    monkeypatch.setattr(backend.backend.api.webview, "handle", broken)
    reply = requests.get(backend.api_url + "/projects", timeout=30)
    assert reply.status_code == 500 and "<h1>500</h1>" in reply.text
    incident = re.search(r"incident ([0-9a-f]{12})", reply.text)
    assert incident and "secret detail" not in reply.text and "Traceback" not in reply.text
    assert any(incident.group(1) in record.getMessage() for record in caplog.records)  # the log has the rest


# --- in a browser -------------------------------------------------------------------------------------


def test_charts_and_graphs_render_in_chromium(
    backend: BackendHarness, populated: Populated, tmp_path: Path
) -> None:
    reported = task(backend, populated.task["task_id"])
    base = f"{backend.api_url}/projects/{reported['project']}/experiments/{reported['id']}"
    plots = read_dom(render(base + "/output/metrics/plots", tmp_path / "profile").dom)
    assert len(plots.charts) == 2 and all(chart.svgs for chart in plots.charts)  # plotly drew both plots
    scalars = read_dom(render(base + "/output/metrics/scalar", tmp_path / "profile").dom)
    assert [(c.title, c.legend) for c in scalars.charts] == [("loss", ["train"])]

    controller = task(backend, populated.pipeline["pipeline_id"])
    pipeline_url = f"{backend.api_url}/pipelines/{controller['project']}/experiments/{controller['id']}"
    for name, url in (("scalars", base + "/output/metrics/scalar"), ("pipeline", pipeline_url)):
        shot = RUNS / f"{name}.png"
        render(url, tmp_path / "profile", screenshot=shot)
        assert_not_blank(shot)


def test_debug_samples_show_what_the_sdk_uploaded(
    backend: BackendHarness, populated: Populated, tmp_path: Path
) -> None:
    reported = task(backend, populated.samples["task_id"])
    url = f"{backend.api_url}/projects/{reported['project']}/experiments/{reported['id']}/output/debugImages"
    reply = requests.get(url, timeout=30)
    assert reply.status_code == 200
    images = re.findall(r'<img src="(/webview/files/[^"]+\.jpeg)"', reply.text)
    media = re.findall(r'<a href="(/webview/files/[^"]+\.html)"', reply.text)
    assert len(images) == 2 and len(media) == 1, reply.text[-2000:]
    for path, kind in [(p, "image/jpeg") for p in images] + [(p, "application/octet-stream") for p in media]:
        served = requests.get(backend.api_url + path, timeout=30)
        assert served.status_code == 200 and served.headers["Content-Type"] == kind, path
    assert b"media sample" in requests.get(backend.api_url + media[0], timeout=30).content

    shot = RUNS / "debug-samples.png"
    shown = render(url, tmp_path / "profile", screenshot=shot)
    assert "Content Security Policy" not in shown.log and "Refused to load" not in shown.log, shown.log
    assert shown.dom.count("<img ") == 2 and shown.dom.count('data-loaded="1"') == 2  # both images loaded
    assert 'class="sample broken"' not in shown.dom
    dom = read_dom(shown.dom)
    assert "gradient · iteration 1" in dom.text and "report · iteration 0" in dom.text
    assert_not_blank(shot)


@pytest.mark.parametrize(
    "request_line",
    [
        b"GET /projects/\xff\xfe/experiments HTTP/1.1",
        b"GET /projects?name=" + b"x" * 70_000 + b" HTTP/1.1",
        b"GET /projects/%ff/experiments/%00 HTTP/1.1",
        b"GET /datasets/simple/../../etc/passwd HTTP/1.1",
        b"GET /projects/*/experiments/" + b"a" * 3000 + b" HTTP/1.1",
    ],
)
def test_bad_requests_get_a_4xx_never_a_traceback(backend: BackendHarness, request_line: bytes) -> None:
    import socket

    host, port = urlsplit(backend.api_url).netloc.split(":")
    with socket.create_connection((host, int(port)), timeout=30) as conn:
        conn.sendall(request_line + b"\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        reply = b""
        while chunk := conn.recv(65536):
            reply += chunk
    status = int(reply.split(b" ", 2)[1])
    assert 400 <= status < 500, reply[:300]
    assert b"Traceback" not in reply
