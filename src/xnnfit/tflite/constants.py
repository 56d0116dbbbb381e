"""The values of constant tensors in a parsed model (flatbuffer object API): as stored, and as real numbers."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from xnnfit.tflite.schema import type_name

NUMPY_TYPES = {
    "float32": np.float32,
    "float16": np.float16,
    "int32": np.int32,
    "int64": np.int64,
    "int8": np.int8,
    "uint8": np.uint8,
    "bool": np.bool_,
    "int16": np.int16,
}


def quantization(tensor: Any) -> Any:
    """The tensor's QuantizationParametersT when it carries scales, else None."""
    q = tensor.quantization
    return q if q is not None and q.scale is not None and len(q.scale) else None


def stored(model: Any, tensor: Any) -> np.ndarray | None:
    """A constant tensor's contents as stored (raw integers for a quantized one); None for a computed tensor."""
    if not tensor.buffer:
        return None
    data = model.buffers[tensor.buffer].data
    dtype_name = type_name(tensor.type)
    if data is None or len(data) == 0 or dtype_name not in NUMPY_TYPES:
        return None
    raw = np.asarray(data, dtype=np.uint8).tobytes()
    dtype = np.dtype(NUMPY_TYPES[dtype_name])
    shape = tuple(int(d) for d in tensor.shape) if tensor.shape is not None else ()
    if shape:  # a longer buffer is read up to its shape, as the runtime does (read_model refuses a shorter one)
        return np.frombuffer(raw, dtype=dtype, count=math.prod(shape)).reshape(shape)
    arr = np.frombuffer(raw, dtype=dtype, count=len(raw) // dtype.itemsize)
    return arr.reshape(()) if arr.size == 1 else arr


def dequantized(values: np.ndarray, q: Any) -> np.ndarray:
    """Stored integers as real numbers, (v - zero point) * scale, per tensor or along the quantized dimension."""
    scale = np.asarray(q.scale, dtype=np.float64)
    zp = np.asarray(q.zeroPoint if q.zeroPoint is not None else [0] * len(scale), dtype=np.float64)
    if scale.size > 1:
        shape = [1] * values.ndim
        shape[q.quantizedDimension] = -1
        scale, zp = scale.reshape(shape), zp.reshape(shape)
    return (values.astype(np.float64) - zp) * scale


def real(model: Any, tensor: Any) -> np.ndarray | None:
    """A constant tensor's real value (dequantized when quantized), as float64; None for a computed tensor."""
    v = stored(model, tensor)
    if v is None:
        return None
    q = quantization(tensor)
    if q is None or type_name(tensor.type).startswith("float"):
        return v.astype(np.float64)
    return dequantized(v, q)
