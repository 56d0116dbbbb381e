"""fix(): apply rules one at a time to a fixpoint, keep each only if verification passes.

For each rule: apply every match until none is left, then check the candidate against
the model before the rule (numerics within the rule's tolerance, or for quantized
models no worse than the original's own error against a float reference; no more CPU
nodes; not slower). A rule that fails a check is rolled back with the reason.
"""

from __future__ import annotations

import dataclasses


from xnnfit.errors import XnnfitError
from xnnfit.inputs import InputSpec, random_inputs
from xnnfit.rewrite.graph import Graph
from xnnfit.rewrite.rule import NoMatch, RewriteContext, Rule
from xnnfit.rewrite.rules import RULES
from xnnfit.rewrite.verify import Numerics, compare, cpu_nodes, internal_error, outputs, race

MAX_ROUNDS = 20  # rounds of (match everything, apply everything)
SLOWER_MARGIN = 1.05  # a candidate clearly more than 5% slower than before is not kept
SAMPLES = 4


@dataclasses.dataclass(frozen=True)
class RuleOutcome:
    """What happened to one rule."""

    rule: str
    status: str  # 'applied', 'rolled-back', 'no-match'
    count: int = 0
    where: tuple[str, ...] = ()
    reason: str = ""
    numerics: Numerics | None = None


@dataclasses.dataclass(frozen=True)
class Side:
    """One end of the fix: delegation and latency."""

    cpu_nodes: int
    partitions: int
    median_ms: float


@dataclasses.dataclass(frozen=True)
class FixResult:
    """The fixed model and the evidence that it is equivalent, better delegated, and not slower."""

    content: bytes = dataclasses.field(repr=False)
    outcomes: tuple[RuleOutcome, ...]
    before: Side
    after: Side
    numerics: Numerics  # fixed vs original

    @property
    def applied(self) -> tuple[RuleOutcome, ...]:
        """The rules kept."""
        return tuple(o for o in self.outcomes if o.status == "applied")


def select_rules(names: list[str] | None, exclude: list[str] | None) -> list[Rule]:
    """Rules by id ('XR001,XR003'), minus `exclude`; XnnfitError names the known ids."""
    chosen = [n.strip().upper() for n in (names or []) if n.strip()] or list(RULES)
    dropped = {n.strip().upper() for n in (exclude or []) if n.strip()}
    unknown = [n for n in (*chosen, *dropped) if n not in RULES]
    if unknown:
        raise XnnfitError(f"unknown rule {unknown[0]!r}. Known rules: {', '.join(RULES)}.")
    return [RULES[n] for n in chosen if n not in dropped]


def _within(rule: Rule, num: Numerics, base_ref: Numerics | None, cand_ref: Numerics | None) -> tuple[bool, str]:
    if base_ref is not None and cand_ref is not None:  # quantized: judge against the float reference
        ok = cand_ref.max_abs_error <= 1.5 * base_ref.max_abs_error + 1e-6 * max(base_ref.output_scale, 1.0)
        return ok, f"error vs float model {cand_ref.max_abs_error:.3g} (before {base_ref.max_abs_error:.3g})"
    ok = num.max_rel_error <= rule.tolerance
    return ok, f"max abs error {num.max_abs_error:.3g} ({num.max_rel_error:.2g} of output scale; tolerance {rule.tolerance:g})"


def fix_content(
    content: bytes,
    specs: tuple[InputSpec, ...],
    *,
    rules: list[Rule] | None = None,
    input_shapes: dict | None = None,
    reference: bytes | None = None,
    dry_run: bool = False,
    runs: int = 30,
    seed: int = 0,
) -> FixResult:
    """Rewrite `content` with `rules`, verifying each (call it in a child process)."""
    rules = rules if rules is not None else list(RULES.values())
    ctx = RewriteContext(input_shapes=dict(input_shapes or {}))
    samples = random_inputs(tuple(_pinned(s, ctx) for s in specs), SAMPLES, seed)
    original_out = outputs(content, samples)
    ref_out = outputs(reference, samples) if reference else None
    current, current_out = content, original_out
    cpu0, parts0 = cpu_nodes(content)
    current_cpu = cpu0
    outcomes = []
    for rule in rules:
        g = Graph.from_bytes(current)
        first = rule.match(g, ctx)
        if isinstance(first, NoMatch):
            outcomes.append(RuleOutcome(rule.id, "no-match", reason=first.reason))
            continue
        count, where = 0, []
        matches = first
        failed = None
        for _ in range(MAX_ROUNDS):
            if isinstance(matches, NoMatch) or not matches:
                break
            # every match of this round, last anchor first, so earlier op indices stay valid
            for m in sorted(matches, key=lambda m: -m.anchor):
                try:
                    rule.apply(g, m, ctx)
                except Exception as exc:  # noqa: BLE001 - a failing rule is rolled back, never fatal
                    failed = f"apply failed at {m.where}: {type(exc).__name__}: {exc}"
                    break
                count += 1
                where.append(m.where)
            if failed:
                break
            g = Graph.from_bytes(g.to_bytes())
            matches = rule.match(g, ctx)
        if failed:
            outcomes.append(RuleOutcome(rule.id, "rolled-back", count, tuple(where), failed))
            continue
        if dry_run:
            outcomes.append(RuleOutcome(rule.id, "applied", count, tuple(where), "dry run: not verified"))
            continue
        candidate = g.to_bytes()
        try:
            cand_out = outputs(candidate, samples)
            cand_cpu, _ = cpu_nodes(candidate)
        except XnnfitError as exc:
            outcomes.append(RuleOutcome(rule.id, "rolled-back", count, tuple(where), f"the rewritten model does not run: {exc}"))
            continue
        num = compare(current_out, cand_out)
        base_ref = compare(ref_out, current_out) if ref_out else None
        cand_ref = compare(ref_out, cand_out) if ref_out else None
        ok, text = _within(rule, num, base_ref, cand_ref)
        if ok:
            try:
                inner, where_inner = internal_error(current, candidate, samples[0])
            except (XnnfitError, RuntimeError, ValueError) as exc:
                outcomes.append(RuleOutcome(rule.id, "rolled-back", count, tuple(where), f"the rewritten model does not run on the built-in kernels: {exc}", num))
                continue
            if inner > max(rule.tolerance, 1e-4):
                ok, text = False, f"tensor {where_inner!r} differs by {inner:.3g} of its scale"
            else:
                text += f"; shared tensors within {inner:.2g} of their scale"
        if not ok:
            outcomes.append(RuleOutcome(rule.id, "rolled-back", count, tuple(where), f"outside tolerance: {text}", num))
            continue
        if cand_cpu > current_cpu:
            outcomes.append(RuleOutcome(rule.id, "rolled-back", count, tuple(where), f"more CPU nodes ({current_cpu} -> {cand_cpu})", num))
            continue
        before, after = race(current, candidate, samples[0], runs)
        # slower only when the medians differ by the margin and the run distributions do not overlap
        if after.median_ms > before.median_ms * SLOWER_MARGIN and after.p10_ms > before.p90_ms:
            outcomes.append(
                RuleOutcome(rule.id, "rolled-back", count, tuple(where), f"slower ({before.median_ms:.3g} -> {after.median_ms:.3g} ms)", num)
            )
            continue
        outcomes.append(RuleOutcome(rule.id, "applied", count, tuple(where), text, num))
        current, current_out, current_cpu = candidate, cand_out, cand_cpu
    cpu1, parts1 = cpu_nodes(current)
    t0, t1 = race(content, current, samples[0], runs) if current is not content else (None, None)
    if t0 is None:
        t0 = t1 = race(content, content, samples[0], max(5, runs // 3))[0]
    return FixResult(
        current,
        tuple(outcomes),
        Side(cpu0, parts0, t0.median_ms),
        Side(cpu1, parts1, t1.median_ms),
        compare(original_out, current_out),
    )


def _pinned(spec: InputSpec, ctx: RewriteContext) -> InputSpec:
    shape = ctx.input_shapes.get(spec.name, spec.shape)
    shape = tuple(ctx.batch if (i == 0 and d < 0) else d for i, d in enumerate(shape))
    return dataclasses.replace(spec, shape=shape)


def rewrite_only(content: bytes, rule_ids: tuple[str, ...], ctx: RewriteContext | None = None) -> bytes:
    """Apply rules to a fixpoint without verification (for conversion recipes that include a rewrite)."""
    ctx = ctx or RewriteContext()
    g = Graph.from_bytes(content)
    for rule in select_rules(list(rule_ids), None):
        for _ in range(MAX_ROUNDS):
            matches = rule.match(g, ctx)
            if isinstance(matches, NoMatch) or not matches:
                break
            for m in sorted(matches, key=lambda m: -m.anchor):
                rule.apply(g, m, ctx)
            g = Graph.from_bytes(g.to_bytes())
    return g.to_bytes()
