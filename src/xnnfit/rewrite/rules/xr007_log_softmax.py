"""XR007: LOG_SOFTMAX -> the max-shifted formula in delegated float32 ops.

LOG_SOFTMAX(x) over the last axis is d - log(sum(exp(d))) with d = x - max(x): REDUCE_MAX
and SUM with keep_dims, SUB, EXP, LOG. It is the formula the TFLite kernel evaluates,
so the results differ only by rounding (EXP, LOG and the summation order).
"""

from __future__ import annotations

from xnnfit.rewrite.graph import Graph
from xnnfit.rewrite.rule import Match, RewriteContext, Rule, float32_last_axis


def _example():
    import keras
    import tensorflow as tf

    inp = keras.Input((16, 64), name="x")
    x = keras.layers.Dense(100, name="logits")(inp)
    return keras.Model(inp, keras.layers.Lambda(lambda t: tf.nn.log_softmax(t), name="log_softmax")(x))


class LogSoftmax(Rule, id="XR007", fixes=("XNN006",), ops=("LOG_SOFTMAX",), tolerance=1e-5):
    title = "LOG_SOFTMAX -> x - max - log(sum(exp(x - max)))"
    example = staticmethod(_example)

    def check(self, g: Graph, i: int) -> dict | str:
        return float32_last_axis(g, i, "EXP and LOG")

    def apply(self, g: Graph, m: Match, ctx: RewriteContext) -> None:
        i = m.anchor
        x, out = g.inputs(i)[0], g.outputs(i)[0]
        shape = g.shape(x)
        reduced = (*shape[:-1], 1)
        peak, total, log_total = (g.add_tensor(reduced, "float32", self.tag(n)) for n in ("max", "sum", "log_sum"))
        shifted, exps = (g.add_tensor(shape, "float32", self.tag(n)) for n in ("shifted", "exp"))
        axis = self.ints(g, [len(shape) - 1], "axis")
        g.ops[i : i + 1] = [
            self.emit(g, "REDUCE_MAX", [x, axis], [peak], keepDims=True),
            self.emit(g, "SUB", [x, peak], [shifted]),
            self.emit(g, "EXP", [shifted], [exps]),
            self.emit(g, "SUM", [exps, axis], [total], keepDims=True),
            self.emit(g, "LOG", [total], [log_total]),
            self.emit(g, "SUB", [shifted, log_total], [out]),
        ]
