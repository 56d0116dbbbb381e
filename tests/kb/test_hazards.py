"""Every hazard proven on the installed runtime: its probe is delegated and wrong, its controls are right.

detect() tells them apart.
"""

from __future__ import annotations

import pytest

from xnnfit.kb.hazards import ERROR, HAZARDS, PROBE_ERROR, detect
from xnnfit.kb.oneop import one_op_model
from xnnfit.measure.accuracy import xnnpack_error as probe_error
from xnnfit.observe.delegation import observe
from xnnfit.tflite.graph import read_model

PROBES = [(h.id, k) for h in HAZARDS.values() for k in range(len(h.probes))]


@pytest.mark.parametrize(("hazard", "k"), PROBES)
def test_probe_is_delegated_and_wrong_exactly_when_the_hazard_holds(hazard, k):
    probe = HAZARDS[hazard].probes[k]
    content = probe.build()
    assert observe(content).cpu_nodes == 0  # XNNPACK takes it either way: nothing falls back to warn about
    found = {f.hazard for f in detect(read_model(content))}
    err = probe_error(content)
    if probe.holds:
        assert hazard in found
        assert err > PROBE_ERROR, (
            f"{hazard}: the runtime now computes the probe right ({err:.3g}); retire or revise the hazard"
        )
    else:
        assert hazard not in found
        assert err < 1e-5, f"{hazard} control is wrong too ({err:.3g}): the hazard's test is too narrow"


@pytest.mark.parametrize("hazard", list(HAZARDS))
def test_every_hazard_has_a_probe_that_holds_and_a_control(hazard):
    h = HAZARDS[hazard]
    assert h.severity == ERROR and h.id.startswith("XNN") and h.fix
    assert any(p.holds for p in h.probes) and any(not p.holds for p in h.probes)
    assert ("No rewrite rule does this yet" in h.fix) == (not h.rewrites)
    for r in h.rewrites:
        assert r in h.fix


def test_the_one_op_attention_probe_is_not_a_hazard():
    assert not detect(read_model(one_op_model("STABLEHLO_COMPOSITE")))


def test_finding_is_plain_data():
    (f,) = detect(read_model(HAZARDS["XNN040"].probes[0].build()))
    d = f.to_dict()
    assert d["hazard"] == "XNN040" and d["severity"] == "error" and d["rewrites"] == ["XR015"]
    assert "scale=0.1" in d["message"]
