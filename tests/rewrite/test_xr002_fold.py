"""XR002 as a constant folder: a relative-position bias becomes a constant, up to the size cap and no further."""

from __future__ import annotations

import functools

import numpy as np
import pytest

from fixtures_models import diagnose as analyze
from xnnfit.measure.accuracy import compare
from xnnfit.model.convert import convert_model
from xnnfit.model.inputs import random_inputs
from xnnfit.model.recipes import RECIPES
from xnnfit.rewrite.engine import apply_to_fixpoint
from xnnfit.rewrite.graph import Graph
from xnnfit.rewrite.rule import RewriteContext
from xnnfit.rewrite.rules import RULES, xr002_fold_shapes
from xnnfit.runtime.interpreter import outputs

RULE = RULES["XR002"]
T, HEADS = 48, 4  # bias [T, T, HEADS] float32 = 36 KiB; its int32 bucket ids [T, T] = 9 KiB


@functools.cache
def relative_bias_model():
    """T5's pattern: bucket ids from a causal range (int32 plumbing), a gathered per-head bias added to the scores."""
    import keras

    table = np.random.default_rng(0).normal(size=(16, HEADS)).astype("float32")

    def add_bias(s):
        pos = keras.ops.arange(T)
        rel = keras.ops.abs(pos[None, :] - pos[:, None])
        buckets = keras.ops.where(rel < 8, rel, keras.ops.minimum(8 + rel // 8, 15))
        bias = keras.ops.take(keras.ops.convert_to_tensor(table), buckets, axis=0)  # [T, T, HEADS]
        return s + keras.ops.transpose(bias, (2, 0, 1))[None]

    x = keras.Input((HEADS, T, T), name="scores")
    return convert_model(keras.Model(x, keras.layers.Lambda(add_bias, name="relative_bias")(x)), RECIPES["fp32"])


def _fold(conv):
    done = apply_to_fixpoint(RULE, conv.content, RewriteContext(conv.specs))

    fixed, why = done.content, done.reason
    assert fixed is not None, why
    return fixed


def _same_outputs(conv, fixed):
    data = random_inputs(conv.specs, 2)
    assert compare(outputs(conv.content, data, conv.specs), outputs(fixed, data, conv.specs)).max_rel_error == 0.0


def test_relative_position_bias_becomes_one_constant():
    conv = relative_bias_model()
    before = analyze(conv.content, "fp32")
    assert [n for n in before.observed if not n.delegated and n.op == "GATHER"]
    fixed = _fold(conv)
    after = analyze(fixed, "fp32")
    assert not [n for n in after.observed if not n.delegated], [n.op for n in after.observed if not n.delegated]
    _same_outputs(conv, fixed)


def test_a_tensor_beyond_the_cap_is_cut_at_its_smaller_inputs(monkeypatch):
    monkeypatch.setattr(xr002_fold_shapes, "FOLD_BYTES", T * T * 4)  # the int32 bucket ids fit, the float bias does not
    conv = relative_bias_model()
    fixed = _fold(conv)
    g = Graph.from_bytes(fixed)
    (gather,) = [i for i in range(len(g.ops)) if g.op(i) == "GATHER"]
    assert g.value(g.inputs(gather)[1]) is not None  # the GATHER stays, on constant bucket ids
    assert all(
        v.nbytes <= T * T * 4
        for t in range(len(g.sub.tensors))
        if "XR002" in g.name(t) and (v := g.value(t)) is not None
    )
    cpu = {n.op for n in analyze(fixed, "fp32").observed if not n.delegated}
    assert cpu == {"GATHER"}, cpu
    _same_outputs(conv, fixed)


@pytest.mark.parametrize("cap", [0])
def test_nothing_fits_nothing_folds(monkeypatch, cap):
    monkeypatch.setattr(xr002_fold_shapes, "FOLD_BYTES", cap)
    conv = relative_bias_model()
    result = RULE.match(Graph.from_bytes(conv.content), RewriteContext(conv.specs))
    assert not isinstance(result, list) or not result[0].detail["boundary"]
