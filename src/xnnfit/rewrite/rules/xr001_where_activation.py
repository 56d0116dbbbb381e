"""XR001: tf.where activations (compare with 0 + SELECT) -> delegated arithmetic.

`where(x < 0, f(x), g(x))` with elementwise f, g and f(0) == g(0) == k equals
`f(neg) + g(pos) - k` where pos = relu(x), neg = x - pos. In float, pos is RELU; in
int8 RELU/MINIMUM are not delegated, so pos = (leaky_relu(x, a) - a*x) / (1 - a).
"""

from __future__ import annotations

import numpy as np

from xnnfit.rewrite.elementwise import chain, clone, clone_float, evaluate
from xnnfit.rewrite.graph import Graph
from xnnfit.rewrite.rule import Match, RewriteContext, Rule
from xnnfit.tflite.schema import fb

_NEG_WHEN_TRUE = {
    ("LESS", 0): True,
    ("LESS_EQUAL", 0): True,
    ("GREATER", 0): False,
    ("GREATER_EQUAL", 0): False,
    ("LESS", 1): False,
    ("LESS_EQUAL", 1): False,
    ("GREATER", 1): True,
    ("GREATER_EQUAL", 1): True,
}
_LEAK = 0.5


def _example():
    import keras
    import tensorflow as tf

    inp = keras.Input((16,), name="x")
    x = keras.layers.Dense(16, name="dense")(inp)
    x = keras.layers.Lambda(lambda t: tf.where(t < 0, 0.1 * t, tf.square(t)), name="where_act")(x)
    return keras.Model(inp, keras.layers.Dense(4, name="head")(x))


class WhereActivation(Rule, id="XR001", fixes=("XNN001",), ops=("SELECT", "SELECT_V2")):
    title = "tf.where activation -> relu/leaky_relu arithmetic"
    example = staticmethod(_example)

    def check(self, g: Graph, i: int) -> dict | str:
        cond, t_true, t_false = g.inputs(i)[:3]
        p = g.producer(cond)
        if p is None or g.op(p) not in ("LESS", "LESS_EQUAL", "GREATER", "GREATER_EQUAL"):
            return "the select condition is not a comparison"
        a, b = g.inputs(p)[:2]
        zero_side = 1 if g.value(b) is not None else (0 if g.value(a) is not None else None)
        if zero_side is None:
            return "the comparison is between two computed tensors"
        c = g.real_value(b if zero_side == 1 else a)
        if not np.allclose(c, 0.0):
            return "the comparison threshold is not 0"
        x = a if zero_side == 1 else b
        if not (g.dtype(x).startswith("float") or g.dtype(x) in ("int8", "uint8")):
            return f"the compared tensor is {g.dtype(x)}"
        neg_when_true = _NEG_WHEN_TRUE[(g.op(p), 1 - zero_side)]
        f_t, g_t = (t_true, t_false) if neg_when_true else (t_false, t_true)
        same = {x}
        f_ops, g_ops = chain(g, f_t, same), chain(g, g_t, same)
        if f_ops is None or g_ops is None:
            return "a branch is not an elementwise function of the compared tensor"
        try:
            f0, g0 = evaluate(g, f_ops, same, 0.0, f_t), evaluate(g, g_ops, same, 0.0, g_t)
        except (ValueError, FloatingPointError, TypeError):
            return "a branch cannot be evaluated at 0"
        if not np.allclose(f0, g0, atol=1e-6):
            return "the branches differ at 0 (the activation jumps), so no blend is exact"
        detail = {"x": x, "same": same, "neg": (f_t, f_ops), "pos": (g_t, g_ops), "k": np.asarray(f0, dtype=np.float64)}
        detail["special"] = _special(g, x, f_t, f_ops, g_t, g_ops)
        return detail

    def apply(self, g: Graph, m: Match, ctx: RewriteContext) -> None:
        d = m.detail
        i = m.anchor
        out = g.outputs(i)[0]
        if d.get("special") is not None:
            ops, final = self._single_op(g, d, out)
        elif g.dtype(out).startswith("float"):
            ops, final = self._float_form(g, d, out)
        else:
            ops, final = self._int8_form(g, d, out)
        g.insert(i, ops)
        g.rewire(out, final)

    def _single_op(self, g: Graph, d: dict, out: int) -> tuple[list, int]:
        """LEAKY_RELU, PRELU or ELU when the activation is exactly one of them."""
        kind, param = d["special"]
        x = d["x"]
        ops = []
        if g.dtype(out).startswith("float") and not g.dtype(x).startswith("float"):
            xf = g.add_tensor(g.shape(x), "float32", self.tag("x"))
            ops.append(self.emit(g, "DEQUANTIZE", [x], [xf]))
            x = xf
        final = g.add_tensor(g.shape(out), g.dtype(out), self.tag(kind), g.quant(out))
        if kind == "leaky":
            ops.append(self.emit(g, "LEAKY_RELU", [x], [final], alpha=float(param)))
        elif kind == "prelu":
            ops.append(
                self.emit(g, "PRELU", [x, g.add_const(np.asarray(param, np.float32), self.tag("alpha"))], [final])
            )
        else:
            ops.append(self.emit(g, "ELU", [x], [final]))
        return ops, final

    def _float_form(self, g: Graph, d: dict, out: int) -> tuple[list, int]:
        """pos = relu(x), neg = x - pos, branches recomputed in float (a quantized x is dequantized first)."""
        x = d["x"]
        ops = []
        xf = x
        if not g.dtype(x).startswith("float"):
            xf = g.add_tensor(g.shape(x), "float32", self.tag("x"))
            ops.append(self.emit(g, "DEQUANTIZE", [x], [xf]))
        dtype = g.dtype(xf)
        pos = g.add_tensor(g.shape(x), dtype, self.tag("pos"))
        neg = g.add_tensor(g.shape(x), dtype, self.tag("neg"))
        ops.append(self.emit(g, "RELU", [xf], [pos]))
        ops.append(self.emit(g, "SUB", [xf, pos], [neg]))
        branches = []
        for side, src in (("neg", neg), ("pos", pos)):
            t, chain_ops = d[side]
            if not chain_ops and t not in d["same"]:  # a constant branch: broadcast it as is
                branches.append(
                    t if g.dtype(t) == "float32" else g.add_const(g.real_value(t).astype("float32"), self.tag("const"))
                )
                continue
            new_ops, mapping = clone_float(g, chain_ops, d["same"], src, lambda n, s=side: self.tag(f"{s}/{n}"))
            ops.extend(new_ops)
            branches.append(mapping[t])
        return self._blend(g, ops, branches, d["k"], out, quantized=False)

    def _int8_form(self, g: Graph, d: dict, out: int) -> tuple[list, int]:
        """All-int8: pos = (leaky_relu(x, a) - a*x) / (1 - a) (RELU is not delegated in int8)."""
        x = d["x"]
        dt, shape = g.dtype(x), g.shape(x)
        lo, hi = _range(g, x)
        leaky = g.add_tensor(shape, dt, self.tag("leaky"), _qparams(_LEAK * min(lo, 0), hi, dt))
        ax = g.add_tensor(shape, dt, self.tag("ax"), _qparams(_LEAK * lo, _LEAK * hi, dt))
        half_pos = g.add_tensor(shape, dt, self.tag("half_pos"), _qparams(0.0, (1 - _LEAK) * max(hi, 0), dt))
        pos = g.add_tensor(shape, dt, self.tag("pos"), _qparams(0.0, max(hi, 0), dt))
        neg = g.add_tensor(shape, dt, self.tag("neg"), _qparams(min(lo, 0), 0.0, dt))
        ops = [
            self.emit(g, "LEAKY_RELU", [x], [leaky], alpha=_LEAK),
            self.emit(g, "MUL", [x, self._qconst(g, _LEAK, x)], [ax]),
            self.emit(g, "SUB", [leaky, ax], [half_pos]),
            self.emit(g, "MUL", [half_pos, self._qconst(g, 1 / (1 - _LEAK), x)], [pos]),
            self.emit(g, "SUB", [x, pos], [neg]),
        ]
        branches = []
        for side, src in (("neg", neg), ("pos", pos)):
            t, chain_ops = d[side]
            if not chain_ops and t not in d["same"]:
                branches.append(t)
                continue
            new_ops, mapping = clone(g, chain_ops, d["same"], src, lambda n, s=side: self.tag(f"{s}/{n}"))
            ops.extend(new_ops)
            branches.append(mapping[t])
        return self._blend(g, ops, branches, d["k"], out, quantized=True)

    def _blend(
        self, g: Graph, ops: list, branches: list[int], k: np.ndarray, out: int, quantized: bool
    ) -> tuple[list, int]:
        """f(neg) + g(pos) - k into a tensor shaped like `out`."""
        dtype = g.dtype(out)
        q = g.quant(out) if quantized else None
        if np.allclose(k, 0.0):
            final = g.add_tensor(g.shape(out), dtype, self.tag("result"), q)
            ops.append(self.emit(g, "ADD", branches, [final]))
            return ops, final
        summed = g.add_tensor(g.shape(out), dtype, self.tag("sum"), q)
        ops.append(self.emit(g, "ADD", branches, [summed]))
        final = g.add_tensor(g.shape(out), dtype, self.tag("result"), q)
        kc = (
            self._qconst(g, float(np.mean(k)), out)
            if quantized
            else g.add_const(np.asarray(k, np.float32), self.tag("k"))
        )
        ops.append(self.emit(g, "SUB", [summed, kc], [final]))
        return ops, final

    @staticmethod
    def _qconst(g: Graph, value: float, like: int) -> int:
        """A scalar constant of `like`'s dtype: float as is, int8 with scale |value|/127."""
        if g.dtype(like).startswith("float"):
            return g.add_const(np.asarray(value, np.float32), f"xnnfit:const/{value:g}")
        q = fb.QuantizationParametersT()
        q.scale = [abs(value) / 127.0 if value else 1.0]
        q.zeroPoint = [0]
        stored = np.asarray(
            127 if value > 0 else (-127 if value < 0 else 0), dtype=np.int8 if g.dtype(like) == "int8" else np.uint8
        )
        return g.add_const(stored, f"xnnfit:const/{value:g}", q)


def _special(g: Graph, x: int, f_t: int, f_ops: list[int], g_t: int, g_ops: list[int]):
    """('leaky', a), ('prelu', alphas) or ('elu', None) when f (x < 0 side) and g (x > 0 side) match one op."""
    if g_t != x or g_ops or len(f_ops) != 1:
        if g_t == x and not g_ops and len(f_ops) == 2 and g.op(f_ops[0]) == "EXP" and g.inputs(f_ops[0])[0] == x:
            second = f_ops[1]
            c = next((g.real_value(t) for t in g.inputs(second) if g.value(t) is not None), None)
            if (
                c is not None
                and c.size == 1
                and ((g.op(second) == "SUB" and np.isclose(c, 1.0)) or (g.op(second) == "ADD" and np.isclose(c, -1.0)))
            ):
                if g.dtype(x).startswith("float"):
                    return ("elu", None)
        return None
    op = f_ops[0]
    if g.op(op) != "MUL" or getattr(g.ops[op].builtinOptions, "fusedActivationFunction", 0):
        return None
    consts = [g.real_value(t) for t in g.inputs(op) if t != x and g.value(t) is not None]
    if len(consts) != 1 or x not in g.inputs(op):
        return None
    a = consts[0]
    if a.size == 1 and float(a.reshape(-1)[0]) != 0.0:  # a (1,)-shaped constant in int8 models, not a scalar
        return ("leaky", float(a.reshape(-1)[0]))
    if a.size > 1 and g.dtype(x).startswith("float") and a.shape[-1] == g.shape(x)[-1]:
        return ("prelu", a.astype(np.float32))
    return None


def _range(g: Graph, t: int) -> tuple[float, float]:
    """The real range a quantized tensor can hold."""
    q = g.quant(t)
    scale, zp = float(q.scale[0]), int(q.zeroPoint[0]) if q.zeroPoint is not None else 0
    lo_q, hi_q = (-128, 127) if g.dtype(t) == "int8" else (0, 255)
    return scale * (lo_q - zp), scale * (hi_q - zp)


def _qparams(lo: float, hi: float, dtype: str):
    """Per-tensor affine parameters covering [lo, hi] (and 0)."""
    lo, hi = min(lo, 0.0), max(hi, 0.0)
    scale = (hi - lo) / 255.0 or 1e-8
    lo_q = -128 if dtype == "int8" else 0
    q = fb.QuantizationParametersT()
    q.scale = [scale]
    q.zeroPoint = [int(round(lo_q - lo / scale))]
    return q
