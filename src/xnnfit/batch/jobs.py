"""Batches: many models × recipes × runtimes checked in parallel, each job in its own child, cached, gated, summarized.

A job is one (model, recipe, runtime); `--jobs N` runs N at once (each already runs its
conversion and runtime in children, so threads are enough to drive them). A crash, hang or
timeout is that job's error and never stops the others. Ctrl-C (or SIGTERM) kills every
child, keeps what finished, lists the jobs that did not run as skipped, and marks the batch
incomplete; the next run resumes from the cache.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import hashlib
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from xnnfit import api
from xnnfit.batch.cache import ResultCache, key
from xnnfit.batch.manifest import ModelSpec, file_of
from xnnfit.batch.result import ERROR, GATE, NOT_LOADED, OK, SKIPPED, BatchResult, JobRow
from xnnfit.core import isolate
from xnnfit.core.errors import XnnfitError
from xnnfit.explain.diagnosis import CheckResult, Diagnosis
from xnnfit.measure.machine import cpu_label
from xnnfit.runtime import targets
from xnnfit.runtime.interpreter import runtime_versions

Progress = Callable[[int, int, int, str], None]  # (done, total, failed, last job)
NOT_RUN = "not run: the batch was interrupted before this job ran"
BACKENDS = ("local", "ray")
RAY_RETRIES = 1  # a Ray worker that dies mid-job is retried once, then the job is reported failed
RAY_CANCEL_WAIT = 10.0  # seconds an interrupted Ray run waits for its cancelled tasks' workers to die before sweeping
MODEL_OPTIONS = ("batch", "dynamic_batch", "input_shape", "calibration", "trust_model", "timeout")  # what bench takes


@dataclasses.dataclass(frozen=True)
class Job:
    """One (model, recipe, runtime) of a batch and the api.check options it runs with."""

    spec: ModelSpec
    recipe: str
    runtime: str  # a --runtime SPEC, '' for the installed runtime
    options: dict[str, Any]

    @property
    def label(self) -> str:
        return f"{self.spec.path} ({self.recipe}{', ' + self.runtime if self.runtime else ''})"


def fingerprint(model: str) -> str:
    """sha256 of what the model is made of: the file, every file of a SavedModel, or the .py file and function."""
    h = hashlib.sha256()
    p = Path(file_of(model))
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


def runtime_specs(runtime: str | list[str] | tuple[str, ...] | None) -> tuple[str, ...]:
    """The runtime SPECs a batch runs each job on: ('',) for the installed runtime, else one per --runtime target."""
    if not runtime:
        return ("",)
    return tuple(t.spec for t in targets.parse_many(runtime))


def row_of(job: Job, d: Diagnosis, digest: str, cached: bool, seconds: float) -> JobRow:
    """A finished job's row: its worst status and every problem, one line each."""
    spec = job.spec
    base = dict(runtime=job.runtime, content_hash=digest, cached=cached, seconds=seconds)
    if not d.ok:
        return JobRow(spec.path, d.recipe, ERROR, failures=(d.error or "failed",), **base)
    s = d.summary()
    accepted = frozenset(spec.ignore)
    found = {c for n in d.observed if not n.delegated for c in n.causes} | {f.hazard for f in d.findings}
    causes = tuple(sorted({c for n in d.observed if not n.delegated for c in n.causes} - accepted))
    failures = list(spec.gates.failures(d, accepted))
    if d.load_failed:
        failures.insert(0, f"{d.runtime or 'the installed runtime'}: {d.predicted}")
    status = NOT_LOADED if d.not_loaded or d.load_failed else GATE if failures else OK
    return JobRow(
        spec.path,
        d.recipe,
        status,
        s["nodes"],
        s["cpu_nodes"],
        s["partitions"],
        s["unexplained"],
        causes,
        tuple(failures),
        predicted=d.predicted,
        ignored=tuple(sorted(found & accepted)),
        **base,
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
    """Check every (model, recipe, runtime) of `specs`, `jobs` at a time; Ctrl-C returns what finished, incomplete.

    `options` are api.check's for every job; its `runtime` (one SPEC, several, or 'all')
    makes one job per runtime. `backend` 'local' runs the jobs from a thread pool here
    (each in its own child); 'ray' submits them as Ray tasks (an existing cluster at
    `ray_address`, else a local one). The cache is read and written here, before and after
    either backend. With `bench_runs`, every job that ran on a model its runtime loaded is
    timed afterwards, one at a time here (parallel timings would measure each other), and
    its latency goes into its row; the batch records the CPU (`cpu`).
    """
    if backend not in BACKENDS:
        raise XnnfitError(f"unknown backend {backend!r}. Pass --backend {' or --backend '.join(BACKENDS)}.")
    began = time.perf_counter()
    options = dict(options or {})
    runtimes = runtime_specs(options.pop("runtime", None))
    versions = runtime_versions()
    work = [Job(s, r, rt, _job_options(s, options, rt)) for s in specs for r in s.recipes for rt in runtimes]
    digests = {spec.path: _digest(spec.path) for spec in specs}
    done: dict[int, tuple[Diagnosis, bool, float]] = {}
    keys, todo = {}, []
    for i, job in enumerate(work):
        digest = digests[job.spec.path]
        keys[i] = key(digest, job.recipe, job.options, versions) if digest else ""
        hit = cache.get(keys[i]) if cache is not None and keys[i] else None
        try:
            if hit is not None:
                done[i] = (Diagnosis.from_dict(hit), True, 0.0)
        except (TypeError, KeyError, ValueError, XnnfitError):
            pass  # an entry of another shape: recompute and rewrite it
        if i not in done:
            todo.append(i)
    failed = 0

    def finished(i: int, d: Diagnosis, seconds: float) -> None:
        nonlocal failed
        done[i] = (d, False, seconds)
        failed += not d.ok
        if cache is not None and keys[i] and d.ok:
            cache.put(keys[i], d.to_dict())
        if on_progress is not None:
            on_progress(len(done), len(work), failed, work[i].label)

    for i in done:
        if on_progress is not None:
            on_progress(len(done), len(work), failed, f"{work[i].label}, cached")
    run = _run_ray if backend == "ray" else _run_local
    incomplete = run([(i, work[i]) for i in todo], jobs, finished, ray_address)
    timings = _bench(work, done, bench_runs) if bench_runs and not incomplete else {}
    models, rows = [], []
    for spec in specs:
        diags = []
        for i, job in enumerate(work):
            if job.spec is not spec:
                continue
            if i not in done:
                rows.append(
                    JobRow(spec.path, job.recipe, SKIPPED, failures=(NOT_RUN,), content_hash=digests[spec.path],
                           runtime=job.runtime)
                )  # fmt: skip
                continue
            d, cached, seconds = done[i]
            diags.append(d)
            row = row_of(job, d, digests[spec.path], cached, seconds)
            if i in timings:
                t = timings[i]
                row = dataclasses.replace(row, median_ms=t.median_ms, p10_ms=t.p10_ms, p90_ms=t.p90_ms)
            rows.append(row)
        if diags:
            models.append(CheckResult(spec.path, _kind(spec.path), tuple(diags), versions))
    return BatchResult(
        tuple(models), tuple(rows), incomplete, versions, time.perf_counter() - began, cpu_label() if timings else ""
    )


def _bench(work: list[Job], done: dict, runs: int) -> dict:
    """Whole-model latency (XNNPACK, 1 thread) of every job whose runtime loaded the model, one after another."""
    out = {}
    for i, job in enumerate(work):
        d = done[i][0] if i in done else None
        if d is None or not d.ok or d.predicted or d.not_loaded:
            continue
        options = {k: v for k, v in job.options.items() if k in MODEL_OPTIONS}
        try:
            result = api.bench(job.spec.path, recipe=job.recipe, runs=runs, runtime=job.runtime or None, **options)
        except XnnfitError:
            continue
        run = result.recipes[0]
        timing = next((c for c in run.configs if c.xnnpack and c.threads == 1), None) if run.ok else None
        if timing is not None:
            out[i] = timing.stats
    return out


def _digest(path: str) -> str:
    try:
        return fingerprint(path)
    except OSError:
        return ""


def _job_options(spec: ModelSpec, options: dict[str, Any], runtime: str) -> dict[str, Any]:
    return {
        **options,
        "input_shape": list(spec.input_shape) or options.get("input_shape") or [],
        "calibration": spec.calibration or options.get("calibration"),
        **({"runtime": runtime} if runtime else {}),
    }


def _check_one(path: str, recipe: str, opts: dict[str, Any]) -> tuple[Diagnosis, float]:
    """One job, and how long it took from its own start."""
    began = time.perf_counter()
    try:
        d = api.check(path, recipe=recipe, **opts).recipes[0]
    except XnnfitError as exc:
        d = Diagnosis.failed(recipe, exc)
    return d, time.perf_counter() - began


def _run_local(todo: list, jobs: int | None, finished: Callable, ray_address: str | None) -> bool:
    """Jobs from a thread pool (each job's conversion and runtime run in children); True when interrupted."""
    pool = concurrent.futures.ThreadPoolExecutor(max_workers=max(1, jobs or os.cpu_count() or 1))
    futures = {pool.submit(_check_one, job.spec.path, job.recipe, job.options): i for i, job in todo}
    try:
        for fut in concurrent.futures.as_completed(futures):
            finished(futures[fut], *fut.result())
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
    p = Path(file_of(path))
    suffix = path[len(file_of(path)) :]
    if p.is_dir():
        return p.name + suffix, {
            str(Path(p.name) / f.relative_to(p)): f.read_bytes() for f in p.rglob("*") if f.is_file()
        }
    return p.name + suffix, {p.name: p.read_bytes()}


def _ray_job(
    ref: str, files: dict[str, bytes], recipe: str, opts: dict[str, Any], home: str
) -> tuple[Diagnosis, float]:
    """A Ray task: rebuild the model from its bytes in a temporary folder, check it there, report paths as at `home`.

    The folder lives in the worker's run folder (core.isolate.run_folder), so a worker
    killed by an interrupt leaves nothing that the next sweep does not remove.
    """
    with tempfile.TemporaryDirectory(prefix="ray-", dir=isolate.run_folder()) as tmp:
        for rel, data in files.items():
            target = Path(tmp) / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
        d, seconds = _check_one(str(Path(tmp) / ref), recipe, opts)
    nodes = tuple(
        dataclasses.replace(n, source=home + n.source[len(tmp) :]) if n.source and n.source.startswith(tmp) else n
        for n in d.nodes
    )
    return dataclasses.replace(d, nodes=nodes), seconds


def _run_ray(todo: list, jobs: int | None, finished: Callable, ray_address: str | None) -> bool:
    """Jobs as Ray tasks (models shipped as bytes); a dead worker is retried once; True when interrupted.

    A local cluster's workers keep their temporary files in this process's run folder
    (removed at exit, whatever ends the workers). On an interrupt every task is cancelled
    (its worker killed), and the run folders killed workers of an existing cluster left on
    this machine are removed once they are gone.
    """
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
        else:  # a local cluster on the loopback interface only, its workers' temporary files inside our run folder
            scratch = tempfile.mkdtemp(prefix="ray-", dir=isolate.run_folder())
            ray.init(
                num_cpus=jobs or os.cpu_count() or 1,
                include_dashboard=False,
                log_to_driver=False,
                _node_ip_address="127.0.0.1",
                runtime_env={"env_vars": {"TMPDIR": scratch}},
            )
    task = ray.remote(max_retries=RAY_RETRIES, retry_exceptions=False, num_cpus=1)(_ray_job)
    refs, recipe_of = {}, {i: job.recipe for i, job in todo}
    interrupted = False
    try:
        for i, job in todo:
            ref, files = _files_of(job.spec.path)
            home = str(Path(file_of(job.spec.path)).resolve().parent)
            refs[task.remote(ref, files, job.recipe, job.options, home)] = i
        pending = list(refs)
        while pending:
            ready, pending = ray.wait(pending, num_returns=1)
            for r in ready:
                i = refs[r]
                try:
                    d, seconds = ray.get(r)
                except ray.exceptions.RayError as exc:
                    reason = str(exc).strip().splitlines()[0][:300]
                    d, seconds = (
                        Diagnosis.failed(
                            recipe_of[i], XnnfitError(f"the Ray task failed after {RAY_RETRIES} retry: {reason}")
                        ),
                        0.0,
                    )
                finished(i, d, seconds)
    except KeyboardInterrupt:
        interrupted = True
        for r in refs:
            ray.cancel(r, force=True)
        ray.wait(list(refs), num_returns=len(refs), timeout=RAY_CANCEL_WAIT)
    finally:
        if started:
            ray.shutdown()
        if interrupted:
            isolate.sweep_stale()  # the killed workers' run folders (their owners are gone)
    return interrupted


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
