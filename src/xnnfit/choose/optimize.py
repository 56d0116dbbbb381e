"""optimize: from a Keras model to the fastest faithful TFLite model for XNNPACK, with the evidence.

Every recipe is converted once (quant.converted), then fixed with the same rules and
verification as `xnnfit fix` (quantized candidates judged against what
rewrite.fix.judged_against names), each in its own TensorFlow-free child through the
runner; a crash costs that candidate only. The fixed candidates and the plain fp32
conversion are then raced together, interleaved, at the user's thread count, and their
outputs compared with the float reference's on the eval inputs. The choice is
selection.pick: the fastest within the error budget, latencies within the measured noise
counting as equal.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import ClassVar

from xnnfit.choose.evaluation import EvalRequest, EvalSet, eval_set, output_index, scores
from xnnfit.choose.evaluation import budget as budget_for_eval
from xnnfit.choose.quant import converted, figures
from xnnfit.choose.repair import explain_and_repair, with_repair
from xnnfit.choose.selection import Budget, Choice, Measured, Race, Scored, pareto, pick, race_stage, same_bytes
from xnnfit.core import fmt
from xnnfit.core.errors import XnnfitError
from xnnfit.core.files import check_output_path, os_error, write_file
from xnnfit.core.policy import BENCH_RUNS
from xnnfit.core.record import NOT_IN_DICT, Record
from xnnfit.explain.diagnosis import diagnose
from xnnfit.explain.quant_findings import QuantFinding
from xnnfit.measure.accuracy import class_scores
from xnnfit.measure.machine import cpu_label
from xnnfit.model.artifact import Artifact
from xnnfit.model.recipes import FP32, ConversionRecipe, with_reference
from xnnfit.model.source import ModelSource
from xnnfit.rewrite.engine import RewriteResult, fix_content
from xnnfit.rewrite.fix import AS_GIVEN_REFERENCE, KerasHint, judged_against, keras_hints
from xnnfit.runner import Job, attempt, sweep_warnings
from xnnfit.runtime.interpreter import outputs, runtime_versions

BASELINE = "baseline"  # race key of what every speed-up is measured against


@dataclasses.dataclass(frozen=True)
class Candidate(Scored):
    """One recipe, converted and fixed: delegation, latency, size and accuracy of the model optimize would write."""

    fixed: bool = False  # a rewrite was kept
    rules: tuple[str, ...] = ()  # kept rewrites, 'XR009 ×14'
    rolled_back: tuple[tuple[str, str], ...] = ()  # (rule, why)
    cpu_nodes_before: int = 0
    keras_hints: tuple[KerasHint, ...] = ()


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
    budget: Budget
    eval: EvalSet  # what accuracy was measured on: the inputs, their count, the labels
    threads: int = 1
    output: str | None = None
    warnings: tuple[str, ...] = ()
    versions: dict[str, str] = dataclasses.field(default_factory=dict)
    cpu: str = ""  # the CPU the latencies were raced on (int8 is faster than fp32 on some, slower on others)

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
        terms = {"flag": "save() path", "force_flag": "force=True"}  # the caller is Python: say it in its terms
        return write_file(check_output_path(path, force=force, **terms), best.content, force=force, **terms)


@dataclasses.dataclass(frozen=True)
class Reference(Record):
    """The float model accuracy is measured against, and its outputs on the eval inputs."""

    name: str  # rewrite.fix's name for it: the fp32 conversion, the float twin, the model as given
    content: bytes = dataclasses.field(default=b"", repr=False, compare=False, metadata=NOT_IN_DICT)
    outputs: tuple = dataclasses.field(default=(), repr=False, compare=False, metadata=NOT_IN_DICT)


@dataclasses.dataclass(frozen=True)
class OptimizeRequest:
    """What optimize was asked for (api.optimize's options): where to write, the budget, how to race."""

    output: str | Path | None = None
    keep_all: str | Path | None = None
    force: bool = False
    evaluation: EvalRequest = EvalRequest()
    max_error: float | None = None  # None: the default budget (selection.budget_for)
    max_accuracy_drop: float | None = None
    threads: int = 1
    runs: int = BENCH_RUNS
    explain_quant: bool = False  # findings for every full-int8 candidate, not only those over the budget


def reference_stage(content: bytes, fp32: bytes | None, samples: list[dict], specs) -> Reference:
    """The reference of `content` (the fp32 conversion, or the given .tflite) and its outputs (run it in a child)."""
    reference, name = judged_against(content, fp32)
    reference = content if reference is None else reference
    return Reference(name, reference, tuple(outputs(reference, samples, specs)))


@dataclasses.dataclass(frozen=True)
class FixedCandidate(Record):
    """One recipe's model after `xnnfit fix`, measured in its child: the fix, delegation, outputs, hints."""

    rewrite: RewriteResult
    measured: Measured
    keras_hints: tuple[KerasHint, ...] = ()


def candidate_stage(artifact: Artifact, *, fp32: bytes | None, samples: list[dict], runs: int) -> FixedCandidate:
    """Fix `artifact` (verified as `xnnfit fix` does), then its delegation and outputs (run it in a child)."""
    reference, name = judged_against(artifact.content, fp32)
    result = fix_content(artifact, reference=reference, reference_name=name, runs=runs)
    diag = diagnose(dataclasses.replace(artifact, content=result.content))
    counts = diag.summary()
    measured = Measured(
        nodes=counts["nodes"],
        cpu_nodes=counts["cpu_nodes"],
        partitions=counts["partitions"],
        delegated_fraction=diag.delegated_fraction,
        outputs=tuple(outputs(result.content, samples, artifact.specs)),
    )
    hints = keras_hints(artifact, result.content if result.applied else None) if artifact.layers else ()
    return FixedCandidate(result, measured, hints)


def run_optimize(job: Job, recipes: tuple[ConversionRecipe, ...], request: OptimizeRequest) -> OptimizeResult:
    """Convert with every recipe, fix each, race them, and write the fastest within the budget to `request.output`."""
    source = job.source
    inputs = (source.path,) if source.path is not None else ()
    force = request.force
    path = check_output_path(request.output, inputs=inputs, force=force) if request.output is not None else None
    warnings: list[str] = []
    if source.is_tflite:
        artifact = job.artifact(FP32)
        artifacts, failed, fp32 = {artifact.recipe: artifact}, {}, None
        baseline, baseline_name = artifact, AS_GIVEN_REFERENCE
        warnings.append(
            "a .tflite alone can only be fixed: converting with other recipes needs the Keras model it came from"
        )
    else:
        artifacts, failed = converted(job, recipes)
        baseline, baseline_name = artifacts[FP32.name], "the plain fp32 conversion"
        fp32 = baseline.content
    specs = baseline.specs
    evaluation = eval_set(baseline.content, specs, request.evaluation, job.options)
    warnings = [*sweep_warnings(list(artifacts.values())), *warnings, *evaluation.warnings]
    samples = list(evaluation.inputs)
    reference = job.stage(reference_stage, baseline.content, fp32, samples, specs, what="running the float reference")
    output = output_index(reference.content, evaluation.labels_output) if evaluation.labels_output else 0
    budget, notes = budget_for_eval(evaluation, reference.outputs, output, request.max_error, request.max_accuracy_drop)
    warnings.extend(notes)
    measured: dict[str, FixedCandidate] = {}
    for name, artifact in artifacts.items():
        job.step(f"fixing and measuring {name} on {fmt.plural(evaluation.samples, 'eval sample')}")
        done = attempt(
            lambda a=artifact: job.stage(
                candidate_stage, a, fp32=fp32, samples=samples, runs=request.runs, what=f"fixing {a.what}"
            ),
            lambda exc: exc,
        )
        if isinstance(done, XnnfitError):
            failed[name] = str(done)
        else:
            measured[name] = done
    if not measured:
        raise XnnfitError(f"no candidate could be fixed and measured: {next(iter(failed.values()), 'unknown error')}")
    classes = class_scores(reference.content)

    def over(name: str, m: FixedCandidate) -> bool:
        fields = scores(evaluation, output, reference.outputs, m.measured.outputs, classes, m.rewrite.content)
        return not budget.within(Scored(name, "ok", **fields))

    explained, repair = explain_and_repair(
        job,
        artifacts,
        measured,
        {r.name: r for r in with_reference(recipes)} if not source.is_tflite else {},
        samples,
        over=over,
        every=request.explain_quant,
        measure=lambda a: job.stage(
            candidate_stage, a, fp32=fp32, samples=samples, runs=request.runs, what=f"fixing {a.what}"
        ),
    )
    recipes = with_repair(explained, repair, recipes, measured, failed)
    warnings.extend(explained.notes)
    same = same_bytes({n: m.rewrite.content for n, m in measured.items()}, {baseline.content: BASELINE})
    contents = {BASELINE: baseline.content, **{n: m.rewrite.content for n, m in measured.items() if n not in same}}
    latency = job.stage(
        race_stage, contents, samples[0], specs, request.runs, request.threads, what="timing all candidates together"
    )
    names = list(artifacts) if source.is_tflite else [r.name for r in with_reference(recipes)]
    candidates = [
        _candidate(
            name,
            measured.get(name),
            failed,
            latency,
            same.get(name, name),
            evaluation,
            output,
            reference,
            classes,
            explained.findings.get(name, ()),
        )
        for name in names
    ]
    front = pareto(candidates, budget)
    candidates = [dataclasses.replace(c, pareto=c.recipe in front) for c in candidates]
    choice = pick(candidates, budget)
    base_ms = latency[BASELINE].median_ms
    result = OptimizeResult(
        model=source.display,
        chosen=choice.best.recipe if choice.best else None,
        reason=_reason(choice, candidates, base_ms, baseline_name, budget, reference.name, baseline.content),
        candidates=tuple(candidates),
        reference=reference.name,
        baseline=baseline_name,
        baseline_ms=base_ms,
        budget=budget,
        eval=evaluation,
        threads=request.threads,
        warnings=tuple(dict.fromkeys(warnings)),
        versions=runtime_versions(),
        cpu=cpu_label(),
    )
    if request.keep_all is not None:
        _write_all(request.keep_all, source, result, force)
    if path is not None and choice.best is not None:
        write_file(path, choice.best.content, force=force, flag="-o")
        result = dataclasses.replace(result, output=str(path))
    return result


def _candidate(
    name: str,
    m: FixedCandidate | None,
    failed: dict[str, str],
    latency: Race,
    timed_as: str,
    evaluation: EvalSet,
    output: int,
    reference: Reference,
    classes: bool,
    findings: tuple[QuantFinding, ...] = (),
) -> Candidate:
    if m is None:
        return Candidate(name, "failed", failed.get(name, "not measured"), quantization_findings=findings)
    fix, t = m.rewrite, latency[timed_as]
    return Candidate(
        name,
        "ok",
        fixed=bool(fix.applied),
        rules=tuple(f"{o.rule} ×{o.count}" for o in fix.applied),
        rolled_back=tuple((o.rule, o.reason) for o in fix.outcomes if o.status == "rolled-back"),
        cpu_nodes_before=fix.before.cpu_nodes if fix.before else 0,
        cpu_nodes=m.measured.cpu_nodes,
        nodes=m.measured.nodes,
        partitions=m.measured.partitions,
        delegated_fraction=m.measured.delegated_fraction,
        median_ms=t.median_ms,
        p10_ms=t.p10_ms,
        p90_ms=t.p90_ms,
        size_bytes=len(fix.content),
        **scores(evaluation, output, reference.outputs, m.measured.outputs, classes, fix.content),
        keras_hints=m.keras_hints,
        same_as=None if timed_as == name else timed_as,
        content=fix.content,
        quantization_findings=findings,
    )


def _reason(
    choice: Choice,
    candidates: list[Candidate],
    base_ms: float,
    baseline: str,
    budget: Budget,
    reference: str,
    baseline_content: bytes,
) -> str:
    best = choice.best
    if best is None:
        return f"{choice.rule}; relax the budget or pass real --calibration data"
    whole = (
        "100% on XNNPACK"
        if best.cpu_nodes == 0
        else f"{fmt.pct(best.delegated_fraction)} on XNNPACK ({fmt.plural(best.cpu_nodes, 'CPU node')} left)"
    )
    fixed = f", fixed by {', '.join(best.rules)}" if best.rules else ""
    speed = (
        f"{baseline} itself (no recipe or rewrite beats it)"
        if best.content == baseline_content
        else f"{base_ms / best.median_ms:.2f}x the speed of {baseline}"
    )
    text = f"{choice.rule}: {speed}, {figures(best, budget)}"
    if budget.judged:
        text += f" against {reference} (budget: {budget.describe()})"
    text += f", {whole}{fixed}"
    return text + (f"; {choice.tie}" if choice.tie else "")


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
