"""XR007: LOG_SOFTMAX -> the max-shifted formula in delegated float32 ops.

LOG_SOFTMAX(x) over the last axis is d - log(sum(exp(d))) with d = x - max(x): REDUCE_MAX
and SUM with keep_dims, SUB, EXP, LOG. It is the formula the TFLite kernel evaluates,
so the results differ only by rounding (EXP, LOG and the summation order).
"""

from __future__ import annotations

import numpy as np

from xnnfit.rewrite.graph import Graph
from xnnfit.rewrite.rule import Match, NoMatch, RewriteContext, Rule
from xnnfit.tflite.schema import fb


def _example():
    import keras
    import tensorflow as tf

    inp = keras.Input((16, 64), name="x")
    x = keras.layers.Dense(100, name="logits")(inp)
    return keras.Model(inp, keras.layers.Lambda(lambda t: tf.nn.log_softmax(t), name="log_softmax")(x))


class LogSoftmax(Rule):
    id = "XR007"
    title = "LOG_SOFTMAX -> x - max - log(sum(exp(x - max)))"
    fixes = ("XNN006",)
    exactness = "tolerance"
    tolerance = 1e-5
    example = staticmethod(_example)

    def match(self, g: Graph, ctx: RewriteContext) -> list[Match] | NoMatch:
        return self.scan(g, ("LOG_SOFTMAX",), _why_not)

    def apply(self, g: Graph, m: Match, ctx: RewriteContext) -> None:
        i = m.anchor
        x, out = g.inputs(i)[0], g.outputs(i)[0]
        shape = g.shape(x)
        reduced = (*shape[:-1], 1)
        peak, total, log_total = (g.add_tensor(reduced, "float32", self.tag(n)) for n in ("max", "sum", "log_sum"))
        shifted, exps = (g.add_tensor(shape, "float32", self.tag(n)) for n in ("shifted", "exp"))
        g.ops[i : i + 1] = [
            self._reduce(g, "REDUCE_MAX", x, peak),
            g.make_op("SUB", [x, peak], [shifted], fb.SubOptionsT(), "SubOptions"),
            g.make_op("EXP", [shifted], [exps]),
            self._reduce(g, "SUM", exps, total),
            g.make_op("LOG", [total], [log_total]),
            g.make_op("SUB", [shifted, log_total], [out], fb.SubOptionsT(), "SubOptions"),
        ]

    def _reduce(self, g: Graph, name: str, src: int, dst: int):
        opts = fb.ReducerOptionsT()
        opts.keepDims = True
        axis = g.add_const(np.asarray([len(g.shape(src)) - 1], np.int32), self.tag("axis"))
        return g.make_op(name, [src, axis], [dst], opts, "ReducerOptions")


def _why_not(g: Graph, i: int) -> dict | str:
    x = g.inputs(i)[0]
    if g.dtype(x) != "float32":
        return f"LOG_SOFTMAX on {g.dtype(x)} (EXP and LOG are delegated in float32 only)"
    if len(g.shape(x)) == 0:
        return "LOG_SOFTMAX of a scalar"
    return {}
