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
from typing import Any, ClassVar

import numpy as np

from xnnfit.core import fmt
from xnnfit.core.errors import InputDataError, RuntimeFailure, SourceError, XnnfitError
from xnnfit.core.files import check_output_path, os_error, write_file
from xnnfit.core.isolate import run_isolated
from xnnfit.core.policy import (
    BENCH_RUNS,
    DEFAULT_MAX_ERROR,
    DEFAULT_TIMEOUT,
    DEGENERATE_SPREAD,
    EVAL_SAMPLES,
    LATENCY_TIE,
    SWEEP_PROFILE_DIVISOR,
    VerifyPolicy,
)
from xnnfit.core.record import NOT_IN_DICT, Record
from xnnfit.explain.diagnosis import diagnose
from xnnfit.measure.profile import profile_content
from xnnfit.model.artifact import Artifact
from xnnfit.model.convert import ConvertOptions
from xnnfit.model.inputs import load_npz, random_inputs
from xnnfit.model.recipes import ALL, FP32, ConversionRecipe
from xnnfit.model.source import ModelSource
from xnnfit.runner import Progress, materialize
from xnnfit.runtime.interpreter import outputs, runtime_versions
from xnnfit.runtime.timing import Stats, race
from xnnfit.tflite.graph import read_model

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
    top1: float | None = (
        None  # share of samples whose top class agrees with the float model; None unless the output is class scores
    )
    p10_ms: float = 0.0
    p90_ms: float = 0.0
    pareto: bool = False
    warnings: tuple[str, ...] = ()
    content: bytes = dataclasses.field(default=b"", repr=False, compare=False, metadata=NOT_IN_DICT)

    def save(self, path: str | Path, *, force: bool = False) -> Path:
        """Write this recipe's model atomically."""
        if not self.content:
            raise XnnfitError(f"no model for recipe {self.recipe} (it failed, or the result was read back from JSON).")
        return write_file(path, self.content, force=force, flag="-o")


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
    accuracy_judged: bool = True  # False when the float reference barely changes across the eval inputs

    def row(self, recipe: str) -> QuantRow:
        """The row of one recipe."""
        return next(r for r in self.rows if r.recipe == recipe)

    def save(self, folder: str | Path, *, stem: str = "model", force: bool = False) -> list[Path]:
        """Write every converted model as FOLDER/STEM.RECIPE.tflite."""
        out = Path(folder)
        try:
            out.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise os_error(out, exc, "create the folder") from exc
        paths = [out / f"{stem}.{r.recipe}.tflite" for r in self.rows if r.content]
        for path in paths:  # every name checked before the first is written
            check_output_path(path, force=force, flag="-o")
        return [r.save(path, force=force) for r, path in zip((r for r in self.rows if r.content), paths)]


def _measure(artifact: Artifact, samples: list[dict], runs: int) -> dict:
    """Delegation, CPU share and outputs of one converted model (run it in a child)."""
    diag = diagnose(artifact)
    try:
        prof = profile_content(
            artifact.content, artifact.specs, diag.nodes, diag.partitions, samples[0], runs=runs, warmup=2
        )
    except XnnfitError as exc:
        raise RuntimeFailure(
            f"the LiteRT runtime loads the {artifact.recipe} model but fails to run it with XNNPACK "
            f"({' '.join(str(exc).split())[:160]}); "
            "this recipe cannot be used with this runtime"
        ) from exc
    return {
        "summary": diag.summary(),
        "fraction": diag.delegated_fraction,
        "cpu_share": prof.cpu_share,
        "outputs": outputs(artifact.content, samples, artifact.specs),
    }


def _race(contents: dict[str, bytes], sample: dict, specs, runs: int) -> dict[str, Stats]:
    """Latency of every model, timed interleaved in one process with XNNPACK on, 1 thread."""
    return race(contents, sample, runs, specs=specs)


CLASS_SCORE_OPS = frozenset({"FULLY_CONNECTED", "SOFTMAX"})  # what a classifier's score output comes out of


def class_scores(content: bytes) -> bool:
    """True when top-1 means something: one output, (batch, classes >= 2), made by a dense layer or a softmax."""
    sub = read_model(content).primary
    if len(sub.outputs) != 1:
        return False
    t = sub.tensors[sub.outputs[0]]
    producer = sub.producers().get(t.index)
    return len(t.shape) == 2 and t.shape[-1] >= 2 and producer is not None and sub.ops[producer].op in CLASS_SCORE_OPS


def reference_spread(reference: list[list[np.ndarray]]) -> float:
    """How much the float outputs move across samples, as a share of their scale (0: the same output for all inputs)."""
    flat = np.stack([np.concatenate([o.reshape(-1) for o in s]) for s in reference])
    scale = float(np.max(np.abs(flat)))
    if scale < 1e-30 or len(flat) < 2:
        return 0.0
    return float(np.max(flat.max(axis=0) - flat.min(axis=0))) / scale


def _top1(reference: list[list[np.ndarray]], candidate: list[list[np.ndarray]]) -> float:
    """Share of samples whose unique top class agrees; a candidate with a tie at the top (all zeros) does not agree."""
    agree = []
    for r, c in zip(reference, candidate):
        r0, c0 = r[0].reshape(r[0].shape[0], -1), c[0].reshape(c[0].shape[0], -1)
        for rr, cc in zip(r0, c0):
            top = np.flatnonzero(cc == cc.max())
            agree.append(len(top) == 1 and top[0] == int(np.argmax(rr)))
    return float(np.mean(agree)) if agree else 0.0


def accuracy(reference: list[list[np.ndarray]], candidate: list[list[np.ndarray]], classes: bool = False) -> dict:
    """Max abs, relative, mean relative error, cosine similarity, and top-1 agreement (class scores only, else None)."""
    ref = np.concatenate([np.concatenate([o.reshape(-1) for o in s]) for s in reference])
    got = np.concatenate([np.concatenate([o.reshape(-1) for o in s]) for s in candidate])
    diff = np.abs(ref - got)
    scale = float(np.max(np.abs(ref))) or 1.0
    denom = float(np.linalg.norm(ref) * np.linalg.norm(got))
    cosine = float(np.dot(ref, got) / denom) if denom else (1.0 if not diff.any() else 0.0)
    return {
        "max_abs_error": float(diff.max()) if diff.size else 0.0,
        "rel_error": float(diff.max()) / scale if diff.size else 0.0,
        "mean_rel_error": float(diff.mean() / (np.abs(ref).mean() or 1.0)) if diff.size else 0.0,
        "cosine": cosine,
        "top1": _top1(reference, candidate) if classes else None,
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


def _tie_margin(row: Any) -> float:
    spread = (row.p90_ms - row.p10_ms) / row.median_ms / 2 if row.median_ms else 0.0
    return max(LATENCY_TIE, spread)


def pick(rows: list, max_error: float) -> tuple[Any, Any]:
    """(best, fastest) of the ok rows within `max_error`, or (None, None).

    Latencies within the measured noise of the fastest count as equal; among those, fewer
    partitions, then lower error, then smaller size win. Rows need `status`, `rel_error`,
    `median_ms`, `p10_ms`, `p90_ms`, `partitions` and `size_bytes`.
    """
    within = [r for r in rows if r.status == "ok" and r.rel_error <= max_error]
    if not within:
        return None, None
    fastest = min(within, key=lambda r: r.median_ms)
    ties = [r for r in within if r.median_ms <= fastest.median_ms * (1 + _tie_margin(fastest))]
    return min(ties, key=lambda r: (r.partitions, r.rel_error, r.size_bytes, r.median_ms)), fastest


def recommend(rows: list[QuantRow], max_error: float, *, judged: bool = True) -> tuple[str | None, str]:
    """The fastest recipe within the error budget (see `pick`), and a one-line reason."""
    ok = [r for r in rows if r.status == "ok"]
    best, fastest = pick(rows, max_error)
    if best is None:
        return (
            None,
            f"no recipe stays within the error budget ({max_error:.1%} of the output scale); relax "
            "--max-error or check the calibration data",
        )
    fp32 = next((r for r in ok if r.recipe == "fp32"), None)
    versus = (
        f", {fp32.median_ms / best.median_ms:.2f}x the speed of fp32 at "
        f"{fmt.pct(best.size_bytes / max(fp32.size_bytes, 1))} of its size"
        if fp32 and best is not fp32
        else ""
    )
    tie = ""
    if best is not fastest:
        tie = (
            f"; as fast as {fastest.recipe} within the measured noise "
            f"({fastest.median_ms:.3g} vs {best.median_ms:.3g} ms) with fewer partitions, less error or a smaller size"
        )
    caveat = (
        ""
        if judged
        else "; accuracy could not be judged on this float reference, so this is a choice on speed: "
        "check it on real --eval data"
    )
    return best.recipe, (
        f"fastest within the error budget (error {best.rel_error:.2%} <= {max_error:.1%}, "
        f"{fmt.pct(best.delegated_fraction)} of nodes on XNNPACK{versus}){tie}{caveat}"
    )


def _warnings(row: QuantRow, fp32: QuantRow | None) -> tuple[str, ...]:
    out = []
    if row.status != "ok":
        return ()
    if row.nodes and row.delegated_fraction == 0:
        out.append(f"{row.recipe} runs nothing on XNNPACK: every node is on the built-in CPU kernels")
    elif fp32 and row.cpu_nodes > fp32.cpu_nodes:
        slower = (
            f", {row.median_ms / fp32.median_ms:.2f}x the latency of fp32" if row.median_ms > fp32.median_ms else ""
        )
        out.append(
            f"{row.recipe} leaves {row.cpu_nodes - fp32.cpu_nodes} more node(s) on CPU kernels than "
            f"fp32 ({fmt.pct(row.cpu_share)} of its time){slower}"
        )
    return tuple(out)


def materialize_all(
    source: ModelSource, recipes: tuple[ConversionRecipe, ...], options: ConvertOptions, timeout: float, step: Progress
) -> tuple[dict[str, Artifact], dict[str, str]]:
    """Every recipe converted (fp32 first: the float reference); recipes that fail are returned with their error."""
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
            load_npz(
                options.calibration, artifacts[recipe.name].specs
            )  # bad data fails now, before any calibrated conversion
    if "fp32" not in artifacts:
        raise XnnfitError(f"the fp32 conversion failed, so there is no float reference: {failed.get('fp32')}")
    return artifacts, failed


def eval_samples(specs, eval_data: str | None, options: ConvertOptions) -> tuple[list[dict], list[str]]:
    """The inputs accuracy is measured on, and warnings about them (random data, the calibration data itself)."""
    warnings = []
    if eval_data or options.calibration:
        samples = load_npz(eval_data or options.calibration, specs)[:EVAL_SAMPLES]
        if options.calibration and (not eval_data or _same_file(eval_data, options.calibration)):
            warnings.append(
                "accuracy is measured on the calibration data: the quantization ranges were fit to these inputs, "
                "so errors look smaller than on new data; pass other inputs with --eval"
            )
    else:
        samples = random_inputs(specs, EVAL_SAMPLES, seed=options.seed + 1)
        warnings.append(
            "no --eval or --calibration data: accuracy measured on seeded random inputs, so it is only indicative"
        )
    return samples, warnings


def judge_reference(reference: list[list[np.ndarray]]) -> tuple[bool, list[str]]:
    """Whether accuracy can be judged on these float outputs, and the warning when not."""
    spread = reference_spread(reference)
    if spread >= DEGENERATE_SPREAD:
        return True, []
    return False, [
        "the float model gives nearly the same output for every eval input (it moves by "
        f"{spread:.2g} of its scale; random "
        "weights do this): accuracy cannot be judged on it, so the error columns say little; use "
        "trained weights or real --eval data"
    ]


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
    artifacts, failed = materialize_all(source, recipes, options, timeout, step)
    specs = artifacts["fp32"].specs
    samples, notes = eval_samples(specs, eval_data, options)
    warnings = list(dict.fromkeys([*(w for a in artifacts.values() for w in a.warnings), *notes]))
    profile_runs = max(VerifyPolicy().min_runs, runs // SWEEP_PROFILE_DIVISOR)
    measured: dict[str, dict] = {}
    for name, artifact in artifacts.items():
        step(f"measuring ({name})")
        try:
            measured[name] = run_isolated(
                _measure, artifact, samples, profile_runs, what=f"measuring {artifact.what}", timeout=timeout
            )
        except XnnfitError as exc:
            failed[name] = str(exc)
    if "fp32" not in measured:
        raise XnnfitError(f"the fp32 model, the float reference, cannot be measured: {failed.get('fp32')}")
    step("timing all recipes together")
    contents = {n: artifacts[n].content for n in measured}
    latency = run_isolated(_race, contents, samples[0], specs, runs, what="timing the recipes", timeout=timeout)
    reference = measured["fp32"]["outputs"]
    classes = class_scores(artifacts["fp32"].content)
    judged, notes = judge_reference(reference)
    warnings.extend(notes)
    rows = []
    for recipe in recipes:
        name = recipe.name
        if name in failed or name not in measured:
            rows.append(QuantRow(name, "failed", failed.get(name, "not measured")))
            continue
        m, s = measured[name], measured[name]["summary"]
        rows.append(
            QuantRow(
                name,
                "ok",
                None,
                artifacts[name].size_bytes,
                s["nodes"],
                s["cpu_nodes"],
                m["fraction"],
                s["partitions"],
                latency[name].median_ms,
                m["cpu_share"],
                **accuracy(reference, m["outputs"], classes),
                p10_ms=latency[name].p10_ms,
                p90_ms=latency[name].p90_ms,
                content=artifacts[name].content,
            )
        )
    front = pareto(rows)
    fp32_row = next(r for r in rows if r.recipe == "fp32")
    rows = [dataclasses.replace(r, pareto=r.recipe in front, warnings=_warnings(r, fp32_row)) for r in rows]
    best, reason = recommend(rows, max_error, judged=judged)
    return QuantResult(
        source.display, tuple(rows), best, reason, max_error, tuple(warnings), runtime_versions(), judged
    )


def _same_file(a: str, b: str) -> bool:
    from pathlib import Path

    pa, pb = Path(a), Path(b)
    return pa.resolve() == pb.resolve() or (pa.is_file() and pb.is_file() and pa.read_bytes() == pb.read_bytes())
