"""Commands over many models: `check` of a batch (with its CI files and baseline) and `fix` of a folder."""

from __future__ import annotations

import dataclasses
import signal
from pathlib import Path
from typing import Any

from rich.table import Table

from xnnfit import api
from xnnfit.cli.session import (
    EXIT_GATE,
    EXIT_USAGE,
    err,
    guarded,
    models_read,
    out,
    progress,
    signal_received,
)
from xnnfit.core.errors import XnnfitError
from xnnfit.core.files import Output, check_outputs, os_error
from xnnfit.explain.diagnosis import Gates
from xnnfit.report import terminal
from xnnfit.report.json import write_json


@dataclasses.dataclass(frozen=True)
class BatchCheck:
    """What `xnnfit check` over several models asks for: the jobs, where they run, and the files to write."""

    names: tuple[str, ...]
    manifest: str | None
    recipe: list[str] | None
    gates: Gates
    jobs: int | None
    options: dict[str, Any]  # api.check's options for every job (its runtime: one SPEC, several or 'all')
    json_path: str | None = None
    junit: str | None = None
    sarif: str | None = None
    sarif_root: str | None = None  # SARIF URIs are relative to it (default: the git top level)
    markdown: str | None = None
    baseline: str | None = None
    write_baseline: str | None = None
    cache: str | None = ""  # None: --no-cache; the folder follows --cache-dir (files.cache_root)
    details: bool = False
    quiet: bool = False
    debug: bool = False
    backend: str = "local"
    ray_address: str | None = None
    bench_runs: int = 0
    force: bool = False
    output_format: str = "text"  # 'github': workflow annotations instead of the table


def check_batch(req: BatchCheck) -> int:
    """A batch: every job in parallel, one progress bar, summary worst first, baseline, CI files; the exit code."""
    from xnnfit.batch import baseline as baselines
    from xnnfit.batch import jobs as batches
    from xnnfit.batch.cache import ResultCache, default_dir
    from xnnfit.batch.manifest import merge, read_manifest
    from xnnfit.model.recipes import parse_recipes
    from xnnfit.report import ci, sarif
    from xnnfit.report.findings import default_root

    recipes = tuple(r.name for r in parse_recipes(req.recipe)) if req.recipe else ("fp32",)
    specs = merge(read_manifest(req.manifest) if req.manifest else [], list(req.names), recipes, req.gates)
    inputs = [
        *models_read(s.path for s in specs),
        ("the --manifest file", req.manifest),
        ("the --baseline file", req.baseline),
        *(("a --calibration file", s.calibration) for s in specs),
        ("the --calibration file", req.options.get("calibration")),
    ]
    outputs = [
        Output("--json", req.json_path),
        Output("--write-baseline", req.write_baseline),
        Output("--junit", req.junit),
        Output("--sarif", req.sarif),
        Output("--markdown", req.markdown),
    ]
    with guarded(req.force, inputs, outputs):
        root = Path(req.sarif_root).resolve() if req.sarif_root else Path(".")
        if req.sarif_root and not root.is_dir():
            raise XnnfitError(f"--sarif-root {req.sarif_root!r} is not a folder. Pass the repository's root folder.")
        if not req.sarif_root and (req.sarif or req.output_format == "github"):
            root = default_root()  # paths code scanning and annotations resolve: from the git top level
        cache = ResultCache(default_dir()) if req.cache is not None else None
        previous = baselines.load(req.baseline) if req.baseline else None  # a bad baseline fails before the work
        runtimes = batches.runtime_specs(req.options.get("runtime"))
        total = sum(len(s.recipes) for s in specs) * len(runtimes)
        with progress(req.quiet, f"checking {len(specs)} model(s)", total) as step:
            result = batches.run_batch(
                specs, jobs=req.jobs, cache=cache, options=req.options, backend=req.backend,
                ray_address=req.ray_address, bench_runs=req.bench_runs,
                on_progress=lambda d, t, f, last: step(f"{last}, {f} failed" if f else last),
            )  # fmt: skip
        if previous is not None:
            result = baselines.apply(result, baselines.compare(result, previous))
        if req.output_format == "github":
            out.print(ci.annotations(result, root), markup=False, highlight=False, soft_wrap=True, end="")
        else:
            if req.details:
                for m in result.models:
                    terminal.render_check(out, m)
            terminal.render_batch(out, result)
            if result.baseline is not None:
                terminal.render_baseline(out, result.baseline)
        written = [
            (req.json_path, lambda p: write_json(result, p, force=req.force)),
            (req.write_baseline, lambda p: write_json(result, p, force=req.force, flag="--write-baseline")),
            (req.junit, lambda p: ci.write(p, ci.junit(result), force=req.force, flag="--junit")),
            (req.sarif, lambda p: sarif.write_sarif(result, p, root=root, force=req.force)),
            (req.markdown, lambda p: ci.write(p, ci.markdown(result), force=req.force, flag="--markdown")),
        ]
        for path, writer in written:
            if path:
                terminal.render_written(err, writer(path))
    for r in result.rows:
        if r.status == "error":
            terminal.render_error(err, f"{r.label}: {r.failures[0] if r.failures else 'failed'}")
    outcome = result.outcome()
    if outcome == "incomplete":
        signum = signal_received() or signal.SIGINT
        err.print(
            f"interrupted ({signal.Signals(signum).name}): the results above are the jobs that finished (marked "
            "incomplete in the files, the others skipped); the next run resumes from the cache"
        )
        return 128 + signum
    return {"error": EXIT_USAGE, "fail": EXIT_GATE}.get(outcome, 0)


def fix_many(
    names: list[str], output: str | None, fixing: dict[str, Any], json_path: str | None, *, quiet: bool
) -> int:
    """Fix every model of a folder or glob into -o DIR, one after another; the exit code.

    Not in parallel: fix races latencies, and parallel runs would skew them. `fixing`
    holds api.fix's options for every model.
    """
    folder = Path(output) if output and not fixing["dry_run"] else None
    stems = [Path(n.rsplit(":", 1)[0] if ".py:" in n else n).stem for n in names]
    dupes = sorted({s for s in stems if stems.count(s) > 1})
    if dupes:
        raise XnnfitError(
            f"several models are named {', '.join(dupes)}: their fixed files would collide in "
            f"{output}. Fix those folders separately."
        )
    targets = tuple(f"{stem}_fixed.tflite" for stem in stems)
    force = fixing["force"]
    check_outputs([Output("-o", folder, folder=True, names=targets), Output("--json", json_path)], force=force)
    made = folder is not None and not folder.exists()
    if folder is not None:
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise os_error(folder, exc, "create the folder") from exc
    table = Table(box=None, header_style="bold")
    for col in ("model", "kept", "CPU nodes", "partitions", "written"):
        table.add_column(col)
    docs, failures = [], 0
    with progress(quiet, f"fixing {len(names)} model(s)", len(names)) as step:
        for name, target in zip(names, targets):
            try:
                r = api.fix(name, folder / target if folder is not None else None, **fixing)
            except XnnfitError as exc:
                failures += 1
                terminal.render_error(err, f"{name}: {exc}")
                table.add_row(name, "[red]error[/]", "", "", "")
                step(name)
                continue
            b, a = r.rewrite.before, r.rewrite.after
            kept = ", ".join(f"{o.rule}×{o.count}" for o in r.rewrite.applied) or "none"
            nodes = f"{b.cpu_nodes} -> {a.cpu_nodes}" if b and a else ""
            parts = f"{b.partitions} -> {a.partitions}" if b and a else ""
            table.add_row(name, kept, nodes, parts, r.output or "-")
            docs.append(r.to_dict())
            step(name)
    out.print(table)
    if made and folder is not None and not any(folder.iterdir()):
        folder.rmdir()  # nothing was fixed: leave no empty folder behind
    if json_path:
        from xnnfit.core.record import SCHEMA_VERSION

        versions = docs[0]["versions"] if docs else {}
        doc = {"schema_version": SCHEMA_VERSION, "result": "fix-batch", "versions": versions, "models": docs}
        terminal.render_written(err, write_json(doc, json_path, force=force))
    return EXIT_USAGE if failures else 0
