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
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

from xnnfit import api
from xnnfit.batch.cache import ResultCache, key
from xnnfit.core import isolate
from xnnfit.core.errors import XnnfitError
from xnnfit.core.record import Record
from xnnfit.explain.diagnosis import CheckResult, Diagnosis, Gates
from xnnfit.runtime.interpreter import runtime_versions

MODEL_SUFFIXES = (
    ".tflite",
    ".lite",
    ".keras",
    ".h5",
    ".hdf5",
)  # what a folder is searched for (and SavedModel folders)
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
    median_ms: float | None = None  # with --bench: whole-model latency with XNNPACK, 1 thread
    p10_ms: float | None = None
    p90_ms: float | None = None


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
        return sorted(
            self.rows,
            key=lambda r: (rank.get(r.status, 3), -r.unexplained, -r.cpu_nodes, -r.partitions, r.model, r.recipe),
        )

    def _extra(self) -> dict:
        return {"summary": self.summary()}


def expand(paths: list[str]) -> list[str]:
    """Model references from files, folders (every model inside, recursively) and globs; in order, no duplicates."""
    out: list[str] = []
    for text in paths:
        if ".py:" in text:
            out.append(text)
            continue
        matches = sorted(glob.glob(text, recursive=True)) if glob.has_magic(text) else [text]
        if not matches:
            raise XnnfitError(
                f"{text!r} matches no file. Check the pattern (quote it so the shell does not expand it)."
            )
        for m in matches:
            p = Path(m)
            if p.is_dir() and not (p / "saved_model.pb").exists():
                found = [str(f) for f in sorted(p.rglob("*")) if f.suffix.lower() in MODEL_SUFFIXES and f.is_file()]
                found += [str(f.parent) for f in sorted(p.rglob("saved_model.pb"))]
                if not found:
                    raise XnnfitError(
                        f"folder {m!r} holds no model ({', '.join(MODEL_SUFFIXES)} or a SavedModel). Pass a "
                        "folder of models."
                    )
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
        raise XnnfitError(
            f'cannot read manifest {str(p)!r}: {exc}. Write it as TOML: [[model]] path = "m.tflite".'
        ) from None
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
            raise XnnfitError(
                f"manifest {str(p)!r}, model {k + 1}: "
                f"{'unknown keys ' + ', '.join(sorted(unknown)) if unknown else 'no path'}. Keys: "
                f"{', '.join(sorted(allowed))}."
            )
        target = m["path"]
        resolved = target if ".py:" in target or Path(target).is_absolute() else str(p.parent / target)
        calibration = entry.get("calibration")
        if calibration and not Path(calibration).is_absolute():
            calibration = str(p.parent / calibration)
        gates = Gates(
            bool(entry.get("fail_on_fallback", False)), entry.get("max_partitions"), entry.get("min_delegated")
        )
        recipes = entry.get("recipes", ["fp32"])
        out.append(
            ModelSpec(
                resolved,
                tuple([recipes] if isinstance(recipes, str) else recipes),
                tuple(entry.get("input_shape", ())),
                calibration,
                gates,
            )
        )
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
        return JobRow(
            spec.path,
            d.recipe,
            "error",
            failures=(d.error or "failed",),
            content_hash=digest,
            cached=cached,
            seconds=seconds,
        )
    s = d.summary()
    failures = tuple(spec.gates.failures(d))
    causes = tuple(sorted({c for n in d.observed if not n.delegated for c in n.causes}))
    return JobRow(
        spec.path,
        d.recipe,
        "gate" if failures else "ok",
        s["nodes"],
        s["cpu_nodes"],
        s["partitions"],
        s["unexplained"],
        causes,
        failures,
        digest,
        cached,
        seconds,
    )


def run_batch(
    specs: list[ModelSpec],
    *,
    jobs: int | None = None,
    cache: ResultCache | None = None,
    options: dict[str, Any] | None = None,
    on_progress: Progress | None = None,
    backend: str = "local",
    ray_address: str | None = None,
    bench_runs: int = 0,
) -> BatchResult:
    """Check every (model, recipe) of `specs`, `jobs` at a time; Ctrl-C returns what finished, marked incomplete.

    `backend` 'local' runs the jobs from a thread pool here (each in its own child);
    'ray' submits them as Ray tasks (an existing cluster at `ray_address`, else a local one).
    The cache is read and written here, before and after either backend. With
    `bench_runs`, every job that ran is timed afterwards, one at a time here (parallel
    timings would measure each other), and its latency goes into its row.
    """
    if backend not in BACKENDS:
        raise XnnfitError(f"unknown backend {backend!r}. Pass --backend {' or --backend '.join(BACKENDS)}.")
    options = dict(options or {})
    versions = runtime_versions()
    work = [(spec, recipe) for spec in specs for recipe in spec.recipes]
    done: dict[int, tuple[Diagnosis, bool, float]] = {}
    digests = {spec.path: _digest(spec.path) for spec in specs}
    keys, todo = {}, []
    for i, (spec, recipe) in enumerate(work):
        opts = _job_options(spec, options)
        k = key(digests[spec.path], recipe, opts, versions) if digests[spec.path] else ""
        keys[i] = k
        hit = cache.get(k) if cache is not None and k else None
        try:
            done[i] = (Diagnosis.from_dict(hit), True, 0.0) if hit is not None else done.get(i)  # type: ignore[assignment]
        except (TypeError, KeyError, ValueError):
            pass  # an entry of another shape: recompute and rewrite it
        if done.get(i) is None:
            done.pop(i, None)
            todo.append(i)
    failed = 0

    def finished(i: int, d: Diagnosis, seconds: float) -> None:
        nonlocal failed
        done[i] = (d, False, seconds)
        failed += not d.ok
        if cache is not None and keys[i] and d.ok:
            cache.put(keys[i], d.to_dict())
        if on_progress is not None:
            on_progress(len(done), len(work), failed, f"{work[i][0].path} ({work[i][1]})")

    for i in done:
        if on_progress is not None:
            on_progress(len(done), len(work), failed, f"{work[i][0].path} ({work[i][1]}, cached)")
    run = _run_ray if backend == "ray" else _run_local
    incomplete = run(
        [(i, work[i][0], work[i][1], _job_options(work[i][0], options)) for i in todo], jobs, finished, ray_address
    )
    timings = _bench(work, done, options, bench_runs) if bench_runs and not incomplete else {}
    models, rows = [], []
    for spec in specs:
        diags = []
        for i, (s, _recipe) in enumerate(work):
            if s is spec and i in done:
                d, cached, seconds = done[i]
                diags.append(d)
                row = _row(spec, d, digests[spec.path], cached, seconds)
                if i in timings:
                    row = dataclasses.replace(
                        row, median_ms=timings[i].median_ms, p10_ms=timings[i].p10_ms, p90_ms=timings[i].p90_ms
                    )
                rows.append(row)
        if diags:
            models.append(CheckResult(spec.path, _kind(spec.path), tuple(diags), versions))
    return BatchResult(tuple(models), tuple(rows), incomplete, versions)


def _bench(work: list, done: dict, options: dict[str, Any], runs: int) -> dict:
    """Whole-model latency (XNNPACK, 1 thread) of every job that ran, one after another."""
    out = {}
    for i, (spec, recipe) in enumerate(work):
        if i not in done or not done[i][0].ok:
            continue
        try:
            result = api.bench(spec.path, recipe=recipe, runs=runs, **_job_options(spec, options))
        except XnnfitError:
            continue
        run = result.recipes[0]
        timing = next((c for c in run.configs if c.xnnpack and c.threads == 1), None) if run.error is None else None
        if timing is not None:
            out[i] = timing.stats
    return out


BACKENDS = ("local", "ray")
RAY_RETRIES = 1  # a Ray worker that dies mid-job is retried once, then the job is reported failed


def _digest(path: str) -> str:
    try:
        return fingerprint(path)
    except OSError:
        return ""


def _job_options(spec: ModelSpec, options: dict[str, Any]) -> dict[str, Any]:
    return {
        **options,
        "input_shape": list(spec.input_shape) or options.get("input_shape") or [],
        "calibration": spec.calibration or options.get("calibration"),
    }


def _check_one(path: str, recipe: str, opts: dict[str, Any]) -> Diagnosis:
    try:
        return api.check(path, recipe=recipe, **opts).recipes[0]
    except XnnfitError as exc:
        return Diagnosis.failed(recipe, exc)


def _run_local(todo: list, jobs: int | None, finished: Callable, ray_address: str | None) -> bool:
    """Jobs from a thread pool (each job's conversion and runtime run in children); True when interrupted."""
    pool = concurrent.futures.ThreadPoolExecutor(max_workers=max(1, jobs or os.cpu_count() or 1))
    starts = {}
    futures = {}
    for i, spec, recipe, opts in todo:
        starts[i] = time.perf_counter()
        futures[pool.submit(_check_one, spec.path, recipe, opts)] = i
    try:
        for fut in concurrent.futures.as_completed(futures):
            finished(futures[fut], fut.result(), time.perf_counter() - starts[futures[fut]])
    except KeyboardInterrupt:
        for fut in futures:
            fut.cancel()
        isolate.stop_all()  # no job starts a new child while the pool winds down
        pool.shutdown(wait=True, cancel_futures=True)
        isolate.kill_all()
        isolate.resume()
        return True
    pool.shutdown(wait=True)
    return False


def _files_of(path: str) -> tuple[str, dict[str, bytes]]:
    """(the path relative to what is shipped, {relative file: bytes}) for a model reference."""
    target = path.rsplit(":", 1)[0] if ".py:" in path else path
    p = Path(target)
    suffix = ":" + path.rsplit(":", 1)[1] if ".py:" in path else ""
    if p.is_dir():
        return p.name + suffix, {
            str(Path(p.name) / f.relative_to(p)): f.read_bytes() for f in p.rglob("*") if f.is_file()
        }
    return p.name + suffix, {p.name: p.read_bytes()}


def _ray_job(ref: str, files: dict[str, bytes], recipe: str, opts: dict[str, Any], home: str) -> Diagnosis:
    """A Ray task: rebuild the model from its bytes in a temporary folder, check it there, report paths as at `home`."""
    import tempfile

    with tempfile.TemporaryDirectory(prefix="xnnfit-ray-") as tmp:
        for rel, data in files.items():
            target = Path(tmp) / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
        d = _check_one(str(Path(tmp) / ref), recipe, opts)
    nodes = tuple(
        dataclasses.replace(n, source=home + n.source[len(tmp) :]) if n.source and n.source.startswith(tmp) else n
        for n in d.nodes
    )
    return dataclasses.replace(d, nodes=nodes)


def _run_ray(todo: list, jobs: int | None, finished: Callable, ray_address: str | None) -> bool:
    """Jobs as Ray tasks (models shipped as bytes); a dead worker is retried once; True when interrupted."""
    try:
        import ray
    except ImportError:
        raise XnnfitError(
            "the Ray backend needs Ray. Install the extra: pip install 'xnnfit[ray]', or use the "
            "default --backend local."
        ) from None
    started = not ray.is_initialized()
    if started:
        if ray_address:
            ray.init(address=ray_address, log_to_driver=False)
        else:  # a local cluster on the loopback interface only
            ray.init(
                num_cpus=jobs or os.cpu_count() or 1,
                include_dashboard=False,
                log_to_driver=False,
                _node_ip_address="127.0.0.1",
            )
    task = ray.remote(max_retries=RAY_RETRIES, retry_exceptions=False, num_cpus=1)(_ray_job)
    refs, starts, recipe_of = {}, {}, {i: recipe for i, _, recipe, _ in todo}
    try:
        for i, spec, recipe, opts in todo:
            ref, files = _files_of(spec.path)
            home = str(Path(spec.path.rsplit(":", 1)[0] if ".py:" in spec.path else spec.path).resolve().parent)
            starts[i] = time.perf_counter()
            refs[task.remote(ref, files, recipe, opts, home)] = i
        pending = list(refs)
        while pending:
            ready, pending = ray.wait(pending, num_returns=1)
            for r in ready:
                i = refs[r]
                try:
                    d = ray.get(r)
                except ray.exceptions.RayError as exc:
                    reason = str(exc).strip().splitlines()[0][:300]
                    d = Diagnosis.failed(
                        recipe_of[i], XnnfitError(f"the Ray task failed after {RAY_RETRIES} retry: {reason}")
                    )
                finished(i, d, time.perf_counter() - starts[i])
    except KeyboardInterrupt:
        for r in refs:
            ray.cancel(r, force=True)
        return True
    finally:
        if started:
            ray.shutdown()
    return False


def _kind(path: str) -> str:
    if ".py:" in path:
        return "python"
    p = Path(path)
    return (
        "savedmodel"
        if p.is_dir()
        else {".tflite": "tflite", ".lite": "tflite", ".keras": "keras", ".h5": "h5", ".hdf5": "h5"}.get(
            p.suffix.lower(), ""
        )
    )
