"""The rewrite engine: apply rules one at a time to a fixpoint, keep each only if the Verifier accepts it.

For each rule: apply every match until none is left, then judge the candidate against
the model before the rule (rewrite/verify.py, under the VerifyPolicy). A rule that
fails a check is rolled back with the reason.
"""

from __future__ import annotations

import dataclasses

from xnnfit.core.errors import XnnfitError
from xnnfit.core.policy import BENCH_RUNS, DEFAULT_POLICY, VerifyPolicy
from xnnfit.core.record import NOT_IN_DICT, Record
from xnnfit.measure.accuracy import Judgement, Numerics, compare
from xnnfit.model.artifact import Artifact
from xnnfit.model.inputs import DataOrigin, draw_samples
from xnnfit.rewrite.graph import Graph
from xnnfit.rewrite.rule import NoMatch, RewriteContext, Rule
from xnnfit.rewrite.rules import RULES
from xnnfit.rewrite.verify import Verifier

MAX_ROUNDS = 20  # rounds of (match everything, apply everything): rules that cascade settle in a few


@dataclasses.dataclass(frozen=True)
class RuleOutcome(Record):
    """What happened to one rule."""

    rule: str
    status: str  # 'applied', 'rolled-back', 'no-match', 'matched' (dry run: applied in the preview, not verified)
    count: int = 0
    where: tuple[str, ...] = ()
    reason: str = ""
    numerics: Numerics | None = None


@dataclasses.dataclass(frozen=True)
class Side(Record):
    """One end of the fix: delegation and latency."""

    cpu_nodes: int
    partitions: int
    median_ms: float


@dataclasses.dataclass(frozen=True)
class RewriteResult(Record):
    """The rewritten model and the evidence that it is equivalent, better delegated, and not slower."""

    content: bytes = dataclasses.field(default=b"", repr=False, compare=False, metadata=NOT_IN_DICT)
    outcomes: tuple[RuleOutcome, ...] = ()
    before: Side | None = None  # None for a dry run (nothing measured)
    after: Side | None = None
    numerics: Numerics | None = None  # fixed vs original (None when accuracy cannot be judged)
    reference: str | None = None  # what a quantized model was judged against
    reference_before: Numerics | None = None  # the original's outputs vs that reference
    reference_after: Numerics | None = None  # the fixed model's outputs vs that reference
    verified_on: DataOrigin | None = None  # the inputs every rewrite was verified on (None for a dry run)
    judgement: Judgement | None = None  # whether accuracy could be judged on the reference's outputs, why not

    @property
    def applied(self) -> tuple[RuleOutcome, ...]:
        """The rules kept."""
        return tuple(o for o in self.outcomes if o.status == "applied")


def select_rules(names: list[str] | str | None, exclude: list[str] | str | None = None) -> list[Rule]:
    """Rules by id ('XR001,XR003' or a list), minus `exclude`; XnnfitError names the known ids."""

    def ids(v) -> list[str]:
        items = v.split(",") if isinstance(v, str) else (v or [])
        return [n.strip().upper() for item in items for n in str(item).split(",") if n.strip()]

    chosen = ids(names) or list(RULES)
    dropped = set(ids(exclude))
    unknown = [n for n in (*chosen, *dropped) if n not in RULES]
    if unknown:
        raise XnnfitError(f"unknown rule {unknown[0]!r}. Known rules: {', '.join(RULES)}.")
    return [RULES[n] for n in chosen if n not in dropped]


@dataclasses.dataclass(frozen=True)
class Applied(Record):
    """One rule applied to a fixpoint: the model it made (None when nothing was applied), where, and why not."""

    content: bytes | None = dataclasses.field(default=None, repr=False, compare=False, metadata=NOT_IN_DICT)
    count: int = 0
    where: tuple[str, ...] = ()
    reason: str = ""  # why it did not match, or how applying it failed
    failed: bool = False  # a match could not be applied: the rule is rolled back, never fatal


def apply_to_fixpoint(rule: Rule, content: bytes, ctx: RewriteContext) -> Applied:
    """Every match of `rule`, round after round until none is left (MAX_ROUNDS at most)."""
    g = Graph.from_bytes(content)
    matches = rule.match(g, ctx)
    if isinstance(matches, NoMatch):
        return Applied(reason=matches.reason)
    count, where = 0, []
    for _ in range(MAX_ROUNDS):
        if isinstance(matches, NoMatch) or not matches:
            break
        # every match of this round, last anchor first, so earlier op indices stay valid
        for m in sorted(matches, key=lambda m: -m.anchor):
            try:
                rule.apply(g, m, ctx)
            except Exception as exc:  # noqa: BLE001 - a failing rule is rolled back, never fatal
                return Applied(
                    None, count, tuple(where), f"apply failed at {m.where}: {type(exc).__name__}: {exc}", True
                )
            count += 1
            where.append(m.where)
        g = Graph.from_bytes(g.to_bytes())
        matches = rule.match(g, ctx)
    return Applied(g.to_bytes(), count, tuple(where))


def fix_content(
    artifact: Artifact,
    *,
    rules: list[Rule] | None = None,
    reference: bytes | None = None,
    reference_name: str = "the float model",
    runs: int = BENCH_RUNS,
    policy: VerifyPolicy = DEFAULT_POLICY,
    seed: int = 0,
    data: str | None = None,
) -> RewriteResult:
    """Rewrite `artifact` with `rules`, verifying each (call it in a TensorFlow-free child).

    `reference` is the float model a quantized artifact is judged against (`reference_name`
    says which). Every rewrite is verified on all samples of `data` (an .npz keyed by input
    name), else on `policy.samples` seeded random ones in each input's value range.
    """
    rules = rules if rules is not None else list(RULES.values())
    ctx = RewriteContext(artifact.specs)
    samples, origin = draw_samples(artifact.specs, data, policy.samples, seed)
    verifier = Verifier(artifact.specs, samples, policy, runs, reference, reference_name)
    original = current = verifier.start(artifact.content)
    judgement = dataclasses.replace(verifier.judgement, remedy=remedy(verifier.judgement, data))
    outcomes = []
    for rule in rules:
        done = apply_to_fixpoint(rule, current.content, ctx)
        if done.content is None:
            status = "rolled-back" if done.count or done.failed else "no-match"
            outcomes.append(RuleOutcome(rule.id, status, done.count, done.where, done.reason))
            continue
        verdict = verifier.judge(rule, current, done.content)
        status = "applied" if verdict.ok and verdict.state is not None else "rolled-back"
        outcomes.append(RuleOutcome(rule.id, status, done.count, done.where, verdict.reason, verdict.numerics))
        if status == "applied":
            current = verdict.state
    if current is original:
        t0 = t1 = verifier.race(original.content, original.content, policy.min_runs)[0]
    else:
        t0, t1 = verifier.race(original.content, current.content)
    return RewriteResult(
        current.content,
        tuple(outcomes),
        Side(original.cpu_nodes, original.partitions, t0.median_ms),
        Side(current.cpu_nodes, current.partitions, t1.median_ms),
        compare(original.outputs, current.outputs) if judgement.judged else None,
        reference_name if reference else None,
        verifier.reference_errors(original),
        verifier.reference_errors(current),
        origin,
        judgement,
    )


def remedy(judgement: Judgement, data: str | None) -> str | None:
    """What to pass so fix can judge accuracy (None when it can)."""
    if judgement.judged:
        return None
    real = "" if data else "pass real inputs with --data FILE, or "
    if judgement.kind == "below-step":
        return (
            f"{real}convert it from trained weights with representative --calibration data, so its output "
            "quantization fits the outputs"
        )
    if data:
        return f"the model gives the same output for every input of {data}: use a model with trained weights"
    return f"{real}use a model with trained weights"


def rewrite_only(content: bytes, rule_ids: tuple[str, ...], ctx: RewriteContext | None = None) -> bytes:
    """Apply rules to a fixpoint without verification (for conversion recipes that include a rewrite)."""
    ctx = ctx or RewriteContext()
    for rule in select_rules(list(rule_ids)):
        done = apply_to_fixpoint(rule, content, ctx)
        if done.failed:
            raise XnnfitError(
                f"rewrite {rule.id} failed while converting: {done.reason}. Use the plain recipe instead."
            )
        content = done.content if done.content is not None else content
    return content
