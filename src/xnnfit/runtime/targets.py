"""Runtime targets: the LiteRT/TFLite wheel an app ships, installed into its own venv and observed in a child.

A target is a pip requirement of a runtime wheel (`tflite-runtime==2.14.0`,
`ai-edge-litert==1.4.0`, a nightly). The installed ai-edge-litert is observed in this
process as always; any other is installed on first use into its own venv under the cache
folder (two native TFLite libraries cannot share a process, and old ones can crash
natively) and asked through child.py, which needs nothing but that runtime and
numpy. Results are what the pip build does on this machine: Android AAR builds of the same
version may differ (build flags, CPU features).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import platform
import re
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from xnnfit.core import isolate
from xnnfit.core.errors import InputDataError, RuntimeFailure
from xnnfit.core.files import cache_root
from xnnfit.core.record import Record

DEFAULT_DIST = "ai-edge-litert"  # the runtime xnnfit depends on: observed in process
RUNTIME_DISTS = ("ai-edge-litert", "tflite-runtime", "ai-edge-litert-nightly", "tflite-runtime-nightly")
# `--runtime all`: the runtimes apps ship today, oldest first (TF 2.14-era Android apps, LiteRT 1.x, the current one).
MATRIX = ("tflite-runtime==2.14.0", "ai-edge-litert==1.0.1", "ai-edge-litert==1.4.0", "ai-edge-litert==2.3.0")
INSTALL_TIMEOUT = 900.0  # seconds for one venv's pip install: a 100 MB wheel over a slow registry mirror
CHILD_TIMEOUT = 600.0  # seconds for one observation or timing in a target's child: a hang is stopped, not waited on
LOCK = ".lock"  # one lock for every venv build under runtimes/: jobs asking for a runtime build it once, and no
# per-spec file is left
READY = "xnnfit-runtime.json"  # written last into a venv: a folder without it is half-made and rebuilt
# What a wheel built against NumPy 1.x prints when NumPy 2 is installed: its venv then gets numpy<2.
NUMPY_ABI = ("compiled using numpy 1.x", "_ARRAY_API not found", "numpy.core.multiarray failed to import")
CHILD = Path(__file__).with_name("child.py")
STAGING_TMP = ".tmp"  # pip's temporary files inside a staging venv: removed with it
SCRATCH_ENV = "XNNFIT_CHILD_SCRATCH"  # isolate.SCRATCH_ENV: the stage child's scratch folder, removed by its parent
Progress = Callable[[str], None]


@dataclasses.dataclass(frozen=True)
class Target(Record):
    """One runtime to observe on: its pip requirement and, unless it is the installed one, its venv's Python."""

    spec: str
    dist: str
    version: str | None = None  # what is installed (known once the venv exists)
    python: str | None = None  # the venv's interpreter, once ensure() built it
    in_process: bool = False  # the runtime xnnfit itself runs: observed in this process, no venv

    @property
    def label(self) -> str:
        """'pip ai-edge-litert 2.3.0 (x86_64 Linux)': what the verdicts were observed on."""
        return f"pip {self.dist} {self.version or self.spec} ({platform.machine()} {platform.system()})"


def installed_version() -> str:
    """The version of the ai-edge-litert xnnfit runs in process."""
    from importlib import metadata

    return metadata.version(DEFAULT_DIST)


def default() -> Target:
    """The installed runtime."""
    v = installed_version()
    return Target(f"{DEFAULT_DIST}=={v}", DEFAULT_DIST, v, in_process=True)


def parse(spec: str) -> Target:
    """A Target from a pip requirement; InputDataError for anything that is not a runtime wheel requirement."""
    from packaging.requirements import InvalidRequirement, Requirement

    try:
        req = Requirement(spec.strip())
    except InvalidRequirement as exc:
        raise InputDataError(
            f"--runtime {spec!r} is not a pip requirement ({exc}). Pass e.g. --runtime tflite-runtime==2.14.0."
        ) from exc
    dist = req.name.lower().replace("_", "-")
    if dist not in RUNTIME_DISTS or req.url or req.extras:
        raise InputDataError(
            f"--runtime {spec!r} is not a LiteRT/TFLite runtime wheel. Pass one of "
            f"{', '.join(RUNTIME_DISTS)} with a version, "
            f"e.g. --runtime ai-edge-litert==1.4.0, or --runtime all for {', '.join(MATRIX)}."
        )
    pins = [s.version for s in req.specifier if s.operator in ("==", "===")]
    version = pins[0] if len(pins) == 1 and "*" not in pins[0] else None
    if dist == DEFAULT_DIST and version == installed_version():
        return default()
    return Target(str(req), dist, version)


def parse_many(value: str | Sequence[str] | None) -> tuple[Target, ...]:
    """Targets of `--runtime` (comma-separated, or 'all' for MATRIX); the installed runtime when None."""
    if not value:
        return (default(),)
    items = [value] if isinstance(value, str) else list(value)
    specs: list[str] = []
    for item in items:
        for part in re.split(r",(?![^\[]*\])", item):
            part = part.strip()
            specs.extend(MATRIX if part == "all" else [part] if part else [])
    return tuple(dict.fromkeys(parse(s) for s in specs))


def _slug(spec: str) -> str:
    return re.sub(r"[^A-Za-z0-9.]+", "_", spec).strip("_")


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    import fcntl

    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _run(cmd: list[str], what: str, timeout: float, tmpdir: Path | None = None) -> subprocess.CompletedProcess:
    """A venv or pip command, killed with its whole group on timeout or interrupt; its temporary files in `tmpdir`."""
    env = {**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1", "PIP_NO_INPUT": "1"}
    if tmpdir is not None:
        tmpdir.mkdir(parents=True, exist_ok=True)
        env["TMPDIR"] = str(tmpdir)  # pip's build and unpack folders go with the staging venv, whatever ends the build
    try:
        return isolate.run_command(cmd, timeout=timeout, env=env)
    except subprocess.TimeoutExpired as exc:
        raise RuntimeFailure(
            f"{what} took more than {timeout:.0f} s and was stopped. Check the network to the package registry."
        ) from exc


def _pip(python: Path, args: list[str], spec: str) -> None:
    scratch = python.parent.parent / STAGING_TMP
    proc = _run([str(python), "-m", "pip", "install", "--quiet", *args], f"installing {spec}", INSTALL_TIMEOUT, scratch)
    if proc.returncode:
        last = (proc.stderr.strip().splitlines() or ["(no output)"])[-1]
        raise RuntimeFailure(
            f"pip could not install {args[0]} into the venv for --runtime {spec}: {last[:300]}. Check "
            "that the wheel exists on "
            f"PyPI for Python {platform.python_version()} on {platform.machine()} (pip index versions "
            f"{args[0].split('=')[0]}).",
            detail=proc.stderr[-4000:],
        )


def _tiny_model() -> bytes:
    """y = a + b on float32[1, 4]: what a runtime must build, feed and run before its venv counts as ready."""
    from xnnfit.tflite.build import add_tensor, make_op, new_model, new_subgraph
    from xnnfit.tflite.writer import serialize

    model = new_model("xnnfit runtime self-check")
    sub = new_subgraph(model, "main")
    a, b, y = (add_tensor(model, sub, (1, 4), "float32", n) for n in ("a", "b", "y"))
    sub.inputs, sub.outputs = [a, b], [y]
    sub.operators.append(make_op(model, "ADD", [a, b], [y]))
    return serialize(model)


def _self_check(python: Path, spec: str) -> tuple[dict | None, str]:
    """(runtime info, '') when the venv's runtime builds, feeds and runs a model; (None, its stderr) when not."""
    probe = Target(spec, "", python=str(python))
    try:
        values = [np.zeros((1, 4), np.float32)] * 2
        files: dict[str, bytes | dict[str, np.ndarray]] = {
            "m.tflite": _tiny_model(),
            "in.npz": {"arr_0": values[0], "arr_1": values[1]},
        }
        request = {
            "op": "time",
            "configs": [{"model": "@m.tflite", "inputs": "@in.npz", "xnnpack": True, "threads": 1}],
            "runs": 1,
            "warmup": 0,
        }
        response = call(probe, request, files, "running a self-check model")
    except RuntimeFailure as exc:
        return None, exc.detail or str(exc)
    if "error" in response:
        return None, response["error"]
    return response["runtime"], ""


def venv_dir(target: Target, root: Path | None = None) -> Path:
    """Where the target's venv lives: <cache>/runtimes/<spec as a folder name>."""
    return (root or cache_root()) / "runtimes" / _slug(target.spec)


def ensure(target: Target, root: Path | None = None, on_progress: Progress | None = None) -> Target:
    """The target with its venv's Python, building the venv on first use (atomically: a half-made one is rebuilt)."""
    if target.in_process:
        return target
    final = venv_dir(target, root)
    base = final.parent
    with _locked(base / LOCK):
        _remove_half_built(base)
        ready = final / READY
        if not ready.exists():
            shutil.rmtree(final, ignore_errors=True)
            tmp = Path(tempfile.mkdtemp(prefix=f".{_slug(target.spec)}.", dir=base))
            try:
                _build_venv(target.spec, tmp, on_progress)
                os.replace(tmp, final)
            finally:
                shutil.rmtree(tmp, ignore_errors=True)
        info = json.loads(ready.read_text(encoding="utf-8"))
    return dataclasses.replace(target, version=info["version"], python=str(final / "bin" / "python"))


def _remove_half_built(base: Path) -> None:
    """Staging venvs a killed build left (only ever called under the lock: no build is under way)."""
    for entry in base.iterdir():
        if entry.name.startswith(".") and entry.name != LOCK and entry.is_dir():
            shutil.rmtree(entry, ignore_errors=True)


def _build_venv(spec: str, folder: Path, on_progress: Progress | None) -> None:
    if on_progress:
        on_progress(f"installing {spec} (first use, ~30 s)")
    proc = _run(
        [sys.executable, "-m", "venv", str(folder)],
        f"creating the venv for {spec}",
        INSTALL_TIMEOUT,
        folder / STAGING_TMP,
    )
    if proc.returncode:
        raise RuntimeFailure(
            f"could not create a venv for --runtime {spec}: {proc.stderr.strip()[-300:]}. Check that "
            "python -m venv works."
        )
    python = folder / "bin" / "python"
    _pip(python, [spec, "numpy"], spec)
    info, error = _self_check(python, spec)
    if info is None and any(m.lower() in error.lower() for m in NUMPY_ABI):
        if on_progress:
            on_progress(f"{spec} was built against NumPy 1.x: installing numpy<2 beside it")
        _pip(python, ["numpy<2"], spec)
        info, error = _self_check(python, spec)
    if info is None:
        last = (error.strip().splitlines() or ["(no output)"])[-1]
        raise RuntimeFailure(
            f"--runtime {spec} installed but cannot run a model: {last[:300]}. Try another version of the runtime.",
            detail=error[-4000:],
        )
    shutil.rmtree(folder / STAGING_TMP, ignore_errors=True)
    (folder / READY).write_text(json.dumps({"spec": spec, **info}), encoding="utf-8")


def call(
    target: Target,
    request: dict,
    files: dict[str, bytes | dict[str, np.ndarray]],
    what: str,
    timeout: float = CHILD_TIMEOUT,
) -> dict:
    """Answer `request` in the target's venv.

    `files` (name -> model bytes or arrays) are written beside it and named by path.
    A runtime that crashes natively or hangs becomes a RuntimeFailure naming it.
    """
    if target.python is None:
        raise RuntimeFailure(f"no venv for {target.spec} yet: call targets.ensure() on it first")
    with tempfile.TemporaryDirectory(prefix="xnnfit-runtime-", dir=os.environ.get(SCRATCH_ENV)) as tmp:
        paths = {}
        for name, value in files.items():
            path = Path(tmp) / name
            if isinstance(value, dict):
                with open(path, "wb") as f:
                    np.savez(f, *value.values())
            else:
                path.write_bytes(value)
            paths[name] = str(path)
        req_path, resp_path = Path(tmp) / "request.json", Path(tmp) / "response.json"
        req_path.write_text(json.dumps(_resolve(request, paths)), encoding="utf-8")
        env = {**os.environ, "PYTHONNOUSERSITE": "1", "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONPATH": ""}
        try:
            proc = isolate.run_command(
                [target.python, str(CHILD), str(req_path), str(resp_path)], timeout=timeout, env=env
            )
        except subprocess.TimeoutExpired as exc:
            raise RuntimeFailure(f"{target.label} took more than {timeout:.0f} s {what} and was stopped.") from exc
        if proc.returncode < 0:
            name = signal.Signals(-proc.returncode).name
            raise RuntimeFailure(
                f"{target.label} crashed ({name}) {what}: that runtime cannot run this model. Try a newer "
                "runtime, or run with --debug for its log.",
                detail=proc.stderr[-4000:],
            )
        if not resp_path.exists():
            last = (proc.stderr.strip().splitlines() or ["(no output)"])[-1]
            raise RuntimeFailure(
                f"{target.label} failed {what}: {last[:300]}. Run with --debug for its log.", detail=proc.stderr[-4000:]
            )
        return json.loads(resp_path.read_text(encoding="utf-8"))


def _resolve(value: Any, paths: dict[str, str]) -> Any:
    if isinstance(value, str) and value.startswith("@"):
        return paths[value[1:]]
    if isinstance(value, dict):
        return {k: _resolve(v, paths) for k, v in value.items()}
    if isinstance(value, list):
        return [_resolve(v, paths) for v in value]
    return value


def ops_details(
    target: Target,
    content: bytes,
    shapes: dict[int, tuple[int, ...]],
    what: str = "the model",
    *,
    preserve_all_tensors: bool = False,
) -> list[dict]:
    """The target's `_get_ops_details()` after its default delegate (XNNPACK) was applied at the given input shapes.

    RuntimeFailure with the runtime's own message when it cannot load or allocate the model.
    `preserve_all_tensors` builds the interpreter as a debugger would (where the runtime has the option).
    """
    request = {
        "op": "details",
        "model": "@model.tflite",
        "shapes": {str(k): list(v) for k, v in shapes.items()},
        "preserve_all_tensors": preserve_all_tensors,
    }
    response = call(target, request, {"model.tflite": content}, f"loading {what}")
    if "error" in response:
        raise RuntimeFailure(
            f"{target.label} cannot run {what} with XNNPACK: {response['error'][:300]}", detail=response["error"]
        )
    return response["ops"]


def time_configs(
    target: Target,
    configs: Sequence[tuple[bytes, Sequence[np.ndarray], bool, int]],
    runs: int,
    warmup: int,
    what: str = "timing the model",
) -> tuple[list[list[float]], list[int]]:
    """Interleaved latency samples (ms) and resident memory added, per (model, inputs, xnnpack, threads).

    Measured in the target's child.
    """
    files: dict[str, bytes | dict[str, np.ndarray]] = {}
    request_configs = []
    for i, (content, values, xnnpack, threads) in enumerate(configs):
        files[f"m{i}.tflite"] = content
        files[f"in{i}.npz"] = {f"arr_{j}": v for j, v in enumerate(values)}
        request_configs.append(
            {"model": f"@m{i}.tflite", "inputs": f"@in{i}.npz", "xnnpack": xnnpack, "threads": threads}
        )
    response = call(target, {"op": "time", "configs": request_configs, "runs": runs, "warmup": warmup}, files, what)
    if "error" in response:
        raise RuntimeFailure(f"{target.label} failed {what}: {response['error'][:300]}", detail=response["error"])
    return response["samples_ms"], response["rss_delta_bytes"]


def inputs_in_order(content: bytes, sample: dict[str, np.ndarray]) -> list[np.ndarray]:
    """The sample's arrays in the order of the model's inputs (what the child feeds by position)."""
    from xnnfit.model.specs import input_name
    from xnnfit.tflite.graph import read_model

    sub = read_model(content).primary
    names = [input_name(sub.tensors[t].name) for t in sub.inputs]
    return [sample[n] for n in names] if set(names) <= set(sample) else list(sample.values())[: len(names)]


def ops_details_many(target: Target, contents: Sequence[bytes], what: str = "the probes") -> list[list[dict] | str]:
    """ops_details() of many models at their declared shapes, in one child.

    Per model: its node list, or the runtime's error text.
    When the runtime crashes natively on one of them, each is asked alone, so one crash costs one model.
    """
    files: dict[str, bytes | dict[str, np.ndarray]] = {f"m{i}.tflite": c for i, c in enumerate(contents)}
    try:
        response = call(
            target,
            {"op": "details_many", "models": [f"@m{i}.tflite" for i in range(len(contents))]},
            files,
            f"loading {what}",
        )
        return [r["ops"] if "ops" in r else r["error"] for r in response["results"]]
    except RuntimeFailure:
        if len(contents) == 1:
            raise
    out: list[list[dict] | str] = []
    for c in contents:
        try:
            out.append(ops_details(target, c, {}, what))
        except RuntimeFailure as exc:
            out.append(str(exc))
    return out
