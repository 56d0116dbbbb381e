"""The stable-id table: every cause, hazard and rule once, each explained by `xnnfit explain ID`, links both ways."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from xnnfit import ids, kb
from xnnfit.cli import app
from xnnfit.core.errors import XnnfitError
from xnnfit.ids import CAUSE, HAZARD, IDS, KINDS, QUANT, RULE, CauseDoc, Explanation, explanation, lookup
from xnnfit.kb.hazards import HAZARDS
from xnnfit.kb.quant_error import CAUSES as QUANT_CAUSES
from xnnfit.rewrite.rules import RULES

EVERY_ID = [pytest.param(i, id=i) for i in IDS]


def _explain(*args: str):
    """`xnnfit explain ...` in this process: (exit code, what it printed)."""
    result = CliRunner().invoke(app, ["explain", *args])
    return result.exit_code, result.output


def test_the_table_holds_every_cause_hazard_and_rule_once():
    assert [e.id for e in ids.of_kind(CAUSE)] == list(kb.CAUSES)
    assert {e.id for e in ids.of_kind(HAZARD)} == set(HAZARDS)
    assert {e.id for e in ids.of_kind(RULE)} == set(RULES)
    assert {e.id for e in ids.of_kind(QUANT)} == set(QUANT_CAUSES)
    assert len(IDS) == len(kb.CAUSES) + len(HAZARDS) + len(QUANT_CAUSES) + len(RULES)  # no id names two things
    assert [e.kind for e in IDS.values()] == sorted((e.kind for e in IDS.values()), key=list(KINDS).index)
    for e in IDS.values():
        assert e.record.id == e.id and e.title


@pytest.mark.parametrize("stable_id", EVERY_ID)
def test_explain_names_the_kind_and_title_of_every_id(stable_id):
    entry = IDS[stable_id]
    code, printed = _explain(stable_id.lower())  # ids are read in any case
    assert code == 0, printed
    first, *rest = printed.splitlines()
    assert first == f"{stable_id} {entry.title}"
    assert rest[0].startswith(f"  kind: {entry.kind}, {KINDS[entry.kind]}")


@pytest.mark.parametrize("stable_id", EVERY_ID)
def test_one_id_explained_is_that_id_alone_and_round_trips_as_json(stable_id):
    result = explanation(stable_id)
    listed = {CAUSE: result.causes, HAZARD: result.hazards, QUANT: result.quantization, RULE: result.rules}
    assert {kind: [d.id for d in docs] for kind, docs in listed.items()} == {
        kind: [stable_id] if kind == IDS[stable_id].kind else [] for kind in KINDS
    }
    assert Explanation.from_dict(json.loads(json.dumps(result.to_dict()))) == result


def test_a_hazard_says_why_the_way_out_its_rules_and_its_probes():
    (doc,) = explanation("XNN040").hazards
    h = HAZARDS["XNN040"]
    assert (doc.title, doc.why, doc.fix, doc.rewrites) == (h.title, h.why, h.fix, ("XR015",))
    assert doc.probes == ("holds: attention, scale=0.1 in 8-byte slots", "control: the same in 4-byte slots")
    code, printed = _explain("XNN040")
    for part in ("why:", "way out:", "xnnfit fix rules: XR015", "XR015 attention composite attributes", "holds:"):
        assert part in printed
    assert "xnnfit fix rules: none yet" in _explain("XNN041")[1]


def test_a_quantization_cause_says_when_why_the_way_out_and_its_probes():
    (doc,) = explanation("XNN036").quantization
    cause = QUANT_CAUSES["XNN036"]
    assert (doc.title, doc.why, doc.fix, doc.keeps_float) == (cause.title, cause.why, cause.advice, True)
    assert doc.probes == tuple(f"{'holds' if p.holds else 'control'}: {p.what}" for p in cause.probes)
    code, printed = _explain("XNN036")
    for part in ("kind: quantization", "when:", "why:", "way out:", "int8-repaired", "holds:", "control:"):
        assert part in printed
    assert "does not help" in _explain("XNN038")[1]  # recalibrating is the way out there, not float ops


def test_a_rule_says_what_it_fixes_how_exact_it_is_and_who_lists_it():
    (doc,) = explanation("XR013").rules
    assert doc.fixes == ("XNN001", "XNN011", "XNN021") and doc.exactness == "exact" and doc.tolerance is None
    assert doc.listed_by == ("XNN001", "XNN011", "XNN021")
    code, printed = _explain("XR013")
    assert "fixes: XNN001, XNN011, XNN021" in printed and f"XNN011 {kb.CAUSES['XNN011'].title}" in printed
    assert "exactness: exact" in printed and "listed by: XNN001, XNN011, XNN021" in printed
    (approx,) = explanation("XR007").rules
    assert approx.exactness == "tolerance" and approx.tolerance == RULES["XR007"].tolerance
    assert "within 1e-05 of their scale" in _explain("XR007")[1]
    assert "judged against: the model before it" in _explain("XR015")[1]


def test_a_cause_lists_the_rules_that_remove_it_with_their_titles():
    code, printed = _explain("XNN001")
    assert "xnnfit fix rules: XR001, XR013" in printed
    assert f"XR001 {RULES['XR001'].title}" in printed and f"XR013 {RULES['XR013'].title}" in printed


@pytest.mark.parametrize("rule_id", list(RULES))
def test_links_hold_both_ways(rule_id):
    """A rule's fixes are ids of the table, and the causes and hazards naming the rule are exactly those it fixes."""
    rule = RULES[rule_id]
    assert all(i in IDS and IDS[i].kind in (CAUSE, HAZARD) for i in rule.fixes), rule.fixes
    assert set(ids.listed_by(rule_id)) == set(rule.fixes)


def test_every_rule_a_cause_or_hazard_names_exists():
    for e in IDS.values():
        if e.kind != RULE:
            assert set(e.record.rewrites) <= {r.id for r in ids.of_kind(RULE)}, e.id


def test_all_ids_are_listed_by_kind_and_the_causes_stay_as_they_were():
    every = explanation()
    assert [d.id for d in every.causes] == list(kb.CAUSES)
    assert every.causes == tuple(CauseDoc.of(c) for c in kb.CAUSES.values())  # the JSON `causes` list of before
    assert [d.id for d in every.hazards] == sorted(HAZARDS) and [d.id for d in every.rules] == sorted(RULES)
    data = every.to_dict()
    assert list(data)[:3] == ["schema_version", "result", "causes"] and {"hazards", "rules"} <= set(data)
    code, printed = _explain()
    assert code == 0
    for kind in KINDS:
        assert f"{kind}s: {KINDS[kind]}" in printed
    assert all(i in printed for i in IDS)


def test_an_explanation_saved_before_hazards_and_rules_reads_back():
    old = explanation("XNN001").to_dict()
    del old["hazards"], old["rules"], old["quantization"]
    assert Explanation.from_dict(old) == explanation("XNN001")


def test_unknown_id_is_one_line_naming_the_known_ids_of_each_kind():
    with pytest.raises(XnnfitError) as raised:
        lookup("XNN999")
    message = str(raised.value)
    assert "\n" not in message
    for kind in KINDS:
        assert f"{kind}s {', '.join(e.id for e in ids.of_kind(kind))}" in message
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    res = subprocess.run(
        [sys.executable, "-m", "xnnfit", "explain", "XR999"], capture_output=True, text=True, env=env, timeout=300
    )
    assert res.returncode == 2
    assert [ln for ln in res.stderr.splitlines() if ln.strip()] == [f"error: {message.replace('XNN999', 'XR999')}"]


def test_explain_json_of_a_rule_is_the_explanation(tmp_path):
    out = tmp_path / "xr004.json"
    code, printed = _explain("XR004", "--json", str(out))
    assert code == 0, printed
    saved = Explanation.from_dict(json.loads(out.read_text()))
    assert saved.versions and dataclasses.replace(saved, versions={}) == explanation("XR004")
