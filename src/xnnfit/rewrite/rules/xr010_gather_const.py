"""XR010: GATHER with constant indices -> static SLICEs and CONCATENATION.

The indices are cut into runs of consecutive values ([0, 2, 3, 7] -> [0], [2, 3], [7]);
each run is one SLICE of the gathered axis (a repeated run is sliced once), and the
slices are concatenated along it in a tree of CONCATENATIONs with at most 5 inputs each
(XNNPACK's limit). A single run is a single SLICE. Indices that are not 1-D are gathered
flat, then RESHAPEd to the output shape. Only data moves, so the result is exact, for
float and quantized tensors alike.

Each SLICE costs a delegated op: measured single-threaded, a few runs along an outer
axis beat the CPU GATHER, while many runs (13 of 8 rows) or slices of the last axis are
slower than it, and the engine's latency check rolls those back.
"""

from __future__ import annotations

import numpy as np

from xnnfit.rewrite.graph import Graph
from xnnfit.rewrite.rule import Match, NoMatch, RewriteContext, Rule
from xnnfit.tflite.schema import fb

MAX_CONCAT_INPUTS = 5  # XNNPACK refuses CONCATENATION with more inputs
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


class GatherConst(Rule):
    id = "XR010"
    title = "GATHER with constant indices -> static slices + concatenation"
    fixes = ("XNN003",)
    exactness = "exact"
    example = staticmethod(_example)

    def match(self, g: Graph, ctx: RewriteContext) -> list[Match] | NoMatch:
        return self.scan(g, ("GATHER",), self._why_not)

    def _why_not(self, g: Graph, i: int) -> dict | str:
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
        if g.quant(x) is not None and not _same_quant(g.quant(x), g.quant(out)):
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
            begin = [0] * len(shape)
            begin[axis] = start
            size = list(shape)
            size[axis] = length
            dst = gathered if len(pieces) == 1 else self._tensor(g, x, size, f"slice/{start}")
            b = g.add_const(np.asarray(begin, np.int32), self.tag("begin"))
            s = g.add_const(np.asarray(size, np.int32), self.tag("size"))
            ops.append(g.make_op("SLICE", [x, b, s], [dst], fb.SliceOptionsT(), "SliceOptions"))
            sliced[(start, length)] = dst
        parts = [(sliced[p], p[1]) for p in pieces]
        if len(parts) > 1:
            self._concat(g, x, parts, axis, shape, gathered, ops)
        if gathered != out:
            opts = fb.ReshapeOptionsT()
            opts.newShape = list(g.shape(out))
            new_shape = g.add_const(np.asarray(g.shape(out), np.int32), self.tag("shape"))
            ops.append(g.make_op("RESHAPE", [gathered, new_shape], [out], opts, "ReshapeOptions"))
        g.ops[i : i + 1] = ops

    def _concat(
        self, g: Graph, x: int, parts: list[tuple[int, int]], axis: int, shape: list[int], dst: int, ops: list
    ) -> None:
        """Concatenate `parts` (tensor, length on axis) into dst with <= 5 inputs per op."""
        while len(parts) > MAX_CONCAT_INPUTS:
            grouped = []
            for k in range(0, len(parts), MAX_CONCAT_INPUTS):
                group = parts[k : k + MAX_CONCAT_INPUTS]
                if len(group) == 1:
                    grouped.append(group[0])
                    continue
                length = sum(n for _, n in group)
                size = list(shape)
                size[axis] = length
                t = self._tensor(g, x, size, "concat")
                ops.append(self._concat_op(g, [p for p, _ in group], t, axis))
                grouped.append((t, length))
            parts = grouped
        ops.append(self._concat_op(g, [p for p, _ in parts], dst, axis))

    @staticmethod
    def _concat_op(g: Graph, inputs: list[int], dst: int, axis: int):
        opts = fb.ConcatenationOptionsT()
        opts.axis = axis
        return g.make_op("CONCATENATION", inputs, [dst], opts, "ConcatenationOptions")

    def _tensor(self, g: Graph, like: int, shape, name: str) -> int:
        return g.add_tensor(shape, g.dtype(like), self.tag(name), g.quant(like))


def _same_quant(a, b) -> bool:
    """True when two quantizations map stored values to the same reals."""
    if a is None or b is None:
        return a is b
    return list(a.scale) == list(b.scale) and _zero_points(a) == _zero_points(b)


def _zero_points(q) -> list[int]:
    return [int(z) for z in q.zeroPoint] if q.zeroPoint is not None else [0] * len(q.scale)
