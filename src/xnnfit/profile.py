"""profile(): time per partition, per CPU node and per Keras layer, by timing cut-out pieces.

LiteRT exposes no per-op profiler to Python, so the model is cut into one standalone
model per XNNPACK partition and one per CPU node (tflite/writer.py). Each piece is fed
the real intermediate tensors of a full run (captured with preserve_all_tensors on the
built-in kernels) and timed in the same interleaved loop as the whole model, so the
pieces can be checked to add up to the whole.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from typing import Any

import numpy as np

from xnnfit.bench import check_sample, feed, feed_values
from xnnfit.delegation import Partition
from xnnfit.explain import NodeVerdict
from xnnfit.inputs import InputSpec, random_inputs
from xnnfit.runtime import build_interpreter
from xnnfit.timing import Stats, interleaved
from xnnfit.tflite.graph import ModelGraph, read_model
from xnnfit.tflite.writer import cut, parse

SUM_TOLERANCE = 0.15  # pieces may differ from the whole by this share before we flag it


@dataclasses.dataclass(frozen=True)
class PieceTiming:
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


@dataclasses.dataclass(frozen=True)
class LayerCost:
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
class ProfileResult:
    """Where the time goes: pieces, per-layer CPU cost, and a check that pieces add up."""

    recipe: str
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


def capture(content: bytes, sample: dict[str, np.ndarray]) -> Any:
    """An interpreter on the built-in kernels after one run, holding every intermediate tensor."""
    it = build_interpreter(content, xnnpack=False, preserve_all_tensors=True)
    feed(it, sample)
    it.invoke()
    return it


def _piece_runner(content: bytes, values: list[np.ndarray], threads: int, xnnpack: bool) -> Any:
    # A CPU piece runs on the built-in kernels as in the whole model: alone, XNNPACK might
    # claim a node it refused in context (a weight DEQUANTIZE whose consumer is on CPU).
    it = build_interpreter(content, xnnpack=xnnpack, threads=threads, what="a profile piece")
    feed_values(it, values)
    it.invoke()
    return it


def profile_content(
    content: bytes,
    recipe: str,
    specs: tuple[InputSpec, ...],
    nodes: tuple[NodeVerdict, ...],
    partitions: tuple[Partition, ...],
    *,
    threads: int = 1,
    runs: int = 20,
    warmup: int = 3,
    sample: dict[str, np.ndarray] | None = None,
    seed: int = 0,
) -> ProfileResult:
    """Time every partition and CPU node of `content` (call it in a child process)."""
    sample = sample or random_inputs(specs, 1, seed)[0]
    check_sample(sample, specs)
    reference = capture(content, sample)
    model = parse(content)
    content_graph = read_model(content)
    whole = build_interpreter(content, xnnpack=True, threads=threads)
    feed(whole, sample)
    whole.invoke()
    label = {n.index: n.op for n in nodes if n.subgraph == 0}
    plans: list[tuple[str, int, tuple[int, ...]]] = []
    for p in partitions:
        if p.delegated:
            plans.append(("xnnpack", p.index, p.nodes))
        else:
            plans.extend(("cpu", p.index, (i,)) for i in p.nodes)
    runners: dict[Any, Any] = {"whole": whole.invoke}
    weights_only = set()
    for key, (kind, part, members) in enumerate(plans):
        if kind == "xnnpack" and all(_is_weight_dequantize(content_graph, i) for i in members):
            weights_only.add(key)  # XNNPACK unpacks these weights once, at load time: no per-run cost
            continue
        piece = cut(model, members)
        values = [reference.get_tensor(t) for t in piece.inputs]
        runners[key] = _piece_runner(piece.content, values, threads, kind == "xnnpack").invoke
    stats = interleaved(runners, runs, warmup)
    free = Stats(0.0, 0.0, 0.0, 0.0, 0)
    pieces = tuple(
        PieceTiming(kind, part, members, tuple(label.get(i, "?") for i in members), free if key in weights_only else stats[key])
        for key, (kind, part, members) in enumerate(plans)
    )
    result = ProfileResult(recipe, stats["whole"], pieces, _layer_costs(pieces, nodes), threads)
    warnings = []
    if abs(result.sum_ratio - 1.0) > SUM_TOLERANCE and abs(result.adjusted_sum_ratio - 1.0) > SUM_TOLERANCE:
        warnings.append(
            f"the pieces add up to {result.sum_ratio:.2f}x the whole model ({result.adjusted_sum_ratio:.2f}x without the "
            f"extra invokes): per-piece figures are approximate; use more --runs on a quieter machine"
        )
    return dataclasses.replace(result, warnings=tuple(warnings))


def _is_weight_dequantize(graph: ModelGraph, index: int) -> bool:
    op = graph.primary.ops[index]
    return op.op in ("DEQUANTIZE", "DENSIFY") and all(graph.primary.tensors[t].constant for t in op.inputs if t >= 0)


def _layer_costs(pieces: tuple[PieceTiming, ...], nodes: tuple[NodeVerdict, ...]) -> tuple[LayerCost, ...]:
    by_index = {n.index: n for n in nodes if n.subgraph == 0}
    acc: dict[str, list] = {}
    for p in pieces:
        if p.kind != "cpu":
            continue
        n = by_index.get(p.nodes[0])
        layer = (n.layer if n else None) or "(unmapped)"
        entry = acc.setdefault(layer, [0.0, [], set()])
        entry[0] += p.ms
        entry[1].extend(p.ops)
        entry[2].update(n.causes if n else ())
    costs = [LayerCost(layer, ms, tuple(ops), tuple(sorted(causes))) for layer, (ms, ops, causes) in acc.items()]
    return tuple(sorted(costs, key=lambda c: -c.cpu_ms))
