"""Choosing among measured candidates, defined once for quant and optimize: the Pareto frontier and the pick.

A candidate is anything with `recipe`, `status`, `rel_error`, `median_ms`, `p10_ms`,
`p90_ms`, `partitions` and `size_bytes` (quant's rows, optimize's candidates).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import numpy as np

from xnnfit.core.policy import LATENCY_TIE
from xnnfit.core.record import NOT_IN_DICT, Record
from xnnfit.explain.quant_findings import QuantFinding
from xnnfit.runtime.timing import Stats, race


@dataclasses.dataclass(frozen=True)
class Scored(Record):
    """One candidate model as quant and optimize score it: delegation, latency, size, error against the reference."""

    recipe: str
    status: str  # 'ok' or 'failed'
    error: str | None = None
    size_bytes: int = 0
    nodes: int = 0
    cpu_nodes: int = 0
    delegated_fraction: float = 0.0
    partitions: int = 0
    median_ms: float = 0.0
    p10_ms: float = 0.0
    p90_ms: float = 0.0
    max_abs_error: float = 0.0
    rel_error: float = 0.0  # max abs error / max |float output| (measure.accuracy.compare)
    mean_rel_error: float = 0.0
    cosine: float = 1.0
    top1: float | None = None  # share of samples whose top class agrees with the reference; None unless class scores
    pareto: bool = False
    content: bytes = dataclasses.field(default=b"", repr=False, compare=False, metadata=NOT_IN_DICT)
    quantization_findings: tuple[QuantFinding, ...] = ()  # where a full-int8 candidate's error starts, and why


def pareto(rows: Sequence[Any]) -> set[str]:
    """Recipes no other row beats on latency, size and error at once."""
    ok = [r for r in rows if r.status == "ok"]

    def key(r: Any) -> tuple[float, int, float]:
        return (r.median_ms, r.size_bytes, r.rel_error)

    front = set()
    for r in ok:
        dominated = any(
            all(a <= b for a, b in zip(key(o), key(r))) and any(a < b for a, b in zip(key(o), key(r)))
            for o in ok
            if o is not r
        )
        if not dominated:
            front.add(r.recipe)
    return front


def tie_margin(row: Any) -> float:
    """How much slower than `row` still counts as equally fast: LATENCY_TIE, or half its own p10-p90 spread if wider."""
    spread = (row.p90_ms - row.p10_ms) / row.median_ms / 2 if row.median_ms else 0.0
    return max(LATENCY_TIE, spread)


def pick(rows: Sequence[Any], max_error: float) -> tuple[Any, Any]:
    """(best, fastest) of the ok rows within `max_error`, or (None, None).

    Latencies within the measured noise of the fastest count as equal; among those, fewer
    partitions, then lower error, then smaller size win.
    """
    within = [r for r in rows if r.status == "ok" and r.rel_error <= max_error]
    if not within:
        return None, None
    fastest = min(within, key=lambda r: r.median_ms)
    ties = [r for r in within if r.median_ms <= fastest.median_ms * (1 + tie_margin(fastest))]
    return min(ties, key=lambda r: (r.partitions, r.rel_error, r.size_bytes, r.median_ms)), fastest


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
