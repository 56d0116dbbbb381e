"""benchmarks/fuzz.py's smoke run: 30 seeded corruptions of real models through check, fix and profile, no finding.

The seeds are the session's own conversions of the bundled examples (shared with the
other tests), so the run costs only its 30 short subprocesses. The full run is
`python benchmarks/fuzz.py --cases 1000` (its figures are in the closing note of the issue).
"""

from __future__ import annotations

import importlib.util
import sys

import fixtures_models

SEED = 0  # the run is reproducible: case i always gets the same mutation and command
CASES = 30
SEEDS = (("where_activation", "fp32"), ("where_cnn", "fp32"), ("where_cnn", "int8"))


def _fuzz_module():
    path = fixtures_models.REPO_DIR / "benchmarks" / "fuzz.py"
    spec = importlib.util.spec_from_file_location("xnnfit_bench_fuzz", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is made
    spec.loader.exec_module(module)
    return module


def test_thirty_corrupted_models_give_no_traceback_hang_or_modified_input(tmp_path):
    fuzz = _fuzz_module()
    seeds = {f"{name}-{recipe}": fixtures_models.convert_example(name, recipe).content for name, recipe in SEEDS}

    report = fuzz.fuzz(seeds, CASES, SEED, jobs=2, workdir=tmp_path / "work", findings=tmp_path / "findings")

    assert not report.findings, "\n".join(report.lines())
    assert len(report.outcomes) == CASES
    assert {o.command for o in report.outcomes} == set(fuzz.COMMANDS)
    assert {o.mutation.kind for o in report.outcomes} == {kind for kind, _ in fuzz.MUTATIONS}
    codes = {o.exit_code for o in report.outcomes}
    assert 2 in codes and 0 in codes  # broken models are refused in one line, and some corruptions still run


MISBEHAVING = r"""
import os, subprocess, sys, tempfile
open(os.path.join(tempfile.gettempdir(), "left.txt"), "w").write("x")
open(sys.argv[1], "ab").write(b"junk")
open(sys.argv[1] + ".tmp123", "w").write("x")
subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
print("Traceback (most recent call last):", file=sys.stderr)
sys.exit(3)
"""


def test_the_classifier_sees_every_kind_of_finding(tmp_path, monkeypatch):
    """A real process doing everything a command must not: each is a finding, saved with its model and the command."""
    fuzz = _fuzz_module()
    mutation = fuzz.Mutation("flip", "seed", "a test", b"TFL3 bytes")
    monkeypatch.setattr(fuzz, "_argv", lambda command, model, out: [sys.executable, "-c", MISBEHAVING, str(model)])
    bad = fuzz.run_case(0, "check", mutation, tmp_path / "work")
    assert bad.problems == ("processes left running", "traceback", "bad exit code", "modified input", "leftover files")
    assert bad.leftovers == ("$TMPDIR/left.txt", "model.tflite.tmp123")
    folder = fuzz.save_finding(bad, tmp_path / "findings", 0)
    assert (folder / "model.tflite").read_bytes() == b"TFL3 bytes"
    assert "rerun (in this folder): python -c" in (folder / "README.txt").read_text()

    monkeypatch.setattr(
        fuzz, "_argv", lambda command, model, out: [sys.executable, "-c", "import time; time.sleep(60)"]
    )
    assert fuzz.run_case(1, "check", mutation, tmp_path / "work", wall_limit=1).problems == ("hang",)

    two_lines = "import sys; print('error: a', file=sys.stderr); print('b', file=sys.stderr); sys.exit(2)"
    monkeypatch.setattr(fuzz, "_argv", lambda command, model, out: [sys.executable, "-c", two_lines])
    assert fuzz.run_case(2, "check", mutation, tmp_path / "work").problems == ("error not one line",)
