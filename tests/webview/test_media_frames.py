"""HTML media (``Logger.report_media`` of a report page) shows inline on the task's debug samples page, in a
sandboxed frame: scripts may draw the report, but it cannot reach the page around it, load or send anything,
and it is still only a download at its ``/webview/files/`` address."""

from __future__ import annotations

import json
import re
import uuid
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import requests
from PIL import Image

from tests.backend.backend_harness import BackendHarness
from tests.webview.browser import RUNS, assert_not_blank, chromium, render

# The report's own script paints its page magenta and tries to reach the page it is framed in and the API.
REPORT = """<html><body style="margin:0;min-height:460px">
<h1 id="title">report without its script</h1>
<script>
document.body.style.background = 'rgb(255, 0, 255)';
document.getElementById('title').textContent = 'report drawn by its script';
try { parent.document.body.setAttribute('data-reached', 'parent'); } catch (e) {}
try { top.location = '/projects'; } catch (e) {}
fetch('/auth.login', {method: 'POST'}).catch(() => {});
</script></body></html>"""
MAGENTA = (255, 0, 255)
# Headless Chromium's screenshot leaves a cross-origin (here: sandboxed) frame that draws for a while blank
# unless the frame runs in the page's process; a browser with a window paints it either way.
IN_PROCESS_FRAMES = ("--disable-site-isolation-trials", "--disable-features=IsolateOrigins,site-per-process")
# where the frame is in the 1280 x 900 screenshot of a task's debug samples page
FRAME_BOX = (40, 225, 1240, 690)


def report_media(backend: BackendHarness, files: dict[str, str]) -> tuple[str, str, str]:
    """A task whose files (name → text) are on the file server, each reported as media; (project, task,
    the objects' folder as the view serves it)."""
    project = backend.call("projects.create", {"name": f"media {uuid.uuid4().hex[:6]}"})["id"]
    task = backend.call("tasks.create", {"name": "html media", "type": "training", "project": project})["id"]
    folder = f"media/{task}/metrics"
    for name, text in files.items():
        path = backend.files_root / folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    events = [
        {
            "type": "training_debug_image",
            "task": task,
            "iter": 0,
            "metric": "reports",
            "variant": name,
            "url": f"{backend.files_url}/{folder}/{name}",
            "timestamp": 1_000,
        }
        for name in files
    ]
    reply = backend.post("events.add_batch", data="\n".join(map(json.dumps, events)))
    assert reply.status_code == 200, reply.text
    return project, task, folder


def test_html_media_is_framed_in_a_sandbox_of_its_own(backend: BackendHarness) -> None:
    project, task, folder = report_media(backend, {"drift.html": REPORT, "code.js": "alert(1)"})
    page = requests.get(
        f"{backend.api_url}/projects/{project}/experiments/{task}/output/debugImages", timeout=30
    )

    frames = re.findall(r'<iframe class="media" sandbox="([^"]*)" src="([^"]+)"', page.text)
    assert frames == [("allow-scripts", f"/webview/frames/{folder}/drift.html")], page.text[-1500:]
    assert "allow-same-origin" not in page.text
    framed = requests.get(backend.api_url + frames[0][1], timeout=30)
    policy = framed.headers["Content-Security-Policy"]
    assert framed.status_code == 200 and framed.headers["Content-Type"].startswith("text/html")
    assert framed.text == REPORT
    assert policy.startswith("sandbox allow-scripts;") and "allow-same-origin" not in policy
    assert "default-src 'none'" in policy and "frame-ancestors 'self'" in policy
    assert framed.headers["X-Content-Type-Options"] == "nosniff"
    download = requests.get(f"{backend.api_url}/webview/files/{folder}/drift.html", timeout=30)
    assert download.headers["Content-Disposition"].startswith("attachment")
    for path in (f"{folder}/code.js", f"{folder}/missing.html", "media/..%2F..%2Fdb.sqlite"):
        assert requests.get(f"{backend.api_url}/webview/frames/{path}", timeout=30).status_code == 404, path


def test_the_framed_report_draws_itself_and_reaches_nothing_around_it(
    backend: BackendHarness, tmp_path: Path
) -> None:
    project, task, _ = report_media(backend, {"drift.html": REPORT})
    url = f"{backend.api_url}/projects/{project}/experiments/{task}/output/debugImages"

    shot = RUNS / "html-media.png"
    shown = render(url, tmp_path / "profile", screenshot=shot)

    assert_not_blank(shot)
    with Image.open(shot) as image:
        magenta = sum(count for count, colour in image.convert("RGB").getcolors(1 << 20) if colour == MAGENTA)
    assert magenta > 200 * 200, f"the framed report did not draw itself ({magenta} magenta pixels)"
    assert "data-reached" not in shown.dom and "html media" in shown.dom  # still the task's page


@pytest.mark.slow
def test_an_evidently_report_draws_itself_in_its_frame(backend: BackendHarness, tmp_path: Path) -> None:
    from asteroid.quality import report

    rng = np.random.default_rng(0)
    training = pd.DataFrame({"magnitude": rng.normal(22, 2, 800), "eccentricity": rng.uniform(0, 0.9, 800)})
    live = training.assign(magnitude=training["magnitude"] - 1.5)
    built = report.build_report(training, live, tmp_path / "drift.html")
    project, task, _ = report_media(backend, {"drift.html": built.path.read_text()})
    url = f"{backend.api_url}/projects/{project}/experiments/{task}/output/debugImages"

    shot = RUNS / "html-media-evidently.png"
    shot.unlink(missing_ok=True)
    chromium("--dump-dom", f"--screenshot={shot}", *IN_PROCESS_FRAMES, url, profile=tmp_path / "profile")

    assert_not_blank(shot)
    with Image.open(shot) as image:
        framed = image.convert("RGB").crop(FRAME_BOX)
    colours = framed.getcolors(1 << 20) or []
    assert len(colours) > 50, f"the framed report stayed blank ({len(colours)} colours)"
