"""Baselines: this batch against an earlier one, job by job; regressions fail, everything else that changed is reported.

A job is identified by its path, recipe and runtime: a file overwritten with other bytes
is compared with what was there. Content only recognises a rename: a path the baseline
did not have, whose bytes the baseline had under a path that is gone. Timings are
compared only when both runs were timed on the same CPU (measure.machine).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from xnnfit.batch.result import ERROR, OK, REGRESSION, SKIPPED, BaselineDiff, BatchResult, Change, JobRow
from xnnfit.core.errors import XnnfitError
from xnnfit.core.files import read_json
from xnnfit.core.policy import DEFAULT_POLICY


@dataclasses.dataclass(frozen=True)
class Baseline:
    """A baseline file's jobs and the CPU its timings were taken on."""

    path: str
    rows: tuple[JobRow, ...]
    cpu: str = ""


def load(path: str | Path) -> Baseline:
    """The baseline written with --write-baseline (or a batch --json)."""
    p = Path(path)
    data = read_json(p, "Pass a baseline written with --write-baseline FILE.")
    if not isinstance(data, dict) or data.get("result") != "batch" or "rows" not in data:
        raise XnnfitError(
            f"{str(p)!r} is not a batch baseline "
            f"(result={data.get('result') if isinstance(data, dict) else None!r}). Write one with "
            "--write-baseline FILE."
        )
    try:
        rows = tuple(JobRow.from_dict(r) for r in data["rows"])
    except (TypeError, KeyError, ValueError) as exc:
        raise XnnfitError(
            f"{str(p)!r} has rows xnnfit cannot read ({exc}). Write it again with --write-baseline."
        ) from None
    return Baseline(str(p), rows, str(data.get("cpu") or ""))


def compare(current: BatchResult, baseline: Baseline) -> BaselineDiff:
    """Regressions: new CPU nodes, more partitions, new causes, no longer loads or runs, slower (same CPU, both timed).

    Slower (beyond the noise) means what `fix` means by it (policy.VerifyPolicy.slower_margin):
    the median above the baseline's by the margin and the new p10 above the baseline's p90.
    Skipped jobs (an interrupted run) are neither compared nor counted as removed.
    """
    old = {r.key: r for r in baseline.rows if r.status != SKIPPED}
    now_paths = {r.model for r in current.rows}
    gone = {r.model for r in old.values()} - now_paths
    cpu = current.cpu if current.cpu and current.cpu == baseline.cpu else ""  # timings compared only on one CPU
    regressions, improvements, added, renamed = [], [], [], []
    matched: set[tuple[str, str, str]] = set()
    for r in current.rows:
        if r.status == SKIPPED:
            matched.add(r.key)
            continue
        before = old.get(r.key)
        if before is None and r.content_hash:  # a new path: a rename if its bytes were under a path that is gone
            before = next(
                (o for o in old.values() if o.model in gone and _same_bytes(o, r) and o.key not in matched), None
            )
            if before is not None:
                renamed.append(Change(r.model, r.recipe, r.runtime, f"renamed from {before.model}", before.model))
        if before is None:
            added.append(Change(r.model, r.recipe, r.runtime, "not in the baseline"))
            continue
        matched.add(before.key)
        for kind, what in _changes(before, r, cpu):
            (regressions if kind == REGRESSION else improvements).append(Change(r.model, r.recipe, r.runtime, what))
    removed = [Change(o.model, o.recipe, o.runtime, "in the baseline, not in this run") for k, o in old.items()
               if k not in matched and k not in {r.key for r in current.rows}]  # fmt: skip
    notes = []
    if current.cpu and baseline.cpu and current.cpu != baseline.cpu:
        notes.append(f"timings not compared: the baseline was timed on {baseline.cpu}, this run on {current.cpu}")
    elif current.cpu and not baseline.cpu:
        notes.append("timings not compared: the baseline holds none (write it with --bench)")
    return BaselineDiff(
        baseline.path, tuple(regressions), tuple(improvements), tuple(added), tuple(removed), tuple(renamed),
        tuple(notes),
    )  # fmt: skip


def apply(current: BatchResult, diff: BaselineDiff) -> BatchResult:
    """The batch with the diff attached and each regressed job's row saying so (status 'regression' if it was ok)."""
    lines: dict[tuple[str, str, str], list[str]] = {}
    for c in diff.regressions:
        lines.setdefault((c.model, c.recipe, c.runtime), []).append(f"vs baseline: {c.what}")
    rows = []
    for r in current.rows:
        extra = lines.get(r.key)
        if extra:
            status = REGRESSION if r.status == OK else r.status
            r = dataclasses.replace(r, status=status, failures=(*r.failures, *extra))
        rows.append(r)
    return dataclasses.replace(current, rows=tuple(rows), baseline=diff)


def _same_bytes(old: JobRow, new: JobRow) -> bool:
    """The same job of the same bytes: same content hash, recipe and runtime."""
    return old.content_hash == new.content_hash and (old.recipe, old.runtime) == (new.recipe, new.runtime)


def _changes(old: JobRow, new: JobRow, cpu: str) -> list[tuple[str, str]]:
    out = []
    if old.status != ERROR and new.status == ERROR:
        return [(REGRESSION, f"no longer runs: {new.failures[0] if new.failures else 'error'}")]
    if old.status == ERROR and new.status != ERROR:
        out.append(("improvement", "runs again"))
    if new.status == ERROR:
        return out
    loads_old, loads_new = old.status != "not-loaded", new.status != "not-loaded"
    if loads_old and not loads_new:
        return [(REGRESSION, f"no longer loads: {new.failures[0] if new.failures else 'not loaded'}")]
    if loads_new and not loads_old and old.status != ERROR:
        out.append(("improvement", "loads again"))
    if new.cpu_nodes != old.cpu_nodes:
        kind = REGRESSION if new.cpu_nodes > old.cpu_nodes else "improvement"
        out.append((kind, f"CPU nodes {old.cpu_nodes} -> {new.cpu_nodes}"))
    if new.partitions != old.partitions:
        kind = REGRESSION if new.partitions > old.partitions else "improvement"
        out.append((kind, f"partitions {old.partitions} -> {new.partitions}"))
    added, removed = set(new.causes) - set(old.causes), set(old.causes) - set(new.causes)
    if added:
        out.append((REGRESSION, f"new causes {', '.join(sorted(added))}"))
    if removed:
        out.append(("improvement", f"causes gone {', '.join(sorted(removed))}"))
    if cpu and None not in (old.median_ms, new.median_ms, old.p10_ms, old.p90_ms, new.p10_ms, new.p90_ms):
        margin = DEFAULT_POLICY.slower_margin
        spread = f"{_ms(old)} -> {_ms(new)}"
        if new.median_ms > old.median_ms * margin and new.p10_ms > old.p90_ms:  # type: ignore[operator]
            out.append((REGRESSION, f"slower: {spread}, beyond the measured spread, both on {cpu}"))
        elif old.median_ms > new.median_ms * margin and old.p10_ms > new.p90_ms:  # type: ignore[operator]
            out.append(("improvement", f"faster: {spread}, both on {cpu}"))
    return out


def _ms(r: JobRow) -> str:
    """'1.2 ms (p10-p90 1.1-1.3)'."""
    return f"{r.median_ms:.3g} ms (p10-p90 {r.p10_ms:.3g}-{r.p90_ms:.3g})"
