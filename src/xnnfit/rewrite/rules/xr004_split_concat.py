"""XR004: splits and concatenations XNNPACK refuses -> SLICEs and a tree of small CONCATENATIONs.

XNNPACK has no SPLIT_V, splits only into 2-4 outputs, and concatenates 2-5 inputs. A split
along a constant axis of a static-shape input is a set of static slices, so each output
becomes one SLICE (constant int32 begin and size, every size > 0: XNNPACK refuses -1)
writing the same tensor. Concatenation is associative, so more than 5 inputs become
nearly even groups of at most 5, concatenated again along the same axis; only the final
node keeps the fused activation, and intermediate tensors take the output's quantization.
Both are data copies, so the rewrite is exact in float and in int8.
"""

from __future__ import annotations

import math

import numpy as np

from xnnfit.rewrite.graph import Graph
from xnnfit.rewrite.rule import Match, NoMatch, RewriteContext, Rule
from xnnfit.tflite.schema import fb

MAX_CONCAT_INPUTS = 5  # XNNPACK's VisitConcatenationNode accepts 2..5
SPLIT_OUTPUTS = (2, 4)  # XNNPACK's VisitSplitNode accepts 2..4 outputs


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


class SplitConcat(Rule):
    id = "XR004"
    title = "SPLIT_V / SPLIT into 1 or >4 parts -> SLICEs; CONCATENATION of >5 -> a tree of <=5"
    fixes = ("XNN016", "XNN023", "XNN024")
    exactness = "exact"
    example = staticmethod(_example)

    def match(self, g: Graph, ctx: RewriteContext) -> list[Match] | NoMatch:
        found, reasons = [], []
        for i in range(len(g.ops)):
            name = g.op(i)
            if name == "CONCATENATION":
                if len(g.inputs(i)) > MAX_CONCAT_INPUTS:
                    found.append(Match(self.id, i, _where(g, i), {"kind": "concat"}))
                else:
                    reasons.append(f"every CONCATENATION has at most {MAX_CONCAT_INPUTS} inputs")
            elif name in ("SPLIT", "SPLIT_V"):
                why = self._split(g, i)
                if isinstance(why, str):
                    reasons.append(why)
                else:
                    found.append(Match(self.id, i, _where(g, i), why))
        return found or NoMatch("; ".join(dict.fromkeys(reasons)) or "no SPLIT, SPLIT_V or CONCATENATION node")

    def _split(self, g: Graph, i: int) -> dict | str:
        """The slices (begin, size per output) replacing split op i, or why not."""
        name = g.op(i)
        outs = g.outputs(i)
        if name == "SPLIT":
            axis_t, x = g.inputs(i)[:2]
            if SPLIT_OUTPUTS[0] <= len(outs) <= SPLIT_OUTPUTS[1]:
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
        if m.detail["kind"] == "split":
            ops = self._slices(g, i, m.detail)
        else:
            ops = self._concat_tree(g, i)
        g.ops[i : i + 1] = ops

    def _slices(self, g: Graph, i: int, d: dict) -> list:
        """One SLICE per output, writing the original output tensor (same quantization)."""
        ops = []
        for out, (begin, size) in zip(g.outputs(i), d["slices"]):
            b = g.add_const(np.asarray(begin, np.int32), self.tag("slice_begin"))
            s = g.add_const(np.asarray(size, np.int32), self.tag("slice_size"))
            ops.append(g.make_op("SLICE", [d["x"], b, s], [out], fb.SliceOptionsT(), "SliceOptions"))
        return ops

    def _concat_tree(self, g: Graph, i: int) -> list:
        """Nearly even groups of at most 5, level by level; the last node writes the output."""
        opts0 = g.options(i, "ConcatenationOptions")
        axis_raw = int(opts0.axis) if opts0 is not None else 0
        activation = int(opts0.fusedActivationFunction) if opts0 is not None else 0
        out = g.outputs(i)[0]
        rank = len(g.shape(out))
        axis = axis_raw + rank if axis_raw < 0 else axis_raw
        level, ops, inputs = 0, [], g.inputs(i)
        while len(inputs) > MAX_CONCAT_INPUTS:
            k = math.ceil(len(inputs) / MAX_CONCAT_INPUTS)
            bounds = [round(j * len(inputs) / k) for j in range(k + 1)]
            merged = []
            for j in range(k):
                group = inputs[bounds[j] : bounds[j + 1]]
                t = g.add_tensor(
                    _concat_shape(g, group, axis), g.dtype(out), self.tag(f"concat{level}_{j}"), g.quant(out)
                )
                ops.append(g.make_op("CONCATENATION", group, [t], _concat_options(axis_raw, 0), "ConcatenationOptions"))
                merged.append(t)
            inputs, level = merged, level + 1
        ops.append(
            g.make_op("CONCATENATION", inputs, [out], _concat_options(axis_raw, activation), "ConcatenationOptions")
        )
        return ops


def _where(g: Graph, i: int) -> str:
    """Op i's first output name (the converter joins fused names with ';': keep the first)."""
    return g.name(g.outputs(i)[0]).split(";")[0]


def _concat_options(axis: int, activation: int):
    opts = fb.ConcatenationOptionsT()
    opts.axis = axis
    opts.fusedActivationFunction = activation
    return opts


def _concat_shape(g: Graph, group: list[int], axis: int) -> list[int]:
    """The shape of concatenating `group` along `axis` (-1 where it is not known)."""
    shapes = [g.shape(t) for t in group]
    shape = [next((d for d in dims if d >= 0), -1) for dims in zip(*shapes)]
    along = [s[axis] for s in shapes]
    shape[axis] = sum(along) if all(d >= 0 for d in along) else -1
    return shape
