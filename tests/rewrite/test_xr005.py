"""XR005 on each pattern: the refused op is gone, nothing runs on CPU, outputs are bit-exact."""

from __future__ import annotations

import functools

import pytest

from fixtures_models import diagnose as analyze
from xnnfit.measure.accuracy import compare
from xnnfit.model.convert import ConvertOptions, convert_model
from xnnfit.model.inputs import random_inputs
from xnnfit.model.recipes import RECIPES
from xnnfit.model.specs import ShapeRequest
from xnnfit.rewrite.engine import fix_content
from xnnfit.rewrite.graph import Graph
from xnnfit.rewrite.rule import NoMatch, RewriteContext
from xnnfit.rewrite.rules import RULES
from xnnfit.runtime.interpreter import outputs

RULE = RULES["XR005"]


def _lam(fn, shape):
    import keras

    inp = keras.Input(shape, name="x")
    return keras.Model(inp, keras.layers.Lambda(fn, name="op")(inp))


def _layer(make, shape):
    import keras

    inp = keras.Input(shape, name="x")
    return keras.Model(inp, make(keras)(inp))


# name -> (Keras model builder, the refused op it converts to)
CASES = {
    "shrink": (lambda: _lam(lambda t: t[:, 0] * 3.0, (6, 5, 4)), "STRIDED_SLICE"),
    "shrink_last_negative": (lambda: _lam(lambda t: t[:, :, -1] + 1.0, (4, 6)), "STRIDED_SLICE"),
    "stride": (lambda: _lam(lambda t: t[:, ::2, :] * 2.0, (8, 16)), "STRIDED_SLICE"),
    "stride_offset_bounds": (lambda: _lam(lambda t: t[:, 3:11:4, 1::2] + 1.0, (12, 6)), "STRIDED_SLICE"),
    "stride_odd_crop": (lambda: _lam(lambda t: t[:, 0:5:2, 1:4:2] + 1.0, (7, 5, 3)), "STRIDED_SLICE"),
    "stride_odd_pad": (lambda: _lam(lambda t: t[:, 1::2, ::3] + 1.0, (7, 5, 3)), "STRIDED_SLICE"),
    "stride_and_shrink": (lambda: _lam(lambda t: t[:, 1, ::2, 0] + 1.0, (4, 6, 3)), "STRIDED_SLICE"),
    "avgpool_valid": (
        lambda: _layer(lambda k: k.layers.AveragePooling2D(pool_size=1, strides=2), (8, 8, 4)),
        "AVERAGE_POOL_2D",
    ),
    "avgpool_uneven_strides": (
        lambda: _layer(lambda k: k.layers.AveragePooling2D(pool_size=1, strides=(3, 2)), (7, 9, 3)),
        "AVERAGE_POOL_2D",
    ),
    "maxpool_same_odd": (
        lambda: _layer(lambda k: k.layers.MaxPooling2D(pool_size=1, strides=2, padding="same"), (7, 9, 3)),
        "MAX_POOL_2D",
    ),
}


@functools.cache
def converted(case: str, recipe: str):
    return convert_model(CASES[case][0](), RECIPES[recipe])


def rewrite(content: bytes) -> tuple[bytes, int]:
    """Apply XR005 to a fixpoint without the engine's latency gate (tiny models time in microseconds)."""
    g = Graph.from_bytes(content)
    count = 0
    while not isinstance(matches := RULE.match(g, RewriteContext()), NoMatch):
        RULE.apply(g, matches[0], RewriteContext())
        g = Graph.from_bytes(g.to_bytes())
        count += 1
        assert count < 20
    return g.to_bytes(), count


def ops_of(content: bytes) -> list[str]:
    g = Graph.from_bytes(content)
    return [g.op(i) for i in range(len(g.ops))]


@pytest.mark.parametrize("recipe", ["fp32", "int8"])
@pytest.mark.parametrize("case", list(CASES))
def test_pattern_is_delegated_and_exact(case, recipe):
    conv = converted(case, recipe)
    refused = CASES[case][1]
    before = analyze(conv.content, recipe)
    assert any(n.op == refused and not n.delegated for n in before.observed)
    assert any({"XNN022", "XNN025"} & set(n.causes) for n in before.observed)
    fixed, count = rewrite(conv.content)
    assert count == 1
    assert refused not in ops_of(fixed)
    after = analyze(fixed, recipe)
    assert after.summary()["cpu_nodes"] == 0, [n.op for n in after.observed if not n.delegated]
    assert after.summary()["partitions"] == 1
    samples = random_inputs(conv.specs, 4, seed=7)
    num = compare(outputs(conv.content, samples), outputs(fixed, samples))
    assert num.max_abs_error == 0.0, num  # only data moves


@pytest.mark.parametrize("case", ["stride", "shrink", "avgpool_valid", "maxpool_same_odd"])
def test_int8_tensors_keep_their_quantization(case):
    fixed, _ = rewrite(converted(case, "int8").content)
    g = Graph.from_bytes(fixed)
    made = [t for t in range(len(g.sub.tensors)) if g.name(t).startswith("xnnfit:XR005/") and g.value(t) is None]
    assert made
    for i in range(len(g.ops)):
        if g.op(i) in ("RESHAPE", "SLICE", "PAD"):
            x, y = g.inputs(i)[0], g.outputs(i)[0]
            assert g.dtype(x) == g.dtype(y) == "int8"
            assert list(g.quant(x).scale) == list(g.quant(y).scale)
            assert list(g.quant(x).zeroPoint) == list(g.quant(y).zeroPoint)


def test_nhwc_subsampling_is_a_rank3_view():
    """(1, 8, 8, 4)[:, ::2, ::2] is (4, 8, 8)[:, :4, :4]: axes taken whole merge into their neighbour."""
    fixed, _ = rewrite(converted("avgpool_valid", "fp32").content)
    g = Graph.from_bytes(fixed)
    assert [g.op(i) for i in range(len(g.ops))] == ["RESHAPE", "SLICE", "RESHAPE"]
    view = g.outputs(0)[0]
    assert g.shape(view) == (4, 8, 8)
    begin, size = (g.value(t).tolist() for t in g.inputs(1)[1:3])
    assert begin == [0, 0, 0] and size == [4, 4, 4]


def test_shrink_is_a_slice_and_reshape():
    fixed, _ = rewrite(converted("shrink", "fp32").content)
    g = Graph.from_bytes(fixed)
    assert [g.op(i) for i in range(len(g.ops))] == ["SLICE", "RESHAPE", "MUL"]
    assert g.shape(g.outputs(0)[0]) == (1, 1, 5, 4)
    assert g.value(g.inputs(1)[1]).dtype.name == "int32" and g.value(g.inputs(1)[1]).tolist() == [1, 5, 4]


def test_rank6_input_pads_in_a_merged_view():
    """TFLite's PAD kernel stops at rank 5: a rank-6 pad is done on a view with the unpadded axes merged."""
    conv = convert_model(_lam(lambda t: t[:, 1::2, ::3, 1::2, :, ::2] + 1.0, (4, 6, 8, 2, 3)), RECIPES["fp32"])
    fixed, count = rewrite(conv.content)
    assert count == 1
    g = Graph.from_bytes(fixed)
    assert all(len(g.shape(t)) <= 6 for t in range(len(g.sub.tensors)))
    pads = [i for i in range(len(g.ops)) if g.op(i) == "PAD"]
    assert pads and all(len(g.shape(g.inputs(i)[0])) <= 5 for i in pads)
    assert analyze(fixed, "fp32").summary()["cpu_nodes"] == 0
    samples = random_inputs(conv.specs, 2, seed=1)
    assert compare(outputs(conv.content, samples), outputs(fixed, samples)).max_abs_error == 0.0


def test_engine_keeps_the_example():
    conv = convert_model(RULE.example(), RECIPES["fp32"])
    result = fix_content(conv, rules=[RULE], runs=5)
    (outcome,) = result.outcomes
    assert outcome.status == "applied", outcome.reason
    assert outcome.count == 3 and result.after.cpu_nodes == 0 and result.after.partitions == 1
    assert result.numerics.max_abs_error == 0.0


@pytest.mark.parametrize(
    ("fn", "reason"),
    [
        (lambda t: t[:, ::-2] + 1.0, "negative stride"),
        (lambda t: t[:, 1:5] + 1.0, "no strided or shrinking STRIDED_SLICE"),  # XNNPACK takes it already
    ],
)
def test_refusals_say_why(fn, reason):
    conv = convert_model(_lam(fn, (8, 4)), RECIPES["fp32"])
    result = RULE.match(Graph.from_bytes(conv.content), RewriteContext())
    assert isinstance(result, NoMatch) and reason in result.reason, result


def test_dynamic_batch_is_refused_with_a_reason():
    conv = convert_model(
        _lam(lambda t: t[:, ::2] + 1.0, (8, 4)), RECIPES["fp32"], ConvertOptions(ShapeRequest(dynamic_batch=True))
    )
    result = RULE.match(Graph.from_bytes(conv.content), RewriteContext())
    assert isinstance(result, NoMatch) and "dynamic" in result.reason, result


def test_fused_activation_becomes_its_own_op():
    import keras

    inp = keras.Input((9, 9, 4), name="x")
    a = keras.layers.ReLU()(keras.layers.AveragePooling2D(pool_size=1, strides=2)(inp))
    b = keras.layers.ReLU(6.0)(keras.layers.MaxPooling2D(pool_size=1, strides=2)(inp))
    conv = convert_model(keras.Model(inp, [a, b]), RECIPES["fp32"])
    fixed, count = rewrite(conv.content)
    assert count == 2
    ops = ops_of(fixed)
    assert "RELU" in ops and "RELU6" in ops and not {"AVERAGE_POOL_2D", "MAX_POOL_2D"} & set(ops)
    assert analyze(fixed, "fp32").summary()["cpu_nodes"] == 0
    samples = random_inputs(conv.specs, 3, seed=2)
    assert compare(outputs(conv.content, samples), outputs(fixed, samples)).max_abs_error == 0.0
