"""XR009: dynamic-range int8 DEPTHWISE_CONV_2D -> the same conv with float32 weights.

XNNPACK runs float x int8 (hybrid) CONV_2D and FULLY_CONNECTED but not depthwise; with
its int8 filter dequantized into a float constant the depthwise conv is delegated. The
result differs from the hybrid kernel by the activation quantization the hybrid kernel
did (it is closer to the float model).
"""

from __future__ import annotations

import numpy as np

from xnnfit.rewrite.graph import Graph
from xnnfit.rewrite.rule import Match, RewriteContext, Rule


def _example():
    import keras

    inp = keras.Input((8, 8, 128), name="x")
    x = keras.layers.DepthwiseConv2D(3, padding="same", name="dw")(inp)
    return keras.Model(inp, keras.layers.Conv2D(8, 1, name="pw")(x))


class FloatDepthwise(Rule, id="XR009", fixes=("XNN027",), ops=("DEPTHWISE_CONV_2D",), tolerance=5e-2):
    title = "dynamic-range int8 depthwise conv -> float weights"
    absent = "no depthwise conv with float input and int8 filter"
    example = staticmethod(_example)
    example_recipe = "dynamic-int8"

    def check(self, g: Graph, i: int) -> dict | str:
        x, w = g.inputs(i)[:2]
        if g.dtype(x) != "float32" or g.dtype(w) not in ("int8", "uint8") or g.value(w) is None or g.quant(w) is None:
            return "depthwise conv already has matching input and filter types"
        return {"filter": w}

    def apply(self, g: Graph, m: Match, ctx: RewriteContext) -> None:
        w = m.detail["filter"]
        weights = g.real_value(w).astype(np.float32)
        c = g.add_const(weights, self.tag(g.name(w)))
        op = g.ops[m.anchor]
        op.inputs = [c if int(t) == w else int(t) for t in op.inputs]
