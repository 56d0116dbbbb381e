"""docs/ci.md's GitHub Actions workflow, parsed and replayed: its wiring checked, its command run on its zoo.

The replay is what GitHub would run, step by step, on a local copy of the documented
layout: a pull request before any baseline, `main` writing the baseline, then a pull
request with a regressed builder, a renamed, an added and a removed model, and a file
overwritten with another zoo model's bytes. Exit codes, the annotations, JUnit, JSON,
SARIF and Markdown must all report the same changes.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

import fixtures_models
from xnnfit.kb.oneop import one_op_model

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "ci.md"
ACTIONS = {  # every action the workflow may use, at the major version it is documented with
    "actions/checkout@v4",
    "actions/setup-python@v5",
    "actions/cache@v4",
    "actions/upload-artifact@v4",
    "dawidd6/action-download-artifact@v6",
    "github/codeql-action/upload-sarif@v3",
}
SECOND_WHERE = """    x = WhereActivation(name="where_activation")(x)
    x = WhereActivation(name="where_again")(x)
"""


def _block(lang: str, after: str) -> str:
    text = DOC.read_text(encoding="utf-8")
    start = text.index(after)
    return re.search(rf"```{lang}\n(.*?)```", text[start:], re.S).group(1)


@pytest.fixture(scope="module")
def workflow() -> dict:
    return yaml.safe_load(_block("yaml", "## GitHub Actions"))


def _steps(workflow: dict) -> list[dict]:
    (job,) = workflow["jobs"].values()
    return job["steps"]


def _check_step(workflow: dict) -> tuple[int, dict]:
    return next((k, s) for k, s in enumerate(_steps(workflow)) if "xnnfit check" in s.get("run", ""))


def _flag(script: str, flag: str) -> str:
    return re.search(rf"{flag} (\S+)", script).group(1)


def test_the_workflow_is_wired_as_its_text_says(workflow):
    triggers = workflow.get("on", workflow.get(True))  # YAML 1.1 reads a bare `on` as True
    assert "pull_request" in triggers and triggers["push"]["branches"] == ["main"]
    assert workflow["permissions"] == {
        "contents": "read",
        "actions": "read",
        "security-events": "write",
        "pull-requests": "write",
    }
    steps = _steps(workflow)
    assert {s["uses"] for s in steps if "uses" in s} <= ACTIONS
    k, check = _check_step(workflow)
    script = check["run"]
    assert all("always()" in s.get("if", "") for s in steps[k + 1 :])  # a failing gate still reports
    download = next(s for s in steps if s.get("uses", "").startswith("dawidd6/"))
    upload = next(
        s for s in steps if s.get("with", {}).get("name") == download["with"]["name"] and "upload" in s["uses"]
    )
    assert "pull_request" in download["if"] and "push" in upload["if"]  # made on main, consumed by pull requests
    assert download["with"]["workflow_conclusion"] == "completed" and download["with"]["branch"] == "main"
    made = _flag(script, "--write-baseline")
    assert upload["with"]["path"] == made
    consumed = f"{download['with']['path']}/{Path(made).name}"
    assert f"[ -f {consumed} ]" in script and f"--baseline {consumed}" in script
    outputs = {_flag(script, f) for f in ("--json", "--junit", "--sarif", "--markdown")}
    sarif = next(s for s in steps if s.get("uses", "").startswith("github/codeql-action/upload-sarif"))
    assert sarif["with"]["sarif_file"] in outputs and "head.repo.full_name == github.repository" in sarif["if"]
    comment = next(s for s in steps if "issues/comments" in s.get("run", ""))
    assert "github.event_name == 'pull_request'" in comment["if"] and "head.repo.full_name" in comment["if"]
    assert "-X PATCH" in comment["run"] and "<!-- xnnfit -->" in comment["run"]  # found and edited, not added again
    assert "--markdown xnnfit.md" in script and "cat xnnfit.md" in comment["run"]
    caches = {s["with"]["path"]: s["with"]["key"] for s in steps if s.get("uses", "").startswith("actions/cache")}
    assert "hashFiles('zoo.toml', 'models/**')" in caches[".xnnfit-cache/results"]
    assert all("steps.xnnfit.outputs.version" in key for key in caches.values()) and ".xnnfit-cache/runtimes" in caches
    assert "--cache-dir .xnnfit-cache" in script and "--output-format github" in script


def _layout(folder: Path, encoder: str) -> None:
    """The documented zoo: the manifest from docs/ci.md, its models, and more models in the folder."""
    for sub in ("vision", "audio", "text"):
        (folder / "models" / sub).mkdir(parents=True, exist_ok=True)
    vision = folder / "models" / "vision"
    (vision / "classifier.tflite").write_bytes(one_op_model("CONV_2D"))
    (vision / "detector.tflite").write_bytes(one_op_model("ADD"))
    (vision / "expand.tflite").write_bytes(one_op_model("EXPAND_DIMS"))  # one CPU node (XNN015)
    (vision / "old_name.tflite").write_bytes(one_op_model("SOFTMAX"))
    (vision / "legacy.tflite").write_bytes(one_op_model("MUL"))
    (folder / "models" / "text" / "encoder.py").write_text(encoder)
    (folder / "zoo.toml").write_text(_block("toml", "## The zoo and its manifest"))


def _run(script: str, folder: Path, bin_dir: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}", "TF_CPP_MIN_LOG_LEVEL": "3"}
    env["PYTHONPATH"] = os.pathsep.join(sys.path)  # the shim's python finds this checkout's xnnfit
    return subprocess.run(
        ["bash", "-eo", "pipefail", "-c", script], cwd=folder, env=env, capture_output=True, text=True
    )


@pytest.fixture(scope="module")
def replay(workflow, tmp_path_factory):
    """The check step's script on each event in turn, each in a fresh checkout with the restored cache."""
    base = tmp_path_factory.mktemp("ci")
    bin_dir = base / "bin"
    bin_dir.mkdir()
    (bin_dir / "xnnfit").write_text(f'#!/bin/sh\nexec {sys.executable} -m xnnfit "$@"\n')
    (bin_dir / "xnnfit").chmod(0o755)
    script = _check_step(workflow)[1]["run"]
    encoder = (ROOT / "examples" / "where_activation.py").read_text()
    audio = fixtures_models.dynamic_audio_tflite()
    cache = base / "cache"
    artifacts: dict[str, Path] = {}
    runs = {}

    def checkout(name: str, encoder_text: str) -> Path:
        folder = base / name
        _layout(folder, encoder_text)
        (folder / "models" / "audio" / "frontend.tflite").write_bytes(audio)
        if cache.exists():
            shutil.copytree(cache, folder / ".xnnfit-cache")  # actions/cache restores what the last run saved
        return folder

    def finish(name: str, folder: Path, res: subprocess.CompletedProcess) -> None:
        if (folder / ".xnnfit-cache").exists():
            shutil.rmtree(cache, ignore_errors=True)
            shutil.copytree(folder / ".xnnfit-cache", cache)
        runs[name] = (folder, res)

    folder = checkout("first-pr", encoder)  # no main run yet: no baseline to download
    finish("first-pr", folder, _run(script, folder, bin_dir))
    folder = checkout("main", encoder)
    finish("main", folder, _run(script, folder, bin_dir))
    artifacts["xnnfit-baseline"] = folder / "baseline.json"  # the upload step's artifact
    folder = checkout("pr", encoder.replace('    x = WhereActivation(name="where_activation")(x)\n', SECOND_WHERE))
    vision = folder / "models" / "vision"
    (vision / "old_name.tflite").rename(vision / "new_name.tflite")
    (vision / "legacy.tflite").unlink()
    (vision / "added.tflite").write_bytes(one_op_model("SUB"))
    (vision / "detector.tflite").write_bytes((vision / "expand.tflite").read_bytes())  # another zoo model's bytes
    (folder / "baseline").mkdir()
    shutil.copy(artifacts["xnnfit-baseline"], folder / "baseline" / "baseline.json")  # the download step
    finish("pr", folder, _run(script, folder, bin_dir))
    return runs


def test_the_documented_workflow_replayed(replay):
    """One test over one replay (the fixture is the cost): first PR and main pass, the next PR reports every change."""
    _a_pull_request_before_any_baseline_and_main_pass(replay)
    _a_pull_request_reports_every_change_in_every_output(replay)


def _a_pull_request_before_any_baseline_and_main_pass(replay):
    for name in ("first-pr", "main"):
        folder, res = replay[name]
        assert res.returncode == 0, res.stdout + res.stderr
        doc = json.loads((folder / "xnnfit.json").read_text())
        assert doc["baseline"] is None and doc["outcome"] == "pass"
        rows = {(r["model"], r["recipe"]) for r in doc["rows"]}
        assert len(rows) == len(doc["rows"]) == 8  # the manifest's models once each, however the folder holds them
        assert ("models/text/encoder.py:build", "dynamic-int8") in rows
    assert (replay["main"][0] / "baseline.json").exists()


def _a_pull_request_reports_every_change_in_every_output(replay):
    folder, res = replay["pr"]
    assert res.returncode == 1, res.stdout + res.stderr
    doc = json.loads((folder / "xnnfit.json").read_text())
    diff = doc["baseline"]
    regressed = {c["model"] for c in diff["regressions"]}
    assert regressed == {"models/text/encoder.py:build", "models/vision/detector.tflite"}
    assert any(c["what"] == "CPU nodes 0 -> 1" for c in diff["regressions"])  # the swap, compared by its path
    assert [(c["model"], c["was"]) for c in diff["renamed"]] == [
        ("models/vision/new_name.tflite", "models/vision/old_name.tflite")
    ]
    assert [c["model"] for c in diff["added"]] == ["models/vision/added.tflite"]
    assert [c["model"] for c in diff["removed"]] == ["models/vision/legacy.tflite"]
    assert {r["model"] for r in doc["rows"] if r["status"] == "regression"} == regressed and doc["outcome"] == "fail"

    from junitparser import Failure, JUnitXml

    suite = next(iter(JUnitXml.fromfile(str(folder / "xnnfit.xml"))))
    failed = {
        case.classname for case in suite for r in case.result if isinstance(r, Failure) and r.type == "regression"
    }
    assert failed == {"models.text.encoder_py.build", "models.vision.detector_tflite"}
    assert suite.failures == sum(r["status"] == "regression" for r in doc["rows"])
    props = {p.name: p.value for p in suite.properties()}
    assert {k: props[f"baseline.{k}"] for k in ("added", "removed", "renamed")} == {
        "added": "1",
        "removed": "1",
        "renamed": "1",
    }
    sarif = json.loads((folder / "xnnfit.sarif").read_text())["runs"][0]
    sarif_regressed = {r["properties"]["model"] for r in sarif["results"] if r["ruleId"] == "xnnfit/regression"}
    assert sarif_regressed == regressed and sarif["properties"]["baseline"] == diff
    md = (folder / "xnnfit.md").read_text()
    for kind, model in [
        ("regression", "models/vision/detector.tflite"),
        ("regression", "models/text/encoder.py:build"),
        ("renamed", "models/vision/new_name.tflite"),
        ("added", "models/vision/added.tflite"),
        ("removed", "models/vision/legacy.tflite"),
    ]:
        assert f"- {kind}: {model}" in md
    annotations = res.stdout.splitlines()
    errors = [a for a in annotations if a.startswith("::error ") and "title=xnnfit regressed" in a]
    assert len(errors) == sum(r["status"] == "regression" for r in doc["rows"]) == 3
    assert {re.search(r"file=([^,]+)", a).group(1) for a in errors} == {
        "models/text/encoder.py",  # both recipes of the builder, at its def line
        "models/vision/detector.tflite",
    }
    notices = [a for a in annotations if a.startswith("::notice title=xnnfit baseline::")]
    assert len(notices) == len(diff["improvements"]) + 3  # renamed, added, removed
    warnings = [a for a in annotations if a.startswith("::warning file=models/text/encoder.py,line=")]
    assert not any("XNN001" in a for a in warnings)  # the manifest accepts it: no annotation, no SARIF result
