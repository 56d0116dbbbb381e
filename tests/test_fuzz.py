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
    assert all(len(o.stderr.strip().splitlines()) <= 1 for o in report.outcomes if o.exit_code == 2)
