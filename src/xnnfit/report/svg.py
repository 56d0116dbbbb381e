"""Inline SVG for the HTML report: the execution strip of a diagnosis and the latency × error scatter."""

from __future__ import annotations

import math
from html import escape

from xnnfit.core import fmt
from xnnfit.explain.diagnosis import Diagnosis
from xnnfit.explain.verdicts import NodeVerdict

WIDTH = 1100  # drawing width in px: the page's content width at 100% zoom
MARK_H = 26  # strip height: a node's mark
LABEL_CHAR = 6  # px per character of a 10 px partition label
TICK_H = 5  # the row under the strip that marks every CPU node at least 1 px wide, however short its time
XNNPACK = "#2e8b57"
UNEXPLAINED = "#8b0000"
# Distinct, print-safe colours for CPU causes, assigned in cause-id order.
PALETTE = ("#d9534f", "#e67e22", "#8e44ad", "#c0392b", "#d35400", "#b03a8c", "#a0522d", "#e84393", "#6c3483", "#ff7f50")


def cause_colors(diagnoses: list[Diagnosis]) -> dict[str, str]:
    """One colour per CPU cause (and 'unexplained') across the diagnoses shown together."""
    causes = sorted(
        {c for d in diagnoses for n in d.observed if not n.delegated for c in (n.causes[:1] or ("unexplained",))}
    )
    out = {c: PALETTE[i % len(PALETTE)] for i, c in enumerate(c for c in causes if c != "unexplained")}
    out["unexplained"] = UNEXPLAINED
    return out


def execution_order(d: Diagnosis) -> list[NodeVerdict]:
    """Observed nodes as they run: partition by partition (the runtime's order), by node index inside each."""
    by_index = {n.index: n for n in d.observed}
    order = [by_index[i] for p in sorted(d.partitions, key=lambda p: p.index) for i in sorted(p.nodes) if i in by_index]
    seen = {n.index for n in order}
    return order + [n for n in d.observed if n.index not in seen]


def node_ms(d: Diagnosis) -> dict[int, float] | None:
    """Each node's share of its profiled piece; None without a profile.

    A partition's time is split evenly over its nodes.
    """
    if d.profile is None:
        return None
    out: dict[int, float] = {}
    for piece in d.profile.pieces:
        for i in piece.nodes:
            out[i] = out.get(i, 0.0) + piece.stats.median_ms / max(len(piece.nodes), 1)
    return out


def strip(d: Diagnosis, colors: dict[str, str], *, scale_ms: float | None = None, label: str = "") -> str:
    """One mark per node, coloured XNNPACK or by cause, partitions bracketed; widths proportional to time when profiled.

    `scale_ms` is the time the full width stands for (several strips on one axis); it
    defaults to this diagnosis's own sum of pieces.
    """
    nodes = execution_order(d)
    times = node_ms(d)
    if times is not None:
        total = sum(times.get(n.index, 0.0) for n in nodes)
        scale = scale_ms or total or 1.0
        widths = [WIDTH * times.get(n.index, 0.0) / scale for n in nodes]
    else:
        widths = [WIDTH / max(len(nodes), 1)] * len(nodes)
    top = 14 if label else 2
    height = top + MARK_H + TICK_H + 22
    parts = [
        f'<svg class="strip" viewBox="0 0 {WIDTH} {height}" role="img" '
        f'aria-label="{escape(label or "execution strip")}">'
    ]
    if label:
        parts.append(f'<text x="0" y="10">{escape(label)}</text>')
    x, spans = 0.0, {}
    for n, w in zip(nodes, widths):
        cause = "xnnpack" if n.delegated else (n.causes[0] if n.causes else "unexplained")
        color = XNNPACK if n.delegated else colors.get(cause, UNEXPLAINED)
        ms = times.get(n.index, 0.0) if times is not None else None
        tip = _tip(n, ms)
        data_ms = f' data-ms="{ms:.6g}"' if ms is not None else ""
        causes = " ".join(n.causes) if n.causes else ("" if n.delegated else "unexplained")
        parts.append(
            f'<rect class="node {"xnnpack" if n.delegated else "cpu"}" x="{x:.3f}" y="{top}" '
            f'width="{max(w, 0.0):.3f}" height="{MARK_H}" '
            f'fill="{color}" data-node="{n.index}" data-op="{escape(n.op)}" data-causes="{escape(causes)}"{data_ms} '
            f'data-tip="{escape(tip)}"><title>{escape(tip)}</title></rect>'
        )
        if not n.delegated:
            parts.append(
                f'<rect class="tick" x="{x:.3f}" y="{top + MARK_H + 1}" width="{max(w, 1.0):.3f}" '
                f'height="{TICK_H}" fill="{color}"/>'
            )
        if n.partition is not None:
            lo, hi, delegated = spans.get(n.partition, (x, x + w, bool(n.delegated)))
            spans[n.partition] = (min(lo, x), max(hi, x + w), delegated)
        x += w
    y = top + MARK_H + TICK_H + 4
    for p, (lo, hi, delegated) in sorted(spans.items()):
        parts.append(f'<path class="bracket" d="M{lo + 0.5:.2f},{y} v4 H{max(hi - 0.5, lo + 0.5):.2f} v-4"/>')
        text = f"P{p} {'XNNPACK' if delegated else 'CPU'}"
        if hi - lo > LABEL_CHAR * len(text) + 4:  # only where the label fits inside its bracket
            parts.append(f'<text x="{lo + 2:.2f}" y="{y + 14}">{text}</text>')
    parts.append("</svg>")
    return "".join(parts)


def _tip(n: NodeVerdict, ms: float | None) -> str:
    where = "XNNPACK" if n.delegated else "CPU kernels"
    lines = [f"#{n.index} {n.op} · {where}" + (f" · partition {n.partition}" if n.partition is not None else "")]
    if n.layer:
        lines.append(f"layer: {n.layer}" + (f" ({n.layer_class})" if n.layer_class else ""))
    if n.source:
        lines.append(f"source: {n.source}")
    if not n.delegated:
        lines.append("cause: " + (", ".join(n.causes) if n.causes else "unexplained (no KB entry matches)"))
    if ms is not None:
        lines.append(f"time: {ms:.4g} ms (its partition's time split over its nodes)")
    return "\n".join(lines)


LABEL_H = 11  # px of a 10 px label line
ERROR_FLOOR = 1e-7  # the scatter's error axis is logarithmic down to this share of the output scale (float rounding)


def scatter(points: list[tuple[str, float, float, bool, bool]], *, max_error: float | None = None) -> str:
    """Latency × error: the points, the Pareto frontier drawn, the choice ringed.

    Points are (name, ms, relative error, on the Pareto frontier, chosen).
    """
    w, h, pad = 640, 300, 48
    ok = [p for p in points if p[1] > 0 and math.isfinite(p[1]) and math.isfinite(p[2])]
    if not ok:
        return "<p>No candidate has both a latency and an error to plot.</p>"
    xs = [p[1] for p in ok]
    x_lo, x_hi = 0.0, max(xs) * 1.1
    errors = [max(p[2], ERROR_FLOOR) for p in ok] + ([max_error] if max_error else [])
    y_lo, y_hi = math.log10(ERROR_FLOOR), math.log10(max(max(errors) * 2, 1e-3))

    def px(ms: float) -> float:
        return pad + (ms - x_lo) / (x_hi - x_lo or 1) * (w - 2 * pad)

    def py(err: float) -> float:
        return h - pad - (math.log10(max(err, ERROR_FLOOR)) - y_lo) / (y_hi - y_lo or 1) * (h - 2 * pad)

    parts = [
        f'<svg class="scatter" viewBox="0 0 {w} {h}" width="{w}" height="{h}" role="img" '
        'aria-label="latency versus error">'
    ]
    parts.append(f'<path class="bracket" d="M{pad},{pad / 2} V{h - pad} H{w - pad / 2}"/>')
    parts.append(f'<text x="{w / 2 - 40}" y="{h - 12}">median latency (ms)</text>')
    parts.append(f'<text x="4" y="{pad / 2 - 6}">error (share of output scale, log)</text>')
    for k in range(int(math.ceil(y_lo)), int(math.floor(y_hi)) + 1):
        parts.append(f'<text x="4" y="{py(10**k) + 3:.1f}">1e{k}</text>')
    for t in (x_hi / 4, x_hi / 2, 3 * x_hi / 4):
        parts.append(f'<text x="{px(t) - 10:.1f}" y="{h - pad + 14}">{t:.3g}</text>')
    if max_error:
        parts.append(f'<path d="M{pad},{py(max_error):.1f} H{w - pad / 2}" stroke="#e0a100" stroke-dasharray="4 3"/>')
        parts.append(f'<text x="{w - pad - 70}" y="{py(max_error) - 4:.1f}">budget {fmt.rel(max_error)}</text>')
    frontier = _frontier([(p[1], max(p[2], ERROR_FLOOR)) for p in ok])
    if len(frontier) > 1:  # the latency x error staircase: no plotted point is both faster and more accurate than it
        path = f"M{px(frontier[0][0]):.1f},{py(frontier[0][1]):.1f}"
        for (_, _e0), (x1, e1) in zip(frontier, frontier[1:]):
            path += f" H{px(x1):.1f} V{py(e1):.1f}"
        parts.append(
            f'<path class="frontier" d="{path}" stroke="{XNNPACK}" fill="none" stroke-width="1.5" '
            'stroke-dasharray="2 2"/>'
        )
    placed: list[tuple[float, float, float]] = []
    for name, ms, err, on_front, chosen in sorted(ok, key=lambda p: (p[2], p[1])):
        tip = (
            f"{name}: {ms:.4g} ms, error {fmt.rel(err)}"
            + (" · Pareto" if on_front else "")
            + (" · chosen" if chosen else "")
        )
        parts.append(
            f'<circle class="point{" chosen" if chosen else ""}" cx="{px(ms):.1f}" cy="{py(err):.1f}" '
            f'r="{7 if chosen else 4}" '
            f'fill="{XNNPACK if on_front else "#7f8c8d"}" stroke="{"#1d2330" if chosen else "none"}" '
            f'stroke-width="2" data-recipe="{escape(name)}">'
            f"<title>{escape(tip)}</title></circle>"
        )
        lx, ly = px(ms) + 8, py(err) - 6
        width = LABEL_CHAR * len(name)
        while any(abs(ly - y) < LABEL_H and lx < x + wd and x < lx + width for x, y, wd in placed):
            ly += LABEL_H  # move a label that would overlap another down a line
        placed.append((lx, ly, width))
        parts.append(f'<text x="{lx:.1f}" y="{ly:.1f}">{escape(name)}</text>')
    parts.append(f'<text x="{w - 250}" y="{pad / 2 - 6}">green: on the Pareto front (ms, error, size)</text>')
    parts.append("</svg>")
    return "".join(parts)


def _frontier(points: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """The (latency, error) points no other point beats on both, fastest first."""
    out: list[tuple[float, float]] = []
    for x, e in sorted(points):
        if not out or e < out[-1][1]:
            out.append((x, e))
    return out
