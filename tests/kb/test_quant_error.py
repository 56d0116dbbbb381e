"""Every quantization cause proven on the real converter and LiteRT: its probe shows it, its control does not.

A probe is converted to int8 on calibration inputs from one range, its quantized tensors are
compared with their float twins (TF's quantization debugger's debug model, run on LiteRT) on
eval inputs from another, and the first tensor whose error explodes must be explained by
the cause; in the control, no tensor may show it.
"""

from __future__ import annotations

import functools

import numpy as np
import pytest

from xnnfit.core.policy import QUANT_TENSOR_ERROR
from xnnfit.kb.quant_error import CAUSES, FILL_ADVICE, QuantProbe, causes_of, explodes
from xnnfit.measure.quant_debug import debug_models, layer_errors_stage
from xnnfit.model.convert import ConvertOptions
from xnnfit.model.recipes import INT8

PROBES = [pytest.param(c.id, k, id=f"{c.id}-{'holds' if p.holds else 'control'}") for c in CAUSES.values()
          for k, p in enumerate(c.probes)]  # fmt: skip
CALIBRATION, EVAL = 64, 16  # samples: the converter's ranges settle; the per-tensor means are stable


@functools.cache
def measured(cause: str, k: int):
    probe: QuantProbe = CAUSES[cause].probes[k]
    return _measure(probe)


def _measure(probe: QuantProbe):
    import tempfile
    from pathlib import Path

    model = probe.build()
    shape = tuple(model.inputs[0].shape[1:])
    rng = np.random.default_rng(0)
    folder = Path(tempfile.mkdtemp(prefix="quant-probe-"))
    np.savez(folder / "calibration.npz", x=rng.uniform(*probe.calibration, (CALIBRATION, *shape)).astype(np.float32))
    samples = [{"x": rng.uniform(*probe.eval, (1, *shape)).astype(np.float32)} for _ in range(EVAL)]
    models = debug_models(model, INT8, ConvertOptions(calibration=str(folder / "calibration.npz")))
    return layer_errors_stage(models, samples).tensors


@pytest.mark.parametrize(("cause", "k"), PROBES)
def test_the_probe_shows_the_cause_and_the_control_does_not(cause, k):
    tensors = measured(cause, k)
    exploding = [t for t in tensors if explodes(t)]
    if CAUSES[cause].probes[k].holds:
        assert exploding, f"{cause}: no tensor of the probe lost its values ({[round(t.worst, 3) for t in tensors]})"
        first = exploding[0]
        assert cause in {c.id for c in causes_of(first)}, f"{cause} does not explain {first}"
        assert first.worst >= QUANT_TENSOR_ERROR
    else:
        assert not any(cause in {c.id for c in causes_of(t)} for t in exploding), exploding
        assert all(t.worst < QUANT_TENSOR_ERROR for t in tensors), "the control breaks some tensor anyway"


@pytest.mark.parametrize("cause", list(CAUSES))
def test_every_cause_has_a_probe_that_holds_a_control_and_an_advice(cause):
    c = CAUSES[cause]
    assert any(p.holds for p in c.probes) and any(not p.holds for p in c.probes)
    assert c.advice and c.why and c.when and not c.rewrites


def test_a_fill_keeps_its_op_and_the_select_holding_the_fill_in_float():
    (first,) = [t for t in measured("XNN036", 0) if explodes(t)][:1]
    assert first.op == "MUL" and first.fill > 1e37 and first.fill_node
    assert CAUSES["XNN036"].float_nodes(first) == (first.tensor, first.fill_node)
    assert 2.5 < first.absmax <= 3.0  # the scores 3x reach, on 16 samples of 16 uniform(-1, 1) values
    assert f"about -{FILL_ADVICE * first.absmax:.3g}," in CAUSES["XNN036"].advise(first)
