"""Where the time goes: timed pieces of a model and the CPU-kernel cost per Keras layer (profiling.py measures them)."""

from __future__ import annotations

import dataclasses
from collections import Counter

from xnnfit.record import Record
from xnnfit.timing import Stats


@dataclasses.dataclass(frozen=True)
class PieceTiming(Record):
    """One timed piece: a whole XNNPACK partition, or one node on CPU kernels."""

    kind: str  # 'xnnpack' or 'cpu'
    partition: int
    nodes: tuple[int, ...]
    ops: tuple[str, ...]
    stats: Stats

    @property
    def ms(self) -> float:
        """Median milliseconds."""
        return self.stats.median_ms

    def _extra(self) -> dict:
        return {"ms": self.ms}


@dataclasses.dataclass(frozen=True)
class LayerCost(Record):
    """Time a Keras layer's CPU nodes cost."""

    layer: str
    cpu_ms: float
    ops: tuple[str, ...]
    causes: tuple[str, ...]

    def line(self, total_ms: float) -> str:
        """'act0 (LESS, SELECT ×2): 0.61 ms of 6.5 ms (9%)'."""
        counts = Counter(self.ops)
        ops = ", ".join(f"{o} ×{n}" if n > 1 else o for o, n in counts.items())
        share = self.cpu_ms / total_ms if total_ms else 0.0
        return f"{self.layer} ({ops}): {self.cpu_ms:.3g} ms of {total_ms:.3g} ms ({share:.0%})"


@dataclasses.dataclass(frozen=True)
class Profile(Record):
    """Pieces, per-layer CPU cost, and a check that the pieces add up to the whole."""

    total: Stats  # the whole model, XNNPACK on
    pieces: tuple[PieceTiming, ...]
    layers: tuple[LayerCost, ...]  # largest CPU cost first
    threads: int = 1
    warnings: tuple[str, ...] = ()

    @property
    def sum_ms(self) -> float:
        """Sum of the pieces' medians."""
        return sum(p.ms for p in self.pieces)

    @property
    def sum_ratio(self) -> float:
        """Sum of pieces / whole-model median (1.0 = they add up)."""
        return self.sum_ms / self.total.median_ms if self.total.median_ms else 0.0

    @property
    def invoke_overhead_ms(self) -> float:
        """Estimated fixed cost of one invoke: the fastest run of the cheapest timed piece (an upper bound)."""
        return min((p.stats.min_ms for p in self.pieces if p.stats.runs), default=0.0)

    @property
    def adjusted_sum_ratio(self) -> float:
        """Sum of pieces minus the extra invokes they cost, over the whole-model median."""
        extra = max(0, sum(1 for p in self.pieces if p.stats.runs) - 1) * self.invoke_overhead_ms
        return (self.sum_ms - extra) / self.total.median_ms if self.total.median_ms else 0.0

    @property
    def cpu_ms(self) -> float:
        """Time of the pieces on CPU kernels."""
        return sum(p.ms for p in self.pieces if p.kind == "cpu")

    @property
    def cpu_share(self) -> float:
        """Share of the pieces' time spent on CPU kernels."""
        return self.cpu_ms / self.sum_ms if self.sum_ms else 0.0

    def _extra(self) -> dict:
        return {
            "total_ms": self.total.median_ms,
            "sum_ms": self.sum_ms,
            "sum_ratio": self.sum_ratio,
            "invoke_overhead_ms": self.invoke_overhead_ms,
            "adjusted_sum_ratio": self.adjusted_sum_ratio,
            "cpu_ms": self.cpu_ms,
            "cpu_share": self.cpu_share,
        }
