"""Accuracy on the user's own data and labels: every eval sample, top-1 against labels, budgets in points."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

import fixtures_models
import xnnfit
from xnnfit.core.errors import InputDataError

ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}


def _litert_outputs(path, eval_path) -> np.ndarray:
    """Every eval sample through the written model with ai_edge_litert directly: the independent measurement."""
    from ai_edge_litert.interpreter import Interpreter

    it = Interpreter(model_path=str(path))
    it.allocate_tensors()
    (inp,), (out,) = it.get_input_details(), it.get_output_details()
    images = np.load(eval_path)["image"]
    rows = []
    for x in images:
        it.set_tensor(inp["index"], x[None].astype(np.float32))
        it.invoke()
        rows.append(it.get_tensor(out["index"])[0].astype(np.float64))
    return np.stack(rows)


@pytest.fixture(scope="module")
def optimized(digits, tmp_path_factory):
    folder = tmp_path_factory.mktemp("optimized")
    result = xnnfit.optimize(
        digits.builder,
        folder / "best.tflite",
        recipe="fp32,int8",
        keep_all=folder / "all",
        calibration=str(digits.calibration),
        eval_data=str(digits.eval),
        runs=5,
    )
    return result, folder


def test_every_eval_sample_is_used_and_said(optimized, digits):
    result, _ = optimized
    labels = np.load(digits.eval)["labels"]
    assert result.eval.samples == result.eval.available == len(labels) == 450
    assert result.eval.task == "classes" and result.eval.labels == str(digits.eval)
    doc = json.loads(json.dumps(result.to_dict()))
    assert doc["eval"]["samples"] == 450 and doc["budget"]["max_accuracy_drop"] == 1.0
    assert doc["cpu"] and "x86_64" in doc["cpu"]  # the CPU the race ran on: int8 vs fp32 depends on it
    assert doc["budget"]["reference_accuracy"] == pytest.approx(digits.keras_accuracy, abs=0.005)


def test_the_chosen_accuracy_is_the_written_models_on_the_labels(optimized, digits):
    result, folder = optimized
    labels = np.load(digits.eval)["labels"]
    measured = float(np.mean(np.argmax(_litert_outputs(folder / "best.tflite", digits.eval), axis=1) == labels))
    assert result.best.accuracy == pytest.approx(measured, abs=0.005)
    assert result.budget.reference_accuracy - result.best.accuracy <= 0.01 + 1e-9  # within the default 1 point


def test_the_int8_error_is_over_the_whole_eval_set(optimized, digits):
    result, folder = optimized
    fp32 = _litert_outputs(folder / "all" / "digits_relu.fp32.tflite", digits.eval)
    int8 = _litert_outputs(folder / "all" / "digits_relu.int8.tflite", digits.eval)
    whole = np.max(np.abs(fp32 - int8)) / np.max(np.abs(fp32))
    first16 = np.max(np.abs(fp32[:16] - int8[:16])) / np.max(np.abs(fp32[:16]))
    assert result.candidate("int8").rel_error == pytest.approx(whole, rel=0.02)
    assert whole > first16  # the first 16 samples alone understate it (what the old cut printed)


def test_eval_samples_caps_the_set(digits):
    result = xnnfit.quant(digits.builder, recipe="fp32", eval_data=str(digits.eval), eval_samples=100, runs=5)
    assert result.eval.samples == 100 and result.eval.available == 450
    assert "100 of 450 samples" in result.eval.describe()


def test_a_budget_in_points_needs_class_labels(digits, tmp_path):
    np.savez(tmp_path / "inputs.npz", image=np.load(digits.eval)["image"])
    with pytest.raises(InputDataError, match="needs class labels"):
        xnnfit.quant(digits.builder, recipe="fp32", eval_data=str(tmp_path / "inputs.npz"), max_accuracy_drop=0.5)


def _labels_file(tmp_path, digits, **arrays):
    path = tmp_path / "bad.npz"
    np.savez(path, image=np.load(digits.eval)["image"], **arrays)
    return path


@pytest.mark.parametrize(
    ("labels", "needle"),
    [
        (np.arange(10), "10 labels for 450 samples"),
        (np.array(["seven"] * 450), "dtype <U5"),
        (np.zeros((450, 2), np.int64), "class ids are one per sample"),
    ],
)
def test_bad_labels_are_one_line_naming_the_file(tmp_path, digits, labels, needle):
    path = _labels_file(tmp_path, digits, labels=labels)
    res = subprocess.run(
        [sys.executable, "-m", "xnnfit", "quant", digits.builder, "--recipe", "fp32", "--eval", str(path), "-q"],
        capture_output=True,
        text=True,
        env=ENV,
    )
    assert res.returncode == 2, res.stdout + res.stderr
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and needle in lines[0] and "bad.npz" in lines[0], res.stderr


def test_labels_for_a_model_with_two_outputs_must_name_one(tmp_path):
    src = tmp_path / "two.py"
    src.write_text(
        "import keras\n"
        "def build():\n"
        "    inp = keras.Input((4,), name='x')\n"
        "    return keras.Model(inp, [keras.layers.Dense(3, name='a')(inp), keras.layers.Dense(2, name='b')(inp)])\n"
    )
    path = tmp_path / "eval.npz"
    np.savez(path, x=np.zeros((8, 4), np.float32), labels=np.zeros(8, np.int64))
    with pytest.raises(InputDataError, match="the model has 2"):
        xnnfit.quant(f"{src}:build", recipe="fp32", eval_data=str(path), runs=5)


def test_the_bundled_digits_example_is_trained():
    """make demo's model: the shipped weights still reach the accuracy they were trained to on the shipped labels."""
    example = fixtures_models.load_example("digits_where")
    data = np.load(fixtures_models.EXAMPLES_DIR / "data" / "digits.eval.npz")
    logits = example.build().predict(data["image"], verbose=0)
    assert float(np.mean(np.argmax(logits, axis=1) == data["labels"])) > 0.95


def test_a_quantized_row_below_its_output_step_is_not_judged_nor_pareto():
    result = xnnfit.quant(
        str(fixtures_models.EXAMPLES_DIR / "where_cnn.py") + ":build", recipe="fp32,int8", runs=5
    )  # random weights, x² activations: fp32 logits ~1e-11, below int8's output step, so int8 outputs zeros
    int8 = result.row("int8")
    assert result.budget.judged and int8.not_judged and "step" in int8.not_judged
    assert not int8.pareto and result.recommended == "fp32"
    doc = json.loads(json.dumps(result.to_dict()))
    assert doc["rows"][1]["not_judged"] == int8.not_judged


def test_constant_outputs_are_not_judged_and_the_choice_says_it_rests_on_speed(tmp_path):
    src = tmp_path / "flat.py"
    src.write_text(
        "import keras\n"
        "def build():\n"
        "    inp = keras.Input((16,), name='x')\n"
        "    out = keras.layers.Dense(10, kernel_initializer='zeros', bias_initializer='ones')(inp)\n"
        "    return keras.Model(inp, out)\n"
    )
    result = xnnfit.quant(f"{src}:build", recipe="fp32,fp16", runs=5)
    assert not result.budget.judged and "same" in result.budget.not_judged
    assert not any(r.pareto for r in result.rows) and "on speed alone" in result.reason
    res = subprocess.run(
        [sys.executable, "-m", "xnnfit", "quant", f"{src}:build", "--recipe", "fp16", "--runs", "5", "-q"],
        capture_output=True,
        text=True,
        env=ENV,
    )
    assert res.returncode == 0, res.stderr
    assert "accuracy cannot be judged" in res.stdout
    fp32_row = next(line for line in res.stdout.splitlines() if line.strip().startswith("fp32"))
    assert fp32_row.split()[-1] == "-"  # no error figure that means nothing, no Pareto mark
