"""Building blocks of a TFLite model in the flatbuffer object API: tensors, constants, operator codes, ops.

Shared by the rewrite graph (editing a parsed model) and the KB's one-op probes
(building models from nothing), so both write tensors and ops the same way.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable
from typing import Any

import numpy as np

from xnnfit.tflite.schema import fb, op_code

TYPE_CODES = {k.lower(): v for k, v in vars(fb.TensorType).items() if not k.startswith("_")}
SCHEMA_VERSION = 3  # the TFLite schema version every runtime reads


def new_model(description: str) -> Any:
    """An empty ModelT: no subgraphs, buffer 0 (the empty buffer computed tensors point to)."""
    model = fb.ModelT()
    model.version = SCHEMA_VERSION
    model.buffers = [fb.BufferT()]
    model.operatorCodes = []
    model.subgraphs = []
    model.description = description
    return model


def new_subgraph(model: Any, name: str) -> Any:
    """A new, empty SubGraphT appended to `model`."""
    sub = fb.SubGraphT()
    sub.tensors, sub.operators, sub.inputs, sub.outputs, sub.name = [], [], [], [], name
    model.subgraphs.append(sub)
    return sub


def opcode_index(model: Any, name: str) -> int:
    """The operator-code index of builtin `name`, added to the model (version 1) if missing."""
    code = op_code(name)
    for i, oc in enumerate(model.operatorCodes):
        if max(oc.builtinCode, oc.deprecatedBuiltinCode) == code and not oc.customCode:
            return i
    oc = fb.OperatorCodeT()
    oc.builtinCode = code
    oc.deprecatedBuiltinCode = min(code, fb.BuiltinOperator.PLACEHOLDER_FOR_GREATER_OP_CODES)
    oc.version = 1
    model.operatorCodes.append(oc)
    return len(model.operatorCodes) - 1


def add_tensor(
    model: Any, sub: Any, shape: Iterable[int], dtype: str, name: str, quant: Any = None, data: np.ndarray | None = None
) -> int:
    """A new tensor in `sub` (a constant holding `data` as stored values when given); returns its index.

    A -1 in `shape` marks a dynamic dimension (kept in the shape signature).
    """
    tensor = fb.TensorT()
    dims = [int(d) for d in shape]
    tensor.shape = [max(d, 1) for d in dims]
    tensor.shapeSignature = dims if any(d < 0 for d in dims) else None
    tensor.type = TYPE_CODES[dtype]
    tensor.name = name
    tensor.buffer = 0
    tensor.quantization = copy.deepcopy(quant) if quant is not None else None
    if data is not None:
        buf = fb.BufferT()
        buf.data = np.frombuffer(np.ascontiguousarray(data).tobytes(), dtype=np.uint8).copy()
        model.buffers.append(buf)
        tensor.buffer = len(model.buffers) - 1
    sub.tensors.append(tensor)
    return len(sub.tensors) - 1


def make_op(
    model: Any, name: str, inputs: list[int], outputs: list[int], options: Any = None, options_type: str | None = None
) -> Any:
    """An OperatorT for builtin `name` (not yet inserted).

    `options` goes in the first or, for newer ops, the second options union.
    """
    op = fb.OperatorT()
    op.opcodeIndex = opcode_index(model, name)
    op.inputs = list(inputs)
    op.outputs = list(outputs)
    if options is not None:
        kind = options_type or type(options).__name__[:-1]  # 'Conv2DOptions' for Conv2DOptionsT
        if hasattr(fb.BuiltinOptions, kind):
            op.builtinOptionsType, op.builtinOptions = getattr(fb.BuiltinOptions, kind), options
        else:  # options added after the first union ran out (StableHLOCompositeOptions, ...)
            op.builtinOptions2Type, op.builtinOptions2 = getattr(fb.BuiltinOptions2, kind), options
    return op


def per_tensor_quant(scale: float, zero_point: int) -> Any:
    """Per-tensor quantization parameters."""
    q = fb.QuantizationParametersT()
    q.scale, q.zeroPoint, q.quantizedDimension = [float(np.float32(scale))], [int(zero_point)], 0
    return q
