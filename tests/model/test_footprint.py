"""Memory bounds: a model too large to run here is refused in seconds, before anything is allocated.

Checked for every command that runs a model.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from xnnfit.core.errors import InputDataError
from xnnfit.model import footprint
from xnnfit.model.specs import ShapeRequest, tflite_declared_inputs
from xnnfit.tflite.build import add_tensor, make_op, new_model, new_subgraph
from xnnfit.tflite.graph import read_model
from xnnfit.tflite.writer import serialize

ROOT = Path(__file__).resolve().parents[2]
HUGE = (1, 20000, 20000, 3)


def _image_model(shape: tuple[int, ...], dynamic: bool = False) -> bytes:
    """A real .tflite: image -> RELU -> MUL by 2, at `shape` (its spatial dims dynamic when asked)."""
    model = new_model("xnnfit test: big image")
    sub = new_subgraph(model, "main")
    declared = tuple(-1 if dynamic and i in (1, 2) else d for i, d in enumerate(shape))
    x = add_tensor(model, sub, declared, "float32", "image")
    r = add_tensor(model, sub, declared, "float32", "relu")
    two = add_tensor(model, sub, (1,), "float32", "two", data=np.array([2.0], np.float32))
    y = add_tensor(model, sub, declared, "float32", "y")
    sub.inputs, sub.outputs = [x], [y]
    sub.operators += [make_op(model, "RELU", [x], [r]), make_op(model, "MUL", [r, two], [y])]
    return serialize(model)


def _specs(content: bytes, request: ShapeRequest = ShapeRequest()):
    graph = read_model(content)
    return graph.primary, request.pin_all(tflite_declared_inputs(graph))[0]


def test_the_estimate_is_the_largest_op_and_the_inputs():
    sub, specs = _specs(_image_model((1, 100, 100, 3)))
    found = footprint.estimate(sub, specs)
    one = 100 * 100 * 3 * 4
    assert found.inputs == one
    assert found.arena == 2 * one  # RELU and MUL each read one tensor and write one; the constant is not counted
    assert found.total == 3 * one
    assert found.largest_input == "image float32 [1, 100, 100, 3]"


def test_the_estimate_follows_the_pinned_shapes_of_a_dynamic_input():
    content = _image_model((1, 8, 8, 3), dynamic=True)
    sub, specs = _specs(content, ShapeRequest(input_shapes={"image": (1, 512, 512, 3)}))
    assert footprint.estimate(sub, specs).inputs == 512 * 512 * 3 * 4
    assert footprint.estimate(sub, specs).resizable


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("8G", 8 * 10**9),
        ("512M", 512 * 10**6),
        ("1.5GB", 15 * 10**8),
        ("1000", 1000),
        ("2GiB", 2 * 2**30),
        ("64 MiB", 64 * 2**20),
    ],
)
def test_sizes(text, value):
    assert footprint.parse_size(text) == value


def test_a_bad_size_is_one_line():
    with pytest.raises(InputDataError, match="--max-memory 'lots' is not a size"):
        footprint.parse_size("lots")


def test_the_limit_is_a_share_of_what_is_available_unless_given(monkeypatch):
    monkeypatch.delenv(footprint.MEMORY_ENV, raising=False)
    cap, source = footprint.limit()
    assert 0 < cap <= footprint.available() and "available" in source
    monkeypatch.setenv(footprint.MEMORY_ENV, "1G")
    assert footprint.limit() == (10**9, "--max-memory")


def test_over_the_limit_names_the_input_its_shape_and_the_way_out(monkeypatch):
    monkeypatch.setenv(footprint.MEMORY_ENV, "1M")
    sub, specs = _specs(_image_model((1, 300, 300, 3)))
    with pytest.raises(InputDataError) as info:
        footprint.refuse_if_too_large(sub, specs, "m.tflite")
    text = str(info.value)
    assert (
        "image float32 [1, 300, 300, 3]" in text
        and "export the model at a smaller input shape" in text
        and "--max-memory" in text
    )
    sub, specs = _specs(
        _image_model((1, 300, 300, 3), dynamic=True), ShapeRequest(input_shapes={"image": (1, 300, 300, 3)})
    )
    with pytest.raises(InputDataError, match=r"--input-shape image="):
        footprint.refuse_if_too_large(sub, specs, "m.tflite")


@pytest.fixture(scope="module")
def huge(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("huge") / "huge.tflite"
    path.write_bytes(_image_model(HUGE))
    return path


def _run(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    env.pop(footprint.MEMORY_ENV, None)
    return subprocess.run(
        [sys.executable, "-m", "xnnfit", *args], capture_output=True, text=True, env=env, cwd=cwd, timeout=120
    )


@pytest.mark.parametrize(
    "command",
    [
        ["bench"],
        ["profile"],
        ["fix", "-o", "out.tflite"],
        ["optimize", "-o", "out.tflite"],
        ["check"],
        ["bench", "--max-memory", "1G"],
    ],
    ids=" ".join,
)
def test_a_20000_pixel_image_is_refused_by_every_command_that_runs_it(huge, command):
    started = time.monotonic()
    res = _run(command[0], str(huge), *command[1:], "-q", cwd=huge.parent)
    assert res.returncode == 2, res.stdout + res.stderr
    lines = [line for line in res.stderr.splitlines() if line.strip()]
    assert (
        len(lines) == 1
        and "needs at least 14.4 GB to run" in lines[0]
        and "input image float32 [1, 20000, 20000, 3]" in lines[0]
    ), lines
    assert time.monotonic() - started < 60  # refused from the flatbuffer: nothing was allocated, nothing grew
    assert not (huge.parent / "out.tflite").exists()


def test_check_predict_runs_nothing_and_is_not_refused(huge):
    res = _run("check", str(huge), "--predict", "-q", cwd=huge.parent)
    assert res.returncode == 0 and "predicted" in res.stdout, res.stderr


def test_max_memory_lets_a_large_model_run(tmp_path):
    path = tmp_path / "m.tflite"
    path.write_bytes(_image_model((1, 256, 256, 3)))  # ~2.4 MB of tensors
    small = _run("bench", str(path), "--runs", "3", "--max-memory", "1M", "-q", cwd=tmp_path)
    assert small.returncode == 2 and "over the limit of 1.00 MB (--max-memory)" in small.stderr
    enough = _run("bench", str(path), "--runs", "3", "--max-memory", "64M", "-q", cwd=tmp_path)
    assert enough.returncode == 0, enough.stderr


def test_random_calibration_data_for_a_huge_keras_input_is_refused_before_it_is_made(tmp_path):
    (tmp_path / "big.py").write_text(
        "import keras\n"
        "def build():\n"
        "    inp = keras.Input((8000, 8000, 3))\n"
        "    return keras.Model(inp, keras.layers.ReLU()(inp))\n"
    )
    res = _run("check", "big.py:build", "--recipe", "int8", "-q", cwd=tmp_path)
    assert res.returncode == 2, res.stderr
    assert "of sample data (8 samples of input" in res.stderr or "needs at least" in res.stderr, res.stderr


def test_a_huge_intermediate_shape_is_blamed_on_the_file_not_the_input(monkeypatch):
    """A damaged file declaring [2**30, 2**30, 2] for an inner tensor: the message names it and says to re-export."""
    from xnnfit.tflite.writer import parse
    from xnnfit.tflite.writer import serialize as write

    model = parse(_image_model((1, 8, 8, 3)))
    model.subgraphs[0].tensors[1].shape = [2**30, 2**30, 2]  # the RELU's output
    sub, specs = _specs(write(model))
    monkeypatch.delenv(footprint.MEMORY_ENV, raising=False)
    with pytest.raises(InputDataError) as info:
        footprint.refuse_if_too_large(sub, specs, "m.tflite")
    text = str(info.value)
    assert "declares tensor relu float32 [1073741824, 1073741824, 2], written by node 0 RELU" in text
    assert (
        "re-export the model" in text and "--input-shape" not in text and "input image float32 [1, 8, 8, 3]" not in text
    )


def test_sizes_too_large_for_a_float_are_printed():
    from xnnfit.core import fmt

    assert fmt.size(10**400) == "1.00E+400 B"
