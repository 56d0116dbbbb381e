"""What CI systems read from a batch: JUnit XML (pytest's conventions), a Markdown comment, GitHub annotations.

Each reads the same rows (batch.result), so each names the same failures: which gate with
its figure, the baseline regressions, the error, why the runtime could not load the model,
predicted verdicts marked as such, and the jobs an interrupted run did not run. SARIF is
report/sarif.py.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

from xnnfit.batch.manifest import file_of
from xnnfit.batch.result import ERROR, FAILING, OK, SKIPPED, STATUS_TEXT, BatchResult, JobRow
from xnnfit.core.files import write_file
from xnnfit.report.findings import findings, model_place, relative
from xnnfit.report.next_step import next_step


def classname(model: str) -> str:
    """A JUnit classname as pytest writes them: folders joined by dots, no dots inside a name.

    'models/v1.2/mobilenet.tflite' -> 'models.v1_2.mobilenet_tflite'; a builder's function is
    the last part ('text/enc.py:build' -> 'text.enc_py.build').
    """
    file = file_of(model)
    parts = [p.replace(".", "_") for p in Path(file).as_posix().split("/") if p not in ("", ".", "..")]
    if ".py:" in model:
        parts.append(model.rsplit(":", 1)[1].replace(".", "_"))
    return ".".join(parts) or "model"


def _summary(r: JobRow) -> str:
    text = f"{r.nodes} node(s), {r.cpu_nodes} on CPU kernels, {r.partitions} partition(s); causes: "
    text += ", ".join(r.causes) or "none"
    if r.ignored:
        text += f"; accepted by the manifest: {', '.join(r.ignored)}"
    if r.predicted:
        text += f"\npredicted from the knowledge base, not observed: {r.predicted}"
    if r.median_ms is not None:
        text += f"\nlatency {r.median_ms:.3g} ms (p10-p90 {r.p10_ms:.3g}-{r.p90_ms:.3g}), XNNPACK, 1 thread"
    return text


def junit(batch: BatchResult) -> str:
    """One testcase per job, with its own duration; the suite's time is the batch's wall time.

    A violated budget, a baseline regression and a model the runtime cannot load are
    failures (type = the row's status), a job that could not run an error, a job an
    interrupted run did not reach is skipped. The baseline's other changes (improvements,
    added, removed, renamed) are the suite's properties and output.
    """
    rows = batch.rows
    counts = {
        "tests": str(len(rows)),
        "failures": str(sum(r.status in FAILING for r in rows)),
        "errors": str(sum(r.status == ERROR for r in rows)),
        "skipped": str(sum(r.status == SKIPPED for r in rows)),
        "time": f"{batch.seconds:.3f}",
    }
    suites = ET.Element("testsuites", name="xnnfit", **counts)
    suite = ET.SubElement(suites, "testsuite", name="xnnfit check", **counts)
    props = ET.SubElement(suite, "properties")
    facts = {"outcome": batch.outcome(), "incomplete": str(batch.incomplete).lower(), "cpu": batch.cpu}
    if batch.baseline is not None:
        facts["baseline"] = batch.baseline.baseline
        for kind in ("regressions", "improvements", "added", "removed", "renamed"):
            facts[f"baseline.{kind}"] = str(len(getattr(batch.baseline, kind)))
    for name, value in facts.items():
        if value:
            ET.SubElement(props, "property", name=name, value=value)
    changed = {}
    if batch.baseline is not None:
        for c in batch.baseline.added:
            changed[(c.model, c.recipe, c.runtime)] = "added since the baseline"
        for c in batch.baseline.renamed:
            changed[(c.model, c.recipe, c.runtime)] = f"renamed from {c.was}"
        for c in batch.baseline.improvements:
            changed[(c.model, c.recipe, c.runtime)] = "improved: " + c.what
    for r in rows:
        name = r.recipe + (f"[{r.runtime}]" if r.runtime else "")
        case = ET.SubElement(
            suite, "testcase", classname=classname(r.model), name=name, file=file_of(r.model), time=f"{r.seconds:.3f}"
        )
        if r.key in changed or r.predicted or r.runtime:
            cprops = ET.SubElement(case, "properties")
            for key, value in (("baseline", changed.get(r.key)), ("predicted", r.predicted), ("runtime", r.runtime)):
                if value:
                    ET.SubElement(cprops, "property", name=key, value=value)
        if r.status in FAILING:
            node = ET.SubElement(case, "failure", message="; ".join(r.failures), type=r.status)
            node.text = "\n".join([*r.failures, _summary(r)])
        elif r.status == ERROR:
            node = ET.SubElement(case, "error", message=r.failures[0] if r.failures else "failed", type="error")
            node.text = "\n".join(r.failures)
        elif r.status == SKIPPED:
            ET.SubElement(case, "skipped", message=r.failures[0] if r.failures else "not run")
        else:
            ET.SubElement(case, "system-out").text = _summary(r)
    out = []
    if batch.baseline is not None:
        out += [f"{kind}: {text}" for kind, text in batch.baseline.lines()] + list(batch.baseline.notes)
        if batch.baseline.unchanged:
            out.insert(0, "baseline: no change")
    if out:
        ET.SubElement(suite, "system-out").text = "\n".join(out)
    if batch.incomplete:
        ET.SubElement(
            suite, "system-err"
        ).text = f"incomplete: the batch was interrupted; {counts['skipped']} job(s) did not run (skipped)"
    return ET.tostring(suites, encoding="unicode", xml_declaration=True)


def status_text(r: JobRow) -> str:
    """'over budget: 4 partitions > --max-partitions 3', 'ok (predicted)': a row's status and why, in one line."""
    text = STATUS_TEXT[r.status] + (": " + "; ".join(r.failures) if r.failures and r.status != OK else "")
    return text + (" (predicted)" if r.predicted and r.status != SKIPPED else "")


def markdown(batch: BatchResult) -> str:
    """A comment for a merge request: the counts, a table worst first, the baseline's changes, next steps."""
    s = batch.summary()
    head = (
        f"**xnnfit check**: {s['jobs']} job(s) over {s['models']} model(s): {s['ok']} ok, {s['gate_failures']} over "
        f"budget, {s['regressions']} regressed, {s['not_loaded']} not loaded, {s['errors']} error(s)"
    )
    if s["skipped"]:
        head += f", {s['skipped']} not run"
    if batch.incomplete:
        head += " — **interrupted, incomplete**"
    lines = [head, ""]
    if s["predicted"]:
        lines += [f"{s['predicted']} job(s) have verdicts predicted from the knowledge base, not observed.", ""]
    runtime = any(r.runtime for r in batch.rows)
    cols = ["model", "recipe", *(["runtime"] if runtime else []), "nodes", "CPU nodes", "partitions", "unexplained"]
    lines += ["| " + " | ".join([*cols, "status"]) + " |", "|" + "---|" * 2 + "---|" * runtime + "---:|" * 4 + "---|"]
    for r in batch.worst_first():
        cells = [f"`{_md(r.model)}`", r.recipe, *([r.runtime or "installed"] if runtime else [])]
        cells += [str(r.nodes), str(r.cpu_nodes), str(r.partitions), str(r.unexplained), _md(status_text(r))]
        lines.append("| " + " | ".join(cells) + " |")
    if batch.baseline is not None:
        lines += ["", f"**Against the baseline** (`{_md(batch.baseline.baseline)}`)", ""]
        changes = batch.baseline.lines()
        lines += [f"- {kind}: {_md(text)}" for kind, text in changes] or ["- no change"]
        lines += [f"- {_md(n)}" for n in batch.baseline.notes]
    if batch.cpu:
        lines += ["", f"Timed on {_md(batch.cpu)}."]
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


def _escape(text: str, prop: bool = False) -> str:
    """GitHub workflow-command escaping (data; properties also escape ':' and ',')."""
    text = text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")
    return text.replace(":", "%3A").replace(",", "%2C") if prop else text


def annotations(batch: BatchResult, root: Path) -> str:
    """`--output-format github`: one workflow command per failing job and per finding, as ruff and mypy print them.

    Paths are relative to `root` (the repository root GitHub resolves them against).
    """
    lines = []

    def command(level: str, path: str, line: int, title: str, message: str) -> str:
        where = relative(path, root) or path
        return f"::{level} file={_escape(where, True)},line={line},title={_escape(title, True)}::{_escape(message)}"

    for r in batch.worst_first():
        if r.status in (*FAILING, ERROR):
            place = model_place(r.model)
            text = "; ".join(r.failures) or STATUS_TEXT[r.status]
            title = f"xnnfit {STATUS_TEXT[r.status]}"
            lines.append(command("error", place.path, place.line, title, f"{r.label}: {text}"))
    for f in findings(batch, root):
        where = f"layer {f.layer}" if f.layer else "no layer"
        verb = "computed wrong by XNNPACK" if f.level == "error" else "on CPU kernels"
        message = f"{len(f.nodes)} node(s) ({', '.join(f.ops)}) of {where} {verb}: {f.row.label}"
        lines.append(command(f.level, f.place.path, f.place.line, f.rule, message))
    if batch.baseline is not None:
        changes = [f"{kind}: {text}" for kind, text in batch.baseline.lines() if kind != "regression"]
        lines += [f"::notice title=xnnfit baseline::{_escape(c)}" for c in changes]
    if batch.incomplete:
        lines.append("::error title=xnnfit::interrupted: the run is incomplete")
    return "\n".join(lines) + ("\n" if lines else "")


def write(path: str | Path, text: str, *, force: bool = False, flag: str = "") -> Path:
    """Write one CI file atomically; an existing file only with `force` (files.py's policy)."""
    return write_file(Path(path), text.encode("utf-8"), force=force, flag=flag)
