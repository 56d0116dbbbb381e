"""profile and bench on real converted models: structure, ranking, JSON, bad input (no timing asserts)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

import fixtures_models
from xnnfit.core.errors import InputDataError, RuntimeFailure
from xnnfit.measure.bench import bench_stage, parse_threads
from xnnfit.measure.profile import profile_stage
from xnnfit.model.artifact import Artifact
from xnnfit.model.specs import ShapeRequest, tflite_declared_inputs
from xnnfit.tflite import read_model


def _profile(conv):
    diag = profile_stage(conv, runs=5, warmup=1)
    return diag, diag.profile


def _profiled(name: str, recipe: str):
    return _profile(fixtures_models.convert_example(name, recipe))


@pytest.fixture(scope="module")
def cnn_int8():
    return _profiled("where_cnn", "int8")


@pytest.mark.parametrize(
    ("name", "recipe"),
    [
        ("where_cnn", "fp32"),
        ("where_cnn", "int8"),
        ("where_cnn", "fp16"),
        ("transformer_block", "int8"),
        ("transformer_block", "fp16"),
        ("sin_cos_lambda", "fp32"),
    ],
)
def test_every_node_timed_once(name, recipe):
    diag, prof = _profiled(name, recipe)
    timed = sorted(i for p in prof.pieces for i in p.nodes)
    assert timed == sorted(n.index for n in diag.observed)
    # one piece per XNNPACK partition, one per CPU node
    assert sum(1 for p in prof.pieces if p.kind == "xnnpack") == diag.summary()["delegate_partitions"]
    assert sum(1 for p in prof.pieces if p.kind == "cpu") == diag.summary()["cpu_nodes"]
    assert all(p.ms > 0 or (p.kind == "xnnpack" and set(p.ops) == {"DEQUANTIZE"}) for p in prof.pieces)
    shares = [p.ms / prof.sum_ms for p in prof.pieces]
    assert sum(shares) == pytest.approx(1.0)
    assert 0.0 <= prof.cpu_share <= 1.0
    assert prof.sum_ratio > 0 and prof.total.median_ms > 0
    cpu_layers = {n.layer for n in diag.observed if not n.delegated}
    assert {c.layer for c in prof.layers} == cpu_layers
    assert sum(c.cpu_ms for c in prof.layers) == pytest.approx(prof.cpu_ms)
    assert [c.cpu_ms for c in prof.layers] == sorted((c.cpu_ms for c in prof.layers), reverse=True)


def test_expensive_fallback_ranks_first():
    """A layer whose CPU ops dominate (a big tf.where) is the first 'fix first' line."""
    import keras
    import tensorflow as tf

    inp = keras.Input((64, 64, 16), name="image")
    x = keras.layers.Conv2D(16, 3, padding="same", name="conv")(inp)
    x = keras.layers.Lambda(lambda t: tf.where(t < 0, 0.1 * t, t * t), name="big_where")(x)
    x = keras.layers.Lambda(lambda t: tf.reduce_mean(t, axis=[1, 2]) > 0.0, name="small_flag")(x)
    out = keras.layers.Lambda(lambda t: tf.cast(t, tf.float32), name="to_float")(x)
    diag, prof = _profile(fixtures_models.convert(keras.Model(inp, out)))
    assert prof.layers[0].layer == "big_where"
    assert set(prof.layers[0].ops) == {"LESS", "SELECT"}
    assert "XNN001" in prof.layers[0].causes


def test_bench_structure():
    conv = fixtures_models.convert_example("where_activation", "fp32")
    res = bench_stage(conv, threads=(1, 2), runs=5, warmup=1)
    assert {(c.xnnpack, c.threads) for c in res.configs} == {(True, 1), (False, 1), (True, 2), (False, 2)}
    for c in res.configs:
        assert c.stats.runs == 5
        assert c.stats.min_ms <= c.stats.p10_ms <= c.stats.median_ms <= c.stats.p90_ms
    assert res.size_bytes == len(conv.content)
    assert res.speedup(1) > 0


def test_bench_rejects_bad_data(tmp_path):
    conv = fixtures_models.convert_example("where_activation", "fp32")
    (spec,) = conv.specs
    np.savez(tmp_path / "short.npz", **{spec.name: np.zeros((1, 3), "float32")})
    with pytest.raises(InputDataError, match="needs"):
        bench_stage(conv, data=str(tmp_path / "short.npz"), runs=1, warmup=0)
    np.savez(tmp_path / "nan.npz", **{spec.name: np.full((1, 10), np.nan, "float32")})
    with pytest.raises(InputDataError, match="NaN"):
        bench_stage(conv, data=str(tmp_path / "nan.npz"), runs=1, warmup=0)


@pytest.mark.parametrize("text", ["0", "-1", "1,0", "two", ""])
def test_thread_counts_must_be_positive(text):
    with pytest.raises(InputDataError):
        parse_threads(text)


def test_model_that_cannot_run_is_a_clear_error(tmp_path):
    import tensorflow as tf

    @tf.function(input_signature=[tf.TensorSpec((1, 4), tf.float32)])
    def f(x):
        return tf.math.tan(x)

    converter = tf.lite.TFLiteConverter.from_concrete_functions([f.get_concrete_function()])
    converter.allow_custom_ops = True
    content = converter.convert()
    specs, _ = ShapeRequest().pin_all(tflite_declared_inputs(read_model(content)))
    with pytest.raises(RuntimeFailure, match="Tan"):
        bench_stage(Artifact("as-given", content, specs), runs=1, warmup=0)
    path = tmp_path / "custom.tflite"
    path.write_bytes(content)
    res = subprocess.run(
        [sys.executable, "-m", "xnnfit", "bench", str(path), "-q"],
        capture_output=True,
        text=True,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
    )
    assert res.returncode == 2
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:") and "Tan" in lines[0]


def _cli(*args):
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    return subprocess.run([sys.executable, "-m", "xnnfit", *args], capture_output=True, text=True, env=env, timeout=600)


@pytest.fixture(scope="module")
def cnn_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("prof") / "cnn.tflite"
    path.write_bytes(fixtures_models.convert_example("where_cnn", "int8").content)
    return path


def test_profile_and_bench_json(cnn_file, tmp_path):
    out = tmp_path / "p.json"
    res = _cli("profile", str(cnn_file), "--runs", "3", "--json", str(out), "-q")
    assert res.returncode == 0, res.stderr
    assert "fix first" in res.stdout
    doc = json.loads(out.read_text())
    (rec,) = doc["recipes"]
    p = rec["profile"]
    assert p["total_ms"] > 0 and p["sum_ratio"] > 0 and 0 <= p["cpu_share"] <= 1
    assert {x["kind"] for x in p["pieces"]} == {"xnnpack", "cpu"}
    assert all(set(x) >= {"kind", "nodes", "ms"} for x in p["pieces"])
    assert [x["cpu_ms"] for x in p["layers"]] == sorted((x["cpu_ms"] for x in p["layers"]), reverse=True)
    out = tmp_path / "b.json"
    res = _cli("bench", str(cnn_file), "--runs", "3", "--warmup", "1", "--threads", "1,2", "--json", str(out), "-q")
    assert res.returncode == 0, res.stderr
    (rec,) = json.loads(out.read_text())["recipes"]
    assert {(c["xnnpack"], c["threads"]) for c in rec["configs"]} == {(True, 1), (False, 1), (True, 2), (False, 2)}
    assert all(set(c) >= {"xnnpack", "threads", "median_ms", "p10_ms", "p90_ms"} for c in rec["configs"])


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--threads", "0"], "--threads"),
        (["--threads", "-1"], "--threads"),
        (["--data", "{npz_shape}"], "needs (samples, 32, 32, 3)"),
        (["--data", "{npz_nan}"], "NaN"),
        (["--data", "{npz_empty}"], "no arrays"),
    ],
)
def test_bench_bad_input_exit_2(cnn_file, tmp_path, args, needle):
    np.savez(tmp_path / "shape.npz", image=np.zeros((2, 16, 16, 3), "float32"))
    np.savez(tmp_path / "nan.npz", image=np.full((2, 32, 32, 3), np.nan, "float32"))
    np.savez(tmp_path / "empty.npz")
    subs = {
        "{npz_shape}": str(tmp_path / "shape.npz"),
        "{npz_nan}": str(tmp_path / "nan.npz"),
        "{npz_empty}": str(tmp_path / "empty.npz"),
    }
    res = _cli("bench", str(cnn_file), "-q", *[subs.get(a, a) for a in args])
    assert res.returncode == 2
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and needle in lines[0], res.stderr


def _lstm():
    import keras

    keras.utils.set_random_seed(0)
    inp = keras.Input((16, 8), name="seq")
    return keras.Model(inp, keras.layers.Dense(4, name="head")(keras.layers.LSTM(16, name="lstm")(inp)))


def test_control_flow_is_timed_with_its_bodies_as_in_the_model():
    from xnnfit.measure.profile import piece_backend

    # the WHILE node itself is never delegated, but its body subgraphs are: the piece runs with XNNPACK like the model
    assert piece_backend("cpu", ["WHILE"]) and piece_backend("xnnpack", ["ADD"])
    assert not piece_backend("cpu", ["DEQUANTIZE"])
    diag, prof = _profile(fixtures_models.convert(_lstm()))
    (loop,) = [p for p in prof.pieces if "WHILE" in p.ops]
    assert loop.kind == "cpu" and loop.stats.runs == 5
    lstm = next(c for c in prof.layers if c.layer == "lstm")
    assert 0 < prof.share(lstm.cpu_ms) <= 1.0 and prof.attributed_ms(lstm.cpu_ms) <= prof.total.median_ms


def test_every_share_is_of_the_whole_model_and_the_report_cuts_with_a_count():
    from rich.console import Console

    from xnnfit.report.terminal import render_profile

    diag, prof = _profiled("where_cnn", "int8")
    assert sum(prof.share(p.ms) for p in prof.pieces) == pytest.approx(1.0)
    assert prof.cpu_share == pytest.approx(sum(prof.share(p.ms) for p in prof.pieces if p.kind == "cpu"))
    assert sum(prof.attributed_ms(p.ms) for p in prof.pieces) == pytest.approx(prof.total.median_ms)
    console = Console(record=True, width=200)
    render_profile(console, prof, top=3)
    text = console.export_text()
    assert "pieces add up" not in text  # the add-up check is JSON and a warning, not the headline
    assert f"+{len(prof.layers) - 3} more (all in --json)" in text and f"+{len(prof.pieces) - 3} more" in text
    assert "% of it on CPU kernels" in text


def test_a_model_without_weights_is_one_clear_line_in_every_command(tmp_path):
    from xnnfit.kb.probes import unfrozen_conv

    path = tmp_path / "unfrozen.tflite"
    path.write_bytes(unfrozen_conv())
    for command in (["bench"], ["profile"], ["fix", "-o", str(tmp_path / "out.tflite")]):
        res = _cli(*command, str(path), "-q")
        assert res.returncode == 2, res.stderr
        lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
        assert len(lines) == 1 and "holds no weights" in lines[0] and "convert_variables_to_constants_v2" in lines[0], (
            res.stderr
        )
    assert _cli("check", str(path), "-q").returncode == 0  # observing it needs no weights


def test_bench_races_several_models_in_one_process(cnn_file, tmp_path):
    fixed = tmp_path / "fixed.tflite"
    assert _cli("fix", str(cnn_file), "-o", str(fixed), "--runs", "5", "--force-write", "-q").returncode == 0
    doc_path = tmp_path / "cmp.json"
    res = _cli("bench", str(cnn_file), str(fixed), "--runs", "5", "--warmup", "1", "--json", str(doc_path), "-q")
    assert res.returncode == 0, res.stderr
    assert "interleaved in one process" in res.stdout and "reference" in res.stdout
    assert ("x faster" in res.stdout) or ("x slower" in res.stdout)
    doc = json.loads(doc_path.read_text())
    assert doc["result"] == "compare" and [e["model"] for e in doc["entries"]] == [str(cnn_file), str(fixed)]
    (ratios,) = doc["speedup_vs_first"].values()
    assert ratios[0] == 1.0 and ratios[1] > 0


def test_a_tensor_declared_with_another_type_than_its_kernel_computes_is_one_clear_error():
    """Found by benchmarks/fuzz.py: an int8 tensor declared int32 in the file.

    SQUARED_DIFFERENCE sets its output's type at prepare time, so the whole model runs;
    the piece reading that tensor takes the declared type and refused the captured
    value with a bare ValueError.
    """
    import dataclasses

    from xnnfit.tflite.writer import parse, serialize

    conv = fixtures_models.convert_example("transformer_block", "int8")
    model = parse(conv.content)
    (tensor,) = [t for t in model.subgraphs[0].tensors if t.name.endswith(b"ln1_1/moments/SquaredDifference")]
    assert tensor.type == 9  # INT8
    tensor.type = 2  # INT32
    damaged = dataclasses.replace(conv, content=serialize(model))
    with pytest.raises(RuntimeFailure) as info:
        profile_stage(damaged, runs=3, warmup=0)
    message = str(info.value)
    assert message.startswith("the LiteRT runtime refused the inputs of a profile piece: ")
    assert "type INT8 but expected type INT32" in message
    assert "declared tensor types or shapes differ from what its kernels compute" in message
    assert "\n" not in message
