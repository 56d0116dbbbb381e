"""rewrite.float_twin on a real fp16 conversion with a damaged node (found by benchmarks/fuzz.py)."""

from __future__ import annotations

import pytest

import fixtures_models
from xnnfit.core.errors import XnnfitError
from xnnfit.rewrite.float_twin import float_twin
from xnnfit.tflite.schema import fb
from xnnfit.tflite.writer import parse, serialize


def test_a_dequantize_without_outputs_is_one_clear_error():
    """A weight DEQUANTIZE with no outputs left: rebuilding the float model raised 'not enough values to unpack'."""
    model = parse(fixtures_models.convert_example("where_cnn", "fp16").content)
    dequantize = next(
        op
        for op in model.subgraphs[0].operators
        if model.operatorCodes[op.opcodeIndex].builtinCode == fb.BuiltinOperator.DEQUANTIZE
    )
    dequantize.outputs = []
    with pytest.raises(XnnfitError) as info:
        float_twin(serialize(model))
    message = str(info.value)
    assert message.startswith("cannot rebuild a float model from this quantized .tflite (") and "\n" not in message
    assert message.endswith("Pass the Keras model it came from.")
