"""XR008: L2_NORMALIZATION -> x / max(sqrt(sum(x^2)), 1e-6) in delegated float32 ops.

TFLite's float kernel (kernels/l2norm.cc, epsilon = 1e-6f; reference_ops::L2Normalization)
computes l2 = max(sqrt(sum over the last axis of x^2), epsilon) and out = x / l2. The
rewrite is that formula op for op: SQUARE, SUM (keep_dims), SQRT, MAXIMUM, DIV, so a zero
row stays zero and rows shorter than 1e-6 are divided by 1e-6, as in the kernel. It
differs by rounding (summation order) only; DIV rather than MUL by RSQRT keeps the
kernel's single division.
"""

from __future__ import annotations

import numpy as np

from xnnfit.rewrite.graph import Graph
from xnnfit.rewrite.rule import Match, RewriteContext, Rule, float32_last_axis

EPSILON = 1e-6  # the float kernel's floor on the norm


def _example():
    import keras
    import tensorflow as tf

    inp = keras.Input((16, 32), name="x")
    x = keras.layers.Dense(128, name="embed")(inp)
    return keras.Model(inp, keras.layers.Lambda(lambda t: tf.math.l2_normalize(t, axis=-1), name="l2_normalize")(x))


class L2Norm(Rule, id="XR008", fixes=("XNN010",), ops=("L2_NORMALIZATION",), tolerance=1e-5):
    title = "L2_NORMALIZATION -> x / max(sqrt(sum(x^2)), 1e-6)"
    example = staticmethod(_example)

    def check(self, g: Graph, i: int) -> dict | str:
        why = float32_last_axis(g, i, "SQUARE, SQRT and DIV")
        opts = g.options(i, "L2NormOptions")
        if not why and opts is not None and opts.fusedActivationFunction:
            return "L2_NORMALIZATION with a fused activation"
        return why

    def apply(self, g: Graph, m: Match, ctx: RewriteContext) -> None:
        i = m.anchor
        x, out = g.inputs(i)[0], g.outputs(i)[0]
        shape = g.shape(x)
        reduced = (*shape[:-1], 1)
        squares = g.add_tensor(shape, "float32", self.tag("square"))
        total, norm, floored = (g.add_tensor(reduced, "float32", self.tag(n)) for n in ("sum", "norm", "norm_floored"))
        axis = self.ints(g, [len(shape) - 1], "axis")
        eps = g.add_const(np.asarray(EPSILON, np.float32), self.tag("epsilon"))
        g.ops[i : i + 1] = [
            self.emit(g, "SQUARE", [x], [squares]),
            self.emit(g, "SUM", [squares, axis], [total], keepDims=True),
            self.emit(g, "SQRT", [total], [norm]),
            self.emit(g, "MAXIMUM", [norm, eps], [floored]),
            self.emit(g, "DIV", [x, floored], [out]),
        ]
