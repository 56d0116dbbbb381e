"""xnnfit.model.source.ModelSource: classifying references, loading them safely, and what converts after.

Loading is called in this process (`.load()`); check() does it in a child, which
tests/core/test_isolate.py covers.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf
from keras import ops

import fixtures_models
from xnnfit.core.errors import SourceError
from xnnfit.model.convert import framework_of
from xnnfit.model.source import ModelSource
from xnnfit.observe.delegation import observe


def _one_line_error(fn, *args, **kwargs) -> str:
    with pytest.raises(SourceError) as info:
        fn(*args, **kwargs)
    message = str(info.value)
    assert "\n" not in message, message
    assert message.endswith("."), message  # a full sentence telling what to do
    return message


# ----------------------------------------------------------------------------- parse


def test_parse_kinds(tmp_path):
    for name, kind in [
        ("m.keras", "keras"),
        ("m.h5", "h5"),
        ("m.HDF5", "h5"),
        ("m.tflite", "tflite"),
        ("m.lite", "tflite"),
    ]:
        (tmp_path / name).write_bytes(b"not empty")
        src = ModelSource.parse(str(tmp_path / name))
        assert (src.kind, src.path, src.function, src.trust) == (kind, tmp_path / name, None, False)
        assert src.is_tflite == (kind == "tflite")
    (tmp_path / "sm").mkdir()
    (tmp_path / "sm" / "saved_model.pb").write_bytes(b"x")
    assert ModelSource.parse(str(tmp_path / "sm")).kind == "savedmodel"
    (tmp_path / "build.py").write_text("def build_model():\n    pass\n")
    src = ModelSource.parse(f"{tmp_path}/build.py:build_model", trust=True)
    assert (src.kind, src.function, src.trust) == ("python", "build_model", True)
    assert src.display == f"{tmp_path}/build.py:build_model"


def test_missing_path(tmp_path):
    path = tmp_path / "nope.keras"
    message = _one_line_error(ModelSource.parse, str(path))
    assert repr(str(path)) in message
    assert "no such file" in message


def test_missing_python_file(tmp_path):
    path = tmp_path / "nope.py"
    message = _one_line_error(ModelSource.parse, f"{path}:build")
    assert repr(str(path)) in message and "no such file" in message


@pytest.mark.parametrize("name", ["empty.keras", "empty.h5", "empty.tflite", "empty.py:build"])
def test_empty_file(tmp_path, name):
    file_name = name.split(":")[0]
    (tmp_path / file_name).write_bytes(b"")
    message = _one_line_error(ModelSource.parse, str(tmp_path / name))
    assert repr(str(tmp_path / file_name)) in message
    assert "empty" in message


@pytest.mark.parametrize("name", ["model.onnx", "model.pb", "model"])
def test_unknown_extension(tmp_path, name):
    (tmp_path / name).write_bytes(b"something")
    message = _one_line_error(ModelSource.parse, str(tmp_path / name))
    assert repr(str(tmp_path / name)) in message
    assert "extension" in message
    assert ".keras" in message and ".tflite" in message and "SavedModel" in message  # what is accepted


def test_directory_without_saved_model(tmp_path):
    (tmp_path / "variables").mkdir()
    message = _one_line_error(ModelSource.parse, str(tmp_path))
    assert repr(str(tmp_path)) in message
    assert "saved_model.pb" in message


def test_python_file_without_function(tmp_path):
    (tmp_path / "model.py").write_text("def build():\n    pass\n")
    message = _one_line_error(ModelSource.parse, str(tmp_path / "model.py"))
    assert repr(str(tmp_path / "model.py")) in message
    assert f"{tmp_path / 'model.py'}:build_model" in message  # shows the syntax


@pytest.mark.parametrize("function", ["1build", "build-model", "", "build model"])
def test_bad_function_name(tmp_path, function):
    (tmp_path / "model.py").write_text("def build():\n    pass\n")
    text = f"{tmp_path / 'model.py'}:{function}"
    message = _one_line_error(ModelSource.parse, text)
    assert repr(text) in message
    assert repr(function) in message and "not a Python function name" in message


# ----------------------------------------------------------------------------- load: python


def _write(tmp_path: Path, source: str) -> Path:
    path = tmp_path / "user_model.py"
    path.write_text(textwrap.dedent(source))
    return path


def test_load_python_function(tmp_path):
    path = _write(
        tmp_path,
        """
        import keras

        def build():
            inp = keras.Input((4,), name="x")
            return keras.Model(inp, keras.layers.Dense(2, name="d")(inp))
        """,
    )
    model = ModelSource.parse(f"{path}:build").load()
    assert isinstance(model, keras.Model)
    assert [layer.name for layer in model.layers] == ["x", "d"]


def test_load_python_unknown_function_lists_the_defined_ones(tmp_path):
    path = _write(tmp_path, "import os\n\ndef build():\n    pass\n\ndef other():\n    pass\n")
    message = _one_line_error(ModelSource.parse(f"{path}:make").load)
    assert "no function 'make'" in message
    assert "build, other" in message
    assert "makedirs" not in message  # imported names are not offered


def test_load_python_import_error(tmp_path):
    path = _write(tmp_path, "raise RuntimeError('broken at import')\ndef build():\n    pass\n")
    message = _one_line_error(ModelSource.parse(f"{path}:build").load)
    assert "RuntimeError: broken at import" in message


def test_load_python_function_raises(tmp_path):
    path = _write(tmp_path, "def build():\n    raise ValueError('no weights')\n")
    message = _one_line_error(ModelSource.parse(f"{path}:build").load)
    assert f"{path}:build" in message and "ValueError: no weights" in message


def test_load_python_layer_error_names_the_layer(tmp_path):
    path = _write(
        tmp_path,
        """
        import keras

        def build():
            inp = keras.Input((4,), name="x")
            return keras.Model(inp, keras.layers.Lambda(lambda x: undefined_helper(x), name="broken")(inp))
        """,
    )
    message = _one_line_error(ModelSource.parse(f"{path}:build").load)
    assert f"{path}:build: Lambda layer 'broken' raised NameError: name 'undefined_helper' is not defined." in message
    assert "\x1b" not in message and "output_shape" not in message  # the cause, not Keras' shape-inference wrapper


def test_load_python_function_returns_no_model(tmp_path):
    path = _write(tmp_path, "def build():\n    return 42\n")
    message = _one_line_error(ModelSource.parse(f"{path}:build").load)
    assert "returned int" in message and "keras.Model" in message


def test_load_tflite_has_no_keras_model(tmp_path):
    path = tmp_path / "m.tflite"
    path.write_bytes(fixtures_models.convert(fixtures_models.dense_model()).content)
    src = ModelSource.parse(str(path))
    assert src.read_bytes() == path.read_bytes()
    message = _one_line_error(src.load)
    assert ".tflite" in message


# ----------------------------------------------------------------------------- load: Keras 3 files


def _lambda_model() -> keras.Model:
    inp = keras.Input((4,), name="x")
    x = keras.layers.Dense(6, name="dense")(inp)
    # no module globals in the body: Keras re-creates the lambda from bytecode when trusted
    x = keras.layers.Lambda(lambda t: t * t + 1.0, name="square_plus_one")(x)
    return keras.Model(inp, keras.layers.Dense(2, name="head")(x), name="with_lambda")


@pytest.fixture(scope="module")
def lambda_files(tmp_path_factory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("lambda")
    model = _lambda_model()
    paths = {"keras": out / "lambda.keras", "h5": out / "lambda.h5"}
    model.save(paths["keras"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.save(paths["h5"])  # Keras 3 still writes legacy .h5 (with a warning)
    return paths


@pytest.mark.parametrize("ext", ["keras", "h5"])
def test_lambda_refused_without_trust(lambda_files, ext):
    src = ModelSource.parse(str(lambda_files[ext]))
    message = _one_line_error(src.load)
    assert "--trust-model" in message
    assert "Lambda" in message
    assert repr(str(lambda_files[ext])) in message


@pytest.mark.parametrize("ext", ["keras", "h5"])
def test_lambda_loads_with_trust(lambda_files, ext):
    model = ModelSource.parse(str(lambda_files[ext]), trust=True).load()
    assert framework_of(model) == "keras3"
    assert model.get_layer("square_plus_one").__class__.__name__ == "Lambda"
    conv = fixtures_models.convert(model)
    ops = [n.op for n in observe(conv.content).primary]
    # the converter folds the lambda's "+ 1.0" into the next FULLY_CONNECTED's bias
    assert ops == ["FULLY_CONNECTED", "MUL", "FULLY_CONNECTED"]


def test_trusted_lambda_closing_over_a_local_tf_converts(tmp_path):
    import tensorflow as tf  # a local: the lambda closes over it, and Keras saves the module as a config dict

    inp = keras.Input((4,), name="x")
    model = keras.Model(inp, keras.layers.Lambda(lambda t: tf.sin(t), name="lam")(inp))
    path = tmp_path / "lambda_tf.keras"
    model.save(path)
    loaded = ModelSource.parse(str(path), trust=True).load()
    assert [n.op for n in observe(fixtures_models.convert(loaded).content).primary] == ["SIN"]


# Lambdas as users write them, with the module names a loaded Lambda is given (source.LAMBDA_NAMES).
LAMBDAS = {
    "tf": lambda x: tf.where(x < 0, 0.1 * x, tf.square(x)),
    "ops": lambda x: ops.relu(x) + keras.ops.abs(x) * 0.5,
    "np": lambda x: x * np.float32(np.pi),
}


_LAMBDA_FROM_CONFIG = keras.layers.Lambda.from_config.__func__  # loading patches it for the load only


def _helper(t):
    return t * 2.0


def _lambda_file(folder: Path, kind: str, ext: str = "keras") -> Path:
    """A Dense followed by the `kind` Lambda (no output_shape: Keras calls it to infer one while loading)."""
    inp = keras.Input((8,), name="x")
    fn = LAMBDAS[kind] if kind in LAMBDAS else (lambda x: _helper(x))
    model = keras.Model(inp, keras.layers.Lambda(fn, name=f"{kind}_lambda")(keras.layers.Dense(8, name="dense")(inp)))
    path = folder / f"{kind}_lambda.{ext}"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.save(path)
    return path


@pytest.fixture(scope="module")
def lambda_kinds(tmp_path_factory) -> dict[tuple[str, str], Path]:
    out = tmp_path_factory.mktemp("lambda_kinds")
    return {(kind, ext): _lambda_file(out, kind, ext) for kind in [*LAMBDAS, "helper"] for ext in ("keras", "h5")}


@pytest.mark.parametrize("ext", ["keras", "h5"])
@pytest.mark.parametrize("kind", list(LAMBDAS))
def test_trusted_lambda_gets_tf_keras_ops_np_and_computes_the_same(lambda_kinds, kind, ext):
    path = lambda_kinds[(kind, ext)]
    loaded = ModelSource.parse(str(path), trust=True).load()
    x = np.linspace(-2, 2, 16, dtype=np.float32).reshape(2, 8)
    dense = loaded.get_layer("dense")
    expected = np.asarray(LAMBDAS[kind](dense(x)))
    np.testing.assert_allclose(np.asarray(loaded(x)), expected, rtol=1e-6)
    assert keras.layers.Lambda.from_config.__func__ is _LAMBDA_FROM_CONFIG  # Keras is left as it was


def test_lambda_with_an_undefined_name_names_the_layer_and_the_name(lambda_kinds):
    message = _one_line_error(ModelSource.parse(str(lambda_kinds[("helper", "keras")]), trust=True).load)
    assert "Lambda layer 'helper_lambda' raised NameError: name '_helper' is not defined" in message
    assert "tf (tensorflow), keras, ops (keras.ops), np (numpy)" in message  # what a loaded Lambda can use
    assert "--input-shape" not in message and "\x1b" not in message
    assert keras.layers.Lambda.from_config.__func__ is _LAMBDA_FROM_CONFIG  # restored after a failed load too


def test_undefined_name_found_while_tracing_is_not_a_shape_problem(tmp_path):
    from xnnfit.core.errors import ConversionError

    inp = keras.Input((8,), name="x")
    model = keras.Model(inp, keras.layers.Lambda(lambda x: _helper(x), output_shape=(8,), name="late")(inp))
    path = tmp_path / "late.keras"
    model.save(path)
    loaded = ModelSource.parse(str(path), trust=True).load()  # output_shape given: Keras does not call it to load
    with pytest.raises(ConversionError) as info:
        fixtures_models.convert(loaded)
    message = str(info.value)
    assert "\n" not in message
    assert "Lambda layer 'late' raised NameError: name '_helper' is not defined" in message
    assert "--input-shape" not in message and "np (numpy)" in message


def _cli(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    return subprocess.run([sys.executable, "-m", "xnnfit", *args], capture_output=True, text=True, env=env, timeout=600)


def _error_line(res: subprocess.CompletedProcess) -> str:
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:"), res.stderr
    assert "Traceback" not in res.stdout + res.stderr
    return lines[0]


@pytest.mark.parametrize("kind", list(LAMBDAS))
def test_cli_checks_a_trusted_lambda_file_and_refuses_an_untrusted_one(lambda_kinds, kind):
    path = str(lambda_kinds[(kind, "keras")])
    res = _cli("check", path, "--trust-model", "-q")
    assert res.returncode == 0, res.stderr
    assert f"{path} · fp32" in res.stdout and re.search(r"\n  \d+ nodes?[,:]", res.stdout), (
        res.stdout
    )  # the report's headline
    res = _cli("check", path, "-q")
    assert res.returncode == 2
    assert "--trust-model" in _error_line(res)


def test_cli_undefined_name_in_a_lambda_is_one_line_with_the_real_error(lambda_kinds):
    res = _cli("check", str(lambda_kinds[("helper", "keras")]), "--trust-model", "-q")
    assert res.returncode == 2
    line = _error_line(res)
    assert "Lambda layer 'helper_lambda' raised NameError: name '_helper' is not defined" in line
    assert "--input-shape" not in line


def test_unregistered_custom_layer(tmp_path):
    class Doubler(keras.layers.Layer):
        def call(self, x):
            return x * 2.0

    Doubler.__module__ = "xnnfit_test_module_that_does_not_exist"
    inp = keras.Input((4,), name="x")
    model = keras.Model(inp, Doubler(name="doubler")(inp))
    path = tmp_path / "custom.keras"
    model.save(path)
    message = _one_line_error(ModelSource.parse(str(path)).load)
    assert "custom class" in message
    assert "Doubler" in message  # names the class it could not find
    assert "file.py:function" in message


@pytest.mark.parametrize("name", ["garbage.keras", "garbage.h5"])
def test_corrupt_keras_file(tmp_path, name):
    (tmp_path / name).write_bytes(b"\x00\x01garbage" * 20)
    message = _one_line_error(ModelSource.parse(str(tmp_path / name)).load)
    assert message.startswith(f"cannot load {str(tmp_path / name)!r} as a Keras model: ")


def test_keras3_sequential_saved_as_keras_converts(tmp_path):
    model = keras.Sequential([keras.Input((4,), name="x"), keras.layers.Dense(3, name="d")], name="seq")
    path = tmp_path / "seq.keras"
    model.save(path)
    loaded = ModelSource.parse(str(path)).load()
    conv = fixtures_models.convert(loaded)
    assert [n.op for n in observe(conv.content).primary] == ["FULLY_CONNECTED"]


def test_keras3_export_savedmodel_converts(tmp_path):
    inp = keras.Input((4,), name="x")
    model = keras.Model(inp, keras.layers.Dense(3, name="d")(inp))
    path = tmp_path / "exported"
    model.export(str(path), verbose=False)
    src = ModelSource.parse(str(path))
    assert src.kind == "savedmodel"
    loaded = src.load()
    assert framework_of(loaded) == "savedmodel"
    conv = fixtures_models.convert(loaded)
    assert conv.framework == "savedmodel" and conv.layers == ()
    assert [(s.name, s.shape) for s in conv.specs] == [("x", (1, 4))]
    assert [n.op for n in observe(conv.content).primary] == ["FULLY_CONNECTED"]


# ----------------------------------------------------------------------------- load: tf_keras (Keras 2) files


@pytest.fixture(scope="module")
def tf_keras_files(tmp_path_factory) -> dict[str, Path]:
    """One tf_keras Sequential saved in every format tf_keras writes."""
    tf_keras = pytest.importorskip("tf_keras")
    out = tmp_path_factory.mktemp("tf_keras")
    model = tf_keras.Sequential(
        [
            tf_keras.layers.Dense(6, activation="relu", input_shape=(4,), name="d1"),
            tf_keras.layers.Dense(2, name="d2"),
        ],
        name="k2",
    )
    paths = {"h5": out / "k2.h5", "keras": out / "k2.keras", "savedmodel": out / "k2_savedmodel"}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.save(paths["h5"])
        model.save(paths["keras"])
        model.save(paths["savedmodel"], save_format="tf")
    assert (paths["savedmodel"] / "keras_metadata.pb").exists()
    return paths


@pytest.mark.parametrize("fmt", ["keras", "savedmodel"])
def test_tf_keras_file_loads_and_converts(tf_keras_files, fmt):
    src = ModelSource.parse(str(tf_keras_files[fmt]))
    assert src.kind == fmt
    model = src.load()
    assert type(model).__module__.startswith("tf_keras")
    conv = fixtures_models.convert(model)
    assert conv.framework == "tf_keras"
    assert [(layer.name, layer.class_name) for layer in conv.layers] == [
        ("k2", "Sequential"),
        ("d1", "Dense"),
        ("d2", "Dense"),
    ]  # the model itself first
    assert [n.op for n in observe(conv.content).primary] == ["FULLY_CONNECTED", "FULLY_CONNECTED"]


def test_trusted_tf_keras_lambda_gets_ops(tmp_path):
    tf_keras = pytest.importorskip("tf_keras")
    fn = lambda x: ops.relu(x) * 2.0  # noqa: E731
    fn.__module__ = "a_module_the_loading_process_lacks"  # else tf_keras lends the lambda this test module's globals
    inp = tf_keras.Input((8,), name="x")
    model = tf_keras.Model(inp, tf_keras.layers.Lambda(fn, name="k2_ops")(inp))
    path = tmp_path / "k2_ops.keras"
    model.save(path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tf_keras: "a_module_the_loading_process_lacks is not loaded"
        loaded = ModelSource.parse(str(path), trust=True).load()  # Keras 3 cannot read it; tf_keras can
    assert framework_of(loaded) == "tf_keras"
    x = np.linspace(-1, 1, 8, dtype=np.float32)[None]
    np.testing.assert_allclose(np.asarray(loaded(x)), np.maximum(x, 0) * 2.0)


def test_tf_keras_h5_loads_as_keras3(tf_keras_files):
    # Keras 3 reads legacy .h5 itself, so a tf_keras .h5 comes back as a Keras 3 model
    model = ModelSource.parse(str(tf_keras_files["h5"])).load()
    assert framework_of(model) == "keras3"
    assert [layer.name for layer in model.layers] == ["d1", "d2"]


def test_tf_keras_sequential_h5_converts(tf_keras_files):
    model = ModelSource.parse(str(tf_keras_files["h5"])).load()
    conv = fixtures_models.convert(model)
    assert [n.op for n in observe(conv.content).primary] == ["FULLY_CONNECTED", "FULLY_CONNECTED"]


def test_tf_keras_functional_h5_converts(tmp_path):
    tf_keras = pytest.importorskip("tf_keras")
    inp = tf_keras.Input((4,), name="x")
    out = tf_keras.layers.Dense(2, name="d2")(tf_keras.layers.Dense(6, name="d1")(inp))
    path = tmp_path / "k2f.h5"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        tf_keras.Model(inp, out, name="k2f").save(path)
    model = ModelSource.parse(str(path)).load()
    conv = fixtures_models.convert(model)
    assert conv.framework == "keras3"
    assert [n.op for n in observe(conv.content).primary] == ["FULLY_CONNECTED", "FULLY_CONNECTED"]
