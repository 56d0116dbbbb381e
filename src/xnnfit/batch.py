"""Batches: many models × recipes checked in parallel, each job in its own child, cached, gated, summarized.

A job is one (model, recipe); `--jobs N` runs N at once (each already runs its conversion
and runtime in children, so threads are enough to drive them). A crash, hang or timeout
is that job's error and never stops the others. Ctrl-C (or SIGTERM) kills every child,
keeps what finished, and marks the batch incomplete; the next run resumes from the cache.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import glob
import hashlib
import os
import time
from pathlib import Path
from typing import Any, Callable, ClassVar

from xnnfit import api, isolate
from xnnfit.cache import ResultCache, key
from xnnfit.diagnosis import CheckResult, Diagnosis, Gates
from xnnfit.errors import XnnfitError
from xnnfit.record import Record
from xnnfit.runtime import runtime_versions

MODEL_SUFFIXES = (".tflite", ".lite", ".keras", ".h5", ".hdf5")  # what a folder is searched for (and SavedModel folders)
Progress = Callable[[int, int, int, str], None]  # (done, total, failed, last job)


@dataclasses.dataclass(frozen=True)
class ModelSpec(Record):
    """One model of a batch, with what the manifest says about it."""

    path: str
    recipes: tuple[str, ...] = ("fp32",)
    input_shape: tuple[str, ...] = ()
    calibration: str | None = None
    gates: Gates = Gates()


@dataclasses.dataclass(frozen=True)
class JobRow(Record):
    """One (model, recipe) of the summary."""

    model: str
    recipe: str
    status: str  # 'ok', 'gate' (a budget violated), 'error'
    nodes: int = 0
    cpu_nodes: int = 0
    partitions: int = 0
    unexplained: int = 0
    causes: tuple[str, ...] = ()
    failures: tuple[str, ...] = ()  # gate lines, or the error
    content_hash: str = ""
    cached: bool = False
    seconds: float = 0.0


@dataclasses.dataclass(frozen=True)
class BatchResult(Record):
    """check over many models: each model's own document, one row per job, and whether every job ran."""

    RESULT: ClassVar[str] = "batch"

    models: tuple[CheckResult, ...]
    rows: tuple[JobRow, ...]
    incomplete: bool = False
    versions: dict[str, str] = dataclasses.field(default_factory=dict)

    def summary(self) -> dict[str, int]:
        """Counts over the jobs."""
        return {
            "models": len(self.models),
            "jobs": len(self.rows),
            "ok": sum(r.status == "ok" for r in self.rows),
            "gate_failures": sum(r.status == "gate" for r in self.rows),
            "errors": sum(r.status == "error" for r in self.rows),
            "cached": sum(r.cached for r in self.rows),
            "cpu_nodes": sum(r.cpu_nodes for r in self.rows),
        }

    def worst_first(self) -> list[JobRow]:
        """Rows sorted errors first, then gate failures, then most CPU nodes, unexplained and partitions."""
        rank = {"error": 0, "gate": 1, "ok": 2}
        return sorted(self.rows, key=lambda r: (rank.get(r.status, 3), -r.unexplained, -r.cpu_nodes, -r.partitions, r.model, r.recipe))

    def _extra(self) -> dict:
        return {"summary": self.summary()}


def expand(paths: list[str]) -> list[str]:
    """Model references from files, folders (every model inside, recursively) and globs; order kept, duplicates dropped."""
    out: list[str] = []
    for text in paths:
        if ".py:" in text:
            out.append(text)
            continue
        matches = sorted(glob.glob(text, recursive=True)) if glob.has_magic(text) else [text]
        if not matches:
            raise XnnfitError(f"{text!r} matches no file. Check the pattern (quote it so the shell does not expand it).")
        for m in matches:
            p = Path(m)
            if p.is_dir() and not (p / "saved_model.pb").exists():
                found = [str(f) for f in sorted(p.rglob("*")) if f.suffix.lower() in MODEL_SUFFIXES and f.is_file()]
                found += [str(f.parent) for f in sorted(p.rglob("saved_model.pb"))]
                if not found:
                    raise XnnfitError(f"folder {m!r} holds no model ({', '.join(MODEL_SUFFIXES)} or a SavedModel). Pass a folder of models.")
                out.extend(sorted(found))
            else:
                out.append(m)
    return list(dict.fromkeys(out))


def read_manifest(path: str | Path) -> list[ModelSpec]:
    """Models of a TOML manifest: `[defaults]` and `[[model]]` tables (path relative to the manifest)."""
    import tomllib

    p = Path(path)
    try:
        data = tomllib.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise XnnfitError(f"cannot read manifest {str(p)!r}: no such file. Check the path.") from None
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise XnnfitError(f"cannot read manifest {str(p)!r}: {exc}. Write it as TOML: [[model]] path = \"m.tflite\".") from None
    defaults = data.get("defaults", {})
    models = data.get("model", [])
    if not isinstance(models, list) or not models:
        raise XnnfitError(f"manifest {str(p)!r} lists no [[model]]. Add one table per model with a path.")
    allowed = {"path", "recipes", "input_shape", "calibration", "max_partitions", "fail_on_fallback", "min_delegated"}
    out = []
    for k, m in enumerate(models):
        entry = {**defaults, **m}
        unknown = set(entry) - allowed
        if unknown or "path" not in m:
            raise XnnfitError(f"manifest {str(p)!r}, model {k + 1}: {'unknown keys ' + ', '.join(sorted(unknown)) if unknown else 'no path'}. Keys: {', '.join(sorted(allowed))}.")
        target = m["path"]
        resolved = target if ".py:" in target or Path(target).is_absolute() else str(p.parent / target)
        calibration = entry.get("calibration")
        if calibration and not Path(calibration).is_absolute():
            calibration = str(p.parent / calibration)
        gates = Gates(bool(entry.get("fail_on_fallback", False)), entry.get("max_partitions"), entry.get("min_delegated"))
        recipes = entry.get("recipes", ["fp32"])
        out.append(ModelSpec(resolved, tuple([recipes] if isinstance(recipes, str) else recipes), tuple(entry.get("input_shape", ())), calibration, gates))
    return out


def fingerprint(model: str) -> str:
    """sha256 of what the model is made of: the file, every file of a SavedModel, or the .py file and function."""
    h = hashlib.sha256()
    target = model.rsplit(":", 1)[0] if ".py:" in model else model
    p = Path(target)
    if p.is_dir():
        for f in sorted(p.rglob("*")):
            if f.is_file():
                h.update(str(f.relative_to(p)).encode())
                h.update(f.read_bytes())
    elif p.is_file():
        h.update(p.read_bytes())
    if ".py:" in model:
        h.update(model.rsplit(":", 1)[1].encode())
    return h.hexdigest()


def _row(spec: ModelSpec, d: Diagnosis, digest: str, cached: bool, seconds: float) -> JobRow:
    if not d.ok:
        return JobRow(spec.path, d.recipe, "error", failures=(d.error or "failed",), content_hash=digest, cached=cached, seconds=seconds)
    s = d.summary()
    failures = tuple(spec.gates.failures(d))
    causes = tuple(sorted({c for n in d.observed if not n.delegated for c in n.causes}))
    return JobRow(
        spec.path, d.recipe, "gate" if failures else "ok", s["nodes"], s["cpu_nodes"], s["partitions"], s["unexplained"], causes,
        failures, digest, cached, seconds,
    )


def run_batch(
    specs: list[ModelSpec],
    *,
    jobs: int | None = None,
    cache: ResultCache | None = None,
    options: dict[str, Any] | None = None,
    on_progress: Progress | None = None,
) -> BatchResult:
    """Check every (model, recipe) of `specs`, `jobs` at a time; Ctrl-C returns what finished, marked incomplete."""
    options = dict(options or {})
    versions = runtime_versions()
    work = [(spec, recipe) for spec in specs for recipe in spec.recipes]
    done: dict[tuple[int, str], tuple[Diagnosis, str, bool, float]] = {}
    digests: dict[str, str] = {}
    failed = 0

    def one(index: int, spec: ModelSpec, recipe: str) -> tuple[int, str, Diagnosis, str, bool, float]:
        start = time.perf_counter()
        try:
            digest = digests.setdefault(spec.path, fingerprint(spec.path))
        except OSError:
            digest = ""
        opts = {**options, "input_shape": list(spec.input_shape) or options.get("input_shape"), "calibration": spec.calibration or options.get("calibration")}
        k = key(digest, recipe, {n: v for n, v in opts.items() if n not in ("on_progress",)}, versions) if digest else ""
        if cache is not None and k:
            hit = cache.get(k)
            if hit is not None:
                try:
                    return index, recipe, Diagnosis.from_dict(hit), digest, True, time.perf_counter() - start
                except (TypeError, KeyError, ValueError):
                    pass  # an entry of another shape: recompute and rewrite it
        try:
            result = api.check(spec.path, recipe=recipe, **opts)
            d = result.recipes[0]
        except XnnfitError as exc:
            d = Diagnosis.failed(recipe, exc)
        if cache is not None and k and d.ok:
            cache.put(k, d.to_dict())
        return index, recipe, d, digest, False, time.perf_counter() - start

    incomplete = False
    pool = concurrent.futures.ThreadPoolExecutor(max_workers=max(1, jobs or os.cpu_count() or 1))
    futures = [pool.submit(one, i, spec, recipe) for i, (spec, recipe) in enumerate(work)]
    try:
        for fut in concurrent.futures.as_completed(futures):
            index, recipe, d, digest, cached, seconds = fut.result()
            done[(index, recipe)] = (d, digest, cached, seconds)
            failed += not d.ok
            if on_progress is not None:
                on_progress(len(done), len(work), failed, f"{work[index][0].path} ({recipe})")
    except KeyboardInterrupt:
        incomplete = True
        for fut in futures:
            fut.cancel()
        isolate.kill_all()
        pool.shutdown(wait=True, cancel_futures=True)
        isolate.kill_all()
        for fut in futures:  # jobs that finished while stopping count as done
            if fut.done() and not fut.cancelled() and fut.exception() is None:
                index, recipe, d, digest, cached, seconds = fut.result()
                if d.ok:
                    done[(index, recipe)] = (d, digest, cached, seconds)
    else:
        pool.shutdown(wait=True)
    models, rows = [], []
    for spec in specs:
        diags = []
        for i, (s, recipe) in enumerate(work):
            if s is spec and (i, recipe) in done:
                d, digest, cached, seconds = done[(i, recipe)]
                diags.append(d)
                rows.append(_row(spec, d, digest, cached, seconds))
        if diags:
            models.append(CheckResult(spec.path, _kind(spec.path), tuple(diags), versions))
    return BatchResult(tuple(models), tuple(rows), incomplete, versions)


def _kind(path: str) -> str:
    if ".py:" in path:
        return "python"
    p = Path(path)
    return "savedmodel" if p.is_dir() else {".tflite": "tflite", ".lite": "tflite", ".keras": "keras", ".h5": "h5", ".hdf5": "h5"}.get(p.suffix.lower(), "")
