"""The quantization sweep: convert with every recipe and choose one with evidence.

Each recipe is materialized by the pipeline (its own conversion child; a calibrator
crash fails that row only). Each artifact is then diagnosed, profiled and run on the
evaluation inputs in a TensorFlow-free child; the latencies of all rows are measured
together, interleaved, in one process. Accuracy is measured against the fp32
conversion, which stands for the float Keras model (the fp32 converter output matches
Keras to float rounding).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import ClassVar

import numpy as np

from xnnfit.artifact import Artifact
from xnnfit.convert import ConvertOptions
from xnnfit.diagnosis import diagnose
from xnnfit.errors import InputDataError, RuntimeFailure, SourceError, XnnfitError
from xnnfit import fmt
from xnnfit.files import write_file
from xnnfit.inputs import load_npz, random_inputs
from xnnfit.isolate import run_isolated
from xnnfit.pipeline import Progress, materialize
from xnnfit.policy import BENCH_RUNS, DEFAULT_MAX_ERROR, DEFAULT_TIMEOUT, EVAL_SAMPLES, SWEEP_PROFILE_DIVISOR, VerifyPolicy
from xnnfit.profiling import profile_content
from xnnfit.recipes import ALL, FP32, ConversionRecipe
from xnnfit.record import NOT_IN_DICT, Record
from xnnfit.runtime import outputs, runtime_versions
from xnnfit.source import ModelSource
from xnnfit.timing import race

DEFAULT_RECIPES = tuple(ALL.values())


@dataclasses.dataclass(frozen=True)
class QuantRow(Record):
    """One recipe's evidence."""

    recipe: str
    status: str  # 'ok' or 'failed'
    error: str | None = None
    size_bytes: int = 0
    nodes: int = 0
    cpu_nodes: int = 0
    delegated_fraction: float = 0.0
    partitions: int = 0
    median_ms: float = 0.0
    cpu_share: float = 0.0
    max_abs_error: float = 0.0
    rel_error: float = 0.0  # max abs error / max |float output|
    mean_rel_error: float = 0.0
    cosine: float = 1.0
    top1: float | None = None  # share of samples whose argmax agrees with the float model
    pareto: bool = False
    warnings: tuple[str, ...] = ()
    content: bytes = dataclasses.field(default=b"", repr=False, compare=False, metadata=NOT_IN_DICT)

    def save(self, path: str | Path, *, force: bool = False) -> Path:
        """Write this recipe's model atomically."""
        if not self.content:
            raise XnnfitError(f"no model for recipe {self.recipe} (it failed, or the result was read back from JSON).")
        return write_file(path, self.content, force=force)


@dataclasses.dataclass(frozen=True)
class QuantResult(Record):
    """quant() of one model: a row per recipe, the recommendation and why."""

    RESULT: ClassVar[str] = "quant"

    model: str
    rows: tuple[QuantRow, ...]
    recommended: str | None
    reason: str
    max_error: float
    warnings: tuple[str, ...] = ()
    versions: dict[str, str] = dataclasses.field(default_factory=dict)

    def row(self, recipe: str) -> QuantRow:
        """The row of one recipe."""
        return next(r for r in self.rows if r.recipe == recipe)

    def save(self, folder: str | Path, *, stem: str = "model", force: bool = False) -> list[Path]:
        """Write every converted model as FOLDER/STEM.RECIPE.tflite."""
        out = Path(folder)
        try:
            out.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise XnnfitError(f"cannot create folder {str(folder)!r}: {exc.strerror}. Pick a writable folder.") from exc
        return [r.save(out / f"{stem}.{r.recipe}.tflite", force=force) for r in self.rows if r.content]


def _measure(artifact: Artifact, samples: list[dict], runs: int) -> dict:
    """Delegation, CPU share and outputs of one converted model (run it in a child)."""
    diag = diagnose(artifact)
    try:
        prof = profile_content(artifact.content, artifact.specs, diag.nodes, diag.partitions, samples[0], runs=runs, warmup=2)
    except XnnfitError as exc:
        raise RuntimeFailure(
            f"the LiteRT runtime loads the {artifact.recipe} model but fails to run it with XNNPACK ({' '.join(str(exc).split())[:160]}); "
            "this recipe cannot be used with this runtime"
        ) from exc
    return {"summary": diag.summary(), "fraction": diag.delegated_fraction, "cpu_share": prof.cpu_share, "outputs": outputs(artifact.content, samples, artifact.specs)}


def _race(contents: dict[str, bytes], sample: dict, specs, runs: int) -> dict[str, float]:
    """Median latency of every model, timed interleaved in one process with XNNPACK on, 1 thread."""
    return {k: v.median_ms for k, v in race(contents, sample, runs, specs=specs).items()}


def accuracy(reference: list[list[np.ndarray]], candidate: list[list[np.ndarray]]) -> dict:
    """Max abs, relative, mean relative error, cosine similarity and top-1 agreement over all samples."""
    ref = np.concatenate([np.concatenate([o.reshape(-1) for o in s]) for s in reference])
    got = np.concatenate([np.concatenate([o.reshape(-1) for o in s]) for s in candidate])
    diff = np.abs(ref - got)
    scale = float(np.max(np.abs(ref))) or 1.0
    denom = float(np.linalg.norm(ref) * np.linalg.norm(got))
    cosine = float(np.dot(ref, got) / denom) if denom else (1.0 if not diff.any() else 0.0)
    first_ref = [s[0] for s in reference]
    first_got = [s[0] for s in candidate]
    top1 = None
    if first_ref[0].ndim == 2 and first_ref[0].shape[-1] >= 2:  # class scores: (batch, classes)
        agree = [np.array_equal(np.argmax(a, -1), np.argmax(b, -1)) for a, b in zip(first_ref, first_got)]
        top1 = float(np.mean(agree))
    return {
        "max_abs_error": float(diff.max()) if diff.size else 0.0,
        "rel_error": float(diff.max()) / scale if diff.size else 0.0,
        "mean_rel_error": float(diff.mean() / (np.abs(ref).mean() or 1.0)) if diff.size else 0.0,
        "cosine": cosine,
        "top1": top1,
    }


def pareto(rows: list[QuantRow]) -> set[str]:
    """Recipes no other row beats on latency, size and error at once."""
    ok = [r for r in rows if r.status == "ok"]
    front = set()
    for r in ok:
        key = (r.median_ms, r.size_bytes, r.rel_error)
        dominated = any(
            all(a <= b for a, b in zip((o.median_ms, o.size_bytes, o.rel_error), key))
            and any(a < b for a, b in zip((o.median_ms, o.size_bytes, o.rel_error), key))
            for o in ok
            if o is not r
        )
        if not dominated:
            front.add(r.recipe)
    return front


def recommend(rows: list[QuantRow], max_error: float) -> tuple[str | None, str]:
    """The fastest recipe within the error budget (ties: smaller), and a one-line reason."""
    ok = [r for r in rows if r.status == "ok"]
    within = [r for r in ok if r.rel_error <= max_error]
    if not within:
        return None, f"no recipe stays within the error budget ({max_error:.1%} of the output scale); relax --max-error or check the calibration data"
    best = min(within, key=lambda r: (round(r.median_ms, 4), r.size_bytes))
    fp32 = next((r for r in ok if r.recipe == "fp32"), None)
    versus = f", {fp32.median_ms / best.median_ms:.2f}x the speed of fp32 at {best.size_bytes / max(fp32.size_bytes, 1):.0%} of its size" if fp32 and best is not fp32 else ""
    return best.recipe, (
        f"fastest within the error budget (error {best.rel_error:.2%} <= {max_error:.1%}, "
        f"{fmt.pct(best.delegated_fraction)} of nodes on XNNPACK{versus})"
    )


def _warnings(row: QuantRow, fp32: QuantRow | None) -> tuple[str, ...]:
    out = []
    if row.status != "ok":
        return ()
    if row.nodes and row.delegated_fraction == 0:
        out.append(f"{row.recipe} runs nothing on XNNPACK: every node is on the built-in CPU kernels")
    elif fp32 and row.cpu_nodes > fp32.cpu_nodes:
        slower = f", {row.median_ms / fp32.median_ms:.2f}x the latency of fp32" if row.median_ms > fp32.median_ms else ""
        out.append(f"{row.recipe} leaves {row.cpu_nodes - fp32.cpu_nodes} more node(s) on CPU kernels than fp32 ({fmt.pct(row.cpu_share)} of its time){slower}")
    return tuple(out)


def run_sweep(
    source: ModelSource,
    recipes: tuple[ConversionRecipe, ...] = DEFAULT_RECIPES,
    options: ConvertOptions = ConvertOptions(),
    *,
    eval_data: str | None = None,
    max_error: float = DEFAULT_MAX_ERROR,
    runs: int = BENCH_RUNS,
    timeout: float = DEFAULT_TIMEOUT,
    on_progress: Progress | None = None,
) -> QuantResult:
    """Sweep `recipes` over a Keras model and recommend one."""
    if source.is_tflite:
        raise XnnfitError(
            f"{source.display!r} is a .tflite: quant needs the float model to convert it with each recipe. "
            "Pass the .keras/.h5/SavedModel or file.py:function it came from."
        )
    step = on_progress or (lambda _: None)
    recipes = tuple(dict.fromkeys((FP32, *recipes)))  # fp32 is the reference
    artifacts: dict[str, Artifact] = {}
    failed: dict[str, str] = {}
    for recipe in recipes:
        step(f"converting ({recipe.name})")
        try:
            artifacts[recipe.name] = materialize(source, recipe, options, timeout=timeout)
        except (SourceError, InputDataError):
            raise
        except XnnfitError as exc:
            failed[recipe.name] = str(exc)
        if recipe is FP32 and recipe.name in artifacts and options.calibration:
            load_npz(options.calibration, artifacts[recipe.name].specs)  # bad data fails now, before any calibrated conversion
    if "fp32" not in artifacts:
        raise XnnfitError(f"the fp32 conversion failed, so there is no float reference: {failed.get('fp32')}")
    specs = artifacts["fp32"].specs
    warnings = list(dict.fromkeys(w for a in artifacts.values() for w in a.warnings))
    if eval_data or options.calibration:
        samples = load_npz(eval_data or options.calibration, specs)[:EVAL_SAMPLES]
    else:
        samples = random_inputs(specs, EVAL_SAMPLES, seed=options.seed + 1)
        warnings.append("no --eval or --calibration data: accuracy measured on seeded random inputs, so it is only indicative")
    profile_runs = max(VerifyPolicy().min_runs, runs // SWEEP_PROFILE_DIVISOR)
    measured: dict[str, dict] = {}
    for name, artifact in artifacts.items():
        step(f"measuring ({name})")
        try:
            measured[name] = run_isolated(_measure, artifact, samples, profile_runs, what=f"measuring {artifact.what}", timeout=timeout)
        except XnnfitError as exc:
            failed[name] = str(exc)
    step("timing all recipes together")
    contents = {n: artifacts[n].content for n in measured}
    latency = run_isolated(_race, contents, samples[0], specs, runs, what="timing the recipes", timeout=timeout)
    reference = measured["fp32"]["outputs"]
    rows = []
    for recipe in recipes:
        name = recipe.name
        if name in failed or name not in measured:
            rows.append(QuantRow(name, "failed", failed.get(name, "not measured")))
            continue
        m, s = measured[name], measured[name]["summary"]
        rows.append(
            QuantRow(
                name, "ok", None, artifacts[name].size_bytes, s["nodes"], s["cpu_nodes"], m["fraction"], s["partitions"],
                latency[name], m["cpu_share"], **accuracy(reference, m["outputs"]), content=artifacts[name].content,
            )
        )
    front = pareto(rows)
    fp32_row = next(r for r in rows if r.recipe == "fp32")
    rows = [dataclasses.replace(r, pareto=r.recipe in front, warnings=_warnings(r, fp32_row)) for r in rows]
    best, reason = recommend(rows, max_error)
    return QuantResult(source.display, tuple(rows), best, reason, max_error, tuple(warnings), runtime_versions())
