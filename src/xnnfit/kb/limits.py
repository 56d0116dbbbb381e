"""The XNNPACK delegate's numeric limits, each written once: KB causes state them, rewrite rules stay within them.

Each comes from LiteRT's `tflite/delegates/xnnpack/xnnpack_delegate.cc` (the function is
named beside it) and is proven by the probes of the cause that states it (tests/kb).
"""

from __future__ import annotations

# VisitConcatenationNode: CheckNumInputsAndOutputs(node, 2, 5, 1) ("TODO: Remove this limit").
MIN_CONCAT_INPUTS = 2
MAX_CONCAT_INPUTS = 5

# VisitSplitNode: CheckNumOutputs(node, 2, 4) ("TODO: Remove this limit on the number of outputs").
MIN_SPLIT_OUTPUTS = 2
MAX_SPLIT_OUTPUTS = 4

# XNN_MAX_TENSOR_DIMS (xnnpack.h): the delegate refuses a tensor of more dimensions when it defines the
# XNNPACK value, and checks it as `max_num_dims` of every op's inputs (CheckTensorShape).
MAX_RANK = 6

# VisitBinaryNode, quantized ADD and SUB: CheckTensorsInputOutputScale(scale_min = 1/1024, scale_max = 256) for
# each input scale over the output scale.
ADD_SCALE_RATIO = (1 / 1024, 256)
# VisitBinaryNode, quantized MUL: CheckTensorsInputProductOutputScale(scale_min = 1/65536, scale_max = 256) for
# input1 scale * input2 scale over the output scale.
MUL_SCALE_RATIO = (1 / 65536, 256)


def ratio_text(bounds: tuple[float, float]) -> str:
    """'[1/1024, 256)': a scale-ratio range as the KB's texts write it."""
    low, high = bounds
    return f"[1/{round(1 / low)}, {high:g})"
