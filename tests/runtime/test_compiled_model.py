"""LiteRT 2's CompiledModel verdict (is_fully_accelerated) agrees with xnnfit's on the examples; check records it."""

from __future__ import annotations

import pytest

import fixtures_models
from xnnfit.rewrite.engine import rewrite_only
from xnnfit.runtime.interpreter import compiled_fully_accelerated
from xnnfit.stages import check_stage


@pytest.mark.parametrize("recipe", ["fp32", "int8"])
@pytest.mark.parametrize("name", fixtures_models.example_names())
def test_compiled_model_agrees_with_the_interpreters_delegation(name, recipe):
    conv = fixtures_models.convert_example(name, recipe)
    d = check_stage(conv)
    assert d.compiled_fully_accelerated is not None
    assert d.compiled_fully_accelerated == (d.summary()["cpu_nodes"] == 0)
    assert not [w for w in d.warnings if "CompiledModel" in w]


def test_a_fixed_model_is_fully_accelerated_for_both_apis():
    conv = fixtures_models.convert_example("where_cnn", "fp32")
    assert compiled_fully_accelerated(conv.content, conv.specs) is False
    fixed = rewrite_only(conv.content, ("XR001",))
    assert compiled_fully_accelerated(fixed, conv.specs) is True
    assert compiled_fully_accelerated(b"not a model") is None
