"""--runtime on real older runtimes: each installed into its own venv (cached under .cache/) and observed in a child.

The KB's prediction with a runtime's probe table must equal what that runtime does, node
by node, on every example x recipe and a keras-hub BERT; models a runtime cannot load
are reported as such, naming the op and version.
"""

from __future__ import annotations

import functools
import json

import pytest
from typer.testing import CliRunner

import fixtures_models
from xnnfit import api
from xnnfit.cli import app
from xnnfit.core.errors import RuntimeFailure
from xnnfit.explain.diagnosis import diagnose
from xnnfit.kb.versions import knowledge
from xnnfit.model.artifact import Artifact
from xnnfit.model.specs import ShapeRequest, tflite_declared_inputs
from xnnfit.observe.delegation import observe
from xnnfit.observe.prediction import is_load_failure, predict
from xnnfit.runtime import targets
from xnnfit.tflite.graph import read_model

pytestmark = pytest.mark.slow

OLD = "tflite-runtime==2.14.0"
CHILD_RUNTIMES = targets.MATRIX[:3]  # the ones observed in a child (the last is the installed runtime)
RECIPES = ("fp32", "int8", "dynamic-int8")


@functools.cache
def target(spec: str) -> targets.Target:
    return targets.ensure(targets.parse(spec))


@functools.cache
def bert_content() -> bytes:
    keras_hub = pytest.importorskip("keras_hub")
    model = keras_hub.models.BertBackbone(
        vocabulary_size=1000, num_layers=2, hidden_dim=64, intermediate_dim=128, num_heads=2, max_sequence_length=32
    )
    return fixtures_models.convert(model).content


def _artifact(content: bytes) -> Artifact:
    specs, _ = ShapeRequest().pin_all(tflite_declared_inputs(read_model(content)))
    return Artifact("as-given", content, specs)


@functools.cache
def _content(name: str, recipe: str) -> bytes:
    if name == "bert":
        return bert_content()
    if recipe.endswith(
        "+dynamic-batch"
    ):  # dynamic tensors: what 2.14 treats differently (XNN051, a RESHAPE XNN020 refuses elsewhere)
        return fixtures_models.convert(
            fixtures_models.load_example(name).build(), recipe.split("+")[0], dynamic_batch=True
        ).content
    return fixtures_models.convert_example(name, recipe).content


CASES = [
    pytest.param(spec, name, recipe, id=f"{spec}-{name}-{recipe}")
    for spec in CHILD_RUNTIMES
    for name, recipes in [
        *((e, (*RECIPES, "fp32+dynamic-batch", "int8+dynamic-batch")) for e in fixtures_models.example_names()),
        ("bert", ("fp32",)),
    ]
    for recipe in recipes
]


@pytest.mark.parametrize(("spec", "name", "recipe"), CASES)
def test_prediction_with_the_runtimes_table_equals_that_runtime_node_by_node(spec, name, recipe):
    content = _content(name, recipe)
    graph = read_model(content)
    artifact = _artifact(content)
    try:
        observed = observe(content, graph, specs=artifact.specs, target=target(spec))
    except RuntimeFailure as exc:
        assert is_load_failure(str(exc)), str(exc)
        d = diagnose(artifact, target=target(spec))
        assert d.not_loaded and not d.observed and any("newer than" in w or "no kernel" in w for w in d.warnings), (
            d.warnings
        )
        return
    predicted = predict(graph, runtime=knowledge(spec))
    bad = [
        f"node {o.index} {o.op}: {spec} {'XNNPACK' if o.delegated else 'CPU'}, predicted "
        f"{'XNNPACK' if p.delegated else 'CPU'}"
        for o, p in zip(observed.primary, predicted.primary)
        if o.delegated != p.delegated
    ]
    assert not bad, "\n".join(bad)
    d = diagnose(artifact, target=target(spec))
    assert d.runtime == target(spec).label and d.summary()["unexplained"] == 0, [
        (n.index, n.op) for n in d.nodes if n.unexplained
    ]


def test_a_full_int8_cnn_on_2_14_keeps_its_int8_compute_on_cpu_and_says_why():
    content = fixtures_models.convert_example("where_cnn", "int8").content
    old = diagnose(_artifact(content), target=target(OLD))
    new = diagnose(_artifact(content))
    assert old.summary()["delegated"] < new.summary()["delegated"]
    convs = [n for n in old.observed if n.op == "CONV_2D"]
    assert convs and all(not n.delegated and "XNN050" in n.causes for n in convs)
    assert all(n.delegated for n in new.observed if n.op == "CONV_2D")
    assert "Android AAR" not in old.runtime and old.runtime.startswith("pip tflite-runtime 2.14.0 (")


def test_bert_on_2_14_runs_gelu_and_batch_matmul_on_cpu_the_installed_runtime_delegates():
    artifact = _artifact(bert_content())
    old, new = diagnose(artifact, target=target(OLD)), diagnose(artifact)
    for op in ("GELU", "BATCH_MATMUL"):
        assert all(not n.delegated and "XNN050" in n.causes for n in old.observed if n.op == op), op
        assert all(n.delegated for n in new.observed if n.op == op), op
    assert old.summary()["partitions"] > new.summary()["partitions"]


def _mobilenet_v2():
    import keras

    return keras.applications.MobileNetV2(input_shape=(96, 96, 3), alpha=0.35, weights=None, classes=10)


def test_a_dynamic_int8_mobilenet_from_tf_2_21_does_not_load_on_2_14(tmp_path):
    content = fixtures_models.convert(_mobilenet_v2(), "dynamic-int8").content
    path = tmp_path / "mnv2.tflite"
    path.write_bytes(content)
    result = CliRunner().invoke(app, ["check", str(path), "--runtime", OLD, "-q", "--json", str(tmp_path / "r.json")])
    assert result.exit_code == 1, result.output
    assert (
        "cannot load this model" in result.output
        and "FULLY_CONNECTED version 12 is newer than pip tflite-runtime 2.14.0" in " ".join(result.output.split())
    )
    d = json.loads((tmp_path / "r.json").read_text())["recipes"][0]
    assert d["not_loaded"] and "version '12'" in d["not_loaded"]


def test_runtime_all_prints_the_matrix_and_the_nodes_that_change(tmp_path):
    path = tmp_path / "cnn.tflite"
    path.write_bytes(fixtures_models.convert_example("where_cnn", "int8").content)
    result = CliRunner().invoke(app, ["check", str(path), "--runtime", "all", "-q", "--json", str(tmp_path / "r.json")])
    assert result.exit_code == 0, result.output
    for name in (
        "tflite-runtime 2.14.0",
        "ai-edge-litert 1.0.1",
        "ai-edge-litert 1.4.0",
        f"ai-edge-litert {targets.installed_version()}",
    ):
        assert name in result.output
    assert "with a verdict that depends on the runtime" in result.output and "CONV_2D" in result.output
    data = json.loads((tmp_path / "r.json").read_text())
    assert len(data["recipes"]) == 4 and {d["runtime"] for d in data["recipes"]} == {
        target(s).label if s != targets.MATRIX[-1] else targets.default().label for s in targets.MATRIX
    }
    changes = data["runtime_changes"]
    assert changes and all(c["cpu_on"] and c["delegated_on"] for c in changes)


def test_the_venv_is_built_once_and_reused():
    first = target(OLD)
    marker = targets.venv_dir(first) / targets.READY
    stamp = marker.stat().st_mtime_ns
    again = targets.ensure(targets.parse(OLD))
    assert again.python == first.python and marker.stat().st_mtime_ns == stamp
    assert again.version == "2.14.0"


def test_bench_and_profile_run_on_the_target():
    content = fixtures_models.convert_example("where_activation", "fp32").content
    run = api.bench(content, runtime=OLD, runs=3, warmup=1).recipes[0]  # bytes of a .tflite are a model source too
    assert run.ok and run.runtime == target(OLD).label and len(run.configs) == 2
    assert all(c.stats.median_ms > 0 and c.stats.runs == 3 for c in run.configs)
    d = api.profile(content, runtime=OLD, runs=3, warmup=1).recipes[0]
    assert d.ok and d.runtime == target(OLD).label and d.profile is not None
    assert {p.kind for p in d.profile.pieces} >= {"cpu"} and d.profile.total.median_ms > 0


def test_bench_times_the_compiled_model_next_to_the_interpreter(tmp_path):
    path = tmp_path / "m.tflite"
    path.write_bytes(fixtures_models.convert_example("where_activation", "fp32").content)
    run = api.bench(str(path), api="compiled", threads="1,2", runs=3, warmup=1).recipes[0]
    compiled = [c for c in run.configs if c.api == "compiled"]
    assert [c.threads for c in compiled] == [1, 2] and all(c.stats.median_ms > 0 for c in compiled)
    result = CliRunner().invoke(app, ["bench", str(path), "--api", "compiled", "--runs", "3", "-q"])
    assert result.exit_code == 0, result.output
    assert "CompiledModel (XNNPACK)" in result.output and "CompiledModel is" in result.output


def test_compiled_and_runtime_together_are_refused_with_what_to_do(tmp_path):
    path = tmp_path / "m.tflite"
    path.write_bytes(fixtures_models.convert_example("where_activation", "fp32").content)
    result = CliRunner().invoke(app, ["bench", str(path), "--api", "compiled", "--runtime", OLD, "-q"])
    assert result.exit_code == 2 and "Drop one of --api and --runtime" in result.output


@pytest.mark.parametrize(
    ("spec", "delegates"), [(OLD, False), ("ai-edge-litert==1.0.1", False), ("ai-edge-litert==1.4.0", True)]
)
def test_preserving_all_tensors_turns_xnnpack_off_on_old_runtimes(spec, delegates):
    """Why profile captures piece inputs on the installed runtime: the old ones would capture without XNNPACK at all."""
    content = fixtures_models.convert_example("where_cnn", "fp32").content
    plain = targets.ops_details(target(spec), content, {})
    preserved = targets.ops_details(target(spec), content, {}, preserve_all_tensors=True)
    assert any(d["op_name"] == "DELEGATE" for d in plain)
    assert any(d["op_name"] == "DELEGATE" for d in preserved) is delegates


def test_an_op_code_the_runtime_does_not_know_is_named_with_its_nodes():
    from xnnfit.kb import oneop

    d = diagnose(Artifact("as-given", oneop.one_op_model("STABLEHLO_COMPOSITE"), ()), target=target(OLD))
    assert d.not_loaded and "builtin_code out of range" in d.not_loaded
    assert any(
        w.startswith("node(s) 0 STABLEHLO_COMPOSITE (builtin op code 206) is newer than pip tflite-runtime 2.14.0")
        for w in d.warnings
    ), d.warnings
    from xnnfit.explain.diagnosis import Gates

    assert any("cannot load the model" in f for f in Gates().failures(d))


def test_the_html_report_says_the_runtime_and_what_blocks_loading(tmp_path):
    from xnnfit.kb import oneop
    from xnnfit.report.html import page as render_html

    path = tmp_path / "sdpa.tflite"
    path.write_bytes(oneop.one_op_model("STABLEHLO_COMPOSITE"))
    page = render_html(api.check(str(path), runtime=f"{OLD},{targets.default().spec}"))
    assert (
        "recipe as-given · on tflite-runtime 2.14.0" in page and "tflite-runtime 2.14.0 cannot load this model" in page
    )
    assert "STABLEHLO_COMPOSITE (builtin op code 206)" in page and "--runtime all" in page
    assert page.count("<h2>recipe as-given") == 2


def test_a_graph_with_a_dynamic_tensor_gets_no_xnnpack_on_2_14_and_says_why():
    content = fixtures_models.convert(
        fixtures_models.load_example("dynamic_reshape").build(), "fp32", dynamic_batch=True
    ).content
    old = diagnose(_artifact(content), target=target(OLD))
    assert old.summary()["delegated"] == 0 and all("XNN051" in n.causes for n in old.observed)
    later = diagnose(_artifact(content), target=target("ai-edge-litert==1.0.1"))
    assert later.summary()["delegated"] > 0 and not any("XNN051" in n.causes for n in later.observed)
    assert later.summary()["unexplained"] == 0
