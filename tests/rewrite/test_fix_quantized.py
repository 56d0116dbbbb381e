"""fix on quantized real models: judged against a float reference, never against the quantized original.

keras.applications models with random weights, logits output, dynamic-range int8: their
depthwise convolutions fall back (XNN027) until XR009 keeps their weights in float.
XR009 makes the model more accurate, so comparing it with the dynamic-int8 original
would refuse it; against the fp32 conversion (Keras source) or the float model rebuilt
from the file (a .tflite alone) it is kept.
"""

from __future__ import annotations

import functools

import pytest

import xnnfit
from xnnfit.core.policy import DEFAULT_POLICY
from xnnfit.measure.accuracy import compare
from xnnfit.model.convert import convert_model
from xnnfit.model.inputs import random_inputs
from xnnfit.model.recipes import RECIPES
from xnnfit.runtime.interpreter import outputs

pytestmark = pytest.mark.slow


def _effnet():
    import keras

    keras.utils.set_random_seed(0)
    return keras.applications.EfficientNetB0(weights=None, classifier_activation=None)


def _mnv3():
    import keras

    keras.utils.set_random_seed(0)
    return keras.applications.MobileNetV3Large(weights=None, classifier_activation=None, input_shape=(160, 160, 3))


def _tf_keras_mobilenet(tmp_dir):
    import tf_keras

    tf_keras.utils.set_random_seed(0)
    path = tmp_dir / "mobilenet.h5"
    tf_keras.applications.MobileNet(weights=None, input_shape=(128, 128, 3), classifier_activation=None).save(path)
    return path


@functools.cache
def _converted(name: str):
    model = {"effnet": _effnet, "mnv3": _mnv3}[name]()
    return convert_model(model, RECIPES["fp32"]), convert_model(model, RECIPES["dynamic-int8"])


def _assert_fixed_and_closer(result, fp32, original: bytes):
    assert result.changed, [(o.rule, o.status, o.reason) for o in result.rewrite.outcomes]
    (xr009,) = [o for o in result.rewrite.outcomes if o.rule == "XR009"]
    assert xr009.status == "applied" and "error vs" in xr009.reason and "of its output scale" in xr009.reason
    assert result.rewrite.before.cpu_nodes > 0 and result.rewrite.after.cpu_nodes == 0
    # no farther from the fp32 model than before (within the policy's margin), measured here independently
    samples = random_inputs(fp32.specs, 3, seed=11)
    ref = outputs(fp32.content, samples)
    before = compare(ref, outputs(original, samples)).max_rel_error
    after = compare(ref, outputs(result.content, samples)).max_rel_error
    assert after <= DEFAULT_POLICY.quantized_margin * before + DEFAULT_POLICY.quantized_floor, (before, after)


@pytest.mark.parametrize("name", ["effnet", "mnv3"])
def test_tflite_alone_is_judged_against_its_dequantized_float_model(name):
    fp32, dyn = _converted(name)
    result = xnnfit.fix(dyn.content, runs=10)
    assert result.rewrite.reference == "the float model rebuilt from the file's dequantized weights"
    _assert_fixed_and_closer(result, fp32, dyn.content)


def test_keras_source_is_judged_against_its_fp32_conversion(tmp_path):
    fp32, dyn = _converted("effnet")
    src = tmp_path / "effnet.py"
    src.write_text(
        "import keras\n"
        "def build():\n"
        "    return keras.applications.EfficientNetB0(weights=None, classifier_activation=None)\n"
    )
    result = xnnfit.fix(f"{src}:build", recipe="dynamic-int8", runs=10)
    assert result.rewrite.reference == "the fp32 conversion"
    _assert_fixed_and_closer(result, fp32, dyn.content)
    assert all(h.fixed for h in result.keras_hints if "XNN027" in h.causes)


def test_tf_keras_h5_is_fixed(tmp_path):
    path = _tf_keras_mobilenet(tmp_path)
    result = xnnfit.fix(str(path), recipe="dynamic-int8", runs=10)
    assert result.rewrite.reference == "the fp32 conversion"
    assert result.changed and result.rewrite.after.cpu_nodes == 0 < result.rewrite.before.cpu_nodes
    assert result.rewrite.reference_after.max_rel_error <= (
        DEFAULT_POLICY.quantized_margin * result.rewrite.reference_before.max_rel_error + DEFAULT_POLICY.quantized_floor
    )
