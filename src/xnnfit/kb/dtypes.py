"""Causes: tensor types XNNPACK has no values for (int32/int64/bool data, int16 activations)."""

from __future__ import annotations

from xnnfit.kb.cause import Cause
from xnnfit.kb.conditions import AnyTensorDtype, DataDtype
from xnnfit.kb.probes import delegated, lam, layers, rejected

CAUSES = (
    Cause(
        id="XNN021",
        title="integer or bool data tensor",
        condition=DataDtype(frozenset({"int32", "int64", "bool", "uint32", "uint16", "string", "complex64"})),
        why="XNNPACK computes on float and int8/uint8-quantized tensors only; int32, int64 and bool "
        "data (index math, masks) stay on CPU kernels.",
        example="ids + 1 on an int32 input",
        rewrites=("XR002", "XR013"),
        probes=(
            rejected("ADD", lam(lambda tf, x: x + 1, dtype="int32")),
            delegated("ADD", lam(lambda tf, x: x + 1.0)),
        ),
    ),
    Cause(
        id="XNN029",
        title="int16 activations (16x8 quantization)",
        condition=AnyTensorDtype(frozenset({"int16"})),
        why="XNNPACK has no int16 tensors: an int16x8-quantized model runs entirely on CPU kernels.",
        example="converter.target_spec.supported_ops = [EXPERIMENTAL_TFLITE_BUILTINS_ACTIVATIONS_INT16_WEIGHTS_INT8]",
        probes=(
            rejected("FULLY_CONNECTED", layers(lambda k: k.layers.Dense(8)), recipe="int16x8"),
            delegated("FULLY_CONNECTED", layers(lambda k: k.layers.Dense(8)), recipe="int8"),
        ),
    ),
)
