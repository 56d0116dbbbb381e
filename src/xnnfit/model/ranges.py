"""Each input's synthetic value range, decided once: the values random samples are drawn from, and what decided it.

Without data, every command draws its inputs from the spec's `value_range`
(inputs.random_inputs), so a model only ever sees values it expects. The first source
that holds decides, in this order:

1. `--input-range NAME=LOW,HIGH`, or `LOW,HIGH` for every float input;
2. a Keras `Rescaling` or `Normalization` layer right after the input, inverted to the
   raw values it expects (read from the Keras model at conversion);
3. the input's quantization: an int8/uint8 input takes every code; a float input feeding
   a QUANTIZE op, that op's representable (calibrated) range;
4. the default, DEFAULT_INPUT_RANGE for float inputs (integer inputs keep their own rule:
   token ids below the table they index, else 0 and 1).

A range is in the values the input tensor takes: int8 codes for an int8 input.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

from xnnfit.core.errors import InputDataError
from xnnfit.core.fmt import num
from xnnfit.core.policy import DEFAULT_INPUT_RANGE
from xnnfit.model.specs import InputSpec

if TYPE_CHECKING:
    from xnnfit.tflite.graph import ModelGraph

Range = tuple[float, float]
Decided = tuple[Range, str]  # a range and what decided it
Given = tuple[tuple[str, Range], ...]  # (input name, range); the name '' gives every input the range

GIVEN = "--input-range"
DEFAULT = "default"
ALL_INPUTS = ""
UNIFORM_SPREAD = math.sqrt(3.0)  # a uniform distribution over mean ± sqrt(3)·std has exactly that mean and std


def parse_input_ranges(items: Iterable[str] | Mapping[str, Range] | Range | None) -> Given:
    """(('', (0.0, 1.0)),) from ['0,1'], ('image', ...) from ['image=0,255'] or {'image': (0, 255)}.

    A (low, high) pair gives every input the range. InputDataError on malformed text or low >= high.
    """
    if items is None:
        return ()
    if isinstance(items, Mapping):
        pairs = [(str(k), v) for k, v in items.items()]
    elif isinstance(items, tuple) and len(items) == 2 and all(isinstance(v, (int, float)) for v in items):
        pairs = [(ALL_INPUTS, items)]
    else:
        pairs = [_split(str(item)) for item in items]  # type: ignore[union-attr]
    out: dict[str, Range] = {}
    for name, values in pairs:
        text = f"{name}={values}" if name else str(values)
        try:
            low, high = (float(v) for v in (values.split(",") if isinstance(values, str) else values))
        except (TypeError, ValueError):
            low = high = math.nan
        if not (math.isfinite(low) and math.isfinite(high) and low < high):
            raise InputDataError(
                f"cannot read --input-range {text!r}. Write LOW,HIGH or NAME=LOW,HIGH with finite LOW < HIGH, "
                "e.g. image=0,255 (a negative LOW as --input-range=-1,1)."
            )
        out[name] = (low, high)
    return tuple(out.items())


def _split(item: str) -> tuple[str, str]:
    name, sep, values = item.partition("=")
    return (name.strip(), values) if sep else (ALL_INPUTS, item)


def with_ranges(
    specs: tuple[InputSpec, ...],
    given: Given = (),
    *,
    keras: Mapping[str, Decided] | None = None,
    graph: ModelGraph | None = None,
) -> tuple[InputSpec, ...]:
    """`specs` with each input's value range and its source, by the order above.

    A range already decided by a source other than the default (the Keras layer, at
    conversion) is kept. InputDataError when `given` names no input, or a range an input
    cannot take.
    """
    names = [s.name for s in specs]
    unknown = [n for n, _ in given if n and n not in names]
    if unknown:
        raise InputDataError(
            f"--input-range names no model input: {', '.join(unknown)}. The inputs are: {', '.join(names) or 'none'}."
        )
    asked = dict(given)
    read = graph_ranges(graph) if graph is not None else {}
    out = []
    for spec in specs:
        rng = asked.get(spec.name)
        if rng is None and spec.dtype.startswith(("float", "bfloat")):
            rng = asked.get(ALL_INPUTS)  # LOW,HIGH without a name: every float input
        if rng is not None and _takes_range(spec, named=spec.name in asked):
            decided: Decided | None = (_fit(spec, rng), GIVEN)
        elif spec.range_source not in ("", DEFAULT):
            decided = (spec.value_range, spec.range_source) if spec.value_range else None
        else:
            decided = (keras or {}).get(spec.name) or read.get(spec.name)
        if decided is None and spec.dtype.startswith(("float", "bfloat")):
            decided = (DEFAULT_INPUT_RANGE, DEFAULT)
        value_range, source = decided if decided is not None else (None, DEFAULT)
        out.append(dataclasses.replace(spec, value_range=value_range, range_source=source))
    return tuple(out)


def _takes_range(spec: InputSpec, *, named: bool) -> bool:
    """True for numeric inputs; a bool or string input named in --input-range is an InputDataError."""
    numeric = spec.dtype.startswith(("float", "bfloat", "int", "uint"))
    if not numeric and named:
        raise InputDataError(
            f"input {spec.name!r} is {spec.dtype}: --input-range does not apply to it. Drop {spec.name}= from "
            "--input-range."
        )
    return numeric


def _fit(spec: InputSpec, rng: Range) -> Range:
    """The given range as the input takes it: integers for an integer input, inside the table it indexes."""
    if not spec.dtype.startswith(("int", "uint")):
        return rng
    low, high = math.ceil(rng[0]), math.floor(rng[1])
    info = np.iinfo(spec.dtype)
    top = spec.high - 1 if spec.high is not None else info.max
    bottom = 0 if spec.high is not None else info.min
    if low > high or low < bottom or high > top:
        what = f"indexes a table of {spec.high} rows" if spec.high is not None else f"is {spec.dtype}"
        raise InputDataError(
            f"--input-range {num(rng[0])},{num(rng[1])} does not fit input {spec.name!r}: it {what}, so it takes "
            f"integers {bottom}..{top}. Pass a range of integers within them."
        )
    return (float(low), float(high))


def graph_ranges(graph: ModelGraph) -> dict[str, Decided]:
    """Ranges the converted graph states: a quantized input's codes, or the QUANTIZE op a float input feeds."""
    from xnnfit.model.specs import input_name

    sub = graph.primary
    consumers = sub.consumers()
    out: dict[str, Decided] = {}
    for t in sub.inputs:
        tensor = sub.tensors[t]
        name = input_name(tensor.name)
        if tensor.quantized and tensor.num_scales == 1 and tensor.dtype in ("int8", "uint8", "int16"):
            info = np.iinfo(tensor.dtype)
            real = _real((float(info.min), float(info.max)), tensor.scale, tensor.zero_point)
            out[name] = (
                (float(info.min), float(info.max)),
                f"the input's {tensor.dtype} quantization: every code (real {num(real[0])} to {num(real[1])})",
            )
            continue
        if not tensor.dtype.startswith("float"):
            continue
        found = [
            sub.tensors[sub.ops[c].outputs[0]]
            for c in consumers.get(t, [])
            if sub.ops[c].op == "QUANTIZE" and sub.ops[c].outputs
        ]
        reals = [
            _real((float(np.iinfo(q.dtype).min), float(np.iinfo(q.dtype).max)), q.scale, q.zero_point)
            for q in found
            if q.quantized and q.num_scales == 1 and q.dtype in ("int8", "uint8", "int16")
        ]
        if reals:  # several QUANTIZE consumers were calibrated on the same data: their union
            out[name] = (
                (min(r[0] for r in reals), max(r[1] for r in reals)),
                "the calibrated range of the QUANTIZE op it feeds",
            )
    return out


def _real(codes: Range, scale: float | None, zero_point: int | None) -> Range:
    s, z = float(scale or 0.0), float(zero_point or 0)
    return ((codes[0] - z) * s, (codes[1] - z) * s)


def layer_range(layer: Any) -> Decided | None:
    """The raw range a Keras preprocessing layer right after an input expects, or None when it says none.

    Rescaling(scale, offset) maps raw [0, (1 - offset) / scale] to [offset, 1]: the two
    mappings Keras documents ([0, 255] to [0, 1] with scale 1/255; to [-1, 1] with scale
    1/127.5, offset -1). Normalization(mean, variance) expects values with that mean and
    variance: the uniform range mean ± sqrt(3)·std has both (the union over channels).
    """
    kind = type(layer).__name__
    name = str(getattr(layer, "name", "") or "")
    if kind == "Rescaling":
        scale, offset = _scalar(getattr(layer, "scale", None)), _scalar(getattr(layer, "offset", 0.0))
        if scale is None or offset is None or scale <= 0 or offset >= 1:
            return None
        high = (1.0 - offset) / scale
        return (0.0, high), (
            f"Rescaling layer {name!r}: scale {num(scale)}, offset {num(offset)} maps raw [0, {num(high)}] to "
            f"[{num(offset)}, 1]"
        )
    if kind == "Normalization" and not getattr(layer, "invert", False):
        mean, variance = _array(getattr(layer, "mean", None)), _array(getattr(layer, "variance", None))
        if mean is None or variance is None or mean.shape != variance.shape or not (variance > 0).any():
            return None
        half = UNIFORM_SPREAD * np.sqrt(np.maximum(variance, 0.0))
        low, high = float(np.min(mean - half)), float(np.max(mean + half))
        return (low, high), f"Normalization layer {name!r}: uniform values with its mean and variance"
    return None


def _array(value: Any) -> np.ndarray | None:
    if value is None:
        return None
    try:
        out = np.asarray(value, dtype=np.float64).reshape(-1)
    except (TypeError, ValueError):
        return None
    return out if out.size and np.isfinite(out).all() else None


def _scalar(value: Any) -> float | None:
    """A float from a number or an array of equal values; None for per-channel values that differ."""
    values = _array(value)
    if values is None or not np.all(values == values[0]):
        return None
    return float(values[0])
