"""The HTML report: one self-contained page (CSS, JS and data inline; no network at view time) per result.

`page(result)` renders a CheckResult/ProfileResult, FixResult, QuantResult or
OptimizeResult; it only reads the frozen result. A Content-Security-Policy forbids every
request the page could make, so a stray URL cannot phone home either.
"""

from __future__ import annotations

import json
from html import escape
from importlib import resources
from pathlib import Path
from typing import Any

from xnnfit.choose.optimize import OptimizeResult
from xnnfit.choose.quant import QuantResult
from xnnfit.core import fmt
from xnnfit.core.files import write_file
from xnnfit.explain.diagnosis import CheckResult, Diagnosis, runtime_option, short_runtime
from xnnfit.explain.verdicts import cause_groups
from xnnfit.report import accuracy, svg
from xnnfit.report.next_step import next_step
from xnnfit.rewrite.fix import FixResult

CSP = "default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; img-src data:"
TOP_LAYERS = 15  # layer rows shown in the cost bars: the worst offenders, short enough to read


def _asset(name: str) -> str:
    return (resources.files("xnnfit.report") / "assets" / name).read_text(encoding="utf-8")


def write_html(result: Any, path: str | Path, *, force: bool = False) -> Path:
    """Render `result` and write the page atomically."""
    return write_file(Path(path), page(result).encode("utf-8"), force=force, flag="--html")


def page(result: Any) -> str:
    """The whole page for one result."""
    if isinstance(result, FixResult):
        title, body = f"xnnfit fix · {result.model}", _fix(result)
    elif isinstance(result, OptimizeResult):
        title, body = f"xnnfit optimize · {result.model}", _optimize(result)
    elif isinstance(result, QuantResult):
        title, body = f"xnnfit quant · {result.model}", _quant(result)
    elif isinstance(result, CheckResult):
        title, body = f"xnnfit {result.RESULT} · {result.model}", _check(result)
    else:
        raise TypeError(
            f"no HTML report for {type(result).__name__}; pass a check, profile, fix, quant or optimize result"
        )
    versions = " · ".join(f"{k} {v}" for k, v in sorted(getattr(result, "versions", {}).items()))
    data = json.dumps(result.to_dict(), separators=(",", ":")).replace("</", "<\\/")
    return (
        '<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
        f'<meta http-equiv="Content-Security-Policy" content="{CSP}">'
        f'<meta name="viewport" content="width=device-width, initial-scale=1"><title>{escape(title)}</title>'
        f"<style>{_asset('report.css')}</style></head><body>"
        f'{body}<footer>{escape(versions)}</footer><div id="tip"></div>'
        f'<script type="application/json" id="xnnfit-result">{data}</script>'
        f"<script>{_asset('report.js')}</script></body></html>\n"
    )


def _cards(items: list[tuple[str, str, str]]) -> str:
    """Headline cards: (value, label, 'good'/'bad'/'')."""
    return (
        '<section class="cards">'
        + "".join(
            f'<div class="card {k}"><b>{escape(v)}</b><span>{escape(label)}</span></div>' for v, label, k in items
        )
        + "</section>"
    )


def _next(command: str, why: str) -> str:
    return f'<div class="next"><b>Next:</b> <code>{escape(command)}</code> — {escape(why)}</div>'


# --- check / profile -------------------------------------------------------------------


def _check(result: CheckResult) -> str:
    out = [
        f'<h1>{escape(result.model)}</h1><p class="sub">xnnfit {escape(result.RESULT)} · '
        f"{escape(result.model_kind)}</p>"
    ]
    colors = svg.cause_colors([d for d in result.recipes if d.ok])
    for d in result.recipes:
        out.append(_diagnosis(result.model, d, colors))
    return "".join(out)


def _diagnosis(model: str, d: Diagnosis, colors: dict[str, str]) -> str:
    on = f" · on {escape(short_runtime(d.runtime))}" if runtime_option(d.runtime) else ""
    out = [f"<h2>recipe {escape(d.recipe)}{on}</h2>"]
    if not d.ok:
        return out[0] + f'<div class="error">failed: {escape(d.error or "")}</div>'
    if d.not_loaded:  # no verdicts to draw: what blocks loading, and what to do
        out.append(
            _cards([("no", f"loads on {short_runtime(d.runtime)}", "bad"), (fmt.size(d.size_bytes), "model size", "")])
        )
        out.append(
            f'<div class="error"><b>{escape(short_runtime(d.runtime))} cannot load this model</b>: '
            f"{escape(d.not_loaded)}</div>"
        )
        out.extend(f'<div class="warning">{escape(w)}</div>' for w in d.warnings)
        out.append(_next_for(model, d))
        return "".join(out)
    s = d.summary()
    cards = [
        (f"{s['delegated']} / {s['nodes']}", "nodes on XNNPACK", "good" if not s["cpu_nodes"] else ""),
        (str(s["cpu_nodes"]), "CPU nodes", "bad" if s["cpu_nodes"] else "good"),
        (str(s["partitions"]), "partitions", "bad" if s["partitions"] > 1 else "good"),
        (fmt.size(d.size_bytes), "model size", ""),
    ]
    if d.profile is not None:
        cards += [
            (f"{d.profile.total.median_ms:.3g} ms", f"whole model ({d.profile.threads} thread(s))", ""),
            (fmt.pct(d.profile.cpu_share), "time in CPU kernels", "bad" if d.profile.cpu_share > 0.05 else ""),
        ]
    if s["unexplained"]:
        cards.append((str(s["unexplained"]), "unexplained", "bad"))
    out.append(_cards(cards))
    if d.predicted:
        out.append(f'<div class="warning"><b>predicted</b>: {escape(d.predicted)}</div>')
    if runtime_option(d.runtime):
        out.append(
            f'<div class="warning">observed on <b>{escape(d.runtime)}</b>: Android AAR builds of the '
            "same version may differ (build flags, CPU features)</div>"
        )
    for f in d.findings:
        out.append(
            f'<div class="error"><b>{escape(f.severity)} {escape(f.hazard)}</b> node {f.node} '
            f"({escape(f.op)}): {escape(f.message)}</div>"
        )
    for w in d.warnings:
        out.append(f'<div class="warning">warning: {escape(w)}</div>')
    out.append("<h3>execution strip</h3>")
    timed = (
        " Widths are measured time (a partition's time split over its nodes); the row below marks every CPU node."
        if d.profile
        else " One mark per node; the row below marks CPU nodes."
    )
    out.append(
        f'<p class="sub">Nodes as they run, partition by partition.{timed} Hover a mark for its '
        "op, layer, source and cause.</p>"
    )
    out.append(_legend(d, colors))
    out.append(svg.strip(d, colors))
    cpu = [n for n in d.observed if not n.delegated]
    if cpu:
        out.append(_causes(cpu, colors))
        out.append(_layers(d, cpu))
    out.append(_next_for(model, d))
    return "".join(out)


def _legend(d: Diagnosis, colors: dict[str, str]) -> str:
    counts: dict[str, int] = {}
    for n in d.observed:
        if not n.delegated:
            key = n.causes[0] if n.causes else "unexplained"
            counts[key] = counts.get(key, 0) + 1
    items = [f'<span><span class="swatch" style="background:{svg.XNNPACK}"></span>XNNPACK</span>']
    for cid, k in sorted(counts.items(), key=lambda kv: -kv[1]):
        items.append(
            f'<button data-highlight="{escape(cid)}"><span class="swatch" '
            f'style="background:{colors.get(cid, svg.UNEXPLAINED)}"></span>'
            f"{escape(cid)} ×{k}</button>"
        )
    return '<div class="legend">' + "".join(items) + "</div>"


def _causes(cpu: list, colors: dict[str, str]) -> str:
    out = ["<h2>fallbacks by cause</h2>"]
    for g in cause_groups(cpu):
        ops = ", ".join(sorted({n.op for n in g.nodes}))
        where = f"{fmt.plural(len(g.nodes), 'node')} ({escape(ops)}) in {fmt.plural(len(g.layers), 'layer')}"
        swatch = f'<span class="swatch" style="background:{colors.get(g.id, svg.UNEXPLAINED)}"></span>'
        if g.cause is None:
            out.append(
                f'<div class="cause"><h3>{swatch}unexplained — {where}</h3><p class="why">No KB entry '
                "matches; xnnfit does not guess. Please report the op.</p></div>"
            )
            continue
        handled = f"<p><b>xnnfit fix</b> handles it here ({escape(', '.join(g.rules))}).</p>"
        fixed = handled if g.rules else "<p>No xnnfit fix rule for this yet.</p>"
        body = "".join(
            f"<p><b>use instead</b> ({escape(a.id)}{'' if a.preserves_semantics else ', changes the output'}):</p>"
            + (f"<pre>{escape(a.code)}</pre>" if a.code else "")
            + f"<p>{escape(a.text)}</p>"
            for a in g.advice
        )
        out.append(
            f'<div class="cause"><h3><button data-highlight="{escape(g.id)}">{swatch}{escape(g.id)}</button> '
            f'{escape(g.cause.title)} — {where}</h3><p class="why">{escape(g.cause.why)}</p>{body}{fixed}</div>'
        )
    return "".join(out)


def _layers(d: Diagnosis, cpu: list) -> str:
    """Per-Keras-layer bars: profiled CPU time when there is a profile, else CPU nodes."""
    if d.profile is not None and d.profile.layers:
        rows = [
            (c.layer, c.cpu_ms, ", ".join(c.causes), f"{c.cpu_ms:.3g} ms ({fmt.pct(d.profile.share(c.cpu_ms))})")
            for c in d.profile.layers
        ]
        head = "CPU time"
    else:
        counts: dict[str, list] = {}
        for n in cpu:
            counts.setdefault(n.layer or "(unmapped)", []).append(n)
        rows = [
            (layer, float(len(ns)), ", ".join(sorted({c for n in ns for c in n.causes})), fmt.plural(len(ns), "node"))
            for layer, ns in counts.items()
        ]
        head = "CPU nodes"
    rows.sort(key=lambda r: -r[1])
    top = max((r[1] for r in rows), default=1.0) or 1.0
    body = "".join(
        f'<tr><td>{escape(layer)}</td><td>{escape(causes)}</td><td><span class="bar" '
        f'style="width:{max(2, 240 * v / top):.0f}px"></span> {escape(label)}</td></tr>'
        for layer, v, causes, label in rows[:TOP_LAYERS]
    )
    more = f'<p class="sub">{fmt.more(TOP_LAYERS, len(rows), "layers")}</p>' if len(rows) > TOP_LAYERS else ""
    return (
        "<h2>Keras layers to fix first</h2><table><tr><th>layer</th><th>causes</th>"
        f"<th>{head}</th></tr>{body}</table>{more}"
    )


def _next_for(model: str, d: Diagnosis) -> str:
    step = next_step(model, d)
    return _next(step.command, step.why)


def _candidates_table(title: str, r, rows, chosen: str | None, first, extra: tuple[str, ...] = ()) -> str:
    """quant's recipes or optimize's candidates; `first(row)` gives the `extra` cells and the CPU nodes' cell."""
    numeric = ("CPU nodes", "partitions", "ms", "size", *accuracy.columns(r.budget, r.eval))
    head = "".join(
        f'<th class="num">{n}</th>' if n in numeric else f"<th>{n}</th>" for n in ("recipe", *extra, *numeric)
    )
    body = []
    for row in rows:
        cells = f'<td colspan="{len(extra) + len(numeric) + 1}">failed: {escape(row.error or "")}</td>'
        if row.status == "ok":
            values = [*first(row), str(row.partitions), f"{row.median_ms:.3g}", fmt.size(row.size_bytes)]
            values += accuracy.cells(row, r.budget, r.eval)
            cells = "".join(f"<td>{escape(v)}</td>" for v in values[: len(extra)])
            cells += "".join(f'<td class="num">{escape(v)}</td>' for v in values[len(extra) :])
            cells += f"<td>{'★' if row.pareto else ''}</td>"
        mark = "chosen" if row.recipe == chosen else ""
        body.append(f'<tr class="{mark}"><td>{escape(row.recipe)}</td>{cells}</tr>')
    legend = "".join(f'<p class="sub">{escape(line)}</p>' for line in accuracy.legend(r.budget, r.eval, _ref(r), rows))
    return f"<h2>{title}</h2><table><tr>{head}<th>Pareto</th></tr>{''.join(body)}</table>{legend}"


def _ref(r) -> str:
    return getattr(r, "reference", "the fp32 conversion")


def _scatter(r, rows, chosen: str | None) -> str:
    """Latency against error, or why there is none (accuracy not judged)."""
    if not r.budget.judged:
        return ""
    points = [
        (x.recipe, x.median_ms, x.rel_error, x.pareto, x.recipe == chosen) for x in rows if x.ok and not x.not_judged
    ]
    return "<h2>latency × error</h2>" + svg.scatter(points, max_error=r.budget.max_error)


def _quant_findings(rows) -> str:
    """Each full-int8 candidate's quantization findings: cause, Keras layer, source line, op, error, advice."""
    found = [(row.recipe, f) for row in rows for f in row.quantization_findings]
    if not found:
        return ""
    head = "".join(f"<th>{h}</th>" for h in ("recipe", "cause", "layer", "line", "op", "error", "advice"))
    body = "".join(
        f"<tr><td>{escape(recipe)}</td><td>{escape(f.id or 'unexplained')}</td><td>{escape(f.layer or '?')}</td>"
        f'<td>{escape(f.line or "")}</td><td>{escape(f.op)}</td><td class="num">{escape(fmt.pct(f.error))}</td>'
        f"<td>{escape(f.advice)}</td></tr>"
        for recipe, f in found
    )
    return (
        "<h2>quantization findings</h2><p>each op's own error (max |int8 − float| / max |float| of its tensor on the "
        "eval inputs); the first of a recipe is where its error starts</p>"
        f"<table><tr>{head}</tr>{body}</table>"
    )


# --- fix ------------------------------------------------------------------------------


def _fix(r: FixResult) -> str:
    rw = r.rewrite
    out = [f'<h1>{escape(r.model)}</h1><p class="sub">xnnfit fix · recipe {escape(r.recipe)}</p>']
    if rw.verified_on is not None:
        out.append(f'<p class="sub">verified on {escape(rw.verified_on.describe(r.inputs))}</p>')
    if rw.judgement is not None and not rw.judgement.judged:
        out.append(f'<div class="warning">{escape(rw.judgement.message)}</div>')
    out.extend(f'<div class="warning">warning: {escape(w)}</div>' for w in r.warnings)
    b, a = rw.before, rw.after
    if b is not None and a is not None:
        speed = b.median_ms / a.median_ms if a.median_ms else 0.0
        cards = [
            (f"{b.cpu_nodes} → {a.cpu_nodes}", "CPU nodes", "good" if a.cpu_nodes < b.cpu_nodes else ""),
            (f"{b.partitions} → {a.partitions}", "partitions", "good" if a.partitions < b.partitions else ""),
            (f"{speed:.2f}×", f"speed ({b.median_ms:.3g} → {a.median_ms:.3g} ms)", "good" if speed > 1 else ""),
        ]
        if rw.numerics is not None:
            cards.append((fmt.rel(rw.numerics.max_rel_error), "outputs vs the original (share of its scale)", ""))
        if rw.reference_before is not None and rw.reference_after is not None:
            cards.append(
                (
                    f"{fmt.rel(rw.reference_before.max_rel_error)} → {fmt.rel(rw.reference_after.max_rel_error)}",
                    f"error vs {rw.reference}",
                    "",
                )
            )
        out.append(_cards(cards))
    if r.sides:
        colors = svg.cause_colors(list(r.sides))
        timed = all(s.profile is not None for s in r.sides)
        scale = max(sum(svg.node_ms(s).values()) for s in r.sides) if timed else None
        out.append("<h2>before and after</h2>")
        out.append(
            "<p "
            f'class="sub">{"Both strips on one time axis (measured)." if timed else "One mark per node."} '
            "Hover a mark for its op, layer and cause.</p>"
        )
        for label, s in zip(("before", "after"), r.sides):
            out.append(_legend(s, colors))
            out.append(
                svg.strip(
                    s,
                    colors,
                    scale_ms=scale,
                    label=f"{label}: {s.summary()['cpu_nodes']} CPU nodes, {s.summary()['partitions']} partitions",
                )
            )
    rows = "".join(
        f"<tr><td>{escape(o.rule)}</td><td>{escape(o.status)}</td><td "
        f'class="num">{o.count}</td><td>{escape(o.reason)}</td></tr>'
        for o in rw.outcomes
        if o.status != "no-match"
    )
    idle = [o.rule for o in rw.outcomes if o.status == "no-match"]
    out.append(
        "<h2>rules</h2><table><tr><th>rule</th><th>status</th><th "
        f'class="num">matches</th><th>why</th></tr>{rows}</table>'
    )
    if idle:
        out.append(f'<p class="sub">no match: {escape(", ".join(idle))}</p>')
    if r.keras_hints:
        hints = "".join(
            f"<tr><td>{escape(h.layer)}</td><td>{escape(', '.join(h.causes))}</td>"
            f"<td>{'fixed by the rewrite' if h.fixed else 'still on CPU'}</td></tr>"
            for h in r.keras_hints
        )
        out.append(
            "<h2>Keras layers to change in the "
            "source</h2><table><tr><th>layer</th><th>causes</th><th>in the fixed "
            f"model</th></tr>{hints}</table>"
        )
    if r.output:
        out.append(_next(f"xnnfit bench {r.output}", "time the fixed model with and without XNNPACK"))
    elif not r.changed:
        out.append(_next(f"xnnfit check {r.model}", "no rewrite was kept; see the causes and their advice"))
    return "".join(out)


# --- quant / optimize --------------------------------------------------------------------


def _budget(r) -> str:
    return r.budget.describe() if r.budget.judged else "none (accuracy cannot be judged)"


def _accuracy_card(r, chosen) -> tuple[str, str, str]:
    if not r.budget.judged:
        return ("not judged", "accuracy", "bad")
    if chosen.not_judged:
        return ("not judged", "accuracy", "bad")
    if chosen.accuracy is not None:
        return (fmt.pct(chosen.accuracy), "top-1 on the labels", "")
    return (fmt.rel(chosen.rel_error), "error", "")


def _quant(r: QuantResult) -> str:
    out = [f'<h1>{escape(r.model)}</h1><p class="sub">xnnfit quant · budget: {escape(_budget(r))}</p>']
    out.append(_cards([(r.recommended or "none", "recommended", "good" if r.recommended else "bad")]))
    out.append(f"<p>{escape(r.reason)}</p>")
    for w in r.warnings:
        out.append(f'<div class="warning">warning: {escape(w)}</div>')
    out.append(_candidates_table("recipes", r, r.rows, r.recommended, lambda row: [str(row.cpu_nodes)]))
    out.append(_quant_findings(r.rows))
    out.append(_scatter(r, r.rows, r.recommended))
    if r.recommended:
        out.append(
            _next(
                f"xnnfit optimize {r.model} -o best.tflite",
                f"convert with {r.recommended}, fix it and write the fastest faithful model",
            )
        )
    return "".join(out)


def _optimize(r: OptimizeResult) -> str:
    out = [
        f'<h1>{escape(r.model)}</h1><p class="sub">xnnfit optimize · budget: {escape(_budget(r))} · '
        f"accuracy vs {escape(r.reference)} · speed vs "
        f"{escape(r.baseline)} ({r.baseline_ms:.3g} ms, {r.threads} thread(s))</p>"
    ]
    chosen = next((c for c in r.candidates if c.recipe == r.chosen), None)
    if chosen is not None:
        speed = r.baseline_ms / chosen.median_ms if chosen.median_ms else 0.0
        out.append(
            _cards(
                [
                    (chosen.recipe, "chosen", "good"),
                    (f"{speed:.2f}×", f"vs {r.baseline}", "good" if speed > 1 else "")
                    if chosen.same_as != "baseline"
                    else ("1×", f"it is {r.baseline}", ""),
                    (fmt.size(chosen.size_bytes), "size", ""),
                    _accuracy_card(r, chosen),
                    (
                        "100%" if not chosen.cpu_nodes else f"{chosen.cpu_nodes} CPU nodes",
                        "on XNNPACK",
                        "good" if not chosen.cpu_nodes else "bad",
                    ),
                ]
            )
        )
    out.append(f"<p>{escape(r.reason)}</p>")

    def fixed(c) -> list[str]:
        return ["yes" if c.fixed else "no", ", ".join(c.rules), f"{c.cpu_nodes_before} → {c.cpu_nodes}"]

    out.append(_candidates_table("candidates", r, r.candidates, r.chosen, fixed, ("fixed", "rules")))
    out.append(_quant_findings(r.candidates))
    rolled = [(c.recipe, rule, why) for c in r.candidates for rule, why in c.rolled_back]
    if rolled:
        out.append(
            "<h2>rolled back</h2><table><tr><th>recipe</th><th>rule</th><th>why</th></tr>"
            + "".join(f"<tr><td>{escape(a)}</td><td>{escape(b)}</td><td>{escape(c)}</td></tr>" for a, b, c in rolled)
            + "</table>"
        )
    out.append(_scatter(r, r.candidates, r.chosen))
    if r.output:
        out.append(_next(f"xnnfit bench {r.output}", "time the chosen model on the app's thread count"))
    return "".join(out)
