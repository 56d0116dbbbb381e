"""The quantization sweep on tiny models: row data consistent with check and bench, isolation, bad input."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from xnnfit import check, quant
from xnnfit.choose.quant import QuantRow, recommend
from xnnfit.choose.selection import Budget, pareto
from xnnfit.core.errors import InputDataError, XnnfitError
from xnnfit.model.recipes import REPAIRED

ROOT = Path(__file__).resolve().parents[2]
CNN = f"{ROOT}/examples/where_cnn.py:build"


@pytest.fixture(scope="module")
def cnn_report():
    return quant(CNN, recipe="fp32,dynamic-int8,int8,int8+float-ops", runs=5)


def test_rows_have_every_field_and_agree_with_check(cnn_report):
    rows = {r.recipe: r for r in cnn_report.rows}
    # random weights and x**2 activations shrink the values below int8's step: int8 is over the budget, its
    # findings name the nodes that lose them, and int8-repaired joins the candidates (tests/choose/test_repair.py)
    assert set(rows) == {"fp32", "dynamic-int8", "int8", "int8+float-ops", REPAIRED}
    assert rows["int8"].rel_error > 0.05 and rows["int8"].quantization_findings
    diag = {d.recipe: d for d in check(CNN, recipe="int8,int8+float-ops").recipes}  # the two quantized extremes
    for name, row in rows.items():
        assert row.status == "ok", row.error
        if name in diag:
            s = diag[name].summary()
            assert (row.nodes, row.cpu_nodes, row.partitions) == (s["nodes"], s["cpu_nodes"], s["partitions"])
            assert row.delegated_fraction == pytest.approx(diag[name].delegated_fraction)
        assert row.size_bytes > 0 and row.median_ms > 0 and 0 <= row.cpu_share <= 1
        assert 0 <= row.rel_error and -1 <= row.cosine <= 1.000001
        assert row.top1 is not None  # (1, 10) logits look like class scores
    assert rows["fp32"].max_abs_error == 0.0 and rows["fp32"].cosine == pytest.approx(1.0)
    assert rows["int8"].size_bytes < rows["fp32"].size_bytes
    assert cnn_report.recommended in rows
    assert any(r.pareto for r in cnn_report.rows)


def test_recommendation_is_fastest_within_budget():
    def row(name, ms, err, size=1):
        return QuantRow(
            name, "ok", size_bytes=size, median_ms=ms, p10_ms=ms, p90_ms=ms, rel_error=err, partitions=1,
            delegated_fraction=1.0,
        )  # fmt: skip

    rows = [row("fp32", 3.0, 0.0, 4), row("a", 1.0, 0.2, 1), row("b", 2.0, 0.01, 2), QuantRow("c", "failed", "boom")]
    best, reason = recommend(rows, Budget(0.05, None))
    assert best == "b" and reason.startswith("fastest within the budget") and "error <= 5.0%" in reason
    assert recommend(rows, Budget(0.5, None))[0] == "a"
    assert "no candidate keeps to the budget" in recommend([row("x", 1.0, 0.9)], Budget(0.05, None))[1]
    assert pareto(rows, Budget(0.05, None)) == {"fp32", "a", "b"}
    assert pareto(rows, Budget(0.05, None, judged=False, not_judged="flat")) == set()  # nothing to trade against
    twin = QuantRow("a2", "ok", size_bytes=1, median_ms=1.0, p10_ms=1.0, p90_ms=1.0, rel_error=0.2, partitions=1,
                    delegated_fraction=1.0, same_as="a")  # fmt: skip
    assert pareto([*rows, twin], Budget(0.05, None)) == {"fp32", "a", "b"}  # the same bytes as a: not a second mark


def test_a_failed_row_carries_no_figures():
    doc = QuantRow("c", "failed", "boom").to_dict()
    assert doc["median_ms"] is None and doc["rel_error"] is None and doc["cosine"] is None and doc["size_bytes"] is None


def test_a_crashing_recipe_fails_its_row_only(tmp_path):
    src = tmp_path / "lstm.py"
    src.write_text(
        "import keras\n"
        "def build():\n"
        "    inp = keras.Input((8, 4))\n"
        "    return keras.Model(inp, keras.layers.Dense(2)(keras.layers.LSTM(8)(inp)))\n"
    )
    report = quant(f"{src}:build", recipe="fp32,int8,dynamic-int8", runs=5)
    rows = {r.recipe: r for r in report.rows}
    assert rows["int8"].status == "failed" and "SIGSEGV" in rows["int8"].error
    assert rows["fp32"].status == "ok" and rows["dynamic-int8"].status == "ok"


def test_tflite_input_is_refused(tmp_path):
    path = tmp_path / "m.tflite"
    path.write_bytes(b"\x1c\x00\x00\x00TFL3" + bytes(64))
    with pytest.raises(XnnfitError, match="needs the float model"):
        quant(str(path))


@pytest.mark.parametrize(
    ("arrays", "needle"),
    [
        ({"image": np.zeros((4, 16, 16, 3), "float32")}, "has shape"),
        ({"image": np.zeros((4, 32, 32, 3), "int32")}, "dtype"),
        ({"image": np.full((4, 32, 32, 3), np.nan, "float32")}, "NaN"),
        ({}, "holds no arrays"),
    ],
)
def test_bad_calibration_data(tmp_path, arrays, needle):
    path = tmp_path / "calib.npz"
    np.savez(path, **arrays)
    with pytest.raises(InputDataError, match=needle):
        quant(CNN, recipe="fp32,int8", calibration=str(path), runs=5)
    if "NaN" not in needle:
        return  # the command line turns every InputDataError into the same one line: one case shows it
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    res = subprocess.run(
        [sys.executable, "-m", "xnnfit", "quant", CNN, "--recipes", "int8", "--calibration", str(path), "-q"],
        capture_output=True,
        text=True,
        env=env,
    )
    assert res.returncode == 2
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and needle in lines[0]


def test_cli_json_and_output_dir(tmp_path):
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    doc_path, out_dir = tmp_path / "q.json", tmp_path / "models"
    res = subprocess.run(
        [
            sys.executable,
            "-m",
            "xnnfit",
            "quant",
            f"{ROOT}/examples/where_activation.py:build",
            "--recipes",
            "fp32,dynamic-int8+float-dw",
            "--runs",
            "5",
            "--json",
            str(doc_path),
            "-o",
            str(out_dir),
            "-q",
        ],
        capture_output=True,
        text=True,
        env=env,
    )
    assert res.returncode == 0, res.stderr
    assert "recommended:" in res.stdout
    doc = json.loads(doc_path.read_text())
    assert doc["recommended"] in {"fp32", "dynamic-int8+float-dw"}
    for row in doc["rows"]:
        assert set(row) >= {
            "recipe",
            "status",
            "size_bytes",
            "delegated_fraction",
            "partitions",
            "median_ms",
            "cpu_share",
            "max_abs_error",
            "cosine",
        }
    assert sorted(p.name for p in out_dir.iterdir()) == [
        "where_activation.dynamic-int8+float-dw.tflite",
        "where_activation.fp32.tflite",
    ]


def test_latencies_within_noise_are_equal_and_fewer_partitions_win():
    def row(name, ms, parts, err=0.01, size=1):
        return QuantRow(
            name,
            "ok",
            size_bytes=size,
            median_ms=ms,
            p10_ms=ms * 0.99,
            p90_ms=ms * 1.01,
            rel_error=err,
            partitions=parts,
            delegated_fraction=1.0,
        )

    budget = Budget(0.05, None)
    rows = [row("fp32", 3.0, 1, 0.0, 4), row("int8+float-ops", 1.00, 49), row("dynamic-int8", 1.01, 1)]
    best, reason = recommend(rows, budget)
    assert best == "dynamic-int8" and "within the measured noise" in reason
    assert "chosen for fewer partitions (1 vs 49)" in reason  # the rule that decided, with its figures
    rows[1] = row("int8+float-ops", 1.00, 1, size=3)  # same partitions: the smaller one wins, and says so
    best, reason = recommend(rows, budget)
    assert best == "dynamic-int8" and "chosen for a smaller size" in reason
    rows[2] = row("dynamic-int8", 1.5, 1)  # clearly slower: speed wins
    assert recommend(rows, budget)[0] == "int8+float-ops"
    flat = Budget(0.05, None, judged=False, not_judged="the float model gives the same output")
    assert "accuracy cannot be judged, so on speed alone" in recommend(rows, flat)[1]


def test_top1_only_for_class_scores_and_a_flat_output_agrees_with_nothing():
    import numpy as np

    import fixtures_models
    from xnnfit.measure.accuracy import agreement, class_scores, reference_spread

    rng = np.random.default_rng(0)
    ref = [[rng.normal(size=(1, 10))] for _ in range(4)]
    zeros = [[np.zeros((1, 10))] for _ in range(4)]
    assert agreement(ref, zeros, classes=True).top1 == 0.0  # all-zero output: a tie at the top, never an agreement
    assert agreement(ref, ref, classes=True).top1 == 1.0
    assert agreement(ref, ref, classes=False).top1 is None
    assert class_scores(fixtures_models.convert_example("where_cnn", "fp32").content)  # (1, 10) logits from a Dense
    assert class_scores(fixtures_models.convert_example("transformer_block", "fp32").content)  # softmax over 4 classes
    assert not class_scores(
        fixtures_models.convert_example("upsampling_decoder", "fp32").content
    )  # an image, not scores
    assert (
        reference_spread([[np.full((1, 10), 0.1)] for _ in range(4)]) == 0.0
    )  # random-weight softmax: the same for every input
    assert reference_spread(ref) > 0.1


def test_eval_on_calibration_data_is_flagged(tmp_path):
    np.savez(tmp_path / "calib.npz", features=np.random.default_rng(0).uniform(-1, 1, (8, 10)).astype("float32"))
    report = quant(
        f"{ROOT}/examples/where_activation.py:build", recipe="int8", calibration=str(tmp_path / "calib.npz"), runs=5
    )
    assert any("measured on the calibration data" in w for w in report.warnings)
    assert not any("is not used by" in w for w in report.warnings)  # int8 uses it: fp32 not using it is no news
    assert report.row("fp32").top1 is None  # a (1, 1) sigmoid: not class scores, so no top-1
    floats = quant(
        f"{ROOT}/examples/where_activation.py:build", recipe="fp16", calibration=str(tmp_path / "calib.npz"), runs=5
    )
    unused = [w for w in floats.warnings if "is not used by" in w]
    assert unused == [unused[0]] and "fp32, fp16" in unused[0]  # said once, naming both


TRANSFORMER = f"{ROOT}/examples/transformer_block.py:build"


@pytest.mark.parametrize(
    ("command", "flag"),
    [
        (["quant", TRANSFORMER, "--recipe", "fp32"], "--eval"),
        (["check", TRANSFORMER, "--recipe", "int8"], "--calibration"),
        (["bench", TRANSFORMER], "--data"),
    ],
)
def test_token_ids_outside_the_vocabulary_are_one_line_naming_the_value(tmp_path, command, flag):
    ids = np.zeros((4, 32), "int32")
    ids[1, 3] = 1500  # the embedding has 1000 rows
    np.savez(tmp_path / "ids.npz", tokens=ids)
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    res = subprocess.run(
        [sys.executable, "-m", "xnnfit", *command, flag, str(tmp_path / "ids.npz"), "-q"],
        capture_output=True,
        text=True,
        env=env,
    )
    assert res.returncode == 2, res.stdout + res.stderr
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, res.stderr
    assert "'tokens'" in lines[0] and "holds 1500" in lines[0] and "valid values are 0..999" in lines[0], lines[0]
    assert "Traceback" not in res.stderr and "KeyError" not in res.stderr
