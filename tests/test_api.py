"""The public Python API as a notebook uses it: every function twice in one process, results as data."""

from __future__ import annotations

import json

import pytest

import fixtures_models
import xnnfit

WHERE = str(fixtures_models.EXAMPLES_DIR / "where_activation.py") + ":build"
TIMED = (
    "ms",
    "_ms",
    "stats",
    "rss_delta_bytes",
    "cpu_share",
    "sum_ratio",
    "invoke_overhead",
    "runs",
    "warnings",
    "reason",
    "recommended",
    "pareto",
    "speedup_vs_first",
)  # measured or decided from measurements


def _untimed(doc):
    """The result without measured times (they differ between two honest runs); lists ranked by time compare as sets."""
    if isinstance(doc, dict):
        return {k: _untimed(v) for k, v in doc.items() if not any(k.endswith(t) or k == t for t in TIMED)}
    if isinstance(doc, list):
        items = [_untimed(v) for v in doc]
        return sorted(items, key=json.dumps) if items and isinstance(items[0], dict) else items
    return doc


@pytest.fixture(scope="module")
def where_tflite(tmp_path_factory):
    path = tmp_path_factory.mktemp("api") / "where.tflite"
    path.write_bytes(fixtures_models.convert_example("where_activation", "fp32").content)
    return path


CALLS = {
    "check": lambda p: xnnfit.check(p),
    "profile": lambda p: xnnfit.profile(p, runs=3, warmup=1),
    "bench": lambda p: xnnfit.bench(p, threads="1,2", runs=3, warmup=1),
    "compare": lambda p: xnnfit.compare(p, p, runs=3, warmup=1),
    "fix": lambda p: xnnfit.fix(p, runs=5),
    "quant": lambda p: xnnfit.quant(WHERE, recipe="dynamic-int8+float-dw", runs=5),
    "explain": lambda p: xnnfit.explain("XNN001"),
}


@pytest.fixture(scope="module")
def twice(where_tflite):
    """Each function called twice in this process (computed once per name)."""
    cache: dict = {}

    def get(name: str):
        if name not in cache:
            cache[name] = (CALLS[name](str(where_tflite)), CALLS[name](str(where_tflite)))
        return cache[name]

    return get


@pytest.mark.parametrize("name", list(CALLS))
def test_every_function_twice_in_one_process(name, twice):
    first, second = twice(name)
    assert callable(getattr(xnnfit, name)), f"xnnfit.{name} was rebound by an import"
    assert type(first) is type(second)
    assert _untimed(first.to_dict()) == _untimed(second.to_dict())
    doc = json.loads(json.dumps(first.to_dict()))  # JSON-ready
    assert (
        doc["schema_version"] == 2
        and doc["result"] == type(first).RESULT
        and doc["versions"]["xnnfit"] == xnnfit.__version__
    )
    assert type(first).from_dict(doc) == first  # round trip


def test_submodule_imports_never_rebind_the_api():
    import importlib
    import pkgutil

    for mod in pkgutil.walk_packages(xnnfit.__path__, "xnnfit."):
        if not mod.name.endswith("__main__"):
            importlib.import_module(mod.name)
    for name in CALLS:
        assert callable(getattr(xnnfit, name)) and getattr(xnnfit, name).__module__ == "xnnfit.api", name


def test_models_given_as_bytes_or_keras_objects(where_tflite):
    by_path = xnnfit.check(str(where_tflite)).recipes[0]
    by_bytes = xnnfit.check(where_tflite.read_bytes()).recipes[0]
    assert by_bytes.summary() == by_path.summary() and by_bytes.recipe == "as-given"
    model = fixtures_models.load_example("where_activation").build()
    in_memory = xnnfit.check(model, recipe=["fp32", "int8"])
    assert [d.recipe for d in in_memory.recipes] == ["fp32", "int8"]
    assert all(d.ok for d in in_memory.recipes)
    assert any(n.layer == "where_activation" and not n.delegated for n in in_memory.recipes[0].nodes)


def test_fix_result_saves_atomically_and_never_twice(twice, tmp_path):
    result = twice("fix")[0]
    assert result.changed
    out = result.save(tmp_path / "fixed.tflite")
    assert out.read_bytes() == result.content
    with pytest.raises(xnnfit.XnnfitError, match=r"already exists\. Pass force=True to replace it") as caught:
        result.save(out)  # said in the API's terms, not the command line's
    assert "--force" not in str(caught.value)
    reread = xnnfit.FixResult.from_dict(result.to_dict())
    with pytest.raises(xnnfit.XnnfitError, match="holds no model"):
        reread.save(tmp_path / "other.tflite")


def test_quant_result_saves_each_recipe(twice, tmp_path):
    result = twice("quant")[0]
    paths = result.save(tmp_path, stem="where")
    assert sorted(p.name for p in paths) == ["where.dynamic-int8+float-dw.tflite", "where.fp32.tflite"]
    assert all(p.read_bytes()[4:8] == b"TFL3" for p in paths)


def test_the_error_hierarchy_is_exported(tmp_path):
    errors = [xnnfit.SourceError, xnnfit.InputDataError, xnnfit.ConversionError, xnnfit.RuntimeFailure]
    assert all(issubclass(e, xnnfit.XnnfitError) for e in [*errors, xnnfit.IsolationError])
    (tmp_path / "bad.tflite").write_bytes(b"not a model")
    with pytest.raises(xnnfit.SourceError):
        xnnfit.check(str(tmp_path / "bad.tflite"))


def test_from_dict_refuses_another_result():
    doc = xnnfit.explain().to_dict()
    with pytest.raises(xnnfit.XnnfitError, match="reads 'check' results"):
        xnnfit.CheckResult.from_dict(doc)
