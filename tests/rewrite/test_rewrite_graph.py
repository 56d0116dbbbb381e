"""rewrite.graph.Graph reading constants of real conversions as the runtime reads them (found by benchmarks/fuzz.py)."""

from __future__ import annotations

import numpy as np
from ai_edge_litert.interpreter import Interpreter

import fixtures_models
from xnnfit.rewrite.graph import Graph
from xnnfit.tflite.writer import parse, serialize


def _with_shape_constant(edit) -> bytes:
    """Dense -> Reshape with its int32 shape constant [1, 2, 3] (tensor 1) changed by `edit(tensor, buffer)`."""
    model = parse(fixtures_models.convert(fixtures_models.dense_reshape_model()).content)
    tensor = model.subgraphs[0].tensors[1]
    edit(tensor, model.buffers[tensor.buffer])
    return serialize(model)


def test_a_constant_longer_than_its_shape_is_read_up_to_its_shape():
    def edit(tensor, buf):
        buf.data = bytes(buf.data) + np.int32(7).tobytes()

    content = _with_shape_constant(edit)
    Interpreter(model_content=content).allocate_tensors()  # the runtime reads 3 elements
    assert Graph.from_bytes(content).value(1).tolist() == [1, 2, 3]


def test_an_empty_shape_over_a_non_empty_buffer_is_an_empty_constant():
    """The fuzzer's case: a dimension overwritten with 0 made the rule matchers' value() raise a reshape ValueError."""

    def edit(tensor, buf):
        tensor.shape = [0]

    value = Graph.from_bytes(_with_shape_constant(edit)).value(1)
    assert value.shape == (0,) and value.dtype == np.int32
