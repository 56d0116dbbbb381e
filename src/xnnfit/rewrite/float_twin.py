"""The float model a quantized .tflite stands for, rebuilt from its own weights (the reference `fix` judges against).

Every quantized tensor inside the graph becomes float32; quantized and float16
constants hold their dequantized values; QUANTIZE and DEQUANTIZE nodes that now map
float to float are removed. The model's inputs and outputs keep their types (an int8
input gets a DEQUANTIZE, an int8 output a QUANTIZE), so the twin takes the same
samples and gives outputs on the same scale as the original.
"""

from __future__ import annotations

import numpy as np

from xnnfit.core.errors import XnnfitError
from xnnfit.rewrite.graph import Graph
from xnnfit.runtime.interpreter import build_interpreter, feed_values, invoke
from xnnfit.tflite import build
from xnnfit.tflite.schema import fb
from xnnfit.tflite.writer import parse, serialize

_QUANTIZED_TYPES = {"int8", "uint8", "int16", "int32"}
_CONVERTERS = ("QUANTIZE", "DEQUANTIZE")


def is_quantized(content: bytes) -> bool:
    """True when the model holds quantized tensors or float16 constants (its outputs are approximations)."""
    model = parse(content)
    for sub in model.subgraphs:
        for t in sub.tensors or []:
            q = t.quantization
            if q is not None and q.scale is not None and len(q.scale):
                return True
            if t.type == fb.TensorType.FLOAT16 and t.buffer and model.buffers[t.buffer].data is not None:
                return True
    return False


def _dequantized(g: Graph, t: int) -> np.ndarray | None:
    value = g.value(t)
    if value is None:
        return None
    if g.dtype(t) == "float16":
        return value.astype(np.float32)
    real = g.real_value(t)
    return None if real is None else real.astype(np.float32)


def _make_float(g: Graph, t: int) -> None:
    tensor = g.tensor(t)
    if tensor.buffer and g.model.buffers[tensor.buffer].data is not None:
        values = _dequantized(g, t)
        if values is None:
            return
        buf = fb.BufferT()
        buf.data = np.frombuffer(np.ascontiguousarray(values).tobytes(), dtype=np.uint8).copy()
        g.model.buffers.append(buf)
        tensor.buffer = len(g.model.buffers) - 1
    tensor.type = build.TYPE_CODES["float32"]
    tensor.quantization = None


def _needs_float(g: Graph, t: int) -> bool:
    quantized = g.quant(t) is not None and g.dtype(t) in _QUANTIZED_TYPES
    return quantized or (g.dtype(t) == "float16" and g.value(t) is not None)


def _keep_interface(g: Graph) -> None:
    """Quantized graph inputs get a DEQUANTIZE, quantized outputs a QUANTIZE, so the interface is unchanged."""
    first = []
    for t in [int(x) for x in g.sub.inputs or []]:
        if not _needs_float(g, t):
            continue
        inner = g.add_tensor(g.shape(t), "float32", g.name(t) + "/xnnfit_float")
        for op in g.ops:
            op.inputs = [inner if int(x) == t else int(x) for x in (op.inputs if op.inputs is not None else [])]
        first.append(g.make_op("DEQUANTIZE", [t], [inner]))
    for t in [int(x) for x in g.sub.outputs or []]:
        producer = g.producer(t)
        if producer is None or not _needs_float(g, t):
            continue
        inner = g.add_tensor(g.shape(t), "float32", g.name(t) + "/xnnfit_float")
        g.ops[producer].outputs = [inner if int(x) == t else int(x) for x in g.ops[producer].outputs]
        for op in g.ops:
            op.inputs = [inner if int(x) == t else int(x) for x in (op.inputs if op.inputs is not None else [])]
        g.sub.operators.append(g.make_op("QUANTIZE", [inner], [t]))
    g.insert(0, first)


def _drop_identities(g: Graph) -> None:
    """QUANTIZE/DEQUANTIZE nodes that now read and write float32 hand their input on."""
    for i in reversed(range(len(g.ops))):
        if g.op(i) not in _CONVERTERS or not g.inputs(i) or not g.outputs(i):  # a damaged node without tensors stays
            continue
        x, y = g.inputs(i)[0], g.outputs(i)[0]
        if x >= 0 and y >= 0 and g.dtype(x) == "float32" and g.dtype(y) == "float32":
            g.rewire(y, x)
            del g.sub.operators[i]


def float_twin(content: bytes) -> bytes:
    """The float32 model `content` quantizes; XnnfitError when it cannot be rebuilt or does not run."""
    model = parse(content)
    for index in range(len(model.subgraphs)):
        g = Graph(model, index)
        io = {int(t) for t in (g.sub.inputs or [])} | {int(t) for t in (g.sub.outputs or [])}
        _keep_interface(g)
        for t in range(len(g.sub.tensors)):
            if t not in io and _needs_float(g, t):
                _make_float(g, t)
        _drop_identities(g)
        g.prune()
    twin = serialize(model)
    try:
        it = build_interpreter(twin, xnnpack=False, what="the float model rebuilt from the quantized one")
        feed_values(it, [np.zeros(d["shape"], d["dtype"]) for d in it.get_input_details()])
        invoke(it, "the float model rebuilt from the quantized one")
    except XnnfitError as exc:
        raise XnnfitError(
            f"cannot rebuild a float model from this quantized .tflite ({exc}). Pass the Keras model it came from."
        ) from exc
    return twin
