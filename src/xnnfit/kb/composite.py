"""The fused-attention composite: its flexbuffer attributes, and a real model carrying it.

LiteRT's STABLEHLO_COMPOSITE named `odml.scaled_dot_product_attention` (what litert-torch
emits for attention) has q [B, T, N, H], k and v [B, S, Nkv, H], an optional additive float
mask (last dim S), and options StableHLOCompositeOptions{name, decomposition_subgraph_index,
composite_attributes: a flexbuffer map with optional `scale` and `logit_cap`}. The built-in
kernel runs the decomposition subgraph; XNNPACK replaces the node with its own attention and
reads only the attributes (xnnpack_delegate.cc, VisitScaledDotAttentionCompositeNode).

A flexbuffer map stores its values in slots of one width, the widest any value needs:
Python's flexbuffers writes a float that float32 cannot hold exactly (0.1) in 8 bytes,
and one such value widens every slot. `slot_width` reads that width.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from xnnfit.tflite import build
from xnnfit.tflite.schema import fb
from xnnfit.tflite.writer import serialize

SDPA = "odml.scaled_dot_product_attention"
FLOAT_ATTRIBUTES = ("scale", "logit_cap")  # the attributes the delegate reads as float32


def attributes(values: dict[str, Any], byte_width: int = 0) -> bytes:
    """A flexbuffer map of `values`; floats in `byte_width`-byte slots (0: as Python's flexbuffers picks)."""
    from flatbuffers import flexbuffers

    b = flexbuffers.Builder()
    with b.Map():
        for key in sorted(values):
            b.Key(key)
            v = values[key]
            if isinstance(v, bool):
                b.Bool(v)
            elif isinstance(v, int):
                b.Int(v, byte_width=byte_width)
            elif isinstance(v, float):
                b.Float(v, byte_width=byte_width)
            else:
                b.String(str(v))
    return bytes(b.Finish())


def read_attributes(data: bytes | list[int] | None) -> dict[str, Any]:
    """The attribute map ({} when absent or not a map)."""
    if not data:
        return {}
    from flatbuffers import flexbuffers

    try:
        value = flexbuffers.Loads(bytes(bytearray(data)))
    except Exception:  # noqa: BLE001 - a malformed attribute buffer reads as no attributes
        return {}
    return value if isinstance(value, dict) else {}


def slot_width(data: bytes | list[int] | None) -> int:
    """Byte width of the root map's value slots (0 when there is no map).

    A flexbuffer ends with the root's packed type (type << 2 | log2 width) and the root's
    own byte width.
    """
    raw = bytes(bytearray(data or b""))
    if len(raw) < 3:
        return 0
    packed = raw[-2]
    return 1 << (packed & 3) if packed >> 2 == MAP_TYPE else 0


MAP_TYPE = 9  # flexbuffers' FBT_MAP


def four_byte(data: bytes | list[int]) -> bytes | None:
    """The same attributes with every slot 4 bytes wide, or None when one does not fit.

    Floats are rounded to float32, as the delegate reads them.
    """
    values = read_attributes(data)
    if not values:
        return None
    for v in values.values():
        if isinstance(v, int) and not isinstance(v, bool) and not -(2**31) <= v < 2**31:
            return None
        if isinstance(v, (str, bytes, list, dict)):
            return None
    rounded = {k: float(np.float32(v)) if isinstance(v, float) else v for k, v in values.items()}
    out = attributes(rounded, byte_width=4)
    return out if slot_width(out) <= 4 else None


def attention_model(
    *,
    batch: int = 1,
    t: int = 8,
    s: int = 8,
    heads: int = 2,
    kv_heads: int = 2,
    head_dim: int = 8,
    scale: float | None = None,
    byte_width: int = 0,
    mask: bool = False,
) -> bytes:
    """A model of one attention composite whose decomposition computes the same attention in plain ops.

    `scale` None leaves it out of the attributes (the default 1/sqrt(head_dim)); `byte_width`
    is the width its float is written with (0: as Python's flexbuffers picks).
    """
    model = build.new_model("xnnfit attention composite")
    main = build.new_subgraph(model, "main")
    q_shape, kv_shape = (batch, t, heads, head_dim), (batch, s, kv_heads, head_dim)
    shapes = [q_shape, kv_shape, kv_shape] + ([(1, 1, t, s)] if mask else [])
    names = ["q", "k", "v"] + (["mask"] if mask else [])
    ins = [build.add_tensor(model, main, shp, "float32", n) for shp, n in zip(shapes, names)]
    out = build.add_tensor(model, main, q_shape, "float32", "attention")
    main.inputs, main.outputs = list(ins), [out]
    opts = fb.StableHLOCompositeOptionsT()
    opts.name = SDPA
    opts.decompositionSubgraphIndex = 1
    opts.compositeAttributes = list(
        attributes({"scale": scale} if scale is not None else {}, byte_width)
    )  # required, even empty
    opts.compositeAttributesFormat = fb.CustomOptionsFormat.FLEXBUFFERS
    opts.version = 0
    main.operators.append(build.make_op(model, "STABLEHLO_COMPOSITE", ins, [out], opts, "StableHLOCompositeOptions"))
    _decomposition(model, shapes, names, q_shape, kv_heads, scale if scale is not None else 1.0 / math.sqrt(head_dim))
    return serialize(model)


def _decomposition(model: Any, shapes: list, names: list, q_shape: tuple, kv_heads: int, scale: float) -> None:
    """softmax(q·kᵀ·scale + mask)·v per head, query heads grouped over the kv heads (GQA/MQA)."""
    sub = build.new_subgraph(model, "attention_decomposition")
    b, t, n, h = q_shape
    s = shapes[1][1]
    group = n // kv_heads

    def tensor(shape, name, value=None):
        return build.add_tensor(
            model, sub, shape, value.dtype.name if value is not None else "float32", name, None, value
        )

    def op(name, inputs, outputs, options=None, kind=None):
        sub.operators.append(build.make_op(model, name, inputs, outputs, options, kind))

    def perm(p):
        return tensor((len(p),), "perm", np.asarray(p, np.int32))

    def reshape(x, shape, name):
        y = tensor(shape, name)
        o = fb.ReshapeOptionsT()
        o.newShape = list(shape)
        op("RESHAPE", [x, tensor((len(shape),), "shape", np.asarray(shape, np.int32))], [y], o, "ReshapeOptions")
        return y

    ins = [tensor(shp, nm) for shp, nm in zip(shapes, names)]
    q, k, v = ins[:3]
    qt, kt, vt = tensor((b, n, t, h), "qt"), tensor((b, kv_heads, h, s), "kt"), tensor((b, kv_heads, s, h), "vt")
    op("TRANSPOSE", [q, perm([0, 2, 1, 3])], [qt], fb.TransposeOptionsT(), "TransposeOptions")
    op("TRANSPOSE", [k, perm([0, 2, 3, 1])], [kt], fb.TransposeOptionsT(), "TransposeOptions")
    op("TRANSPOSE", [v, perm([0, 2, 1, 3])], [vt], fb.TransposeOptionsT(), "TransposeOptions")
    qg = reshape(qt, (b, kv_heads, group * t, h), "q_grouped")  # head kv * group + g reads kv head kv
    scores = tensor((b, kv_heads, group * t, s), "scores")
    op("BATCH_MATMUL", [qg, kt], [scores], fb.BatchMatMulOptionsT(), "BatchMatMulOptions")
    scores = reshape(scores, (b, n, t, s), "scores_heads")
    scaled = tensor((b, n, t, s), "scaled")
    op("MUL", [scores, tensor((), "scale", np.asarray(scale, np.float32))], [scaled], fb.MulOptionsT(), "MulOptions")
    if len(ins) > 3:
        masked = tensor((b, n, t, s), "masked")
        op("ADD", [scaled, ins[3]], [masked], fb.AddOptionsT(), "AddOptions")
        scaled = masked
    probs = tensor((b, n, t, s), "probs")
    so = fb.SoftmaxOptionsT()
    so.beta = 1.0
    op("SOFTMAX", [scaled], [probs], so, "SoftmaxOptions")
    pg = reshape(probs, (b, kv_heads, group * t, s), "probs_grouped")
    ctx = tensor((b, kv_heads, group * t, h), "context")
    op("BATCH_MATMUL", [pg, vt], [ctx], fb.BatchMatMulOptionsT(), "BatchMatMulOptions")
    ctx = reshape(ctx, (b, n, t, h), "context_heads")
    out = tensor(q_shape, "out")
    op("TRANSPOSE", [ctx, perm([0, 2, 1, 3])], [out], fb.TransposeOptionsT(), "TransposeOptions")
    sub.inputs, sub.outputs = list(ins), [out]
