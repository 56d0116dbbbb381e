"""What CI systems read, from a batch: JUnit XML, SARIF 2.1.0 and a Markdown table for a merge-request comment."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

from xnnfit import kb
from xnnfit.batch.jobs import BatchResult
from xnnfit.core.files import write_file
from xnnfit.core.version import __version__
from xnnfit.kb.hazards import HAZARDS
from xnnfit.report.next_step import next_step

SARIF_SCHEMA = "https://docs.oasis-open.org/sarif/sarif/v2.1.0/errata01/os/schemas/sarif-schema-2.1.0.json"
INFO_URI = "https://github.com/xnnfit/xnnfit"  # shown by code-scanning UIs next to the rules


def junit(batch: BatchResult) -> str:
    """One testcase per (model, recipe): gate violations are failures, job errors are errors.

    A failure carries the cause summary.
    """
    rows = batch.rows
    suites = ET.Element("testsuites", name="xnnfit")
    suite = ET.SubElement(
        suites,
        "testsuite",
        name="xnnfit check",
        tests=str(len(rows)),
        failures=str(sum(r.status == "gate" for r in rows)),
        errors=str(sum(r.status == "error" for r in rows)),
        time=f"{sum(r.seconds for r in rows):.3f}",
    )
    for r in rows:
        case = ET.SubElement(suite, "testcase", classname=r.model, name=r.recipe, time=f"{r.seconds:.3f}")
        summary = f"{r.cpu_nodes} CPU node(s), {r.partitions} partition(s); causes: {', '.join(r.causes) or 'none'}"
        if r.status == "gate":
            node = ET.SubElement(case, "failure", message="; ".join(r.failures), type="gate")
            node.text = summary
        elif r.status == "error":
            node = ET.SubElement(case, "error", message=r.failures[0] if r.failures else "failed", type="error")
            node.text = "\n".join(r.failures)
        else:
            ET.SubElement(case, "system-out").text = summary
    if batch.incomplete:
        ET.SubElement(suite, "system-err").text = "the batch was interrupted: jobs that did not finish are missing"
    return ET.tostring(suites, encoding="unicode", xml_declaration=True)


def _rules(batch: BatchResult) -> list[dict]:
    ids = sorted(
        {c for m in batch.models for d in m.recipes if d.ok for n in d.observed if not n.delegated for c in n.causes}
        | {f.hazard for m in batch.models for d in m.recipes if d.ok for f in d.findings}
    )
    rules = []
    for cid in ids:
        entry, level = (HAZARDS[cid], "error") if cid in HAZARDS else (kb.get(cid), "warning")
        rules.append(
            {
                "id": cid,
                "name": entry.title,
                "shortDescription": {"text": entry.title},
                "fullDescription": {"text": entry.why},
                "help": {"text": entry.fix},
                "defaultConfiguration": {"level": level},
            }
        )
    return rules


def _uri(path: str) -> str:
    """A path relative to the working folder (the repo root in CI, as code-scanning UIs expect), else a file: URI."""
    p = Path(path)
    try:
        return p.resolve().relative_to(Path.cwd().resolve()).as_posix()
    except ValueError:
        return p.resolve().as_uri()


def _location(path: str, line: int | None) -> dict:
    loc: dict = {"physicalLocation": {"artifactLocation": {"uri": _uri(path)}}}
    if line:
        loc["physicalLocation"]["region"] = {"startLine": line}
    return loc


def _source_location(source: str | None, model: str) -> dict:
    """The Keras source file:line when known, else the model file."""
    if source and ":" in source:
        path, _, line = source.rpartition(":")
        if line.isdigit():
            return _location(path, int(line))
    return _location(model.rsplit(":", 1)[0] if ".py:" in model else model, None)


def sarif(batch: BatchResult) -> dict:
    """SARIF 2.1.0: one rule per cause (and hazard) id, one result per fallback group.

    A fallback group is one (model, recipe, cause, Keras layer).
    """
    results = []
    for m in batch.models:
        for d in m.recipes:
            if not d.ok:
                continue
            groups: dict[tuple[str, str], list] = {}
            for n in d.observed:
                if not n.delegated:
                    for c in n.causes or ("unexplained",):
                        groups.setdefault((c, n.layer or ""), []).append(n)
            for (cid, layer), nodes in sorted(groups.items()):
                if cid == "unexplained":
                    continue  # not a KB rule: reported in the summary and the JUnit case
                ops = ", ".join(sorted({n.op for n in nodes}))
                where = f" in layer {layer}" if layer else ""
                results.append(
                    {
                        "ruleId": cid,
                        "level": "warning",
                        "message": {
                            "text": f"{len(nodes)} node(s) ({ops}){where} run on CPU kernels ({d.recipe}): "
                            f"{kb.get(cid).title}."
                        },
                        "locations": [_source_location(next((n.source for n in nodes if n.source), None), m.model)],
                        "properties": {"model": m.model, "recipe": d.recipe, "nodes": [n.index for n in nodes]},
                    }
                )
            for f in d.findings:
                results.append(
                    {
                        "ruleId": f.hazard,
                        "level": "error",
                        "message": {"text": f"node {f.node} ({f.op}): {f.message}"},
                        "locations": [_source_location(None, m.model)],
                        "properties": {"model": m.model, "recipe": d.recipe},
                    }
                )
    return {
        "$schema": SARIF_SCHEMA,
        "version": "2.1.0",
        "runs": [
            {
                "tool": {
                    "driver": {
                        "name": "xnnfit",
                        "version": __version__,
                        "informationUri": INFO_URI,
                        "rules": _rules(batch),
                    }
                },
                "results": results,
            }
        ],
    }


def markdown(batch: BatchResult, regressions: list[str] | None = None) -> str:
    """A table fit for a merge-request comment, worst first."""
    s = batch.summary()
    lines = [
        f"**xnnfit check**: {s['jobs']} job(s) over {s['models']} model(s): {s['ok']} ok, "
        f"{s['gate_failures']} over budget, {s['errors']} error(s)"
        + (" — **interrupted, incomplete**" if batch.incomplete else ""),
        "",
    ]
    lines += [
        "| model | recipe | nodes | CPU nodes | partitions | unexplained | status |",
        "|---|---|---:|---:|---:|---:|---|",
    ]
    for r in batch.worst_first():
        status = {
            "ok": "ok",
            "gate": "over budget: " + "; ".join(r.failures),
            "error": "error: " + (r.failures[0] if r.failures else ""),
        }[r.status]
        lines.append(
            f"| `{r.model}` | {r.recipe} | {r.nodes} | {r.cpu_nodes} | {r.partitions} | "
            f"{r.unexplained} | {_md(status)} |"
        )
    if regressions:
        lines += ["", "**Regressions against the baseline**", ""] + [f"- {_md(x)}" for x in regressions]
    steps = [(m.model, d, next_step(m.model, d)) for m in batch.models for d in m.recipes if d.ok and not _whole(d)]
    if steps:
        lines += ["", "**Next steps**", ""]
        lines += [f"- `{_md(model)}` ({d.recipe}): `{_md(s.command)}` — {_md(s.why)}" for model, d, s in steps]
    return "\n".join(lines) + "\n"


def _whole(d) -> bool:
    """XNNPACK runs the model whole and computes it right: nothing for a merge request to act on."""
    return not d.summary()["cpu_nodes"] and not d.findings and not d.predicted and not d.not_loaded


def _md(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")[:300]


def write(path: str | Path, text: str, *, force: bool = False, flag: str = "") -> Path:
    """Write one CI file atomically; an existing file only with `force` (files.py's policy)."""
    return write_file(Path(path), text.encode("utf-8"), force=force, flag=flag)


def write_sarif(batch: BatchResult, path: str | Path, *, force: bool = False) -> Path:
    """The SARIF document, written atomically."""
    return write(path, json.dumps(sarif(batch), indent=1), force=force, flag="--sarif")
