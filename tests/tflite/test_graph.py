"""xnnfit.tflite.read_model on models made by the real TFLite converter, and on files that are not."""

from __future__ import annotations

import numpy as np
import pytest
from ai_edge_litert import schema_py_generated as fb

import fixtures_models
from xnnfit.core.errors import SourceError, XnnfitError
from xnnfit.tflite import ModelGraph, read_model


@pytest.fixture(scope="module")
def fixed() -> bytes:
    """Dense -> Reshape at batch 1: the RESHAPE's shape is one int32 constant."""
    return fixtures_models.convert(fixtures_models.dense_reshape_model()).content


@pytest.fixture(scope="module")
def dynamic() -> bytes:
    """The same model with --dynamic-batch: the shape is built at run time from SHAPE and PACK."""
    return fixtures_models.convert(fixtures_models.dense_reshape_model(), dynamic_batch=True).content


@pytest.fixture(scope="module")
def int8_conv() -> bytes:
    """A full-integer Conv2D(5) with relu: per-channel weights, int8 activations."""
    import keras

    inp = keras.Input((8, 8, 3), name="image")
    out = keras.layers.Conv2D(5, 3, activation="relu", name="conv")(inp)
    return fixtures_models.convert(keras.Model(inp, out, name="conv_model"), "int8").content


def _by_op(graph: ModelGraph, op: str):
    found = [o for o in graph.primary.ops if o.op == op]
    assert len(found) == 1, [o.op for o in graph.primary.ops]
    return found[0]


# ----------------------------------------------------------------------------- reading


def test_reads_ops_in_execution_order(fixed):
    graph = read_model(fixed)
    assert len(graph.subgraphs) == 1
    assert graph.primary is graph.subgraphs[0]
    assert [o.op for o in graph.primary.ops] == ["FULLY_CONNECTED", "RESHAPE"]
    assert [o.index for o in graph.primary.ops] == [0, 1]
    assert all(o.custom_code is None and o.label == o.op for o in graph.primary.ops)
    assert graph.size_bytes == len(fixed)


def test_reads_model_inputs_and_outputs(fixed):
    sub = read_model(fixed).primary
    (inp,) = sub.inputs
    (out,) = sub.outputs
    assert sub.tensors[inp].name == "x"
    assert sub.tensors[inp].shape == (1, 4)
    assert sub.tensors[inp].dtype == "float32"
    assert not sub.tensors[inp].constant
    assert sub.tensors[out].shape == (1, 2, 3)
    fc, reshape = sub.ops
    assert fc.inputs[0] == inp
    assert reshape.outputs == (out,)
    assert reshape.inputs[0] == fc.outputs[0]


def test_producers_and_consumers_are_inverse(fixed):
    sub = read_model(fixed).primary
    producers = sub.producers()
    consumers = sub.consumers()
    fc, reshape = sub.ops
    assert producers[fc.outputs[0]] == fc.index
    assert consumers[fc.outputs[0]] == [reshape.index]
    assert sub.inputs[0] not in producers  # a graph input has no producer
    for tensor, readers in consumers.items():
        for reader in readers:
            assert tensor in sub.ops[reader].inputs


def test_reshape_shape_constant_values(fixed):
    graph = read_model(fixed)
    reshape = _by_op(graph, "RESHAPE")
    shape = graph.primary.tensors[reshape.inputs[1]]
    assert shape.dtype == "int32"
    assert shape.constant
    assert shape.values == (1, 2, 3)


def test_float_weights_are_constant_without_values(fixed):
    graph = read_model(fixed)
    fc = _by_op(graph, "FULLY_CONNECTED")
    weights = graph.primary.tensors[fc.inputs[1]]
    assert weights.constant
    assert weights.dtype == "float32"
    assert weights.shape == (6, 4)  # TFLite keeps FC weights as (units, inputs)
    assert weights.values is None  # only small integer constants carry values
    assert not weights.quantized and weights.num_scales == 0 and weights.zero_point is None


def test_fixed_batch_shape_signature_is_static(fixed):
    sub = read_model(fixed).primary
    for t in sub.tensors:
        assert t.shape_signature == t.shape, t
        assert not t.dynamic, t


def test_dynamic_batch_shape_signature(dynamic):
    sub = read_model(dynamic).primary
    inp = sub.tensors[sub.inputs[0]]
    out = sub.tensors[sub.outputs[0]]
    assert inp.shape == (1, 4) and inp.shape_signature == (-1, 4) and inp.dynamic
    assert out.shape == (1, 2, 3) and out.shape_signature == (-1, 2, 3) and out.dynamic
    consts = [t for t in sub.tensors if t.constant]
    assert consts and not any(t.dynamic for t in consts)


def test_dynamic_batch_reshape_shape_is_computed(dynamic):
    graph = read_model(dynamic)
    sub = graph.primary
    assert [o.op for o in sub.ops] == ["FULLY_CONNECTED", "SHAPE", "STRIDED_SLICE", "PACK", "RESHAPE"]
    reshape = _by_op(graph, "RESHAPE")
    shape = sub.tensors[reshape.inputs[1]]
    assert not shape.constant and shape.values is None
    pack = _by_op(graph, "PACK")
    assert sub.producers()[shape.index] == pack.index
    constant_dims = sorted(sub.tensors[t].values for t in pack.inputs if sub.tensors[t].constant)
    assert constant_dims == [(2,), (3,)]  # the batch comes from SHAPE, the other dims are constants
    strided = _by_op(graph, "STRIDED_SLICE")
    assert strided.options["shrinkAxisMask"] == 1
    begin = sub.tensors[strided.inputs[1]]
    assert begin.constant and begin.values == (0,)


def test_op_options_are_read(int8_conv):
    graph = read_model(int8_conv)
    conv = _by_op(graph, "CONV_2D")
    assert conv.options["fusedActivationFunction"] == fb.ActivationFunctionType.RELU
    assert conv.options["padding"] == fb.Padding.VALID
    assert (conv.options["strideW"], conv.options["strideH"]) == (1, 1)


def test_quantized_tensors(int8_conv):
    graph = read_model(int8_conv)
    sub = graph.primary
    conv = _by_op(graph, "CONV_2D")
    x, w, b = (sub.tensors[t] for t in conv.inputs)
    assert x.dtype == "int8" and x.quantized and x.num_scales == 1 and x.zero_point is not None
    assert w.dtype == "int8" and w.constant and w.num_scales == 5  # per output channel
    assert w.shape == (5, 3, 3, 3)
    assert b.dtype == "int32" and b.constant and b.num_scales == 5
    assert b.values is not None and len(b.values) == 5  # small int32 constant: values are read
    # the float model input goes through QUANTIZE, the output through DEQUANTIZE
    assert sub.tensors[sub.inputs[0]].dtype == "float32"
    assert [o.op for o in sub.ops] == ["QUANTIZE", "CONV_2D", "DEQUANTIZE"]


def test_converter_metadata_and_debug_indices(fixed):
    graph = read_model(fixed)
    assert "debug_metadata" in graph.metadata and graph.metadata["debug_metadata"]
    assert "min_runtime_version" in graph.metadata
    assert all(o.debug_index is not None and o.debug_index >= 0 for o in graph.primary.ops)


def test_read_is_deterministic(fixed):
    assert read_model(fixed) == read_model(bytes(fixed))


# ----------------------------------------------------------------------------- errors


def _raises(data: bytes, what: str = "'model.tflite'") -> SourceError:
    with pytest.raises(SourceError) as info:
        read_model(data, what)
    assert isinstance(info.value, XnnfitError)
    message = str(info.value)
    assert "\n" not in message, message
    assert message.startswith(f"cannot read {what}: "), message
    return info.value


def test_empty_bytes():
    message = str(_raises(b""))
    assert "empty" in message


def test_default_what_is_named():
    with pytest.raises(SourceError, match="^cannot read the model: the file is empty"):
        read_model(b"")


@pytest.mark.parametrize("size", [1, 7, 100, 4096])
def test_random_bytes(size):
    data = np.random.default_rng(size).bytes(size)
    assert data[4:8] != b"TFL3"
    message = str(_raises(data))
    assert "not a TFLite flatbuffer" in message
    assert repr(data[:8]) in message  # says what it received
    assert "TFL3" in message  # and what a .tflite looks like


def test_zip_header_says_keras():
    data = b"PK\x03\x04\x14\x00\x00\x00" + bytes(200)
    message = str(_raises(data))
    assert repr(data[:8]) in message
    assert ".keras" in message
    assert "TFL3" not in message  # the hint replaces the generic explanation


def test_hdf5_header_says_h5():
    data = b"\x89HDF\r\n\x1a\n" + bytes(200)
    message = str(_raises(data))
    assert repr(data[:8]) in message
    assert "HDF5" in message and ".h5" in message


@pytest.mark.parametrize("cut", ["half", "100"])
def test_truncated_model(fixed, cut):
    data = fixed[: len(fixed) // 2] if cut == "half" else fixed[:100]
    assert data[4:8] == b"TFL3"  # passes the identifier check: the damage is further in
    message = str(_raises(data, "'cut.tflite'"))
    assert "damaged or truncated" in message
    assert "Re-export" in message


def test_truncation_is_said_in_plain_words(fixed):
    """The flatbuffers reader's struct.error ('unpack_from requires a buffer of at least...') becomes where it read."""
    data = fixed[: len(fixed) // 2]
    error = _raises(data, "'cut.tflite'")
    assert "damaged or truncated (an offset in it points to byte " in str(error)
    assert f", outside its {len(data)} bytes). Re-export the model." in str(error)
    assert "unpack_from" in error.detail  # the reader's own words, for --debug


def test_an_offset_before_the_start_is_said_in_plain_words(fixed):
    """The root table's vtable offset overwritten with 2**31-1: the reader raised 'TypeError: bad number ... uint32'."""
    root = fb.Model.GetRootAs(fixed, 0)._tab.Pos
    data = bytearray(fixed)
    data[root : root + 4] = (2**31 - 1).to_bytes(4, "little")
    error = _raises(bytes(data))
    where = f"an offset in it points to byte {root - (2**31 - 1)}, outside its {len(data)} bytes"
    assert f"damaged or truncated ({where})" in str(error)
    assert "bad number" in error.detail


def test_identifier_without_a_model():
    data = b"\x00\x00\x00\x00TFL3" + bytes(56)
    message = str(_raises(data))
    assert "damaged or truncated" in message or "no subgraph" in message


# ----------------------------------------------------------------------------- damaged files (benchmarks/fuzz.py)
# Each fault is made in the bytes of a real conversion. Where the runtime refuses the file
# too, the test shows it, so read_model is never stricter than the runtime it stands for.


def _edited(content: bytes, edit) -> bytes:
    """`content` parsed, changed by `edit(ModelT)` and serialized again."""
    from xnnfit.tflite.writer import parse, serialize

    model = parse(content)
    edit(model)
    return serialize(model)


def _runtime_refuses(data: bytes) -> None:
    """The installed runtime raises while loading `data` or listing its nodes (as xnnfit's diagnosis does)."""
    from ai_edge_litert.interpreter import Interpreter

    with pytest.raises((ValueError, RuntimeError)):
        interpreter = Interpreter(model_content=data)
        interpreter.allocate_tensors()
        interpreter._get_ops_details()


def _runtime_runs(data: bytes) -> None:
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_content=data)
    interpreter.allocate_tensors()
    interpreter._get_ops_details()
    interpreter.invoke()


def test_tensor_name_not_utf8_is_refused_with_its_place(fixed):
    """A flipped byte in a tensor name: the runtime's Python API raises UnicodeDecodeError on every node listing."""
    name = b"tiny_1/dense_1/MatMul2"
    assert fixed.count(name) == 1
    at = fixed.index(name) + 7
    data = fixed[:at] + b"\xff" + fixed[at + 1 :]
    _runtime_refuses(data)
    message = str(_raises(data))
    assert "the name of tensor 3 of subgraph 0 is not UTF-8 text" in message
    assert r"byte 7 is b'\xff'" in message  # where the damage is, quoted
    assert message.endswith("Re-export the model.")


def test_names_the_runtime_never_reads_are_read_with_replacement(fixed):
    """A garbled subgraph name or signature key does not stop the runtime: read_model reads on."""

    def edit(model):
        model.subgraphs[0].name = b"main\xff"
        model.operatorCodes[0].customCode = b"\xfe"  # a builtin op's custom code is never used

    data = _edited(fixed, edit)
    _runtime_runs(data)
    graph = read_model(data)
    assert graph.primary.name == "main\ufffd"
    assert [o.op for o in graph.primary.ops] == ["FULLY_CONNECTED", "RESHAPE"]


@pytest.mark.parametrize(
    ("edit", "needle"),
    [
        (
            lambda m: setattr(m.subgraphs[0].operators[1], "inputs", [3, 99]),
            "input 1 of op 1 (RESHAPE) of subgraph 0 is tensor 99, but there are only 5",
        ),
        (
            lambda m: setattr(m.subgraphs[0].operators[0], "outputs", [-7]),
            "output 0 of op 0 (FULLY_CONNECTED) of subgraph 0 is tensor -7, a negative index",
        ),
        (
            lambda m: setattr(m.subgraphs[0].operators[0], "opcodeIndex", 40),
            "the kind of op 0 of subgraph 0 is operator code 40, but there are only 2",
        ),
        (
            lambda m: setattr(m.subgraphs[0].tensors[2], "buffer", 1000),
            "the data of tensor 2 ('tiny_1/dense_1/MatMul') of subgraph 0 is buffer 1000, but there are only",
        ),
        (
            lambda m: setattr(m.subgraphs[0], "outputs", [2**31 - 1]),
            "output 0 of subgraph 0 is tensor 2147483647, but there are only 5",
        ),
    ],
    ids=["op-input", "op-output", "opcode", "buffer", "subgraph-output"],
)
def test_index_out_of_range_is_refused_with_its_place(fixed, edit, needle):
    data = _edited(fixed, edit)
    _runtime_refuses(data)
    message = str(_raises(data))
    assert f"the TFLite flatbuffer is damaged: {needle}" in message, message
    assert message.endswith("Re-export the model.")


def _shape_constant(model):
    """The RESHAPE's int32 shape constant [1, 2, 3] (tensor 1) and its buffer."""
    tensor = model.subgraphs[0].tensors[1]
    return tensor, model.buffers[tensor.buffer]


def test_constant_shorter_than_its_shape_is_refused(fixed):
    """Half the data of a constant: the rewriter's reshape raised (the fuzzer's case); the runtime refuses it."""

    def edit(model):
        _, buf = _shape_constant(model)
        buf.data = bytes(buf.data[:8])

    data = _edited(fixed, edit)
    _runtime_refuses(data)
    message = str(_raises(data))
    assert (
        "constant tensor 1 ('arith.constant') of subgraph 0 holds 8 bytes, but its shape [3] of int32 needs 12"
        in message
    )


def test_constant_with_a_huge_shape_is_refused_without_allocating(fixed):
    """A dimension overwritten with 2**31-1: the size is computed in Python integers, nothing is allocated."""

    def edit(model):
        tensor, _ = _shape_constant(model)
        tensor.shape = [2**31 - 1, 2**31 - 1]

    data = _edited(fixed, edit)
    _runtime_refuses(data)
    assert "needs 18446744056529682436" in str(_raises(data))


@pytest.mark.parametrize("tensor", [0, 1, 3, 4], ids=["input", "constant", "intermediate", "output"])
def test_a_negative_dimension_is_refused(fixed, tensor):
    """The runtime refuses any tensor with a negative dimension in its shape ('invalidly specified in schema')."""

    def edit(model):
        model.subgraphs[0].tensors[tensor].shape = [1, -5]

    data = _edited(fixed, edit)
    _runtime_refuses(data)
    assert f"tensor {tensor} (" in str(_raises(data)) and "has shape [1, -5], with a negative dimension" in str(
        _raises(data)
    )


@pytest.mark.parametrize(
    ("shape", "refused"),
    [
        ([2**31 - 1] * 3, True),
        ([2**31 - 1] * 8, True),
        ([2**31 - 1, 2**31 - 1, 2**31 - 1, 0], True),  # the count overflows before the 0
        ([2**30, 2**30, 2**3], True),  # 2**63 elements fit, 2**65 bytes do not
        ([2**30, 2**30, 2], False),
        ([0, 2**31 - 1, 2**31 - 1, 2**31 - 1], False),
    ],
)
def test_a_shape_whose_size_overflows_64_bits_is_refused_like_the_runtime_does(fixed, shape, refused):
    """The runtime multiplies dimensions, then the 4-byte item size, in 64 bits and refuses an overflow.

    A size that fits is a question of memory bounds, not damage.
    """

    def edit(model):
        model.subgraphs[0].tensors[3].shape = shape

    data = _edited(fixed, edit)
    if refused:
        _runtime_refuses(data)
        assert "tensor 3 ('tiny_1/dense_1/MatMul2') of subgraph 0 has shape " in str(_raises(data))
        assert "of float32: its size in bytes does not fit in 64 bits" in str(_raises(data))
    else:
        assert read_model(data).primary.tensors[3].shape == tuple(shape)


def test_a_garbled_shape_is_quoted_by_its_start(fixed):
    """The fuzzer's case: an overwritten vector length made a shape of 212 dimensions, most of them bytes of names."""

    def edit(model):
        model.subgraphs[0].tensors[3].shape = [3, -1766, 16777216, *range(209)]

    message = str(_raises(_edited(fixed, edit)))
    assert "has shape [3, -1766, 16777216, 0, 1, 2, 3, 4, ... (212 dimensions)], with a negative dimension" in message


def test_constant_longer_than_its_shape_is_read_like_the_runtime_does(fixed):
    """Extra bytes after a constant's data: the runtime reads as many elements as the shape has, as read_model does."""

    def edit(model):
        _, buf = _shape_constant(model)
        buf.data = bytes(buf.data) + np.int32(7).tobytes()

    data = _edited(fixed, edit)
    _runtime_runs(data)
    assert read_model(data).primary.tensors[1].values == (1, 2, 3)


def test_buffer_offset_past_the_end_is_refused(fixed):
    """A buffer stored at an offset (the >2 GB layout) that lies beyond the file."""

    def edit(model):
        _, buf = _shape_constant(model)
        buf.data, buf.offset, buf.size = None, 10**6, 12

    data = _edited(fixed, edit)
    _runtime_refuses(data)
    assert f"a buffer's data at bytes 1000000-1000012 lies past the end of the {len(data)}-byte file" in str(
        _raises(data)
    )


def test_metadata_entry_without_a_buffer_is_ignored_like_the_runtime_does(fixed):
    def edit(model):
        entry = fb.MetadataT()
        entry.name, entry.buffer = "dangling", 10**6
        model.metadata.append(entry)

    data = _edited(fixed, edit)
    _runtime_runs(data)
    graph = read_model(data)
    assert "dangling" not in graph.metadata and "min_runtime_version" in graph.metadata


def test_quantization_vector_past_the_end_is_refused(int8_conv):
    """A scale vector whose length word was overwritten: read_model used to read only its first item and pass it on."""
    model = fb.Model.GetRootAs(int8_conv, 0)
    sub = model.Subgraphs(0)
    (weights,) = [
        i
        for i in range(sub.TensorsLength())
        if sub.Tensors(i).Quantization()
        and sub.Tensors(i).Quantization().ScaleLength() == 5
        and sub.Tensors(i).Type() == fb.TensorType.INT8
    ]
    q = sub.Tensors(weights).Quantization()
    start = q._tab.Vector(q._tab.Offset(8))  # Quantization.scale: field 2, its items start after the length word
    data = bytearray(int8_conv)
    data[start - 4 : start] = (2**31 - 1).to_bytes(4, "little")
    _runtime_refuses(bytes(data))
    message = str(_raises(bytes(data)))
    assert f"damaged or truncated (a vector in it runs past the end of its {len(data)} bytes)" in message


def test_a_type_code_the_schema_does_not_define_is_refused(fixed):
    def edit(model):
        model.subgraphs[0].tensors[0].type = 99

    data = _edited(fixed, edit)
    _runtime_refuses(data)  # 'Unsupported data type 99 in tensor'
    assert "tensor 0 ('x') of subgraph 0 has type code 99, which the TFLite schema does not define" in str(
        _raises(data)
    )


def _weights(model):
    """The int8 conv's per-channel weights: 5 scales along dimension 0 of shape (5, 3, 3, 3)."""
    (tensor,) = [
        t
        for t in model.subgraphs[0].tensors
        if t.quantization is not None
        and t.quantization.scale is not None
        and len(t.quantization.scale) == 5
        and t.type == fb.TensorType.INT8
    ]
    return tensor.quantization


@pytest.mark.parametrize(
    ("edit", "needle"),
    [
        (
            lambda q: setattr(q, "quantizedDimension", 4),
            "is quantized along dimension 4, but its shape [5, 3, 3, 3] has 4",
        ),
        (
            lambda q: setattr(q, "quantizedDimension", 1),
            "has 5 quantization scales: 1 (per tensor) or 3 (per channel of dimension 1) expected",
        ),
        (lambda q: setattr(q, "zeroPoint", list(q.zeroPoint[:1])), "has 1 quantization zero points for 5 scales"),
    ],
    ids=["axis", "scales", "zero-points"],
)
def test_quantization_the_runtime_refuses_is_refused(int8_conv, edit, needle):
    """The fuzzer's case: a dimension changed under per-channel scales made the float twin raise a broadcast error."""
    data = _edited(int8_conv, lambda model: edit(_weights(model)))
    _runtime_refuses(data)  # 'Tensor 2 has invalid quantization parameters'
    message = str(_raises(data))
    assert "tensor 2 ('conv_model_1/conv_1/convolution') of subgraph 0 " + needle in message, message
