"""The stable ids: every KB cause, hazard and rewrite rule in one table, and what `xnnfit explain` shows of each.

Causes (`XNN0xx`, kb/) say why XNNPACK leaves a node on CPU kernels; hazards (XNN040,
XNN041, kb/hazards.py) are nodes it takes and computes wrong; quantization causes (XNN036-039,
XNN042, kb/quant_error.py) say why a quantized tensor lost the float model's values; rules
(`XR0xx`, rewrite/rules/) are what `xnnfit fix` applies. `IDS` maps each id to its kind and record;
a cause or hazard names the rules that remove it (`rewrites`), a rule the ids it removes
(`fixes`), and the docs show both sides. The docs are plain data, without probe builders.
"""

from __future__ import annotations

import dataclasses
from typing import ClassVar

from xnnfit import kb
from xnnfit.core.errors import XnnfitError
from xnnfit.core.record import Record
from xnnfit.kb import versions
from xnnfit.kb.cause import Cause
from xnnfit.kb.hazards import HAZARDS, Hazard
from xnnfit.kb.quant_error import CAUSES as QUANT_CAUSES
from xnnfit.kb.quant_error import QuantCause
from xnnfit.rewrite.rule import Rule
from xnnfit.rewrite.rules import RULES

CAUSE, HAZARD, QUANT, RULE = "cause", "hazard", "quantization", "rule"
KINDS = {  # kind -> what an id of that kind is
    CAUSE: "why XNNPACK leaves a node on CPU kernels",
    HAZARD: "a node XNNPACK takes and computes wrong",
    QUANT: "why a quantized tensor loses the float model's values",
    RULE: "a rewrite `xnnfit fix` applies",
}


@dataclasses.dataclass(frozen=True)
class StableId:
    """One id of the table: its kind and the record it names (a kb Cause or Hazard, a rewrite Rule)."""

    id: str
    kind: str
    record: Cause | Hazard | QuantCause | Rule

    @property
    def title(self) -> str:
        """The record's title."""
        return self.record.title


def _table() -> dict[str, StableId]:
    """Causes, hazards, quantization causes, then rules, each by id; an id used twice is an error in the KB."""
    entries = [
        *(StableId(c.id, CAUSE, c) for c in kb.CAUSES.values()),
        *(StableId(h.id, HAZARD, h) for h in sorted(HAZARDS.values(), key=lambda h: h.id)),
        *(StableId(q.id, QUANT, q) for q in sorted(QUANT_CAUSES.values(), key=lambda q: q.id)),
        *(StableId(r.id, RULE, r) for r in sorted(RULES.values(), key=lambda r: r.id)),
    ]
    table = {e.id: e for e in entries}
    if len(table) != len(entries):
        twice = sorted({e.id for e in entries if sum(o.id == e.id for o in entries) > 1})
        raise AssertionError(f"stable ids used twice: {', '.join(twice)}")
    return table


IDS: dict[str, StableId] = _table()


def of_kind(kind: str) -> list[StableId]:
    """The ids of one kind, in table order."""
    return [e for e in IDS.values() if e.kind == kind]


def lookup(stable_id: str) -> StableId:
    """The table entry for an id (any case); XnnfitError lists the known ids of each kind on one line."""
    key = stable_id.strip().upper()
    if key not in IDS:
        known = "; ".join(f"{kind}s {', '.join(e.id for e in of_kind(kind))}" for kind in KINDS)
        raise XnnfitError(f"no KB entry {stable_id!r}. Known ids: {known}.")
    return IDS[key]


def listed_by(rule_id: str) -> tuple[str, ...]:
    """The causes and hazards that name `rule_id` among the rules that remove them."""
    return tuple(e.id for e in IDS.values() if e.kind != RULE and rule_id in e.record.rewrites)


@dataclasses.dataclass(frozen=True)
class CauseDoc(Record):
    """One cause: what it is, when it holds, why XNNPACK refuses it, what to write instead, what proves it."""

    id: str
    title: str
    ops: tuple[str, ...]
    when: str
    why: str
    fix: str
    example: str
    rewrites: tuple[str, ...] = ()
    probes: tuple[str, ...] = ()  # 'rejected SELECT (fp32)', ...
    runtimes: tuple[tuple[str, str], ...] = ()  # (runtime spec, what kb/versions.json says of the cause there)

    @classmethod
    def of(cls, cause: Cause) -> CauseDoc:
        """The doc of a KB entry."""
        probes = tuple(f"{p.expect} {p.op} ({p.recipe})" for p in cause.probes)
        return cls(
            cause.id,
            cause.title,
            cause.ops,
            cause.condition.describe(),
            cause.why,
            cause.fix,
            cause.example,
            cause.rewrites,
            probes,
            _on_runtimes(cause.id),
        )


def _on_runtimes(cause_id: str) -> tuple[tuple[str, str], ...]:
    """Per runtime of the table: 'holds'/'differs'/'unproven', or for the target-only causes where they apply."""
    from xnnfit.runtime.targets import default

    table = versions.load().get("runtimes", {})
    installed = table.get(default().spec, {}).get("ops", {})
    out = []
    for spec, entry in table.items():
        ops = entry.get("ops", {})
        if cause_id == "XNN050":
            refused = sum(1 for k, v in ops.items() if v == versions.CPU and installed.get(k) == versions.DELEGATED)
            out.append((spec, f"{refused} op forms the installed runtime delegates are refused"))
        elif cause_id == "XNN051":
            out.append(
                (
                    spec,
                    "applies"
                    if ops.get("graph:dynamic-tensors/fp32") == versions.CPU
                    else "never (partial delegation)",
                )
            )
        else:
            out.append((spec, entry.get("causes", {}).get(cause_id, "unproven")))
    return tuple(out)


def probe_lines(probes) -> tuple[str, ...]:
    """'holds: <model>' / 'control: <model>' for each probe of a hazard or a quantization cause."""
    return tuple(f"{'holds' if p.holds else 'control'}: {p.what}" for p in probes)


@dataclasses.dataclass(frozen=True)
class HazardDoc(Record):
    """One hazard: what XNNPACK computes wrong, why, the way out, the rules that repair it, what proves it."""

    id: str
    title: str
    why: str
    fix: str
    severity: str
    rewrites: tuple[str, ...] = ()
    probes: tuple[str, ...] = ()  # 'holds: <model>' or 'control: <model>'

    @classmethod
    def of(cls, hazard: Hazard) -> HazardDoc:
        """The doc of a KB hazard."""
        probes = probe_lines(hazard.probes)
        return cls(hazard.id, hazard.title, hazard.why, hazard.fix, hazard.severity, hazard.rewrites, probes)


@dataclasses.dataclass(frozen=True)
class QuantCauseDoc(Record):
    """One quantization cause: when it holds (on a tensor's measured statistics), why, the way out, its probes."""

    id: str
    title: str
    when: str
    why: str
    fix: str
    keeps_float: bool = True  # int8-repaired keeps the op in float for it
    probes: tuple[str, ...] = ()  # 'holds: <model>' or 'control: <model>'

    @classmethod
    def of(cls, cause: QuantCause) -> QuantCauseDoc:
        """The doc of a quantization cause."""
        probes = probe_lines(cause.probes)
        return cls(cause.id, cause.title, cause.when, cause.why, cause.advice, cause.keeps_float, probes)


@dataclasses.dataclass(frozen=True)
class RuleDoc(Record):
    """One rewrite rule: what it does, the cause and hazard ids it removes, how exact it is, who points at it."""

    id: str
    title: str
    fixes: tuple[str, ...]
    exactness: str  # 'exact' or 'tolerance'
    tolerance: float | None = None
    judged_against: str = "current"
    listed_by: tuple[str, ...] = ()  # the causes and hazards that name it in their rewrites

    @classmethod
    def of(cls, rule: Rule) -> RuleDoc:
        """The doc of a rewrite rule."""
        return cls(
            rule.id, rule.title, rule.fixes, rule.exactness, rule.tolerance, rule.judged_against, listed_by(rule.id)
        )


@dataclasses.dataclass(frozen=True)
class Explanation(Record):
    """explain(): one id's doc, or the docs of every id; `causes` as before, then `hazards` and `rules`."""

    RESULT: ClassVar[str] = "explain"

    causes: tuple[CauseDoc, ...]
    versions: dict[str, str] = dataclasses.field(default_factory=dict)
    hazards: tuple[HazardDoc, ...] = ()
    rules: tuple[RuleDoc, ...] = ()
    quantization: tuple[QuantCauseDoc, ...] = ()


_DOCS = {CAUSE: CauseDoc, HAZARD: HazardDoc, QUANT: QuantCauseDoc, RULE: RuleDoc}


def explanation(stable_id: str | None = None, runtime_versions: dict[str, str] | None = None) -> Explanation:
    """The doc of one id (XnnfitError lists the known ones), or of every id, grouped by kind."""
    chosen = [lookup(stable_id)] if stable_id else list(IDS.values())
    docs = {kind: tuple(_DOCS[kind].of(e.record) for e in chosen if e.kind == kind) for kind in KINDS}
    return Explanation(docs[CAUSE], dict(runtime_versions or {}), docs[HAZARD], docs[RULE], docs[QUANT])
