"""The Perfetto trace: valid trace-event JSON, slices nest, durations add up to the profile's pieces."""

from __future__ import annotations

import json

import pytest

from xnnfit.core.errors import XnnfitError
from xnnfit.report.trace import trace, write_trace


def _slices(doc, pid):
    return [e for e in doc["traceEvents"] if e["ph"] == "X" and e["pid"] == pid]


def test_profile_trace_nests_nodes_in_pieces_and_adds_up(profiled, tmp_path):
    doc = json.loads(write_trace(profiled, tmp_path / "t.json").read_text())
    d = profiled.recipes[0]
    names = {(e.get("tid"), e["args"]["name"]) for e in doc["traceEvents"] if e["ph"] == "M"}
    assert (1, "XNNPACK") in names and (2, "CPU kernels") in names
    pieces = [e for e in _slices(doc, 1) if e["cat"] != "node"]
    nodes = [e for e in _slices(doc, 1) if e["cat"] == "node"]
    assert sum(e["dur"] for e in pieces) == pytest.approx(
        1000 * sum(p.stats.median_ms for p in d.profile.pieces), rel=1e-4
    )
    assert sorted(e["args"]["node"] for e in nodes) == sorted(i for p in d.profile.pieces for i in p.nodes)
    for n in nodes:  # every node slice sits inside one piece slice on its track
        assert any(
            p["tid"] == n["tid"] and p["ts"] - 1e-3 <= n["ts"] and n["ts"] + n["dur"] <= p["ts"] + p["dur"] + 1e-3
            for p in pieces
        )
    for a, b in zip(pieces, pieces[1:]):  # pieces run one after another
        assert b["ts"] >= a["ts"] + a["dur"] - 1e-3
    cpu = [e for e in nodes if e["tid"] == 2]
    assert cpu and all(e["args"]["causes"] for e in cpu)


def test_fix_trace_has_before_and_after_processes(fixed):
    doc = trace(fixed)
    procs = {e["pid"]: e["args"]["name"] for e in doc["traceEvents"] if e["name"] == "process_name"}
    assert set(procs) == {1, 2} and "before" in procs[1] and "after" in procs[2]
    assert not [e for e in _slices(doc, 2) if e["tid"] == 2]  # nothing on CPU kernels after the fix


def test_a_check_without_profile_has_no_trace(hazard_check):
    with pytest.raises(XnnfitError, match="no profile"):
        trace(hazard_check)


def test_slices_nest_and_abut_whatever_the_medians(profiled):
    """Boundaries rounded once: node slices end inside their piece and pieces abut, for any timing.

    A real profile's medians vary.
    """
    import dataclasses
    import random

    from xnnfit.report.trace import events
    from xnnfit.runtime.timing import Stats

    d = profiled.recipes[0]
    rng = random.Random(0)
    for _ in range(200):
        pieces = tuple(dataclasses.replace(p, stats=Stats(*(rng.uniform(1e-4, 3.0),) * 4, 5)) for p in d.profile.pieces)
        evs = [
            e
            for e in events(dataclasses.replace(d, profile=dataclasses.replace(d.profile, pieces=pieces)), 1, "x")
            if e["ph"] == "X"
        ]
        spans = [e for e in evs if e["cat"] != "node"]
        for a, b in zip(spans, spans[1:]):
            assert b["ts"] == pytest.approx(a["ts"] + a["dur"], abs=1e-9)
        for n in (e for e in evs if e["cat"] == "node"):
            assert any(
                p["tid"] == n["tid"] and p["ts"] - 1e-9 <= n["ts"] and n["ts"] + n["dur"] <= p["ts"] + p["dur"] + 1e-9
                for p in spans
            )
