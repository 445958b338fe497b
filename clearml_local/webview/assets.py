"""Static files of the web view: its own script, and plotly.js from the installed ``plotly`` package (the file
is read where pip put it; nothing of plotly is copied into this repository)."""

from __future__ import annotations

import functools
import importlib.util
from pathlib import Path

VIEW_JS = """
'use strict';
async function fetchJson(url) {
  const reply = await fetch(url, {credentials: 'same-origin'});
  if (!reply.ok) throw new Error(url + ' answered ' + reply.status);
  return reply.json();
}
function chartBox(area, title) {
  const box = document.createElement('div');
  box.className = 'chart-box';
  box.dataset.title = title;
  const heading = document.createElement('h2');
  heading.textContent = title;  // text, never markup: titles are stored data
  const chart = document.createElement('div');
  chart.className = 'chart';
  box.append(heading, chart);
  area.append(box);
  return chart;
}
function missing(area, text) {
  const note = document.createElement('p');
  note.className = 'muted';
  note.textContent = text;
  area.replaceChildren(note);
}
async function drawScalars(area) {
  const series = await fetchJson(area.dataset.url);
  area.replaceChildren();
  const metrics = Object.keys(series).sort();
  if (!metrics.length) return missing(area, 'no scalars reported');
  for (const metric of metrics) {
    const traces = Object.values(series[metric]).map(
      line => ({x: line.x, y: line.y, name: line.name, type: 'scatter', mode: 'lines+markers'}));
    Plotly.newPlot(chartBox(area, metric), traces,
      {margin: {t: 20}, xaxis: {title: {text: 'iteration'}}, showlegend: true, legend: {orientation: 'h'}},
      {responsive: true});
  }
}
async function drawPlots(area) {
  const plots = await fetchJson(area.dataset.url);
  area.replaceChildren();
  if (!plots.length) return missing(area, 'no plots reported');
  for (const plot of plots) {
    const figure = plot.figure || {};
    const chart = chartBox(area, plot.metric + ' / ' + plot.variant + ' (iteration ' + plot.iter + ')');
    Plotly.newPlot(chart, figure.data || [], figure.layout || {}, {responsive: true});
  }
}
for (const table of document.querySelectorAll('table.sortable')) {
  table.querySelectorAll('th').forEach((th, col) => th.addEventListener('click', () => {
    const body = table.tBodies[0], rows = Array.from(body.rows);
    const asc = th.dataset.asc !== '1'; th.dataset.asc = asc ? '1' : '0';
    const key = r => r.cells[col].dataset.sort ?? r.cells[col].textContent;
    rows.sort((a, b) => { const x = key(a), y = key(b), nx = parseFloat(x), ny = parseFloat(y);
      const c = (!isNaN(nx) && !isNaN(ny)) ? nx - ny : x.localeCompare(y); return asc ? c : -c; });
    rows.forEach(r => body.appendChild(r));
  }));
}
for (const img of document.querySelectorAll('.samples img')) {
  // Debug samples: mark what loaded, and say so where a file is missing (instead of a broken icon).
  const loaded = () => { img.dataset.loaded = '1'; };
  const failed = () => {
    img.closest('figure').classList.add('broken');
    img.alt = 'could not load ' + img.alt;
  };
  if (img.complete) (img.naturalWidth ? loaded : failed)();
  else { img.addEventListener('load', loaded); img.addEventListener('error', failed); }
}
for (const [id, draw] of [['scalars', drawScalars], ['plots', drawPlots]]) {
  const area = document.getElementById(id);
  if (area) draw(area).catch(error => missing(area, String(error)));
}
"""


@functools.cache
def plotly_js_path() -> Path | None:
    """``plotly.min.js`` inside the installed ``plotly`` package, or None when it is not installed."""
    spec = importlib.util.find_spec("plotly")
    if spec is None or not spec.submodule_search_locations:
        return None
    for location in spec.submodule_search_locations:
        path = Path(location) / "package_data" / "plotly.min.js"
        if path.is_file():
            return path
    return None


@functools.cache
def plotly_js() -> bytes | None:
    path = plotly_js_path()
    return path.read_bytes() if path else None
