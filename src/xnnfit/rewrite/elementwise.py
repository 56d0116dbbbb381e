"""Elementwise op chains: find the ops computing y from x, evaluate them with numpy, clone them."""

from __future__ import annotations

import copy

import numpy as np

from xnnfit.rewrite.graph import Graph

_ACT = {
    0: lambda v: v,
    1: lambda v: np.maximum(v, 0),
    2: lambda v: np.clip(v, -1, 1),
    3: lambda v: np.clip(v, 0, 6),
    4: np.tanh,
}
UNARY = {
    "SQUARE": np.square,
    "NEG": np.negative,
    "ABS": np.abs,
    "EXP": np.exp,
    "SQRT": np.sqrt,
    "RSQRT": lambda v: 1 / np.sqrt(v),
    "TANH": np.tanh,
    "LOGISTIC": lambda v: 1 / (1 + np.exp(-v)),
    "RELU": lambda v: np.maximum(v, 0),
    "RELU6": lambda v: np.clip(v, 0, 6),
    "RELU_N1_TO_1": lambda v: np.clip(v, -1, 1),
    "FLOOR": np.floor,
    "CEIL": np.ceil,
    "SIN": np.sin,
    "COS": np.cos,
    "ELU": lambda v: np.where(v > 0, v, np.expm1(np.minimum(v, 0))),
    "HARD_SWISH": lambda v: v * np.clip(v + 3, 0, 6) / 6,
}
BINARY = {
    "ADD": np.add,
    "SUB": np.subtract,
    "MUL": np.multiply,
    "DIV": np.divide,
    "MAXIMUM": np.maximum,
    "MINIMUM": np.minimum,
    "SQUARED_DIFFERENCE": lambda a, b: (a - b) ** 2,
}
IDENTITY = {"DEQUANTIZE", "QUANTIZE"}  # the real value passes through unchanged
ELEMENTWISE = frozenset(UNARY) | frozenset(BINARY) | {"LEAKY_RELU"} | IDENTITY


def chain(g: Graph, y: int, x: int | set[int], limit: int = 16) -> list[int] | None:
    """Op indices (execution order) computing `y` from `x` (or any of a set of equal tensors) and constants only."""
    xs = x if isinstance(x, set) else {x}
    ops: set[int] = set()
    stack = [y]
    while stack:
        t = stack.pop()
        if t in xs or g.value(t) is not None:
            continue
        p = g.producer(t)
        if p is None or g.op(p) not in ELEMENTWISE or len(ops) >= limit:
            return None
        if p not in ops:
            ops.add(p)
            stack.extend(g.inputs(p))
    return sorted(ops)


def evaluate(g: Graph, ops: list[int], x: int | set[int], x_value: np.ndarray, y: int) -> np.ndarray:
    """Real value of `y` when `x` (and its aliases) is `x_value`, through `ops` (constants dequantized)."""
    env = {t: np.asarray(x_value, dtype=np.float64) for t in (x if isinstance(x, set) else {x})}

    def val(t: int) -> np.ndarray:
        if t in env:
            return env[t]
        v = g.real_value(t)
        if v is None:
            raise ValueError(f"tensor {t} has no value")
        return v

    for i in ops:
        name, ins = g.op(i), g.inputs(i)
        opts = g.ops[i].builtinOptions
        if name in IDENTITY:
            out = val(ins[0])
        elif name in UNARY:
            out = UNARY[name](val(ins[0]))
        elif name == "LEAKY_RELU":
            a = val(ins[0])
            leaky = g.options(i, "LeakyReluOptions")
            alpha = leaky.alpha if leaky is not None else 0.0  # no options: the runtime's alpha is 0
            out = np.where(a >= 0, a, a * alpha)
        else:
            out = BINARY[name](val(ins[0]), val(ins[1]))
            act = getattr(opts, "fusedActivationFunction", 0) if opts is not None else 0
            out = _ACT.get(act, lambda v: v)(out)
        env[g.outputs(i)[0]] = out
    return val(y)


def _reads(x: int | set[int], new_x: int) -> dict[int, int]:
    """The tensor map a clone starts from: `x` (or each of its aliases) read as `new_x`."""
    return {t: new_x for t in (x if isinstance(x, set) else {x})}


def clone(g: Graph, ops: list[int], x: int | set[int], new_x: int, tag) -> tuple[list, dict[int, int]]:
    """Copies of `ops` reading `new_x` instead of `x` (or its aliases); returns (new ops, old->new map)."""
    mapping, new_ops = _reads(x, new_x), []
    for i in ops:
        out_old = g.outputs(i)[0]
        shape = g.shape(out_old)
        out_new = g.add_tensor(shape, g.dtype(out_old), tag(g.name(out_old)), g.quant(out_old))
        op = copy.deepcopy(g.ops[i])
        op.inputs = [mapping.get(int(v), int(v)) for v in op.inputs]
        op.outputs = [out_new]
        op.debugMetadataIndex = -1
        mapping[out_old] = out_new
        new_ops.append(op)
    return new_ops, mapping


def clone_float(g: Graph, ops: list[int], x: int | set[int], new_x: int, tag) -> tuple[list, dict[int, int]]:
    """Float32 copies of `ops` reading float `new_x`: quantize/dequantize vanish, constants are dequantized."""
    mapping, new_ops = _reads(x, new_x), []
    for i in ops:
        out_old = g.outputs(i)[0]
        ins = g.inputs(i)
        if g.op(i) in IDENTITY:
            mapping[out_old] = mapping.get(ins[0], ins[0])
            continue
        new_ins = []
        for t in ins:
            if t in mapping:
                new_ins.append(mapping[t])
            elif g.value(t) is not None and g.dtype(t) != "float32":
                new_ins.append(g.add_const(g.real_value(t).astype(np.float32), tag(f"const/{g.name(t)}")))
            else:
                new_ins.append(t)
        out_new = g.add_tensor(g.shape(out_old), "float32", tag(g.name(out_old)))
        op = copy.deepcopy(g.ops[i])
        op.inputs = new_ins
        op.outputs = [out_new]
        op.debugMetadataIndex = -1
        mapping[out_old] = out_new
        new_ops.append(op)
    return new_ops, mapping
