"""Choosing among measured candidates, defined once for quant and optimize: the Pareto frontier and the pick.

A candidate is a `Scored` (quant's rows, optimize's candidates). The budget says what
"accurate enough" means (`Budget`: points of top-1 against labels, or the output error
against the float reference); `pick` applies it and names the rule that decided.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import numpy as np

from xnnfit.core import fmt
from xnnfit.core.errors import InputDataError
from xnnfit.core.policy import DEFAULT_MAX_ACCURACY_DROP, DEFAULT_MAX_ERROR, LATENCY_TIE
from xnnfit.core.record import NOT_IN_DICT, Record
from xnnfit.explain.quant_findings import QuantFinding
from xnnfit.runtime.timing import Stats, race


@dataclasses.dataclass(frozen=True)
class Scored(Record):
    """One candidate model as quant and optimize score it: delegation, latency, size, error against the reference.

    A failed candidate has its `error` and no figures (None in JSON), never zeros that read as results.
    """

    recipe: str
    status: str  # 'ok' or 'failed'
    error: str | None = None
    size_bytes: int | None = None
    nodes: int | None = None
    cpu_nodes: int | None = None
    delegated_fraction: float | None = None
    partitions: int | None = None
    median_ms: float | None = None
    p10_ms: float | None = None
    p90_ms: float | None = None
    max_abs_error: float | None = None
    rel_error: float | None = None  # max abs error / max |float output| (measure.accuracy.compare)
    mean_rel_error: float | None = None
    cosine: float | None = None
    top1: float | None = None  # share of samples whose top class agrees with the reference; None unless class scores
    accuracy: float | None = None  # top-1 against the labels (0-1); None without class labels
    mae: float | None = None  # against float target labels
    rmse: float | None = None
    not_judged: str | None = None  # why this candidate's error means nothing (its output step exceeds the reference)
    same_as: str | None = None  # the same bytes as this candidate (or optimize's baseline): raced once, figures shared
    pareto: bool = False
    content: bytes = dataclasses.field(default=b"", repr=False, compare=False, metadata=NOT_IN_DICT)
    quantization_findings: tuple[QuantFinding, ...] = ()  # where a full-int8 candidate's error starts, and why

    @property
    def ok(self) -> bool:
        """True when the candidate ran and was measured."""
        return self.status == "ok"


@dataclasses.dataclass(frozen=True)
class Budget(Record):
    """How much accuracy a candidate may lose, and whether it can be judged at all (JSON: `budget`)."""

    max_error: float | None  # share of the float reference's output scale
    max_accuracy_drop: float | None  # top-1 points below the reference's accuracy on the labels
    reference_accuracy: float | None = None  # the fp32 conversion's top-1 on the labels
    judged: bool = True  # False: accuracy cannot be judged (why in `not_judged`), the choice rests on speed
    not_judged: str | None = None

    def within(self, row: Any) -> bool:
        """True when `row` keeps to every part of the budget (always, when accuracy cannot be judged)."""
        if not self.judged:
            return True
        if row.not_judged:
            return False
        if self.max_error is not None and not row.rel_error <= self.max_error:
            return False
        return self.max_accuracy_drop is None or self.drop(row) <= self.max_accuracy_drop + 1e-9

    def drop(self, row: Any) -> float:
        """Top-1 points `row` loses against the reference (negative: it gains)."""
        if row.accuracy is None or self.reference_accuracy is None:
            return float("inf")
        return (self.reference_accuracy - row.accuracy) * 100

    def loss(self, row: Any) -> float:
        """The error this budget judges by: accuracy points lost with labels, else the relative output error."""
        return self.drop(row) if self.max_accuracy_drop is not None else row.rel_error

    def describe(self) -> str:
        """'top-1 at most 1 point below fp32's 98.7%' / 'error <= 5% of the output scale'."""
        parts = []
        if self.max_accuracy_drop is not None:
            ref = f" ({self.reference_accuracy:.1%})" if self.reference_accuracy is not None else ""
            parts.append(f"top-1 at most {_points(self.max_accuracy_drop)} below the fp32 conversion's{ref}")
        if self.max_error is not None:
            parts.append(f"error <= {self.max_error:.1%} of the float output scale")
        return " and ".join(parts)


def budget_for(
    max_error: float | None, max_accuracy_drop: float | None, *, class_labels: bool, reference_accuracy: float | None
) -> Budget:
    """The budget from what the user passed: with class labels, accuracy points by default; else output error."""
    if max_error is None and max_accuracy_drop is None:
        if class_labels:
            max_accuracy_drop = DEFAULT_MAX_ACCURACY_DROP
        else:
            max_error = DEFAULT_MAX_ERROR
    if max_accuracy_drop is not None and not class_labels:
        raise InputDataError(
            f"--max-accuracy-drop {max_accuracy_drop:g} needs class labels to measure top-1 on. Put integer labels "
            "in the --eval .npz as 'labels' (or pass --labels FILE), or use --max-error."
        )
    return Budget(max_error, max_accuracy_drop, reference_accuracy if class_labels else None)


def same_bytes(contents: dict[str, bytes], earlier: dict[bytes, str] | None = None) -> dict[str, str]:
    """Names whose bytes equal an earlier name's (or one in `earlier`): one model, raced once under the first name."""
    first = dict(earlier or {})
    same = {}
    for name, content in contents.items():
        if content in first:
            same[name] = first[content]
        else:
            first[content] = name
    return same


def pareto(rows: Sequence[Any], budget: Budget) -> set[str]:
    """Candidates that run and that no other beats on both latency and error (equal on both: the smaller one).

    None when accuracy cannot be judged: a frontier over meaningless errors would mislead.
    """
    if not budget.judged:
        return set()
    names = {r.recipe for r in rows}  # a row with another row's bytes is that row: it gets no mark of its own
    ok = [r for r in rows if r.ok and not r.not_judged and r.same_as not in names]

    def key(r: Any) -> tuple[float, float]:
        return (r.median_ms, budget.loss(r))

    def dominates(o: Any, r: Any) -> bool:
        a, b = key(o), key(r)
        if a == b:
            return o.size_bytes < r.size_bytes
        return all(x <= y for x, y in zip(a, b))

    return {r.recipe for r in ok if not any(dominates(o, r) for o in ok if o is not r)}


def tie_margin(row: Any) -> float:
    """How much slower than `row` still counts as equally fast: LATENCY_TIE, or half its own p10-p90 spread if wider."""
    spread = (row.p90_ms - row.p10_ms) / row.median_ms / 2 if row.median_ms else 0.0
    return max(LATENCY_TIE, spread)


@dataclasses.dataclass(frozen=True)
class Choice:
    """The pick and the rule that decided it, in words: what quant and optimize print as the reason."""

    best: Any
    fastest: Any
    rule: str  # 'fastest within the budget (…)' or why nothing was chosen
    tie: str = ""  # which tie-break decided among candidates equally fast within the noise, with the figures


TIE_BREAKS = (
    ("fewer partitions", lambda r: r.partitions, lambda v: str(v)),
    ("a smaller size", lambda r: r.size_bytes, lambda v: fmt.size(v)),
    ("a lower median", lambda r: r.median_ms, lambda v: fmt.ms(v)),
)  # among candidates equally fast within the measured noise, in this order (README: Choosing a quantization)


def pick(rows: Sequence[Any], budget: Budget) -> Choice:
    """The fastest candidate within the budget; latencies within the measured noise of the fastest count as equal.

    A candidate with the same bytes as another (`same_as`) is that candidate, not a rival.
    Among ties: fewer partitions (fewer hand-offs between XNNPACK and the CPU kernels),
    then a smaller size, then the lower median.
    """
    names = {r.recipe for r in rows}
    within = [r for r in rows if r.ok and budget.within(r) and r.same_as not in names]
    if not within:
        closest = min((budget.loss(r) for r in rows if r.ok), default=None)
        shown = "" if closest is None else f"; the closest loses {_loss(budget, closest)}"
        return Choice(None, None, f"no candidate keeps to the budget ({budget.describe()}){shown}")
    fastest = min(within, key=lambda r: r.median_ms)
    margin = tie_margin(fastest)
    ties = [r for r in within if r.median_ms <= fastest.median_ms * (1 + margin)]
    best = min(ties, key=lambda r: tuple(k(r) for _, k, _ in TIE_BREAKS))
    rule = "fastest within the budget" if budget.judged else "fastest (accuracy cannot be judged, so on speed alone)"
    tie = ""
    if len(ties) > 1:
        others = [r for r in ties if r is not best]
        for what, key, show in TIE_BREAKS:
            if all(key(best) < key(o) for o in others):
                runner = min(others, key=key)
                tie = (
                    f"{', '.join(o.recipe for o in others)} as fast within the measured noise "
                    f"(±{margin:.0%} of {fmt.ms(fastest.median_ms)}); chosen for {what} "
                    f"({show(key(best))} vs {show(key(runner))})"
                )
                break
        else:
            tie = f"{', '.join(o.recipe for o in others)} as fast within the measured noise; chosen as listed first"
    return Choice(best, fastest, rule, tie)


def _loss(budget: Budget, value: float) -> str:
    return f"{value:.1f} top-1 points" if budget.max_accuracy_drop is not None else f"{fmt.rel(value)} of the scale"


@dataclasses.dataclass(frozen=True)
class Race(Record):
    """Latencies of several models timed together, interleaved, in one child: the fair way to compare them."""

    stats: dict[str, Stats]

    def __getitem__(self, name: str) -> Stats:
        return self.stats[name]


def race_stage(
    contents: dict[str, bytes], sample: dict[str, np.ndarray], specs: Sequence[Any], runs: int, threads: int = 1
) -> Race:
    """Every model timed on `sample` with XNNPACK on at `threads`, interleaved (run it in a TensorFlow-free child)."""
    return Race(race(contents, sample, runs, specs=specs, threads=threads))


@dataclasses.dataclass(frozen=True)
class Measured(Record):
    """One candidate measured in its child: delegation, the CPU kernels' share of its time, its eval outputs."""

    nodes: int
    cpu_nodes: int
    partitions: int
    delegated_fraction: float
    cpu_share: float = 0.0
    outputs: tuple = dataclasses.field(default=(), repr=False, compare=False, metadata=NOT_IN_DICT)  # per sample


def _points(value: float) -> str:
    return f"{value:g} point" if value == 1 else f"{value:g} points"
