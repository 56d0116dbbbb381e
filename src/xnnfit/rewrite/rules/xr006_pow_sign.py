"""XR006: POW with a constant exponent, and SIGN -> delegated float32 arithmetic.

POW(x, c) with one constant exponent c becomes SQUARE, SQRT, MUL and DIV of x:

    c:  1    2       3            4                 0.5      1.5          -0.5        -1        -2
        x    x*x     (x*x)*x      (x*x)*(x*x)       sqrt(x)  sqrt(x)*x    1/sqrt(x)   1/x       1/(x*x)

The same function, rounded differently (pow rounds once, x*x*x twice: about 1 ulp), with
edge differences: where a positive power overflows float32 the POW kernel saturates to
+-3.4e38 and the rewrite gives +-inf; x ** -0.5 at x = -0.0 is -inf instead of +inf;
and XNNPACK flushes subnormal results (|y| < 2^-126) to 0.
(1/sqrt(x), not RSQRT: XNNPACK's RSQRT returns NaN at 0 where POW returns inf.)

SIGN(x) becomes clamp((x * 2^126) * 2^126, -1, 1): two MULs, the second with a fused
RELU_N1_TO_1. Every nonzero float grows to at least 2^103 in magnitude (or to inf) and
clamps to exactly +-1; zeros stay zero. The result equals SIGN for every normal float,
for zeros and for +-inf. XNNPACK flushes denormals to zero, so a subnormal input
(0 < |x| < 2^-126) reads as 0 inside the delegate and gives 0 where the CPU SIGN kernel
gives +-1: no delegated formulation can tell such an input from 0 (on CPU kernels the
rewrite matches SIGN there too). NaN stays NaN, as in SIGN.
"""

from __future__ import annotations

import numpy as np

from xnnfit.rewrite.graph import Graph
from xnnfit.rewrite.rule import Match, RewriteContext, Rule
from xnnfit.tflite.schema import fb

# exponent -> program over x: each step (op, operand names), the last step's value is the result
_POW = {
    1.0: (),
    2.0: (("SQUARE", ("x",)),),
    3.0: (("SQUARE", ("x",)), ("MUL", ("0", "x"))),
    4.0: (("SQUARE", ("x",)), ("SQUARE", ("0",))),
    0.5: (("SQRT", ("x",)),),
    1.5: (("SQRT", ("x",)), ("MUL", ("0", "x"))),
    -0.5: (("SQRT", ("x",)), ("DIV", ("one", "0"))),  # XNNPACK's RSQRT gives NaN at 0, POW gives inf
    -1.0: (("DIV", ("one", "x")),),
    -2.0: (("SQUARE", ("x",)), ("DIV", ("one", "0"))),
}
_SIGN_SCALE = np.float32(2.0**126)  # (2^-149 * 2^126) * 2^126 = 2^103 >= 1


def _example():
    import keras
    import tensorflow as tf

    inp = keras.Input((16, 64), name="x")
    x = keras.layers.Dense(64, name="dense")(inp)
    x = keras.layers.Lambda(lambda t: tf.pow(t, 3.0) + tf.sign(t), name="pow_sign")(x)
    return keras.Model(inp, keras.layers.Dense(4, name="head")(x))


class PowSign(Rule, id="XR006", fixes=("XNN005",), ops=("POW", "SIGN")):
    title = "POW with a constant exponent, SIGN -> square/sqrt/mul/div arithmetic"
    example = staticmethod(_example)

    def check(self, g: Graph, i: int) -> dict | str:
        x, out = g.inputs(i)[0], g.outputs(i)[0]
        if g.dtype(x) != "float32" or g.dtype(out) != "float32":
            return f"{g.op(i)} on {g.dtype(x)} (only float32 has delegated replacements)"
        if g.op(i) == "SIGN":
            return {"kind": "sign"}
        e = g.value(g.inputs(i)[1])
        if g.value(x) is not None:
            return "POW with a constant base"
        if e is None:
            return "POW exponent is computed at run time"
        values = np.unique(e.astype(np.float64))
        if values.size != 1 or float(values[0]) not in _POW:
            return f"POW exponent {values.tolist()} has no delegated form (known: {', '.join(f'{k:g}' for k in _POW)})"
        if g.shape(out) != g.shape(x):
            return "POW exponent broadcasts x to a larger shape"
        return {"kind": "pow", "exponent": float(values[0])}

    def apply(self, g: Graph, m: Match, ctx: RewriteContext) -> None:
        i = m.anchor
        x, out = g.inputs(i)[0], g.outputs(i)[0]
        if m.detail["kind"] == "sign":
            g.ops[i : i + 1] = self._sign(g, x, out)
            return
        program = _POW[m.detail["exponent"]]
        if not program:  # x ** 1
            if g.is_graph_output(out):  # keep the output tensor (and its name): multiply by 1
                g.ops[i] = self.emit(g, "MUL", [x, self.scalar(g, 1.0)], [out])
            else:
                g.rewire(out, x)
            return
        values = {"x": x}
        ops = []
        for step, (name, args) in enumerate(program):
            last = step == len(program) - 1
            dst = out if last else g.add_tensor(g.shape(x), "float32", self.tag(f"pow/{name.lower()}"))
            srcs = [self.scalar(g, 1.0) if a == "one" else values[a] for a in args]
            ops.append(self.emit(g, name, srcs, [dst]))
            values[str(step)] = dst
        g.ops[i : i + 1] = ops

    def _sign(self, g: Graph, x: int, out: int) -> list:
        scaled = g.add_tensor(g.shape(x), "float32", self.tag("sign/scaled"))
        clamp = fb.ActivationFunctionType.RELU_N1_TO_1
        return [
            self.emit(g, "MUL", [x, self.scalar(g, _SIGN_SCALE)], [scaled]),
            self.emit(g, "MUL", [scaled, self.scalar(g, _SIGN_SCALE)], [out], fusedActivationFunction=clamp),
        ]
