"""The command line as a user runs it: exit codes, one-line errors, JSON, gates, inputs untouched."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"


def run(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    return subprocess.run(
        [sys.executable, "-m", "xnnfit", *args], capture_output=True, text=True, cwd=cwd, env=env, timeout=600
    )


@pytest.fixture(scope="session")
def files(tmp_path_factory):
    """Model files for the CLI: a .tflite with a tf.where fallback, a Lambda .keras, damaged files."""
    import keras

    from xnnfit.model.convert import convert_model
    from xnnfit.model.recipes import FP32
    from xnnfit.model.source import ModelSource

    d = tmp_path_factory.mktemp("cli")
    model = ModelSource.parse(f"{EXAMPLES}/where_activation.py:build").load()
    (d / "where.tflite").write_bytes(convert_model(model, FP32).content)
    inp = keras.Input((8,))
    lam = keras.Model(inp, keras.layers.Lambda(lambda x: x * 2.0 + 1.0, output_shape=(8,))(keras.layers.Dense(8)(inp)))
    lam.save(d / "lambda.keras")
    plain = keras.Model(inp, keras.layers.Dense(4)(inp))
    plain.save(d / "plain.keras")
    good = (d / "where.tflite").read_bytes()
    (d / "truncated.tflite").write_bytes(good[: len(good) // 2])
    (d / "random.tflite").write_bytes(os.urandom(4096))
    (d / "empty.tflite").write_bytes(b"")
    (d / "renamed.tflite").write_bytes((d / "plain.keras").read_bytes())
    (d / "flex.py").write_text(
        "import keras, tensorflow as tf\n"
        "def build():\n"
        "    inp = keras.Input((8,))\n"
        "    return keras.Model(inp, keras.layers.Lambda(lambda x: tf.math.tan(x), name='tan_layer')(inp))\n"
    )
    return d


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.parametrize(
    ("name", "needle"),
    [
        ("missing.tflite", "no such file"),
        ("empty.tflite", "empty"),
        ("renamed.tflite", ".keras zip"),
        ("truncated.tflite", "truncated"),
        ("random.tflite", "not a TFLite flatbuffer"),
        ("lambda.keras", "--trust-model"),
        ("flex.py:build", "tf.Tan in layer 'tan_layer'"),
        ("flex.py:nothere", "no function 'nothere'"),
    ],
)
def test_bad_input_is_one_line_exit_2_and_untouched(files, name, needle):
    path = files / name.split(":")[0]
    before = _digest(path) if path.exists() else None
    res = run("check", str(files / name), "-q")
    assert res.returncode == 2, res.stderr
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, res.stderr
    assert lines[0].startswith("error:") and needle in lines[0], lines[0]
    assert "Traceback" not in res.stderr + res.stdout
    if before is not None:
        assert _digest(path) == before


def test_trust_model_loads_lambda(files):
    res = run("check", str(files / "lambda.keras"), "--trust-model", "-q")
    assert res.returncode == 0, res.stderr
    assert "all on XNNPACK" in res.stdout


def test_tflite_report_json_and_gates(files, tmp_path):
    out = tmp_path / "r.json"
    res = run("check", str(files / "where.tflite"), "--json", str(out), "-q")
    assert res.returncode == 0, res.stderr
    assert "7 nodes: 5 on XNNPACK (71%), 2 on CPU kernels; 3 partitions (2 on XNNPACK)" in res.stdout
    doc = json.loads(out.read_text())
    assert doc["schema_version"] == 2 and doc["result"] == "check"
    assert {"xnnfit", "ai-edge-litert"} <= set(doc["versions"])
    (rec,) = doc["recipes"]
    assert [(i["name"], i["signature"], i["shape"], i["pins"]) for i in rec["inputs"]] == [
        ("features", [1, 10], [1, 10], [])
    ]
    assert rec["summary"] == {
        "nodes": 7,
        "delegated": 5,
        "cpu_nodes": 2,
        "partitions": 3,
        "delegate_partitions": 2,
        "unexplained": 0,
    }
    cpu = [n for n in rec["nodes"] if not n["delegated"]]
    assert {n["op"] for n in cpu} == {"LESS", "SELECT"}
    assert all(n["causes"] == ["XNN001"] for n in cpu)
    # a bare .tflite maps nodes to TF name scopes
    assert all(n["layer"] and "where_activation" in n["layer"] for n in cpu)
    assert set(rec["nodes"][0]) >= {"subgraph", "index", "op", "delegated", "partition", "layer", "source", "causes"}

    assert run("check", str(files / "where.tflite"), "--fail-on-fallback", "-q").returncode == 1
    assert run("check", str(files / "where.tflite"), "--max-partitions", "3", "-q").returncode == 0
    assert run("check", str(files / "where.tflite"), "--max-partitions", "2", "-q").returncode == 1
    assert run("check", str(files / "where.tflite"), "--min-delegated", "0.7", "-q").returncode == 0
    assert run("check", str(files / "where.tflite"), "--min-delegated", "0.8", "-q").returncode == 1


def test_tflite_check_does_not_import_tensorflow(files):
    code = (
        "import sys, xnnfit; r = xnnfit.check(sys.argv[1]);"
        "assert r.recipes[0].summary()['cpu_nodes'] == 2;"
        "print('tensorflow' in sys.modules)"
    )
    res = subprocess.run(
        [sys.executable, "-c", code, str(files / "where.tflite")], capture_output=True, text=True, timeout=300
    )
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == "False"


def test_usage_errors_exit_2(files):
    assert run("check", str(files / "where.tflite"), "--recipe", "int4").returncode == 2
    assert run("check", str(files / "where.tflite"), "--min-delegated", "1.5").returncode == 2
    assert (
        run("check", str(files / "where.tflite"), str(files / "where.tflite"), "--html", "x.html").returncode == 2
    )  # one model only
    assert run("check", str(files / "nothing-*.tflite")).returncode == 2
    assert run("explain", "XNN999").returncode == 2


def test_explain_prints_entry():
    res = run("explain", "xnn009")
    assert res.returncode == 0
    for part in ("XNN009", "why:", "example:", "use instead:", "UpSampling2D"):
        assert part in res.stdout


def test_recipes_report_separately_and_failures_do_not_hide_others():
    res = run("check", f"{EXAMPLES}/transformer_block.py:build", "-r", "fp32,int16x8", "-q")
    # int16x8 calibration of the int32 token input fails in the converter; fp32 still reports
    assert res.returncode == 2
    assert "transformer_block.py:build · fp32" in res.stdout and "48 nodes" in res.stdout
    assert "· int16x8" in res.stdout and "failed" in res.stdout
    assert res.stderr.strip().startswith("error:") and "int16x8" in res.stderr


def test_converter_segfault_costs_one_recipe(tmp_path):
    """The TF 2.21 calibrator segfaults on full-int8 Keras 3 LSTM: one error line, fp32 still reports."""
    src = tmp_path / "lstm.py"
    src.write_text(
        "import keras\n"
        "def build():\n"
        "    inp = keras.Input((8, 4))\n"
        "    return keras.Model(inp, keras.layers.Dense(2)(keras.layers.LSTM(8)(inp)))\n"
    )
    res = run("check", f"{src}:build", "-r", "fp32,int8", "-q")
    assert res.returncode == 2
    assert "lstm.py:build · fp32" in res.stdout and "WHILE" in res.stdout and "XNN017" in res.stdout
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and "(int8) crashed the child process (signal SIGSEGV)" in lines[0]


def test_calibration_with_recipes_that_do_not_calibrate_is_said_unused(files, tmp_path):
    import numpy as np

    np.savez(tmp_path / "calib.npz", features=np.zeros((4, 10), "float32"))
    res = run("check", str(files / "where.tflite"), "--calibration", str(tmp_path / "calib.npz"), "-q")
    assert res.returncode == 0, res.stderr
    assert "--calibration is not used: a .tflite is measured as given" in res.stdout


def test_advice_fits_the_context_of_each_fallback(tmp_path):
    """The Embedding's index wrap and a tf.where activation both fall back with XNN001, and get different advice."""
    src = tmp_path / "two.py"
    src.write_text(
        "import keras, tensorflow as tf\n"
        "class Act(keras.layers.Layer):\n"
        "    def call(self, x):\n"
        "        return tf.where(x < 0, 0.1 * x, tf.square(x))\n"
        "def build():\n"
        "    ids = keras.Input((8,), dtype='int32', name='ids')\n"
        "    x = keras.layers.Embedding(50, 4, name='embed')(ids)\n"
        "    return keras.Model(ids, Act(name='act')(keras.layers.Dense(4)(x)))\n"
    )
    res = run("check", f"{src}:build", "-q")
    assert res.returncode == 0, res.stderr
    out = " ".join(res.stdout.split())
    assert "XNN001.embedding-index-wrap" in out and "XNN001.where-activation" in out
    assert "next: xnnfit fix" in out


def test_a_warning_shared_by_recipes_is_said_once_and_long_tables_are_cut(tmp_path):
    src = tmp_path / "seq.py"
    src.write_text(
        "import keras, tensorflow as tf\n"
        "def build():\n"
        "    x = keras.Input((None, 4), name='seq')\n"
        "    h = x\n"
        "    for i in range(12):\n"
        "        h = keras.layers.Lambda(lambda t: tf.where(t > 0, t, 0.5 * t), "
        "name=f'act{i}')(keras.layers.Dense(4)(h))\n"
        "    return keras.Model(x, h)\n"
    )
    res = run("check", f"{src}:build", "-r", "fp32,fp16", "-q")
    assert res.returncode == 0, res.stderr
    assert res.stdout.count("has unknown dimension 1") == 1, res.stdout
    assert res.stdout.count("+2 more (--all-nodes)") == 2  # 12 fallback layers, 10 shown per recipe
    res = run("bench", f"{src}:build", "--runs", "3", "--warmup", "0", "-q")
    assert "next: xnnfit check" in res.stdout


def test_the_next_step_repeats_the_options_that_made_the_model():
    res = run("check", str(EXAMPLES / "dynamic_reshape.py") + ":build", "--dynamic-batch", "-q")
    assert res.returncode == 0, res.stderr
    line = next(ln for ln in res.stdout.splitlines() if "next: xnnfit fix" in ln)
    assert "--dynamic-batch" in line and "would take 13 -> 0 CPU nodes" in line


@pytest.mark.parametrize(("option", "value"), [("--data", "inputs.npz"), ("--runs", "7")])
def test_check_refuses_a_timing_option_without_profile(files, tmp_path, option, value):
    (tmp_path / "inputs.npz").write_text("hello")
    res = run("check", str(files / "where.tflite"), option, value, "-q", cwd=tmp_path)
    assert res.returncode == 2
    lines = [line for line in res.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and f"{option} is used only when timing" in lines[0] and "Add --profile" in lines[0], (
        res.stderr
    )


def test_more_threads_than_cores_are_warned_about(files):
    res = run("bench", str(files / "where.tflite"), "--threads", f"1,{(os.cpu_count() or 1) * 8}", "--runs", "3", "-q")
    assert res.returncode == 0, res.stderr
    assert f"is more than this machine's {os.cpu_count()} cores" in res.stderr


def test_an_npz_array_matched_by_position_is_said(files, tmp_path):
    import numpy as np

    np.savez(tmp_path / "d.npz", not_the_input_name=np.zeros((2, 10), np.float32))
    for command in ("bench", "profile"):
        res = run(command, str(files / "where.tflite"), "--data", str(tmp_path / "d.npz"), "--runs", "3", "-q")
        assert res.returncode == 0, res.stderr
        said = " ".join(res.stdout.split())  # long lines wrap at the console width
        assert "array 'not_the_input_name' was fed to input 'features' by position; name it 'features'" in said


@pytest.mark.parametrize("width", [80, 200])
def test_check_help_shows_what_rich_markup_could_eat_and_how_budgets_combine(width):
    from typer.testing import CliRunner

    from xnnfit.cli import app

    result = CliRunner().invoke(app, ["check", "--help"], terminal_width=width, env={"COLUMNS": str(width)})
    text = " ".join(result.output.replace("│", " ").split())
    assert result.exit_code == 0 and "xnnfit[ray]" in text and "(extra xnnfit)" not in text
    assert "the stricter wins" in text and "--output-format" in text and "--sarif-root" in text
    assert "--bench" in text and "--runtime all --junit" in text  # a zoo x runtime matrix is a documented batch
