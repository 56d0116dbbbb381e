"""A batch's findings as code-scanning tools see them: one per (model, recipe, runtime, id, Keras layer), located once.

SARIF and the GitHub annotations both read these. A finding is a group of nodes, never one
node: a layer whose 54 nodes fall back for two causes is two findings, each with its node
count. Its location is the Keras source line of the layer when known, the same for every
recipe and runtime of the model (the first line of the layer's code that made an op, in
any of them); else the model's own file (a builder's `def` line, or line 1 of a .tflite),
with the layer as a logical location. Ids the manifest accepts (`ignore`) make no finding.
"""

from __future__ import annotations

import dataclasses
import os
import re
import subprocess
from pathlib import Path

from xnnfit.batch.manifest import file_of
from xnnfit.batch.result import SKIPPED, BatchResult, JobRow
from xnnfit.explain.diagnosis import Diagnosis
from xnnfit.kb.hazards import ERROR as HAZARD_ERROR

WARNING, ERROR = "warning", "error"


@dataclasses.dataclass(frozen=True)
class Place:
    """A file and line (1-based)."""

    path: str
    line: int


@dataclasses.dataclass(frozen=True)
class Finding:
    """One id on one Keras layer of one job: a fallback cause (warning) or a hazard (error)."""

    row: JobRow
    rule: str  # a KB cause or hazard id
    layer: str  # '' when the nodes map to no layer
    ops: tuple[str, ...]
    nodes: tuple[int, ...]
    level: str
    place: Place
    at_source: bool  # located at the Keras source line (else at the model's file)


def default_root(start: str | Path = ".") -> Path:
    """The folder SARIF URIs are relative to: the git top level of `start`, else `start` itself."""
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--show-toplevel"], cwd=start, capture_output=True, text=True, timeout=10
        )
    except (OSError, subprocess.SubprocessError):
        out = None
    top = out.stdout.strip() if out is not None and out.returncode == 0 else ""
    return Path(top or start).resolve()


def _split(source: str | None) -> Place | None:
    if not source or ":" not in source:
        return None
    path, _, line = source.rpartition(":")
    return Place(path, int(line)) if line.isdigit() and int(line) > 0 else None


def layer_sources(diagnoses: tuple[Diagnosis, ...], root: Path) -> dict[str, Place]:
    """Each Keras layer's source line across all of a model's diagnoses: files inside `root` first, then the first."""

    def rank(p: Place) -> tuple[bool, str, int]:
        return (not _inside(p.path, root), p.path, p.line)

    out: dict[str, Place] = {}
    for d in diagnoses:
        for n in d.nodes:
            place = _split(n.source)
            if n.layer and place is not None and (n.layer not in out or rank(place) < rank(out[n.layer])):
                out[n.layer] = place
    return out


def model_place(model: str) -> Place:
    """Where a model without a source line is located: a builder's `def` line, else line 1 of its file."""
    path = file_of(model)
    if ".py:" in model:
        function = model.rsplit(":", 1)[1]
        try:
            text = Path(path).read_text(encoding="utf-8", errors="replace")
        except OSError:
            text = ""
        for k, line in enumerate(text.splitlines(), start=1):
            if re.match(rf"\s*(async\s+)?def\s+{re.escape(function)}\s*\(", line):
                return Place(path, k)
    return Place(path, 1)


def findings(batch: BatchResult, root: Path) -> list[Finding]:
    """Every finding of the batch's finished jobs, in job order, then by id and layer."""
    out: list[Finding] = []
    for m in batch.models:
        sources = layer_sources(m.recipes, root)
        fallback = model_place(m.model)
        for d, row in _pairs(m.recipes, [r for r in batch.rows if r.model == m.model]):
            if not d.ok or d.not_loaded:
                continue
            accepted = set(row.ignored)
            groups: dict[tuple[str, str], list] = {}
            for n in d.observed:
                if not n.delegated:
                    for c in n.causes:
                        groups.setdefault((c, n.layer or ""), []).append((n.index, n.op))
            by_index = {n.index: n for n in d.nodes}
            for f in d.findings:
                if f.severity == HAZARD_ERROR:
                    layer = by_index[f.node].layer if f.node in by_index else None
                    groups.setdefault((f.hazard, layer or ""), []).append((f.node, f.op))
            hazards = {f.hazard for f in d.findings}
            for (rule, layer), nodes in sorted(groups.items()):
                if rule in accepted:
                    continue
                place = sources.get(layer)
                out.append(
                    Finding(
                        row,
                        rule,
                        layer,
                        tuple(sorted({op for _, op in nodes})),
                        tuple(sorted({i for i, _ in nodes})),
                        ERROR if rule in hazards else WARNING,
                        place or fallback,
                        place is not None,
                    )
                )
    return out


def _pairs(diagnoses: tuple[Diagnosis, ...], rows_of_model: list[JobRow]) -> list[tuple[Diagnosis, JobRow]]:
    """Each diagnosis with its row: a model's diagnoses come in its rows' order (skipped rows have none)."""
    return list(zip(diagnoses, [r for r in rows_of_model if r.status != SKIPPED]))


def _inside(path: str, root: Path) -> bool:
    try:
        Path(os.path.realpath(path)).relative_to(root)
    except ValueError:
        return False
    return True


def relative(path: str, root: Path) -> str | None:
    """`path` relative to `root` in POSIX form (symlinks resolved, as code scanning needs), None when outside it."""
    real = Path(os.path.realpath(path))
    try:
        return real.relative_to(root).as_posix()
    except ValueError:
        return None
