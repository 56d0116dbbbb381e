"""Predicted verdicts: equal to the runtime's on the examples in every recipe; a report for models it cannot load.

Every diagnosis the suite makes through fixtures_models.diagnose, every KB probe and every
one-op table probe also asserts prediction == runtime (fixtures_models.assert_predicted).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import fixtures_models
from xnnfit.observe.prediction import is_load_failure, predict
from xnnfit.tflite import build
from xnnfit.tflite.graph import read_model
from xnnfit.tflite.writer import serialize

ROOT = Path(__file__).resolve().parents[2]
RECIPES = ("fp32", "fp16", "dynamic-int8", "int8")


@pytest.mark.parametrize("recipe", RECIPES)
@pytest.mark.parametrize("name", fixtures_models.example_names())
def test_prediction_equals_the_runtime_on_every_example(name, recipe):
    conv = fixtures_models.convert_example(name, recipe)
    d = fixtures_models.diagnose(conv)  # asserts node by node
    assert d.predicted is None and d.observed


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "xnnfit", *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
        timeout=600,
    )


@pytest.fixture(scope="module")
def flex_model(tmp_path_factory):
    """A NAT-style model: tf.image.extract_patches converted with SELECT_TF_OPS.

    The test enables Flex; xnnfit never does.
    """
    import tensorflow as tf

    @tf.function(input_signature=[tf.TensorSpec((1, 8, 8, 3), tf.float32)])
    def f(x):
        patches = tf.image.extract_patches(
            x, sizes=[1, 2, 2, 1], strides=[1, 2, 2, 1], rates=[1, 1, 1, 1], padding="VALID"
        )
        return tf.nn.relu(patches * 2.0 + 1.0)

    converter = tf.lite.TFLiteConverter.from_concrete_functions([f.get_concrete_function()])
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS, tf.lite.OpsSet.SELECT_TF_OPS]
    path = tmp_path_factory.mktemp("flex") / "nat.tflite"
    path.write_bytes(converter.convert())
    return path


@pytest.fixture(scope="module")
def custom_model(tmp_path_factory):
    """A MediaPipe-style model: a custom op no runtime here registers, between two delegated ops."""
    model = build.new_model("unresolved custom op")
    sub = build.new_subgraph(model, "main")
    x = build.add_tensor(model, sub, (1, 8), "float32", "x")
    a, b, y = (build.add_tensor(model, sub, (1, 8), "float32", n) for n in ("a", "b", "y"))
    sub.inputs, sub.outputs = [x], [y]
    sub.operators.append(build.make_op(model, "RELU", [x], [a]))
    from xnnfit.tflite.schema import fb

    code = fb.OperatorCodeT()
    code.builtinCode = code.deprecatedBuiltinCode = fb.BuiltinOperator.CUSTOM
    code.customCode, code.version = "Landmarks2TransformMatrix", 1
    model.operatorCodes.append(code)
    custom = fb.OperatorT()
    custom.opcodeIndex, custom.inputs, custom.outputs = len(model.operatorCodes) - 1, [a], [b]
    sub.operators.append(custom)
    sub.operators.append(build.make_op(model, "TANH", [b], [y]))
    path = tmp_path_factory.mktemp("custom") / "landmarks.tflite"
    path.write_bytes(serialize(model))
    return path


@pytest.mark.parametrize(
    ("fixture", "op", "cause"),
    [
        ("flex_model", "CUSTOM(FlexExtractImagePatches)", "XNN019"),
        ("custom_model", "CUSTOM(Landmarks2TransformMatrix)", "XNN018"),
    ],
)
def test_a_model_the_runtime_cannot_load_gets_a_predicted_report(request, fixture, op, cause, tmp_path):
    path = request.getfixturevalue(fixture)
    out = tmp_path / "r.json"
    res = _run("check", str(path), "--json", str(out))
    assert res.returncode == 0, res.stderr  # a report, not an error
    text = " ".join(res.stdout.split())
    assert "predicted: the runtime could not load this model" in text
    assert "node " in text and ("Flex" in text or "register it" in text)  # which node blocks loading, and what to do
    import json

    (d,) = json.loads(out.read_text())["recipes"]
    assert d["predicted"].startswith("the runtime could not load")
    cpu = [n for n in d["nodes"] if n["delegated"] is False]
    assert [n["op"] for n in cpu] == [op] and cpu[0]["causes"] == [cause]
    assert d["summary"]["delegated"] == d["summary"]["nodes"] - 1
    assert _run("check", str(path), "--fail-on-fallback", "-q").returncode == 1  # gates apply to predicted verdicts


def test_predict_flag_needs_no_interpreter_and_agrees(tmp_path):
    conv = fixtures_models.convert_example("where_cnn", "int8")
    path = tmp_path / "cnn.tflite"
    path.write_bytes(conv.content)
    res = _run("check", str(path), "--predict", "-q")
    assert res.returncode == 0 and "predicted: asked for (--predict)" in res.stdout
    observed = {n.index: n.delegated for n in fixtures_models.diagnose(conv).observed}
    assert {n.index: n.delegated for n in predict(read_model(conv.content)).nodes if n.subgraph == 0} == observed


@pytest.mark.parametrize(
    ("text", "load"),
    [
        ("Encountered unresolved custom op: Landmarks2TransformMatrix.", True),
        ("Select TensorFlow op(s), included in the given model, is(are) not supported by this interpreter", True),
        ("Didn't find op for builtin opcode 'FULLY_CONNECTED' version '12'", True),
        ("tensor 3 has dims [1, -1]: cannot allocate", False),
    ],
)
def test_load_failures_are_told_apart(text, load):
    assert is_load_failure(text) is load
    assert np.bool_(True)  # keep numpy imported for the fixtures' arrays


def test_an_op_version_the_runtime_does_not_know_is_named_with_what_to_do(tmp_path):
    from xnnfit.kb.oneop import one_op_model
    from xnnfit.tflite.schema import fb

    model = fb.ModelT.InitFromPackedBuf(one_op_model("ADD"), 0)
    for code in model.operatorCodes:
        code.version = 99
    path = tmp_path / "newer.tflite"
    path.write_bytes(serialize(model))
    res = _run("check", str(path))
    assert res.returncode == 0, res.stderr
    text = " ".join(res.stdout.split())
    assert "ADD version 99 is newer than this runtime knows" in text and "upgrade the runtime" in text
    assert "cannot load the model" in text and "Fully delegated" not in text
