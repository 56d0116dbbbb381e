"""Every advice is checked on the installed runtime: its demo falls back and gets it, its code does not fall back.

The advised code also keeps the outputs it says it keeps.

Both models of a demo are built by kb.probes.snippet from the code the advice shows, and
converted with the real converter once per session.
"""

from __future__ import annotations

import dataclasses
import functools

import numpy as np
import pytest

from xnnfit import kb
from xnnfit.core.errors import ConversionError, XnnfitError
from xnnfit.explain.diagnosis import diagnose
from xnnfit.kb import advice as kb_advice
from xnnfit.kb.advice import Advice, Demo, When, advise
from xnnfit.kb.cause import Cause
from xnnfit.kb.context import NodeContext
from xnnfit.kb.probes import snippet
from xnnfit.model.convert import ConvertOptions, convert_model
from xnnfit.model.inputs import random_inputs
from xnnfit.model.recipes import ALL
from xnnfit.model.specs import ShapeRequest
from xnnfit.observe.delegation import observe
from xnnfit.rewrite.rules import RULES
from xnnfit.runtime.interpreter import outputs
from xnnfit.tflite import read_model

SAMPLES = 4  # seeded random samples per output comparison
SEED = 1
# Two float32 graphs of the same math differ by a few ulps per op; 1e-5 of the output scale
# leaves room for that and still catches any real change (the tanh GELU is 2.5e-4 off, a
# floor for a truncating cast 1 in 3).
FLOAT_ROUNDING = 1e-5

DEMOS = [pytest.param(a, id=a.id) for a in kb_advice.ENTRIES if a.demo is not None]


# ---------------------------------------------------------------------------------------
# Converting and observing demos (cached for the session)
# ---------------------------------------------------------------------------------------


@functools.cache
def converted(code: str, inputs: tuple, setup: str, after: str, recipe: str, dynamic_batch: bool):
    """The snippet model converted with `recipe` (an Artifact)."""
    model = snippet(code, inputs, setup, after)()
    return convert_model(model, ALL[recipe], ConvertOptions(ShapeRequest(dynamic_batch=dynamic_batch)))


def fallback(demo: Demo, recipe: str | None = None):
    return converted(demo.fallback, demo.inputs, demo.setup, demo.after, recipe or demo.recipe, demo.dynamic_batch)


def instead(advice: Advice, recipe: str | None = None):
    demo = advice.demo
    code = advice.code or demo.fallback
    return converted(
        code,
        demo.instead_inputs or demo.inputs,
        demo.setup,
        demo.after,
        recipe or demo.instead_recipe or demo.recipe,
        demo.dynamic_batch,
    )


@functools.cache
def cpu_nodes(demo: Demo) -> tuple:
    """(verdict, NodeContext) of every fallback node on CPU whose op is one of the demo's ops."""
    art = fallback(demo)
    sub = read_model(art.content).primary
    verdicts = diagnose(art).nodes
    delegated = {v.index: v.delegated for v in verdicts if v.subgraph == 0}
    return tuple(
        (v, NodeContext(sub, sub.ops[v.index], delegated))
        for v in verdicts
        if v.subgraph == 0 and v.delegated is False and v.op in demo.ops
    )


def explained(advice: Advice) -> list:
    """The demo's CPU nodes that the advice's cause explains."""
    return [(v, ctx) for v, ctx in cpu_nodes(advice.demo) if advice.cause in v.causes]


def cpu_ops(content: bytes) -> set[str]:
    return {n.op for n in observe(content).primary if n.delegated is False}


def output_change(advice: Advice) -> tuple[float, float]:
    """(largest absolute output difference, largest output magnitude) of the float32 fallback and advised models."""
    demo = advice.demo
    ref, new = fallback(demo, "fp32"), instead(advice, "fp32")
    specs = tuple(
        dataclasses.replace(s, high=demo.high) if demo.high and not s.dtype.startswith("float") else s
        for s in ref.specs
    )
    samples = random_inputs(specs, SAMPLES, seed=SEED)
    for sample in samples:
        for name in demo.binary:
            sample[name] = (sample[name] > 0).astype(sample[name].dtype)
    same = [{s.name: sample[s.name].astype(s.dtype) for s in new.specs} for sample in samples]
    got, want = outputs(new.content, same, new.specs), outputs(ref.content, samples, ref.specs)
    diff = max(float(np.max(np.abs(g - w))) for gs, ws in zip(got, want) for g, w in zip(gs, ws))
    scale = max(float(np.max(np.abs(w))) for ws in want for w in ws)
    return diff, scale


def check(advice: Advice) -> None:
    """The demo falls back with the advice's cause and gets the advice; the advised model keeps those ops off CPU.

    The advised model also keeps its promises.
    """
    demo = advice.demo
    if demo.conversion_error:
        with pytest.raises(ConversionError, match=demo.ops[0]):
            fallback(demo)
    else:
        nodes = explained(advice)
        assert nodes, (
            f"no CPU node of {demo.ops} explained by {advice.cause}: {[(v.op, v.causes) for v, _ in cpu_nodes(demo)]}"
        )
        for v, ctx in nodes:
            got = advise(advice.cause, ctx, v.layer_class)
            assert got.id == advice.id, f"{v.op} node {v.index} (layer {v.layer_class}) got {got.id}"
    if advice.code is None and demo.instead_recipe is None:
        return  # prose without a recipe: the demo proves the selection only
    left = cpu_ops(instead(advice).content) & set(demo.ops)
    assert not left, f"the advised model still runs {sorted(left)} on CPU"
    if advice.code is None or demo.conversion_error:
        return
    if advice.preserves_semantics:
        diff, scale = output_change(advice)
        assert diff <= FLOAT_ROUNDING * scale, f"outputs differ by {diff:.3g} (output scale {scale:.3g})"
    elif demo.within is not None:
        diff, _ = output_change(advice)
        assert diff <= demo.within, f"outputs differ by {diff:.3g}, more than the {demo.within} the text states"


# ---------------------------------------------------------------------------------------
# Every demo on the runtime
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("advice", DEMOS)
def test_advice_holds_on_the_runtime(advice):
    check(advice)


def test_the_check_catches_wrong_advice():
    """The advice texts this suite replaced fail it.

    A floor is not a truncating cast, and the SUM log-softmax is fused back.
    """
    floor = dataclasses.replace(kb_advice.general("XNN002"), code="y = keras.ops.floor(x)")
    with pytest.raises(AssertionError, match="outputs differ"):
        check(floor)
    summed = dataclasses.replace(
        kb_advice.general("XNN006"),
        code="y = x - keras.ops.max(x, -1, keepdims=True)\ny = y - "
        "keras.ops.log(keras.ops.sum(keras.ops.exp(y), -1, keepdims=True))",
    )
    with pytest.raises(AssertionError, match="LOG_SOFTMAX"):
        check(summed)
    mixed = dataclasses.replace(
        kb_advice.general("XNN034"),
        demo=dataclasses.replace(kb_advice.general("XNN034").demo, instead_recipe="int8+float-ops"),
    )
    with pytest.raises(AssertionError, match="ADD"):
        check(mixed)  # what XNN034 used to advise


def test_what_the_texts_say_does_not_help_does_not():
    pool = kb_advice.BY_ID["XNN028.average-pool"].demo
    assert "AVERAGE_POOL_2D" in cpu_ops(fallback(pool, "int8+float-ops").content)
    epsilon = kb_advice.BY_ID["XNN034.layer-norm-epsilon"].demo
    assert "ADD" in cpu_ops(fallback(epsilon, "int8+float-ops").content)
    # Keras's own approximate GELU and a hand-written hard-swish in the usual order convert to the fused op again
    gelu = kb_advice.BY_ID["XNN028.gelu"].demo
    assert "GELU" in cpu_ops(
        converted("y = keras.activations.gelu(x, approximate=True)", gelu.inputs, gelu.setup, "", "int8", False).content
    )
    swish = kb_advice.BY_ID["XNN028.hard-swish"].demo
    assert "HARD_SWISH" in cpu_ops(
        converted("y = x * keras.ops.relu6(x + 3.0) / 6.0", swish.inputs, swish.setup, "", "int8", False).content
    )
    # the l2-norm and log-softmax formulas written out with SUM are fused back too
    l2 = kb_advice.general("XNN010").demo
    sumsq = "y = x * keras.ops.rsqrt(keras.ops.sum(keras.ops.square(x), -1, keepdims=True) + 1e-6)"
    assert "L2_NORMALIZATION" in cpu_ops(converted(sumsq, l2.inputs, "", "", "fp32", False).content)


# ---------------------------------------------------------------------------------------
# Selection: the graph pattern picks the advice, the layer hint only helps
# ---------------------------------------------------------------------------------------


def picked(advice_id: str, layer_class: str | None = None, ops: tuple[str, ...] | None = None) -> dict[str, set[str]]:
    """op -> advice ids advise() picks for the explained CPU nodes of that advice's demo."""
    a = kb_advice.BY_ID[advice_id]
    out: dict[str, set[str]] = {}
    for v, ctx in cpu_nodes(a.demo):
        for cid in v.causes:
            if ops is None or v.op in ops:
                out.setdefault(f"{v.op}/{cid}", set()).add(advise(cid, ctx, layer_class).id)
    return out


def test_embedding_index_wrap_and_lookup_by_pattern_alone():
    assert picked("XNN001.embedding-index-wrap") == {
        "LESS/XNN001": {"XNN001.embedding-index-wrap"},
        "SELECT/XNN001": {"XNN001.embedding-index-wrap"},
    }
    assert picked("XNN021.embedding-index-wrap") == {"ADD/XNN021": {"XNN021.embedding-index-wrap"}}
    assert picked("XNN003.embedding-lookup") == {"GATHER/XNN003": {"XNN003.embedding-lookup"}}


def test_masked_softmax_attention_and_activation_by_pattern_alone():
    assert picked("XNN001.masked-softmax") == {
        "GREATER/XNN001": {"XNN001.masked-softmax"},
        "SELECT_V2/XNN001": {"XNN001.masked-softmax"},
    }
    assert picked("XNN001.causal-attention") == {"SELECT_V2/XNN001": {"XNN001.causal-attention"}}
    assert picked("XNN001.where-activation") == {
        "LESS/XNN001": {"XNN001.where-activation"},
        "SELECT/XNN001": {"XNN001.where-activation"},
    }
    assert picked("XNN001.general") == {"GREATER/XNN001": {"XNN001.general"}, "SELECT/XNN001": {"XNN001.general"}}


def test_layer_norm_parts_by_pattern_alone():
    assert picked("XNN028.layer-norm") == {
        "RSQRT/XNN028": {"XNN028.layer-norm"},
        "SQUARED_DIFFERENCE/XNN028": {"XNN028.layer-norm"},
    }
    assert picked("XNN034.layer-norm-epsilon") == {"ADD/XNN034": {"XNN034.layer-norm-epsilon"}}
    assert picked("XNN034.general") == {"ADD/XNN034": {"XNN034.general"}}  # a tiny constant added, no normalization


def test_a_matching_pattern_outranks_a_wrong_layer_hint():
    assert picked("XNN001.where-activation", "Embedding") == {
        "LESS/XNN001": {"XNN001.where-activation"},
        "SELECT/XNN001": {"XNN001.where-activation"},
    }
    assert picked("XNN001.masked-softmax", "MultiHeadAttention")["SELECT_V2/XNN001"] == {"XNN001.masked-softmax"}


def test_a_layer_hint_picks_advice_where_no_pattern_tells():
    # the PACK of an unrolled LSTM's return_sequences looks like any tf.stack
    assert picked("XNN013.rnn-unroll", None, ("PACK",)) == {"PACK/XNN013": {"XNN013.general"}}
    assert picked("XNN013.rnn-unroll", "LSTM", ("PACK",)) == {"PACK/XNN013": {"XNN013.rnn-unroll"}}
    assert picked("XNN013.rnn-unroll", None, ("UNPACK",)) == {"UNPACK/XNN013": {"XNN013.rnn-unroll"}}


def test_upsampling_tile_and_plain_tile_get_different_advice():
    assert picked("XNN004.upsampling") == {"TILE/XNN004": {"XNN004.upsampling"}}
    assert picked("XNN004.general", "UpSampling2D") == {"TILE/XNN004": {"XNN004.upsampling"}}  # the hint alone
    assert picked("XNN004.general") == {"TILE/XNN004": {"XNN004.general"}}


def test_unknown_cause_is_an_error_naming_the_known_ones():
    ctx = cpu_nodes(kb_advice.BY_ID["XNN001.general"].demo)[0][1]
    with pytest.raises(XnnfitError, match="XNN001"):
        advise("XNN999", ctx)


# ---------------------------------------------------------------------------------------
# The entries as data
# ---------------------------------------------------------------------------------------


def test_every_cause_has_one_general_advice_last():
    assert set(kb_advice.BY_CAUSE) == set(kb.CAUSES)
    for cid, entries in kb_advice.BY_CAUSE.items():
        assert [a.general for a in entries].count(True) == 1 and entries[-1].general, cid
        assert entries[-1].id == f"{cid}.general"


def test_a_cause_has_no_fix_text_of_its_own():
    """The fix is written once, as the general advice: a Cause has no field to write it again."""
    assert "fix" not in {f.name for f in dataclasses.fields(Cause)}


@pytest.mark.parametrize("cause_id", list(kb.CAUSES))
def test_a_causes_fix_is_its_general_advice_rendered(cause_id):
    general = kb_advice.general(cause_id)
    fix = kb.CAUSES[cause_id].fix
    assert fix == general.render()
    assert fix.splitlines()[: len((general.code or "").splitlines())] == (general.code or "").splitlines()
    assert all(line.startswith("# ") for line in fix.splitlines()[len((general.code or "").splitlines()) :])


def test_ids_are_stable_unique_and_name_their_cause():
    ids = [a.id for a in kb_advice.ENTRIES]
    assert len(ids) == len(set(ids))
    for a in kb_advice.ENTRIES:
        cid, _, slug = a.id.partition(".")
        assert cid == a.cause and slug and slug == slug.lower() and " " not in slug, a.id


def test_texts_say_what_changes_and_which_rule_fixes_it():
    for a in kb_advice.ENTRIES:
        text = a.text.lower()
        assert a.text.count("\n") <= 1, f"{a.id}: text is more than two lines"
        if not a.rules:
            assert "no rewrite rule does this yet" in text, a.id
        for r in a.rules:
            assert r in RULES and a.cause in RULES[r].fixes, f"{a.id}: {r} does not fix {a.cause}"
            assert r in a.text, f"{a.id}: names {r} in rules but not in its text"
        if not a.preserves_semantics:
            assert "change" in text, f"{a.id}: changes semantics but does not say what changes"
        if a.code is not None:
            assert a.demo is not None, f"{a.id}: code without a demo"


def test_a_general_advice_names_every_rule_that_fixes_its_cause():
    for cid, entries in kb_advice.BY_CAUSE.items():
        g = entries[-1]
        for r, rule in RULES.items():
            if cid in rule.fixes and r not in g.rules:
                assert r in g.text, f"{g.id}: {r} fixes {cid} but the general advice does not say what it covers"


def test_when_is_about_the_causes_ops_and_known_patterns():
    used = set()
    for a in kb_advice.ENTRIES:
        if a.when is None:
            continue
        ops = set(kb.CAUSES[a.cause].ops)
        assert "*" in ops or set(a.when.ops) <= ops, f"{a.id}: {set(a.when.ops) - ops} are not ops of {a.cause}"
        used.add(a.when.pattern)
        assert a.when.describe().startswith(a.when.ops[0])
    assert set(kb_advice.PATTERNS) <= used, f"unused patterns: {set(kb_advice.PATTERNS) - used}"
    with pytest.raises(ValueError, match="unknown pattern"):
        When(("LESS",), "no-such-pattern")


def test_advice_is_plain_data():
    a = kb_advice.BY_ID["XNN001.masked-softmax"]
    d = a.to_dict()
    assert "demo" not in d and d["when"]["pattern"] == "masked-softmax"
    assert Advice.from_dict(d) == a


def test_xnn028_names_the_recipe_that_keeps_those_ops_in_float():
    assert "int8+float-ops" in kb_advice.general("XNN028").text
    from xnnfit import kb

    assert "int8+float-ops" in kb.get("XNN028").fix
