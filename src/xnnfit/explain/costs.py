"""Where the time goes: timed pieces of a model and the CPU-kernel cost per Keras layer (measure/profile times them)."""

from __future__ import annotations

import dataclasses
from collections import Counter

from xnnfit.core.record import Record
from xnnfit.runtime.timing import Stats


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

    @property
    def ops_text(self) -> str:
        """'LESS, SELECT ×2'."""
        return ", ".join(f"{o} ×{n}" if n > 1 else o for o, n in Counter(self.ops).items())


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
        """Share of the whole model's time spent on CPU kernels (see `share`)."""
        return self.share(self.cpu_ms)

    def share(self, ms: float) -> float:
        """A piece time as a share of the whole model: the whole is split in proportion to the pieces timed alone.

        Pieces timed alone carry an invoke each and add up to a little more or less than
        the whole; splitting the whole in their proportions keeps every share of one base,
        adding up to 100%.
        """
        return ms / self.sum_ms if self.sum_ms else 0.0

    def attributed_ms(self, ms: float) -> float:
        """The part of the whole model's median time `ms` (a piece time) stands for."""
        return self.share(ms) * self.total.median_ms

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
