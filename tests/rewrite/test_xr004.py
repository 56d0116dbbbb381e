"""XR004 on each pattern alone: the refused op is gone, nothing is left on CPU, outputs are identical."""

from __future__ import annotations

import functools

import pytest

from xnnfit.measure.accuracy import compare
from xnnfit.model.convert import ConvertOptions, convert_model
from xnnfit.model.inputs import random_inputs
from xnnfit.model.recipes import RECIPES
from xnnfit.model.specs import ShapeRequest
from xnnfit.observe.delegation import observe
from xnnfit.rewrite.graph import Graph
from xnnfit.rewrite.rule import NoMatch, RewriteContext
from xnnfit.rewrite.rules import RULES
from xnnfit.runtime.interpreter import outputs

RULE = RULES["XR004"]


def _lambda_model(fn, shape=(16,)):
    import keras

    inp = keras.Input(shape, name="x")
    x = keras.layers.Dense(shape[-1], name="dense")(inp)
    x = keras.layers.Lambda(fn, name="pattern")(x)
    return keras.Model(inp, keras.layers.Dense(4, name="head")(keras.layers.Flatten()(x)))


def _patterns():
    import tensorflow as tf

    return {
        # SPLIT_V alone (the concat has 2 inputs, which XNNPACK takes)
        "split_v": (lambda t: tf.concat(tf.split(t, [4, 12], axis=1)[::-1], 1), (16,)),
        "split_v_inferred": (lambda t: tf.concat(tf.split(t, [1, -1, 3], axis=3)[::-1], 3), (4, 4, 6)),
        # SPLIT into more than 4 (only three parts used) and into 1
        "split_8": (lambda t: tf.concat([tf.split(t, 8, axis=1)[k] for k in (7, 2, 5)], 1), (16,)),
        "split_1": (lambda t: tf.split(t, 1, axis=1)[0] * 2.0, (16,)),
        # CONCATENATION of more than 5 (one level and two levels of the tree)
        "concat_7": (lambda t: tf.concat([t * float(k + 1) for k in range(7)], axis=1), (4, 4, 3)),
        "concat_26": (lambda t: tf.concat([t * float(k + 1) for k in range(26)], axis=-1), (4, 4, 3)),
    }


REFUSED = {
    "split_v": "SPLIT_V",
    "split_v_inferred": "SPLIT_V",
    "split_8": "SPLIT",
    "split_1": "SPLIT",
    "concat_7": "CONCATENATION",
    "concat_26": "CONCATENATION",
}


@functools.cache
def _converted(pattern: str, recipe: str, dynamic_batch: bool = False):
    fn, shape = _patterns()[pattern]
    return convert_model(
        _lambda_model(fn, shape), RECIPES[recipe], ConvertOptions(ShapeRequest(dynamic_batch=dynamic_batch))
    )


def _rewrite(content: bytes) -> tuple[bytes, int]:
    """Apply XR004 to a fixpoint, without the engine's verification (the test verifies)."""
    g, count = Graph.from_bytes(content), 0
    while not isinstance(matches := RULE.match(g, RewriteContext()), NoMatch):
        RULE.apply(g, matches[0], RewriteContext())
        g, count = Graph.from_bytes(g.to_bytes()), count + 1
        assert count < 50, "XR004 does not reach a fixpoint"
    return g.to_bytes(), count


def _refused_left(g: Graph) -> list[str]:
    left = []
    for i in range(len(g.ops)):
        op = g.op(i)
        if (
            op == "SPLIT_V"
            or (op == "SPLIT" and not 2 <= len(g.outputs(i)) <= 4)
            or (op == "CONCATENATION" and len(g.inputs(i)) > 5)
        ):
            left.append(op)
    return left


@pytest.mark.parametrize("recipe", ["fp32", "int8"])
@pytest.mark.parametrize("pattern", list(REFUSED))
def test_pattern_is_rewritten_exactly_and_fully_delegated(pattern, recipe):
    conv = _converted(pattern, recipe)
    before = observe(conv.content)
    assert REFUSED[pattern] in {n.op for n in before.primary if not n.delegated}, (
        "the pattern is not refused to begin with"
    )

    fixed, count = _rewrite(conv.content)
    assert count >= 1
    g = Graph.from_bytes(fixed)
    # structure: the refused op is gone; the replacements are what XNNPACK takes
    assert not _refused_left(g)
    for i in range(len(g.ops)):
        if g.op(i) == "SLICE":
            x, begin, size = g.inputs(i)
            assert g.dtype(begin) == g.dtype(size) == "int32"
            assert (g.value(begin) >= 0).all() and (g.value(size) > 0).all()  # no -1 "to the end"
            assert tuple(int(s) for s in g.value(size)) == g.shape(g.outputs(i)[0])
        if g.op(i) == "CONCATENATION":
            assert 2 <= len(g.inputs(i)) <= 5
    # delegation: nothing left on CPU kernels, one partition
    after = observe(fixed)
    assert after.cpu_nodes == 0, [n.op for n in after.primary if not n.delegated]
    assert len(after.partitions) == 1
    # numerics: a data copy, so identical outputs
    samples = random_inputs(conv.specs, 4, seed=7)
    num = compare(outputs(conv.content, samples), outputs(fixed, samples))
    assert num.max_abs_error == 0.0, num


def test_split_v_slices_cover_the_input():
    conv = _converted("split_v_inferred", "fp32")
    g = Graph.from_bytes(_rewrite(conv.content)[0])
    slices = [
        (g.value(g.inputs(i)[1]).tolist(), g.value(g.inputs(i)[2]).tolist())
        for i in range(len(g.ops))
        if g.op(i) == "SLICE"
    ]
    assert slices == [([0, 0, 0, 0], [1, 4, 4, 1]), ([0, 0, 0, 1], [1, 4, 4, 2]), ([0, 0, 0, 3], [1, 4, 4, 3])]


def test_concat_tree_keeps_axis_and_quantization_int8():
    conv = _converted("concat_26", "int8")
    original = Graph.from_bytes(conv.content)
    (big,) = [i for i in range(len(original.ops)) if original.op(i) == "CONCATENATION"]
    out_q = original.quant(original.outputs(big)[0])
    g = Graph.from_bytes(_rewrite(conv.content)[0])
    concats = [i for i in range(len(g.ops)) if g.op(i) == "CONCATENATION"]
    assert len(concats) == 9  # 26 -> 6 groups -> 2 groups -> 1
    for i in concats:
        assert g.ops[i].builtinOptions.axis == original.ops[big].builtinOptions.axis
        assert g.ops[i].builtinOptions.fusedActivationFunction == 0
        for t in g.outputs(i):
            q = g.quant(t)
            assert g.dtype(t) == "int8"
            assert list(q.scale) == list(out_q.scale) and list(q.zeroPoint) == list(out_q.zeroPoint)
    assert g.shape(g.outputs(concats[-1])[0]) == (1, 4, 4, 78)


def test_split_slices_keep_the_input_quantization_int8():
    conv = _converted("split_v", "int8")
    g = Graph.from_bytes(_rewrite(conv.content)[0])
    slices = [i for i in range(len(g.ops)) if g.op(i) == "SLICE"]
    assert len(slices) == 2
    for i in slices:
        x, out = g.inputs(i)[0], g.outputs(i)[0]
        assert g.dtype(out) == g.dtype(x) == "int8"
        assert list(g.quant(out).scale) == list(g.quant(x).scale)
        assert list(g.quant(out).zeroPoint) == list(g.quant(x).zeroPoint)


def test_no_match_reasons():
    import tensorflow as tf

    conv = convert_model(_lambda_model(lambda t: tf.concat(tf.split(t, 4, axis=1)[::-1] + [t], 1)), RECIPES["fp32"])
    why = RULE.match(Graph.from_bytes(conv.content), RewriteContext())
    assert isinstance(why, NoMatch)
    assert "SPLIT into 4 parts is delegated" in why.reason and "at most 5 inputs" in why.reason


def test_dynamic_split_waits_for_xr002():
    conv = _converted("split_v", "fp32", dynamic_batch=True)
    why = RULE.match(Graph.from_bytes(conv.content), RewriteContext())
    assert isinstance(why, NoMatch) and "XR002" in why.reason
