"""XR014 on each stacking form: PACK/UNPACK gone, nothing on CPU, outputs bit-identical."""

from __future__ import annotations

import functools

import numpy as np
import pytest

from fixtures_models import diagnose as analyze
from xnnfit.model.convert import convert_model
from xnnfit.model.inputs import random_inputs
from xnnfit.model.recipes import RECIPES
from xnnfit.rewrite.engine import apply_to_fixpoint
from xnnfit.rewrite.graph import Graph
from xnnfit.rewrite.rule import RewriteContext
from xnnfit.rewrite.rules import RULES
from xnnfit.rewrite.rules.xr014_pack import MAX_CONCAT_INPUTS
from xnnfit.runtime.interpreter import outputs

RULE = RULES["XR014"]


def _lam(fn, shape, out_units=4):
    import keras

    inp = keras.Input(shape, name="x")
    y = keras.layers.Lambda(fn, name="op")(keras.layers.Dense(shape[-1], name="pre")(inp))
    return keras.Model(inp, keras.layers.Dense(out_units, name="post")(keras.layers.Flatten()(y)))


def _rope(t):
    import keras

    x1, x2 = keras.ops.split(t, 2, axis=-1)
    return keras.ops.reshape(keras.ops.stack([-x2, x1], axis=-1), (-1, 6, 2, 8))


CASES = {
    "rope_last_axis": lambda: _lam(_rope, (6, 2, 8)),
    "stack_axis1_three": lambda: _lam(lambda t: __import__("keras").ops.stack([t, 2.0 * t, t + 1.0], axis=1), (5, 4)),
    "stack_seven_in_steps": lambda: _lam(
        lambda t: __import__("keras").ops.stack([t * float(k + 1) for k in range(7)], axis=-1), (3, 4)
    ),
    "unstack": lambda: _lam(
        lambda t: sum(a * float(k + 1) for k, a in enumerate(__import__("keras").ops.unstack(t, axis=1))), (3, 4)
    ),
}


@functools.cache
def converted(case: str, recipe: str):
    return convert_model(CASES[case](), RECIPES[recipe])


@pytest.mark.parametrize("recipe", ["fp32", "int8"])
@pytest.mark.parametrize("case", list(CASES))
def test_stack_becomes_concatenation_and_is_exact(case, recipe):
    conv = converted(case, recipe)
    before = analyze(conv.content, recipe)
    assert {"PACK", "UNPACK"} & {n.op for n in before.observed if not n.delegated}
    done = apply_to_fixpoint(RULE, conv.content, RewriteContext(conv.specs))

    fixed, why = done.content, done.reason
    assert fixed is not None, why
    after = analyze(fixed, recipe)
    assert not [n for n in after.observed if not n.delegated], [n.op for n in after.observed if not n.delegated]
    g = Graph.from_bytes(fixed)
    concats = [i for i in range(len(g.ops)) if g.op(i) == "CONCATENATION"]
    assert all(len(g.inputs(i)) <= MAX_CONCAT_INPUTS for i in concats)
    data = random_inputs(conv.specs, 3)
    for a, b in zip(outputs(conv.content, data, conv.specs), outputs(fixed, data, conv.specs)):
        for x, y in zip(a, b):
            np.testing.assert_array_equal(x, y)
