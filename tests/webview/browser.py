"""Headless Chromium for the web view tests: one launch loads a page, runs its scripts, and returns the DOM as
rendered (with a screenshot when asked); a small stdlib parser reads what a person would look at."""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path

import pytest

RUNS = Path(__file__).resolve().parents[2] / "runs" / "webview"
VOID = frozenset({"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source"})


def chromium_command() -> str:
    """The Chromium executable; the test is skipped (with the way to install it) when there is none."""
    command = shutil.which("chromium") or shutil.which("chromium-browser")
    if command is None:
        pytest.skip("headless Chromium is not installed (apt-get install chromium)")
    return command


@dataclass(frozen=True)
class Rendered:
    """A page as Chromium left it: the DOM and the browser's log (console messages, refused loads)."""

    dom: str
    log: str


def chromium(*args: str, profile: Path) -> Rendered:
    """Run headless Chromium once (a fresh window, scripts given 10 s of virtual time)."""
    argv = [
        chromium_command(),
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--hide-scrollbars",
        f"--user-data-dir={profile}",
        "--window-size=1280,900",
        "--virtual-time-budget=10000",
        "--enable-logging=stderr",
        "--v=0",
        *args,
    ]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=120, check=True)
    return Rendered(done.stdout, done.stderr)


def render(url: str, profile: Path, screenshot: Path | None = None) -> Rendered:
    """``url`` after its scripts ran; also a PNG screenshot when ``screenshot`` is given."""
    args = ["--dump-dom"]
    if screenshot is not None:
        screenshot.parent.mkdir(parents=True, exist_ok=True)
        screenshot.unlink(missing_ok=True)
        args.append(f"--screenshot={screenshot}")
    return chromium(*args, url, profile=profile)


def assert_not_blank(png: Path) -> None:
    """A real screenshot: a decodable PNG of the window's size with many colours, not one flat fill."""
    from PIL import Image, ImageStat

    assert png.is_file(), f"{png} was not written"
    with Image.open(png) as image:
        rgb = image.convert("RGB")
    assert rgb.width >= 600 and rgb.height >= 400, f"{png} is {rgb.size}"
    colours = rgb.getcolors(maxcolors=1 << 16)
    assert colours is None or len(colours) >= 32, f"{png} has only {len(colours)} colours"
    assert max(ImageStat.Stat(rgb).stddev) > 10, f"{png} looks blank"
    most_common = max(colours)[0] if colours else 0
    assert most_common < 0.97 * rgb.width * rgb.height, f"{png} is almost one colour"


@dataclass
class ChartBox:
    """One chart the view's script drew: its heading and what plotly put in its SVG."""

    title: str
    svgs: int = 0
    traces: int = 0
    heatmaps: int = 0
    legend: list[str] = field(default_factory=list)


@dataclass
class Dom:
    """What a rendered page shows: its text, its tables' rows (cell texts) and its charts."""

    text: str
    rows: list[list[str]]
    charts: list[ChartBox]

    def row_with(self, first_cell: str) -> list[str]:
        found = [row for row in self.rows if row and row[0] == first_cell]
        assert found, f"no table row starts with {first_cell!r}: {self.rows}"
        return found[0]

    def charts_titled(self, prefix: str) -> list[ChartBox]:
        return [chart for chart in self.charts if chart.title.startswith(prefix)]


class _Reader(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.text: list[str] = []
        self.rows: list[list[str]] = []
        self.charts: list[ChartBox] = []
        self._cell: list[str] | None = None
        self._chart_depth: int | None = None
        self._depth = 0
        self._in_legend = False
        self._skip = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self._depth += 1
        classes = set((dict(attrs).get("class") or "").split())
        if tag in ("script", "style"):
            self._skip += 1
        if tag == "tr":
            self.rows.append([])
        elif tag in ("td", "th"):
            self._cell = []
        if "chart-box" in classes:
            self.charts.append(ChartBox(dict(attrs).get("data-title") or ""))
            self._chart_depth = self._depth
        if self._chart_depth is not None and self.charts:
            chart = self.charts[-1]
            chart.svgs += "main-svg" in classes
            chart.traces += "trace" in classes
            chart.heatmaps += "hm" in classes
            self._in_legend = "legendtext" in classes
        if tag in VOID:  # void elements have no end tag
            self.handle_endtag(tag)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.handle_starttag(tag, attrs)
        if tag not in VOID:
            self.handle_endtag(tag)

    def handle_endtag(self, tag: str) -> None:
        if tag in ("script", "style") and self._skip:
            self._skip -= 1
        if tag in ("td", "th") and self._cell is not None and self.rows:
            self.rows[-1].append(" ".join("".join(self._cell).split()))
            self._cell = None
        if self._chart_depth is not None and self._depth == self._chart_depth:
            self._chart_depth = None
        self._in_legend = False
        self._depth -= 1

    def handle_data(self, data: str) -> None:
        if self._skip:
            return
        self.text.append(data)
        if self._cell is not None:
            self._cell.append(data)
        if self._in_legend and self.charts:
            self.charts[-1].legend.append(data)


def read_dom(markup: str) -> Dom:
    reader = _Reader()
    reader.feed(markup)
    reader.close()
    return Dom(" ".join(" ".join(reader.text).split()), reader.rows, reader.charts)
