"""`--html/--trace/--model-explorer` and `xnnfit report` as a user runs them.

Files written, JSON rendered later, clear errors.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def run(*args: str, env_extra: dict | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", **(env_extra or {})}
    return subprocess.run(
        [sys.executable, "-m", "xnnfit", *args], capture_output=True, text=True, cwd=ROOT, env=env, timeout=600
    )


def test_profile_writes_all_three_and_report_renders_the_json_later(tmp_path):
    model = str(ROOT / "examples" / "where_activation.py") + ":build"
    r = run(
        "profile",
        model,
        "--runs",
        "5",
        "-q",
        "--json",
        str(tmp_path / "p.json"),
        "--html",
        str(tmp_path / "p.html"),
        "--trace",
        str(tmp_path / "t.json"),
        "--model-explorer",
        str(tmp_path / "me.json"),
    )
    assert r.returncode == 0, r.stderr
    for name in ("p.json", "p.html", "t.json", "me.json"):
        assert (tmp_path / name).stat().st_size > 100, name
    assert json.loads((tmp_path / "t.json").read_text())["traceEvents"]
    r = run(
        "report",
        str(tmp_path / "p.json"),
        "--html",
        str(tmp_path / "again.html"),
        "--trace",
        str(tmp_path / "again.json"),
    )
    assert r.returncode == 0, r.stderr
    strip = lambda s: s.split('<script type="application/json"')[0]  # noqa: E731 - the data block holds the same result
    assert strip((tmp_path / "again.html").read_text()) == strip((tmp_path / "p.html").read_text())
    assert json.loads((tmp_path / "again.json").read_text()) == json.loads((tmp_path / "t.json").read_text())


def test_report_errors_are_one_line_with_what_to_do(tmp_path):
    r = run("report", str(tmp_path / "missing.json"), "--html", str(tmp_path / "x.html"))
    assert r.returncode == 2 and "no such file" in r.stderr and "Traceback" not in r.stderr
    (tmp_path / "other.json").write_text(json.dumps({"hello": 1}))
    r = run("report", str(tmp_path / "other.json"), "--html", str(tmp_path / "x.html"))
    assert r.returncode == 2 and "not an xnnfit result" in r.stderr
    r = run("report", str(tmp_path / "other.json"))
    assert r.returncode == 2 and "--html FILE" in r.stderr
    assert not (tmp_path / "x.html").exists()


def test_html_takes_one_model(tmp_path):
    a = str(ROOT / "examples" / "where_activation.py") + ":build"
    r = run("check", a, a, "--html", str(tmp_path / "x.html"))
    assert r.returncode == 2 and "--html takes one model" in r.stderr


def test_explore_without_the_extra_says_how_to_install_it(tmp_path):
    blocker = tmp_path / "block"
    blocker.mkdir()
    (blocker / "model_explorer.py").write_text("raise ImportError('blocked for this test')\n")
    model = str(ROOT / "examples" / "where_activation.py") + ":build"
    r = run(
        "explore",
        model,
        "--no-open",
        env_extra={"PYTHONPATH": f"{blocker}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"},
    )
    assert r.returncode == 2 and "pip install 'xnnfit[explorer]'" in r.stderr, r.stderr
