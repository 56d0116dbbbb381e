"""XR003: nearest-neighbour upsampling (TILE over size-1 axes, RESIZE_NEAREST_NEIGHBOR) -> broadcast MUL.

Tiling an axis of size 1 is broadcasting, so TILE becomes MUL by a constant of ones of
the tiled shape. An integer-factor nearest resize becomes reshape to
(N, H, 1, W, 1, C), MUL by ones (1, 1, s, 1, t, 1), reshape to (N, H*s, W*t, C).
"""

from __future__ import annotations

import numpy as np

from xnnfit.rewrite.graph import Graph
from xnnfit.rewrite.rule import Match, RewriteContext, Rule
from xnnfit.tflite.build import per_tensor_quant


def _example():
    import keras

    inp = keras.Input((8, 8, 4), name="x")
    x = keras.layers.UpSampling2D(2, name="up")(inp)
    return keras.Model(inp, keras.layers.Conv2D(4, 3, padding="same", name="conv")(x))


class BroadcastUpsample(Rule, id="XR003", fixes=("XNN004", "XNN009"), ops=("TILE", "RESIZE_NEAREST_NEIGHBOR")):
    title = "nearest upsampling (TILE, RESIZE_NEAREST_NEIGHBOR) -> broadcast multiply"
    example = staticmethod(_example)

    def check(self, g: Graph, i: int) -> dict | str:
        return _tile(g, i) if g.op(i) == "TILE" else _resize(g, i)

    def apply(self, g: Graph, m: Match, ctx: RewriteContext) -> None:
        i = m.anchor
        x = g.inputs(i)[0]
        out = g.outputs(i)[0]
        if m.detail["kind"] == "tile":
            ones = self._ones(g, [k if k > 1 else 1 for k in m.detail["mult"]], x)
            g.ops[i] = self.emit(g, "MUL", [x, ones], [out])
            return
        n, h, w, c = g.shape(x)
        s, t = m.detail["factors"]
        q = g.quant(x)
        expanded = g.add_tensor((n, h, 1, w, 1, c), g.dtype(x), self.tag("expanded"), q)
        tiled = g.add_tensor((n, h, s, w, t, c), g.dtype(x), self.tag("tiled"), g.quant(out))
        g.ops[i : i + 1] = [
            self.reshape(g, x, expanded, (n, h, 1, w, 1, c)),
            self.emit(g, "MUL", [expanded, self._ones(g, [1, 1, s, 1, t, 1], x)], [tiled]),
            self.reshape(g, tiled, out, (n, h * s, w * t, c)),
        ]

    def _ones(self, g: Graph, shape: list[int], like: int) -> int:
        if g.dtype(like).startswith("float"):
            return g.add_const(
                np.ones(shape, dtype=np.float16 if g.dtype(like) == "float16" else np.float32), self.tag("ones")
            )
        stored = np.full(shape, 127, dtype=np.int8 if g.dtype(like) == "int8" else np.uint8)
        return g.add_const(stored, self.tag("ones"), per_tensor_quant(1.0 / 127.0, 0))


def _tile(g: Graph, i: int) -> dict | str:
    x, mult = g.inputs(i)[:2]
    m, shape = g.value(mult), g.shape(x)
    if m is None:
        return "TILE multiples are computed at run time"
    if any(int(k) > 1 and shape[a] != 1 for a, k in enumerate(m.reshape(-1))):
        return "TILE repeats an axis longer than 1 (not a broadcast)"
    if any(d < 0 for d in shape):
        return "TILE input has dynamic dimensions (apply XR002 first)"
    return {"kind": "tile", "mult": [int(k) for k in m.reshape(-1)]}


def _resize(g: Graph, i: int) -> dict | str:
    x, size = g.inputs(i)[:2]
    opts, sv, shape = g.options(i, "ResizeNearestNeighborOptions"), g.value(size), g.shape(x)
    if sv is None or len(shape) != 4 or any(d < 0 for d in shape):
        return "resize size or input shape is not static"
    if opts is not None and opts.alignCorners:
        return "align_corners resize is not a pure repeat"
    if sv[0] % shape[1] or sv[1] % shape[2]:
        return "resize factor is not an integer"
    return {"kind": "resize", "factors": (int(sv[0] // shape[1]), int(sv[1] // shape[2]))}
