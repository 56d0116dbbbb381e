"""Baseline comparison, change by change: what regresses, what improves, what is noise, how models are matched."""

from __future__ import annotations

import dataclasses

import pytest

from xnnfit.batch.baseline import compare
from xnnfit.batch.jobs import BatchResult, JobRow

OLD = JobRow(
    "zoo/m.tflite", "fp32", "ok", 10, 2, 3, 0, ("XNN001",), content_hash="h1", median_ms=1.0, p10_ms=0.95, p90_ms=1.05
)


@pytest.mark.parametrize(
    ("change", "kind", "what"),
    [
        (dict(cpu_nodes=3), "regression", "CPU nodes 2 -> 3"),
        (dict(partitions=4), "regression", "partitions 3 -> 4"),
        (dict(causes=("XNN001", "XNN021")), "regression", "new causes XNN021"),
        (dict(status="error", failures=("crashed",)), "regression", "no longer runs: crashed"),
        (dict(median_ms=1.4, p10_ms=1.3, p90_ms=1.5), "regression", "slower 1 -> 1.4 ms"),
        (dict(cpu_nodes=0, causes=()), "improvement", "CPU nodes 2 -> 0"),
        (dict(median_ms=0.5, p10_ms=0.45, p90_ms=0.55), "improvement", "faster 1 -> 0.5 ms"),
    ],
)
def test_each_change_is_named(change, kind, what):
    new = dataclasses.replace(OLD, content_hash="h2", **change)
    diff = compare(BatchResult((), (new,)), [OLD])
    assert any(c.kind == kind and c.what.startswith(what) for c in diff.changes), diff.changes


def test_noise_and_unchanged_are_not_changes():
    noisy = dataclasses.replace(OLD, median_ms=1.04, p10_ms=0.9, p90_ms=1.2)  # within the spread
    assert compare(BatchResult((), (noisy,)), [OLD]).changes == ()
    assert compare(BatchResult((), (OLD,)), [OLD]).changes == ()


def test_matched_by_content_before_path():
    renamed = dataclasses.replace(OLD, model="zoo/renamed.tflite")
    diff = compare(BatchResult((), (renamed,)), [OLD])
    assert diff.changes == () and diff.new_models == ()
    other = dataclasses.replace(OLD, model="zoo/new.tflite", content_hash="h9")
    assert compare(BatchResult((), (other,)), [OLD]).new_models == ("zoo/new.tflite (fp32)",)
