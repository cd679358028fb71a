"""Server-side SVG drawings: time-series and bar charts, a number's call-graph neighbourhood and
the cross-border flow diagram. No script and no external asset: each function returns a complete
``<svg>`` element whose every text is escaped, ready to be placed in a page."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from html import escape as _html_escape

_XML_INVALID = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff\ud800-\udfff]")


def escape(text: str) -> str:
    """Escaped for XML text and attributes, without the characters XML 1.0 cannot hold."""
    return _html_escape(_XML_INVALID.sub("", str(text)))


PALETTE = ["#1f6fb2", "#d9622b", "#2e9d57", "#8c54b8", "#c7a600", "#c23b5a", "#4a9fb0", "#6d6d6d"]


def _num(value: float) -> str:
    if abs(value) >= 1_000_000:
        return f"{value / 1_000_000:.1f}M"
    if abs(value) >= 10_000:
        return f"{value / 1000:.0f}k"
    if float(value).is_integer():
        return f"{int(value)}"
    return f"{value:.1f}"


def _nice_max(value: float) -> float:
    if value <= 0:
        return 1.0
    exponent = 10 ** math.floor(math.log10(value))
    for step in (1, 2, 2.5, 5, 10):
        if value <= step * exponent:
            return step * exponent
    return 10 * exponent  # pragma: no cover


def line_chart(series: Mapping[str, Sequence[tuple[str, float | None]]], *, title: str, width: int = 640,
               height: int = 240, empty_text: str = "no data") -> str:
    """One line per series over shared x labels (periods). ``None`` values leave a gap."""
    labels: list[str] = []
    for points in series.values():
        for label, _ in points:
            if label not in labels:
                labels.append(label)
    labels.sort()
    legend_rows = math.ceil(len(series) / 3)
    left, right, top, bottom = 48, 34, 30 + 14 * legend_rows, 36
    plot_w, plot_h = width - left - right, height - top - bottom
    parts = [f'<svg class="chart" role="img" viewBox="0 0 {width} {height}" width="100%" '
             f'xmlns="http://www.w3.org/2000/svg"><title>{escape(title)}</title>',
             f'<text x="{left}" y="16" class="chart-title">{escape(title)}</text>']
    values = [v for points in series.values() for _, v in points if v is not None]
    if not labels or not values:
        parts.append(f'<text x="{width / 2}" y="{height / 2}" text-anchor="middle" class="muted">{escape(empty_text)}</text></svg>')
        return "".join(parts)
    top_value = _nice_max(max(values))
    for i in range(5):
        y = top + plot_h - plot_h * i / 4
        parts.append(f'<line x1="{left}" x2="{width - right}" y1="{y:.1f}" y2="{y:.1f}" class="grid"/>'
                     f'<text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end" class="axis">{_num(top_value * i / 4)}</text>')
    step = plot_w / max(1, len(labels) - 1)
    every = max(1, math.ceil(len(labels) / 8))
    for i, label in enumerate(labels):
        if i % every == 0 or i == len(labels) - 1:
            x = left + (step * i if len(labels) > 1 else plot_w / 2)
            parts.append(f'<text x="{x:.1f}" y="{height - bottom + 16}" text-anchor="middle" class="axis">{escape(label)}</text>')
    for index, (name, points) in enumerate(series.items()):
        colour = PALETTE[index % len(PALETTE)]
        lookup = dict(points)
        path: list[str] = []
        pen_down = False
        for i, label in enumerate(labels):
            value = lookup.get(label)
            if value is None:
                pen_down = False
                continue
            x = left + (step * i if len(labels) > 1 else plot_w / 2)
            y = top + plot_h - plot_h * value / top_value
            path.append(f'{"L" if pen_down else "M"}{x:.1f},{y:.1f}')
            pen_down = True
            parts.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="2.5" fill="{colour}"><title>{escape(name)} {escape(label)}: '
                         f'{_num(value)}</title></circle>')
        if path:
            parts.append(f'<path d="{" ".join(path)}" fill="none" stroke="{colour}" stroke-width="2"/>')
        lx = left + (index % 3) * (plot_w / 3)
        ly = 24 + (index // 3) * 14
        parts.append(f'<rect x="{lx:.1f}" y="{ly:.1f}" width="10" height="3" fill="{colour}"/>'
                     f'<text x="{lx + 14:.1f}" y="{ly + 5:.1f}" class="legend">{escape(name)}</text>')
    parts.append("</svg>")
    return "".join(parts)


def bar_chart(items: Sequence[tuple[str, float]], *, title: str, width: int = 640, bar_height: int = 20,
              empty_text: str = "no data", shown: Sequence[str] | None = None) -> str:
    """Horizontal bars, one per item; ``shown`` replaces the printed value (e.g. "<5")."""
    left, right, top = 210, 60, 28
    height = top + max(1, len(items)) * (bar_height + 6) + 8
    parts = [f'<svg class="chart" role="img" viewBox="0 0 {width} {height}" width="100%" '
             f'xmlns="http://www.w3.org/2000/svg"><title>{escape(title)}</title>',
             f'<text x="8" y="16" class="chart-title">{escape(title)}</text>']
    if not items:
        parts.append(f'<text x="{width / 2}" y="{top + 16}" text-anchor="middle" class="muted">{escape(empty_text)}</text></svg>')
        return "".join(parts)
    top_value = max(max(v for _, v in items), 1e-9)
    plot_w = width - left - right
    for i, (label, value) in enumerate(items):
        y = top + i * (bar_height + 6)
        w = max(1.0, plot_w * value / top_value) if value > 0 else 0
        text = shown[i] if shown is not None else _num(value)
        parts.append(f'<text x="{left - 8}" y="{y + bar_height * 0.7:.1f}" text-anchor="end" class="axis">{escape(label if len(label) <= 30 else label[:29] + "…")}</text>'
                     f'<rect x="{left}" y="{y}" width="{w:.1f}" height="{bar_height}" fill="{PALETTE[0]}" rx="2"/>'
                     f'<text x="{left + w + 6:.1f}" y="{y + bar_height * 0.7:.1f}" class="axis">{escape(text)}</text>')
    parts.append("</svg>")
    return "".join(parts)


@dataclass
class GraphNode:
    id: str
    label: str
    kind: str = "plain"  # centre, flagged, victim, plain
    hop: int = 1
    parent: str | None = None
    weight: float = 1.0


@dataclass
class GraphEdge:
    source: str
    target: str
    calls: int
    fraud: bool = False


@dataclass
class Graph:
    centre: str
    nodes: list[GraphNode] = field(default_factory=list)
    edges: list[GraphEdge] = field(default_factory=list)
    truncated: bool = False


NODE_COLOURS = {"centre": "#1f2d3d", "flagged": "#c0392b", "victim": "#d68910", "plain": "#7f8c8d"}


def call_graph(graph: Graph, *, title: str, width: int = 720, height: int = 520, link_prefix: str = "") -> str:
    """The neighbourhood drawn in rings: the number in the middle, its contacts around it and their
    contacts further out, each near the contact that links them. Edge width grows with the calls."""
    cx, cy = width / 2, height / 2 + 8
    r1, r2 = min(width, height) * 0.28, min(width, height) * 0.45
    position: dict[str, tuple[float, float]] = {graph.centre: (cx, cy)}
    first = [n for n in graph.nodes if n.hop == 1]
    for i, node in enumerate(first):
        angle = 2 * math.pi * i / max(1, len(first)) - math.pi / 2
        position[node.id] = (cx + r1 * math.cos(angle), cy + r1 * math.sin(angle))
    children: dict[str, list[GraphNode]] = {}
    for node in graph.nodes:
        if node.hop == 2 and node.parent:
            children.setdefault(node.parent, []).append(node)
    spread = 2 * math.pi / max(1, len(first))
    for i, parent in enumerate(first):
        base = 2 * math.pi * i / max(1, len(first)) - math.pi / 2
        kids = children.get(parent.id, [])
        for j, node in enumerate(kids):
            offset = (j - (len(kids) - 1) / 2) * min(spread / max(1, len(kids)), 0.35)
            position[node.id] = (cx + r2 * math.cos(base + offset), cy + r2 * math.sin(base + offset))
    parts = [f'<svg class="graph" role="img" viewBox="0 0 {width} {height}" width="100%" '
             f'xmlns="http://www.w3.org/2000/svg"><title>{escape(title)}</title>',
             f'<text x="8" y="16" class="chart-title">{escape(title)}</text>']
    top_calls = max([e.calls for e in graph.edges] or [1])
    for edge in graph.edges:
        if edge.source not in position or edge.target not in position:
            continue
        (x1, y1), (x2, y2) = position[edge.source], position[edge.target]
        stroke = 1 + 5 * math.log1p(edge.calls) / math.log1p(top_calls)
        colour = "#c0392b" if edge.fraud else "#95a5a6"
        parts.append(f'<line x1="{x1:.1f}" y1="{y1:.1f}" x2="{x2:.1f}" y2="{y2:.1f}" stroke="{colour}" '
                     f'stroke-width="{stroke:.1f}" stroke-opacity="0.7"><title>{escape(edge.source)} → '
                     f'{escape(edge.target)}: {edge.calls}</title></line>')
    everyone = [GraphNode(graph.centre, graph.centre, "centre", 0)] + graph.nodes
    for node in everyone:
        if node.id not in position:
            continue
        x, y = position[node.id]
        radius = 11 if node.hop == 0 else (7 if node.hop == 1 else 5)
        colour = NODE_COLOURS.get(node.kind, NODE_COLOURS["plain"])
        circle = (f'<circle cx="{x:.1f}" cy="{y:.1f}" r="{radius}" fill="{colour}" stroke="#fff" stroke-width="1.5">'
                  f'<title>{escape(node.label)}</title></circle>')
        if link_prefix and node.hop:
            circle = f'<a href="{escape(link_prefix + node.id)}">{circle}</a>'
        parts.append(circle)
        if node.hop < 2:
            anchor = "middle" if node.hop == 0 else ("start" if x >= cx else "end")
            dx = 0 if node.hop == 0 else (10 if x >= cx else -10)
            dy = -16 if node.hop == 0 else 4
            parts.append(f'<text x="{x + dx:.1f}" y="{y + dy:.1f}" text-anchor="{anchor}" class="node-label">'
                         f'{escape(node.label)}</text>')
    parts.append("</svg>")
    return "".join(parts)


@dataclass(frozen=True)
class Flow:
    source: str
    target: str
    calls: int
    fraud_calls: int

    @property
    def fraud_share(self) -> float:
        return self.fraud_calls / self.calls if self.calls else 0.0


def share_colour(share: float) -> str:
    """Green (no fraud) through amber to red (all fraud)."""
    share = min(1.0, max(0.0, share))
    hue = 120 * (1 - min(1.0, share * 2))  # 50% fraud is already fully red
    return f"hsl({hue:.0f},70%,42%)"


def flow_diagram(flows: Sequence[Flow], *, title: str, width: int = 720, height: int = 560,
                 empty_text: str = "no data") -> str:
    """Countries on a circle; a curved arrow per cross-border flow, width by calls, colour by fraud share."""
    countries = sorted({f.source for f in flows} | {f.target for f in flows})
    parts = [f'<svg class="graph" role="img" viewBox="0 0 {width} {height}" width="100%" '
             f'xmlns="http://www.w3.org/2000/svg"><title>{escape(title)}</title>',
             '<defs><marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="11" markerHeight="11" '
             'markerUnits="userSpaceOnUse" orient="auto"><path d="M0,0 L10,5 L0,10 z" fill="#444"/></marker></defs>',
             f'<text x="8" y="16" class="chart-title">{escape(title)}</text>']
    if not flows:
        parts.append(f'<text x="{width / 2}" y="{height / 2}" text-anchor="middle" class="muted">{escape(empty_text)}</text></svg>')
        return "".join(parts)
    cx, cy, radius = width / 2, height / 2 + 10, min(width, height) * 0.38
    position = {}
    for i, code in enumerate(countries):
        angle = 2 * math.pi * i / len(countries) - math.pi / 2
        position[code] = (cx + radius * math.cos(angle), cy + radius * math.sin(angle), angle)
    top_calls = max(f.calls for f in flows)
    for flow in sorted(flows, key=lambda f: f.calls):
        x1, y1, _ = position[flow.source]
        x2, y2, _ = position[flow.target]
        # Bend each arrow towards the centre; the two directions of a pair bend apart.
        mx, my = (x1 + x2) / 2, (y1 + y2) / 2
        nx, ny = -(y2 - y1), x2 - x1
        norm = math.hypot(nx, ny) or 1.0
        bend = 0.18 * math.hypot(x2 - x1, y2 - y1)
        qx, qy = mx + nx / norm * bend, my + ny / norm * bend
        qx, qy = qx + (cx - qx) * 0.25, qy + (cy - qy) * 0.25
        # End the arrow at the rim of the target's circle, not its centre, so the head stays visible.
        tx, ty = x2 - qx, y2 - qy
        length = math.hypot(tx, ty) or 1.0
        x2, y2 = x2 - tx / length * 11, y2 - ty / length * 11
        stroke = 1.2 + 9 * math.log1p(flow.calls) / math.log1p(top_calls)
        parts.append(f'<path d="M{x1:.1f},{y1:.1f} Q{qx:.1f},{qy:.1f} {x2:.1f},{y2:.1f}" fill="none" '
                     f'stroke="{share_colour(flow.fraud_share)}" stroke-width="{stroke:.1f}" stroke-opacity="0.75" '
                     f'marker-end="url(#arrow)"><title>{escape(flow.source)} → {escape(flow.target)}: {flow.calls} calls, '
                     f'{flow.fraud_share:.0%} fraud</title></path>')
    for code, (x, y, angle) in position.items():
        lx, ly = cx + (radius + 22) * math.cos(angle), cy + (radius + 22) * math.sin(angle)
        parts.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="9" fill="#1f2d3d"/>'
                     f'<text x="{lx:.1f}" y="{ly + 4:.1f}" text-anchor="middle" class="node-label">{escape(code)}</text>')
    legend_y = height - 14
    for i, share in enumerate((0.0, 0.1, 0.25, 0.5)):
        parts.append(f'<rect x="{8 + i * 70}" y="{legend_y - 9}" width="14" height="10" fill="{share_colour(share)}"/>'
                     f'<text x="{26 + i * 70}" y="{legend_y}" class="legend">{share:.0%}{"+" if share == 0.5 else ""}</text>')
    parts.append("</svg>")
    return "".join(parts)
