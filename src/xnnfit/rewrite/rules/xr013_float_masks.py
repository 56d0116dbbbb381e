"""XR013: select by a mask -> float arithmetic, with the mask's int/bool plumbing computed in float once.

SELECT/SELECT_V2(cond, a, b) on float tensors becomes `a * m + b * (1 - m)` with
m = float(cond) in {0, 1}: equal to the select for finite a and b (1·a + 0·b = a, 0·a + b = b),
fully masked rows included; a constant branch c folds into one shared `(1 - m) * c`.
Keras' masked Softmax, causal and padding masks, and keras-hub's merged attention masks
all end in such selects, one or two per layer, each a CPU island.

The mask itself is built from int32/bool ops XNNPACK never takes (RESHAPE of the padding
mask, MINIMUM with the causal mask, GREATER, EQUAL, LOGICAL_AND, REDUCE_ALL, CAST...).
Each is re-emitted in float (comparisons as step(d) = ceil(min(relu(d), 1)), logical ops as
MUL/MAXIMUM/1-x, REDUCE_ALL/ANY as REDUCE_MIN/MAX), once per mask tensor, placed right
after the tensor it mirrors. Integers stay exact in float32 up to 2**24, so integer
constants beyond that refuse the rule. What has no float form (an int graph input, a
GATHER) is CAST to float once where it is made: for a padding mask that is one CPU node
at the start of the graph, next to the token GATHER, instead of one per layer. A quantized
(int8) tensor in the mask cone is lifted by its real values, through a DEQUANTIZE (a
constant dequantized here), never by its stored integers: an int8 mask and the 0.5 it is
compared with each have their own scale.
"""

from __future__ import annotations

import copy
import weakref

import numpy as np

from xnnfit.rewrite.graph import Graph
from xnnfit.rewrite.rule import Match, RewriteContext, Rule

EXACT_INT = 2**24  # float32 holds every integer up to this magnitude exactly
SELECTS = ("SELECT", "SELECT_V2")
_SAME = {
    "RESHAPE",
    "EXPAND_DIMS",
    "SQUEEZE",
    "TRANSPOSE",
    "STRIDED_SLICE",
    "SLICE",
    "BROADCAST_TO",
    "TILE",
}  # values move, data is input 0
_ARITH = {"ADD", "SUB", "MUL", "MINIMUM", "MAXIMUM", "NEG", "ABS"}  # exact on integers below EXACT_INT
_COMPARE = {"GREATER", "GREATER_EQUAL", "LESS", "LESS_EQUAL", "EQUAL", "NOT_EQUAL"}
_LOGIC = {"LOGICAL_AND", "LOGICAL_OR", "LOGICAL_NOT"}
_REDUCE = {"REDUCE_ALL": "REDUCE_MIN", "REDUCE_ANY": "REDUCE_MAX"}
_INTS = {"int32", "int64", "int16", "int8", "uint8", "bool"}

_memo: weakref.WeakKeyDictionary[Graph, dict[int, int]] = weakref.WeakKeyDictionary()


def _example():
    import keras

    x = keras.Input((8, 8), name="scores")
    mask = keras.Input((8, 8), dtype="int32", name="mask")
    s = keras.layers.Dense(8, name="proj")(x)
    probs = keras.layers.Softmax(axis=-1, name="masked_softmax")(s, mask=mask)
    return keras.Model([x, mask], keras.layers.Dense(8, name="head")(probs))


class FloatMasks(Rule, id="XR013", fixes=("XNN001", "XNN011", "XNN021"), ops=SELECTS):
    title = "select by a mask -> float blend; the mask's int/bool plumbing -> float ops"
    leaves = frozenset({"CAST"})  # an int/bool graph input is cast to float once, at the start: that node stays on CPU
    example = staticmethod(_example)

    def check(self, g: Graph, i: int) -> dict | str:
        cond, a, b = g.inputs(i)[:3]
        out = g.outputs(i)[0]
        if g.dtype(out) != "float32" or g.quant(out) is not None and g.quant(out).scale is not None:
            return f"select on {g.dtype(out)} (only float32 selects are blended)"
        shape = g.shape(out)
        if any(d < 0 for d in shape):
            return "select has dynamic dimensions (apply XR002 first)"
        if g.op(i) == "SELECT" and len(g.shape(cond)) not in (0, len(shape)):
            return "SELECT by a rank-1 condition picks whole rows (no elementwise form)"
        for t in (a, b):
            v = g.value(t)
            if v is not None and not np.all(np.isfinite(v)):
                return "a select branch holds an infinite constant (0 * inf is not 0)"
        if _broadcast(g.shape(cond), g.shape(a), g.shape(b)) != tuple(shape):
            return "select output shape is not the broadcast of its inputs"
        why = _liftable(g, cond, set())
        if why:
            return why
        return {"op": g.ops[i]}

    def apply(self, g: Graph, m: Match, ctx: RewriteContext) -> None:
        lifted = _memo.setdefault(g, {})
        cond, a, b = m.detail["op"].inputs[:3]
        out = m.detail["op"].outputs[0]
        mask = self._lift(g, cond, lifted)
        keep = self._complement(g, mask, lifted)
        va, vb = g.value(a), g.value(b)
        ops = []
        if vb is not None and vb.size == 1:
            ops += self._blend_const(g, a, mask, keep, float(vb.reshape(-1)[0]), out, lifted)
        elif va is not None and va.size == 1:
            ops += self._blend_const(g, b, keep, mask, float(va.reshape(-1)[0]), out, lifted)
        else:
            pa = g.add_tensor(_broadcast(g.shape(a), g.shape(mask)), "float32", self.tag("picked_true"))
            pb = g.add_tensor(_broadcast(g.shape(b), g.shape(keep)), "float32", self.tag("picked_false"))
            ops += [
                self.emit(g, "MUL", [a, mask], [pa]),
                self.emit(g, "MUL", [b, keep], [pb]),
                self.emit(g, "ADD", [pa, pb], [out]),
            ]
        i = next(k for k, op in enumerate(g.ops) if op is m.detail["op"])  # after the lifting inserted ops before it
        g.ops[i : i + 1] = ops

    def _blend_const(self, g: Graph, x: int, pick: int, other: int, c: float, out: int, lifted: dict) -> list:
        """x * pick + c * other, with c * other made once per (mask, c)."""
        if c == 0.0:
            return [self.emit(g, "MUL", [x, pick], [out])]
        key = ("const", other, c)
        picked = g.add_tensor(_broadcast(g.shape(x), g.shape(pick)), "float32", self.tag("picked"))
        if key not in lifted:
            lifted[key] = g.add_tensor(g.shape(other), "float32", self.tag(f"masked_value_{c:g}"))
            self._place(
                g, other, [self.emit(g, "MUL", [other, g.add_const(np.float32(c), self.tag("value"))], [lifted[key]])]
            )
        return [
            self.emit(g, "MUL", [x, pick], [picked]),
            self.emit(g, "ADD", [picked, lifted[key]], [out]),
        ]

    def _complement(self, g: Graph, mask: int, lifted: dict) -> int:
        key = ("not", mask)
        if key not in lifted:
            lifted[key] = g.add_tensor(g.shape(mask), "float32", self.tag("not_mask"))
            self._place(g, mask, [self.emit(g, "SUB", [self._one(g), mask], [lifted[key]])])
        return lifted[key]

    def _one(self, g: Graph) -> int:
        return g.add_const(np.float32(1.0), self.tag("one"))

    def _lift(self, g: Graph, t: int, lifted: dict) -> int:
        """A float32 tensor holding float(t), made once."""
        if t in lifted:
            return lifted[t]
        if g.dtype(t) == "float32":
            return t
        if g.quant(t) is not None:  # a quantized tensor's float form is its real value, not its stored integers
            return self._dequantized(g, t, lifted)
        v = g.value(t)
        if v is not None:
            lifted[t] = g.add_const(v.astype(np.float32), self.tag("float"))
            return lifted[t]
        p = g.producer(t)
        shape = g.shape(t)
        name = g.op(p) if p is not None else ""
        res = g.add_tensor(shape, "float32", self.tag(f"float/{g.name(t)[-60:]}"))
        ins = g.inputs(p) if p is not None else []
        if name in _SAME and g.dtype(ins[0]) in _INTS:
            op = copy.deepcopy(g.ops[p])
            op.inputs = [self._lift(g, ins[0], lifted)] + list(op.inputs[1:])
            op.outputs = [res]
            ops = [op]
        elif name in _ARITH:
            op = copy.deepcopy(g.ops[p])
            op.inputs = [self._lift(g, u, lifted) for u in ins]
            op.outputs = [res]
            ops = [op]
        elif name == "CAST" and (
            g.dtype(ins[0]) in _INTS or g.dtype(t) == "bool"
        ):  # float -> int truncates: cast below
            src = self._lift(g, ins[0], lifted)
            ops = (
                []
                if g.dtype(t) != "bool" or g.dtype(ins[0]) == "bool"
                else self._step(g, src, res, absolute=True, integer=g.dtype(ins[0]) in _INTS)
            )
            if not ops:
                lifted[t] = src
                return src
        elif name in _COMPARE:
            x, y = (self._lift(g, u, lifted) for u in ins[:2])
            integer = all(g.dtype(u) in _INTS and g.quant(u) is None for u in ins[:2])
            ops = self._compare(g, name, x, y, res, integer)
        elif name in _LOGIC:
            xs = [self._lift(g, u, lifted) for u in ins]
            if name == "LOGICAL_AND":
                ops = [self.emit(g, "MUL", [xs[0], xs[1]], [res])]
            elif name == "LOGICAL_OR":
                ops = [self.emit(g, "MAXIMUM", xs, [res])]
            else:
                ops = [self.emit(g, "SUB", [self._one(g), xs[0]], [res])]
        elif name in _REDUCE:
            op = copy.deepcopy(g.ops[p])
            op.opcodeIndex = g.opcode_index(_REDUCE[name])
            op.inputs = [self._lift(g, ins[0], lifted), ins[1]]
            op.outputs = [res]
            ops = [op]
        elif name in SELECTS:
            c, a, b = (self._lift(g, u, lifted) for u in ins[:3])
            keep = self._complement(g, c, lifted)
            pa, pb = (g.add_tensor(shape, "float32", self.tag(n)) for n in ("picked_true", "picked_false"))
            ops = [
                self.emit(g, "MUL", [a, c], [pa]),
                self.emit(g, "MUL", [b, keep], [pb]),
                self.emit(g, "ADD", [pa, pb], [res]),
            ]
        else:  # no float form: cast once where it is made (a graph input: at the start)
            ops = [self.emit(g, "CAST", [t], [res])]
        self._place(g, t, ops)
        lifted[t] = res
        return res

    def _dequantized(self, g: Graph, t: int, lifted: dict) -> int:
        """The real value of quantized tensor t in float32: a constant dequantized here, else a DEQUANTIZE."""
        v = g.real_value(t)
        if v is not None:
            lifted[t] = g.add_const(v.astype(np.float32), self.tag("float"))
            return lifted[t]
        res = g.add_tensor(g.shape(t), "float32", self.tag(f"float/{g.name(t)[-60:]}"))
        self._place(g, t, [self.emit(g, "DEQUANTIZE", [t], [res])])
        lifted[t] = res
        return res

    def _compare(self, g: Graph, name: str, x: int, y: int, res: int, integer: bool) -> list:
        """a > b is step(a - b); a >= b is 1 - step(b - a); a == b is 1 - step(|a - b|); the rest mirror these."""
        swap = name in ("LESS", "GREATER_EQUAL")
        negate = name in ("GREATER_EQUAL", "LESS_EQUAL", "EQUAL")
        absolute = name in ("EQUAL", "NOT_EQUAL")
        diff = g.add_tensor(g.shape(res), "float32", self.tag("diff"))
        ops = [self.emit(g, "SUB", [y, x], [diff]) if swap else self.emit(g, "SUB", [x, y], [diff])]
        if not negate:
            return ops + self._step(g, diff, res, absolute, integer)
        step = g.add_tensor(g.shape(res), "float32", self.tag("step"))
        return ops + self._step(g, diff, step, absolute, integer) + [self.emit(g, "SUB", [self._one(g), step], [res])]

    def _step(self, g: Graph, d: int, res: int, absolute: bool, integer: bool) -> list:
        """res = 1 where d > 0 (|d| > 0 when `absolute`), else 0: ceil(min(relu(d), 1)).

        The ceil is not needed on integers.
        """
        shape = g.shape(res)
        ops, src = [], d
        if absolute:
            mag = g.add_tensor(shape, "float32", self.tag("abs"))
            ops.append(self.emit(g, "ABS", [src], [mag]))
            src = mag
        else:
            pos = g.add_tensor(shape, "float32", self.tag("relu"))
            ops.append(self.emit(g, "RELU", [src], [pos]))
            src = pos
        clipped = res if integer else g.add_tensor(shape, "float32", self.tag("clipped"))
        ops.append(self.emit(g, "MINIMUM", [src, self._one(g)], [clipped]))
        if not integer:
            ops.append(self.emit(g, "CEIL", [clipped], [res]))
        return ops

    def _place(self, g: Graph, t: int, ops: list) -> None:
        """Insert `ops` right after the op making tensor t (at the start for a graph input or constant)."""
        p = g.producer(t)
        g.insert(0 if p is None else p + 1, ops)


def _liftable(g: Graph, t: int, seen: set[int]) -> str:
    """Why the mask cone of t cannot be re-emitted in float exactly ('' when it can)."""
    if t in seen or g.dtype(t) == "float32" or g.quant(t) is not None:  # quantized: dequantized, not followed
        return ""
    seen.add(t)
    v = g.value(t)
    if v is not None:
        if v.dtype.kind in "iu" and v.size and np.abs(v.astype(np.int64)).max() > EXACT_INT:
            return f"the mask uses integer constants beyond 2**24 ({g.name(t)}): float32 would round them"
        return ""
    p = g.producer(t)
    if p is None:
        return ""
    name = g.op(p)
    ins = [u for u in g.inputs(p) if u >= 0]
    if name in _SAME:
        return _liftable(g, ins[0], seen) if g.dtype(ins[0]) in _INTS else ""
    if name in _ARITH | _COMPARE | _LOGIC | set(SELECTS):
        return next((w for u in ins if (w := _liftable(g, u, seen))), "")
    if name in _REDUCE or name == "CAST":
        return _liftable(g, ins[0], seen)
    return ""  # anything else is cast once where it is made


def _broadcast(*shapes) -> tuple[int, ...]:
    try:
        return tuple(int(d) for d in np.broadcast_shapes(*[tuple(s) for s in shapes]))
    except ValueError:
        return ()
