"""The terminal report (rich): renderers that only read frozen results, one per command."""

from __future__ import annotations

import dataclasses
import os
import re
from collections import Counter

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from xnnfit.batch.result import FAILING, OK, SKIPPED, STATUS_TEXT
from xnnfit.choose.optimize import OptimizeResult
from xnnfit.choose.quant import QuantResult
from xnnfit.core import fmt
from xnnfit.explain.costs import Profile
from xnnfit.explain.diagnosis import CheckResult, Diagnosis, runtime_changes, runtime_option, short_runtime
from xnnfit.explain.verdicts import cause_groups
from xnnfit.ids import CAUSE, HAZARD, IDS, KINDS, QUANT, RULE, CauseDoc, Explanation, HazardDoc, QuantCauseDoc, RuleDoc
from xnnfit.kb.advice import BY_ID, Advice, general
from xnnfit.kb.versions import TARGET_CAUSES
from xnnfit.measure.bench import COMPILED, BenchResult, BenchRun, CompareResult
from xnnfit.model.specs import InputSpec
from xnnfit.report import accuracy
from xnnfit.report.next_step import next_step
from xnnfit.rewrite.fix import FixResult
from xnnfit.rewrite.rules import RULES


def headline(d: Diagnosis) -> str:
    """'52 nodes: 32 on XNNPACK (62%), 20 on CPU kernels; 21 partitions (11 on XNNPACK)'."""
    s = d.summary()
    if s["nodes"] and not s["cpu_nodes"]:
        return f"{fmt.plural(s['nodes'], 'node')}, all on XNNPACK; {fmt.plural(s['partitions'], 'partition')}"
    return (
        f"{fmt.plural(s['nodes'], 'node')}: {s['delegated']} on XNNPACK "
        f"({fmt.pct(d.delegated_fraction)}), {s['cpu_nodes']} on CPU kernels; "
        f"{fmt.plural(s['partitions'], 'partition')} ({s['delegate_partitions']} on XNNPACK)"
    )


def _short(path: str | None) -> str:
    if not path:
        return ""
    try:
        rel = os.path.relpath(path)
    except ValueError:
        return path
    return rel if not rel.startswith("..") else path


def _ops_text(ops: list[str]) -> str:
    counts = Counter(ops)
    return ", ".join(f"{op} ×{n}" if n > 1 else op for op, n in counts.items())


def render_inputs(console: Console, specs: tuple[InputSpec, ...]) -> None:
    """One line per input: name, dtype, declared shape and what its dynamic dims were pinned to."""
    for spec in specs:
        console.print(f"  input {escape(spec.describe())}")


TOP_LAYERS = 10  # layer rows shown before "+N more": enough for the worst offenders, short enough to read


def _recipe_header(console: Console, model: str, recipe: str, runtime: str, ok: bool, how: str) -> bool:
    """'model · recipe · on runtime', and what another runtime's figures were `how` (observed, timed) on.

    False when the recipe failed: nothing more to render.
    """
    target = bool(runtime_option(runtime))
    on = f" · on [magenta]{escape(short_runtime(runtime))}[/]" if target else ""
    console.print(f"[bold]{escape(model)}[/] · [cyan]{recipe}[/]{on}")
    if not ok:
        console.print("  [red]failed[/] (the error is on stderr)")
        return False
    if target:
        aar = "Android AAR builds of the same version may differ (build flags, CPU features)"
        console.print(f"  {how} on {escape(runtime)}: {aar}")
    return True


def render_diagnosis(
    console: Console, model: str, d: Diagnosis, *, all_nodes: bool = False, inputs: bool = True, warnings: bool = True
) -> None:
    """One recipe: headline, fallbacks by cause (what to do), the layers they sit in, the next step."""
    if not _recipe_header(console, model, d.recipe, d.runtime, d.ok, "observed"):
        return
    if d.not_loaded:
        console.print(f"  [red]{escape(short_runtime(d.runtime))} cannot load this model[/]: {escape(d.not_loaded)}")
        for w in d.warnings if warnings else ():
            console.print(f"  [yellow]warning:[/] {escape(w)}")
        render_next_step(console, model, d)
        return
    for w in d.warnings if warnings else ():
        console.print(f"  [yellow]warning:[/] {escape(w)}")
    if inputs:
        render_inputs(console, d.inputs)
    s = d.summary()
    if d.predicted:
        console.print(f"  [yellow]predicted[/]: {escape(d.predicted)}")
    console.print(f"  {'predicted: ' if d.predicted else ''}{headline(d)}")
    for f in d.findings:
        console.print(
            f"  [red bold]{f.severity}[/] [bold]{f.hazard}[/] node {f.node} ({escape(f.op)}): {escape(f.message)}"
        )
    if s["nodes"] and not s["delegated"]:
        console.print("  [red]XNNPACK took no node: the whole model runs on the built-in CPU kernels.[/]")
    elif d.load_failed:
        console.print(
            "  [yellow]This runtime cannot load the model (the warnings above say why); the verdicts "
            "are what XNNPACK would do once it loads.[/]"
        )
    elif not s["cpu_nodes"] and any(f.severity == "error" for f in d.findings):
        console.print(
            "  [red]XNNPACK runs the whole graph, but computes the node(s) above wrong: outputs are not the model's.[/]"
        )
    elif not s["cpu_nodes"]:
        console.print("  [green]Fully delegated: XNNPACK runs the whole graph; nothing to fix.[/]")
    if d.needs_xnnpack:
        console.print("  note: the model runs only with XNNPACK (it has custom ops only the delegate implements)")
    for note in d.notes:
        console.print(f"  note: {escape(note)}")
    cpu = [n for n in d.observed if not n.delegated]
    if cpu:
        _render_causes(console, cpu)
        _render_layers(console, cpu, all_nodes)
    render_next_step(console, model, d)
    if all_nodes:
        _render_nodes(console, d)


NO_RULE_YET = "; no xnnfit fix rule for this yet"


def _render_causes(console: Console, cpu: list) -> None:
    """Fallbacks by cause, most nodes first: how many, in how many layers, why, what to write instead here, the rule."""
    for g in cause_groups(cpu):
        where = f"{fmt.plural(len(g.nodes), 'node')} in {fmt.plural(len(g.layers), 'layer')}"
        if g.cause is None:
            console.print(
                f"  [red]unexplained[/] ({where}): no KB entry matches; xnnfit does not guess. Please report the op."
            )
            continue
        fixed_by = f"; [green]xnnfit fix[/] handles it here ({', '.join(g.rules)})" if g.rules else NO_RULE_YET
        console.print(f"  [bold]{g.id}[/] {escape(g.cause.title)} — {where}{fixed_by}")
        console.print(f"    why: {escape(g.cause.why)}")
        for advice in g.advice:
            render_advice(console, advice, indent=4)


def render_advice(console: Console, advice: Advice, *, indent: int = 4) -> None:
    """One piece of advice (its id, code in green, then the text), saying when it changes what the model computes."""
    pad = " " * indent
    changes = "" if advice.preserves_semantics else ", changes the output"
    console.print(f"{pad}use instead [dim]({advice.id}{changes})[/]:")
    for line in advice.code.splitlines() if advice.code else ():
        console.print(f"{pad}  [green]{escape(line)}[/]")
    for line in advice.text.splitlines():
        console.print(f"{pad}  {escape(line)}")


def _render_layers(console: Console, cpu: list, all_nodes: bool) -> None:
    """The Keras layers whose nodes fall back, in model order, cut after TOP_LAYERS rows."""
    groups: dict[str, list] = {}
    for n in cpu:
        groups.setdefault(n.layer or "(unmapped)", []).append(n)
    table = Table(box=None, show_edge=False, header_style="bold")
    for col in ("layer", "class", "CPU nodes", "cause", "source"):
        table.add_column(col, overflow="fold" if col == "source" else None)
    rows = sorted(groups.items(), key=lambda kv: min(n.index for n in kv[1]))
    shown = rows if all_nodes else rows[:TOP_LAYERS]
    for layer, nodes in shown:
        causes = sorted({c for n in nodes for c in n.causes}) or ["unexplained"]
        table.add_row(
            escape(layer),
            escape(nodes[0].layer_class or ""),
            escape(_ops_text([n.op for n in nodes])),
            ", ".join(f"[red]{c}[/]" if c == "unexplained" else c for c in causes),
            escape(_short(nodes[0].source)),
        )
    console.print(table)
    if len(shown) < len(rows):
        console.print(f"  {fmt.more(len(shown), len(rows), '--all-nodes')}")


def render_next_step(console: Console, model: str, d: Diagnosis) -> None:
    """The next step (report/next_step.py decides it for every report)."""
    step = next_step(model, d)
    console.print(f"  next: {escape(step.command)}   [dim]# {escape(step.why)}[/]")


def _render_profile_if_any(console: Console, d: Diagnosis) -> None:
    if d.ok and d.profile is not None:
        render_profile(console, d.profile)


def _render_nodes(console: Console, d: Diagnosis) -> None:
    table = Table(title="all nodes", box=None, header_style="bold")
    for col in ("#", "op", "where", "partition", "layer", "causes"):
        table.add_column(col)
    for n in d.nodes:
        where = "XNNPACK" if n.delegated else ("CPU" if n.delegated is False else f"subgraph {n.subgraph}")
        table.add_row(
            str(n.index),
            n.op,
            where,
            "" if n.partition is None else str(n.partition),
            escape(n.layer or ""),
            ", ".join(n.causes),
        )
    console.print(table)


def render_runtime_matrix(console: Console, result: CheckResult) -> None:
    """Model x runtime: loads or not, nodes on XNNPACK, partitions; then every node whose verdict differs.

    Each such node comes with each side's reason.
    """
    t = Table(
        box=None,
        header_style="bold",
        title=f"{escape(result.model)} on {len(result.runtimes)} runtimes",
        title_justify="left",
    )
    for col in ("recipe", "runtime", "loads", "on XNNPACK", "partitions", "unexplained"):
        t.add_column(col)
    for d in result.recipes:
        name = escape(short_runtime(d.runtime))
        if not d.ok:
            t.add_row(d.recipe, name, "[red]error[/]", "", "", "")
        elif d.not_loaded:
            t.add_row(d.recipe, name, "[red]no[/]", "", "", "")
        else:
            s = d.summary()
            t.add_row(
                d.recipe,
                name,
                "yes",
                f"{s['delegated']}/{s['nodes']} ({fmt.pct(d.delegated_fraction)})",
                str(s["partitions"]),
                str(s["unexplained"]),
            )
    console.print(t)
    for d in result.recipes:
        if d.not_loaded:
            console.print(
                f"  [red]{escape(short_runtime(d.runtime))}[/] ({d.recipe}) cannot load it: {escape(d.not_loaded)}"
            )
            for w in d.warnings:
                console.print(f"    {escape(w)}")
    changes = runtime_changes(result.recipes)
    groups: dict[tuple, list] = {}  # same op, same runtimes on each side, same reasons: one line
    for c in changes:
        groups.setdefault((c.recipe, c.op, c.delegated_on, c.cpu_on), []).append(c)
    if changes:
        console.print(f"  {fmt.plural(len(changes), 'node')} with a verdict that depends on the runtime:")
    for (recipe, op, delegated_on, cpu_on), members in list(groups.items())[: TOP_LAYERS * 2]:
        why = "; ".join(f"CPU on {rt} ({', '.join(causes) or 'unexplained'})" for rt, causes in cpu_on)
        on = f"XNNPACK on {', '.join(delegated_on)}; " if delegated_on else ""
        nodes = ", ".join(str(c.node) for c in members[:6]) + (" …" if len(members) > 6 else "")
        console.print(f"    {recipe} {escape(op)} ×{len(members)} (node {nodes}): {on}{escape(why)}")
    if len(groups) > TOP_LAYERS * 2:
        console.print(f"    … {len(groups) - TOP_LAYERS * 2} more groups (--json has every node)")
    console.print(
        f"  next: [bold]xnnfit check {escape(result.model)} --runtime SPEC[/] for one runtime's "
        "full report, with the reasons and what to write instead"
    )


def render_check(console: Console, result: CheckResult, *, all_nodes: bool = False, details: bool = False) -> None:
    """Print every recipe of one model (with its profile when it has one); inputs once, with the first recipe.

    Checked on several runtimes, the model x runtime matrix comes first and the full reports only with `details`.
    """
    if len(result.runtimes) > 1:
        render_runtime_matrix(console, result)
        console.print()
        if not details:
            return
    shown, said = False, set()
    for d in result.recipes:
        fresh = tuple(w for w in d.warnings if w not in said)  # a warning shared by recipes is said once
        said.update(d.warnings)
        render_diagnosis(
            console, result.model, dataclasses.replace(d, warnings=fresh), all_nodes=all_nodes, inputs=not shown
        )
        shown = shown or d.ok
        _render_profile_if_any(console, d)
        console.print()


def render_profile_result(console: Console, result: CheckResult) -> None:
    """`xnnfit profile`: per recipe, the headline and where the time goes."""
    for d in result.recipes:
        console.print(f"[bold]{escape(result.model)}[/] · [cyan]{d.recipe}[/]")
        if not d.ok:
            console.print("  [red]failed[/] (the error is on stderr)")
            continue
        render_inputs(console, d.inputs)
        for w in d.warnings:
            console.print(f"  [yellow]warning[/]: {escape(w)}")
        console.print(f"  {headline(d)}")
        if d.profile is not None:
            render_profile(console, d.profile)
        console.print()


def render_errors(console: Console, results, *, debug: bool = False) -> int:
    """Each failed recipe's error as one line (and its log with --debug); returns how many failed."""
    failed = [r for r in results if r.error is not None]
    for r in failed:
        render_error(console, r.error, r.error_detail if debug else None)
    return len(failed)


def _linked(console: Console, label: str, stable_ids: tuple[str, ...], none: str = "") -> None:
    """'  <label>: XR001, XR013', then each id with its title from the id table (`xnnfit explain ID` tells more)."""
    if not stable_ids and not none:
        return
    console.print(f"  {label}: {', '.join(stable_ids) or none}")
    for i in stable_ids:
        console.print(f"    {i} {escape(IDS[i].title) if i in IDS else ''}")


def render_cause(console: Console, cause: CauseDoc) -> None:
    """`xnnfit explain XNN0xx`: what, why, example, use instead, related fixes."""
    console.print(f"[bold]{cause.id}[/] {escape(cause.title)}")
    console.print(f"  kind: cause, {KINDS[CAUSE]}")
    console.print(f"  ops: {', '.join(cause.ops)}")
    console.print(f"  when: {escape(cause.when)}")
    console.print(f"  why: {escape(cause.why)}")
    console.print(f"  example: [red]{escape(cause.example)}[/]")
    console.print("  use instead:")
    for line in cause.fix.splitlines():
        console.print(f"    [green]{escape(line)}[/]")
    _linked(console, "xnnfit fix rules", cause.rewrites)
    none = (
        "per runtime, by the one-op and graph probes of kb/versions.json"
        if cause.id in TARGET_CAUSES
        else "none (cannot be built with the pinned converter/runtime)"
    )
    console.print(f"  proven by probes: {escape('; '.join(cause.probes)) if cause.probes else none}")
    if cause.runtimes:
        console.print(
            "  on each runtime (kb/versions.json): "
            + "; ".join(f"{escape(spec)} {escape(status)}" for spec, status in cause.runtimes)
        )


def render_hazard(console: Console, hazard: HazardDoc) -> None:
    """`xnnfit explain XNN040`: what XNNPACK computes wrong, why, the way out, the rules that repair it, the probes."""
    console.print(f"[bold]{hazard.id}[/] {escape(hazard.title)}")
    console.print(f"  kind: hazard, {KINDS[HAZARD]} (`check` reports it as an {hazard.severity})")
    console.print(f"  why: {escape(hazard.why)}")
    console.print(f"  way out: [green]{escape(hazard.fix)}[/]")
    _linked(console, "xnnfit fix rules", hazard.rewrites, "none yet")
    console.print(f"  proven by probes: {escape('; '.join(hazard.probes))}")


def render_quant_cause(console: Console, cause: QuantCauseDoc) -> None:
    """`xnnfit explain XNN036`: when a quantized tensor shows it, why, the way out, the probes."""
    console.print(f"[bold]{cause.id}[/] {escape(cause.title)}")
    console.print(f"  kind: quantization, {KINDS[QUANT]}")
    console.print(f"  when: {escape(cause.when)}")
    console.print(f"  why: {escape(cause.why)}")
    console.print(f"  way out: [green]{escape(cause.fix)}[/]")
    repair = "keeps the op in float" if cause.keeps_float else "does not help (the way out is above)"
    console.print(f"  int8-repaired (quant, optimize): {repair}")
    console.print(f"  proven by probes: {escape('; '.join(cause.probes))}")


def render_rule(console: Console, rule: RuleDoc) -> None:
    """`xnnfit explain XR0xx`: what the rule rewrites, what it removes, how exact it is, who points at it."""
    console.print(f"[bold]{rule.id}[/] {escape(rule.title)}")
    console.print(f"  kind: rule, {KINDS[RULE]}")
    _linked(console, "fixes", rule.fixes)
    exactness = (
        "exact (the same math: outputs within float rounding)"
        if rule.exactness == "exact"
        else f"tolerance (an approximation: outputs within {rule.tolerance:g} of their scale)"
    )
    console.print(f"  exactness: {exactness}")
    if rule.judged_against == "cpu":
        console.print("  judged against: the model before it, on the built-in kernels (XNNPACK's outputs are wrong)")
    console.print(f"  listed by: {', '.join(rule.listed_by) or 'no cause or hazard'}")


def render_explanation(console: Console, explanation: Explanation, *, table: bool) -> None:
    """Every id as tables grouped by kind (`xnnfit explain`), or each id in full."""
    if not table:
        for cause in explanation.causes:
            render_cause(console, cause)
        for hazard in explanation.hazards:
            render_hazard(console, hazard)
        for quant in explanation.quantization:
            render_quant_cause(console, quant)
        for rule in explanation.rules:
            render_rule(console, rule)
        return
    groups = (
        (CAUSE, "ops", [(c.id, c.title, ", ".join(c.ops[:4]) + " …" * (len(c.ops) > 4)) for c in explanation.causes]),
        (HAZARD, "rules", [(h.id, h.title, ", ".join(h.rewrites)) for h in explanation.hazards]),
        (
            QUANT,
            "int8-repaired",
            [(q.id, q.title, "keeps it float" if q.keeps_float else "-") for q in explanation.quantization],
        ),
        (RULE, "fixes", [(r.id, r.title, ", ".join(r.fixes)) for r in explanation.rules]),
    )
    for kind, last, rows in groups:
        if not rows:
            continue
        t = Table(box=None, header_style="bold", title=f"{kind}s: {KINDS[kind]}", title_justify="left")
        for col in ("id", kind, last):
            t.add_column(col)
        for row in rows:
            t.add_row(row[0], escape(row[1]), row[2])
        console.print(t)


def render_profile(console: Console, profile: Profile, *, top: int = 10) -> None:
    """Where the time goes: headline, fix-first layers, slowest pieces.

    Every figure is a part of the whole model's median time.
    """
    total = profile.total.median_ms
    threads = fmt.plural(profile.threads, "thread")
    console.print(
        f"  time: {fmt.ms(total)} whole model (median of {profile.total.runs} runs, {threads}); "
        f"{fmt.pct(profile.cpu_share)} of it on CPU kernels ({fmt.ms(profile.attributed_ms(profile.cpu_ms))})"
    )
    for w in profile.warnings:
        console.print(f"  [yellow]warning:[/] {escape(w)}")
    if profile.layers:
        console.print("  [bold]fix first[/] (CPU-kernel time per Keras layer, share of the whole model):")
        for cost in profile.layers[:top]:
            causes = f"  [{', '.join(cost.causes)}]" if cost.causes else ""
            console.print(
                f"    {escape(cost.layer)} ({escape(cost.ops_text)}): "
                f"{fmt.ms(profile.attributed_ms(cost.cpu_ms))} "
                f"({fmt.pct(profile.share(cost.cpu_ms))}){causes}"
            )
        if len(profile.layers) > top:
            console.print(f"    {fmt.more(top, len(profile.layers), 'all in --json')}")
    table = Table(box=None, header_style="bold", title=None)
    for col in ("piece", "partition", "ops", "ms", "share"):
        table.add_column(col, justify="right" if col in ("ms", "share", "partition") else "left")
    pieces = sorted(profile.pieces, key=lambda p: -p.ms)
    for p in pieces[:top]:
        ops = _ops_text(list(p.ops))
        table.add_row(
            "[green]XNNPACK[/]" if p.kind == "xnnpack" else "[red]CPU[/]",
            str(p.partition),
            escape(ops if len(ops) < 60 else ops[:57] + "..."),
            f"{profile.attributed_ms(p.ms):.3g}",
            fmt.pct(profile.share(p.ms)),
        )
    console.print(table)
    if len(pieces) > top:
        console.print(f"  {fmt.more(top, len(pieces), 'all pieces in --json')}")


def render_compare(console: Console, result: CompareResult) -> None:
    """Models raced against each other: median per thread count and the speed ratio to the first."""
    console.print("[bold]comparison[/] · XNNPACK, every model interleaved in one process (same runs, same conditions)")
    table = Table(box=None, header_style="bold")
    for col in ("model", "recipe", "threads", "median ms", "p10", "p90", "size", "vs first"):
        table.add_column(col, justify="left" if col in ("model", "recipe") else "right")
    for i, e in enumerate(result.entries):
        for c in e.configs:
            ratio = result.ratio(i, c.threads)
            versus = "reference" if i == 0 else f"{ratio:.2f}x {'faster' if ratio >= 1 else 'slower'}"
            s = c.stats
            table.add_row(
                escape(e.model),
                e.recipe,
                str(c.threads),
                f"{s.median_ms:.3g}",
                f"{s.p10_ms:.3g}",
                f"{s.p90_ms:.3g}",
                fmt.size(e.size_bytes),
                versus,
            )
    console.print(table)
    for w in result.warnings:
        console.print(f"  [yellow]warning:[/] {escape(w)}")
    console.print(
        f"  next: xnnfit check {escape(result.entries[-1].model)}   [dim]# which nodes still fall back, and why[/]"
    )


def render_bench(console: Console, result: BenchResult) -> None:
    """Every recipe's bench table."""
    for run in result.recipes:
        render_bench_run(console, result.model, run)
        console.print()


def render_bench_run(console: Console, model: str, result: BenchRun) -> None:
    """One recipe's bench table."""
    if not _recipe_header(console, model, result.recipe, result.runtime, result.ok, "timed"):
        return
    render_inputs(console, result.inputs)
    console.print(f"  model size {fmt.size(result.size_bytes)}")
    table = Table(box=None, header_style="bold")
    for col in ("config", "threads", "median ms", "p10", "p90", "min", "memory"):
        table.add_column(col, justify="left" if col == "config" else "right")
    for c in result.configs:
        s = c.stats
        table.add_row(
            "CompiledModel (XNNPACK)" if c.api == COMPILED else "XNNPACK" if c.xnnpack else "CPU kernels only",
            str(c.threads),
            f"{s.median_ms:.3g}",
            f"{s.p10_ms:.3g}",
            f"{s.p90_ms:.3g}",
            f"{s.min_ms:.3g}",
            f"+{c.rss_delta_bytes / 1e6:.1f} MB",
        )
    console.print(table)
    for n in sorted({c.threads for c in result.configs}):
        console.print(
            f"  {fmt.plural(n, 'thread')}: XNNPACK is {result.speedup(n):.2f}x the speed of the built-in kernels"
        )
        compiled = [c for c in result.configs if c.api == COMPILED and c.threads == n]
        if compiled:
            ratio = result.config(True, n).stats.median_ms / compiled[0].stats.median_ms
            console.print(
                f"  {fmt.plural(n, 'thread')}: CompiledModel is {ratio:.2f}x the speed of the Interpreter "
                "with XNNPACK (same runs, interleaved)"
            )
    for w in result.warnings:
        console.print(f"  [yellow]warning:[/] {escape(w)}")
    console.print(
        f"  next: xnnfit check {escape(model)}   [dim]# which nodes fall back to the built-in kernels, and why[/]"
    )


def _where(where: tuple[str, ...]) -> str:
    return ", ".join(where[:3]) + (f" (+{len(where) - 3} more)" if len(where) > 3 else "")


def render_fix(console: Console, report: FixResult) -> None:
    """What fix did: what it was judged against and on, rules kept or rolled back, delegation, latency, errors."""
    r = report.rewrite
    console.print(f"[bold]{escape(report.model)}[/] · [cyan]{report.recipe}[/]")
    render_inputs(console, report.inputs)
    for w in report.warnings:
        console.print(f"  [yellow]warning:[/] {escape(w)}")
    if r.reference:
        console.print(
            f"  quantized model: every rewrite is judged against {escape(r.reference)} (kept only if "
            "no farther from it than before)"
        )
    if r.verified_on is not None:
        console.print(f"  verified on {escape(r.verified_on.describe(report.inputs))}")
    if r.judgement is not None and not r.judgement.judged:
        console.print(f"  [yellow]{escape(r.judgement.message)}[/]")
    for o in r.outcomes:
        if o.status == "applied":
            console.print(f"  [green]applied[/] {o.rule} ×{o.count} at {escape(_where(o.where))}: {escape(o.reason)}")
        elif o.status == "matched":
            console.print(f"  [cyan]matches[/] {o.rule} ×{o.count} at {escape(_where(o.where))}")
        elif o.status == "rolled-back":
            console.print(f"  [yellow]rolled back[/] {o.rule} ×{o.count}: {escape(o.reason)}")
    idle = [o.rule for o in r.outcomes if o.status == "no-match"]
    if idle:
        console.print(f"  [dim]no match: {', '.join(idle)} (why: --json)[/]")
    b, a = r.before, r.after
    if report.dry_run:
        matched = [o for o in r.outcomes if o.status == "matched"]
        console.print(f"  dry run: {len(matched)} rule(s) match; nothing applied, verified or written")
        if matched:
            console.print(
                f"  next: xnnfit fix {escape(report.model)} -o OUT.tflite   [dim]# applies and verifies them[/]"
            )
    elif not report.changed:
        why = (
            "no rule matches this model"
            if len(idle) == len(r.outcomes)
            else "every matching rule was rolled back (reasons above)"
        )
        console.print(
            f"  [yellow]no rewrite kept[/]: {why}; "
            + (
                f"wrote the model unchanged to {escape(report.output)} (--force-write)"
                if report.output
                else "output not written"
            )
        )
        if r.reference_before is not None:
            console.print(
                f"  error vs {escape(r.reference)}: {fmt.rel(r.reference_before.max_rel_error)} of its output scale"
            )
    elif b is not None and a is not None:
        console.print(f"  CPU nodes {b.cpu_nodes} -> {a.cpu_nodes}; partitions {b.partitions} -> {a.partitions}")
        speed = b.median_ms / a.median_ms if a.median_ms else 0.0
        latency = f"  latency {b.median_ms:.3g} -> {a.median_ms:.3g} ms ({speed:.2f}x, interleaved runs)"
        repaired = [o.rule for o in r.applied if o.rule in RULES and RULES[o.rule].judged_against == "cpu"]
        if r.numerics is None:  # accuracy cannot be judged (said above): no relative error means anything
            console.print(latency)
        elif repaired:  # the original's XNNPACK outputs were wrong: the change is the repair
            console.print(
                f"{latency}; outputs moved by "
                f"{fmt.rel(r.numerics.max_rel_error)} of the original's scale: its XNNPACK outputs were "
                "wrong, the fixed model's match "
                f"its built-in kernels ({', '.join(repaired)})"
            )
        else:
            console.print(f"{latency}; outputs within {fmt.rel(r.numerics.max_rel_error)} of the original's scale")
        if r.reference_before is not None and r.reference_after is not None:
            console.print(
                f"  error vs {escape(r.reference)}: {fmt.rel(r.reference_before.max_rel_error)} -> "
                f"{fmt.rel(r.reference_after.max_rel_error)} of its output scale"
            )
        if report.output:
            console.print(f"  wrote {escape(report.output)}")
            console.print(f"  next: xnnfit bench {escape(report.output)}   [dim]# time it with and without XNNPACK[/]")
    _render_keras_hints(console, report)


def _render_keras_hints(console: Console, report: FixResult) -> None:
    """What to change in the Keras source: what still falls back after the fix, then what the fix removed."""
    for fixed, title in (
        (False, "still on CPU kernels; change the Keras source:"),
        (True, "removed by the fix; for a source that converts cleanly:"),
    ):
        hints = [h for h in report.keras_hints if h.fixed == fixed]
        if not hints:
            continue
        console.print(f"  {title}")
        by_advice: dict[str, list[str]] = {}
        for hint in hints:
            for a in hint.advice or tuple(f"{c}.general" for c in hint.causes) or ("unexplained",):
                by_advice.setdefault(a, []).append(hint.layer)
        for advice_id, layers in by_advice.items():
            shown = ", ".join(escape(x) for x in layers[:6]) + (
                f" (+{len(layers) - 6} more)" if len(layers) > 6 else ""
            )
            console.print(f"    {shown}:")
            if advice_id == "unexplained":
                console.print("      unexplained: no KB entry matches these nodes")
                continue
            render_advice(console, BY_ID.get(advice_id) or general(advice_id.split(".")[0]), indent=6)


def render_accuracy_legend(console: Console, budget, evaluation, reference: str, rows=()) -> None:
    """What the accuracy columns were measured on and mean, the budget, and the Pareto mark."""
    for line in accuracy.legend(budget, evaluation, reference, rows):
        if line.startswith(accuracy.NOT_JUDGED):
            console.print(f"  [yellow]{accuracy.NOT_JUDGED}[/]{escape(line[len(accuracy.NOT_JUDGED) :])}")
        else:
            console.print(f"  {escape(line)}")


def render_optimize(console: Console, result: OptimizeResult) -> None:
    """The chosen model and why, the candidates, rollbacks, what to change in the Keras source, the next step."""
    timed = f", timed on {escape(result.cpu)}" if result.cpu else ""
    console.print(
        f"[bold]{escape(result.model)}[/] · optimize for XNNPACK ({fmt.plural(result.threads, 'thread')}{timed})"
    )
    for w in result.warnings:
        console.print(f"  [yellow]warning:[/] {escape(w)}")
    best = result.best
    if best is None:
        console.print(f"  [red]nothing chosen[/]: {escape(result.reason)}")
    else:
        console.print(f"  [bold green]chosen: {escape(best.recipe)}[/] — {escape(result.reason)}")
        console.print(
            f"  {fmt.size(best.size_bytes)}, {fmt.ms(best.median_ms)} vs {fmt.ms(result.baseline_ms)} "
            f"for {escape(result.baseline)}"
        )
        if result.output:
            console.print(f"  wrote {escape(result.output)}")
    table = Table(box=None, header_style="bold")
    acc = accuracy.columns(result.budget, result.eval)
    for col in ("recipe", "fixed", "rules", "CPU nodes", "partitions", "median ms", "size", *acc, "pareto"):
        table.add_column(col, justify="left" if col in ("recipe", "fixed", "rules") else "right")
    for c in result.candidates:
        mark = "[bold green]" if c.recipe == result.chosen else ""
        if c.status != "ok":
            table.add_row(f"{mark}{escape(c.recipe)}", "[red]failed[/]", *[""] * (len(acc) + 6))
            continue
        table.add_row(
            f"{mark}{escape(c.recipe)}",
            "yes" if c.fixed else "no",
            escape(", ".join(c.rules)) or "-",
            f"{c.cpu_nodes_before} -> {c.cpu_nodes}" if c.fixed else str(c.cpu_nodes),
            str(c.partitions),
            f"{c.median_ms:.3g}" + (f" [dim](= {escape(c.same_as)})[/]" if c.same_as else ""),
            fmt.size(c.size_bytes),
            *accuracy.cells(c, result.budget, result.eval),
            "*" if c.pareto else "",
        )
    console.print(table)
    render_accuracy_legend(console, result.budget, result.eval, result.reference, result.candidates)
    if any(c.same_as for c in result.candidates):
        console.print("  (= X): the same bytes as X, timed once")
    for c in result.candidates:
        if c.status != "ok":
            console.print(f"  [red]{escape(c.recipe)} dropped:[/] {escape(' '.join((c.error or '').split()))}")
        for rule, why in c.rolled_back:
            console.print(f"  [yellow]{escape(c.recipe)}: rolled back {rule}[/]: {escape(why)}")
    render_quant_findings(console, result.candidates)
    if best is not None and best.keras_hints:
        console.print("  in the Keras source, for a model that converts cleanly with this recipe:")
        by_advice: dict[str, list[str]] = {}
        for hint in best.keras_hints:
            for a in hint.advice or tuple(f"{c}.general" for c in hint.causes):
                by_advice.setdefault(a, []).append(hint.layer)
        for advice_id, layers in by_advice.items():
            console.print(
                "    "
                f"{', '.join(escape(x) for x in layers[:6])}{f' (+{len(layers) - 6} more)' if len(layers) > 6 else ''}:"
            )
            render_advice(console, BY_ID.get(advice_id) or general(advice_id.split(".")[0]), indent=6)
    if result.output:
        console.print(
            f"  next: xnnfit bench {escape(result.output)}   [dim]# time the chosen model with and without XNNPACK[/]"
        )


def render_quant_findings(console: Console, rows) -> None:
    """Each full-int8 candidate's quantization findings, one line each: cause, layer, line, error, advice."""
    rows = [r for r in rows if r.quantization_findings]
    if not rows:
        return
    console.print(
        "  quantization findings (each op's own error: max |int8 - float| / max |float| of its tensor on the eval "
        "inputs, TF's quantization debugger model run on LiteRT; a recipe's first is where its error starts):"
    )
    for r in rows:
        for f in r.quantization_findings:
            cause = f"[bold]{f.id}[/]" if f.id else "[red]unexplained[/]"
            channel = f", median channel {fmt.pct(f.channel_error)}" if f.channel_error > 2 * f.error else ""
            console.print(
                f"    {escape(r.recipe)}: {cause} {escape(f.layer or '?')} {escape(f.line or '-')} "
                f"({escape(f.op)}): error {fmt.pct(f.error)}{channel} — {escape(f.advice)}"
            )


def render_quant(console: Console, report: QuantResult) -> None:
    """The sweep table, the Pareto frontier, warnings and the recommendation."""
    timed = f" (timed on {escape(report.cpu)})" if report.cpu else ""
    console.print(f"[bold]{escape(report.model)}[/] · quantization sweep{timed}")
    for w in report.warnings:
        console.print(f"  [yellow]warning:[/] {escape(w)}")
    table = Table(box=None, header_style="bold")
    acc = accuracy.columns(report.budget, report.eval)
    for col in ("recipe", "size", "on XNNPACK", "partitions", "median ms", "CPU time", *acc, "pareto"):
        table.add_column(col, justify="left" if col == "recipe" else "right")
    for r in report.rows:
        mark = "[bold green]" if r.recipe == report.recommended else ""
        if r.status != "ok":
            table.add_row(f"{mark}{escape(r.recipe)}", "[red]failed[/]", *[""] * (len(acc) + 5))
            continue
        table.add_row(
            f"{mark}{escape(r.recipe)}",
            fmt.size(r.size_bytes),
            fmt.pct(r.delegated_fraction),
            str(r.partitions),
            f"{r.median_ms:.3g}" + (f" [dim](= {escape(r.same_as)})[/]" if r.same_as else ""),
            fmt.pct(r.cpu_share),
            *accuracy.cells(r, report.budget, report.eval),
            "*" if r.pareto else "",
        )
    console.print(table)
    warned = set(report.warnings)
    for r in report.rows:
        if r.status != "ok":
            console.print(f"  [red]{escape(r.recipe)} failed:[/] {escape(' '.join((r.error or '').split()))}")
        for w in r.warnings:
            if w not in warned:
                warned.add(w)
                console.print(f"  [yellow]warning:[/] {escape(w)}")
    render_accuracy_legend(console, report.budget, report.eval, "the fp32 conversion", report.rows)
    if any(r.same_as for r in report.rows):
        console.print("  (= X): the same bytes as X, timed once")
    render_quant_findings(console, report.rows)
    if report.recommended:
        console.print(f"  [bold]recommended: {escape(report.recommended)}[/] — {escape(report.reason)}")
    else:
        console.print(f"  [red]no recommendation[/]: {escape(report.reason)}")


def render_gate_failures(console: Console, model: str, recipe: str, failures: list[str]) -> None:
    """One line per violated CI gate."""
    for f in failures:
        console.print(f"[red]gate failed[/] {escape(model)} ({recipe}): {escape(f)}")


def render_written(console: Console, path) -> None:
    """Where a report went."""
    console.print(f"wrote {escape(str(path))}")


_ANSI = re.compile(r"\x1b\[[0-9;]*m|\[[0-9;]*m(?=\w)")


def one_line(text: str) -> str:
    """`text` without terminal colour codes, on one line."""
    return " ".join(_ANSI.sub("", text).split())


def render_error(console: Console, message: str, detail: str | None = None) -> None:
    """An error as one line (what went wrong, what to do), the log only when given."""
    console.print(f"[red]error:[/] {escape(one_line(message))}")
    if detail:
        console.print(detail, markup=False)


def render_batch(console: Console, result) -> None:
    """The batch summary: one row per job, worst first; each failing job's reasons; the counts and a next step."""
    runtimes = any(r.runtime for r in result.rows)
    table = Table(box=None, header_style="bold")
    cols = ["model", "recipe", *(["runtime"] if runtimes else []), "nodes", "CPU nodes", "partitions", "unexplained"]
    for col in [*cols, "status"]:
        table.add_column(col, justify="right" if col in ("nodes", "CPU nodes", "partitions", "unexplained") else "left")
    colour = {OK: "green", SKIPPED: "yellow"}
    for r in result.worst_first():
        status = f"[{colour.get(r.status, 'red')}]{STATUS_TEXT[r.status]}[/]"
        status += " [yellow](predicted)[/]" if r.predicted and r.status != SKIPPED else ""
        status += " [dim](cached)[/]" if r.cached else ""
        extra = [escape(r.runtime or "installed")] if runtimes else []
        table.add_row(
            escape(r.model), r.recipe, *extra, str(r.nodes), str(r.cpu_nodes), str(r.partitions), str(r.unexplained),
            status,
        )  # fmt: skip
    console.print(table)
    for r in result.worst_first():
        if r.status in FAILING:
            for f in r.failures:
                console.print(f"[red]{STATUS_TEXT[r.status]}[/] {escape(r.label)}: {escape(f)}")
    s = result.summary()
    counts = (
        f"{fmt.plural(s['jobs'], 'job')} over {fmt.plural(s['models'], 'model')}: {s['ok']} ok, "
        f"{s['gate_failures']} over budget, {s['regressions']} regressed, {s['not_loaded']} not loaded, "
        f"{s['errors']} error(s), {s['cached']} from the cache"
    )
    if s["skipped"]:
        counts += f", {s['skipped']} not run"
    console.print(counts + (" — [red]interrupted, incomplete[/]" if result.incomplete else ""))
    if s["predicted"]:
        predicted = fmt.plural(s["predicted"], "job")
        console.print(f"{predicted} with verdicts predicted from the knowledge base, not observed")
    if result.cpu:
        console.print(f"timed on {escape(result.cpu)}")
    labels = {d.runtime for m in result.models for d in m.recipes if d.runtime}
    option = runtime_option(next(iter(labels))) if len(labels) == 1 else ""
    if option:
        console.print(f"observed on {escape(next(iter(labels)))}: Android AAR builds of the same version may differ")
    worst = next((r for r in result.worst_first() if r.status not in ("error", SKIPPED) and r.cpu_nodes), None)
    if worst is not None:
        recipe = f" --recipe {worst.recipe}" if worst.recipe != "as-given" else ""
        on = f" --runtime {worst.runtime}" if worst.runtime else option
        console.print(
            f"next: xnnfit check {escape(worst.model)}{recipe}{on}   [dim]# the worst model's "
            "causes and what to write instead[/]"
        )


def render_baseline(console: Console, diff) -> None:
    """Every change against the baseline: regressions (they fail), improvements, renamed, added and removed jobs."""
    if diff.unchanged:
        console.print("baseline: no change")
    colours = {"regression": "red", "improvement": "green"}
    for kind, text in diff.lines():
        console.print(f"[{colours.get(kind, 'yellow')}]{kind}[/] {escape(text)}")
    for note in diff.notes:
        console.print(f"[dim]{escape(note)}[/]")
