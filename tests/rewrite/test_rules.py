"""Every rewrite rule, proven on its own example: structure, numerics, delegation."""

from __future__ import annotations

import functools

import pytest

from fixtures_models import diagnose as analyze
from xnnfit import kb
from xnnfit.core.policy import DEFAULT_POLICY
from xnnfit.kb.hazards import HAZARDS, PROBE_ERROR
from xnnfit.measure.accuracy import xnnpack_error as probe_error
from xnnfit.model.artifact import Artifact
from xnnfit.model.convert import ConvertOptions, convert_model
from xnnfit.model.recipes import RECIPES
from xnnfit.model.specs import ShapeRequest, tflite_declared_inputs
from xnnfit.rewrite.engine import fix_content
from xnnfit.rewrite.rule import Rule
from xnnfit.rewrite.rules import RULES
from xnnfit.tflite.graph import read_model


@functools.cache
def example(rule_id: str):
    """The rule's example as an Artifact: converted from its Keras model, or the .tflite bytes it builds."""
    rule = RULES[rule_id]
    built = rule.example()
    if isinstance(built, (bytes, bytearray)):
        specs, _ = ShapeRequest().pin_all(tflite_declared_inputs(read_model(bytes(built))))
        return Artifact(rule.example_recipe, bytes(built), specs)
    options = ConvertOptions(ShapeRequest(dynamic_batch=getattr(rule, "example_dynamic_batch", False)))
    return convert_model(built, RECIPES[rule.example_recipe], options)


NODE_RULES = [r for r, rule in RULES.items() if not set(rule.fixes) & set(HAZARDS)]
HAZARD_RULES = [r for r in RULES if r not in NODE_RULES]


@pytest.mark.parametrize("rule_id", HAZARD_RULES)
def test_hazard_rule_repairs_its_example(rule_id):
    """A rule for a hazard (a node XNNPACK computes wrong): the finding goes, outputs equal the built-in kernels'."""
    rule = RULES[rule_id]
    conv = example(rule_id)
    assert set(rule.fixes) & {f.hazard for f in analyze(conv).findings}, "the example does not show the hazard"
    assert probe_error(conv.content) > PROBE_ERROR  # XNNPACK really is wrong on it
    result = fix_content(conv, rules=[rule], runs=5)
    (outcome,) = result.outcomes
    assert outcome.status == "applied", outcome.reason
    assert "built-in kernels" in outcome.reason
    assert not set(rule.fixes) & {f.hazard for f in analyze(result.content, rule.example_recipe).findings}
    assert probe_error(result.content) <= DEFAULT_POLICY.rounding_tolerance


@pytest.mark.parametrize("rule_id", NODE_RULES)
def test_rule_fixes_its_example(rule_id):
    rule = RULES[rule_id]
    conv = example(rule_id)
    before = analyze(conv)
    fixed_causes = set(rule.fixes)
    assert any(fixed_causes & set(n.causes) for n in before.observed), "the example does not trigger the rule's causes"
    result = fix_content(conv, rules=[rule], runs=5)
    (outcome,) = result.outcomes
    assert outcome.status == "applied", outcome.reason
    assert outcome.count >= 1
    after = analyze(result.content, rule.example_recipe)
    assert not any(fixed_causes & set(n.causes) for n in after.observed if n.op not in rule.leaves)
    assert after.summary()["cpu_nodes"] < before.summary()["cpu_nodes"]
    assert after.summary()["partitions"] <= before.summary()["partitions"]
    assert result.numerics.max_rel_error <= DEFAULT_POLICY.bound(rule.exactness, rule.tolerance)
    # none of the ops the rule targets is left on CPU kernels
    targeted = {op for c in rule.fixes for op in kb.get(c).ops if op != "*"}
    left = {n.op for n in after.observed if not n.delegated} & targeted - rule.leaves
    assert not left, left


@pytest.mark.parametrize("rule_id", list(RULES))
def test_rule_example_has_a_kb_cause_and_stable_id(rule_id):
    rule = RULES[rule_id]
    assert rule.id == rule_id and rule_id.startswith("XR") and len(rule_id) == 5
    assert rule.exactness in ("exact", "tolerance")
    # exact rules are judged at float rounding (the policy's); only approximations state a tolerance
    assert (rule.tolerance is None) == (rule.exactness == "exact"), (rule.exactness, rule.tolerance)
    assert all(c in kb.CAUSES or c in HAZARDS for c in rule.fixes)
    # the KB points users at the rule that removes each cause or hazard
    assert any(rule_id in (HAZARDS[c].rewrites if c in HAZARDS else kb.get(c).rewrites) for c in rule.fixes)


def test_where_int8_fix_is_fully_delegated_and_no_worse_than_quantization():
    import importlib.util
    from pathlib import Path

    spec = importlib.util.spec_from_file_location(
        "where_activation", Path(__file__).resolve().parents[2] / "examples" / "where_activation.py"
    )
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    model = mod.build()
    int8 = convert_model(model, RECIPES["int8"])
    fp32 = convert_model(model, RECIPES["fp32"])
    result = fix_content(int8, rules=[RULES["XR001"]], reference=fp32.content, runs=5)
    assert result.applied, result.outcomes[0].reason
    assert result.after.cpu_nodes == 0 and result.after.partitions == 1
    from xnnfit.measure.accuracy import compare
    from xnnfit.model.inputs import random_inputs
    from xnnfit.runtime.interpreter import outputs

    samples = random_inputs(int8.specs, 8, seed=3)
    ref = outputs(fp32.content, samples)
    err_orig = compare(ref, outputs(int8.content, samples)).max_abs_error
    err_fixed = compare(ref, outputs(result.content, samples)).max_abs_error
    assert err_fixed <= 1.5 * err_orig + 1e-6


def test_no_match_reason_is_given():
    conv = example("XR003")
    result = fix_content(conv, rules=[RULES["XR009"]], runs=3)
    (outcome,) = result.outcomes
    assert outcome.status == "no-match" and "depthwise" in outcome.reason
    assert result.content == conv.content


@pytest.mark.parametrize("record", [*kb.CAUSES.values(), *HAZARDS.values()], ids=lambda r: r.id)
def test_a_cause_or_hazard_lists_only_rules_that_list_it_back(record):
    for r in record.rewrites:
        assert r in RULES and record.id in RULES[r].fixes, f"{record.id} names {r}, which does not fix it"


def test_a_rule_declares_its_identity_and_exactness_follows_its_tolerance():
    class Probe(Rule, id="XR900", fixes=("XNN001",), ops=("SELECT",)):
        pass

    assert (Probe.id, Probe.fixes, Probe.ops, Probe().exactness) == ("XR900", ("XNN001",), ("SELECT",), "exact")
    with pytest.raises(TypeError, match="fixs"):

        class Misspelt(Rule, id="XR901", fixs=("XNN001",)):
            pass

    assert RULES["XR007"].exactness == "tolerance" and RULES["XR007"].tolerance == 1e-5


def test_where_activation_in_an_fp16_model_is_fixed_through_its_weight_dequantize():
    """fp16 weights (constants behind a DEQUANTIZE) count as constants: XR001 matches.

    The DEQUANTIZE follows onto XNNPACK.
    """
    import fixtures_models

    conv = fixtures_models.convert_example("where_cnn", "fp16")
    before = analyze(conv)
    assert before.summary()["cpu_nodes"] == 21
    fp32 = fixtures_models.convert_example("where_cnn", "fp32")
    result = fix_content(conv, rules=[RULES["XR001"]], reference=fp32.content, runs=3)
    assert result.applied and result.after.cpu_nodes == 0 and result.after.partitions == 1
