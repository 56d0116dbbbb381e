"""Tiny models and cached conversions shared by the tests.

Import it from a test module (`import fixtures_models`); it is on sys.path because
pytest's default "prepend" import mode puts tests/ (the conftest.py directory) there.
Conversions go through the real TFLite converter in this process and are cached for
the session: a model converted by one test file is reused by the next.
"""

from __future__ import annotations

import functools
import importlib.util
import inspect
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

TESTS_DIR = Path(__file__).resolve().parent
REPO_DIR = TESTS_DIR.parent
EXAMPLES_DIR = REPO_DIR / "examples"


# ---------------------------------------------------------------------------------------
# Conversion
# ---------------------------------------------------------------------------------------


def convert(model: Any, recipe: str = "fp32", *, dynamic_batch: bool = False):
    """`xnnfit.model.convert.convert_model` with a recipe name: the real converter, in process."""
    from xnnfit.model.convert import ConvertOptions, convert_model
    from xnnfit.model.recipes import RECIPES
    from xnnfit.model.specs import ShapeRequest

    return convert_model(model, RECIPES[recipe], ConvertOptions(ShapeRequest(dynamic_batch=dynamic_batch)))


def diagnose(model: Any, recipe: str = "fp32"):
    """xnnfit's diagnosis of an Artifact, or of bare .tflite bytes (specs read from the file), in this process."""
    from xnnfit.explain.diagnosis import diagnose as run
    from xnnfit.model.artifact import Artifact
    from xnnfit.model.specs import ShapeRequest, tflite_declared_inputs
    from xnnfit.tflite.graph import read_model

    if isinstance(model, Artifact):
        d = run(model)
        assert_predicted(model.content, d)
        return d
    specs, _ = ShapeRequest().pin_all(tflite_declared_inputs(read_model(model)))
    d = run(Artifact(recipe, bytes(model), specs))
    assert_predicted(bytes(model), d)
    return d


def assert_predicted(content: bytes, observed) -> None:
    """The KB's predicted verdicts equal the runtime's node by node (issue: prediction proven on the whole corpus).

    `observed` is a Diagnosis or a Delegation. A mismatch names the node, its op and the
    KB entry at fault: the cause that would refuse a delegated node, or that none explains a CPU one.
    """
    from xnnfit.kb import CAUSES
    from xnnfit.kb.cause import NodeContext
    from xnnfit.observe.prediction import predict
    from xnnfit.tflite.graph import read_model

    if getattr(observed, "predicted", None) or getattr(observed, "error", None):
        return
    graph = read_model(content)
    predicted = {n.index: n.delegated for n in predict(graph).nodes if n.subgraph == 0}
    nodes = observed.nodes
    seen = {n.index: n.delegated for n in nodes if n.subgraph == 0 and n.delegated is not None}
    bad = []
    for i, got in seen.items():
        if predicted[i] != got:
            op = graph.primary.ops[i]
            ctx = NodeContext(graph.primary, op, predicted)
            why = [c.id for c in CAUSES.values() if c.applies(ctx)]
            bad.append(
                f"node {i} {op.label}: runtime {'XNNPACK' if got else 'CPU'}, predicted "
                f"{'XNNPACK' if predicted[i] else 'CPU'}"
                + (f" (KB entries {', '.join(why)} refuse it)" if why else " (no KB entry refuses it)")
            )
    assert not bad, "prediction differs from the runtime:\n" + "\n".join(bad)


# ---------------------------------------------------------------------------------------
# Bundled examples (examples/*.py, each with build())
# ---------------------------------------------------------------------------------------


def example_names() -> list[str]:
    """Stems of the bundled examples, sorted: ['dynamic_reshape', 'sin_cos_lambda', ...]."""
    return sorted(p.stem for p in EXAMPLES_DIR.glob("*.py") if not p.name.startswith("_"))


@functools.cache
def load_example(name: str) -> ModuleType:
    """The example module, imported from its file under a private name."""
    path = EXAMPLES_DIR / f"{name}.py"
    module_name = f"xnnfit_test_example_{name}"
    spec = importlib.util.spec_from_file_location(module_name, path)
    assert spec is not None and spec.loader is not None, path
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    spec.loader.exec_module(module)
    return module


@functools.cache
def convert_example(name: str, recipe: str):
    """The example converted with `recipe` (a Converted), once per session."""
    return convert(load_example(name).build(), recipe)


# ---------------------------------------------------------------------------------------
# KB probes
# ---------------------------------------------------------------------------------------


def probes() -> list[tuple[str, int, Any]]:
    """(cause id, probe index, probe) for every probe that yields a model (not 'conversion-error')."""
    from xnnfit import kb

    return [
        (cause.id, i, probe)
        for cause in kb.CAUSES.values()
        for i, probe in enumerate(cause.probes)
        if probe.expect != "conversion-error"
    ]


def probe_id(cause_id: str, i: int, probe: Any) -> str:
    """A readable pytest id: 'XNN001-0-rejected-SELECT-fp32'."""
    return f"{cause_id}-{i}-{probe.expect}-{probe.op}-{probe.recipe}"


@functools.cache
def probe_content(cause_id: str, i: int) -> bytes:
    """The probe's .tflite: converted as tests/kb does, or the bytes the builder returns."""
    from xnnfit import kb

    probe = kb.CAUSES[cause_id].probes[i]
    built = probe.build()
    if isinstance(built, (bytes, bytearray)):
        return bytes(built)
    return convert(built, probe.recipe, dynamic_batch=probe.dynamic_batch).content


# ---------------------------------------------------------------------------------------
# Small hand-written models
# ---------------------------------------------------------------------------------------


def dense_reshape_model():
    """x(4) -> Dense(6) -> Reshape(2, 3): one FULLY_CONNECTED and one RESHAPE with a constant shape."""
    import keras

    inp = keras.Input((4,), name="x")
    x = keras.layers.Dense(6, name="dense")(inp)
    x = keras.layers.Reshape((2, 3), name="reshape")(x)
    return keras.Model(inp, x, name="tiny")


def dense_model():
    """x(8) -> Dense(4, relu) -> Dense(2): the smallest model every recipe can quantize."""
    import keras

    inp = keras.Input((8,), name="x")
    x = keras.layers.Dense(4, activation="relu", name="hidden")(inp)
    return keras.Model(inp, keras.layers.Dense(2, name="out")(x), name="dense_model")


def line_of(obj: Any, needle: str) -> int:
    """The absolute line number in obj's source file of the first line containing `needle`."""
    lines, start = inspect.getsourcelines(obj)
    start = start or 1  # a module starts at line 0 for inspect, at line 1 for tracebacks
    for offset, line in enumerate(lines):
        if needle in line:
            return start + offset
    raise AssertionError(f"{needle!r} not in the source of {obj!r}")


@functools.cache
def dynamic_audio_tflite() -> bytes:
    """A frozen Keras conv model converted with a [None, None] input, like openwakeword's melspectrogram.tflite.

    Its Reshape((100, 16)) needs 1600 samples, so it runs only when the user pins the
    length (`--input-shape audio=1,1600`); the reshape's shape plumbing (SHAPE, PACK)
    and the conv's EXPAND_DIMS run on CPU until XR002 folds them at the pinned shape.
    """
    import keras
    import tensorflow as tf
    from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2

    keras.utils.set_random_seed(0)
    inp = keras.Input((None,), name="audio")
    x = keras.layers.Reshape((100, 16), name="frames")(inp)
    x = keras.layers.Conv1D(8, 3, activation="relu", name="conv")(x)
    x = keras.layers.GlobalAveragePooling1D(name="pool")(x)
    model = keras.Model(inp, keras.layers.Dense(2, name="head")(x))
    fn = tf.function(lambda a: model(a))
    frozen = convert_variables_to_constants_v2(
        fn.get_concrete_function(tf.TensorSpec([None, None], tf.float32, name="audio"))
    )
    return bytes(tf.lite.TFLiteConverter.from_concrete_functions([frozen]).convert())
