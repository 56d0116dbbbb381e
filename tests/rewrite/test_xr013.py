"""XR013 on each mask form: no select or mask op is left on CPU, outputs equal, refusals say why.

Outputs are compared with fully masked rows included.
"""

from __future__ import annotations

import functools

import numpy as np
import pytest

from fixtures_models import diagnose as analyze
from xnnfit.measure.accuracy import compare
from xnnfit.model.convert import convert_model
from xnnfit.model.recipes import RECIPES
from xnnfit.rewrite.engine import apply_to_fixpoint
from xnnfit.rewrite.graph import Graph
from xnnfit.rewrite.rule import NoMatch, RewriteContext
from xnnfit.rewrite.rules import RULES
from xnnfit.runtime.interpreter import outputs

RULE = RULES["XR013"]
T = 8  # sequence length of the examples
MASK_OPS = {
    "SELECT",
    "SELECT_V2",
    "LESS",
    "GREATER",
    "EQUAL",
    "NOT_EQUAL",
    "LOGICAL_AND",
    "LOGICAL_OR",
    "REDUCE_ALL",
    "REDUCE_ANY",
    "MINIMUM",
}


def _softmax(mask_dtype: str):
    import keras

    x = keras.Input((T, T), name="scores")
    mask = keras.Input((T, T), dtype=mask_dtype, name="mask")
    s = keras.layers.Dense(T, name="proj")(x)
    probs = keras.layers.Softmax(axis=-1, name="masked_softmax")(s, mask=mask)
    return keras.Model([x, mask], keras.layers.Dense(4, name="head")(probs))


def _causal_padding():
    import keras

    x = keras.Input((T, 16), name="x")
    pad = keras.Input((T,), dtype="int32", name="padding_mask")
    attn = keras.layers.MultiHeadAttention(num_heads=2, key_dim=8, name="mha")
    mask = keras.layers.Lambda(lambda p: keras.ops.cast(p[:, None, :], "bool"), name="to_mask")(pad)
    y = attn(x, x, attention_mask=mask, use_causal_mask=True)
    return keras.Model([x, pad], keras.layers.Dense(4, name="head")(y))


def _row_all():
    # Gemma's form: a row whose mask is all zero is zeroed after attention (REDUCE_ALL over EQUAL ... 0, then where)
    import keras

    x = keras.Input((T, 16), name="x")
    pad = keras.Input((T,), dtype="int32", name="padding_mask")

    def zero_empty(args):
        h, p = args
        full = keras.ops.minimum(p[:, None, :], keras.ops.cast(keras.ops.tril(keras.ops.ones((T, T))), "int32"))
        empty = keras.ops.all(keras.ops.equal(full, 0), axis=-1, keepdims=True)
        return keras.ops.where(empty, 0.0, h)

    h = keras.layers.Dense(16, name="proj")(x)
    y = keras.layers.Lambda(zero_empty, name="zero_empty_rows")([h, pad])
    return keras.Model([x, pad], keras.layers.Dense(4, name="head")(y))


def _int_select():
    # an int select inside the mask cone: ids >= 3 count as padding
    import keras

    x = keras.Input((T,), name="x")
    ids = keras.Input((T,), dtype="int32", name="ids")

    def gate(args):
        h, i = args
        keep = keras.ops.where(i >= 3, keras.ops.zeros_like(i), keras.ops.ones_like(i))
        return keras.ops.where(keep > 0, h, -1e9)

    h = keras.layers.Dense(T, name="proj")(x)
    y = keras.layers.Lambda(gate, name="gate")([h, ids])
    return keras.Model([x, ids], keras.layers.Softmax(name="softmax")(y))


CASES = {
    "softmax_int32_mask": lambda: _softmax("int32"),
    "softmax_bool_mask": lambda: _softmax("bool"),
    "softmax_float_mask": lambda: _softmax("float32"),
    "causal_and_padding": _causal_padding,
    "all_masked_rows_zeroed": _row_all,
    "int_select_in_mask": _int_select,
}


@functools.cache
def converted(case: str, recipe: str):
    return convert_model(CASES[case](), RECIPES[recipe])


def samples(specs, count: int = 4) -> list[dict[str, np.ndarray]]:
    """Inputs with masks that include fully masked rows (row 0 of sample 0 is all zero; sample 1 masks everything)."""
    rng = np.random.default_rng(1)
    out = []
    for k in range(count):
        sample = {}
        for s in specs:
            shape = s.run_shape
            if s.dtype.startswith("float") and "mask" not in s.name:
                sample[s.name] = rng.uniform(-2, 2, shape).astype(s.dtype)
                continue
            v = rng.integers(0, 5 if s.name == "ids" else 2, shape)
            if k == 0:
                v.reshape(-1, shape[-1])[0] = 0
            if k == 1:
                v[...] = 0
            sample[s.name] = v.astype(s.dtype)
        out.append(sample)
    return out


@pytest.mark.parametrize("recipe", ["fp32", "dynamic-int8"])
@pytest.mark.parametrize("case", list(CASES))
def test_mask_is_blended_in_float_and_exact(case, recipe):
    conv = converted(case, recipe)
    before = analyze(conv.content, recipe)
    assert {n.op for n in before.observed if not n.delegated} & MASK_OPS, "the example has no mask op on CPU"
    done = apply_to_fixpoint(RULE, conv.content, RewriteContext(conv.specs))

    fixed, count, why = done.content, done.count, done.reason
    assert fixed is not None, why
    assert count >= 1
    after = analyze(fixed, recipe)
    left = {n.op for n in after.observed if not n.delegated}
    assert not left & MASK_OPS, left
    assert left <= {"CAST"}, left  # at most the one cast of an int/bool mask input
    assert after.summary()["partitions"] <= 2
    data = samples(conv.specs)
    err = compare(outputs(conv.content, data, conv.specs), outputs(fixed, data, conv.specs))
    assert err.max_rel_error <= 1e-6, err


def test_the_mask_is_made_once_for_every_select_that_uses_it():
    conv = converted("causal_and_padding", "fp32")
    done = apply_to_fixpoint(RULE, conv.content, RewriteContext(conv.specs))

    fixed = done.content
    g = Graph.from_bytes(fixed)
    casts = [i for i in range(len(g.ops)) if g.op(i) == "CAST"]
    assert len(casts) == 1 and g.producer(g.inputs(casts[0])[0]) is None  # one cast, of the graph input, ...
    assert casts[0] == 0  # ... at the start of the graph


def _graph_with_select(const_value: float, int_const: int = 1):
    """x (float [4]) and ids (int32 [4]) -> where(ids > int_const, x, const_value), built by conversion."""
    import keras

    x = keras.Input((4,), name="x")
    ids = keras.Input((4,), dtype="int32", name="ids")
    y = keras.layers.Lambda(lambda a: keras.ops.where(a[1] > int_const, a[0], const_value), name="w")([x, ids])
    return convert_model(keras.Model([x, ids], keras.layers.Dense(2, name="head")(y)), RECIPES["fp32"])


@pytest.mark.parametrize(
    ("const_value", "int_const", "reason"),
    [
        (float("-inf"), 1, "infinite constant"),
        (-1e9, 2**24 + 5, "beyond 2\\*\\*24"),
    ],
)
def test_refuses_what_float_cannot_hold_exactly(const_value, int_const, reason):
    conv = _graph_with_select(-1e9, int_const)
    g = Graph.from_bytes(conv.content)
    if const_value != -1e9:  # Keras writes -inf as -FLT_MAX, so put the infinity in the graph itself
        (select,) = [i for i in range(len(g.ops)) if g.op(i) == "SELECT_V2"]
        g.ops[select].inputs[2] = g.add_const(np.float32(const_value), "minus_inf")
        g = Graph.from_bytes(g.to_bytes())
    result = RULE.match(g, RewriteContext(conv.specs))
    assert isinstance(result, NoMatch)
    assert pytest.importorskip("re").search(reason, result.reason), result.reason


def test_an_int_select_alone_is_not_touched():
    import keras

    ids = keras.Input((4,), dtype="int32", name="ids")
    y = keras.layers.Lambda(lambda i: keras.ops.where(i > 1, i, keras.ops.zeros_like(i)), name="w")(ids)
    conv = convert_model(keras.Model(ids, y), RECIPES["fp32"])
    result = RULE.match(Graph.from_bytes(conv.content), RewriteContext(conv.specs))
    assert isinstance(result, NoMatch) and "int32" in result.reason


def _softmax_of_a_quantized_mask():
    """The masked transformer's form in int8: the float 0/1 mask also scales int8 values, so the converter quantizes
    it and the mask's GREATER reads int8 (mask and 0.5 each with their own scale)."""
    import keras

    x = keras.Input((T, T), name="scores")
    mask = keras.Input((T, T), name="mask")
    s = keras.layers.Dense(T, name="proj")(x)
    probs = keras.layers.Softmax(axis=-1, name="masked_softmax")(s, mask=mask)
    gated = keras.layers.Lambda(lambda a: a[0] * a[1], name="gate")([probs, mask])
    return keras.Model([x, mask], keras.layers.Dense(4, name="head")(gated))


def test_a_quantized_mask_is_compared_by_its_real_values_not_its_stored_integers(tmp_path):
    import dataclasses

    from xnnfit.model.convert import ConvertOptions
    from xnnfit.model.recipes import INT8_FLOAT_OPS
    from xnnfit.tflite.graph import read_model

    model = _softmax_of_a_quantized_mask()
    rng = np.random.default_rng(0)
    np.savez(
        tmp_path / "calibration.npz",
        scores=rng.uniform(-2, 2, (32, T, T)).astype(np.float32),
        mask=rng.integers(0, 2, (32, T, T)).astype(np.float32),
    )
    options = ConvertOptions(calibration=str(tmp_path / "calibration.npz"))
    sub = read_model(convert_model(model, INT8_FLOAT_OPS, options).content).primary
    selects = tuple(sub.tensors[op.outputs[0]].name for op in sub.ops if op.op == "SELECT_V2")  # before and after
    conv = convert_model(model, dataclasses.replace(INT8_FLOAT_OPS, float_nodes=selects), options)
    g = Graph.from_bytes(conv.content)
    (greater,) = [i for i in range(len(g.ops)) if g.op(i) == "GREATER"]
    assert all(g.dtype(t) == "int8" and g.quant(t) is not None for t in g.inputs(greater))  # the case under test
    kept = [g.dtype(g.outputs(i)[0]) for i in range(len(g.ops)) if g.op(i) == "SELECT_V2"]
    assert kept == ["float32", "float32"]  # kept in float: XR013 blends them
    done = apply_to_fixpoint(RULE, conv.content, RewriteContext(conv.specs))
    assert done.content is not None, done.reason
    fixed = Graph.from_bytes(done.content)
    assert not {fixed.op(i) for i in range(len(fixed.ops))} & {"GREATER", "SELECT_V2"}
    assert "DEQUANTIZE" in {fixed.op(i) for i in range(len(fixed.ops))}
    data = [{k: v.astype(np.float32) for k, v in s.items()} for s in samples(conv.specs, 6)]
    err = compare(outputs(conv.content, data, conv.specs), outputs(done.content, data, conv.specs))
    assert err.max_rel_error <= 1e-6, err
