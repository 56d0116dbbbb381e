"""XR005: strided slices and 1x1 subsampling pools -> reshape + stride-1 slice.

XNNPACK slices with stride 1 only and without a shrink mask, and refuses 1x1 pooling
with stride > 1. Taking every s-th element of an axis of length k*s is taking index 0
of the second axis of its (k, s) view, so `x[:, 1::2]` becomes RESHAPE to (.., k, 2, ..),
SLICE [q:q+count, 1:2], RESHAPE to the output shape; an axis not divisible by s is first
cropped (SLICE) or zero-padded (PAD, padding never read). Axes the slice takes whole are
merged with their neighbour, so NHWC subsampling is a rank-3 view. A shrunk axis (`x[:, 0]`)
is a size-1 slice followed by a RESHAPE to the static output shape. A 1x1 pool with
stride s is exactly `x[:, ::s, ::s, :]` (SAME and VALID agree for a 1x1 window).
Only data moves, so the rewrite is exact in every dtype (int8 tensors keep their
quantization, which RESHAPE requires).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import numpy as np

from xnnfit.kb.limits import MAX_RANK
from xnnfit.rewrite.graph import Graph
from xnnfit.rewrite.rule import Match, RewriteContext, Rule, same_quant
from xnnfit.tflite.schema import fb

MAX_PAD_RANK = 5  # TFLite's PAD kernel (the CPU fallback and the verification run it)
_DTYPES = ("float32", "float16", "int8", "uint8")
_ACTIVATIONS = {
    fb.ActivationFunctionType.RELU: "RELU",
    fb.ActivationFunctionType.RELU6: "RELU6",
    fb.ActivationFunctionType.RELU_N1_TO_1: "RELU_N1_TO_1",
}


def _example():
    import keras

    inp = keras.Input((8, 8, 4), name="x")
    pooled = keras.layers.AveragePooling2D(pool_size=1, strides=2, name="pool_1x1")(inp)
    strided = keras.layers.Lambda(lambda t: t[:, 1::2, :, :] * 2.0, name="every_other_row")(inp)
    first = keras.layers.Lambda(lambda t: t[:, 0] * 3.0, name="first_row")(inp)
    return keras.Model(inp, [pooled, strided, first])


@dataclasses.dataclass(frozen=True)
class _Axis:
    """One input axis: take `count` elements from `start`, every `step`-th."""

    size: int
    start: int
    count: int
    step: int = 1


@dataclasses.dataclass(frozen=True)
class _Plan:
    """The ops to build: optional crop and pad, the view reshape, one slice, the output reshape."""

    crop: tuple[int, ...] | None  # SLICE sizes from 0 on every axis
    pad_view: tuple[int, ...] | None  # RESHAPE before PAD (TFLite's PAD kernel stops at rank 5)
    pad: tuple[int, ...] | None  # zeros appended at the end of every axis (of pad_view if given)
    view: tuple[int, ...]  # the shape the slice works on (a RESHAPE when it differs)
    begin: tuple[int, ...]
    size: tuple[int, ...]
    activation: str | None = None  # a pool's fused activation, as its own op


class StridedSubsample(
    Rule, id="XR005", fixes=("XNN022", "XNN025"), ops=("STRIDED_SLICE", "AVERAGE_POOL_2D", "MAX_POOL_2D")
):
    title = "strided slice, shrink-axis slice and 1x1 stride-s pooling -> reshape + slice"
    absent = "no strided or shrinking STRIDED_SLICE and no 1x1 pool with stride > 1"
    example = staticmethod(_example)

    def check(self, g: Graph, i: int) -> dict | str | None:
        axes = self._slice_axes(g, i) if g.op(i) == "STRIDED_SLICE" else self._pool_axes(g, i)
        if axes is None:  # already delegated: nothing to do
            return None
        plan = axes if isinstance(axes, str) else self._plan(g, i, axes)
        return f"{g.op(i)}: {plan}" if isinstance(plan, str) else {"plan": plan}

    # -- matching --------------------------------------------------------------------------
    def _slice_axes(self, g: Graph, i: int) -> list[_Axis] | str | None:
        """Per input axis what the slice takes; None when XNNPACK takes the slice as it is."""
        x, begin_t, end_t, strides_t = g.inputs(i)[:4]
        o = g.options(i, "StridedSliceOptions")
        shrink = int(o.shrinkAxisMask) if o is not None else 0
        begin, end, strides = g.value(begin_t), g.value(end_t), g.value(strides_t)
        if (
            strides is not None
            and shrink == 0
            and not (o and (o.ellipsisMask or o.newAxisMask))
            and all(int(s) == 1 for s in strides.reshape(-1))
        ):
            return None
        if begin is None or end is None or strides is None:
            return "begin, end or strides are computed at run time (apply XR002 first)"
        if o is not None and (o.ellipsisMask or o.newAxisMask):
            return "ellipsis or new-axis mask"
        if o is not None and o.offset:
            return "offset (relative end) slices are not handled"
        shape = g.shape(x)
        if any(d < 0 for d in shape):
            return "the input has dynamic dimensions (pin the batch or apply XR002 first)"
        begin, end, strides = (v.reshape(-1).astype(np.int64) for v in (begin, end, strides))
        if not len(begin) == len(end) == len(strides) == len(shape):
            return "begin/end/strides do not cover every input axis"
        if any(s < 0 for s in strides):
            return "negative stride (reversal) is not a subsample"
        if any(s == 0 for s in strides):
            return "zero stride"
        begin_mask, end_mask = (int(o.beginMask), int(o.endMask)) if o is not None else (0, 0)
        axes = []
        for a, n in enumerate(shape):
            start = 0 if begin_mask >> a & 1 else _clamp(int(begin[a]), n)
            if shrink >> a & 1:
                b = int(begin[a]) + (n if begin[a] < 0 else 0)
                if not begin_mask >> a & 1 and not 0 <= b < n:
                    return "shrink index out of range"
                axes.append(_Axis(n, start, 1))
                continue
            stop = n if end_mask >> a & 1 else _clamp(int(end[a]), n)
            step = int(strides[a])
            count = max(0, -(-(stop - start) // step))
            axes.append(_Axis(n, start, count, step if count > 1 else 1))
        kept = tuple(ax.count for a, ax in enumerate(axes) if not shrink >> a & 1)
        if kept != g.shape(g.outputs(i)[0]):
            return f"computed output shape {kept} disagrees with the stored {g.shape(g.outputs(i)[0])}"
        return axes

    def _pool_axes(self, g: Graph, i: int) -> list[_Axis] | str | None:
        o = g.options(i, "Pool2DOptions")
        if o is None:
            return "the pool has no window options (the runtime pools with a 0x0 window)"
        fh, fw, sh, sw = (int(o.filterHeight), int(o.filterWidth), int(o.strideH), int(o.strideW))
        if not (sh > fh or sw > fw):  # stride <= window: XNNPACK pools it (or refuses for other reasons)
            return None
        if (fh, fw) != (1, 1):
            return f"{fh}x{fw} window with stride {sh}x{sw} (only 1x1 windows are a pure subsample)"
        x, out = g.inputs(i)[0], g.outputs(i)[0]
        shape = g.shape(x)
        if len(shape) != 4 or any(d < 0 for d in shape):
            return "input is not a static 4-D NHWC tensor"
        n, h, w, c = shape
        expected = (n, -(-h // sh), -(-w // sw), c)  # VALID and SAME agree for a 1x1 window
        if g.shape(out) != expected:
            return f"output shape {g.shape(out)} is not ceil(H/s), ceil(W/s) = {expected}"
        return [
            _Axis(n, 0, n),
            _Axis(h, 0, expected[1], sh if expected[1] > 1 else 1),
            _Axis(w, 0, expected[2], sw if expected[2] > 1 else 1),
            _Axis(c, 0, c),
        ]

    def _plan(self, g: Graph, i: int, axes: list[_Axis]) -> _Plan | str:
        x, out = g.inputs(i)[0], g.outputs(i)[0]
        dtype = g.dtype(x)
        if dtype not in _DTYPES or g.dtype(out) != dtype:
            return f"{dtype} data is not delegated by XNNPACK either way"
        if not same_quant(g.quant(x), g.quant(out)):
            return "input and output quantization differ (RESHAPE and SLICE keep it)"
        if any(ax.count == 0 for ax in axes):
            return "the slice is empty"
        activation = None
        if g.op(i) != "STRIDED_SLICE":
            fused = int(g.options(i, "Pool2DOptions").fusedActivationFunction)  # _pool_axes refused a pool without them
            if fused != fb.ActivationFunctionType.NONE:
                if fused not in _ACTIVATIONS or not dtype.startswith("float"):
                    return "fused activation other than RELU/RELU6/RELU_N1_TO_1 on float data"
                activation = _ACTIVATIONS[fused]
        strided = any(ax.step > 1 for ax in axes)
        crop, pad, dims = [], [], []  # dims: (size, begin, count) of the view
        for ax in axes:
            if ax.step == 1:
                crop.append(ax.size)
                pad.append(0)
                dims.append((ax.size, ax.start, ax.count))
                continue
            s = ax.step
            q, r = divmod(ax.start, s)
            if ax.size % s == 0:
                length = ax.size
            elif q + ax.count <= ax.size // s:  # every taken element lies in the first whole blocks
                length = ax.size // s * s
            else:
                length = -(-ax.size // s) * s
            crop.append(min(length, ax.size))
            pad.append(max(length - ax.size, 0))
            dims += [(length // s, q, ax.count), (s, r, 1)]
        if strided:
            dims = _merge(dims)
        if len(dims) > MAX_RANK:
            return f"the view needs rank {len(dims)} > {MAX_RANK}"
        shape = tuple(ax.size for ax in axes)
        view = tuple(d[0] for d in dims)
        pad_view = None
        if any(pad) and len(pad) > MAX_PAD_RANK:  # pad a view where axes padded by nothing join the one before
            merged = _merge([(c, 0, c) if k == 0 else (c + k, 0, c) for c, k in zip(crop, pad)])
            pad_view, pad = tuple(d[2] for d in merged), [d[0] - d[2] for d in merged]
            if len(pad) > MAX_PAD_RANK:
                return f"the padding needs rank {len(pad)} > {MAX_PAD_RANK} (TFLite's PAD kernel limit)"
        return _Plan(
            crop=tuple(crop) if tuple(crop) != shape else None,
            pad_view=pad_view,
            pad=tuple(pad) if any(pad) else None,
            view=view,
            begin=tuple(d[1] for d in dims),
            size=tuple(d[2] for d in dims),
            activation=activation,
        )

    # -- rewriting -------------------------------------------------------------------------
    def apply(self, g: Graph, m: Match, ctx: RewriteContext) -> None:
        p: _Plan = m.detail["plan"]
        i = m.anchor
        x, out = g.inputs(i)[0], g.outputs(i)[0]
        dtype, q = g.dtype(x), g.quant(x)
        ops, cur, shape = [], x, g.shape(x)

        def step(new_shape: tuple[int, ...], label: str, make: Callable[[int], Any]) -> None:
            """Append the op `make` builds from `cur` into a new tensor of `new_shape`; it becomes `cur`."""
            nonlocal cur, shape
            t = g.add_tensor(new_shape, dtype, self.tag(label), q)
            ops.append(make(t))
            cur, shape = t, tuple(new_shape)

        if p.crop is not None:
            step(p.crop, "crop", lambda t: self.slice(g, cur, t, [0] * len(p.crop), p.crop))
        if p.pad_view is not None:
            step(p.pad_view, "pad_view", lambda t: self.reshape(g, cur, t, p.pad_view))
        if p.pad is not None:
            paddings = g.add_const(np.asarray([[0, k] for k in p.pad], np.int32), self.tag("paddings"))
            step(
                tuple(d + k for d, k in zip(shape, p.pad)),
                "padded",
                lambda t: self.emit(g, "PAD", [cur, paddings], [t]),
            )
        if p.view != shape:
            step(p.view, "view", lambda t: self.reshape(g, cur, t, p.view))
        if p.size != shape:
            step(p.size, "taken", lambda t: self.slice(g, cur, t, p.begin, p.size))
        final = g.shape(out)
        if shape != final:
            step(final, "result", lambda t: self.reshape(g, cur, t, final))
        if p.activation is not None:
            ops.append(self.emit(g, p.activation, [cur], [out]))
        elif ops:
            ops[-1].outputs = [out]
        else:  # the op took everything: a reshape to the same shape keeps the graph valid
            ops.append(self.reshape(g, cur, out, final))
        g.ops[i : i + 1] = ops


def _clamp(index: int, n: int) -> int:
    """A forward index into an axis of length n, as TFLite resolves begin/end for positive strides."""
    return min(max(index + n if index < 0 else index, 0), n)


def _merge(dims: list[tuple[int, int, int]]) -> list[tuple[int, int, int]]:
    """Fold every axis taken whole into the axis before it: (a, b, c) then (n, 0, n) -> (a*n, b*n, c*n)."""
    merged: list[tuple[int, int, int]] = []
    for size, begin, count in dims:
        if merged and begin == 0 and count == size:
            a, b, c = merged[-1]
            merged[-1] = (a * size, b * size, c * size)
        else:
            merged.append((size, begin, count))
    return merged
