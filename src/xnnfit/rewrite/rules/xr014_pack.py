"""XR014: PACK (tf.stack / ops.stack) -> RESHAPE + CONCATENATION; UNPACK -> SPLIT + RESHAPE.

Stacking N tensors of shape S on axis k is concatenating them on k after giving each a
size-1 axis there; unstacking is splitting on k and dropping that axis. Values only
move, so the result is bit-identical. RoPE's rotate-half (`ops.stack([-x2, x1], -1)`) is
the common source in transformers. The delegate concatenates at most
MAX_CONCAT_INPUTS tensors at a time, so longer stacks concatenate in steps.
"""

from __future__ import annotations

import numpy as np

from xnnfit.rewrite.graph import Graph
from xnnfit.rewrite.rule import Match, NoMatch, RewriteContext, Rule
from xnnfit.tflite.schema import fb

MAX_CONCAT_INPUTS = 5  # XNNPACK's CONCATENATION takes 2 to 5 inputs (xnnpack_delegate.cc, VisitConcatenationNode)
MAX_RANK = 6  # XNNPACK tensors have at most 6 dimensions


def _example():
    import keras

    inp = keras.Input((16, 8), name="x")
    x1, x2 = keras.ops.split(inp, 2, axis=-1)
    rotated = keras.layers.Lambda(
        lambda t: keras.ops.reshape(keras.ops.stack([-t[1], t[0]], axis=-1), (-1, 16, 8)), name="rotate_half"
    )([x1, x2])
    return keras.Model(inp, keras.layers.Dense(8, name="head")(rotated * 2.0))


class PackConcat(Rule):
    id = "XR014"
    title = "PACK -> RESHAPE + CONCATENATION, UNPACK -> SPLIT + RESHAPE"
    fixes = ("XNN013",)
    exactness = "exact"
    example = staticmethod(_example)

    def match(self, g: Graph, ctx: RewriteContext) -> list[Match] | NoMatch:
        return self.scan(g, ("PACK", "UNPACK"), _why_not)

    def apply(self, g: Graph, m: Match, ctx: RewriteContext) -> None:
        i, axis = m.anchor, m.detail["axis"]
        if g.op(i) == "PACK":
            g.ops[i : i + 1] = self._pack(g, g.inputs(i), g.outputs(i)[0], axis)
        else:
            g.ops[i : i + 1] = self._unpack(g, g.inputs(i)[0], g.outputs(i), axis)

    def _pack(self, g: Graph, xs: list[int], out: int, axis: int) -> list:
        ops, parts = [], []
        for x in xs:
            shape = list(g.shape(x))
            shape.insert(axis, 1)
            r = g.add_tensor(shape, g.dtype(x), self.tag("unsqueezed"), g.quant(x))
            ops.append(self._reshape(g, x, r, shape))
            parts.append(r)
        while len(parts) > MAX_CONCAT_INPUTS:  # concatenate in steps of at most MAX_CONCAT_INPUTS
            head, parts = parts[:MAX_CONCAT_INPUTS], parts[MAX_CONCAT_INPUTS:]
            shape = list(g.shape(head[0]))
            shape[axis] = sum(g.shape(p)[axis] for p in head)
            joined = g.add_tensor(shape, g.dtype(out), self.tag("partial"), g.quant(out))
            ops.append(self._concat(g, head, joined, axis))
            parts.insert(0, joined)
        if len(parts) == 1:
            ops.append(self._reshape(g, parts[0], out, list(g.shape(out))))
        else:
            ops.append(self._concat(g, parts, out, axis))
        return ops

    def _unpack(self, g: Graph, x: int, outs: list[int], axis: int) -> list:
        shape = list(g.shape(x))
        piece = shape[:axis] + [1] + shape[axis + 1 :]
        pieces = [g.add_tensor(piece, g.dtype(x), self.tag("piece"), g.quant(x)) for _ in outs]
        opts = fb.SplitOptionsT()
        opts.numSplits = len(outs)
        split = g.make_op(
            "SPLIT", [g.add_const(np.asarray(axis, np.int32), self.tag("axis")), x], pieces, opts, "SplitOptions"
        )
        return [split] + [self._reshape(g, p, o, list(g.shape(o))) for p, o in zip(pieces, outs)]

    def _reshape(self, g: Graph, src: int, dst: int, shape: list[int]):
        opts = fb.ReshapeOptionsT()
        opts.newShape = [int(d) for d in shape]
        return g.make_op(
            "RESHAPE", [src, g.add_const(np.asarray(shape, np.int32), self.tag("shape"))], [dst], opts, "ReshapeOptions"
        )

    def _concat(self, g: Graph, xs: list[int], out: int, axis: int):
        opts = fb.ConcatenationOptionsT()
        opts.axis = axis
        return g.make_op("CONCATENATION", xs, [out], opts, "ConcatenationOptions")


def _why_not(g: Graph, i: int) -> dict | str:
    opts = g.options(i, "PackOptions" if g.op(i) == "PACK" else "UnpackOptions")
    big = g.outputs(i)[0] if g.op(i) == "PACK" else g.inputs(i)[0]
    rank = len(g.shape(big))
    if any(d < 0 for d in g.shape(big)):
        return f"{g.op(i)} has dynamic dimensions (apply XR002 first)"
    if rank > MAX_RANK:
        return f"{g.op(i)} makes a rank-{rank} tensor (XNNPACK stops at {MAX_RANK})"
    axis = int(getattr(opts, "axis", 0) or 0)
    axis = axis + rank if axis < 0 else axis
    if not 0 <= axis < rank:
        return f"{g.op(i)} axis out of range"
    if g.op(i) == "PACK":
        quants = {_qkey(g.quant(t)) for t in g.inputs(i) + g.outputs(i)}
        if len(quants) > 1:
            return "PACK inputs are quantized differently (a concatenation would requantize)"
    return {"axis": axis}


def _qkey(q) -> tuple:
    if q is None or q.scale is None or len(q.scale) == 0:
        return ()
    return (
        tuple(np.asarray(q.scale).tolist()),
        tuple(np.asarray(q.zeroPoint if q.zeroPoint is not None else []).tolist()),
    )
