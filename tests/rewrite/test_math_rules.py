"""XR006, XR007, XR008, XR010 on focused models: the refused op is gone, nothing runs on CPU,
and the outputs match the original model on inputs with edge values (0, -0, negatives,
tiny and large magnitudes) within each rule's tolerance."""

from __future__ import annotations

import functools

import numpy as np
import pytest

from fixtures_models import diagnose as analyze
from xnnfit.core.policy import DEFAULT_POLICY
from xnnfit.measure.accuracy import compare
from xnnfit.model.convert import convert_model
from xnnfit.model.recipes import RECIPES
from xnnfit.rewrite.graph import Graph
from xnnfit.rewrite.rule import NoMatch, RewriteContext
from xnnfit.rewrite.rules import RULES
from xnnfit.rewrite.rules.xr006_pow_sign import _POW
from xnnfit.runtime.interpreter import build_interpreter, feed, outputs

FLT_MIN = np.finfo(np.float32).tiny  # smallest normal float32
FLT_MAX = np.finfo(np.float32).max


@functools.cache
def _bound(rule_id: str) -> float:
    """The output error the policy allows the rule (float rounding for exact rules)."""
    rule = RULES[rule_id]
    return DEFAULT_POLICY.bound(rule.exactness, rule.tolerance)


def _converted(kind: str, shape: tuple, case: str | None = None, recipe: str = "fp32"):
    import keras
    import tensorflow as tf

    fns = {
        "pow": lambda t: tf.pow(t, 3.0),
        "sign": lambda t: tf.sign(t),
        "log_softmax": lambda t: tf.nn.log_softmax(t),
        "l2": lambda t: tf.math.l2_normalize(t, axis=-1),
        "gather": lambda t: tf.gather(t, _GATHERS[case][0], axis=_GATHERS[case][1]),
    }
    inp = keras.Input(shape, name="x")
    x = inp
    if recipe != "fp32":  # quantized: give the gather quantized neighbours
        x = keras.layers.Dense(shape[-1], name="pre")(x)
    x = keras.layers.Lambda(fns[kind], name=kind)(x)
    if recipe != "fp32":
        x = keras.layers.Dense(3, name="post")(x)
    return convert_model(keras.Model(inp, x), RECIPES[recipe])


def _rewrite(content: bytes, rule_id: str) -> bytes:
    """Apply one rule everywhere it matches (what the engine does, without its latency race)."""
    rule, ctx = RULES[rule_id], RewriteContext()
    g = Graph.from_bytes(content)
    matches = rule.match(g, ctx)
    assert not isinstance(matches, NoMatch), matches.reason
    while not isinstance(matches, NoMatch):
        rule.apply(g, matches[0], ctx)
        g = Graph.from_bytes(g.to_bytes())
        matches = rule.match(g, ctx)
    return g.to_bytes()


def _ops(content: bytes) -> list[str]:
    g = Graph.from_bytes(content)
    return [g.op(i) for i in range(len(g.ops))]


def _all_delegated(content: bytes, refused: set[str], recipe: str = "fp32") -> None:
    assert not refused & set(_ops(content)), _ops(content)
    d = analyze(content, recipe)
    assert d.summary()["cpu_nodes"] == 0, [(n.op, n.delegated) for n in d.observed]


def _run(content: bytes, x: np.ndarray, xnnpack: bool = True) -> np.ndarray:
    it = build_interpreter(content, xnnpack=xnnpack)
    feed(it, {"x": x})
    it.invoke()
    return np.array(it.get_tensor(it.get_output_details()[0]["index"]), dtype=np.float64)


def _with_exponent(content: bytes, exponent: float) -> bytes:
    """The converted tf.pow(x, 3.0) model with its constant exponent replaced (the converter
    lowers 2, 0.5, -0.5 and 1 itself, so those POWs only come from other producers)."""
    g = Graph.from_bytes(content)
    (i,) = [i for i in range(len(g.ops)) if g.op(i) == "POW"]
    e = g.inputs(i)[1]
    g.model.buffers[g.tensor(e).buffer].data = np.frombuffer(np.float32(exponent).tobytes(), np.uint8).copy()
    return g.to_bytes()


@pytest.mark.parametrize("exponent", sorted(_POW))
def test_xr006_pow_constant_exponents(exponent):
    original = _with_exponent(_converted("pow", (24,)).content, exponent)
    fixed = _rewrite(original, "XR006")
    _all_delegated(fixed, {"POW"})
    assert exponent != 1.0 or _ops(fixed) == ["MUL"]  # x ** 1 of a graph output: MUL by 1 keeps the output tensor
    edges = np.array([0.0, -0.0, 1.0, -1.0, 2.0, -3.0, 1e-3, -1e-3, 1e-9, 10.0, -10.0, 1e4, -1e4], np.float32)
    if exponent != int(exponent):
        edges = np.abs(edges)  # fractional powers: only x >= 0 is in the domain
    if exponent < 0:  # 1/0 is inf in both (compare() cannot subtract infs): checked here, then left out
        zeros = np.zeros((1, 24), np.float32)
        assert np.all(np.isposinf(_run(original, zeros))) and np.all(np.isposinf(_run(fixed, zeros)))
        edges = edges[edges != 0]
    rng = np.random.default_rng(0)
    x = np.concatenate([edges, rng.uniform(-4, 4, 24 - edges.size).astype(np.float32)])
    x = np.abs(x) if exponent != int(exponent) else x
    samples = [{"x": x[None]}, {"x": (x[None] if exponent != int(exponent) else -x[None]) * np.float32(1.5)}]
    ref, got = outputs(original, samples), outputs(fixed, samples)
    assert all(np.isfinite(o).all() for out in ref for o in out)  # so compare() sees every element
    num = compare(ref, got)
    assert num.max_rel_error <= _bound("XR006"), (exponent, num)
    for r, g in zip(ref[0][0][0], got[0][0][0]):  # element by element, so small values count too
        assert abs(r - g) <= 1e-6 * abs(r), (exponent, r, g)


def test_xr006_sign_is_exact():
    original = _converted("sign", (16,)).content
    fixed = _rewrite(original, "XR006")
    _all_delegated(fixed, {"SIGN"})
    edges = [
        0.0,
        -0.0,
        FLT_MIN,
        -FLT_MIN,
        1e-30,
        -1e-30,
        0.5,
        -0.5,
        1.0,
        -1.0,
        1e30,
        -1e30,
        FLT_MAX,
        -FLT_MAX,
        np.inf,
        -np.inf,
    ]
    x = np.array([edges], np.float32)
    want = np.sign(x.astype(np.float64))
    assert np.array_equal(_run(original, x), want)
    assert np.array_equal(_run(fixed, x), want)  # exact, not within a tolerance
    rng = np.random.default_rng(1)
    samples = [
        {"x": (rng.standard_normal((1, 16)) * 10.0 ** rng.integers(-30, 30, (1, 16))).astype(np.float32)}
        for _ in range(8)
    ]
    assert compare(outputs(original, samples), outputs(fixed, samples)).max_abs_error == 0.0
    # subnormals: XNNPACK flushes them to zero (any delegated op reads them as 0); on CPU kernels
    # the rewrite still matches SIGN there
    sub = np.array([[1e-45, -1e-45, 3e-39, -3e-39] + [0.0] * 12], np.float32)
    assert np.array_equal(_run(fixed, sub, xnnpack=False), _run(original, sub, xnnpack=False))


def test_xr007_log_softmax_within_tolerance():
    original = _converted("log_softmax", (5, 10)).content
    fixed = _rewrite(original, "XR007")
    _all_delegated(fixed, {"LOG_SOFTMAX"})
    assert _ops(fixed) == ["REDUCE_MAX", "SUB", "EXP", "SUM", "LOG", "SUB"]
    x = np.random.default_rng(2).uniform(-50, 50, (1, 5, 10)).astype(np.float32)
    x[0, 0] = 0.0  # all equal: -log(10) everywhere
    x[0, 1] = -1e4  # one dominant logit, the others underflow exp()
    x[0, 1, 3] = 1e4
    x[0, 2] = -88.0  # all very negative
    x[0, 3, :5] = -0.0
    rng = np.random.default_rng(3)
    samples = [{"x": x}] + [{"x": rng.normal(0, s, (1, 5, 10)).astype(np.float32)} for s in (0.1, 1.0, 20.0)]
    ref, got = outputs(original, samples), outputs(fixed, samples)
    assert compare(ref, got).max_rel_error <= _bound("XR007")
    np.testing.assert_allclose(got[0][0][0, 0], -np.log(10.0), rtol=1e-6)
    # every sample on its own, so the small-scale ones are not hidden by the large
    for r, g in zip(ref, got):
        assert compare([r], [g]).max_rel_error <= _bound("XR007")


def test_xr008_l2_norm_matches_the_kernel_epsilon():
    original = _converted("l2", (6, 16)).content
    fixed = _rewrite(original, "XR008")
    _all_delegated(fixed, {"L2_NORMALIZATION"})
    x = np.random.default_rng(4).normal(size=(1, 6, 16)).astype(np.float32)
    x[0, 0] = 0.0  # zero row stays zero (no NaN)
    x[0, 1] = 1e-8  # norm 4e-8 < 1e-6: the kernel divides by 1e-6
    x[0, 2] = -2e-7  # norm 8e-7, just under the floor
    x[0, 3] = 3e-7  # norm 1.2e-6, just over it
    x[0, 4, ::2] = -5.0
    x[0, 5] = 1e20  # squares overflow float32: the norm is inf and the row 0, in both
    ref, got = _run(original, x)[0], _run(fixed, x)[0]
    assert np.array_equal(got[0], np.zeros(16))
    np.testing.assert_allclose(got[1], x[0, 1] / 1e-6, rtol=1e-6)
    for row in range(1, 5):  # row by row: each row's scale differs
        err = np.max(np.abs(ref[row] - got[row])) / np.max(np.abs(ref[row]))
        assert err <= _bound("XR008"), (row, err)
    assert np.array_equal(ref[5], got[5]) and not np.any(got[5])
    rng = np.random.default_rng(5)
    samples = [{"x": rng.normal(0, s, (1, 6, 16)).astype(np.float32)} for s in (1e-3, 1.0, 1e3)]
    assert compare(outputs(original, samples), outputs(fixed, samples)).max_rel_error <= _bound("XR008")


_GATHERS = {
    "runs": ([0, 2, 3, 7], 1),
    "one-run": ([2, 3, 4, 5], 1),
    "repeats-tree": ([5, 1, 0, 3, 3, 2, 7, 6, 4, 1, 0, 2, 5], 1),  # 13 runs: a tree of <= 5-input concats
    "scalar": (3, 1),
    "2d-indices": ([[1, 2], [5, 0]], 1),
    "last-axis": ([5, 4, 3, 2, 1, 0], -1),
}


@pytest.mark.parametrize("case,recipe", [(c, "fp32") for c in _GATHERS] + [("runs", "int8"), ("repeats-tree", "int8")])
def test_xr010_gather_const_is_exact(case, recipe):
    indices = _GATHERS[case][0]
    conv = _converted("gather", (8, 6), case, recipe)
    fixed = _rewrite(conv.content, "XR010")
    _all_delegated(fixed, {"GATHER"}, recipe)
    g = Graph.from_bytes(fixed)
    assert all(len(g.inputs(i)) <= 5 for i in range(len(g.ops)) if g.op(i) == "CONCATENATION")
    assert sum(op == "SLICE" for op in _ops(fixed)) == len(set(_runs(indices)))
    rng = np.random.default_rng(6)
    x = rng.normal(size=(1, 8, 6)).astype(np.float32)
    x[0, :, 0] = 0.0
    x[0, 1] = -x[0, 1]
    samples = [{"x": x}, {"x": rng.uniform(-1e3, 1e3, (1, 8, 6)).astype(np.float32)}]
    assert compare(outputs(conv.content, samples), outputs(fixed, samples)).max_abs_error == 0.0


def _runs(indices) -> list[tuple[int, int]]:
    from xnnfit.rewrite.rules.xr010_gather_const import runs

    return runs(np.asarray(indices))
