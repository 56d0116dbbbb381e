"""optimize: every recipe converted, fixed and raced; the fastest faithful model written, with the evidence."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

import fixtures_models
import xnnfit

WHERE = str(fixtures_models.EXAMPLES_DIR / "where_activation.py") + ":build"


@pytest.fixture(scope="module")
def optimized(tmp_path_factory):
    out = tmp_path_factory.mktemp("opt") / "best.tflite"
    return xnnfit.optimize(WHERE, out, recipe="fp32,dynamic-int8,int8", runs=5), out


def test_the_chosen_model_is_written_fixed_and_within_budget(optimized):
    result, out = optimized
    assert [c.recipe for c in result.candidates] == ["fp32", "dynamic-int8", "int8"]
    best = result.best
    assert best is not None and result.output == str(out) and out.read_bytes() == best.content
    assert best.rel_error <= result.budget.max_error and best.cpu_nodes == 0 and best.fixed and "XR001 ×1" in best.rules
    assert (
        result.reference == "the fp32 conversion"
        and result.baseline == "the plain fp32 conversion"
        and result.baseline_ms > 0
    )
    fp32 = result.candidate("fp32")
    assert fp32.rel_error < 1e-5  # the fixed fp32 model is the fp32 conversion, exactly
    assert all(c.cpu_nodes_before == 2 for c in result.candidates)  # the tf.where fell back in every recipe
    check = xnnfit.check(str(out)).recipes[0]
    assert check.summary()["cpu_nodes"] == 0


def test_result_is_data_with_the_documented_fields(optimized):
    result, _ = optimized
    doc = json.loads(json.dumps(result.to_dict()))
    assert doc["result"] == "optimize" and doc["chosen"] == result.chosen and doc["versions"]["xnnfit"]
    assert set(doc["candidates"][0]) >= {
        "recipe",
        "fixed",
        "rules",
        "cpu_nodes",
        "partitions",
        "median_ms",
        "size_bytes",
        "rel_error",
        "pareto",
    }
    assert xnnfit.OptimizeResult.from_dict(doc) == result


def test_a_tflite_alone_is_fixed_and_told_recipes_need_the_source(tmp_path):
    src = tmp_path / "where.tflite"
    src.write_bytes(
        fixtures_models.convert_example("where_activation", "int8").content
    )  # quantized: judged against its float twin
    result = xnnfit.optimize(src.read_bytes(), tmp_path / "best.tflite", runs=5)
    (only,) = result.candidates
    assert only.recipe == "as-given" and only.fixed and only.cpu_nodes == 0
    assert result.reference == "the float model rebuilt from the file's dequantized weights"
    assert any("needs the Keras model" in w for w in result.warnings)


def test_a_crashing_candidate_is_dropped_not_the_run(tmp_path):
    src = tmp_path / "lstm.py"
    src.write_text(
        "import keras\n"
        "def build():\n"
        "    inp = keras.Input((8, 4))\n"
        "    return keras.Model(inp, keras.layers.Dense(2)(keras.layers.LSTM(8)(inp)))\n"
    )
    result = xnnfit.optimize(f"{src}:build", tmp_path / "best.tflite", recipe="fp32,int8", runs=5)
    assert result.candidate("int8").status == "failed" and "SIGSEGV" in result.candidate("int8").error
    assert result.chosen == "fp32" and (tmp_path / "best.tflite").exists()


def test_cli_report_order_keep_all_and_refusals(tmp_path):
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    base = [sys.executable, "-m", "xnnfit", "optimize", WHERE, "--recipe", "fp32,dynamic-int8", "--runs", "5", "-q"]
    out, folder, doc = tmp_path / "best.tflite", tmp_path / "all", tmp_path / "o.json"
    res = subprocess.run(
        [*base, "-o", str(out), "--keep-all", str(folder), "--json", str(doc)], capture_output=True, text=True, env=env
    )
    assert res.returncode == 0, res.stderr
    text = res.stdout
    assert (
        text.index("chosen:") < text.index(" recipe ") < text.index("next: xnnfit bench")
    )  # the choice first, then the evidence
    assert sorted(p.name for p in folder.iterdir()) == [
        "where_activation.dynamic-int8.fixed.tflite",
        "where_activation.fp32.fixed.tflite",
    ]
    assert json.loads(doc.read_text())["output"] == str(out)
    again = subprocess.run([*base, "-o", str(out)], capture_output=True, text=True, env=env)
    assert again.returncode == 2 and "already exists" in again.stderr
    none = subprocess.run([*base], capture_output=True, text=True, env=env)
    assert none.returncode == 2 and "no output path" in none.stderr
