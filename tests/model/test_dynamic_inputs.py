"""A .tflite with dynamic inputs ([-1, -1], like melspectrogram.tflite): every command takes --input-shape."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

import fixtures_models

PIN = ("--input-shape", "audio=1,1600")


def run(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    return subprocess.run(
        [sys.executable, "-m", "xnnfit", *args, "-q"], capture_output=True, text=True, env=env, timeout=600
    )


@pytest.fixture(scope="module")
def audio(tmp_path_factory):
    path = tmp_path_factory.mktemp("dyn") / "audio.tflite"
    path.write_bytes(fixtures_models.dynamic_audio_tflite())
    return path


def test_check_reports_at_the_pinned_shape(audio, tmp_path):
    doc_path = tmp_path / "c.json"
    res = run("check", str(audio), *PIN, "--json", str(doc_path))
    assert res.returncode == 0, res.stderr
    assert "input audio float32 [-1, -1] -> [1, 1600] (axis 0 --input-shape, axis 1 --input-shape)" in res.stdout
    (rec,) = json.loads(doc_path.read_text())["recipes"]
    (spec,) = rec["inputs"]
    assert spec["signature"] == [-1, -1] and spec["shape"] == [1, 1600]
    assert {n["op"] for n in rec["nodes"] if not n["delegated"]} >= {"SHAPE", "PACK", "EXPAND_DIMS"}


@pytest.mark.parametrize("command", ["profile", "bench"])
def test_running_at_the_default_pin_fails_with_what_to_pass(audio, command):
    res = run(command, str(audio))
    assert res.returncode == 2
    line = next(ln for ln in res.stderr.splitlines() if ln.startswith("error:"))
    assert "pinned: audio float32 [-1, -1] -> [1, 64]" in line and "--input-shape audio=1,N" in line
    assert "TFLite builtin" not in line  # not the old, wrong hint


def test_profile_and_bench_run_at_the_pinned_shape(audio, tmp_path):
    res = run("profile", str(audio), *PIN, "--runs", "3", "--json", str(tmp_path / "p.json"))
    assert res.returncode == 0, res.stderr
    (rec,) = json.loads((tmp_path / "p.json").read_text())["recipes"]
    assert rec["inputs"][0]["shape"] == [1, 1600] and rec["profile"]["pieces"]
    res = run("bench", str(audio), *PIN, "--runs", "3", "--warmup", "1")
    assert res.returncode == 0, res.stderr
    assert "XNNPACK is" in res.stdout


def test_fix_folds_the_plumbing_at_the_pinned_shape(audio, tmp_path):
    out = tmp_path / "fixed.tflite"
    res = run("fix", str(audio), *PIN, "-o", str(out), "--runs", "5")
    assert res.returncode == 0, res.stderr
    assert "applied XR002" in res.stdout
    res = run("check", str(out), "--fail-on-fallback")
    assert res.returncode == 0, res.stdout + res.stderr
    assert "input audio float32 [1, 1600]" in res.stdout
