"""Quantization failures explained and repaired, on models with trained weights (tests/trained.py).

The masked transformer's full-int8 conversion collapses (Keras MultiHeadAttention fills masked
scores with float32's minimum): its findings must name the attention layer and the fill cause,
and int8-repaired must keep top-1 accuracy against the labels within a point of fp32, measured
here independently on all 600 eval samples with the LiteRT interpreter, with XNNPACK running it
whole. The digits ReLU CNN's int8 conversion does not collapse: it must get no fill finding.
"""

from __future__ import annotations

import json

import pytest
from rich.console import Console

import trained
from xnnfit import api
from xnnfit.choose.optimize import OptimizeResult
from xnnfit.choose.quant import QuantResult
from xnnfit.model.recipes import REPAIRED
from xnnfit.observe.delegation import observe
from xnnfit.report import terminal
from xnnfit.report.html import page

RUNS = 5  # the fewest timed runs a comparison takes: these tests judge findings and accuracy, not speed


@pytest.fixture(scope="module")
def transformer(tmp_path_factory):
    saved = trained.save("masked_transformer", tmp_path_factory.mktemp("trained"))
    result = api.optimize(
        saved.builder,
        recipe="int8",
        calibration=str(saved.calibration),
        eval_data=str(saved.eval),
        runs=RUNS,
    )
    return saved, result


def test_the_int8_findings_name_the_attention_layer_and_the_fill(transformer):
    _, result = transformer
    first, *_ = result.candidate("int8").quantization_findings
    assert (first.id, first.layer, first.layer_class) == ("XNN036", "attention", "MultiHeadAttention")
    assert first.op == "MUL" and first.error > 0.9  # the masked scores: every value quantized to the zero point
    assert "int8-repaired" in first.advice and len(first.float_nodes) == 2  # the scores and the select of the fill


def test_int8_repaired_keeps_fp32_accuracy_with_xnnpack_running_it_whole(transformer):
    saved, result = transformer
    repaired, int8, fp32 = (result.candidate(r) for r in (REPAIRED, "int8", "fp32"))
    assert repaired.status == "ok" and repaired.fixed and repaired.cpu_nodes == 0, repaired
    assert observe(repaired.content).cpu_nodes == 0
    accuracy = {c.recipe: trained.litert_top1(c.content, saved.eval) for c in (fp32, int8, repaired)}
    assert accuracy["int8"] < accuracy["fp32"] - 0.2, accuracy  # the collapse being repaired
    assert abs(accuracy[REPAIRED] - accuracy["fp32"]) <= 0.01, accuracy
    assert not repaired.quantization_findings or all(f.id != "XNN036" for f in repaired.quantization_findings)


def test_findings_are_in_the_json_and_read_back(transformer):
    _, result = transformer
    data = json.loads(json.dumps(result.to_dict()))
    (int8,) = [c for c in data["candidates"] if c["recipe"] == "int8"]
    finding = int8["quantization_findings"][0]
    assert {"id", "tensor", "layer", "line", "error", "advice"} <= set(finding) and finding["id"] == "XNN036"
    assert OptimizeResult.from_dict(data) == result


def test_the_terminal_and_the_html_report_show_each_finding(transformer):
    _, result = transformer
    console = Console(record=True, width=400)
    terminal.render_optimize(console, result)
    lines = [ln for ln in console.export_text().splitlines() if "int8: XNN036" in ln]
    assert len(lines) == 1 and "attention" in lines[0] and "error 100%" in lines[0]
    html = page(result)
    assert "quantization findings" in html and "<td>XNN036</td><td>attention</td>" in html


def test_a_cnn_whose_int8_holds_gets_no_fill_finding(tmp_path):
    saved = trained.save("digits_relu", tmp_path)
    result = api.quant(
        saved.builder,
        recipe="int8",
        calibration=str(saved.calibration),
        eval_data=str(saved.eval),
        runs=RUNS,
        explain_quant=True,
    )
    assert not any("could not be made" in w for w in result.warnings), result.warnings  # the analysis ran
    assert not any(f.id == "XNN036" for r in result.rows for f in r.quantization_findings)
    assert REPAIRED not in [r.recipe for r in result.rows]  # nothing to repair
    assert QuantResult.from_dict(json.loads(json.dumps(result.to_dict()))) == result


CRASHING_BUILDER = """
import os, pathlib
import keras

COUNT = pathlib.Path(__file__).with_suffix(".loads")


def build():
    loads = int(COUNT.read_text()) if COUNT.exists() else 0
    COUNT.write_text(str(loads + 1))
    if loads >= 2:  # the fp32 and int8 conversions load it; the quantization debugger's child is the third load
        os.abort()  # a native crash, as the TF calibrator's segfault would be
    inp = keras.Input((16,), name="x")
    return keras.Model(inp, keras.layers.Dense(4, name="head")(keras.layers.Dense(16, activation="relu")(inp)))
"""


def test_a_crash_of_the_analysis_costs_the_findings_only(tmp_path):
    builder = tmp_path / "crashing.py"
    builder.write_text(CRASHING_BUILDER)
    result = api.quant(f"{builder}:build", recipe="int8", runs=RUNS, explain_quant=True)
    assert [r.status for r in result.rows] == ["ok", "ok"]  # fp32 and int8 measured and raced as ever
    (note,) = [w for w in result.warnings if "quantization findings for int8 could not be made" in w]
    assert "\n" not in note and "crashing.py:build" in note


def test_quant_and_optimize_take_explain_quant():
    from typer.testing import CliRunner

    from xnnfit.cli import app

    for command in ("quant", "optimize"):
        result = CliRunner().invoke(app, [command, "--help"], env={"COLUMNS": "200"})
        assert result.exit_code == 0 and "--explain-quant" in result.output, result.output
