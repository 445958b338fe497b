"""HTML building blocks of the web view. Every value that comes from stored data goes through ``esc`` (or a
helper that calls it): names, tags and logs are written by clients and must never become markup."""

from __future__ import annotations

import datetime as dt
import html
from collections.abc import Iterable
from typing import Any
from urllib.parse import quote

STYLE = """
body{font-family:system-ui,sans-serif;margin:0;color:#1d2733;background:#f5f6f8}
header{background:#1d2733;color:#fff;padding:.6em 1.2em;display:flex;gap:1.4em;align-items:center}
header a{color:#cfe3ff;text-decoration:none}header b{color:#fff}
main{padding:1em 1.6em}h1{font-size:1.35em;margin:.3em 0 .6em}h2{font-size:1.1em;margin:1.2em 0 .4em}
table{border-collapse:collapse;background:#fff;font-size:.9em}
th,td{border:1px solid #dde1e6;padding:.3em .6em;text-align:left;vertical-align:top}
th{background:#eef1f4;cursor:pointer;user-select:none}
.tag{display:inline-block;background:#e3ecfa;border-radius:.7em;padding:0 .5em;margin:0 .2em;font-size:.85em}
.status{font-weight:600}.status-completed,.status-published{color:#13803b}.status-failed{color:#c62828}
.status-in_progress{color:#1565c0}.status-stopped{color:#8a6d00}
nav.tabs a{margin-right:1em}nav.tabs a.on{font-weight:700;text-decoration:none;color:#1d2733}
pre.log{background:#10161d;color:#d9e1ea;padding:.8em;overflow:auto;max-height:75vh;font-size:.82em}
.chart{background:#fff;border:1px solid #dde1e6;margin:.6em 0;min-height:320px}
.filters input,.filters select{margin-right:.6em}.muted{color:#6b7785}
svg.graph text{font-size:12px}
.notice{background:#fff7d6;border:1px solid #e8d48a;padding:.4em .7em;display:inline-block}
.samples{display:flex;flex-wrap:wrap;gap:.8em}
.samples figure{margin:0;background:#fff;border:1px solid #dde1e6;padding:.4em;max-width:320px}
.samples img,.samples video{max-width:300px;max-height:240px;display:block}
.samples figure.broken{border-color:#c62828}
.samples figure.page{max-width:none;flex-basis:100%}
.samples iframe.media{width:100%;height:480px;border:1px solid #dde1e6;background:#fff;display:block}
.samples figcaption{font-size:.82em;margin-top:.3em;word-break:break-all}
"""


def esc(value: Any) -> str:
    """Text of any stored value, safe inside an element or a quoted attribute."""
    return html.escape("" if value is None else str(value), quote=True)


def url_part(value: Any) -> str:
    """One path segment of a link, percent-encoded (ids are hex, but stored data decides)."""
    return quote(str(value), safe="")


def link(href: str, text: Any, css: str = "") -> str:
    """A link whose ``href`` is built by the view (segments through ``url_part``) and whose text is data."""
    cls = f' class="{esc(css)}"' if css else ""
    return f'<a href="{esc(href)}"{cls}>{esc(text)}</a>'


def tags(values: Iterable[Any] | None) -> str:
    return "".join(f'<span class="tag">{esc(t)}</span>' for t in values or [])


def status(value: Any) -> str:
    text = esc(value or "unknown")
    return f'<span class="status status-{text}">{text}</span>'


def table(
    headers: list[str], rows: Iterable[list[str]], css: str = "sortable", row_attrs: list[str] | None = None
) -> str:
    """A table of cells that are already HTML (callers escape data with ``esc``)."""
    head = "".join(f"<th>{esc(h)}</th>" for h in headers)
    body = []
    for index, cells in enumerate(rows):
        attrs = row_attrs[index] if row_attrs else ""
        body.append(f"<tr{attrs}>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
    if not body:
        body.append(f'<tr><td colspan="{len(headers)}" class="muted">nothing here yet</td></tr>')
    return f'<table class="{css}"><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table>'


def parse_time(value: Any) -> dt.datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)


def when(value: Any) -> str:
    parsed = parse_time(value)
    return esc(parsed.strftime("%Y-%m-%d %H:%M:%S")) if parsed else ""


def seconds_between(start: Any, end: Any) -> float | None:
    first, last = parse_time(start), parse_time(end)
    if first is None or last is None:
        return None
    return max(0.0, (last - first).total_seconds())


def duration(seconds: float | None) -> str:
    if seconds is None:
        return ""
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, rest = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{rest:02d}" if hours else f"{minutes}:{rest:02d} min"


def size(value: Any) -> str:
    if not isinstance(value, int | float) or isinstance(value, bool):
        return ""
    amount = float(value)
    for unit in ("B", "KB", "MB", "GB"):
        if amount < 1024 or unit == "GB":
            return f"{amount:.0f} {unit}" if unit == "B" else f"{amount:.1f} {unit}"
        amount /= 1024
    return ""


NAV = [
    ("/projects", "Projects"),
    ("/datasets", "Datasets"),
    ("/pipelines", "Pipelines"),
    ("/models", "Models"),
    ("/serving", "Serving"),
]


def page(title: str, body: str, charts: bool = False, refresh: int | None = None) -> str:
    """A whole page; ``title`` is data (escaped), ``body`` is HTML built by the view. Scripts come from this
    server only (no inline script: the pages' Content-Security-Policy forbids it). With ``refresh`` the
    browser reloads the page every that many seconds (a page of a run that is still going)."""
    nav = "".join(f'<a href="{href}">{label}</a>' for href, label in NAV)
    tail = '<script src="/webview/static/plotly.min.js"></script>' if charts else ""
    tail += '<script src="/webview/static/view.js"></script>'
    reload = f'<meta http-equiv="refresh" content="{int(refresh)}">' if refresh else ""
    return (
        f'<!doctype html><html lang="en"><head><meta charset="utf-8">{reload}'
        f"<title>{esc(title)} · clearml-local</title><style>{STYLE}</style></head>"
        f"<body><header><b>clearml-local</b>{nav}</header><main>{body}</main>"
        f"{tail}</body></html>"
    )


def error_page(status_code: int, message: str) -> str:
    return page(f"{status_code}", f"<h1>{status_code}</h1><p>{esc(message)}</p>")
