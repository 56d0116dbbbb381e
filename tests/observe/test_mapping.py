"""TFLite node -> Keras layer, through xnnfit.explain.diagnosis.diagnose on models the real converter made."""

from __future__ import annotations

import dataclasses
import os

import keras
import pytest
import tensorflow as tf

import fixtures_models
from xnnfit.explain.diagnosis import Diagnosis, diagnose
from xnnfit.model.artifact import Artifact
from xnnfit.model.keras import LayerInfo, describe_layers
from xnnfit.observe.mapping import NodeMapping, map_nodes
from xnnfit.tflite.debug_metadata import OpLocation, read_debug_metadata
from xnnfit.tflite.graph import ModelGraph, OpInfo, SubgraphInfo, TensorInfo, read_model

THIS_FILE = os.path.abspath(__file__)


class WhereAct(keras.layers.Layer):
    """tf.where(x < 0, 0.1 * x, x^2): LESS and SELECT on CPU, SQUARE and MUL delegated."""

    def call(self, x):
        scaled = 0.1 * x
        return tf.where(x < 0, scaled, tf.square(x))


WHERE_LINE = fixtures_models.line_of(WhereAct.call, "tf.where(")


def _nested_model() -> keras.Model:
    inner_in = keras.Input((4,), name="inner_x")
    inner = keras.Model(inner_in, keras.layers.Dense(5, name="dense_x")(inner_in), name="inner")
    inp = keras.Input((4,), name="x")
    x = inner(inp)
    x = WhereAct(name="where_act")(x)
    x = keras.layers.Lambda(lambda t: t * t + t, name="lam")(x)
    return keras.Model(inp, keras.layers.Dense(2, name="head")(x))  # default name: 'functional'


def _lambda_line(model: keras.Model) -> int:
    return fixtures_models.line_of(model.get_layer("lam").function, "lambda t:")


def _analyze(conv, *, with_layers: bool = True) -> Diagnosis:
    if with_layers:
        return diagnose(conv)
    return diagnose(Artifact(conv.recipe, conv.content, conv.specs))


@pytest.fixture(scope="module")
def nested():
    """(model, Converted, Diagnosis) for the nested model in fp32."""
    model = _nested_model()
    conv = fixtures_models.convert(model)
    return model, conv, _analyze(conv)


def _nodes(diag: Diagnosis, *, layer: str | None = None, op: str | None = None):
    return [n for n in diag.nodes if (layer is None or n.layer == layer) and (op is None or n.op == op)]


# ----------------------------------------------------------------------------- every node


def test_nested_model_ops(nested):
    _, conv, diag = nested
    assert conv.framework == "keras3"
    assert sorted(n.op for n in diag.nodes) == sorted(
        ["FULLY_CONNECTED", "LESS", "SQUARE", "MUL", "SELECT", "MUL", "ADD", "FULLY_CONNECTED"]
    )


@pytest.mark.parametrize(
    ("name", "recipe"),
    [pytest.param(n, r, id=f"{n}-{r}") for n in fixtures_models.example_names() for r in ("fp32", "int8")],
)
def test_every_node_has_a_known_layer(name, recipe):
    conv = fixtures_models.convert_example(name, recipe)
    diag = _analyze(conv)
    known = {layer.qualname: layer.class_name for layer in conv.layers}
    for n in diag.nodes:
        assert n.layer in known, n
        assert n.layer_class == known[n.layer], n


def test_every_node_of_the_nested_model_has_a_layer(nested):
    _, conv, diag = nested
    known = {layer.qualname for layer in conv.layers}
    assert "inner/dense_x" in known
    assert all(n.layer in known for n in diag.nodes), diag.nodes


# ----------------------------------------------------------------------------- which layer


def test_nested_functional_layer_qualname(nested):
    _, _, diag = nested
    first, last = _nodes(diag, op="FULLY_CONNECTED")
    assert (first.layer, first.layer_class, first.source) == ("inner/dense_x", "Dense", None)
    assert (last.layer, last.layer_class, last.source) == ("head", "Dense", None)


def test_where_layer_owns_less_and_select(nested):
    _, _, diag = nested
    for op in ("LESS", "SELECT", "SQUARE"):
        (node,) = _nodes(diag, op=op)
        assert (node.layer, node.layer_class) == ("where_act", "WhereAct"), node
    assert {n.op for n in _nodes(diag, layer="where_act")} == {"LESS", "SELECT", "SQUARE", "MUL"}
    assert {n.op for n in _nodes(diag, layer="where_act") if not n.delegated} == {"LESS", "SELECT"}
    assert all(n.source is not None for n in _nodes(diag, layer="where_act"))  # custom code gets a file:line


def test_lambda_layer_owns_its_ops(nested):
    _, _, diag = nested
    nodes = _nodes(diag, layer="lam")
    assert [n.op for n in nodes] == ["MUL", "ADD"]
    assert all(n.layer_class == "Lambda" and n.delegated for n in nodes)
    assert all(n.source is not None for n in nodes)  # custom code gets a file:line


def test_where_layer_source_is_the_tf_where_line(nested):
    _, _, diag = nested
    for op in ("LESS", "SELECT"):
        (node,) = _nodes(diag, op=op)
        assert node.source == f"{THIS_FILE}:{WHERE_LINE}", node


def test_lambda_source_is_the_lambda_line(nested):
    model, _, diag = nested
    for n in _nodes(diag, layer="lam"):
        assert n.source == f"{THIS_FILE}:{_lambda_line(model)}", n


def test_where_cnn_maps_each_activation_in_order():
    diag = _analyze(fixtures_models.convert_example("where_cnn", "fp32"))
    assert [n.layer for n in _nodes(diag, op="LESS")] == [f"act{i}" for i in range(10)]
    assert [n.layer for n in _nodes(diag, op="SELECT")] == [f"act{i}" for i in range(10)]
    assert [n.layer for n in _nodes(diag, op="CONV_2D")] == [f"conv{i}" for i in range(10)]
    assert [n.layer for n in _nodes(diag, op="FULLY_CONNECTED")] == ["logits"]


def test_sublayers_of_a_builtin_layer():
    diag = _analyze(fixtures_models.convert_example("transformer_block", "fp32"))
    fc = [n.layer for n in _nodes(diag, op="FULLY_CONNECTED")]
    assert sorted(fc) == sorted(
        [
            "attention/key",
            "attention/query",
            "attention/value",
            "attention/attention_output",
            "mlp_up",
            "mlp_down",
            "classes",
        ]
    )
    assert {n.layer for n in _nodes(diag, op="GATHER")} == {"embed"}
    assert {n.layer for n in _nodes(diag, op="BATCH_MATMUL")} == {"attention"}


# ----------------------------------------------------------------------------- tf_keras


def test_tf_keras_layer_names():
    tf_keras = pytest.importorskip("tf_keras")
    model = tf_keras.Sequential(
        [
            tf_keras.layers.Dense(6, activation="relu", input_shape=(4,), name="d1"),
            tf_keras.layers.Dense(2, name="d2"),
        ],
        name="k2",
    )
    conv = fixtures_models.convert(model)
    assert conv.framework == "tf_keras"
    diag = _analyze(conv)
    assert [(n.op, n.layer, n.layer_class) for n in diag.nodes] == [
        ("FULLY_CONNECTED", "d1", "Dense"),
        ("FULLY_CONNECTED", "d2", "Dense"),
    ]


def test_tf_keras_nested_and_suffixed_names():
    # tf_keras scopes are the layer names as is: 'dense_1' is the layer dense_1, not dense + a call suffix
    tf_keras = pytest.importorskip("tf_keras")
    inner_in = tf_keras.Input((4,))
    inner = tf_keras.Model(inner_in, tf_keras.layers.Dense(5, name="dense_1")(inner_in), name="inner")
    inp = tf_keras.Input((4,), name="x")
    x = tf_keras.layers.Dense(4, name="dense")(inp)
    x = inner(x)
    out = tf_keras.layers.Dense(2, name="dense_2")(x)
    conv = fixtures_models.convert(tf_keras.Model(inp, out, name="outer"))
    assert conv.framework == "tf_keras"
    diag = _analyze(conv)
    assert [(n.op, n.layer) for n in diag.nodes] == [
        ("FULLY_CONNECTED", "dense"),
        ("FULLY_CONNECTED", "inner/dense_1"),
        ("FULLY_CONNECTED", "dense_2"),
    ]


# ----------------------------------------------------------------------------- bare .tflite


def test_bare_tflite_gives_tf_scopes(nested):
    model, conv, _ = nested
    # Keras 3 opens a TF name scope per call: '<model name>_1/<layer>_1' ('functional_1/...' in a fresh session;
    # the default model name takes a counter when other unnamed models were built before)
    top = f"{model.name}_1"
    assert model.name.startswith("functional")
    diag = _analyze(conv, with_layers=False)
    by_op = {}
    for n in diag.nodes:
        assert n.layer is not None and n.layer.startswith(top + "/"), n
        assert n.layer_class is None, n
        by_op.setdefault(n.op, set()).add(n.layer)
    assert by_op["LESS"] == by_op["SELECT"] == {f"{top}/where_act_1"}
    assert by_op["FULLY_CONNECTED"] == {f"{top}/inner_1/dense_x_1", f"{top}/head_1"}
    assert by_op["ADD"] == {f"{top}/lam_1"}


def test_bare_tflite_from_tf_keras_uses_model_scope():
    tf_keras = pytest.importorskip("tf_keras")
    inp = tf_keras.Input((4,), name="x")
    out = tf_keras.layers.Dense(2, name="d2")(tf_keras.layers.Dense(3, name="d1")(inp))
    conv = fixtures_models.convert(tf_keras.Model(inp, out, name="k2"))
    diag = _analyze(conv, with_layers=False)
    assert [n.layer for n in diag.nodes] == ["k2/d1", "k2/d2"]


# ----------------------------------------------------------------------------- through check()


@pytest.fixture(scope="module")
def checked_examples():
    """check() on two examples given as file.py:build: the real pipeline, child process and all."""
    from xnnfit import check

    out = {}
    for name in ("sin_cos_lambda", "where_activation"):
        report = check(str(fixtures_models.EXAMPLES_DIR / f"{name}.py") + ":build")
        (diag,) = report.recipes
        assert diag.ok, diag.error
        out[name] = diag
    return out


def test_check_lambda_source_is_the_lambda_line(checked_examples):
    module = fixtures_models.load_example("sin_cos_lambda")
    path = str(fixtures_models.EXAMPLES_DIR / "sin_cos_lambda.py")
    line = fixtures_models.line_of(module, "keras.layers.Lambda(")
    nodes = _nodes(checked_examples["sin_cos_lambda"], layer="sin_cos")
    assert sorted(n.op for n in nodes) == ["COS", "MUL", "SIN"]
    assert all(n.layer_class == "Lambda" and n.source == f"{path}:{line}" for n in nodes), nodes


def test_check_where_layer_source_file(checked_examples):
    module = fixtures_models.load_example("where_activation")
    path = str(fixtures_models.EXAMPLES_DIR / "where_activation.py")
    call_line = fixtures_models.line_of(module.WhereActivation.call, "def call")
    where_line = fixtures_models.line_of(module.WhereActivation.call, "tf.where(")
    diag = checked_examples["where_activation"]
    for op in ("LESS", "SELECT"):
        (node,) = _nodes(diag, op=op)
        assert (node.layer, node.layer_class, node.delegated) == ("where_activation", "WhereActivation", False)
        assert node.causes == ("XNN001",)
        file, line = node.source.rsplit(":", 1)
        assert file == path
        assert call_line <= int(line) <= where_line, node


def test_check_where_layer_source_is_the_tf_where_line(checked_examples):
    module = fixtures_models.load_example("where_activation")
    path = str(fixtures_models.EXAMPLES_DIR / "where_activation.py")
    where_line = fixtures_models.line_of(module.WhereActivation.call, "tf.where(")
    for op in ("LESS", "SELECT"):
        (node,) = _nodes(checked_examples["where_activation"], op=op)
        assert node.source == f"{path}:{where_line}", node


# ---------------------------------------------------------------------- evidence, rule by rule (synthetic graphs)

LIB = "/venv/site-packages/blocks"  # a library outside Keras; the path need not exist
TOP = LayerInfo("net", "Net", (), top=True, outputs=("head",))
NORM = LayerInfo("ln", "LayerNormalization", ())
BLOCK = LayerInfo(
    "block", "Block", (), source=f"{LIB}/block.py:10", library=True, call_span=(f"{LIB}/block.py", 10, 20)
)
DENSE = LayerInfo(
    "dense", "Dense", ("block",), call_span=("/venv/site-packages/keras/src/layers/core/dense.py", 100, 120)
)
HEAD = LayerInfo("head", "Activation", ())
LAYERS = (TOP, NORM, BLOCK, DENSE, HEAD)
LAYER_CALL = ("/venv/site-packages/keras/src/layers/layer.py", 900)  # Keras's Layer.__call__


def _graph(ops: list[tuple[str, str]], outputs: tuple[int, ...] = ()) -> ModelGraph:
    """A chain: op i reads tensor i and writes tensor i + 1, named as given; tensor 0 is the input."""
    names = ["x", *(name for _, name in ops)]
    tensors = tuple(TensorInfo(i, n, (1,), (1,), "float32", False, False, False, 0) for i, n in enumerate(names))
    infos = tuple(OpInfo(i, op, None, (i,), (i + 1,), {}) for i, (op, _) in enumerate(ops))
    return ModelGraph((SubgraphInfo(0, "main", tensors, infos, (0,), outputs),), {})


def _map(ops, *, outputs=(), debug=None, layers=LAYERS) -> list[NodeMapping]:
    out = map_nodes(_graph(ops, outputs), layers, "keras3", debug)
    return [out[(0, i)] for i in range(len(ops))]


def test_an_op_of_the_models_own_graph_maps_to_the_model():
    # keras-hub BERT's x[:, 0]: no layer's scope, so not the layer norm before it
    _, sliced = _map([("MEAN", "net_1/ln_1/moments/mean"), ("STRIDED_SLICE", "net_1/strided_slice")])
    assert (sliced.layer, sliced.class_name, sliced.via) == ("net", "Net", "tensor-name")


def test_a_model_output_behind_dequantize_maps_to_the_output_layer():
    # quantized MobileNetV3: SOFTMAX -> 'Identity1', DEQUANTIZE -> 'Identity'; not the Flatten before them
    ops = [("RESHAPE", "net_1/ln_1/Reshape"), ("SOFTMAX", "Identity1"), ("DEQUANTIZE", "Identity")]
    _, softmax, dequantize = _map(ops, outputs=(3,))
    assert (softmax.layer, softmax.class_name, softmax.via) == ("head", "Activation", "model-output")
    assert (dequantize.layer, dequantize.via) == ("head", "model-output")


def test_a_model_output_inside_a_block_takes_the_neighbour_within_the_block():
    top = dataclasses.replace(TOP, outputs=("block",))
    ops = [("MUL", "net_1/block_1/dense_1/mul"), ("ADD", "Identity_11"), ("DEQUANTIZE", "Identity_1")]
    _, add, dequantize = _map(ops, outputs=(3,), layers=(top, NORM, BLOCK, DENSE, HEAD))
    assert (add.layer, add.via) == ("block/dense", "neighbour")
    assert dequantize.layer == "block/dense"


def test_a_model_output_ignores_a_neighbour_outside_its_layer():
    top = dataclasses.replace(TOP, outputs=("block",))
    _, add = _map(
        [("MUL", "net_1/ln_1/mul"), ("ADD", "Identity")], outputs=(2,), layers=(top, NORM, BLOCK, DENSE, HEAD)
    )
    assert (add.layer, add.via) == ("block", "model-output")


def test_a_guess_from_neighbours_says_so():
    first, guessed = _map([("MEAN", "net_1/ln_1/mean"), ("ADD", "tfl.add")])
    assert (first.via, guessed.layer, guessed.via) == ("tensor-name", "ln", "neighbour")


def test_dequantize_takes_the_layer_it_feeds():
    _, dequantize, _ = _map(
        [("MEAN", "net_1/ln_1/mean"), ("DEQUANTIZE", "tfl.dequantize"), ("MUL", "net_1/block_1/mul")]
    )
    assert (dequantize.layer, dequantize.via) == ("block", "neighbour")


def test_a_fused_node_takes_the_layer_whose_op_it_became():
    # BERT's query RESHAPE carries the attention's scaling Mul too
    (node,) = _map([("RESHAPE", "net_1/block_1/Mul;net_1/block_1/dense_1/Reshape_11")])
    assert node.layer == "block/dense"


def test_the_stack_picks_among_fused_names():
    ops = [("MUL", "net_1/ln_1/mul;net_1/block_1/mul")]
    (by_name,) = _map(ops)
    (by_stack,) = _map(
        ops, debug={(0, 0): OpLocation(("net_1/ln_1/mul", "net_1/block_1/mul"), ((f"{LIB}/block.py", 12),))}
    )
    assert (by_name.layer, by_stack.layer, by_stack.via) == ("ln", "block", "debug-metadata")


def test_the_stack_alone_names_the_layer_whose_call_made_the_op():
    (node,) = _map(
        [("LOGISTIC", "Sigmoid")],
        debug={(0, 0): OpLocation(("Sigmoid",), ((f"{LIB}/util.py", 3), (f"{LIB}/block.py", 15)))},
    )
    assert (node.layer, node.class_name, node.via, node.source) == ("block", "Block", "call-stack", f"{LIB}/util.py:3")


def test_an_op_made_through_a_sublayer_keeps_the_sublayer():
    loc = OpLocation(("net_1/block_1/dense_1/MatMul",), (LAYER_CALL, (f"{LIB}/block.py", 12), LAYER_CALL))
    (node,) = _map([("FULLY_CONNECTED", "MatMul")], debug={(0, 0): loc})
    assert (node.layer, node.class_name, node.via) == ("block/dense", "Dense", "debug-metadata")
    assert node.source == f"{LIB}/block.py:12"  # the library line that called the Keras layer


def test_an_inlined_op_maps_through_its_callers_name():
    loc = OpLocation(("convolution",), (), ("net_1/block_1/StatefulPartitionedCall",))
    (node,) = _map([("CONV_2D", "convolution4")], debug={(0, 0): loc})
    assert (node.layer, node.via) == ("block", "debug-metadata")


def test_a_keras_layer_in_a_library_block_shows_the_blocks_code():
    (node,) = _map([("FULLY_CONNECTED", "net_1/block_1/dense_1/MatMul")])
    assert (node.layer, node.source) == ("block/dense", f"{LIB}/block.py:10")


def test_frames_outside_the_models_call_are_not_its_source():
    loc = OpLocation(
        ("net_1/ln_1/mean",), (LAYER_CALL, (f"{LIB}/block.py", 12))
    )  # the model is called from the library
    (node,) = _map([("MEAN", "m")], debug={(0, 0): loc})
    assert (node.layer, node.source) == ("ln", None)


def test_names_and_first_user_frame_still_work():
    custom = LayerInfo("act", "Act", (), source="/user/act.py:3", custom=True)
    debug = {(0, 0): (("net_1/act_1/Less",), ("/user/act.py", 5))}
    (node,) = _map([("LESS", "Less")], debug=debug, layers=(TOP, custom))
    assert (node.layer, node.via, node.source) == ("act", "debug-metadata", "/user/act.py:5")


# ---------------------------------------------------------------------- the reported failures, on small real models


def _with_stack(conv) -> dict[tuple[int, int], NodeMapping]:
    """map_nodes given every node's whole OpLocation (names, callers, frames), as diagnose passes it."""
    graph = read_model(conv.content)
    table = read_debug_metadata(graph.metadata["debug_metadata"])
    locs = {
        (s.index, op.index): table.location(s.index, op.debug_index)
        for s in graph.subgraphs
        for op in s.ops
        if op.debug_index is not None
    }
    return map_nodes(graph, conv.layers, conv.framework, {k: v for k, v in locs.items() if v is not None})


def _by_op(mapping: dict, conv, op: str) -> list[NodeMapping]:
    sub = read_model(conv.content).primary
    return [mapping[(0, o.index)] for o in sub.ops if o.op == op]


def _residual_model() -> keras.Model:
    """ConvNeXt's block in small: the residual ADD is an op of the model's own graph, after a LayerNormalization."""
    inp = keras.Input((4, 4, 8), name="x")
    x = keras.layers.LayerNormalization(name="norm")(inp)
    x = keras.layers.Dense(8, name="mix")(x)
    return keras.Model(inp, keras.layers.Dense(2, name="out")(inp + x), name="res_block")


def test_residual_add_of_the_models_graph_maps_to_the_model():
    diag = _analyze(fixtures_models.convert(_residual_model()))
    (add,) = [n for n in _nodes(diag, op="ADD") if n.layer != "norm"]
    assert (add.layer, add.layer_class) == ("res_block", "Functional")
    assert {n.layer for n in _nodes(diag, op="FULLY_CONNECTED")} == {"mix", "out"}


def _softmax_head_model() -> keras.Model:
    """MobileNetV3's head in small: conv logits, Flatten, then the softmax Activation as the model output."""
    inp = keras.Input((6, 6, 3), name="image")
    x = keras.layers.Conv2D(4, 3, name="logits")(inp)
    x = keras.layers.Flatten(name="flatten")(x)
    return keras.Model(inp, keras.layers.Activation("softmax", name="predictions")(x), name="head_model")


def test_int8_softmax_output_maps_to_its_activation_not_the_flatten():
    diag = _analyze(fixtures_models.convert(_softmax_head_model(), "int8"))
    (softmax,) = _nodes(diag, op="SOFTMAX")
    assert (softmax.layer, softmax.layer_class) == ("predictions", "Activation")
    assert {n.layer for n in _nodes(diag, op="RESHAPE")} == {"flatten"}


def test_describe_layers_puts_the_model_first_with_its_output_layers():
    model = _softmax_head_model()
    top, *rest = describe_layers(model)
    assert (top.name, top.class_name, top.top, top.outputs) == ("head_model", "Functional", True, ("predictions",))
    assert not any(layer.top for layer in rest)
    assert [layer.qualname for layer in rest] == ["image", "logits", "flatten", "predictions"]


def test_describe_layers_follows_an_output_into_a_nested_model(nested):
    model, _, _ = nested
    assert describe_layers(model)[0].outputs == ("head",)
    inner_in = keras.Input((4,))
    inner = keras.Model(inner_in, keras.layers.Dense(3, name="deep")(inner_in), name="sub")
    inp = keras.Input((4,))
    assert describe_layers(keras.Model(inp, inner(inp)))[0].outputs == ("sub/deep",)


def test_grouped_conv_maps_to_its_layer_through_the_call_op():
    # Keras runs a grouped Conv2D as an XLA function: the CONV_2D inside is named 'convolution', no scope
    inp = keras.Input((6, 6, 4), name="x")
    x = keras.layers.Conv2D(4, 1, name="pre")(inp)
    model = keras.Model(inp, keras.layers.Conv2D(4, 3, groups=2, name="grouped")(x))
    conv = fixtures_models.convert(model)
    first, second = _by_op(_with_stack(conv), conv, "CONV_2D")
    assert (first.layer, second.layer, second.via) == ("pre", "grouped", "debug-metadata")


class Scaled(keras.layers.Layer):
    """A custom layer around a Keras Dense: the Dense's op comes from the line that calls it."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.proj = keras.layers.Dense(4, name="proj")

    def call(self, x):
        y = self.proj(x)
        return tf.square(y)


@pytest.fixture(scope="module")
def scaled():
    """A model of one Scaled layer, converted in fp32."""
    inp = keras.Input((3,), name="x")
    return fixtures_models.convert(keras.Model(inp, Scaled(name="scaled")(inp)))


def test_keras_layer_inside_a_custom_layer_shows_the_calling_line(scaled):
    mapping = _with_stack(scaled)
    (fc,) = _by_op(mapping, scaled, "FULLY_CONNECTED")
    (square,) = _by_op(mapping, scaled, "SQUARE")
    assert (fc.layer, fc.class_name, fc.source) == (
        "scaled/proj",
        "Dense",
        f"{THIS_FILE}:{fixtures_models.line_of(Scaled.call, 'self.proj(x)')}",
    )
    assert (square.layer, square.class_name, square.source) == (
        "scaled",
        "Scaled",
        f"{THIS_FILE}:{fixtures_models.line_of(Scaled.call, 'tf.square(')}",
    )


def test_diagnose_reads_the_whole_stack(scaled):
    # diagnosis.debug_locations must hand map_nodes each node's OpLocation: the first user frame
    # alone cannot tell a Keras layer's calling line from a frame outside the model's call
    (fc,) = _nodes(_analyze(scaled), op="FULLY_CONNECTED")
    assert fc.source == f"{THIS_FILE}:{fixtures_models.line_of(Scaled.call, 'self.proj(x)')}", fc
