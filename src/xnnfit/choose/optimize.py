"""optimize: from a Keras model to the fastest faithful TFLite model for XNNPACK, with the evidence.

Every recipe is converted once (sweep.materialize_all), then fixed with the same rules
and verification as `xnnfit fix` (quantized candidates judged against the fp32
conversion), each in its own TensorFlow-free child; a crash costs that candidate only.
The fixed candidates and the plain fp32 conversion are then raced together, interleaved,
at the user's thread count, and their outputs compared with the fp32 conversion's on the
eval inputs. The choice is sweep.pick: the fastest within the error budget, latencies
within the measured noise counting as equal.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import ClassVar

import numpy as np

from xnnfit.choose.quant import accuracy, class_scores, eval_samples, judge_reference, materialize_all, pareto, pick
from xnnfit.core import fmt
from xnnfit.core.errors import XnnfitError
from xnnfit.core.files import check_output_path, os_error, write_file
from xnnfit.core.isolate import run_isolated
from xnnfit.core.policy import BENCH_RUNS, DEFAULT_MAX_ERROR, DEFAULT_TIMEOUT
from xnnfit.core.record import NOT_IN_DICT, Record
from xnnfit.explain.diagnosis import diagnose
from xnnfit.model.artifact import Artifact
from xnnfit.model.convert import ConvertOptions
from xnnfit.model.recipes import ALL, FP32, ConversionRecipe
from xnnfit.model.source import ModelSource
from xnnfit.rewrite.engine import fix_content
from xnnfit.rewrite.fix import FP32_REFERENCE, TWIN_REFERENCE, KerasHint, keras_hints
from xnnfit.rewrite.float_twin import float_twin, is_quantized
from xnnfit.runner import Progress, materialize
from xnnfit.runtime.interpreter import outputs, runtime_versions
from xnnfit.runtime.timing import Stats, race

BASELINE = "baseline"  # race key of what every speed-up is measured against


@dataclasses.dataclass(frozen=True)
class Candidate(Record):
    """One recipe, converted and fixed: delegation, latency, size and accuracy of the model optimize would write."""

    recipe: str
    status: str  # 'ok' or 'failed'
    error: str | None = None
    fixed: bool = False  # a rewrite was kept
    rules: tuple[str, ...] = ()  # kept rewrites, 'XR009 ×14'
    rolled_back: tuple[tuple[str, str], ...] = ()  # (rule, why)
    cpu_nodes_before: int = 0
    cpu_nodes: int = 0
    nodes: int = 0
    partitions: int = 0
    delegated_fraction: float = 0.0
    median_ms: float = 0.0
    p10_ms: float = 0.0
    p90_ms: float = 0.0
    size_bytes: int = 0
    max_abs_error: float = 0.0
    rel_error: float = 0.0  # max abs error / max |float output|
    mean_rel_error: float = 0.0
    cosine: float = 1.0
    top1: float | None = None
    pareto: bool = False
    keras_hints: tuple[KerasHint, ...] = ()
    content: bytes = dataclasses.field(default=b"", repr=False, compare=False, metadata=NOT_IN_DICT)


@dataclasses.dataclass(frozen=True)
class OptimizeResult(Record):
    """optimize() of one model: the chosen candidate and why, every candidate, what accuracy was measured against."""

    RESULT: ClassVar[str] = "optimize"

    model: str
    chosen: str | None
    reason: str
    candidates: tuple[Candidate, ...]
    reference: str  # what accuracy was measured against
    baseline: str  # what speed-ups are measured against: the plain fp32 conversion, or the .tflite as given
    baseline_ms: float  # its median, raced with the candidates
    max_error: float
    threads: int = 1
    output: str | None = None
    accuracy_judged: bool = True
    warnings: tuple[str, ...] = ()
    versions: dict[str, str] = dataclasses.field(default_factory=dict)

    def candidate(self, recipe: str) -> Candidate:
        """The candidate of one recipe."""
        return next(c for c in self.candidates if c.recipe == recipe)

    @property
    def best(self) -> Candidate | None:
        """The chosen candidate."""
        return self.candidate(self.chosen) if self.chosen else None

    def save(self, path: str | Path, *, force: bool = False) -> Path:
        """Write the chosen model atomically."""
        best = self.best
        if best is None or not best.content:
            raise XnnfitError(
                "this result holds no chosen model (none was within the budget, or it was read back from JSON)."
            )
        return write_file(check_output_path(path, force=force), best.content, force=force)


def candidate_stage(
    artifact: Artifact, *, reference: bytes | None, reference_name: str, samples: list[dict], runs: int
) -> dict:
    """Fix `artifact` (verified as `xnnfit fix` does), then its delegation and outputs.

    Run it in a TensorFlow-free child.
    """
    result = fix_content(artifact, reference=reference, reference_name=reference_name, runs=runs)
    fixed = dataclasses.replace(artifact, content=result.content)
    diag = diagnose(fixed)
    hints = keras_hints(artifact, result.content if result.applied else None) if artifact.layers else ()
    return {
        "content": result.content,
        "applied": tuple(f"{o.rule} ×{o.count}" for o in result.applied),
        "rolled_back": tuple((o.rule, o.reason) for o in result.outcomes if o.status == "rolled-back"),
        "cpu_before": result.before.cpu_nodes,
        "summary": diag.summary(),
        "fraction": diag.delegated_fraction,
        "outputs": outputs(result.content, samples, artifact.specs),
        "hints": hints,
    }


def _race(contents: dict[str, bytes], sample: dict, specs, runs: int, threads: int) -> dict[str, Stats]:
    return race(contents, sample, runs, specs=specs, threads=threads)


def run_optimize(
    source: ModelSource,
    recipes: tuple[ConversionRecipe, ...] = tuple(ALL.values()),
    options: ConvertOptions = ConvertOptions(),
    *,
    output: str | Path | None = None,
    keep_all: str | Path | None = None,
    force: bool = False,
    eval_data: str | None = None,
    max_error: float = DEFAULT_MAX_ERROR,
    threads: int = 1,
    runs: int = BENCH_RUNS,
    timeout: float = DEFAULT_TIMEOUT,
    on_progress: Progress | None = None,
) -> OptimizeResult:
    """Convert with every recipe, fix each, race them, and write the fastest within `max_error` to `output`."""
    inputs = (source.path,) if source.path is not None else ()
    path = check_output_path(output, inputs=inputs, force=force) if output is not None else None
    step = on_progress or (lambda _: None)
    warnings: list[str] = []
    order = [r.name for r in dict.fromkeys((FP32, *recipes))]
    if source.is_tflite:
        artifact = materialize(source, FP32, options, timeout=timeout)
        order = [artifact.recipe]
        artifacts, failed = {artifact.recipe: artifact}, {}
        reference = float_twin(artifact.content) if is_quantized(artifact.content) else artifact.content
        reference_name = TWIN_REFERENCE if is_quantized(artifact.content) else "the model as given"
        baseline, baseline_name = artifact.content, "the model as given"
        warnings.append(
            "a .tflite alone can only be fixed: converting with other recipes needs the Keras model it came from"
        )
    else:
        artifacts, failed = materialize_all(source, tuple(dict.fromkeys((FP32, *recipes))), options, timeout, step)
        reference, reference_name = artifacts["fp32"].content, FP32_REFERENCE
        baseline, baseline_name = reference, "the plain fp32 conversion"
    specs = next(iter(artifacts.values())).specs
    samples, notes = eval_samples(specs, eval_data, options)
    warnings = list(dict.fromkeys([*(w for a in artifacts.values() for w in a.warnings), *warnings, *notes]))
    ref_out = outputs_isolated(reference, samples, specs, timeout)
    judged, notes = judge_reference(ref_out)
    warnings.extend(notes)
    measured: dict[str, dict] = {}
    for name, artifact in artifacts.items():
        step(f"fixing and measuring ({name})")
        quantized = name != "fp32" or source.is_tflite
        try:
            measured[name] = run_isolated(
                candidate_stage,
                artifact,
                reference=reference if quantized and reference != artifact.content else None,
                reference_name=reference_name,
                samples=samples,
                runs=runs,
                what=f"fixing {artifact.what}",
                timeout=timeout,
            )
        except XnnfitError as exc:
            failed[name] = str(exc)
    if not measured:
        raise XnnfitError(f"no candidate could be fixed and measured: {next(iter(failed.values()), 'unknown error')}")
    step("timing all candidates together")
    contents = {BASELINE: baseline, **{n: m["content"] for n, m in measured.items()}}
    latency = run_isolated(
        _race, contents, samples[0], specs, runs, threads, what="timing the candidates", timeout=timeout
    )
    classes = class_scores(reference)
    candidates = []
    for name in order:
        if name not in measured:
            candidates.append(Candidate(name, "failed", failed.get(name, "not measured")))
            continue
        m, s, t = measured[name], measured[name]["summary"], latency[name]
        candidates.append(
            Candidate(
                name,
                "ok",
                None,
                bool(m["applied"]),
                m["applied"],
                m["rolled_back"],
                m["cpu_before"],
                s["cpu_nodes"],
                s["nodes"],
                s["partitions"],
                m["fraction"],
                t.median_ms,
                t.p10_ms,
                t.p90_ms,
                len(m["content"]),
                **accuracy(ref_out, m["outputs"], classes),
                keras_hints=m["hints"],
                content=m["content"],
            )
        )
    front = pareto(candidates)
    candidates = [dataclasses.replace(c, pareto=c.recipe in front) for c in candidates]
    best, fastest = pick(candidates, max_error)
    base_ms = latency[BASELINE].median_ms
    reason = _reason(best, fastest, candidates, base_ms, baseline_name, max_error, judged, reference_name)
    result = OptimizeResult(
        source.display,
        best.recipe if best else None,
        reason,
        tuple(candidates),
        reference_name,
        baseline_name,
        base_ms,
        max_error,
        threads,
        None,
        judged,
        tuple(warnings),
        runtime_versions(),
    )
    if keep_all is not None:
        _write_all(keep_all, source, result, force)
    if path is not None and best is not None:
        write_file(path, best.content, force=force, flag="-o")
        result = dataclasses.replace(result, output=str(path))
    return result


def outputs_isolated(content: bytes, samples: list[dict], specs, timeout: float) -> list[list[np.ndarray]]:
    """The reference's outputs, computed in a child (the caller never loads a runtime)."""
    return run_isolated(outputs, content, samples, specs, what="running the float reference", timeout=timeout)


def _reason(
    best: Candidate | None,
    fastest: Candidate | None,
    candidates,
    base_ms: float,
    baseline: str,
    max_error: float,
    judged: bool,
    reference: str,
) -> str:
    if best is None:
        worst = min((c.rel_error for c in candidates if c.status == "ok"), default=0.0)
        return (
            f"no candidate stays within the error budget ({fmt.pct(max_error)} of the output scale; "
            f"the closest is {fmt.rel(worst)}); "
            "relax --max-error or pass real --calibration data"
        )
    whole = (
        "100% on XNNPACK"
        if best.cpu_nodes == 0
        else f"{fmt.pct(best.delegated_fraction)} on XNNPACK ({fmt.plural(best.cpu_nodes, 'CPU node')} left)"
    )
    fixed = f", fixed by {', '.join(best.rules)}" if best.rules else ""
    text = (
        f"fastest within the error budget: {base_ms / best.median_ms:.2f}x the speed of {baseline}, "
        f"error {fmt.rel(best.rel_error)} of {reference}'s output scale (budget {fmt.pct(max_error)}), {whole}{fixed}"
    )
    if fastest is not None and fastest is not best:
        text += (
            f"; as fast as {fastest.recipe} within the measured noise, "
            "with fewer partitions, less error or a smaller size"
        )
    if not judged:
        text += (
            "; accuracy could not be judged on this float reference, "
            "so the choice rests on speed: check it on real --eval data"
        )
    return text


def _write_all(folder: str | Path, source: ModelSource, result: OptimizeResult, force: bool) -> None:
    out = Path(folder)
    stem = source.path.stem if source.path is not None else "model"
    files = [
        (out / f"{stem}.{c.recipe}{'.fixed' if c.fixed else ''}.tflite", c.content)
        for c in result.candidates
        if c.content
    ]
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise os_error(out, exc, "create the --keep-all folder") from exc
    for path, _ in files:  # every name checked before the first is written
        check_output_path(path, force=force, flag="--keep-all")
    for path, content in files:
        write_file(path, content, force=force, flag="--keep-all")
