"""profile_stage(): time per partition, per CPU node and per Keras layer, by timing cut-out pieces.

LiteRT exposes no per-op profiler to Python, so the model is cut into one standalone
model per XNNPACK partition and one per CPU node (tflite/writer.py). Each piece is fed
the real intermediate tensors of a full run (captured with preserve_all_tensors on the
built-in kernels) and timed in the same interleaved loop as the whole model, so the
pieces can be checked to add up to the whole.
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

import numpy as np

from xnnfit.core.policy import PROFILE_RUNS, PROFILE_WARMUP, SUM_TOLERANCE
from xnnfit.explain.costs import LayerCost, PieceTiming, Profile
from xnnfit.explain.diagnosis import CheckResult, Diagnosis, diagnose
from xnnfit.explain.verdicts import NodeVerdict
from xnnfit.model.artifact import Artifact
from xnnfit.model.inputs import samples_for
from xnnfit.model.specs import InputSpec
from xnnfit.observe.delegation import Partition
from xnnfit.runtime.interpreter import build_interpreter, capture, feed, feed_values, invoke, tensor_value
from xnnfit.runtime.targets import Target, inputs_in_order, time_configs
from xnnfit.runtime.timing import NOT_TIMED, Stats, interleaved
from xnnfit.tflite.graph import ModelGraph, read_model
from xnnfit.tflite.writer import cut, parse

CONTROL_FLOW = frozenset({"WHILE", "IF", "CALL_ONCE"})
# A piece is fed the values its tensors held in a run of the whole model: when the runtime refuses them, the file
# declares a type or shape for a tensor that differs from what its kernels compute.
_PIECE_HINT = (
    "The model's declared tensor types or shapes differ from what its kernels compute, "
    "so it cannot be timed piece by piece: re-export it, or time it whole with xnnfit bench"
)


def piece_backend(kind: str, ops: list[str]) -> bool:
    """Whether a piece runs on XNNPACK: partitions do, and so does a control-flow node (its bodies are delegated)."""
    return kind == "xnnpack" or any(op in CONTROL_FLOW for op in ops)


def _piece_runner(content: bytes, values: list[np.ndarray], threads: int, xnnpack: bool) -> Any:
    # A CPU piece runs on the built-in kernels as in the whole model: alone, XNNPACK might
    # claim a node it refused in context (a weight DEQUANTIZE whose consumer is on CPU).
    # A control-flow node is the exception: XNNPACK never takes the node itself but does
    # take its body subgraphs, which the piece carries, so it runs with XNNPACK as in the model.
    it = build_interpreter(
        content, shapes=[v.shape for v in values], xnnpack=xnnpack, threads=threads, what="a profile piece"
    )
    feed_values(it, values, "a profile piece", _PIECE_HINT)
    invoke(it, "a profile piece")
    return it


def profile_stage(
    artifact: Artifact,
    *,
    threads: int = 1,
    runs: int = PROFILE_RUNS,
    warmup: int = PROFILE_WARMUP,
    data: str | None = None,
    seed: int = 0,
    target: Target | None = None,
) -> Diagnosis:
    """diagnose() plus the time of every partition and CPU node, on `target` if given.

    Call it in a TensorFlow-free child.
    """
    sample = samples_for(artifact.specs, data, 1, seed)[0]
    diag = diagnose(artifact, target=target)
    if diag.not_loaded:
        return diag
    profile = profile_content(
        artifact.content, artifact.specs, diag.nodes, diag.partitions, sample, threads, runs, warmup, target
    )
    return dataclasses.replace(diag, profile=profile)


def profile_content(
    content: bytes,
    specs: tuple[InputSpec, ...],
    nodes: tuple[NodeVerdict, ...],
    partitions: tuple[Partition, ...],
    sample: dict[str, np.ndarray],
    threads: int = 1,
    runs: int = PROFILE_RUNS,
    warmup: int = PROFILE_WARMUP,
    target: Target | None = None,
) -> Profile:
    """Time every partition and CPU node of `content` on `sample` (in `target`'s child, if given).

    The pieces' inputs are captured on the installed runtime's built-in kernels in every
    case: old runtimes turn XNNPACK off altogether when asked to preserve every tensor.
    """
    reference = capture(content, sample, specs)
    model = parse(content)
    content_graph = read_model(content)
    label = {n.index: n.op for n in nodes if n.subgraph == 0}
    jobs: dict[Any, tuple[bytes, list[np.ndarray], bool]] = {"whole": (content, inputs_in_order(content, sample), True)}
    plans: list[tuple[str, int, tuple[int, ...]]] = []
    for p in partitions:
        if p.delegated:
            plans.append(("xnnpack", p.index, p.nodes))
        else:
            plans.extend(("cpu", p.index, (i,)) for i in p.nodes)
    weights_only = set()
    for key, (kind, _part, members) in enumerate(plans):
        if kind == "xnnpack" and all(_is_weight_dequantize(content_graph, i) for i in members):
            weights_only.add(key)  # XNNPACK unpacks these weights once, at load time: no per-run cost
            continue
        piece = cut(model, members)
        jobs[key] = (
            piece.content,
            [tensor_value(reference, t) for t in piece.inputs],
            piece_backend(kind, [label.get(i, "") for i in members]),
        )
    if target is not None and not target.in_process:
        samples, _ = time_configs(
            target, [(c, v, x, threads) for c, v, x in jobs.values()], runs, warmup, "timing the profile pieces"
        )
        stats = {k: Stats.of(v) for k, v in zip(jobs, samples)}
    else:
        whole = build_interpreter(content, specs=specs, xnnpack=True, threads=threads)
        feed(whole, sample)
        invoke(whole, specs=specs)
        runners: dict[Any, Any] = {"whole": whole.invoke}
        runners.update({k: _piece_runner(c, v, threads, x).invoke for k, (c, v, x) in jobs.items() if k != "whole"})
        stats = interleaved(runners, runs, warmup)
    pieces = tuple(
        PieceTiming(
            kind,
            part,
            members,
            tuple(label.get(i, "?") for i in members),
            NOT_TIMED if key in weights_only else stats[key],
        )
        for key, (kind, part, members) in enumerate(plans)
    )
    result = Profile(stats["whole"], pieces, _layer_costs(pieces, nodes), threads)
    warnings = []
    if abs(result.sum_ratio - 1.0) > SUM_TOLERANCE and abs(result.adjusted_sum_ratio - 1.0) > SUM_TOLERANCE:
        warnings.append(
            f"the pieces, timed alone, add up to {result.sum_ratio:.2f}x the whole model "
            f"({result.adjusted_sum_ratio:.2f}x without "
            f"the extra invokes): per-piece shares are approximate; use more --runs on a quieter machine"
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


@dataclasses.dataclass(frozen=True)
class ProfileResult(CheckResult):
    """profile() of one model: each recipe's Diagnosis carries its Profile."""

    RESULT: ClassVar[str] = "profile"
