"""Baselines: compare a batch with an earlier one, per model and recipe; regressions fail, improvements are reported.

Models are matched by content hash first, then by path, so a renamed model is the same
model and a model swapped for another under the same path is compared with what it
replaced.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from xnnfit.batch.jobs import BatchResult, JobRow
from xnnfit.core.errors import XnnfitError
from xnnfit.core.files import read_json
from xnnfit.core.policy import DEFAULT_POLICY
from xnnfit.core.record import Record


@dataclasses.dataclass(frozen=True)
class Change(Record):
    """One difference against the baseline."""

    model: str
    recipe: str
    kind: str  # 'regression' or 'improvement'
    what: str
    was: str = ""  # the baseline's path when the model was matched by content under another name


@dataclasses.dataclass(frozen=True)
class BaselineDiff(Record):
    """Every change, regressions first."""

    changes: tuple[Change, ...] = ()
    new_models: tuple[str, ...] = ()

    @property
    def regressions(self) -> tuple[Change, ...]:
        return tuple(c for c in self.changes if c.kind == "regression")

    @property
    def improvements(self) -> tuple[Change, ...]:
        return tuple(c for c in self.changes if c.kind == "improvement")


def load_rows(path: str | Path) -> list[JobRow]:
    """The job rows of a baseline file written with --write-baseline (or a batch --json)."""
    p = Path(path)
    data = read_json(p, "Pass a baseline written with --write-baseline FILE.")
    if not isinstance(data, dict) or data.get("result") != "batch" or "rows" not in data:
        raise XnnfitError(
            f"{str(p)!r} is not a batch baseline "
            f"(result={data.get('result') if isinstance(data, dict) else None!r}). Write one with "
            "--write-baseline FILE."
        )
    return [JobRow.from_dict(r) for r in data["rows"]]


def compare(current: BatchResult, baseline: list[JobRow]) -> BaselineDiff:
    """Regressions: new CPU nodes, more partitions, new causes, a job that no longer runs, and (both timed) slower.

    Slower (beyond the noise) means what `fix` means by it (policy.VerifyPolicy.slower_margin): the median
    above the baseline's by the margin and the new p10 above the baseline's p90.
    """
    by_hash = {(r.content_hash, r.recipe): r for r in baseline if r.content_hash}
    by_path = {(r.model, r.recipe): r for r in baseline}
    changes, new = [], []
    for r in current.rows:
        old = by_hash.get((r.content_hash, r.recipe)) or by_path.get((r.model, r.recipe))
        if old is None:
            new.append(f"{r.model} ({r.recipe})")
            continue
        was = old.model if old.model != r.model else ""
        changes += [Change(r.model, r.recipe, kind, what, was) for kind, what in _changes(old, r)]
    changes.sort(key=lambda c: (c.kind != "regression", c.model, c.recipe))
    return BaselineDiff(tuple(changes), tuple(new))


def _changes(old: JobRow, new: JobRow) -> list[tuple[str, str]]:
    out = []
    if old.status != "error" and new.status == "error":
        return [("regression", f"no longer runs: {new.failures[0] if new.failures else 'error'}")]
    if old.status == "error" and new.status != "error":
        return [("improvement", "runs again")]
    if new.status == "error":
        return []
    if new.cpu_nodes != old.cpu_nodes:
        out.append(
            (
                "regression" if new.cpu_nodes > old.cpu_nodes else "improvement",
                f"CPU nodes {old.cpu_nodes} -> {new.cpu_nodes}",
            )
        )
    if new.partitions != old.partitions:
        out.append(
            (
                "regression" if new.partitions > old.partitions else "improvement",
                f"partitions {old.partitions} -> {new.partitions}",
            )
        )
    added, removed = set(new.causes) - set(old.causes), set(old.causes) - set(new.causes)
    if added:
        out.append(("regression", f"new causes {', '.join(sorted(added))}"))
    if removed:
        out.append(("improvement", f"causes gone {', '.join(sorted(removed))}"))
    if None not in (old.median_ms, new.median_ms, old.p10_ms, old.p90_ms, new.p10_ms, new.p90_ms):
        margin = DEFAULT_POLICY.slower_margin
        if new.median_ms > old.median_ms * margin and new.p10_ms > old.p90_ms:
            out.append(
                ("regression", f"slower {old.median_ms:.3g} -> {new.median_ms:.3g} ms (beyond the measured spread)")
            )
        elif old.median_ms > new.median_ms * margin and old.p10_ms > new.p90_ms:
            out.append(("improvement", f"faster {old.median_ms:.3g} -> {new.median_ms:.3g} ms"))
    return out
