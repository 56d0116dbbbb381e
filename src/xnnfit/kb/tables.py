"""The delegate's op tables, derived from LiteRT's XNNPACK delegate source; every row is proven by a probe.

`IMPLEMENTED` is the set of ops the delegate's VisitNode switch handles, `FLOAT_ONLY`
the ones it handles in float but not quantized. tests/kb/test_tables.py builds a
one-op model for every row (kb/oneop.py) and checks the runtime agrees.
"""

from __future__ import annotations

# Ops the delegate's VisitNode switch handles (LiteRT xnnpack_delegate.cc); all else is refused.
IMPLEMENTED = frozenset(
    """ADD SUB MUL DIV MAXIMUM MINIMUM SQUARED_DIFFERENCE PRELU ABS CEIL COS EXP FLOOR GELU HARD_SWISH LOG
    NEG RELU RELU6 RELU_N1_TO_1 ROUND RSQRT SIN SQRT SQUARE ELU LOGISTIC TANH LEAKY_RELU DEQUANTIZE QUANTIZE
    CONV_2D DEPTHWISE_CONV_2D TRANSPOSE_CONV FULLY_CONNECTED BATCH_MATMUL AVERAGE_POOL_2D MAX_POOL_2D MEAN
    SUM REDUCE_MAX REDUCE_MIN RESHAPE TRANSPOSE CONCATENATION SPLIT SLICE STRIDED_SLICE PAD DEPTH_TO_SPACE
    SPACE_TO_DEPTH RESIZE_BILINEAR SOFTMAX VAR_HANDLE READ_VARIABLE ASSIGN_VARIABLE STABLEHLO_COMPOSITE""".split()
)
# Inputs that are op parameters (shape, axes, bounds...), not data: their int32 type is fine when constant.
PARAM_INPUTS: dict[str, tuple[int, ...]] = {
    "RESHAPE": (1,),
    "PAD": (1,),
    "MEAN": (1,),
    "SUM": (1,),
    "REDUCE_MAX": (1,),
    "REDUCE_MIN": (1,),
    "SLICE": (1, 2),
    "STRIDED_SLICE": (1, 2, 3),
    "TRANSPOSE": (1,),
    "SPLIT": (0,),
    "TRANSPOSE_CONV": (0,),
    "RESIZE_BILINEAR": (1,),
}
# Inputs XNNPACK needs as constants in the file (weights and parameters).
STATIC_INPUTS: dict[str, tuple[int, ...]] = {
    **PARAM_INPUTS,
    "CONV_2D": (1, 2),
    "DEPTHWISE_CONV_2D": (1, 2),
    "TRANSPOSE_CONV": (0, 1),
    "FULLY_CONNECTED": (1, 2),
    "PRELU": (1,),
}
QUANTIZED = frozenset({"int8", "uint8"})
# Ops XNNPACK runs in float but has no int8/uint8 kernel for.
FLOAT_ONLY = frozenset(
    """SOFTMAX AVERAGE_POOL_2D MAXIMUM MINIMUM DIV PRELU HARD_SWISH ABS CEIL COS EXP FLOOR GELU LOG NEG RELU RELU6
    RELU_N1_TO_1 ROUND RSQRT SIN SQRT SQUARE SQUARED_DIFFERENCE""".split()
)
