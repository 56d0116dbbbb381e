"""The import rules of docs/architecture.md hold, and the linter that enforces them can fail."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LINT = Path(sys.executable).with_name("lint-imports")


def lint(src: Path, config: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(src)}
    return subprocess.run(
        [str(LINT), "--config", str(config), "--no-cache"],
        capture_output=True,
        text=True,
        env=env,
        cwd=config.parent,
        timeout=300,
    )


def test_contracts_hold_on_the_package():
    res = lint(ROOT / "src", ROOT / "pyproject.toml")
    assert res.returncode == 0, res.stdout[-3000:]
    assert "3 kept, 0 broken" in res.stdout


@pytest.mark.parametrize(
    ("module", "line", "broken"),
    [
        ("rewrite/rules/xr002_fold_shapes.py", "from xnnfit.measure.bench import BenchRun", "Rewrites never measure"),
        ("runtime/interpreter.py", "from xnnfit.explain.diagnosis import Diagnosis", "Stages"),
        ("kb/cause.py", "from xnnfit.observe.mapping import NodeMapping", "Stages"),
        ("model/recipes.py", "from xnnfit.runtime.interpreter import outputs", "Stages"),
        ("core/files.py", "from xnnfit.tflite.graph import read_model", "Stages"),
    ],
)
def test_a_wrong_import_breaks_a_contract(tmp_path, module, line, broken):
    copy = tmp_path / "src"
    shutil.copytree(ROOT / "src" / "xnnfit", copy / "xnnfit", ignore=shutil.ignore_patterns("__pycache__"))
    target = copy / "xnnfit" / module
    target.write_text(target.read_text() + f"\n{line}  # injected by the test\n")
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    res = lint(copy, tmp_path / "pyproject.toml")
    assert res.returncode != 0, res.stdout[-3000:]
    assert f"{broken}" in res.stdout and "BROKEN" in res.stdout
