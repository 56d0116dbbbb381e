"""Baseline comparison, change by change: what regresses, what improves, what is noise, how jobs are matched."""

from __future__ import annotations

import dataclasses

import pytest

from xnnfit.batch.baseline import Baseline, apply, compare
from xnnfit.batch.result import BatchResult, JobRow

CPU = "Some CPU (x86_64, 2 cores; AVX2)"
OLD = JobRow(
    "zoo/m.tflite", "fp32", "ok", 10, 2, 3, 0, ("XNN001",), content_hash="h1", median_ms=1.0, p10_ms=0.95, p90_ms=1.05
)


def _diff(rows, base=(OLD,), cpu=CPU, base_cpu=CPU):
    return compare(BatchResult((), tuple(rows), cpu=cpu), Baseline("base.json", tuple(base), base_cpu))


@pytest.mark.parametrize(
    ("change", "kind", "what"),
    [
        (dict(cpu_nodes=3), "regressions", "CPU nodes 2 -> 3"),
        (dict(partitions=4), "regressions", "partitions 3 -> 4"),
        (dict(causes=("XNN001", "XNN021")), "regressions", "new causes XNN021"),
        (dict(status="error", failures=("crashed",)), "regressions", "no longer runs: crashed"),
        (dict(status="not-loaded", failures=("cannot load: op version 99",)), "regressions", "no longer loads"),
        (
            dict(median_ms=1.4, p10_ms=1.3, p90_ms=1.5),
            "regressions",
            "slower: 1 ms (p10-p90 0.95-1.05) -> 1.4 ms (p10-p90 1.3-1.5)",
        ),
        (dict(cpu_nodes=0, causes=()), "improvements", "CPU nodes 2 -> 0"),
        (dict(median_ms=0.5, p10_ms=0.45, p90_ms=0.55), "improvements", "faster: 1 ms"),
    ],
)
def test_each_change_is_named(change, kind, what):
    diff = _diff([dataclasses.replace(OLD, content_hash="h2", **change)])
    assert any(c.what.startswith(what) for c in getattr(diff, kind)), diff


def test_noise_and_unchanged_are_not_changes():
    noisy = dataclasses.replace(OLD, median_ms=1.04, p10_ms=0.9, p90_ms=1.2)  # within the spread
    assert _diff([noisy]).unchanged and _diff([OLD]).unchanged


def test_timings_from_another_cpu_are_not_compared_and_the_diff_says_so():
    slower = dataclasses.replace(OLD, median_ms=5.0, p10_ms=4.9, p90_ms=5.1)
    diff = _diff([slower], base_cpu="Another CPU")
    assert diff.unchanged and diff.notes and "Another CPU" in diff.notes[0] and CPU in diff.notes[0]


def test_the_path_is_the_identity_when_it_exists_in_both():
    swapped = dataclasses.replace(OLD, content_hash="other", cpu_nodes=16)  # same path, another model's bytes
    diff = _diff([swapped, dataclasses.replace(OLD, model="zoo/renamed.tflite", content_hash="other")])
    assert [c.what for c in diff.regressions] == ["CPU nodes 2 -> 16"]
    assert [c.model for c in diff.added] == ["zoo/renamed.tflite"] and not diff.renamed  # m.tflite is not gone


def test_content_recognises_a_rename_only_when_the_old_path_is_gone():
    renamed = dataclasses.replace(OLD, model="zoo/renamed.tflite")
    diff = _diff([renamed])
    assert [(c.model, c.was) for c in diff.renamed] == [("zoo/renamed.tflite", "zoo/m.tflite")]
    assert not diff.added and not diff.removed and not diff.regressions


def test_added_removed_and_runtimes_are_separate_jobs():
    other_runtime = dataclasses.replace(OLD, runtime="tflite-runtime==2.14.0", content_hash="h1")
    new = dataclasses.replace(OLD, model="zoo/new.tflite", content_hash="h9")
    diff = _diff([other_runtime, new])
    assert {c.label for c in diff.added} == {"zoo/m.tflite (fp32, tflite-runtime==2.14.0)", "zoo/new.tflite (fp32)"}
    assert [c.label for c in diff.removed] == ["zoo/m.tflite (fp32)"]


def test_skipped_jobs_are_neither_compared_nor_removed():
    skipped = dataclasses.replace(OLD, status="skipped", nodes=0, cpu_nodes=0, causes=())
    assert _diff([skipped]).unchanged


def test_apply_marks_each_regressed_row_and_keeps_its_gate_status():
    worse = dataclasses.replace(OLD, cpu_nodes=3)
    gated = dataclasses.replace(OLD, model="zoo/g.tflite", status="gate", failures=("4 partitions > 3",), partitions=4)
    base = (OLD, dataclasses.replace(OLD, model="zoo/g.tflite"))
    batch = BatchResult((), (worse, gated), cpu=CPU)
    marked = apply(batch, compare(batch, Baseline("base.json", base, CPU)))
    assert [r.status for r in marked.rows] == ["regression", "gate"]
    assert marked.rows[0].failures == ("vs baseline: CPU nodes 2 -> 3",)
    assert marked.rows[1].failures[-1] == "vs baseline: partitions 3 -> 4"
    assert marked.outcome() == "fail" and marked.to_dict()["baseline"]["regressions"][0]["what"] == "CPU nodes 2 -> 3"
    assert BatchResult.from_dict(marked.to_dict()) == marked
