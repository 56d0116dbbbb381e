"""XR004: splits and concatenations XNNPACK refuses -> SLICEs and a tree of small CONCATENATIONs.

XNNPACK has no SPLIT_V, splits only into MIN_SPLIT_OUTPUTS to MAX_SPLIT_OUTPUTS outputs and
concatenates at most MAX_CONCAT_INPUTS inputs (kb/limits.py). A split along a constant axis
of a static-shape input is a set of static slices, so each output becomes one SLICE
(constant int32 begin and size, every size > 0: XNNPACK refuses -1) writing the same
tensor. Concatenation is associative, so a longer one becomes a tree of CONCATENATIONs
within the limit (Rule.concat). Both are data copies, so the rewrite is exact in float and
in int8.
"""

from __future__ import annotations

from xnnfit.kb.limits import MAX_CONCAT_INPUTS, MAX_SPLIT_OUTPUTS, MIN_SPLIT_OUTPUTS
from xnnfit.rewrite.graph import Graph
from xnnfit.rewrite.rule import Match, RewriteContext, Rule


def _example():
    import keras
    import tensorflow as tf

    def split_concat(t):
        a, b = tf.split(t, [4, 12], axis=1)  # SPLIT_V
        parts = tf.split(b, 6, axis=1)  # SPLIT into 6
        return tf.concat([a] + parts[::-1], axis=1)  # CONCATENATION of 7

    inp = keras.Input((16,), name="x")
    x = keras.layers.Dense(16, name="dense")(inp)
    x = keras.layers.Lambda(split_concat, name="split_concat")(x)
    return keras.Model(inp, keras.layers.Dense(4, name="head")(x))


class SplitConcat(Rule, id="XR004", fixes=("XNN016", "XNN023", "XNN024"), ops=("SPLIT", "SPLIT_V", "CONCATENATION")):
    title = (
        f"SPLIT_V / SPLIT into 1 or >{MAX_SPLIT_OUTPUTS} parts -> SLICEs; "
        f"CONCATENATION of >{MAX_CONCAT_INPUTS} -> a tree of <={MAX_CONCAT_INPUTS}"
    )
    absent = "no SPLIT, SPLIT_V or CONCATENATION node"
    example = staticmethod(_example)

    def check(self, g: Graph, i: int) -> dict | str:
        if g.op(i) != "CONCATENATION":
            return self._split(g, i)
        if len(g.inputs(i)) > MAX_CONCAT_INPUTS:
            return {"kind": "concat"}
        return f"every CONCATENATION has at most {MAX_CONCAT_INPUTS} inputs"

    def where(self, g: Graph, i: int) -> str:
        """Op i's first output name (the converter joins fused names with ';': keep the first)."""
        return g.name(g.outputs(i)[0]).split(";")[0]

    def _split(self, g: Graph, i: int) -> dict | str:
        """The slices (begin, size per output) replacing split op i, or why not."""
        name = g.op(i)
        outs = g.outputs(i)
        if name == "SPLIT":
            axis_t, x = g.inputs(i)[:2]
            if MIN_SPLIT_OUTPUTS <= len(outs) <= MAX_SPLIT_OUTPUTS:
                return f"SPLIT into {len(outs)} parts is delegated as is"
        else:
            x, sizes_t, axis_t = g.inputs(i)[:3]
        axis_v = g.value(axis_t)
        if axis_v is None or axis_v.size != 1:
            return f"{name} axis is computed at run time"
        shape = g.shape(x)
        if not shape or any(d < 0 for d in shape):
            return f"{name} input has dynamic dimensions (apply XR002 first)"
        axis = int(axis_v.reshape(-1)[0])
        axis = axis + len(shape) if axis < 0 else axis
        if not 0 <= axis < len(shape):
            return f"{name} axis {axis} is outside rank {len(shape)}"
        dim = shape[axis]
        if name == "SPLIT":
            if dim % len(outs):
                return f"SPLIT of {dim} into {len(outs)} parts is not even"
            sizes = [dim // len(outs)] * len(outs)
        else:
            sv = g.value(sizes_t)
            if sv is None:
                return "SPLIT_V size_splits are computed at run time"
            sizes = [int(s) for s in sv.reshape(-1)]
            if len(sizes) != len(outs):
                return f"SPLIT_V has {len(sizes)} sizes for {len(outs)} outputs"
            unknown = [k for k, s in enumerate(sizes) if s == -1]
            if len(unknown) > 1:
                return "SPLIT_V has more than one -1 size"
            if unknown:
                sizes[unknown[0]] = dim - sum(s for s in sizes if s != -1)
            if sum(sizes) != dim or any(s < 0 for s in sizes):
                return f"SPLIT_V sizes {sizes} do not add up to {dim}"
        if any(s == 0 for s in sizes):
            return f"{name} has an empty part (a SLICE of size 0 is refused)"
        slices, start = [], 0
        for s in sizes:
            begin, size = [0] * len(shape), list(shape)
            begin[axis], size[axis] = start, s
            slices.append((begin, size))
            start += s
        return {"kind": "split", "x": x, "slices": slices}

    def apply(self, g: Graph, m: Match, ctx: RewriteContext) -> None:
        i = m.anchor
        if m.detail["kind"] == "split":  # one SLICE per output, writing the original output tensor
            ops = [self.slice(g, m.detail["x"], out, *piece) for out, piece in zip(g.outputs(i), m.detail["slices"])]
        else:
            opts = g.options(i, "ConcatenationOptions")
            axis, activation = (int(opts.axis), int(opts.fusedActivationFunction)) if opts is not None else (0, 0)
            ops = self.concat(g, g.inputs(i), g.outputs(i)[0], axis, activation)
        g.ops[i : i + 1] = ops
