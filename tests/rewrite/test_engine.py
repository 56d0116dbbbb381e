"""The engine keeps only verified rewrites and leaves everything else intact."""

from __future__ import annotations

import numpy as np
import pytest

from xnnfit.core.errors import XnnfitError
from xnnfit.model.artifact import Artifact
from xnnfit.model.convert import convert_model
from xnnfit.model.recipes import RECIPES
from xnnfit.model.specs import ShapeRequest, tflite_declared_inputs
from xnnfit.rewrite.engine import fix_content, select_rules
from xnnfit.rewrite.graph import Graph
from xnnfit.rewrite.rules import RULES
from xnnfit.rewrite.rules.xr001_where_activation import WhereActivation
from xnnfit.tflite import read_model


@pytest.fixture(scope="module")
def where_model():
    return convert_model(RULES["XR001"].example(), RECIPES["fp32"])


class WrongConstant(WhereActivation):
    """Applies XR001 but shifts the result: must be rolled back as outside tolerance."""

    id = "XR901"

    def apply(self, g, m, ctx):
        m.detail["k"] = np.asarray(0.5)
        super().apply(g, m, ctx)


class Crashing(WhereActivation):
    id = "XR902"

    def apply(self, g, m, ctx):
        raise RuntimeError("boom")


class Slower(WhereActivation):
    """Exact but adds a long chain of multiplications by 1: must be rolled back as slower."""

    id = "XR903"

    def apply(self, g, m, ctx):
        super().apply(g, m, ctx)
        from xnnfit.tflite.schema import fb

        out = g.sub.outputs[0]
        shape = g.shape(out)
        big = g.add_const(np.eye(256, dtype=np.float32), "big")  # stays finite over 400 products
        current = g.add_const(np.ones((1, 256), np.float32), "seed")
        ops = []
        for k in range(400):
            nxt = g.add_tensor((1, 256), "float32", f"waste{k}")
            ops.append(g.make_op("BATCH_MATMUL", [current, big], [nxt], fb.BatchMatMulOptionsT(), "BatchMatMulOptions"))
            current = nxt
        zero = g.add_tensor((1, 1), "float32", "zero")
        ops.append(
            g.make_op(
                "MEAN",
                [current, g.add_const(np.asarray([1], np.int32), "axis")],
                [zero],
                fb.ReducerOptionsT(),
                "ReducerOptions",
            )
        )
        scaled = g.add_tensor((1, 1), "float32", "zero_scaled")
        ops.append(
            g.make_op(
                "MUL",
                [zero, g.add_const(np.asarray(0.0, np.float32), "nothing")],
                [scaled],
                fb.MulOptionsT(),
                "MulOptions",
            )
        )
        final = g.add_tensor(shape, "float32", "final")
        ops.append(g.make_op("ADD", [out, scaled], [final], fb.AddOptionsT(), "AddOptions"))
        g.sub.operators.extend(ops)
        g.sub.outputs = [final if int(t) == out else int(t) for t in g.sub.outputs]


@pytest.mark.parametrize(
    ("rule", "reason"), [(WrongConstant(), "outside tolerance"), (Crashing(), "apply failed"), (Slower(), "slower")]
)
def test_bad_rewrites_are_rolled_back(where_model, rule, reason):
    result = fix_content(where_model, rules=[rule], runs=15)
    (outcome,) = result.outcomes
    assert outcome.status == "rolled-back" and reason in outcome.reason, outcome.reason
    assert result.content == where_model.content
    assert result.after.cpu_nodes == result.before.cpu_nodes


def test_untouched_parts_survive(tmp_path):
    """Signatures, metadata, quantization parameters and other constants survive a rewrite."""
    import keras
    import tensorflow as tf

    inp = keras.Input((16,), name="x")
    h = keras.layers.Dense(16, name="dense")(inp)
    h = keras.layers.Lambda(lambda t: tf.where(t > 0, t, 0.2 * t), name="where")(h)
    model = keras.Model(inp, keras.layers.Dense(4, name="head")(h))
    content = tf.lite.TFLiteConverter.from_keras_model(model).convert()  # has a signature
    before = read_model(content)
    specs, _ = ShapeRequest().pin_all(tflite_declared_inputs(before))
    result = fix_content(Artifact("as-given", content, specs), rules=[RULES["XR001"]], runs=5)
    after = read_model(result.content)
    assert result.applied
    assert after.signature_keys == before.signature_keys == ("serving_default",)
    assert set(after.metadata) == set(before.metadata)
    const_before = sorted(t.name for t in before.primary.tensors if t.constant and "where" not in t.name)
    const_after = sorted(
        t.name
        for t in after.primary.tensors
        if t.constant and not t.name.startswith("xnnfit:") and "where" not in t.name
    )
    assert const_before == const_after
    from ai_edge_litert.interpreter import Interpreter

    runner = Interpreter(model_content=result.content).get_signature_runner("serving_default")
    out = runner(x=np.ones((1, 16), np.float32))
    assert list(out.values())[0].shape == (1, 4)
    # no dead tensors or buffers left: every tensor is read or written by an op or is an input
    g = Graph.from_bytes(result.content)
    used = {t for i in range(len(g.ops)) for t in g.inputs(i) + g.outputs(i)} | set(g.sub.inputs)
    assert used >= set(range(len(g.sub.tensors)))


def test_select_rules():
    assert [r.id for r in select_rules(["xr003"], None)] == ["XR003"]
    assert "XR001" not in [r.id for r in select_rules(None, ["XR001"])]
    with pytest.raises(XnnfitError, match="unknown rule"):
        select_rules(["XR999"], None)
