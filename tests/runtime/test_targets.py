"""Runtime targets: parsing --runtime, the child's failure modes, failed venv builds, explanations without a table."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

import fixtures_models
from xnnfit.core.errors import InputDataError, RuntimeFailure
from xnnfit.explain.verdicts import NO_TABLE, node_verdicts
from xnnfit.kb.versions import CPU, DELEGATED, RuntimeKnowledge, knowledge, load
from xnnfit.observe.delegation import observe
from xnnfit.runtime import targets
from xnnfit.tflite.graph import read_model


def test_the_installed_runtime_is_observed_in_process():
    t = targets.parse(f"ai-edge-litert=={targets.installed_version()}")
    assert t.in_process and t == targets.default()
    assert targets.parse_many(None) == (targets.default(),)


@pytest.mark.parametrize(
    "spec", ["tflite-runtime==2.14.0", "ai-edge-litert==1.0.1", "ai_edge_litert==1.4.0", "ai-edge-litert-nightly"]
)
def test_other_runtimes_need_a_venv(spec):
    t = targets.parse(spec)
    assert not t.in_process and t.python is None
    assert t.dist in targets.RUNTIME_DISTS


def test_all_is_the_matrix_and_duplicates_go():
    assert tuple(t.spec for t in targets.parse_many("all")) == targets.MATRIX
    assert len(targets.parse_many("tflite-runtime==2.14.0, tflite-runtime==2.14.0")) == 1


@pytest.mark.parametrize(
    ("spec", "says"),
    [
        ("numpy==2.0", "is not a LiteRT/TFLite runtime wheel"),
        ("ai-edge-litert[extra]==1.0.1", "is not a LiteRT"),
        ("==1.0", "is not a pip requirement"),
    ],
)
def test_a_spec_that_is_not_a_runtime_is_refused_with_what_to_pass(spec, says):
    with pytest.raises(InputDataError, match=says) as info:
        targets.parse(spec)
    assert "--runtime" in str(info.value) and "e.g." in str(info.value)


def _fake_python(tmp_path: Path, body: str) -> str:
    """An executable standing in for a venv's python: the child protocol's failure modes, not a runtime."""
    path = tmp_path / "python"
    path.write_text(f"#!/bin/sh\n{body}\n")
    path.chmod(path.stat().st_mode | stat.S_IEXEC)
    return str(path)


def test_a_runtime_that_crashes_natively_is_one_clear_error(tmp_path):
    target = targets.Target(
        "tflite-runtime==2.14.0", "tflite-runtime", "2.14.0", _fake_python(tmp_path, "kill -SEGV $$")
    )
    with pytest.raises(
        RuntimeFailure, match=r"crashed \(SIGSEGV\) loading the model: that runtime cannot run this model"
    ):
        targets.ops_details(target, b"not read", {})


def test_a_runtime_that_hangs_is_stopped(tmp_path):
    target = targets.Target("tflite-runtime==2.14.0", "tflite-runtime", "2.14.0", _fake_python(tmp_path, "sleep 30"))
    with pytest.raises(RuntimeFailure, match="took more than 1 s"):
        targets.call(target, {"op": "details"}, {}, "loading the model", timeout=1)


def test_a_runtime_that_fails_without_answering_says_its_last_line(tmp_path):
    target = targets.Target(
        "tflite-runtime==2.14.0",
        "tflite-runtime",
        "2.14.0",
        _fake_python(tmp_path, "echo 'ImportError: no tflite_runtime' >&2; exit 1"),
    )
    with pytest.raises(RuntimeFailure, match="ImportError: no tflite_runtime"):
        targets.ops_details(target, b"", {})


def test_a_runtime_that_cannot_be_installed_leaves_nothing_behind(tmp_path):
    with pytest.raises(
        RuntimeFailure, match=r"pip could not install ai-edge-litert==0\.0\.1 .*Check that the wheel exists"
    ):
        targets.ensure(targets.parse("ai-edge-litert==0.0.1"), root=tmp_path)
    left = [p.name for p in (tmp_path / "runtimes").iterdir()]
    assert left == [targets.LOCK]


def test_a_variant_the_table_lacks_is_looked_up_as_its_op():
    k = RuntimeKnowledge("x", {}, {"GELU/fp32": CPU, "MEAN/fp32": DELEGATED, "MEAN:inner-axis/fp32": CPU})
    assert k.refuses("GELU:approximate", "fp32") and k.refuses("MEAN:inner-axis", "fp32")
    assert not k.refuses("MEAN", "fp32") and not k.refuses("GELU", "int8")


def test_the_table_covers_every_runtime_of_the_matrix_and_every_cause():
    from xnnfit import kb

    table = load()
    assert set(table["runtimes"]) == set(targets.MATRIX)
    for spec in targets.MATRIX:
        assert set(knowledge(spec).causes) == set(kb.CAUSES), spec


def test_a_runtime_without_a_table_explains_nothing(tmp_path):
    content = fixtures_models.convert_example("where_activation", "fp32").content
    graph = read_model(content)
    observed = observe(content, graph)
    ours = node_verdicts(graph, observed, {})
    theirs = node_verdicts(graph, observed, {}, NO_TABLE)
    assert any(n.causes for n in ours), "the example should have explained CPU nodes on the installed runtime"
    assert all(not n.causes for n in theirs) and sum(n.unexplained for n in theirs) == sum(
        n.delegated is False for n in ours
    )


def test_xnn050_is_never_given_on_the_installed_runtime():
    content = fixtures_models.convert_example("where_cnn", "int8").content
    graph = read_model(content)
    assert not any("XNN050" in n.causes for n in node_verdicts(graph, observe(content, graph), {}))


def test_a_killed_stage_takes_its_runtime_child_and_files_with_it(tmp_path):
    import subprocess
    import time

    import isolate_targets
    from xnnfit.core.errors import IsolationError
    from xnnfit.core.isolate import run_isolated

    pid_file = tmp_path / "pid"
    python = _fake_python(tmp_path, f'echo $$ > {pid_file}; echo "$2" > {tmp_path / "request"}; exec sleep 60')
    with pytest.raises(IsolationError, match="did not finish within 3 s"):
        run_isolated(isolate_targets.observe_on, python, what="checking on a hanging runtime", timeout=3)
    pid = int(pid_file.read_text())
    for _ in range(50):  # the kernel delivers the parent-death signal as the stage child dies
        if subprocess.run(["kill", "-0", str(pid)], capture_output=True).returncode:
            break
        time.sleep(0.1)
    else:
        pytest.fail(f"the runtime child {pid} outlived the stage that started it")
    request_dir = Path((tmp_path / "request").read_text().strip()).parent
    assert not request_dir.exists(), f"{request_dir} was left behind"


def test_explain_says_on_which_runtimes_a_cause_holds():
    from xnnfit import api

    doc = api.explain("XNN035").causes[0]
    assert (
        dict(doc.runtimes)["tflite-runtime==2.14.0"] == "differs"
        and dict(doc.runtimes)["ai-edge-litert==1.0.1"] == "holds"
    )
    assert dict(api.explain("XNN051").causes[0].runtimes)["tflite-runtime==2.14.0"] == "applies"
