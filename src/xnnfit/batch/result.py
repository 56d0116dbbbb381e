"""What a batch found, as data every output reads: one row per job, the baseline diff, and the run around them.

The console table, the JSON, JUnit, SARIF, Markdown, the GitHub annotations and the exit
code are all rendered from a `BatchResult`, so they tell the same story: a row's `status`
is its worst problem and `failures` names every one of them (which gate with its figure,
the baseline regressions, the error, why the runtime could not load the model).
"""

from __future__ import annotations

import dataclasses
from typing import ClassVar

from xnnfit.core.record import Record
from xnnfit.explain.diagnosis import CheckResult

OK = "ok"
GATE = "gate"  # a budget violated (--fail-on-fallback, --max-partitions, --min-delegated, the manifest's, a hazard)
REGRESSION = "regression"  # worse than the baseline (and no budget violated)
NOT_LOADED = "not-loaded"  # the runtime cannot load the model
ERROR = "error"  # the job could not run (conversion refused, crash, timeout)
SKIPPED = "skipped"  # the job did not run: the batch was interrupted first
STATUSES = (ERROR, NOT_LOADED, GATE, REGRESSION, OK, SKIPPED)  # worst first
FAILING = (NOT_LOADED, GATE, REGRESSION)  # the statuses that fail a run (exit 1); ERROR is exit 2
STATUS_TEXT = {
    OK: "ok",
    GATE: "over budget",
    REGRESSION: "regressed",
    NOT_LOADED: "not loaded",
    ERROR: "error",
    SKIPPED: "not run",
}


@dataclasses.dataclass(frozen=True)
class JobRow(Record):
    """One (model, recipe, runtime) job of the summary."""

    model: str
    recipe: str
    status: str  # one of STATUSES
    nodes: int = 0
    cpu_nodes: int = 0
    partitions: int = 0
    unexplained: int = 0
    causes: tuple[str, ...] = ()  # the KB causes of its CPU nodes, those the manifest accepts left out
    failures: tuple[str, ...] = ()  # every problem, one line each: gates with their figures, the error, load, baseline
    content_hash: str = ""
    cached: bool = False
    seconds: float = 0.0  # this job's own run time in this batch (0 when read from the cache or not run)
    median_ms: float | None = None  # with --bench: whole-model latency with XNNPACK, 1 thread
    p10_ms: float | None = None
    p90_ms: float | None = None
    runtime: str = ""  # the --runtime SPEC it ran on ('' : the installed runtime)
    predicted: str | None = None  # why its verdicts come from the knowledge base (None: observed on the runtime)
    ignored: tuple[str, ...] = ()  # causes and hazards present that the manifest's `ignore` accepts

    @property
    def key(self) -> tuple[str, str, str]:
        """What identifies a job across runs: (model path, recipe, runtime SPEC)."""
        return (self.model, self.recipe, self.runtime)

    @property
    def label(self) -> str:
        """'models/m.tflite (fp32)', with the runtime when it is not the installed one."""
        return job_label(self.model, self.recipe, self.runtime)


def job_label(model: str, recipe: str, runtime: str = "") -> str:
    """How every output names a job."""
    return f"{model} ({recipe}{', ' + runtime if runtime else ''})"


@dataclasses.dataclass(frozen=True)
class Change(Record):
    """One difference against the baseline, for one job."""

    model: str
    recipe: str
    runtime: str = ""
    what: str = ""  # 'CPU nodes 0 -> 16'; for a renamed model, 'renamed from OLD'
    was: str = ""  # a renamed model's path in the baseline

    @property
    def label(self) -> str:
        return job_label(self.model, self.recipe, self.runtime)


@dataclasses.dataclass(frozen=True)
class BaselineDiff(Record):
    """This run against a baseline: regressions (they fail), improvements, and the jobs added, removed and renamed.

    A job is the same job when its path, recipe and runtime are; content only recognises a
    rename (a new path whose bytes the baseline had under a path that is gone).
    """

    baseline: str  # the baseline file
    regressions: tuple[Change, ...] = ()
    improvements: tuple[Change, ...] = ()
    added: tuple[Change, ...] = ()
    removed: tuple[Change, ...] = ()
    renamed: tuple[Change, ...] = ()
    notes: tuple[str, ...] = ()  # what was not compared, and why (timings from another CPU)

    @property
    def unchanged(self) -> bool:
        return not (self.regressions or self.improvements or self.added or self.removed or self.renamed)

    def lines(self) -> list[tuple[str, str]]:
        """(kind, text) for every change, regressions first: what the console, Markdown and JUnit list."""
        out = [("regression", f"{c.label}: {c.what}") for c in self.regressions]
        out += [("improvement", f"{c.label}: {c.what}") for c in self.improvements]
        out += [("renamed", f"{c.label}: renamed from {c.was}") for c in self.renamed]
        out += [("added", f"{c.label}: not in the baseline") for c in self.added]
        out += [("removed", f"{c.label}: in the baseline, not in this run") for c in self.removed]
        return out


@dataclasses.dataclass(frozen=True)
class BatchResult(Record):
    """check over many models: each model's own document, one row per job, the baseline diff, and the run's facts."""

    RESULT: ClassVar[str] = "batch"

    models: tuple[CheckResult, ...]
    rows: tuple[JobRow, ...]
    incomplete: bool = False
    versions: dict[str, str] = dataclasses.field(default_factory=dict)
    seconds: float = 0.0  # the batch's wall time
    cpu: str = ""  # the CPU the --bench timings were taken on ('' : nothing timed)
    baseline: BaselineDiff | None = None

    def summary(self) -> dict[str, int]:
        """Counts over the jobs."""
        count = {s: sum(r.status == s for r in self.rows) for s in STATUSES}
        return {
            "models": len(self.models),
            "jobs": len(self.rows),
            "ok": count[OK],
            "gate_failures": count[GATE],
            "regressions": count[REGRESSION],
            "not_loaded": count[NOT_LOADED],
            "errors": count[ERROR],
            "skipped": count[SKIPPED],
            "cached": sum(r.cached for r in self.rows),
            "predicted": sum(r.predicted is not None for r in self.rows),
            "cpu_nodes": sum(r.cpu_nodes for r in self.rows),
        }

    def outcome(self) -> str:
        """The run's verdict, the one rule for the exit code: 'incomplete', 'error', 'fail' or 'pass'."""
        statuses = {r.status for r in self.rows}
        if self.incomplete:
            return "incomplete"
        if ERROR in statuses:
            return "error"
        if statuses & set(FAILING):
            return "fail"
        return "pass"

    def worst_first(self) -> list[JobRow]:
        """Rows by status (errors first), then most unexplained, CPU nodes and partitions."""
        rank = {s: i for i, s in enumerate(STATUSES)}
        return sorted(
            self.rows,
            key=lambda r: (rank.get(r.status, len(rank)), -r.unexplained, -r.cpu_nodes, -r.partitions, r.key),
        )

    def _extra(self) -> dict:
        return {"summary": self.summary(), "outcome": self.outcome()}
