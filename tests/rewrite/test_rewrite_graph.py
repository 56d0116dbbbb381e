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


def test_a_constant_whose_bytes_are_not_a_whole_number_of_elements():
    """The fuzzer's case: 2 stray bytes after an int32 constant made numpy refuse the buffer in every rule matcher."""

    def edit(tensor, buf):
        buf.data = bytes(buf.data) + b"\x01\x02"

    content = _with_shape_constant(edit)
    Interpreter(model_content=content).allocate_tensors()
    assert Graph.from_bytes(content).value(1).tolist() == [1, 2, 3]


def test_options_of_another_type_than_the_op_are_none_and_rules_use_the_defaults():
    """The fuzzer's case: a GATHER with FullyConnectedOptions (an overwritten tag) made XR010 raise AttributeError."""
    from xnnfit.rewrite.rule import RewriteContext
    from xnnfit.rewrite.rules import RULES
    from xnnfit.tflite.schema import fb

    model = parse(fixtures_models.convert(RULES["XR010"].example()).content)
    (gather,) = [
        op
        for op in model.subgraphs[0].operators
        if model.operatorCodes[op.opcodeIndex].builtinCode == fb.BuiltinOperator.GATHER
    ]
    assert isinstance(gather.builtinOptions, fb.GatherOptionsT) and gather.builtinOptions.axis == 1
    gather.builtinOptionsType, gather.builtinOptions = (
        fb.BuiltinOptions.FullyConnectedOptions,
        fb.FullyConnectedOptionsT(),
    )
    g = Graph.from_bytes(serialize(model))
    i = g.ops.index(next(op for op in g.ops if g.op(g.ops.index(op)) == "GATHER"))

    assert g.options(i, "GatherOptions") is None
    assert isinstance(g.options(i, "FullyConnectedOptions"), fb.FullyConnectedOptionsT)
    for rule in RULES.values():  # every matcher reads the options through Graph.options
        rule.match(g.copy(), RewriteContext())


def test_an_omitted_output_stays_in_place_when_tensors_are_renumbered():
    """The fuzzer's case: an op's outputs [t, -1] made the renumbering raise KeyError: -1."""
    model = parse(fixtures_models.convert(fixtures_models.dense_reshape_model()).content)
    model.subgraphs[0].operators[0].outputs = [3, -1]
    g = Graph.from_bytes(serialize(model))
    g.prune()
    assert [int(t) for t in g.ops[0].outputs] == [3, -1]
