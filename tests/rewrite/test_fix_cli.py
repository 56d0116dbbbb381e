"""`xnnfit fix` as a user runs it: output handling, JSON, one-line errors, input untouched."""

from __future__ import annotations

import hashlib
import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

import fixtures_models


def run(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    return subprocess.run(
        [sys.executable, "-m", "xnnfit", "fix", *args, "-q"], capture_output=True, text=True, env=env, timeout=900
    )


@pytest.fixture(scope="module")
def where_tflite(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("fix") / "where.tflite"
    path.write_bytes(fixtures_models.convert_example("where_cnn", "fp32").content)
    return path


def _digest(p: Path) -> str:
    return hashlib.sha256(p.read_bytes()).hexdigest()


def test_fix_writes_a_fully_delegated_model_and_json(where_tflite, tmp_path):
    before = _digest(where_tflite)
    out, doc_path = tmp_path / "fixed.tflite", tmp_path / "fix.json"
    res = run(str(where_tflite), "-o", str(out), "--json", str(doc_path), "--runs", "5")
    assert res.returncode == 0, res.stderr
    assert "applied XR001 ×10" in res.stdout and "CPU nodes 20 -> 0; partitions 21 -> 1" in res.stdout
    doc = json.loads(doc_path.read_text())
    assert doc["applied"] == [{"rule": "XR001", "count": 10, "where": doc["applied"][0]["where"]}]
    rewrite = doc["rewrite"]
    assert rewrite["before"]["cpu_nodes"] == 20 and rewrite["after"] == {
        **rewrite["after"],
        "cpu_nodes": 0,
        "partitions": 1,
    }
    assert rewrite["numerics"]["max_abs_error"] == 0.0 and doc["output"] == str(out) and doc["changed"] is True
    assert doc["schema_version"] == 2 and doc["result"] == "fix" and doc["versions"]["xnnfit"]
    assert _digest(where_tflite) == before
    check = subprocess.run(
        [sys.executable, "-m", "xnnfit", "check", str(out), "--fail-on-fallback", "-q"], capture_output=True, text=True
    )
    assert check.returncode == 0, check.stdout
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp file left


def test_dry_run_writes_nothing(where_tflite, tmp_path):
    out = tmp_path / "never.tflite"
    res = run(str(where_tflite), "-o", str(out), "--dry-run")
    assert res.returncode == 0, res.stderr
    assert "dry run" in res.stdout and not out.exists()
    assert "matches XR001 ×10" in res.stdout and "CPU nodes" not in res.stdout  # nothing measured
    assert "next: xnnfit fix" in res.stdout


@pytest.mark.parametrize(
    ("make_args", "needle"),
    [
        (lambda src, tmp: [str(src), "-o", str(src)], "never overwrites what it reads"),
        (lambda src, tmp: [str(src), "-o", str(tmp / "exists.tflite")], "already exists"),
        (lambda src, tmp: [str(src), "-o", str(tmp / "ro" / "out.tflite")], "not writable"),
        (lambda src, tmp: [str(src), "-o", str(tmp / "missing" / "out.tflite")], "does not exist"),
        (lambda src, tmp: [str(src)], "no output path"),
        (lambda src, tmp: [str(src), "-o", str(tmp / "o.tflite"), "--rules", "XR999"], "unknown rule"),
        (lambda src, tmp: [str(tmp / "garbage.tflite"), "-o", str(tmp / "o.tflite")], "not a TFLite flatbuffer"),
    ],
)
def test_bad_fix_requests_exit_2(where_tflite, tmp_path, make_args, needle):
    (tmp_path / "exists.tflite").write_bytes(b"keep me")
    (tmp_path / "garbage.tflite").write_bytes(os.urandom(512))
    ro = tmp_path / "ro"
    ro.mkdir()
    mounted = os.geteuid() == 0  # root writes into a mode-0500 folder: a read-only bind mount stops it
    if mounted:
        subprocess.run(["mount", "--bind", str(ro), str(ro)], check=True)
        subprocess.run(["mount", "-o", "remount,bind,ro", str(ro)], check=True)
    else:
        ro.chmod(stat.S_IRUSR | stat.S_IXUSR)
    before = _digest(where_tflite)
    try:
        res = run(*make_args(where_tflite, tmp_path))
    finally:
        if mounted:
            subprocess.run(["umount", str(ro)], check=True)
        ro.chmod(stat.S_IRWXU)
    assert res.returncode == 2
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    if needle == "not writable" and mounted:
        needle = "is on a read-only file system"
    assert len(lines) == 1 and needle in lines[0], res.stderr
    assert _digest(where_tflite) == before
    assert (tmp_path / "exists.tflite").read_bytes() == b"keep me"
    assert not list(ro.iterdir())


def test_force_replaces(where_tflite, tmp_path):
    out = tmp_path / "exists.tflite"
    out.write_bytes(b"old")
    res = run(str(where_tflite), "-o", str(out), "--force", "--runs", "5", "--rules", "XR001")
    assert res.returncode == 0, res.stderr
    assert out.read_bytes()[4:8] == b"TFL3"


@pytest.fixture(scope="module")
def clean_tflite(tmp_path_factory) -> Path:
    """A model XNNPACK already runs whole: no rule matches."""
    path = tmp_path_factory.mktemp("fix") / "clean.tflite"
    path.write_bytes(fixtures_models.convert_example("sin_cos_lambda", "fp32").content)
    return path


def test_a_fix_that_keeps_nothing_says_so_and_writes_nothing(clean_tflite, tmp_path):
    out, doc_path = tmp_path / "never.tflite", tmp_path / "fix.json"
    res = run(str(clean_tflite), "-o", str(out), "--json", str(doc_path), "--runs", "5")
    assert res.returncode == 0, res.stderr
    assert "no rewrite kept: no rule matches this model; output not written" in res.stdout
    assert "wrote" not in res.stdout and not out.exists()
    doc = json.loads(doc_path.read_text())
    assert doc["changed"] is False and doc["output"] is None and doc["applied"] == []
    res = run(str(clean_tflite), "-o", str(out), "--force-write", "--runs", "5")
    assert res.returncode == 0 and out.read_bytes() == clean_tflite.read_bytes()
    assert "(--force-write)" in res.stdout
