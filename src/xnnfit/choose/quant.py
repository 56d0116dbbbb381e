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

from xnnfit.choose.evaluation import EvalRequest, EvalSet, eval_set, output_index, scores
from xnnfit.choose.evaluation import budget as budget_for_eval
from xnnfit.choose.repair import explain_and_repair, with_repair
from xnnfit.choose.selection import Budget, Measured, Scored, pareto, pick, race_stage, same_bytes, tie_margin
from xnnfit.core import fmt
from xnnfit.core.errors import RuntimeFailure, XnnfitError
from xnnfit.core.files import check_output_path, os_error, write_file
from xnnfit.core.policy import BENCH_RUNS, DEFAULT_POLICY, SWEEP_PROFILE_DIVISOR
from xnnfit.core.record import Record
from xnnfit.explain.diagnosis import diagnose
from xnnfit.measure.accuracy import class_scores
from xnnfit.measure.machine import cpu_label
from xnnfit.measure.profile import profile_content
from xnnfit.model.artifact import Artifact
from xnnfit.model.inputs import load_npz
from xnnfit.model.recipes import DEFAULT, FP32, ConversionRecipe, with_reference
from xnnfit.runner import Job, attempt, sweep_warnings
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
        return write_file(path, self.content, force=force, flag="save() path", force_flag="force=True")


@dataclasses.dataclass(frozen=True)
class QuantResult(Record):
    """quant() of one model: a row per recipe, the recommendation and why."""

    RESULT: ClassVar[str] = "quant"

    model: str
    rows: tuple[QuantRow, ...]
    recommended: str | None
    reason: str
    budget: Budget
    eval: EvalSet  # what accuracy was measured on: the inputs, their count, the labels
    warnings: tuple[str, ...] = ()
    versions: dict[str, str] = dataclasses.field(default_factory=dict)
    cpu: str = ""  # the CPU the latencies were raced on (int8 is faster than fp32 on some, slower on others)

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


def recommend(rows: list[QuantRow], budget: Budget) -> tuple[str | None, str]:
    """The fastest recipe within the budget (selection.pick), and the rule that decided, with its figures."""
    choice = pick(rows, budget)
    best = choice.best
    if best is None:
        return None, f"{choice.rule}; relax the budget or check the calibration data"
    fp32 = next((r for r in rows if r.ok and r.recipe == FP32.name), None)
    versus = (
        f", {fp32.median_ms / best.median_ms:.2f}x the speed of fp32 at "
        f"{fmt.pct(best.size_bytes / max(fp32.size_bytes, 1))} of its size"
        if fp32 and best is not fp32 and best.content != fp32.content
        else ""
    )
    reason = f"{choice.rule}: {figures(best, budget)}, {fmt.pct(best.delegated_fraction)} of nodes on XNNPACK{versus}"
    if budget.judged:
        reason += f" (budget: {budget.describe()})"
    return best.recipe, reason + (f"; {choice.tie}" if choice.tie else "")


def figures(row: Scored, budget: Budget) -> str:
    """The accuracy figures the budget judged `row` by ('top-1 97.3% (-0.4 points)', 'error 1.2%')."""
    if not budget.judged:
        return "accuracy not judged"
    parts = []
    if budget.max_accuracy_drop is not None and row.accuracy is not None:
        parts.append(f"top-1 {row.accuracy:.1%} ({-budget.drop(row):+.1f} points)")
    if budget.max_error is not None or not parts:
        parts.append(f"error {fmt.rel(row.rel_error)}")
    return ", ".join(parts)


def _warnings(row: QuantRow, fp32: QuantRow | None) -> tuple[str, ...]:
    out = []
    if row.status != "ok":
        return ()
    if row.nodes and row.delegated_fraction == 0:
        out.append(f"{row.recipe} runs nothing on XNNPACK: every node is on the built-in CPU kernels")
    elif fp32 and row.cpu_nodes > fp32.cpu_nodes:
        slower = (
            f", {row.median_ms / fp32.median_ms:.2f}x the latency of fp32"
            if row.median_ms > fp32.median_ms * (1 + tie_margin(fp32))
            else ""
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


def run_sweep(
    job: Job,
    recipes: tuple[ConversionRecipe, ...] = DEFAULT,
    *,
    request: EvalRequest = EvalRequest(),
    max_error: float | None = None,
    max_accuracy_drop: float | None = None,
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
    fp32 = artifacts[FP32.name]
    evaluation = eval_set(fp32.content, fp32.specs, request, job.options)
    warnings = [*sweep_warnings(list(artifacts.values())), *evaluation.warnings]
    profile_runs = max(DEFAULT_POLICY.min_runs, runs // SWEEP_PROFILE_DIVISOR)
    measured: dict[str, Measured] = {}
    for name, artifact in artifacts.items():
        job.step(f"measuring {name} on {fmt.plural(evaluation.samples, 'eval sample')}")
        done = attempt(
            lambda a=artifact: job.stage(
                measure_stage, a, list(evaluation.inputs), profile_runs, what=f"measuring {a.what}"
            ),
            lambda exc: exc,
        )
        if isinstance(done, XnnfitError):
            failed[name] = str(done)
        else:
            measured[name] = done
    if FP32.name not in measured:
        raise XnnfitError(f"the fp32 model, the float reference, cannot be measured: {failed.get(FP32.name)}")
    reference = measured[FP32.name].outputs
    output = output_index(fp32.content, evaluation.labels_output) if evaluation.labels_output else 0
    budget, notes = budget_for_eval(evaluation, reference, output, max_error, max_accuracy_drop)
    warnings.extend(notes)
    classes = class_scores(fp32.content)

    def over(name: str, m: Measured) -> bool:
        fields = scores(evaluation, output, reference, m.outputs, classes, artifacts[name].content)
        return not budget.within(Scored(name, "ok", **fields))

    explained, repair = explain_and_repair(
        job,
        artifacts,
        measured,
        {r.name: r for r in with_reference(recipes)},
        list(evaluation.inputs),
        over=over,
        every=explain_quant,
        measure=lambda a: job.stage(
            measure_stage, a, list(evaluation.inputs), profile_runs, what=f"measuring {a.what}"
        ),
    )
    recipes = with_repair(explained, repair, recipes, measured, failed)
    warnings.extend(explained.notes)
    same = same_bytes({n: artifacts[n].content for n in measured})
    contents = {n: artifacts[n].content for n in measured if n not in same}
    latency = job.stage(
        race_stage, contents, evaluation.inputs[0], fp32.specs, runs, what="timing all recipes together"
    )
    rows = []
    for recipe in with_reference(recipes):
        name = recipe.name
        if name in failed or name not in measured:
            rows.append(QuantRow(name, "failed", failed.get(name, "not measured")))
            continue
        m, t = measured[name], latency[same.get(name, name)]
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
                **scores(evaluation, output, reference, m.outputs, classes, artifacts[name].content),
                p10_ms=t.p10_ms,
                p90_ms=t.p90_ms,
                same_as=same.get(name),
                content=artifacts[name].content,
                quantization_findings=explained.findings.get(name, ()),
            )
        )
    front = pareto(rows, budget)
    fp32_row = next(r for r in rows if r.recipe == FP32.name)
    rows = [dataclasses.replace(r, pareto=r.recipe in front, warnings=_warnings(r, fp32_row)) for r in rows]
    best, reason = recommend(rows, budget)
    return QuantResult(
        source.display,
        tuple(rows),
        best,
        reason,
        budget,
        evaluation,
        warnings=tuple(dict.fromkeys(warnings)),
        versions=runtime_versions(),
        cpu=cpu_label(),
    )
