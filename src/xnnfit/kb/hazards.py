"""Hazards: nodes XNNPACK takes and then computes wrong — error-level findings, each proven by a probe.

A cause (kb/ops.py...) explains a node that falls back; a hazard is worse: the node is
delegated, the model runs, and the outputs are not the model's. `detect()` lists the
findings of a graph at its run shapes; tests/kb/test_hazards.py runs every probe on the
installed runtime (delegated, and outputs off the built-in kernels' by more than
PROBE_ERROR) and its control (same model without the hazard: outputs equal).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from xnnfit.core.record import NOT_IN_DICT, Record
from xnnfit.kb import composite
from xnnfit.tflite.graph import ModelGraph, OpInfo, SubgraphInfo

if TYPE_CHECKING:
    from xnnfit.model.specs import InputSpec

ERROR = "error"
PROBE_ERROR = (
    0.05  # a probe's XNNPACK outputs must be off the built-in kernels' by more than this share of the output scale
)


@dataclasses.dataclass(frozen=True)
class Finding(Record):
    """One hazard on one node: what is wrong and what to do."""

    hazard: str
    severity: str
    node: int
    op: str
    message: str
    rewrites: tuple[str, ...] = ()


@dataclasses.dataclass(frozen=True)
class HazardProbe:
    """A model showing the hazard (`holds`) or the same model without it (control); `what` it is, in words."""

    holds: bool
    what: str
    build: Callable[[], bytes] = dataclasses.field(compare=False)


@dataclasses.dataclass(frozen=True)
class Hazard:
    """A delegated node the runtime computes wrong: stable id, the test, and the way out."""

    id: str
    title: str
    why: str
    fix: str
    rewrites: tuple[str, ...]
    test: Callable[[SubgraphInfo, OpInfo, Sequence[InputSpec]], str | None] = dataclasses.field(
        compare=False, metadata=NOT_IN_DICT
    )
    probes: tuple[HazardProbe, ...] = ()
    severity: str = ERROR


def _sdpa(op: OpInfo) -> bool:
    name = op.options.get("name", b"")
    return (
        op.op == "STABLEHLO_COMPOSITE" and (name.decode() if isinstance(name, bytes) else str(name)) == composite.SDPA
    )


def _wide_scale(sub: SubgraphInfo, op: OpInfo, specs: Sequence[InputSpec]) -> str | None:
    if not _sdpa(op):
        return None
    data = op.options.get("compositeAttributes")
    raw = bytes(bytearray(data)) if data is not None else b""
    values = composite.read_attributes(raw)
    floats = {k: v for k, v in values.items() if k in composite.FLOAT_ATTRIBUTES}
    width = composite.slot_width(raw)
    if not floats or width <= 4:
        return None
    shown = ", ".join(f"{k}={v:g}" for k, v in sorted(floats.items()))
    return (
        f"its attributes ({shown}) sit in {width}-byte flexbuffer slots; XNNPACK reads a 4-byte "
        "float there, so the delegated "
        f"attention computes with another {'/'.join(sorted(floats))} and its outputs are wrong "
        "(the built-in kernel is right)"
    )


def _mqa_batch(sub: SubgraphInfo, op: OpInfo, specs: Sequence[InputSpec]) -> str | None:
    if not _sdpa(op) or len(op.inputs) < 3:
        return None
    q, k = sub.tensors[op.inputs[0]], sub.tensors[op.inputs[1]]
    if len(q.shape) != 4 or len(k.shape) != 4:
        return None
    batch = _run_batch(q, specs)
    if k.shape[2] != 1 or batch <= 1:
        return None
    return (
        f"k/v have one head (q has {q.shape[2]}) at batch {batch}: XNNPACK takes the attention "
        "and computes every batch "
        f"element wrong (batch 1, or k/v with 2 or more heads, is right)"
    )


def _run_batch(q, specs: Sequence[InputSpec]) -> int:
    """The batch the attention runs at: the tensor's own, or the pinned batch of a dynamic one."""
    if q.shape_signature and q.shape_signature[0] < 0:
        return max((s.run_shape[0] for s in specs if s.run_shape), default=1)
    return int(q.shape[0])


def _attention(batch: int, kv_heads: int) -> bytes:
    return composite.attention_model(batch=batch, heads=4, kv_heads=kv_heads)


HAZARDS: dict[str, Hazard] = {
    h.id: h
    for h in (
        Hazard(
            id="XNN040",
            title="attention composite attributes in 8-byte slots",
            why="The fused attention reads `scale` and `logit_cap` as 4-byte floats; a flexbuffer map "
            "with any 8-byte value "
            "(Python's flexbuffers writes one for every float float32 cannot hold exactly, e.g. 0.1) "
            "stores all of them in 8 bytes.",
            fix="`xnnfit fix` (XR015) rewrites the attributes into 4-byte slots; when writing them, use "
            "flexbuffers Builder.Float(value, byte_width=4).",
            rewrites=("XR015",),
            test=_wide_scale,
            probes=(
                HazardProbe(True, "attention, scale=0.1 in 8-byte slots", lambda: composite.attention_model(scale=0.1)),
                HazardProbe(
                    False, "the same in 4-byte slots", lambda: composite.attention_model(scale=0.1, byte_width=4)
                ),
            ),
        ),
        Hazard(
            id="XNN041",
            title="single-head k/v attention at batch > 1",
            why="The fused attention mis-strides k/v with one head (multi-query attention) when the "
            "batch is larger than 1.",
            fix="Run the model at batch 1 (loop over the batch in the app), or give k/v at least 2 "
            "heads. No rewrite rule does this yet.",
            rewrites=(),
            test=_mqa_batch,
            probes=(
                HazardProbe(True, "4 heads, k/v 1 head, batch 2", lambda: _attention(batch=2, kv_heads=1)),
                HazardProbe(False, "the same at batch 1", lambda: _attention(batch=1, kv_heads=1)),
                HazardProbe(False, "the same with k/v of 2 heads", lambda: _attention(batch=2, kv_heads=2)),
            ),
        ),
    )
}


def detect(graph: ModelGraph, specs: Sequence[InputSpec] = ()) -> tuple[Finding, ...]:
    """Every hazard on the primary subgraph's nodes."""
    sub = graph.primary
    out = []
    for op in sub.ops:
        for h in HAZARDS.values():
            message = h.test(sub, op, specs)
            if message:
                out.append(Finding(h.id, h.severity, op.index, op.label, f"{h.title}: {message}. {h.fix}", h.rewrites))
    return tuple(out)
