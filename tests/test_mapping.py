"""TFLite node -> Keras layer, through xnnfit.diagnosis.diagnose on models the real converter made."""

from __future__ import annotations

import os

import keras
import pytest
import tensorflow as tf

import fixtures_models
from xnnfit.artifact import Artifact
from xnnfit.diagnosis import Diagnosis, diagnose

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
        ["attention/key", "attention/query", "attention/value", "attention/attention_output", "mlp_up", "mlp_down", "classes"]
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
