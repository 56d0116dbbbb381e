"""SARIF 2.1.0 for GitHub code scanning, from a batch: what GitHub's ingestion rules ask for, and one run per file.

One rule per KB id found (with its documentation, `helpUri` to docs/kb.md), plus one per
batch outcome (a violated budget, a baseline regression, a model the runtime cannot load,
a job that could not run). One result per finding (report.findings: a (model, recipe,
runtime, id, layer) with its node count) and one per failing job, never one per node.
URIs are relative to `%SRCROOT%` (`--sarif-root`, default the git top level); each result
has a `partialFingerprints.primaryLocationLineHash` computed from what identifies it (not
from line numbers), so the same finding keeps its alert across runs and commits; the
run's `automationDetails.id` names the recipes and runtimes checked, so runs over other
sets are separate analyses.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from xnnfit import kb
from xnnfit.batch.manifest import file_of
from xnnfit.batch.result import ERROR, FAILING, GATE, NOT_LOADED, REGRESSION, BatchResult, JobRow
from xnnfit.core.version import __version__
from xnnfit.kb.hazards import HAZARDS
from xnnfit.report.ci import write
from xnnfit.report.findings import Finding, Place, default_root, findings, model_place, relative
from xnnfit.report.kb_doc import KB_DOC_URI, help_uri

SARIF_SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"
INFO_URI = "https://github.com/xnnfit/xnnfit"  # shown by code-scanning UIs next to the rules
SRCROOT = "%SRCROOT%"
OUTCOME_RULES = {  # a job's failing status -> (rule id, title, what to do)
    GATE: ("xnnfit/gate", "a budget is violated", "Fix the model (xnnfit fix) or raise the budget in the manifest."),
    REGRESSION: (
        "xnnfit/regression",
        "worse than the baseline",
        "Find the change that added CPU nodes, partitions or causes (xnnfit check MODEL explains each).",
    ),
    NOT_LOADED: (
        "xnnfit/not-loaded",
        "the runtime cannot load the model",
        "Ship a runtime that knows every op and op version of the model, or convert for the runtime the app ships.",
    ),
    ERROR: (
        "xnnfit/error",
        "the model could not be checked",
        "Run xnnfit check MODEL --debug to see why the conversion or the runtime failed.",
    ),
}


def _rules(ids: list[str]) -> list[dict]:
    rules = []
    for rid in ids:
        outcome = next((o for o in OUTCOME_RULES.values() if o[0] == rid), None)
        if outcome is not None:
            _, title, fix = outcome
            why, level, tags, uri = f"A job of the batch: {title}.", "error", ["ci"], f"{INFO_URI}/blob/main/docs/ci.md"
            markdown = fix
        elif rid in HAZARDS:
            h = HAZARDS[rid]
            title, why, fix, level, tags = h.title, h.why, h.fix, "error", ["correctness", "xnnpack"]
            uri, markdown = help_uri(rid), fix
        else:
            c = kb.get(rid)
            title, why, fix, level, tags = c.title, c.why, c.fix, "warning", ["performance", "xnnpack"]
            uri, markdown = help_uri(rid), f"What to write instead:\n\n```\n{fix}\n```"
        rules.append(
            {
                "id": rid,
                "name": rid.replace("/", "-"),
                "shortDescription": {"text": title[:1024]},
                "fullDescription": {"text": why[:1024]},
                "help": {"text": fix, "markdown": f"{markdown}\n\n[{rid} explained]({uri})"},
                "helpUri": uri,
                "defaultConfiguration": {"level": level},
                "properties": {"tags": tags, "precision": "very-high", "problem.severity": level},
            }
        )
    return rules


def fingerprint(*parts: str) -> str:
    """A stable primaryLocationLineHash: 16 hex digits of what identifies the result, and ':1' as GitHub writes it."""
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:16] + ":1"


def _location(place: Place, root: Path, logical: str | None = None) -> dict:
    rel = relative(place.path, root)
    artifact = {"uri": rel, "uriBaseId": SRCROOT} if rel is not None else {"uri": Path(place.path).resolve().as_uri()}
    loc: dict = {"physicalLocation": {"artifactLocation": artifact, "region": {"startLine": place.line}}}
    if logical:
        loc["logicalLocations"] = [{"name": logical, "kind": "object"}]
    return loc


def _identity(row: JobRow, root: Path) -> tuple[str, str, str]:
    """(the model relative to the root, with a builder's function; recipe; runtime): what a result is about."""
    file = file_of(row.model)
    return ((relative(file, root) or file) + row.model[len(file) :], row.recipe, row.runtime)


def _finding_result(f: Finding, root: Path) -> dict:
    r = f.row
    where = f"layer {f.layer}" if f.layer else "nodes mapped to no layer"
    on = f"{r.recipe}{', ' + r.runtime if r.runtime else ''}"
    title = HAZARDS[f.rule].title if f.rule in HAZARDS else kb.get(f.rule).title
    verb = "computes them wrong" if f.level == "error" else "runs them on CPU kernels"
    text = (
        f"{f.rule}: XNNPACK {verb}: {len(f.nodes)} node(s) ({', '.join(f.ops)}) of {where} in {r.model} ({on}). "
        f"{title[0].upper() + title[1:]}."
    )
    if r.predicted:
        text += f" Predicted from the knowledge base: {r.predicted}."
    model, recipe, runtime = _identity(r, root)
    return {
        "ruleId": f.rule,
        "level": f.level,
        "message": {"text": text},
        "locations": [_location(f.place, root, f"{model}:{f.layer}" if f.layer else model)],
        "partialFingerprints": {"primaryLocationLineHash": fingerprint(model, recipe, runtime, f.rule, f.layer)},
        "properties": {
            "model": r.model,
            "recipe": r.recipe,
            "runtime": r.runtime,
            "layer": f.layer,
            "nodeCount": len(f.nodes),
            "nodes": list(f.nodes),
            "atSource": f.at_source,
        },
    }


def _outcome_result(r: JobRow, root: Path) -> dict:
    rid = OUTCOME_RULES[r.status][0]
    model, recipe, runtime = _identity(r, root)
    return {
        "ruleId": rid,
        "level": "error",
        "message": {"text": f"{r.label}: {'; '.join(r.failures) or OUTCOME_RULES[r.status][1]}"},
        "locations": [_location(model_place(r.model), root, model)],
        "partialFingerprints": {"primaryLocationLineHash": fingerprint(model, recipe, runtime, rid)},
        "properties": {"model": r.model, "recipe": r.recipe, "runtime": r.runtime, "failures": list(r.failures)},
    }


def category(batch: BatchResult) -> str:
    """The analysis category: the recipes and runtimes checked ('xnnfit/fp32+int8/installed')."""
    recipes = sorted({r.recipe for r in batch.rows})
    runtimes = sorted({r.runtime or "installed" for r in batch.rows})
    return f"xnnfit/{'+'.join(recipes) or 'none'}/{'+'.join(runtimes) or 'installed'}"


def sarif(batch: BatchResult, root: str | Path | None = None) -> dict:
    """The SARIF log: one run, its results located relative to `root` (default: the git top level)."""
    base = Path(root).resolve() if root is not None else default_root()
    found = findings(batch, base)
    failing = [r for r in batch.rows if r.status in (*FAILING, ERROR)]
    results = [_finding_result(f, base) for f in found] + [_outcome_result(r, base) for r in failing]
    ids = sorted({f.rule for f in found}) + sorted({OUTCOME_RULES[r.status][0] for r in failing})
    notifications = [
        {"level": "error", "message": {"text": f"{r.label}: {r.failures[0] if r.failures else 'failed'}"}}
        for r in batch.rows
        if r.status == ERROR
    ]
    if batch.incomplete:
        skipped = sum(r.status == "skipped" for r in batch.rows)
        notifications.append(
            {"level": "error", "message": {"text": f"interrupted: {skipped} job(s) did not run; the run is incomplete"}}
        )
    run = {
        "tool": {
            "driver": {"name": "xnnfit", "version": __version__, "informationUri": INFO_URI, "rules": _rules(ids)}
        },
        "automationDetails": {"id": category(batch) + "/"},
        "originalUriBaseIds": {SRCROOT: {"uri": base.as_uri() + "/"}},
        "invocations": [
            {
                "executionSuccessful": not batch.incomplete and not notifications,
                "toolExecutionNotifications": notifications,
            }
        ],
        "results": results,
        "properties": {
            "summary": batch.summary(),
            "outcome": batch.outcome(),
            "kbDocumentation": KB_DOC_URI,
            **({"baseline": batch.baseline.to_dict()} if batch.baseline is not None else {}),
        },
    }
    return {"$schema": SARIF_SCHEMA, "version": "2.1.0", "runs": [run]}


def write_sarif(batch: BatchResult, path: str | Path, *, root: str | Path | None = None, force: bool = False) -> Path:
    """The SARIF document, written atomically."""
    return write(path, json.dumps(sarif(batch, root), indent=1), force=force, flag="--sarif")
