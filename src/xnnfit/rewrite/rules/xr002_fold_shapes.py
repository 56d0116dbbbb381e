"""XR002: fold everything that does not depend on input data into constants, once input shapes are static.

The pinned input shapes (batch 1 unless --input-shape says otherwise) are given to the
real runtime, which infers every tensor's shape and computes every value that depends
only on shapes and constants: shape plumbing (SHAPE -> STRIDED_SLICE -> PACK -> RESHAPE,
FILL), causal masks, position ids, relative-position buckets and the biases gathered from
them. Those values become constants (each up to policy.FOLD_BYTES; a larger one is cut at
its inputs instead, and the op computing it stays); EXPAND_DIMS and SQUEEZE become
RESHAPE to their static shape, and every tensor's shape is pinned, so the integer
plumbing disappears.
"""

from __future__ import annotations

import numpy as np

from xnnfit.core.errors import XnnfitError
from xnnfit.core.policy import FOLD_BYTES
from xnnfit.rewrite.graph import Graph
from xnnfit.rewrite.rule import Match, NoMatch, RewriteContext, Rule
from xnnfit.runtime.interpreter import tensor_values

_NEVER_FOLD = {
    "VAR_HANDLE",
    "READ_VARIABLE",
    "ASSIGN_VARIABLE",
    "WHILE",
    "IF",
    "CALL_ONCE",
    "CUSTOM",
    "RANDOM_UNIFORM",
    "RANDOM_STANDARD_NORMAL",
    "MULTINOMIAL",
    "DEQUANTIZE",
    "DENSIFY",
}
_SHAPE_ONLY = {"SHAPE", "RANK", "ZEROS_LIKE", "ONES_LIKE"}


def _example():
    import keras
    import tensorflow as tf

    inp = keras.Input((4, 4), name="x")
    x = keras.layers.Lambda(lambda t: tf.reshape(t, (tf.shape(t)[0], -1)), output_shape=(16,), name="dyn_reshape")(inp)
    return keras.Model(inp, keras.layers.Dense(4, name="head")(x))


class FoldShapes(Rule, id="XR002", fixes=("XNN014", "XNN020", "XNN015", "XNN013", "XNN021")):
    title = "fold run-time shape computation into constants"
    example = staticmethod(_example)
    example_dynamic_batch = True

    def match(self, g: Graph, ctx: RewriteContext) -> list[Match] | NoMatch:
        folded = _data_independent(g)
        try:
            shapes, values = _infer(g, ctx, folded)
        except (ValueError, XnnfitError) as exc:
            return NoMatch(str(exc))
        wanted = [
            t
            for t in sorted(folded)
            if g.is_graph_output(t) or any(not set(g.outputs(c)) <= folded for c in g.consumers(t))
        ]
        boundary = sorted(_cut(g, wanted, folded, values))
        reshapes = [
            i for i in range(len(g.ops)) if g.op(i) in ("EXPAND_DIMS", "SQUEEZE") and not set(g.outputs(i)) <= folded
        ]
        dynamic = [t for t in range(len(g.sub.tensors)) if any(d < 0 for d in g.shape(t)) and t in shapes]
        if not boundary and not reshapes and not dynamic:
            return NoMatch("no shape computation to fold and no dynamic dimension to pin")
        where = g.name(boundary[0]) if boundary else (g.name(g.outputs(reshapes[0])[0]) if reshapes else "input shapes")
        return [
            Match(self.id, 0, where, {"boundary": boundary, "reshapes": reshapes, "shapes": shapes, "values": values})
        ]

    def apply(self, g: Graph, m: Match, ctx: RewriteContext) -> None:
        d = m.detail
        shapes, values = d["shapes"], d["values"]
        for t in d["boundary"]:
            value = values[t]
            c = g.add_const(value.astype(_np_type(g.dtype(t))), self.tag(g.name(t) or f"t{t}"), g.quant(t))
            g.rewire(t, c)
        for i in sorted(d["reshapes"], reverse=True):
            g.ops[i] = self.reshape(g, g.inputs(i)[0], g.outputs(i)[0], shapes[g.outputs(i)[0]])
        for t, shape in shapes.items():
            tensor = g.tensor(t)
            if tensor.buffer and g.value(t) is not None:
                continue
            tensor.shape = [int(v) for v in shape]
            tensor.shapeSignature = None


def _np_type(dtype: str):
    return {
        "float32": np.float32,
        "int32": np.int32,
        "int64": np.int64,
        "bool": np.bool_,
        "int8": np.int8,
        "uint8": np.uint8,
        "float16": np.float16,
    }.get(dtype, np.float32)


def _data_independent(g: Graph) -> set[int]:
    """Computed tensors whose value depends only on shapes and constants."""
    known: set[int] = set()
    for i in range(len(g.ops)):
        name = g.op(i)
        if name in _NEVER_FOLD:
            continue
        ins = [t for t in g.inputs(i) if t >= 0]
        if name in _SHAPE_ONLY or all(t in known or g.value(t) is not None for t in ins):
            known.update(g.outputs(i))
    return known


def _cut(g: Graph, wanted: list[int], folded: set[int], values: dict[int, np.ndarray]) -> set[int]:
    """Tensors to store: each wanted one that fits, else (recursively) the folded inputs of the op computing it."""
    out: set[int] = set()
    seen: set[int] = set()
    stack = list(wanted)
    while stack:
        t = stack.pop()
        if t in seen:
            continue
        seen.add(t)
        if t in values:
            out.add(t)
            continue
        p = g.producer(t)
        if p is not None and g.op(p) not in _SHAPE_ONLY:
            stack.extend(u for u in g.inputs(p) if u in folded)
    return out


def _infer(g: Graph, ctx: RewriteContext, folded: set[int]) -> tuple[dict[int, tuple], dict[int, np.ndarray]]:
    """Every tensor's static shape, and the value of each folded one that fits, from one run of the real runtime.

    The run is at the pinned input shapes.
    A batch kept dynamic (--dynamic-batch) runs, and is folded, as 1: the fixed model is static.
    """
    return tensor_values(g.to_bytes(prune=False), ctx.specs, FOLD_BYTES, folded)
