"""XR014: PACK (tf.stack / ops.stack) -> RESHAPE + CONCATENATION; UNPACK -> SPLIT + RESHAPE.

Stacking N tensors of shape S on axis k is concatenating them on k after giving each a
size-1 axis there; unstacking is splitting on k and dropping that axis. Values only
move, so the result is bit-identical. RoPE's rotate-half (`ops.stack([-x2, x1], -1)`) is
the common source in transformers. The delegate concatenates at most
MAX_CONCAT_INPUTS tensors at a time (kb/limits.py), so longer stacks concatenate as a tree (Rule.concat).
"""

from __future__ import annotations

from xnnfit.kb.limits import MAX_CONCAT_INPUTS, MAX_RANK
from xnnfit.rewrite.graph import Graph
from xnnfit.rewrite.rule import Match, RewriteContext, Rule, same_quant

__all__ = ["MAX_CONCAT_INPUTS", "PackConcat"]  # MAX_CONCAT_INPUTS: the limit its tests check the tree against


def _example():
    import keras

    inp = keras.Input((16, 8), name="x")
    x1, x2 = keras.ops.split(inp, 2, axis=-1)
    rotated = keras.layers.Lambda(
        lambda t: keras.ops.reshape(keras.ops.stack([-t[1], t[0]], axis=-1), (-1, 16, 8)), name="rotate_half"
    )([x1, x2])
    return keras.Model(inp, keras.layers.Dense(8, name="head")(rotated * 2.0))


class PackConcat(Rule, id="XR014", fixes=("XNN013",), ops=("PACK", "UNPACK")):
    title = "PACK -> RESHAPE + CONCATENATION, UNPACK -> SPLIT + RESHAPE"
    example = staticmethod(_example)

    def check(self, g: Graph, i: int) -> dict | str:
        op = g.op(i)
        big = g.outputs(i)[0] if op == "PACK" else g.inputs(i)[0]
        rank = len(g.shape(big))
        if any(d < 0 for d in g.shape(big)):
            return f"{op} has dynamic dimensions (apply XR002 first)"
        if rank > MAX_RANK:
            return f"{op} makes a rank-{rank} tensor (XNNPACK stops at {MAX_RANK})"
        axis = int(getattr(g.options(i, "PackOptions" if op == "PACK" else "UnpackOptions"), "axis", 0) or 0)
        axis = axis + rank if axis < 0 else axis
        if not 0 <= axis < rank:
            return f"{op} axis out of range"
        tensors = g.inputs(i) + g.outputs(i)
        if op == "PACK" and not all(same_quant(g.quant(tensors[0]), g.quant(t)) for t in tensors):
            return "PACK inputs are quantized differently (a concatenation would requantize)"
        return {"axis": axis}

    def apply(self, g: Graph, m: Match, ctx: RewriteContext) -> None:
        i, axis = m.anchor, m.detail["axis"]
        if g.op(i) == "PACK":
            g.ops[i : i + 1] = self._pack(g, g.inputs(i), g.outputs(i)[0], axis)
        else:
            g.ops[i : i + 1] = self._unpack(g, g.inputs(i)[0], g.outputs(i), axis)

    def _pack(self, g: Graph, xs: list[int], out: int, axis: int) -> list:
        """Each input gets a size-1 axis at `axis`; the pieces are concatenated there."""
        ops, parts = [], []
        for x in xs:
            shape = list(g.shape(x))
            shape.insert(axis, 1)
            parts.append(g.add_tensor(shape, g.dtype(x), self.tag("unsqueezed"), g.quant(x)))
            ops.append(self.reshape(g, x, parts[-1], shape))
        if len(parts) == 1:
            return [*ops, self.reshape(g, parts[0], out, g.shape(out))]
        return ops + self.concat(g, parts, out, axis)

    def _unpack(self, g: Graph, x: int, outs: list[int], axis: int) -> list:
        """SPLIT into size-1 pieces along `axis`, each reshaped to drop that axis."""
        shape = list(g.shape(x))
        piece = shape[:axis] + [1] + shape[axis + 1 :]
        pieces = [g.add_tensor(piece, g.dtype(x), self.tag("piece"), g.quant(x)) for _ in outs]
        split = self.emit(g, "SPLIT", [self.ints(g, axis, "axis"), x], pieces, numSplits=len(outs))
        return [split] + [self.reshape(g, p, o, g.shape(o)) for p, o in zip(pieces, outs)]
