"""Graphs drawn as inline SVG, for the dataset lineage and the pipeline pages: a layered layout, a node's
column the length of the longest path from a root."""

from __future__ import annotations

from dataclasses import dataclass

from clearml_local.state.tasks import COMPLETED, FAILED, IN_PROGRESS, STOPPED
from clearml_local.webview import html as h

NODE_W, NODE_H, GAP_X, GAP_Y = 190, 54, 60, 24
COLORS = {COMPLETED: "#d8f3df", FAILED: "#fbdada", IN_PROGRESS: "#dbe9fb", STOPPED: "#fbf0c9"}


@dataclass(frozen=True)
class Node:
    key: str
    label: str
    detail: str
    status: str
    href: str | None
    parents: list[str]


def columns(nodes: list[Node]) -> dict[str, int]:
    """Each node's column: 0 for roots, else one more than its deepest parent (cycles are cut)."""
    by_key = {n.key: n for n in nodes}
    depth: dict[str, int] = {}

    def visit(key: str, seen: frozenset[str]) -> int:
        if key in depth:
            return depth[key]
        parents = [p for p in by_key[key].parents if p in by_key and p not in seen]
        depth[key] = 1 + max((visit(p, seen | {key}) for p in parents), default=-1)
        return depth[key]

    for node in nodes:
        visit(node.key, frozenset())
    return depth


def svg_graph(nodes: list[Node]) -> str:
    """The graph as SVG: a box per node (status colour, label, detail), an arrow per parent → child edge."""
    if not nodes:
        return '<p class="muted">no nodes</p>'
    depth = columns(nodes)
    rows: dict[int, int] = {}
    place: dict[str, tuple[int, int]] = {}
    for node in nodes:
        column = depth[node.key]
        row = rows.get(column, 0)
        rows[column] = row + 1
        place[node.key] = (20 + column * (NODE_W + GAP_X), 20 + row * (NODE_H + GAP_Y))
    width = 40 + (max(depth.values()) + 1) * (NODE_W + GAP_X)
    height = 40 + max(rows.values()) * (NODE_H + GAP_Y)
    below = height - 14  # edges that skip a column run under the boxes, not behind them
    edges = [
        _edge(place[parent], place[node.key], depth[node.key] - depth[parent] > 1, below)
        for node in nodes
        for parent in node.parents
        if parent in place
    ]
    boxes = [_box(node, *place[node.key]) for node in nodes]
    marker = (
        '<defs><marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" markerHeight="7" '
        'orient="auto"><path d="M0,0 L10,5 L0,10 z" fill="#7b8794"/></marker></defs>'
    )
    return (
        f'<svg class="graph" width="{width}" height="{height}" xmlns="http://www.w3.org/2000/svg">'
        f"{marker}{''.join(edges)}{''.join(boxes)}</svg>"
    )


def _edge(start: tuple[int, int], end: tuple[int, int], skips: bool, below: int) -> str:
    """An arrow from a parent's box to a child's: straight to the next column, else routed below the row."""
    (x1, y1), (x2, y2) = start, end
    if skips:
        a, b = x1 + NODE_W // 2, x2 + NODE_W // 2
        points = f"M{a},{y1 + NODE_H} L{a},{below} L{b - 12},{below} L{b},{y2 + NODE_H}"
    else:
        points = f"M{x1 + NODE_W},{y1 + NODE_H // 2} L{x2},{y2 + NODE_H // 2}"
    return f'<path d="{points}" fill="none" stroke="#7b8794" stroke-width="1.5" marker-end="url(#arrow)"/>'


def _box(node: Node, x: int, y: int) -> str:
    fill = COLORS.get(node.status, "#eef1f4")
    shape = (
        f'<rect x="{x}" y="{y}" width="{NODE_W}" height="{NODE_H}" rx="6" fill="{fill}" stroke="#9aa5b1"/>'
        f'<text x="{x + 10}" y="{y + 21}" font-weight="600">{h.esc(node.label[:28])}</text>'
        f'<text x="{x + 10}" y="{y + 41}" fill="#444">{h.esc(node.detail[:32])}</text>'
    )
    return f'<a href="{h.esc(node.href)}">{shape}</a>' if node.href else shape
