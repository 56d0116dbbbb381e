"""Where a quantized model's error starts: every quantized tensor against its op run in float, on the eval inputs.

TensorFlow's `tf.lite.experimental.QuantizationDebugger` (shipped with the pinned
TensorFlow, documented, and the converter's own calibration and selective-quantization
path) builds a debug model in which each quantized op is followed by the same op in float
on the same dequantized inputs and a NumericVerify op comparing the two: the error each op
adds by itself. The comparison is run here on the installed LiteRT runtime (its built-in
kernels, every tensor kept), not with the debugger's own `run()`: that runs TensorFlow's
bundled interpreter, whose int8 BATCH_MATMUL of two activations is 16% of its scale off
numpy on the same inputs (measured on TF 2.21), where LiteRT's is 0.4%. The statistics
(kb.quant_error.TensorStats) are computed per sample and averaged. The model inputs' own
quantization (the QUANTIZE ops the debugger does not verify) is measured on the samples
the same way, and the graph facts the causes read (a fill constant beside a tensor, a
per-tensor weight's spread, a shared range) come from the quantized and float models.

Making the debug model needs TensorFlow and the converter: `debug_models_child` runs in a
child like a conversion (the TF 2.21 calibrator can crash natively: that costs this
analysis, never the command); `layer_errors_stage` then runs in a TensorFlow-free child.
Only full-integer int8 recipes are analysed: the debugger always quantizes to int8.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from xnnfit.core.errors import XnnfitError
from xnnfit.core.isolate import USER_CODE, phase
from xnnfit.core.policy import QUANT_DEBUG_SAMPLES
from xnnfit.core.record import NOT_IN_DICT, Record
from xnnfit.kb.quant_error import TensorStats
from xnnfit.model.convert import ConvertOptions, prepared, quantization_debugger
from xnnfit.model.recipes import ConversionRecipe
from xnnfit.model.source import ModelSource
from xnnfit.model.specs import input_name
from xnnfit.runtime.interpreter import build_interpreter, feed, invoke, tensor_value
from xnnfit.tflite import constants
from xnnfit.tflite.graph import read_model
from xnnfit.tflite.writer import parse, serialize

CHANNEL_MIN_ELEMENTS = 8  # a channel's error is a ratio of maxima: with fewer values per channel and sample (a
# logits vector) one small value makes it, so such tensors get no channel error
FILL_OPS = frozenset(
    {"SELECT", "SELECT_V2", "ADD", "SUB", "MAXIMUM", "MINIMUM", "CONCATENATION", "PACK", "PADV2"}
)  # ops whose constant operand shares the quantized range of the tensor they combine it with
NUMERIC_VERIFY = "NumericVerify"  # the debug model's custom op comparing a quantized tensor with its float twin
SHARED_OPS = frozenset(
    {"SELECT", "SELECT_V2", "CONCATENATION", "MAXIMUM", "MINIMUM", "PACK"}
)  # ops the int8 converter gives one scale for all their tensors
WEIGHT_TYPES = frozenset({"int8", "int16"})  # quantized constants that are weights (int32 biases are accumulators)


@dataclasses.dataclass(frozen=True)
class LayerErrors(Record):
    """A recipe's quantized tensors in execution order, each measured against its op run in float."""

    recipe: str
    tensors: tuple[TensorStats, ...]
    samples: int  # eval inputs they were measured on
    calibration_samples: int = 0  # calibration inputs the clipping was also measured on


def analysable(recipe: ConversionRecipe) -> bool:
    """Whether the debugger can analyse this recipe: full-integer int8 (it quantizes to int8 only)."""
    return recipe.calibrate and recipe.ops == "int8"


@dataclasses.dataclass(frozen=True)
class DebugModels(Record):
    """What the quantization debugger made for one recipe: the instrumented, the plain quantized and the float model."""

    recipe: str
    debug: bytes = dataclasses.field(default=b"", repr=False, compare=False, metadata=NOT_IN_DICT)
    plain: bytes = dataclasses.field(default=b"", repr=False, compare=False, metadata=NOT_IN_DICT)
    floats: bytes = dataclasses.field(default=b"", repr=False, compare=False, metadata=NOT_IN_DICT)
    calibration: tuple = dataclasses.field(default=(), repr=False, compare=False, metadata=NOT_IN_DICT)


def debug_models_child(source: ModelSource, recipe: ConversionRecipe, options: ConvertOptions) -> DebugModels:
    """Load the Keras model of `source` and make `recipe`'s debug models (run it in a child: it imports TensorFlow)."""
    what = f"{USER_CODE}: your builder {source.display}" if source.kind == "python" else f"loading {source.display}"
    with phase(what):
        model = source.load()
    with phase("running TensorFlow's quantization debugger"):
        return debug_models(model, recipe, options, display=source.display)


def debug_models(
    model: Any, recipe: ConversionRecipe, options: ConvertOptions, *, display: str = "the model"
) -> DebugModels:
    """The debugger's models of `model` converted with `recipe`, calibrated as the recipe's conversion is."""
    if not analysable(recipe):
        raise XnnfitError(
            f"the quantization debugger analyses full-integer int8 recipes only, not {recipe.name}: "
            "it always quantizes activations to int8"
        )
    with prepared(model, recipe, options, display=display) as p:
        try:
            # it calibrates on the recipe's calibration samples; a model metric makes it convert in float too
            debugger = quantization_debugger(p, p.dataset, model_debug_metrics={"max_abs_error": _output_error})
            return DebugModels(
                recipe.name,
                bytes(debugger.get_debug_quantized_model()),
                bytes(debugger.get_nondebug_quantized_model()),
                bytes(debugger.float_model),
                tuple(p.calibration),
            )
        except Exception as exc:  # noqa: BLE001 - the converter's errors, in one line
            raise p.error(exc) from exc


def layer_errors_stage(models: DebugModels, samples: list[dict]) -> LayerErrors:
    """Every quantized tensor against its float twin on `samples`, on LiteRT (run it in a TensorFlow-free child)."""
    runnable, pairs = _without_verify(models.debug)
    names = _aligned(models.debug, models.plain)
    info = read_model(models.debug).primary
    calibration = list(models.calibration)[:QUANT_DEBUG_SAMPLES]
    measured = _measure(runnable, pairs, info, samples, _METRICS)
    on_calibration = _measure(runnable, pairs, info, calibration, {"clipped": _clipped}) if calibration else {}
    facts = _Facts(models.plain, models.floats)
    rows = list(_input_quantization(facts, samples, calibration))
    for q, metrics in measured.items():
        name = names.get(q, info.tensors[q].name)
        t = info.tensors[q]
        row = _row(name, facts, t.scale or 0.0, t.zero_point or 0, metrics, len(samples))
        rows.append(dataclasses.replace(row, clipped_calibration=on_calibration.get(q, {}).get("clipped")))
    return LayerErrors(models.recipe, tuple(sorted(rows, key=lambda r: r.node)), len(samples), len(calibration))


def _without_verify(debug: bytes) -> tuple[bytes, list[tuple[int, int]]]:
    """The debug model without its NumericVerify ops (LiteRT has no kernel for them), and their (int8, float) inputs."""
    model = parse(debug)
    sub = model.subgraphs[0]

    def verifies(op: Any) -> bool:
        code = model.operatorCodes[op.opcodeIndex].customCode
        return (code.decode() if isinstance(code, bytes) else code) == NUMERIC_VERIFY

    pairs = [(int(op.inputs[0]), int(op.inputs[1])) for op in sub.operators if verifies(op)]
    sub.operators = [op for op in sub.operators if not verifies(op)]
    return serialize(model), pairs


def _measure(
    content: bytes, pairs: list[tuple[int, int]], info: Any, samples: Sequence[dict], metrics: dict[str, Callable]
) -> dict[int, dict[str, float]]:
    """Each metric of each (quantized, float twin) pair, per sample on the built-in kernels, averaged."""
    it = build_interpreter(content, xnnpack=False, preserve_all_tensors=True, what="the quantization debug model")
    values: dict[int, dict[str, list[float]]] = {q: {m: [] for m in metrics} for q, _ in pairs}
    for sample in samples:
        feed(it, sample)
        invoke(it, "the quantization debug model")
        for q, f in pairs:
            t = info.tensors[q]
            stored, twin = tensor_value(it, q), tensor_value(it, f)
            for m, fn in metrics.items():
                values[q][m].append(fn(twin, stored, t.scale or 0.0, t.zero_point or 0))
    return {q: {m: float(np.nanmean(v)) if v else 0.0 for m, v in ms.items()} for q, ms in values.items()}


def _aligned(debug: bytes, plain: bytes) -> dict[int, str]:
    """Debug-model tensor index -> the quantized model's name of that tensor, for each tensor NumericVerify reads.

    The debug model is the quantized one with a float twin and a NumericVerify op after each quantized op;
    its tensor names are uniqued again ('Identity1' becomes 'Identity2', its float twin takes 'Identity1'; the
    debugger's own dump strips one digit), so ops are matched by position: the k-th quantized op of a kind in
    one is the k-th in the other.
    """
    d, p = read_model(debug).primary, read_model(plain).primary

    def quantized_ops(sub) -> dict[str, list[int]]:
        out: dict[str, list[int]] = {}
        for op in sub.ops:
            if op.custom_code != NUMERIC_VERIFY and op.outputs and sub.tensors[op.outputs[0]].quantized:
                out.setdefault(op.label, []).append(op.index)
        return out

    in_debug, in_plain = quantized_ops(d), quantized_ops(p)
    plain_op = {
        i: in_plain[kind][k]
        for kind, ops in in_debug.items()
        if len(ops) == len(in_plain.get(kind, ()))
        for k, i in enumerate(ops)
    }
    producer = d.producers()
    names = {}
    for op in d.ops:
        if op.custom_code == NUMERIC_VERIFY and op.inputs:
            q = op.inputs[0]
            match = plain_op.get(producer.get(q, -1))
            if match is not None:
                names[q] = p.tensors[p.ops[match].outputs[0]].name
    return names


def _output_error(floats: Sequence[np.ndarray], quantized: Sequence[np.ndarray]) -> float:
    return max((float(np.max(np.abs(f - q))) for f, q in zip(floats, quantized)), default=0.0)


def _real(q: np.ndarray, scale: float, zero_point: int) -> np.ndarray:
    return (q.astype(np.float64) - zero_point) * scale


def _ratio(num: float, den: float) -> float:
    """num / den, with 0/0 = 0 and x/0 = 1 (a tensor that should be zero and is not: all error)."""
    if den > 0:
        return num / den
    return 0.0 if num == 0 else 1.0


def _absmax(f, q, scale, zp) -> float:
    return float(np.max(np.abs(f))) if f.size else 0.0


def _error(f, q, scale, zp) -> float:
    f = f.astype(np.float64)
    return _ratio(float(np.max(np.abs(_real(q, scale, zp) - f))), float(np.max(np.abs(f)))) if f.size else 0.0


def _channel_error(f, q, scale, zp) -> float:
    if f.ndim == 0 or f.size < CHANNEL_MIN_ELEMENTS * f.shape[-1]:
        return 0.0
    f = f.astype(np.float64).reshape(-1, f.shape[-1])
    err = np.abs(_real(q, scale, zp).reshape(f.shape) - f).max(axis=0)
    top = np.abs(f).max(axis=0)
    live = top > 0
    return float(np.median(err[live] / top[live])) if live.any() else 0.0


def _bounds(q: np.ndarray, scale: float, zp: int) -> tuple[float, float, int, int]:
    info = np.iinfo(q.dtype) if q.dtype.kind in "iu" else np.iinfo(np.int8)
    return (info.min - zp) * scale, (info.max - zp) * scale, int(info.min), int(info.max)


def _clipped(f, q, scale, zp) -> float:
    low, high, _, _ = _bounds(q, scale, zp)
    f = f.astype(np.float64)
    return float(np.mean((f < low - scale / 2) | (f > high + scale / 2))) if f.size else 0.0


def _below_step(f, q, scale, zp) -> float:
    nonzero = f[f != 0]
    return float(np.mean(np.abs(nonzero) < scale / 2)) if nonzero.size else 0.0


def _qmin(f, q, scale, zp) -> float:
    return float(_bounds(q, scale, zp)[2])


def _qmax(f, q, scale, zp) -> float:
    return float(_bounds(q, scale, zp)[3])


_METRICS = {
    "absmax": _absmax,
    "rel_error": _error,
    "channel_error": _channel_error,
    "clipped": _clipped,
    "below_step": _below_step,
    "qmin": _qmin,
    "qmax": _qmax,
}


class _Facts:
    """What the causes read from the quantized graph: fill constants beside a tensor, per-tensor weight spread."""

    def __init__(self, content: bytes, floats: bytes):
        self.sub = read_model(content).primary
        self.model = parse(content)
        self.floats = parse(floats)  # the float conversion: weights before quantization, by name
        self.float_index = {
            (t.name.decode() if isinstance(t.name, bytes) else str(t.name)): t for t in self.floats.subgraphs[0].tensors
        }
        self.producer = self.sub.producers()
        self.consumers = self.sub.consumers()
        self.index = {t.name: t.index for t in self.sub.tensors}
        self._values: dict[int, np.ndarray | None] = {}

    def value(self, t: int) -> np.ndarray | None:
        """Tensor t's real value if it is a constant."""
        if t not in self._values:
            self._values[t] = constants.real(self.model, self.model.subgraphs[0].tensors[t])
        return self._values[t]

    def node(self, name: str) -> int:
        """The index of the op making the tensor named `name` (-1: none)."""
        t = self.index.get(name)
        return self.producer.get(t, -1) if t is not None else -1

    def op(self, name: str) -> str:
        """The kind of the op making the tensor named `name` ('?' when none does)."""
        i = self.node(name)
        return self.sub.ops[i].label if i >= 0 else "?"

    def fill(self, name: str) -> tuple[float, str | None]:
        """The largest |constant| an op sharing this tensor's range combines it with, and that op's output name."""
        t = self.index.get(name)
        if t is None:
            return 0.0, None
        ops = ([self.producer[t]] if t in self.producer else []) + self.consumers.get(t, [])
        best, where = 0.0, None
        for i in ops:
            op = self.sub.ops[i]
            if op.op not in FILL_OPS:
                continue
            for u in op.inputs:
                v = self.value(u) if u >= 0 and u != t and self.sub.tensors[u].constant else None
                if v is not None and v.size and float(np.max(np.abs(v))) > best:
                    best, where = float(np.max(np.abs(v))), self.sub.tensors[op.outputs[0]].name
        return best, where

    def shared(self, name: str) -> str | None:
        """The output name of an op reading this tensor that holds it under the same scale as its output."""
        t = self.index.get(name)
        mine = self.sub.tensors[t] if t is not None else None
        if mine is None or not mine.quantized:
            return None
        for i in self.consumers.get(t, []):
            op = self.sub.ops[i]
            out = self.sub.tensors[op.outputs[0]]
            if (
                op.op in SHARED_OPS
                and out.quantized
                and out.zero_point == mine.zero_point
                and math.isclose(out.scale, mine.scale, rel_tol=1e-6)
            ):
                return out.name
        return None

    def weight_spread(self, name: str) -> float:
        """max |w| / median |w| of the float weights behind the op's per-tensor quantized constants (0: none).

        Read from the float conversion: once quantized, the weights an outlier hides are zeros like real ones.
        """
        i = self.node(name)
        spread = 0.0
        for u in self.sub.ops[i].inputs if i >= 0 else ():
            tensor = self.sub.tensors[u] if u >= 0 else None
            if tensor is None or not tensor.constant or tensor.num_scales != 1 or tensor.dtype not in WEIGHT_TYPES:
                continue
            weight = self.float_index.get(tensor.name)
            v = constants.real(self.floats, weight) if weight is not None else None
            magnitude = np.abs(v[v != 0]) if v is not None and v.size > 1 else np.zeros(0)
            if magnitude.size:
                spread = max(spread, float(magnitude.max() / np.median(magnitude)))
        return spread


def _row(name: str, facts: _Facts, scale: float, zp: int, m: dict[str, float], samples: int) -> TensorStats:
    fill, fill_node = facts.fill(name)
    return TensorStats(
        tensor=name,
        op=facts.op(name),
        node=facts.node(name),
        scale=scale,
        zero_point=zp,
        absmax=m["absmax"],
        error=m["rel_error"],
        channel_error=m["channel_error"],
        clipped=m["clipped"],
        below_step=m["below_step"],
        fill=fill,
        fill_node=fill_node,
        shared_node=facts.shared(name),
        weight_spread=facts.weight_spread(name),
        qmin=int(m["qmin"]),
        qmax=int(m["qmax"]),
        samples=samples,
    )


def _input_quantization(facts: _Facts, samples: list[dict], calibration: list[dict]) -> list[TensorStats]:
    """The QUANTIZE of each float model input, measured on the samples themselves (the debugger does not verify it)."""
    sub = facts.sub
    inputs = {t: input_name(sub.tensors[t].name) for t in sub.inputs}
    rows = []
    for op in sub.ops:
        key = inputs.get(op.inputs[0]) if op.op == "QUANTIZE" and op.inputs else None
        out = sub.tensors[op.outputs[0]]
        if key is None or not out.quantized or not samples or key not in samples[0]:
            continue
        scale, zp = float(out.scale), int(out.zero_point or 0)
        dtype = np.int16 if out.dtype == "int16" else np.int8
        on_eval = _quantized(samples, key, scale, zp, dtype)
        on_calibration = _quantized(calibration, key, scale, zp, dtype)
        info = np.iinfo(dtype)
        rows.append(
            TensorStats(
                tensor=out.name,
                op="QUANTIZE",
                node=op.index,
                scale=scale,
                zero_point=zp,
                absmax=_mean(_absmax, on_eval, scale, zp),
                error=_mean(_error, on_eval, scale, zp),
                channel_error=_mean(_channel_error, on_eval, scale, zp),
                clipped=_mean(_clipped, on_eval, scale, zp),
                below_step=_mean(_below_step, on_eval, scale, zp),
                clipped_calibration=_mean(_clipped, on_calibration, scale, zp) if on_calibration else None,
                qmin=int(info.min),
                qmax=int(info.max),
                samples=len(samples),
            )
        )
    return rows


def _quantized(batch: list[dict], key: str, scale: float, zp: int, dtype: Any) -> list[tuple[np.ndarray, np.ndarray]]:
    """(float values, stored integers) of input `key` in each sample, quantized as the QUANTIZE op does."""
    info = np.iinfo(dtype)
    pairs = []
    for s in batch:
        f = np.asarray(s[key], dtype=np.float64)
        pairs.append((f, np.clip(np.round(f / scale) + zp, info.min, info.max).astype(dtype)))
    return pairs


def _mean(metric: Callable, pairs: list[tuple[np.ndarray, np.ndarray]], scale: float, zp: int) -> float:
    return float(np.mean([metric(f, q, scale, zp) for f, q in pairs])) if pairs else 0.0
