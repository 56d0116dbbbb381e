"""Every KB entry is checked against the installed runtime through its probe models."""

from __future__ import annotations

import pytest

import fixtures_models
from xnnfit import kb
from xnnfit.core.errors import ConversionError
from xnnfit.explain.verdicts import causes_for
from xnnfit.model.convert import ConvertOptions, convert_model
from xnnfit.model.recipes import RECIPES
from xnnfit.observe.delegation import observe
from xnnfit.tflite import read_model

PROBES = [
    pytest.param(cause, i, id=f"{cause.id}-{probe.expect}-{probe.op}-{probe.recipe}-{i}")
    for cause in kb.CAUSES.values()
    for i, probe in enumerate(cause.probes)
]


def test_every_cause_has_a_rejected_probe_or_a_reason():
    without = {
        c.id for c in kb.CAUSES.values() if not any(p.expect in ("rejected", "conversion-error") for p in c.probes)
    }
    # XNN018 (custom ops) and XNN031 (fp16 activations) cannot be produced by the pinned converter/runtime pair;
    # XNN050 and XNN051 hold only on older --runtime targets (proven by tests/test_probe_matrix.py)
    assert without == {"XNN018", "XNN031", "XNN050", "XNN051"}


def test_ids_are_stable_and_unique():
    assert all(c.id.startswith("XNN") and len(c.id) == 6 for c in kb.CAUSES.values())
    assert len({c.id for c in kb.CAUSES.values()}) == len(kb.CAUSES)


@pytest.mark.parametrize(("cause", "i"), PROBES)
def test_cause_matches_runtime(cause, i):
    probe = cause.probes[i]
    if probe.expect == "conversion-error":
        with pytest.raises(ConversionError, match=probe.op):
            convert_model(probe.build(), RECIPES[probe.recipe], ConvertOptions())
        return
    content = fixtures_models.probe_content(cause.id, i)  # converted once per session, shared with test_delegation
    graph = read_model(content)
    delegation = observe(content, graph)
    fixtures_models.assert_predicted(content, delegation)  # the KB alone predicts every node of the probe
    nodes = [n for n in delegation.primary if n.op == probe.op]
    assert nodes, f"probe produced no {probe.op} node: {[n.op for n in delegation.primary]}"
    if probe.expect == "delegated":
        cpu = [n.index for n in nodes if not n.delegated]
        assert not cpu, f"{probe.op} nodes {cpu} stayed on CPU"
        for n in delegation.primary:
            if not n.delegated:
                assert cause.id not in causes_for(graph, delegation, 0, n.index)
    else:
        cpu = [n for n in nodes if not n.delegated]
        assert cpu, f"runtime delegated every {probe.op} node; {cause.id} claims it would not"
        for n in cpu:
            assert cause.id in causes_for(graph, delegation, 0, n.index), f"{cause.id} does not explain {n}"
