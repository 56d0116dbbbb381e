"""Tests for xnnfit.tflite.debug_metadata against the real TFLite converter."""

from __future__ import annotations

import functools
import inspect
import os

import flatbuffers
import keras
import pytest
import tensorflow as tf
from ai_edge_litert import schema_py_generated as fb

from xnnfit.tflite.debug_metadata import DebugMetadataTable, OpLocation, read_debug_metadata, user_frame
from xnnfit.tflite.schema import op_name

THIS_FILE = os.path.realpath(__file__)


class SquareLayer(keras.layers.Layer):
    """A custom layer whose call lowers to one SQUARE op."""

    def call(self, x):
        """Square the input."""
        return tf.square(x)


def _square_line() -> int:
    lines, start = inspect.getsourcelines(SquareLayer.call)
    return start + next(i for i, line in enumerate(lines) if "tf.square(" in line)


def _build_model() -> keras.Model:
    inp = keras.Input((4,))
    x = keras.layers.Dense(8)(inp)
    x = keras.layers.Lambda(lambda t: tf.where(t > 0, t, 0.2 * t), name="lam")(x)
    x = SquareLayer(name="sq")(x)
    return keras.Model(inp, keras.layers.Dense(2)(x))


def _lambda_line(model: keras.Model) -> int:
    return inspect.getsourcelines(model.get_layer("lam").function)[1]


def _convert(converter: tf.lite.TFLiteConverter) -> bytes:
    converter.serialize_debug_metadata = True
    return converter.convert()


def _ops(model_bytes: bytes) -> tuple[DebugMetadataTable, list[tuple[str, OpLocation | None]]]:
    model = fb.Model.GetRootAs(model_bytes, 0)
    names = [model.Metadata(i).Name() for i in range(model.MetadataLength())]
    md = model.Metadata(names.index(b"debug_metadata"))
    table = read_debug_metadata(model.Buffers(md.Buffer()).DataAsNumpy().tobytes())
    sub = model.Subgraphs(0)
    out = []
    for i in range(sub.OperatorsLength()):
        op = sub.Operators(i)
        code = model.OperatorCodes(op.OpcodeIndex())
        kind = op_name(max(code.BuiltinCode(), code.DeprecatedBuiltinCode()))
        out.append((kind, table.location(0, op.DebugMetadataIndex())))
    return table, out


def _one(ops: list[tuple[str, OpLocation | None]], *kinds: str) -> OpLocation:
    found = [loc for kind, loc in ops if kind in kinds]
    assert len(found) == 1, ops
    assert found[0] is not None
    return found[0]


@pytest.fixture(scope="module")
def keras_ops() -> list[tuple[str, OpLocation | None]]:
    """Ops of the model converted with from_keras_model (names only: Keras 3 export drops stack traces)."""
    return _ops(_convert(tf.lite.TFLiteConverter.from_keras_model(_build_model())))[1]


@pytest.fixture(scope="module")
def traced(tmp_path_factory: pytest.TempPathFactory) -> tuple[int, DebugMetadataTable, list]:
    """Lambda line, table and ops of the model exported as from_keras_model does, plus save_debug_info."""
    model = _build_model()
    spec = [tf.TensorSpec(t.shape, t.dtype, name=t.name) for t in model.inputs]
    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.add_endpoint("serve", functools.partial(model.__call__, training=False), spec)
    out = str(tmp_path_factory.mktemp("saved_model"))
    archive.write_out(out, options=tf.saved_model.SaveOptions(save_debug_info=True), verbose=False)
    table, ops = _ops(_convert(tf.lite.TFLiteConverter.from_saved_model(out)))
    return _lambda_line(model), table, ops


def test_from_keras_model_names_ops(keras_ops):
    select = _one(keras_ops, "SELECT_V2")
    assert any("lam" in n for n in select.names), select
    assert not any("@" in n or n.endswith(":") for n in select.names), select
    assert any("sq" in n for n in _one(keras_ops, "SQUARE").names)


def test_lambda_user_frame(traced):
    lambda_line, _, ops = traced
    select = _one(ops, "SELECT_V2")
    assert any("lam" in n for n in select.names), select
    frame = user_frame(select, ())
    assert frame is not None, select.frames
    assert (os.path.realpath(frame[0]), frame[1]) == (THIS_FILE, lambda_line)


def test_custom_layer_user_frame(traced):
    square = _one(traced[2], "SQUARE")
    assert any("sq" in n for n in square.names), square
    frame = user_frame(square, ())
    assert frame is not None, square.frames
    assert (os.path.realpath(frame[0]), frame[1]) == (THIS_FILE, _square_line())


def test_exclude_prefixes_skips_frames(traced):
    square = _one(traced[2], "SQUARE")
    frame = user_frame(square, (os.path.dirname(THIS_FILE),))
    assert frame is None or os.path.realpath(frame[0]) != THIS_FILE


def test_missing_index_is_none(traced):
    table = traced[1]
    assert table.location(0, -1) is None
    assert table.location(0, 10**6) is None
    assert table.location(99, 0) is None


@pytest.mark.parametrize("garbage", [b"", b"\x01\x02\x03", b"\x00" * 16, b"garbage!" * 8, b"\xff" * 64])
def test_garbage_raises_value_error(garbage):
    with pytest.raises(ValueError, match="debug_metadata"):
        read_debug_metadata(garbage)


def _fake_metadata(callsites: list[tuple[int, int, int]], n_files: int = 1, op_attr: int = 1) -> bytes:
    """A DebugMetadata whose attributes are files (1..n_files) and CallSiteLocs (callee, caller)."""
    files = [("file", f"/user/file{i}.py", 10 + i) for i in range(n_files)]
    return _metadata([*files, *(("call", callee, caller) for _, callee, caller in callsites)], op_attr)


def _metadata(locations: list[tuple], op_attr: int = 1) -> bytes:
    """A DebugMetadata of one op whose attributes are 0 = UnknownLoc, then `locations` in order.

    Each location is ("file", path, line), ("name", name, child index) or ("call", callee, caller).
    """
    b = flatbuffers.Builder(1024)
    locs = []
    for kind, *args in locations:
        if kind == "file":
            text = b.CreateString(args[0])
            b.StartObject(3)
            b.PrependUOffsetTRelativeSlot(0, text, 0)
            b.PrependUint32Slot(1, args[1], 0)
            locs.append((2, b.EndObject()))
        elif kind == "name":
            text = b.CreateString(args[0])
            b.StartObject(2)
            b.PrependUOffsetTRelativeSlot(0, text, 0)
            b.PrependUint32Slot(1, args[1], 0)
            locs.append((4, b.EndObject()))
        else:
            b.StartObject(2)
            b.PrependUint32Slot(0, args[0], 0)
            b.PrependUint32Slot(1, args[1], 0)
            locs.append((1, b.EndObject()))
    b.StartObject(0)
    unknown = b.EndObject()
    attrs = []
    for kind, obj in [(6, unknown), *locs]:
        b.StartObject(2)
        b.PrependUint8Slot(0, kind, 0)
        b.PrependUOffsetTRelativeSlot(1, obj, 0)
        attrs.append(b.EndObject())
    b.StartVector(4, 1, 4)
    b.PrependUint32(op_attr)
    indexes = b.EndVector()
    b.StartObject(1)
    b.PrependUOffsetTRelativeSlot(0, indexes, 0)
    op = b.EndObject()
    b.StartVector(4, 1, 4)
    b.PrependUOffsetTRelative(op)
    ops = b.EndVector()
    b.StartObject(1)
    b.PrependUOffsetTRelativeSlot(0, ops, 0)
    sub = b.EndObject()
    b.StartVector(4, 1, 4)
    b.PrependUOffsetTRelative(sub)
    subs = b.EndVector()
    b.StartVector(1, len(attrs), 1)
    for _ in attrs:
        b.PrependUint8(1)
    attr_types = b.EndVector()
    b.StartVector(4, len(attrs), 4)
    for a in reversed(attrs):
        b.PrependUOffsetTRelative(a)
    attr_vec = b.EndVector()
    b.StartObject(3)
    b.PrependUOffsetTRelativeSlot(0, subs, 0)
    b.PrependUOffsetTRelativeSlot(1, attr_types, 0)
    b.PrependUOffsetTRelativeSlot(2, attr_vec, 0)
    conv = b.EndObject()
    b.StartVector(1, 1, 1)
    b.PrependUint8(1)
    types = b.EndVector()
    b.StartVector(4, 1, 4)
    b.PrependUOffsetTRelative(conv)
    entries = b.EndVector()
    b.StartObject(2)
    b.PrependUOffsetTRelativeSlot(0, types, 0)
    b.PrependUOffsetTRelativeSlot(1, entries, 0)
    b.Finish(b.EndObject())
    return bytes(b.Output())


def test_callsite_cycle_terminates():
    # attribute 0 Unknown, 1 file, 2 = CallSite(1, 3), 3 = CallSite(1, 2): a cycle
    table = read_debug_metadata(_fake_metadata([(0, 1, 3), (0, 1, 2)], op_attr=2))
    loc = table.location(0, 0)
    assert loc is not None and loc.frames and set(loc.frames) == {("/user/file0.py", 10)}


def test_deep_chain_does_not_recurse():
    depth = 20000
    # attribute k (k >= 2) = CallSite(1, k + 1); the last one points at the file
    chain = [(0, 1, k + 1 if k + 1 < depth + 2 else 1) for k in range(2, depth + 2)]
    table = read_debug_metadata(_fake_metadata(chain, op_attr=2))
    loc = table.location(0, 0)
    assert loc is not None and len(loc.frames) == depth + 1
    assert user_frame(loc) == ("/user/file0.py", 10)


def test_inlined_op_keeps_its_callers_name():
    # 1 the op inside the function body, 2 the call op in the model (with a frame), 3 CallSite(1, 2)
    table = read_debug_metadata(
        _metadata(
            [
                ("name", "convolution", 0),
                ("name", "model_1/conv_1/StatefulPartitionedCall", 4),
                ("call", 1, 2),
                ("file", "/user/model.py", 7),
            ],
            op_attr=3,
        )
    )
    loc = table.location(0, 0)
    assert loc == OpLocation(("convolution",), (("/user/model.py", 7),), ("model_1/conv_1/StatefulPartitionedCall",))


def test_a_stack_trace_is_not_a_caller():
    # the importer's trace: NameLoc(name, outermost frame) called from a chain of frames
    table = read_debug_metadata(
        _metadata(
            [
                ("file", "/user/outer.py", 1),
                ("file", "/user/inner.py", 2),
                ("name", "model_1/dense_1/MatMul", 1),
                ("call", 3, 2),
            ],
            op_attr=4,
        )
    )
    loc = table.location(0, 0)
    assert loc == OpLocation(("model_1/dense_1/MatMul",), (("/user/inner.py", 2), ("/user/outer.py", 1)), ())


def test_grouped_conv_names_its_layer_as_caller():
    # Keras runs a grouped Conv2D through an XLA tf.function: the TFLite CONV_2D is inlined from its body
    inp = keras.Input((8, 8, 4))
    model = keras.Model(inp, keras.layers.Conv2D(4, 3, groups=2, name="grouped")(inp))
    fn = tf.function(lambda x: model(x)).get_concrete_function(tf.TensorSpec((1, 8, 8, 4)))
    conv = _one(_ops(_convert(tf.lite.TFLiteConverter.from_concrete_functions([fn], model)))[1], "CONV_2D")
    assert not any("grouped" in n for n in conv.names), conv
    assert any("/grouped_1/" in n for n in conv.callers), conv


def test_out_of_range_index_raises():
    with pytest.raises(ValueError, match="out of range"):
        read_debug_metadata(_fake_metadata([(0, 1, 7)], op_attr=2))
