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
        for path in ("/projects", "/webview/static/view.js", "/projects/x/experiments/y/output/log"):
            denied = requests.get(guarded.api_url + path, headers=headers, timeout=30)
            assert denied.status_code == 401, (path, headers)
            assert denied.headers["WWW-Authenticate"].startswith("Basic")
            assert "secret project" not in denied.text and "Traceback" not in denied.text
    allowed = requests.get(
        guarded.api_url + "/projects", headers={"Authorization": f"Basic {basic}"}, timeout=30
    )
    assert allowed.status_code == 200 and "secret project" in allowed.text


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
        conn.sendall(request_line + b"\r\nHost: x\r\nConnection: close\r\n\r\n")
        reply = b""
        while chunk := conn.recv(65536):
            reply += chunk
    status = int(reply.split(b" ", 2)[1])
    assert 400 <= status < 500, reply[:300]
    assert b"Traceback" not in reply
