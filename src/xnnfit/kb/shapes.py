"""Which tensors TFLite allocates dynamically: shapes computed at run time, and those it knows before allocation."""

from __future__ import annotations

from typing import Any

from xnnfit.kb.tables import PARAM_INPUTS

# Inputs that decide an op's output shape: computed at run time, they make the output a dynamic tensor. The
# parameter inputs of slicing, padding, reshaping and resizing do (tables.PARAM_INPUTS), and these ops' too.
SHAPE_INPUTS: dict[str, tuple[int, ...]] = {
    **{op: PARAM_INPUTS[op] for op in ("RESHAPE", "SLICE", "STRIDED_SLICE", "PAD", "RESIZE_BILINEAR")},
    **dict.fromkeys(("PADV2", "MIRROR_PAD", "TILE", "BROADCAST_TO", "RESIZE_NEAREST_NEIGHBOR"), (1,)),
    "FILL": (0,),
    "RANGE": (0, 1, 2),
}
# Ops whose output TFLite knows before allocation when their inputs are known (constants, or SHAPE of a tensor):
# measured on tflite-runtime 2.14 (kb/versions.json key graph:prepare-time-shape), a reshape to
# concat([tf.shape(x)[:1], [16]]) stays static there, one through GATHER, REDUCE_PROD or PACK of a shape does not.
PREPARE_TIME_OPS = frozenset({"SHAPE", "STRIDED_SLICE", "CONCATENATION"})
_DYNAMIC: dict[
    int, tuple[object, bool]
] = {}  # id(subgraph) -> (subgraph, has a dynamic tensor); the reference keeps the id unique
GRAPH_DYNAMIC = "graph:dynamic-tensors"  # kb/versions.json key: a delegatable op in a graph with a dynamic tensor
GRAPH_PREPARE_TIME = "graph:prepare-time-shape"  # the same op beside a reshape whose shape is known before allocation


def _known(sub: Any) -> tuple[dict[int, Any], dict[int, bool]]:
    return {t: op for op in sub.ops for t in op.outputs if t >= 0}, {}


def known_before_allocation(sub: Any, tensor: int, _memo: tuple[dict, dict] | None = None) -> bool:
    """True for a constant, a graph input (resized before allocation) or a value PREPARE_TIME_OPS compute from them."""
    writer, known = _memo or _known(sub)
    if tensor < 0 or tensor not in writer:
        return True
    if tensor not in known:
        known[tensor] = False  # a cycle guard; set for real below
        op = writer[tensor]
        known[tensor] = op.op in PREPARE_TIME_OPS and (
            op.op == "SHAPE" or all(known_before_allocation(sub, i, (writer, known)) for i in op.inputs)
        )
    return known[tensor]


def has_dynamic_tensor(sub: Any) -> bool:
    """True when an op's output shape is decided by a tensor computed at run time (TFLite allocates it dynamically)."""
    hit = _DYNAMIC.get(id(sub))
    if hit is None or hit[0] is not sub:
        memo = _known(sub)
        found = any(
            not known_before_allocation(sub, op.inputs[p], memo)
            for op in sub.ops
            for p in SHAPE_INPUTS.get(op.op, ())
            if p < len(op.inputs)
        )
        if len(_DYNAMIC) > 64:
            _DYNAMIC.clear()
        hit = _DYNAMIC[id(sub)] = (sub, found)
    return bool(hit[1])
