"""Input value ranges (model/ranges.py): decided once in the specs, from what the model says, and used by every sampler.

Real conversions: a Keras Rescaling/Normalization layer is read at conversion, a calibrated
QUANTIZE op or an int8 input from the converted graph; `--input-range` overrides both.
"""

from __future__ import annotations

import numpy as np
import pytest

import fixtures_models
from xnnfit.core.errors import InputDataError
from xnnfit.model.convert import ConvertOptions, convert_model
from xnnfit.model.inputs import random_inputs
from xnnfit.model.ranges import DEFAULT, GIVEN, parse_input_ranges, with_ranges
from xnnfit.model.recipes import RECIPES
from xnnfit.model.source import ModelSource
from xnnfit.runner import materialize


def _rescaled(scale: float, offset: float = 0.0, nested: bool = False):
    import keras

    inner_in = keras.Input((4, 4, 3), name="pixels")
    x = keras.layers.Rescaling(scale, offset=offset, name="rescale")(inner_in)
    x = keras.layers.Dense(2, name="head")(keras.layers.Flatten()(x))
    inner = keras.Model(inner_in, x, name="inner")
    if not nested:
        return inner
    outer_in = keras.Input((4, 4, 3), name="image")
    return keras.Model(outer_in, inner(outer_in), name="outer")


def _spec(model, recipe="fp32", **options):
    return convert_model(model, RECIPES[recipe], ConvertOptions(**options)).specs[0]


@pytest.mark.parametrize(
    ("scale", "offset", "high"),
    [(1 / 255, 0.0, 255.0), (1 / 127.5, -1.0, 255.0), (1.0, 0.0, 1.0)],
)
def test_a_rescaling_layer_is_inverted_to_the_raw_range_it_expects(scale, offset, high):
    spec = _spec(_rescaled(scale, offset))
    assert spec.value_range == pytest.approx((0.0, high))
    assert spec.range_source.startswith("Rescaling layer 'rescale'")
    sample = random_inputs((spec,), 3, seed=1)
    values = np.concatenate([s[spec.name].ravel() for s in sample])
    assert values.min() >= 0 and values.max() <= high and values.max() > 0.5 * high  # drawn over the whole range


def test_a_nested_model_is_followed_to_its_first_layer():
    spec = _spec(_rescaled(1 / 255, nested=True))
    assert spec.name == "image" and spec.value_range == pytest.approx((0.0, 255.0)), spec


def test_a_normalization_layer_gives_values_with_its_mean_and_variance():
    import keras

    inp = keras.Input((5, 3), name="x")
    x = keras.layers.Normalization(mean=[1.0, 2.0, 3.0], variance=[4.0, 4.0, 9.0], name="norm")(inp)
    spec = _spec(keras.Model(inp, keras.layers.Dense(2)(x)))
    low, high = 1.0 - np.sqrt(3) * 2.0, 3.0 + np.sqrt(3) * 3.0  # the union over channels of mean ± sqrt(3)·std
    assert spec.value_range == pytest.approx((low, high)) and "Normalization layer 'norm'" in spec.range_source


def test_without_a_preprocessing_layer_the_default_is_said():
    spec = _spec(fixtures_models.dense_model())
    assert spec.value_range == (-1.0, 1.0) and spec.range_source == DEFAULT


def test_input_range_overrides_what_the_model_says():
    spec = _spec(_rescaled(1 / 255), input_ranges=parse_input_ranges(["pixels=0,1"]))
    assert spec.value_range == (0.0, 1.0) and spec.range_source == GIVEN
    spec = _spec(_rescaled(1 / 255), input_ranges=parse_input_ranges(["-2,2"]))  # every float input
    assert spec.value_range == (-2.0, 2.0) and spec.range_source == GIVEN


def test_a_rescaling_range_feeds_random_calibration_and_the_quantize_op_records_it(tmp_path):
    """int8 calibrated on random data drawn from [0, 255] (the Rescaling layer's raw range), not from [-1, 1]."""
    model = _rescaled(1 / 255)
    path = tmp_path / "model.tflite"
    path.write_bytes(convert_model(model, RECIPES["int8"]).content)
    artifact = materialize(ModelSource.parse(str(path)), RECIPES["fp32"])
    (spec,) = artifact.specs
    assert spec.range_source == "the calibrated range of the QUANTIZE op it feeds"
    low, high = spec.value_range
    assert low == pytest.approx(0.0, abs=1e-6) and 240 < high < 260, spec.value_range


def test_a_float_input_feeding_quantize_gets_the_calibrated_range(tmp_path):
    """Calibrated on [0, 1] data: a .tflite alone is sampled in [0, 1], never in the default [-1, 1]."""
    calibration = tmp_path / "calibration.npz"
    np.savez(calibration, x=np.random.default_rng(0).uniform(0, 1, (16, 8)).astype(np.float32))
    path = tmp_path / "dense_int8.tflite"
    path.write_bytes(
        convert_model(
            fixtures_models.dense_model(), RECIPES["int8"], ConvertOptions(calibration=str(calibration))
        ).content
    )
    (spec,) = materialize(ModelSource.parse(str(path)), RECIPES["fp32"]).specs
    low, high = spec.value_range
    assert low == pytest.approx(0.0, abs=1e-6) and 0.95 < high < 1.05, spec.value_range
    values = np.concatenate([s["x"].ravel() for s in random_inputs((spec,), 8)])
    assert values.min() >= low and values.max() <= high
    given = ConvertOptions(input_ranges=parse_input_ranges(["x=-3,3"]))
    (spec,) = materialize(ModelSource.parse(str(path)), RECIPES["fp32"], given).specs
    assert spec.value_range == (-3.0, 3.0) and spec.range_source == GIVEN


def test_an_int8_input_takes_every_code(tmp_path):
    import tensorflow as tf

    model = fixtures_models.dense_model()
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    rng = np.random.default_rng(0)
    converter.representative_dataset = lambda: ([rng.uniform(0, 2, (1, 8)).astype(np.float32)] for _ in range(8))
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.inference_input_type = tf.int8
    path = tmp_path / "int8_input.tflite"
    path.write_bytes(converter.convert())
    (spec,) = materialize(ModelSource.parse(str(path)), RECIPES["fp32"]).specs
    assert spec.dtype == "int8" and spec.value_range == (-128.0, 127.0)
    assert spec.range_source.startswith("the input's int8 quantization: every code (real 0 to 1.99")
    values = np.concatenate([s[spec.name].ravel() for s in random_inputs((spec,), 16)])
    assert values.dtype == np.int8 and values.min() < -100 and values.max() > 100  # not the old 0/1


@pytest.mark.parametrize(
    "text", ["1,0", "0", "a,b", "0,inf", "x=", "x=1,1"], ids=["reversed", "one", "words", "inf", "empty", "equal"]
)
def test_a_malformed_input_range_is_one_line(text):
    with pytest.raises(InputDataError) as info:
        parse_input_ranges([text])
    message = str(info.value)
    assert message.startswith("cannot read --input-range") and "LOW,HIGH" in message and "\n" not in message


def test_an_input_range_for_no_input_or_a_bool_input_is_refused():
    spec = _spec(fixtures_models.dense_model())
    with pytest.raises(InputDataError, match="--input-range names no model input: y. The inputs are: x"):
        with_ranges((spec,), parse_input_ranges(["y=0,1"]))
    import dataclasses

    flag = dataclasses.replace(spec, name="flag", dtype="bool", value_range=None, range_source="")
    with pytest.raises(InputDataError, match="input 'flag' is bool: --input-range does not apply"):
        with_ranges((flag,), parse_input_ranges(["flag=0,1"]))
    ids = dataclasses.replace(spec, name="ids", dtype="int32", high=100, value_range=None, range_source="")
    with pytest.raises(InputDataError, match="indexes a table of 100 rows, so it takes integers 0..99"):
        with_ranges((ids,), parse_input_ranges(["ids=0,500"]))
    (fitted,) = with_ranges((ids,), parse_input_ranges(["ids=0.5,10.5"]))
    assert fitted.value_range == (1.0, 10.0)
