"""The web view's HTML from documents written straight into a store: routes, escaping, 404 and 400 pages, the
serving and pipeline parsers. No server, no SDK: these run everywhere in milliseconds."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from clearml_local.http_api import web_auth_required
from clearml_local.storage import Store
from clearml_local.webview import WebView, is_web_path
from clearml_local.webview.assets import plotly_js_path
from clearml_local.webview.data import LOG_LINES, parse_hocon
from clearml_local.webview.files import FileLinks

EVIL = '<script>alert("x")</script>'
PROJECT, TASK, MODEL = "p1", "t1", "m1"


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    store = Store(tmp_path / "db.sqlite")
    store.put("projects", {"id": PROJECT, "name": f"proj {EVIL}"})
    store.put(
        "tasks",
        {
            "id": TASK,
            "name": f"task {EVIL}",
            "project": PROJECT,
            "type": "training",
            "status": "completed",
            "tags": [f"tag {EVIL}", "keep"],
            "started": "2026-01-01T00:00:00+00:00",
            "completed": "2026-01-01T00:01:30+00:00",
            "hyperparams": {"General": {"lr": {"section": "General", "name": "lr", "value": EVIL}}},
            "configuration": {"cfg": {"name": "cfg", "value": EVIL}},
            "execution": {"artifacts": [{"key": EVIL, "uri": "javascript:alert(1)", "mode": "output"}]},
            "models": {"output": [{"name": "model", "model": MODEL}]},
            "last_metrics": {"a": {"b": {"metric": "loss", "variant": "train", "value": 0.25}}},
        },
    )
    store.put("tasks", {"id": "t2", "name": "other", "project": PROJECT, "status": "failed", "tags": []})
    store.put(
        "models",
        {
            "id": MODEL,
            "name": f"model {EVIL}",
            "project": PROJECT,
            "task": TASK,
            "framework": "xgboost",
            "tags": ["pipeline_winner"],
            "ready": True,
            "uri": "http://127.0.0.1:8081/p/model.json",
        },
    )
    store.add_events([(TASK, "log", "", "", 0, 1000, {"task": TASK, "type": "log", "msg": f"line {EVIL}"})])
    store.add_events(
        [
            (
                TASK,
                "training_stats_scalar",
                "loss",
                "train",
                i,
                1000,
                {
                    "task": TASK,
                    "metric": "loss",
                    "variant": "train",
                    "iter": i,
                    "value": v,
                    "type": "training_stats_scalar",
                },
            )
            for i, v in enumerate([0.5, float("nan"), 0.25])
        ]
    )
    yield store
    store.close()


def get(store: Store, path: str, query: str = "") -> tuple[int, str]:
    response = WebView(store).handle(path, query)
    return response.status, response.body.decode()


@pytest.mark.parametrize(
    "path",
    [
        f"/projects/{PROJECT}/experiments/{TASK}",
        f"/projects/{PROJECT}/experiments/{TASK}/output/log",
        f"/projects/{PROJECT}/experiments/{TASK}/output/metrics/scalar",
        f"/projects/{PROJECT}/experiments/{TASK}/output/metrics/plots",
        f"/projects/{PROJECT}/experiments/{TASK}/hyper-params/hyper-param/_all_",
        f"/projects/{PROJECT}/experiments/{TASK}/configuration",
        f"/projects/{PROJECT}/experiments/{TASK}/artifacts/output-model",
        f"/projects/{PROJECT}/experiments/{TASK}/execution",
        f"/projects/*/experiments/{TASK}/info-output",
    ],
)
def test_experiment_tabs_render_and_escape_stored_text(store: Store, path: str) -> None:
    status, body = get(store, path)
    assert status == 200
    assert "task &lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in body
    assert "<script>alert" not in body


def test_tab_contents(store: Store) -> None:
    base = f"/projects/{PROJECT}/experiments/{TASK}"
    assert "line &lt;script&gt;" in get(store, base + "/output/log")[1]
    config = get(store, base + "/configuration")[1]
    assert config.count("&lt;script&gt;alert") >= 2  # the hyperparameter and the configuration object
    artifacts = get(store, base + "/artifacts")[1]
    assert 'href="javascript:' not in artifacts  # only http(s) URIs become links
    assert 'href="http://127.0.0.1:8081/p/model.json"' in artifacts
    overview = get(store, base)[1]
    assert "1:30 min" in overview and "0.25" in overview
    scalars = get(store, base + "/output/metrics/scalar")[1]
    assert 'src="/webview/static/plotly.min.js"' in scalars


def test_chart_json_is_valid_json_with_nan_as_null(store: Store) -> None:
    status, body = get(store, f"/webview/api/tasks/{TASK}/scalars")
    assert status == 200
    assert json.loads(body) == {"loss": {"train": {"name": "train", "x": [0, 1, 2], "y": [0.5, None, 0.25]}}}
    assert json.loads(get(store, f"/webview/api/tasks/{TASK}/plots")[1]) == []


def test_experiments_table_filters(store: Store) -> None:
    path = f"/projects/{PROJECT}/experiments"
    everything = get(store, path)[1]
    assert "other" in everything and "task &lt;script&gt;" in everything
    assert "other" not in get(store, path, "status=completed")[1]
    assert "other" not in get(store, path, "tag=keep")[1]
    named = get(store, path, "name=OTH")[1]
    assert "other" in named and "task &lt;script&gt;" not in named
    assert get(store, "/projects/*/experiments", "name=" + "%3Cscript%3E")[0] == 200


def test_lists_and_model_pages(store: Store) -> None:
    for path in (
        f"/projects/{PROJECT}",
        "/",
        "/projects",
        "/models",
        f"/projects/{PROJECT}/models",
        "/datasets",
        "/pipelines",
        "/serving",
        f"/projects/{PROJECT}/models/{MODEL}",
        f"/projects/{PROJECT}/models/{MODEL}/general",
    ):
        status, body = get(store, path)
        assert status == 200, path
        assert "<script>alert" not in body, path
    models = get(store, "/models")[1]
    assert "pipeline_winner" in models and "published" in models and "xgboost" in models


@pytest.mark.parametrize(
    "path",
    [
        "/projects/p1/experiments/nope/output/log",
        "/projects/nope/experiments/t1",
        "/projects/p1/experiments/t1/no-such-tab",
        "/projects/p1/models/nope",
        "/datasets/simple/p1/experiments/t1",  # a task, but not a dataset
        "/pipelines/p1/experiments/t1",
        "/serving/t1",
        "/webview/api/tasks/nope/scalars",
        "/webview/nothing",
        "/favicon.ico",
    ],
)
def test_unknown_ids_and_pages_are_404_pages(store: Store, path: str) -> None:
    status, body = get(store, path)
    assert status == 404 and "<h1>404</h1>" in body


@pytest.mark.parametrize(
    ("path", "query"),
    [
        ("/projects/%ff%fe", ""),
        ("/projects/" + "x" * 3000, ""),
        ("/projects/%00", ""),
        ("/projects", "name=" + "x" * 5000),
        ("/projects", "name=%ff"),
        ("/projects", "&".join(["a=1"] * 50)),
    ],
)
def test_bad_paths_and_queries_are_400_pages(store: Store, path: str, query: str) -> None:
    status, body = get(store, path, query)
    assert status == 400 and "<h1>400</h1>" in body


def test_web_paths_do_not_take_the_api_routes() -> None:
    assert is_web_path("/projects/x/experiments/y/output/log") and is_web_path("/")
    assert not is_web_path("/v2.23/tasks.get_all") and not is_web_path("/projects.get_all")
    assert not is_web_path("/auth.login")


def test_web_auth_is_required_off_loopback() -> None:
    assert not web_auth_required("127.0.0.1") and not web_auth_required("::1")
    assert not web_auth_required("localhost")
    assert web_auth_required("0.0.0.0") and web_auth_required("") and web_auth_required("192.168.1.5")


def test_serving_hocon_is_parsed_but_never_with_includes_or_substitutions() -> None:
    text = 'ep {\n  engine_type = "xgboost"\n  weights = [0.1, 0.9]\n}'
    assert parse_hocon(text) == {"ep": {"engine_type": "xgboost", "weights": [0.1, 0.9]}}
    assert parse_hocon('include "/etc/passwd"') is None
    assert parse_hocon("x = ${HOME}") is None
    assert parse_hocon("{{{ not hocon") is None


def test_plotly_js_comes_from_the_installed_package() -> None:
    path = plotly_js_path()
    assert path is not None and path.name == "plotly.min.js" and "site-packages" in str(path)


def test_latest_pipeline_is_a_404_before_any_run(store: Store) -> None:
    assert get(store, "/pipelines/*/experiments/latest")[0] == 404
    store.put(
        "tasks",
        {
            "id": "c1",
            "name": "run",
            "type": "controller",
            "system_tags": ["pipeline"],
            "status": "completed",
            "started": "2026-01-01T00:00:00+00:00",
            "configuration": {"Pipeline": {"name": "Pipeline", "value": "not json"}},
        },
    )
    status, body = get(store, "/pipelines/*/experiments/latest")
    assert status == 200 and "<h1>run" in body  # stored state that is not JSON shows no steps, not an error


def _debug_event(index: int, variant: str, url: str, iteration: int) -> tuple:
    body = {"task": TASK, "type": "training_debug_image", "metric": "samples", "variant": variant}
    body |= {"iter": iteration, "url": url, "key": url.split("8081", 1)[-1]}
    return (TASK, "training_debug_image", "samples", variant, iteration, 1000 + index, body)


FILES = "http://127.0.0.1:8081"


@pytest.fixture
def files(tmp_path: Path) -> FileLinks:
    """A file server's root with a debug image, a video, an HTML report and a script in it."""
    root = tmp_path / "files"
    folder = root / "p" / "t 1" / "metrics"
    folder.mkdir(parents=True)
    for name in ("digit_00000000.jpeg", "digit_00000001.jpeg", "clip_00000000.mp4", "report.html", "x.js"):
        (folder / name).write_bytes(b"content of " + name.encode())
    return FileLinks(root, FILES)


def test_debug_samples_tab_shows_images_and_media_through_the_view(store: Store, files: FileLinks) -> None:
    stored = f"{FILES}/p/t%201/metrics"
    store.add_events(
        [
            _debug_event(0, "digit", f"{stored}/digit_00000000.jpeg", 0),
            _debug_event(1, "digit", f"{stored}/digit_00000001.jpeg", 1),
            _debug_event(2, "clip", f"{stored}/clip_00000000.mp4", 0),
            _debug_event(3, "report", f"{stored}/report.html", 0),
            _debug_event(4, "elsewhere", "https://example.org/a.png", 0),
            _debug_event(5, EVIL, "javascript:alert(1)//x.png", 0),
            _debug_event(6, "malformed", "http://[not-an-address/x.png", 0),
        ]
    )
    view = WebView(store, files)
    body = view.handle(f"/projects/{PROJECT}/experiments/{TASK}/output/debugImages", "").body.decode()
    served = "/webview/files/p/t%201/metrics"
    assert "<h2>samples</h2>" in body
    assert f'<img src="{served}/digit_00000001.jpeg"' in body
    assert body.index("digit_00000001") < body.index("digit_00000000")  # newest iteration first
    assert f'<video controls preload="metadata" src="{served}/clip_00000000.mp4">' in body
    assert f'<a href="{served}/report.html">report.html</a>' in body
    # another server's image is a link, not loaded by the page; other schemes are text
    assert '<a href="https://example.org/a.png">a.png</a>' in body and 'src="https://' not in body
    assert 'src="javascript:' not in body and 'href="javascript:' not in body and "<script>alert" not in body
    assert "no debug samples reported" in get(store, "/projects/p1/experiments/t2/output/debugImages")[1]


def test_the_file_servers_objects_are_served_inert(store: Store, files: FileLinks) -> None:
    view = WebView(store, files)
    image = view.handle("/webview/files/p/t%201/metrics/digit_00000000.jpeg", "")
    assert image.status == 200 and image.content_type == "image/jpeg"
    assert image.body == b"content of digit_00000000.jpeg"
    assert image.headers["Content-Security-Policy"].startswith("sandbox")
    for name in ("report.html", "x.js"):
        other = view.handle(f"/webview/files/p/t%201/metrics/{name}", "")
        assert other.status == 200 and other.content_type == "application/octet-stream", name
        assert other.headers["Content-Disposition"].startswith("attachment")
    for missing in (
        "/webview/files/p/nothing.png",
        "/webview/files/p/..%2F..%2Fdb.sqlite",
        "/webview/files/p",
    ):
        assert view.handle(missing, "").status == 404, missing
    assert WebView(store).handle("/webview/files/p/t%201/metrics/x.js", "").status == 404  # no file server


def test_file_server_uris_link_through_the_view(store: Store, files: FileLinks) -> None:
    model = store.peek("models", MODEL)
    store.put("models", {**model, "uri": f"{FILES}/p/t%201/model.json"})
    view = WebView(store, files)
    for path in (
        "/models",
        f"/projects/{PROJECT}/models/{MODEL}",
        f"/projects/{PROJECT}/experiments/{TASK}/artifacts",
    ):
        body = view.handle(path, "").body.decode()
        assert '<a href="/webview/files/p/t%201/model.json">download</a>' in body, path


def test_a_capped_console_log_says_so(store: Store) -> None:
    lines = LOG_LINES + 5
    store.add_events(
        [
            ("t2", "log", "", "", 0, 1000 + i, {"task": "t2", "type": "log", "msg": f"row {i}"})
            for i in range(lines)
        ]
    )
    body = get(store, "/projects/p1/experiments/t2/output/log")[1]
    assert f"Showing the last {LOG_LINES:,} of {lines:,} log reports" in body
    assert f"> row {lines - 1}</pre>" in body  # the newest line is last
    assert "> row 4\n" not in body and "> row 5\n" in body  # the oldest five are left out
    assert "Showing the last" not in get(store, f"/projects/{PROJECT}/experiments/{TASK}/output/log")[1]


def test_pages_of_running_experiments_and_pipelines_reload_themselves(store: Store) -> None:
    refresh = '<meta http-equiv="refresh" content="10">'
    done = get(store, f"/projects/{PROJECT}/experiments/{TASK}/output/log")[1]
    assert refresh not in done and "Live:" not in done
    store.put("tasks", {**store.peek("tasks", TASK), "status": "in_progress"})
    for tab in ("", "/output/log", "/output/metrics/scalar"):
        running = get(store, f"/projects/{PROJECT}/experiments/{TASK}{tab}")[1]
        assert refresh in running and "reloads every 10 s while the run is in_progress" in running
    pipeline = {"one": {"job_id": TASK, "parents": []}, "two": {"job_id": "t2", "parents": ["one"]}}
    controller = {
        "id": "c1",
        "name": "run",
        "type": "controller",
        "system_tags": ["pipeline"],
        "status": "completed",
        "configuration": {"Pipeline": {"name": "Pipeline", "value": json.dumps(pipeline)}},
    }
    store.put("tasks", controller)
    assert refresh in get(store, "/pipelines/*/experiments/c1")[1]  # a step still runs
    store.put("tasks", {**store.peek("tasks", TASK), "status": "completed"})
    assert refresh not in get(store, "/pipelines/*/experiments/c1")[1]
    store.put("tasks", {**controller, "status": "queued"})
    assert "while the run is queued" in get(store, "/pipelines/*/experiments/c1")[1]
