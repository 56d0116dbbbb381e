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

from xnnfit.choose.repair import explain_and_repair
from xnnfit.choose.selection import Measured, Scored, pareto, pick, race_stage
from xnnfit.core import fmt
from xnnfit.core.errors import RuntimeFailure, XnnfitError
from xnnfit.core.files import check_output_path, os_error, write_file
from xnnfit.core.policy import BENCH_RUNS, DEFAULT_MAX_ERROR, DEFAULT_POLICY, EVAL_SAMPLES, SWEEP_PROFILE_DIVISOR
from xnnfit.core.record import Record
from xnnfit.explain.diagnosis import diagnose
from xnnfit.measure.accuracy import agreement, class_scores, judge_reference
from xnnfit.measure.profile import profile_content
from xnnfit.model.artifact import Artifact
from xnnfit.model.convert import ConvertOptions
from xnnfit.model.inputs import load_npz, random_inputs
from xnnfit.model.recipes import DEFAULT, FP32, ConversionRecipe, with_reference
from xnnfit.runner import Job, attempt
from xnnfit.runtime.interpreter import outputs, runtime_versions


@dataclasses.dataclass(frozen=True)
class QuantRow(Scored):
    """One recipe's evidence: the scores every candidate gets, and the CPU kernels' share of its time."""

    cpu_share: float = 0.0
    warnings: tuple[str, ...] = ()

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


def measure_stage(artifact: Artifact, samples: list[dict], runs: int) -> Measured:
    """Delegation, CPU share and outputs of one converted model (run it in a TensorFlow-free child)."""
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
    counts = diag.summary()
    return Measured(
        nodes=counts["nodes"],
        cpu_nodes=counts["cpu_nodes"],
        partitions=counts["partitions"],
        delegated_fraction=diag.delegated_fraction,
        cpu_share=prof.cpu_share,
        outputs=tuple(outputs(artifact.content, samples, artifact.specs)),
    )


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


def converted(job: Job, recipes: tuple[ConversionRecipe, ...]) -> tuple[dict[str, Artifact], dict[str, str]]:
    """Every recipe converted, fp32 first (the float reference); recipes that fail are returned with their error."""
    artifacts: dict[str, Artifact] = {}
    failed: dict[str, str] = {}
    for recipe in with_reference(recipes):
        job.step(f"converting ({recipe.name})")
        done = attempt(lambda r=recipe: job.artifact(r), lambda exc: exc)
        if isinstance(done, XnnfitError):
            failed[recipe.name] = str(done)
            continue
        artifacts[recipe.name] = done
        if recipe is FP32 and job.options.calibration:
            load_npz(job.options.calibration, done.specs)  # bad data fails now, before any calibrated conversion
    if FP32.name not in artifacts:
        raise XnnfitError(f"the fp32 conversion failed, so there is no float reference: {failed.get(FP32.name)}")
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


def run_sweep(
    job: Job,
    recipes: tuple[ConversionRecipe, ...] = DEFAULT,
    *,
    eval_data: str | None = None,
    max_error: float = DEFAULT_MAX_ERROR,
    runs: int = BENCH_RUNS,
    explain_quant: bool = False,
) -> QuantResult:
    """Sweep `recipes` over a Keras model and recommend one."""
    source = job.source
    if source.is_tflite:
        raise XnnfitError(
            f"{source.display!r} is a .tflite: quant needs the float model to convert it with each recipe. "
            "Pass the .keras/.h5/SavedModel or file.py:function it came from."
        )
    artifacts, failed = converted(job, recipes)
    specs = artifacts[FP32.name].specs
    samples, notes = eval_samples(specs, eval_data, job.options)
    warnings = list(dict.fromkeys([*(w for a in artifacts.values() for w in a.warnings), *notes]))
    profile_runs = max(DEFAULT_POLICY.min_runs, runs // SWEEP_PROFILE_DIVISOR)
    measured: dict[str, Measured] = {}
    for name, artifact in artifacts.items():
        done = attempt(
            lambda a=artifact: job.stage(measure_stage, a, samples, profile_runs, what=f"measuring {a.what}"),
            lambda exc: exc,
        )
        if isinstance(done, XnnfitError):
            failed[name] = str(done)
        else:
            measured[name] = done
    if FP32.name not in measured:
        raise XnnfitError(f"the fp32 model, the float reference, cannot be measured: {failed.get(FP32.name)}")
    explained, repair = explain_and_repair(
        job,
        artifacts,
        {n: m.outputs for n, m in measured.items()},
        measured[FP32.name].outputs,
        {r.name: r for r in with_reference(recipes)},
        samples,
        max_error=max_error,
        every=explain_quant,
        measure=lambda a: job.stage(measure_stage, a, samples, profile_runs, what=f"measuring {a.what}"),
        outputs_of=lambda m: m.outputs,
    )
    if explained.repair is not None:
        recipes = (*recipes, explained.repair)
        if isinstance(repair, XnnfitError):
            failed[explained.repair.name] = str(repair)
        else:
            measured[explained.repair.name] = repair
    warnings.extend(explained.notes)
    contents = {n: artifacts[n].content for n in measured}
    latency = job.stage(race_stage, contents, samples[0], specs, runs, what="timing all recipes together")
    reference = measured[FP32.name].outputs
    classes = class_scores(artifacts[FP32.name].content)
    judged, notes = judge_reference(reference)
    warnings.extend(notes)
    rows = []
    for recipe in with_reference(recipes):
        name = recipe.name
        if name in failed or name not in measured:
            rows.append(QuantRow(name, "failed", failed.get(name, "not measured")))
            continue
        m, t = measured[name], latency[name]
        rows.append(
            QuantRow(
                name,
                "ok",
                size_bytes=artifacts[name].size_bytes,
                nodes=m.nodes,
                cpu_nodes=m.cpu_nodes,
                delegated_fraction=m.delegated_fraction,
                partitions=m.partitions,
                median_ms=t.median_ms,
                cpu_share=m.cpu_share,
                **agreement(reference, m.outputs, classes).to_dict(),
                p10_ms=t.p10_ms,
                p90_ms=t.p90_ms,
                content=artifacts[name].content,
                quantization_findings=explained.findings.get(name, ()),
            )
        )
    front = pareto(rows)
    fp32_row = next(r for r in rows if r.recipe == FP32.name)
    rows = [dataclasses.replace(r, pareto=r.recipe in front, warnings=_warnings(r, fp32_row)) for r in rows]
    best, reason = recommend(rows, max_error, judged=judged)
    return QuantResult(
        source.display,
        tuple(rows),
        best,
        reason,
        max_error,
        warnings=tuple(warnings),
        versions=runtime_versions(),
        accuracy_judged=judged,
    )


def _same_file(a: str, b: str) -> bool:
    pa, pb = Path(a), Path(b)
    return pa.resolve() == pb.resolve() or (pa.is_file() and pb.is_file() and pa.read_bytes() == pb.read_bytes())
