"""XR003: nearest-neighbour upsampling (TILE over size-1 axes, RESIZE_NEAREST_NEIGHBOR) -> broadcast MUL.

Tiling an axis of size 1 is broadcasting, so TILE becomes MUL by a constant of ones of
the tiled shape. An integer-factor nearest resize becomes reshape to
(N, H, 1, W, 1, C), MUL by ones (1, 1, s, 1, t, 1), reshape to (N, H*s, W*t, C).
"""

from __future__ import annotations

import numpy as np

from xnnfit.rewrite.graph import Graph
from xnnfit.rewrite.rule import Match, NoMatch, RewriteContext, Rule
from xnnfit.tflite.schema import fb


def _example():
    import keras

    inp = keras.Input((8, 8, 4), name="x")
    x = keras.layers.UpSampling2D(2, name="up")(inp)
    return keras.Model(inp, keras.layers.Conv2D(4, 3, padding="same", name="conv")(x))


class BroadcastUpsample(Rule):
    id = "XR003"
    title = "nearest upsampling (TILE, RESIZE_NEAREST_NEIGHBOR) -> broadcast multiply"
    fixes = ("XNN004", "XNN009")
    exactness = "exact"
    example = staticmethod(_example)

    def match(self, g: Graph, ctx: RewriteContext) -> list[Match] | NoMatch:
        found, reasons = [], []
        for i in range(len(g.ops)):
            name = g.op(i)
            if name == "TILE":
                x, mult = g.inputs(i)[:2]
                m = g.value(mult)
                shape = g.shape(x)
                if m is None:
                    reasons.append("TILE multiples are computed at run time")
                elif any(int(k) > 1 and shape[a] != 1 for a, k in enumerate(m.reshape(-1))):
                    reasons.append("TILE repeats an axis longer than 1 (not a broadcast)")
                elif any(d < 0 for d in shape):
                    reasons.append("TILE input has dynamic dimensions (apply XR002 first)")
                else:
                    found.append(
                        Match(
                            self.id,
                            i,
                            g.name(g.outputs(i)[0]),
                            {"kind": "tile", "mult": [int(k) for k in m.reshape(-1)]},
                        )
                    )
            elif name == "RESIZE_NEAREST_NEIGHBOR":
                x, size = g.inputs(i)[:2]
                opts = g.options(i, "ResizeNearestNeighborOptions")
                sv = g.value(size)
                shape = g.shape(x)
                if sv is None or len(shape) != 4 or any(d < 0 for d in shape):
                    reasons.append("resize size or input shape is not static")
                elif opts is not None and opts.alignCorners:
                    reasons.append("align_corners resize is not a pure repeat")
                elif sv[0] % shape[1] or sv[1] % shape[2]:
                    reasons.append("resize factor is not an integer")
                else:
                    found.append(
                        Match(
                            self.id,
                            i,
                            g.name(g.outputs(i)[0]),
                            {"kind": "resize", "factors": (int(sv[0] // shape[1]), int(sv[1] // shape[2]))},
                        )
                    )
        return found or NoMatch("; ".join(dict.fromkeys(reasons)) or "no TILE or RESIZE_NEAREST_NEIGHBOR node")

    def apply(self, g: Graph, m: Match, ctx: RewriteContext) -> None:
        i = m.anchor
        x = g.inputs(i)[0]
        out = g.outputs(i)[0]
        if m.detail["kind"] == "tile":
            ones = self._ones(g, [k if k > 1 else 1 for k in m.detail["mult"]], x)
            g.ops[i] = g.make_op("MUL", [x, ones], [out], fb.MulOptionsT(), "MulOptions")
            return
        n, h, w, c = g.shape(x)
        s, t = m.detail["factors"]
        q = g.quant(x)
        expanded = g.add_tensor((n, h, 1, w, 1, c), g.dtype(x), self.tag("expanded"), q)
        tiled = g.add_tensor((n, h, s, w, t, c), g.dtype(x), self.tag("tiled"), g.quant(out))
        ops = [
            self._reshape(g, x, expanded, (n, h, 1, w, 1, c)),
            g.make_op("MUL", [expanded, self._ones(g, [1, 1, s, 1, t, 1], x)], [tiled], fb.MulOptionsT(), "MulOptions"),
            self._reshape(g, tiled, out, (n, h * s, w * t, c)),
        ]
        g.ops[i : i + 1] = ops

    def _reshape(self, g: Graph, src: int, dst: int, shape: tuple) -> object:
        opts = fb.ReshapeOptionsT()
        opts.newShape = list(shape)
        return g.make_op(
            "RESHAPE", [src, g.add_const(np.asarray(shape, np.int32), self.tag("shape"))], [dst], opts, "ReshapeOptions"
        )

    def _ones(self, g: Graph, shape: list[int], like: int) -> int:
        if g.dtype(like).startswith("float"):
            return g.add_const(
                np.ones(shape, dtype=np.float16 if g.dtype(like) == "float16" else np.float32), self.tag("ones")
            )
        q = fb.QuantizationParametersT()
        q.scale = [1.0 / 127.0]
        q.zeroPoint = [0]
        return g.add_const(
            np.full(shape, 127, dtype=np.int8 if g.dtype(like) == "int8" else np.uint8), self.tag("ones"), q
        )
