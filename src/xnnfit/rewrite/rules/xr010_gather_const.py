"""XR010: GATHER with constant indices -> static SLICEs and CONCATENATION.

The indices are cut into runs of consecutive values ([0, 2, 3, 7] -> [0], [2, 3], [7]);
each run is one SLICE of the gathered axis (a repeated run is sliced once), and the
slices are concatenated along it in a tree of CONCATENATIONs within XNNPACK's input limit
(Rule.concat). A single run is a single SLICE. Indices that are not 1-D are gathered
flat, then RESHAPEd to the output shape. Only data moves, so the result is exact, for
float and quantized tensors alike.

Each SLICE costs a delegated op: measured single-threaded, a few runs along an outer
axis beat the CPU GATHER, while many runs (13 of 8 rows) or slices of the last axis are
slower than it, and the engine's latency check rolls those back.
"""

from __future__ import annotations

import numpy as np

from xnnfit.rewrite.graph import Graph
from xnnfit.rewrite.rule import Match, RewriteContext, Rule, same_quant

MAX_SLICES = 64  # beyond this many runs a one-hot matmul is the better rewrite
_DTYPES = ("float32", "float16", "int8", "uint8")


def _example():
    import keras
    import tensorflow as tf

    inp = keras.Input((16, 32), name="x")
    x = keras.layers.Dense(32, name="dense")(inp)
    x = keras.layers.Lambda(lambda t: tf.gather(t, [0, 1, 2, 3, 8, 9, 10, 11], axis=1), name="pick_rows")(x)
    return keras.Model(inp, keras.layers.Dense(8, name="head")(x))


def runs(indices: np.ndarray) -> list[tuple[int, int]]:
    """(start, length) of each run of consecutive increasing indices, in order."""
    out: list[tuple[int, int]] = []
    for k in (int(v) for v in indices.reshape(-1)):
        if out and out[-1][0] + out[-1][1] == k:
            out[-1] = (out[-1][0], out[-1][1] + 1)
        else:
            out.append((k, 1))
    return out


class GatherConst(Rule, id="XR010", fixes=("XNN003",), ops=("GATHER",)):
    title = "GATHER with constant indices -> static slices + concatenation"
    example = staticmethod(_example)

    def check(self, g: Graph, i: int) -> dict | str:
        x, idx = g.inputs(i)[:2]
        out = g.outputs(i)[0]
        opts = g.options(i, "GatherOptions")
        shape = g.shape(x)
        axis = int(opts.axis) if opts is not None else 0
        axis = axis + len(shape) if axis < 0 else axis
        indices = g.value(idx)
        if indices is None:
            return "GATHER indices are computed at run time (a lookup; keep it on CPU or use a one-hot matmul)"
        if g.dtype(x) not in _DTYPES:
            return f"GATHER of {g.dtype(x)} data (XNNPACK has no SLICE for it)"
        if opts is not None and opts.batchDims:
            return "GATHER with batch_dims"
        if any(d < 0 for d in shape) or any(d < 0 for d in g.shape(out)):
            return "GATHER input has dynamic dimensions (apply XR002 or pin the input shape first)"
        if not 0 <= axis < len(shape):
            return f"GATHER axis {axis} is outside the input's rank {len(shape)}"
        if indices.size == 0 or indices.min() < 0 or indices.max() >= shape[axis]:
            return f"GATHER indices are empty or outside 0..{shape[axis] - 1}"
        if g.quant(x) is not None and not same_quant(g.quant(x), g.quant(out)):
            return "GATHER output is quantized differently from its input"
        pieces = runs(indices)
        if len(pieces) > MAX_SLICES:
            return f"GATHER indices form {len(pieces)} runs (more than {MAX_SLICES} slices)"
        return {"axis": axis, "runs": pieces}

    def apply(self, g: Graph, m: Match, ctx: RewriteContext) -> None:
        i = m.anchor
        x, out = g.inputs(i)[0], g.outputs(i)[0]
        axis, pieces = m.detail["axis"], m.detail["runs"]
        shape = list(g.shape(x))
        flat = (*shape[:axis], sum(n for _, n in pieces), *shape[axis + 1 :])
        ops: list = []
        gathered = out if tuple(g.shape(out)) == flat else self._tensor(g, x, flat, "gathered")
        sliced: dict[tuple[int, int], int] = {}  # a run repeated in the indices is sliced once
        for start, length in pieces:
            if (start, length) in sliced:
                continue
            begin, size = [0] * len(shape), list(shape)
            begin[axis], size[axis] = start, length
            dst = gathered if len(pieces) == 1 else self._tensor(g, x, size, f"slice/{start}")
            ops.append(self.slice(g, x, dst, begin, size))
            sliced[(start, length)] = dst
        if len(pieces) > 1:
            ops += self.concat(g, [sliced[p] for p in pieces], gathered, axis)
        if gathered != out:
            ops.append(self.reshape(g, gathered, out, g.shape(out)))
        g.ops[i : i + 1] = ops

    def _tensor(self, g: Graph, like: int, shape, name: str) -> int:
        return g.add_tensor(shape, g.dtype(like), self.tag(name), g.quant(like))
