"""fix verified on the user's inputs (--data), else in the range the model expects, and no figure that means nothing.

A trained model (tests/trained.py): the digits CNN with the seed article's tf.where
activations (XR001 rewrites them), converted to full int8 with its calibration data
(images in [0, 1]) and saved as a .tflite: fix judges it against the float model rebuilt
from its weights. Degenerate references: the random-weight where_cnn in int8 (logits
~1e-11, below the int8 output's step) and a model whose output is the same for every
input.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import fixtures_models
import trained
import xnnfit
from xnnfit.core.errors import InputDataError
from xnnfit.measure.accuracy import compare
from xnnfit.model.inputs import DataOrigin, load_npz
from xnnfit.rewrite.float_twin import float_twin
from xnnfit.runtime.interpreter import outputs

QUANTIZE_RANGE = "the calibrated range of the QUANTIZE op it feeds"


def cli(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    return subprocess.run(
        [sys.executable, "-m", "xnnfit", "fix", *args, "-q", "--runs", "5"],
        capture_output=True,
        text=True,
        env=env,
        timeout=900,
    )


@pytest.fixture(scope="session")
def digits_int8(tmp_path_factory) -> tuple[Path, trained.Saved]:
    """The trained digits_where CNN in full int8, calibrated on its training images, as a .tflite; and its files."""
    from xnnfit.model.convert import ConvertOptions, convert_model
    from xnnfit.model.recipes import RECIPES

    folder = tmp_path_factory.mktemp("digits")
    saved = trained.save("digits_where", folder)
    model = trained.MODELS["digits_where"][0]()
    model.load_weights(folder / "digits_where.weights.h5")
    content = convert_model(model, RECIPES["int8"], ConvertOptions(calibration=str(saved.calibration))).content
    path = folder / "digits_where.int8.tflite"
    path.write_bytes(content)
    return path, saved


@pytest.fixture(scope="session")
def where_int8(tmp_path_factory) -> Path:
    """The random-weight where_cnn example in full int8 (calibrated on random data): logits ~1e-11."""
    path = tmp_path_factory.mktemp("where") / "where_int8.tflite"
    path.write_bytes(fixtures_models.convert_example("where_cnn", "int8").content)
    return path


def test_fix_data_verifies_every_rewrite_on_all_the_given_inputs(digits_int8):
    path, saved = digits_int8
    result = xnnfit.fix(str(path), data=str(saved.eval), runs=5)
    rw = result.rewrite
    assert rw.verified_on == DataOrigin(450, str(saved.eval)) and rw.judgement.judged
    (xr001,) = [o for o in rw.outcomes if o.rule == "XR001"]
    assert xr001.status == "applied" and xr001.reason.startswith("error vs the float model rebuilt"), xr001
    # the figure is the error over all 450 eval images, measured here independently
    content = path.read_bytes()
    samples = load_npz(saved.eval, result.inputs)
    expected = compare(outputs(float_twin(content), samples), outputs(content, samples)).max_rel_error
    assert rw.reference_before.max_rel_error == pytest.approx(expected, rel=1e-6)
    assert 0.03 < expected < 0.35  # real int8 error on real images: ~10%, not the 100% of out-of-range inputs


def test_without_data_a_quantized_tflite_is_verified_in_its_calibrated_range(digits_int8, tmp_path):
    path, _ = digits_int8
    doc = tmp_path / "fix.json"
    res = cli(str(path), "-o", str(tmp_path / "fixed.tflite"), "--json", str(doc))
    assert res.returncode == 0, res.stderr
    assert f"verified on 4 seeded random samples: image in [0, 1] ({QUANTIZE_RANGE})" in res.stdout, res.stdout
    d = json.loads(doc.read_text())
    assert d["rewrite"]["verified_on"] == {"samples": 4, "data": None}
    (spec,) = d["inputs"]
    assert spec["range_source"] == QUANTIZE_RANGE and spec["value_range"] == pytest.approx([0.0, 1.0], abs=1e-6)
    in_range = d["rewrite"]["reference_before"]["max_rel_error"]
    # the range the quantization was never calibrated for: the int8 model clips the negatives, its twin does not
    doc2 = tmp_path / "fix2.json"
    res = cli(str(path), "-o", str(tmp_path / "fixed2.tflite"), "--json", str(doc2), "--input-range=-1,1")
    assert res.returncode == 0, res.stderr
    assert "image in [-1, 1] (--input-range)" in res.stdout, res.stdout
    outside = json.loads(doc2.read_text())["rewrite"]["reference_before"]["max_rel_error"]
    assert in_range < 0.5 * outside, (in_range, outside)


def test_fix_data_in_the_cli_says_what_it_ran_on(digits_int8, tmp_path):
    path, saved = digits_int8
    res = cli(str(path), "-o", str(tmp_path / "fixed.tflite"), "--data", str(saved.eval))
    assert res.returncode == 0, res.stderr
    assert f"verified on 450 samples of {saved.eval}" in res.stdout
    assert "applied XR001" in res.stdout and "error vs the float model rebuilt" in res.stdout


@pytest.mark.parametrize(
    ("flag", "expected"),
    [
        (
            "--calibration",
            "fix does not use --calibration here: a .tflite is fixed as given, never converted. Pass --data",
        ),
        ("--input-range", "cannot read --input-range 'image=1,0'"),
    ],
)
def test_options_fix_cannot_use_are_one_line_exit_2(digits_int8, tmp_path, flag, expected):
    path, saved = digits_int8
    value = str(saved.calibration) if flag == "--calibration" else "image=1,0"
    res = cli(str(path), "-o", str(tmp_path / "fixed.tflite"), flag, value)
    assert res.returncode == 2 and expected in res.stderr, res.stderr
    assert len(res.stderr.strip().splitlines()) == 1 and not (tmp_path / "fixed.tflite").exists()


def test_calibration_is_kept_for_a_keras_int8_fix_and_refused_for_fp32(tmp_path):
    calibration = tmp_path / "calibration.npz"
    np.savez(calibration, x=np.random.default_rng(0).uniform(0, 1, (8, 8)).astype(np.float32))
    with pytest.raises(InputDataError, match="--recipe fp32 does not calibrate"):
        xnnfit.fix(fixtures_models.dense_model(), calibration=str(calibration), runs=5)
    result = xnnfit.fix(fixtures_models.dense_model(), recipe="int8", calibration=str(calibration), runs=5)
    (spec,) = result.inputs  # the conversion calibrated on [0, 1]: verified there
    assert spec.range_source == QUANTIZE_RANGE and spec.value_range[1] == pytest.approx(1.0, abs=0.05)


def test_a_reference_below_the_quantized_outputs_step_is_not_judged(where_int8, tmp_path):
    doc, html = tmp_path / "fix.json", tmp_path / "fix.html"
    res = cli(str(where_int8), "-o", str(tmp_path / "fixed.tflite"), "--json", str(doc), "--html", str(html))
    assert res.returncode == 0, res.stderr
    out = " ".join(res.stdout.split())  # rich wraps long lines
    assert "accuracy cannot be judged: the reference outputs' scale" in out and "quantized output's step" in out
    assert "pass real inputs with --data FILE" in out
    assert "error vs" not in out and "of its output scale" not in out and "outputs within" not in out
    assert "applied XR001" in out  # still verified: on the shared intermediate tensors
    d = json.loads(doc.read_text())["rewrite"]
    assert d["judgement"]["judged"] is False and d["judgement"]["kind"] == "below-step"
    assert d["numerics"] is None and d["reference_before"] is None and d["reference_after"] is None
    assert all(o["numerics"] is None for o in d["outcomes"])
    assert "accuracy cannot be judged" in html.read_text()


def _constant_model():
    """The tf.where activation (XR001 rewrites it) feeding a Dense with zero weights: the bias, whatever the input."""
    import keras
    import tensorflow as tf

    inp = keras.Input((16,), name="x")
    x = keras.layers.Lambda(lambda t: tf.where(t < 0, 0.1 * t, t * t), name="where_act")(inp)
    out = keras.layers.Dense(4, kernel_initializer="zeros", bias_initializer="ones", name="logits")(x)
    return keras.Model(inp, out)


def test_constant_outputs_are_not_judged(tmp_path):
    content = fixtures_models.convert(_constant_model()).content
    result = xnnfit.fix(content, runs=5)
    rw = result.rewrite
    assert [o.rule for o in rw.applied] == ["XR001"]
    assert rw.judgement.kind == "constant" and rw.numerics is None
    assert rw.judgement.message == (
        "accuracy cannot be judged: the reference outputs are the same for every one of the 4 inputs; "
        "pass real inputs with --data FILE, or use a model with trained weights"
    )
    data = tmp_path / "data.npz"
    np.savez(data, x=np.random.default_rng(1).normal(size=(6, 16)).astype(np.float32), labels=np.arange(6))
    rw = xnnfit.fix(content, data=str(data), runs=5).rewrite  # the labels key is ignored
    assert rw.verified_on == DataOrigin(6, str(data))
    assert (
        rw.judgement.remedy
        == f"the model gives the same output for every input of {data}: use a model with trained weights"
    )


def test_a_judged_float_fix_keeps_its_figures():
    """The random-weight where_cnn in fp32: tiny logits (~1e-11), but they move with the input; fix judges them."""
    content = fixtures_models.convert_example("where_cnn", "fp32").content
    rw = xnnfit.fix(content, runs=5).rewrite
    assert rw.judgement.judged and rw.numerics is not None and rw.numerics.max_rel_error < 1e-5
    assert rw.verified_on == DataOrigin(4)


def _report(result) -> str:
    from rich.console import Console

    from xnnfit.report.terminal import render_fix

    console = Console(record=True, width=400)
    render_fix(console, result)
    return console.export_text()


def test_a_rescaling_layer_and_input_range_change_the_range_the_report_names():
    import keras
    import tensorflow as tf

    inp = keras.Input((16,), name="pixels")
    x = keras.layers.Rescaling(1 / 255, name="rescale")(inp)
    x = keras.layers.Lambda(lambda t: tf.where(t < 0, 0.1 * t, t * t), name="where_act")(x)
    model = keras.Model(inp, keras.layers.Dense(4, name="logits")(x))
    text = _report(xnnfit.fix(model, runs=5))
    assert (
        "verified on 4 seeded random samples: pixels in [0, 255] (Rescaling layer 'rescale': scale 0.003922, "
        "offset 0 maps raw [0, 255] to [0, 1])"
    ) in text, text
    text = _report(xnnfit.fix(model, runs=5, input_range=["pixels=0,1"]))
    assert "verified on 4 seeded random samples: pixels in [0, 1] (--input-range)" in text, text
