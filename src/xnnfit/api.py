"""The public Python API: optimize, check, profile, bench, compare, fix, quant, explain.

Every function takes the model first (a path, TFLite bytes, or a Keras model object)
and keyword options named like the CLI's (`--input-shape` is `input_shape`), and
returns a frozen result with `to_dict()` / `from_dict()`. A Keras model object is
converted in the caller's process (TensorFlow is loaded there already); paths are
converted in child processes, so a converter crash raises an error instead of killing
the caller. Every run on the LiteRT runtime happens in a child process.

Options every command takes (`**options`, see `ModelOptions`): `batch` (a dynamic batch
dimension is pinned to it, default 1), `dynamic_batch` (keep it dynamic), `input_shape`
('NAME=1,128' strings, or {name: shape}), `input_range` (the values random inputs are drawn
from: 'LOW,HIGH' for every float input, 'NAME=LOW,HIGH', {name: (low, high)} or a (low,
high) pair; model/ranges.py says what decides it otherwise), `calibration` (.npz of representative inputs
for the full-integer recipes), `trust_model` (load .keras/.h5 files that run code),
`timeout` (seconds per conversion or run) and `on_progress` (called with each step).

    import xnnfit
    result = xnnfit.check("model.keras", recipe="fp32,int8")
    result.recipes[0].summary()
    fixed = xnnfit.fix("model.tflite", input_shape=["tokens=1,128"])
    fixed.save("model_fixed.tflite")
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypedDict

from xnnfit.choose.evaluation import EvalRequest
from xnnfit.choose.optimize import OptimizeRequest, OptimizeResult, run_optimize
from xnnfit.choose.quant import QuantResult, run_sweep
from xnnfit.core.errors import InputDataError, XnnfitError
from xnnfit.core.files import check_output_path, write_file
from xnnfit.core.policy import (
    BENCH_RUNS,
    BENCH_WARMUP,
    DEFAULT_POLICY,
    DEFAULT_TIMEOUT,
    PROFILE_RUNS,
    PROFILE_WARMUP,
    VerifyPolicy,
)
from xnnfit.explain.diagnosis import CheckResult, Diagnosis
from xnnfit.ids import Explanation, explanation
from xnnfit.measure.bench import (
    APIS,
    COMPILED,
    INTERPRETER,
    BenchResult,
    BenchRun,
    CompareResult,
    bench_stage,
    compare_stage,
    parse_threads,
)
from xnnfit.measure.profile import ProfileResult, profile_stage
from xnnfit.model.convert import ConvertOptions
from xnnfit.model.inputs import positional_notes
from xnnfit.model.ranges import parse_input_ranges
from xnnfit.model.recipes import DEFAULT, FP32, ConversionRecipe, parse_recipes
from xnnfit.model.source import ModelSource
from xnnfit.model.specs import ShapeRequest, parse_input_shapes
from xnnfit.rewrite.engine import select_rules
from xnnfit.rewrite.fix import FixResult
from xnnfit.runner import CALIBRATED, Job, Progress, recipes_for
from xnnfit.runtime import targets
from xnnfit.runtime.interpreter import runtime_versions
from xnnfit.runtime.targets import Target
from xnnfit.stages import check_stage, check_targets_stage, fix_stage

if TYPE_CHECKING:
    from typing_extensions import Unpack

RuntimeSpec = str | Sequence[str] | None
Recipes = str | ConversionRecipe | Iterable[str | ConversionRecipe] | None
InputShapes = Iterable[str] | dict[str, tuple[int, ...]] | None
InputRanges = Iterable[str] | dict[str, tuple[float, float]] | tuple[float, float] | None


class ModelOptions(TypedDict, total=False):
    """How every command reads and converts the model, and runs its children (keyword options of every function)."""

    batch: int
    dynamic_batch: bool
    input_shape: InputShapes
    input_range: InputRanges
    calibration: str | None
    trust_model: bool
    timeout: float
    on_progress: Progress | None


DEFAULT_OPTIONS: ModelOptions = {
    "batch": 1,
    "dynamic_batch": False,
    "input_shape": None,
    "input_range": None,
    "calibration": None,
    "trust_model": False,
    "timeout": DEFAULT_TIMEOUT,
    "on_progress": None,
}


def _job(command: str, model: Any, options: ModelOptions, *, runs_model: bool = True) -> Job:
    """The runner's Job for `model` with the shared options (a TypeError for an option no command takes)."""
    unknown = sorted(set(options) - set(DEFAULT_OPTIONS))
    if unknown:
        raise TypeError(f"{command}() got an unexpected keyword argument {unknown[0]!r}")
    o = {**DEFAULT_OPTIONS, **options}
    if o["batch"] < 1:
        raise XnnfitError(f"batch {o['batch']} is not valid. Pass --batch 1 or more.")
    shapes = ShapeRequest(o["batch"], o["dynamic_batch"], parse_input_shapes(o["input_shape"]))
    source = ModelSource.of(model, trust=o["trust_model"])
    convert = ConvertOptions(shapes, o["calibration"], input_ranges=parse_input_ranges(o["input_range"]))
    return Job(source, convert, o["timeout"], o["on_progress"], runs_model)


def _per_recipe(result_type, job: Job, recipe: Recipes, stage, failed, label: str, **stage_kwargs: Any):
    """`stage` for every recipe of the job's model, wrapped in `result_type` (one entry per runtime target)."""
    results = job.per_recipe(parse_recipes(recipe), stage, failed, label=label, **stage_kwargs)
    flat = tuple(r for item in results for r in getattr(item, "diagnoses", (item,)))
    return result_type(job.source.display, job.source.kind, flat, runtime_versions())


def runtime_targets(runtime: RuntimeSpec, on_progress: Progress | None = None) -> tuple[Target, ...]:
    """The targets of `runtime` (a pip requirement, several comma-separated, or 'all'), each venv built on first use."""
    return tuple(targets.ensure(t, on_progress=on_progress) for t in targets.parse_many(runtime))


def _one_target(runtime: RuntimeSpec, command: str, on_progress: Progress | None) -> Target | None:
    found = runtime_targets(runtime, on_progress) if runtime else ()
    if len(found) > 1:
        raise XnnfitError(
            f"{command} times on one runtime, got --runtime {runtime!r}. Pass one, e.g. --runtime "
            "tflite-runtime==2.14.0 (xnnfit check takes several)."
        )
    return found[0] if found and not found[0].in_process else None


def _threads(threads: str | int | Iterable[int]) -> tuple[int, ...]:
    return parse_threads(threads if isinstance(threads, (str, int)) else tuple(threads))


def check(
    model: Any,
    *,
    recipe: Recipes = "fp32",
    predict: bool = False,
    runtime: RuntimeSpec = None,
    **options: Unpack[ModelOptions],
) -> CheckResult:
    """Which nodes XNNPACK runs, per recipe, with the cause of every fallback and its Keras layer.

    A recipe that fails (converter refusal, crash, timeout) is a Diagnosis with `error`;
    an unusable model or input data raises XnnfitError. `predict` computes the verdicts
    from the knowledge base without building an interpreter (also done, and said, when
    the runtime cannot load the model). `runtime` names the runtime(s) to observe on
    (runtime/targets.py): a pip requirement such as 'tflite-runtime==2.14.0', several, or
    'all'; each recipe then has one Diagnosis per runtime.
    """
    job = _job("check", model, options, runs_model=not predict)
    if runtime:
        found = runtime_targets(runtime, job.on_progress)
        return _per_recipe(
            CheckResult, job, recipe, check_targets_stage, Diagnosis.failed, "running in LiteRT", predict_only=predict,
            targets=found,
        )  # fmt: skip
    return _per_recipe(
        CheckResult, job, recipe, check_stage, Diagnosis.failed, "running in LiteRT", predict_only=predict
    )


def profile(
    model: Any,
    *,
    recipe: Recipes = "fp32",
    threads: int = 1,
    runs: int = PROFILE_RUNS,
    warmup: int = PROFILE_WARMUP,
    data: str | None = None,
    runtime: RuntimeSpec = None,
    **options: Unpack[ModelOptions],
) -> ProfileResult:
    """check() plus the time of every XNNPACK partition, CPU node and Keras layer's fallbacks (on `runtime`, if any)."""
    counts = parse_threads(threads)
    if len(counts) != 1:
        raise XnnfitError(
            f"profile times at one thread count, got threads={threads!r}. Pass one value, e.g. --threads 1."
        )
    job = _job("profile", model, options)
    target = _one_target(runtime, "profile", job.on_progress)
    return _per_recipe(
        ProfileResult, job, recipe, profile_stage, Diagnosis.failed, "profiling", threads=counts[0], runs=runs,
        warmup=warmup, data=data, target=target,
    )  # fmt: skip


def bench(
    model: Any,
    *,
    recipe: Recipes = "fp32",
    threads: str | int | Iterable[int] = 1,
    runs: int = BENCH_RUNS,
    warmup: int = BENCH_WARMUP,
    data: str | None = None,
    runtime: RuntimeSpec = None,
    api: str = INTERPRETER,
    **options: Unpack[ModelOptions],
) -> BenchResult:
    """Whole-model latency with XNNPACK and with the built-in kernels only, per thread count, and memory.

    `runtime` times on another runtime (one pip requirement, runtime/targets.py); `api='compiled'`
    also times LiteRT 2's CompiledModel (CpuOptions: threads, XNNPACK weight cache) next to the Interpreter.
    """
    if api not in APIS:
        raise XnnfitError(f"--api {api!r} is not known. Pass one of {', '.join(APIS)}.")
    job = _job("bench", model, options)
    target = _one_target(runtime, "bench", job.on_progress)
    if target is not None and api == COMPILED:
        raise XnnfitError(
            f"--api compiled times the installed ai-edge-litert's CompiledModel, not {target.spec}. "
            "Drop one of --api and --runtime."
        )
    return _per_recipe(
        BenchResult, job, recipe, bench_stage, BenchRun.failed, "timing", threads=_threads(threads), runs=runs,
        warmup=warmup, data=data, target=target, compiled=api == COMPILED,
    )  # fmt: skip


def compare(
    *models: Any,
    recipe: Recipes = "fp32",
    threads: str | int | Iterable[int] = 1,
    runs: int = BENCH_RUNS,
    warmup: int = BENCH_WARMUP,
    data: str | None = None,
    **options: Unpack[ModelOptions],
) -> CompareResult:
    """Time several models (each with every recipe) against each other, interleaved in one process: fair ratios.

    Two runs of `bench` on a machine that is busy differently overstate small gains;
    racing the models in one loop gives each the same conditions.
    """
    if not models:
        raise XnnfitError("compare needs at least one model. Pass two or more, e.g. original.tflite fixed.tflite.")
    counts = _threads(threads)
    jobs = [_job("compare", model, options) for model in models]
    artifacts = tuple(
        (job.source.display, job.artifact(r)) for job in jobs for r in recipes_for(job.source, parse_recipes(recipe))
    )
    what = f"timing {len(artifacts)} models together"
    result = jobs[0].stage(compare_stage, artifacts, threads=counts, runs=runs, warmup=warmup, data=data, what=what)
    return dataclasses.replace(result, versions=runtime_versions())


def fix(
    model: Any,
    output: str | Path | None = None,
    *,
    recipe: Recipes = "fp32",
    rules: str | list[str] | None = None,
    exclude: str | list[str] | None = None,
    dry_run: bool = False,
    force: bool = False,
    force_write: bool = False,
    runs: int = BENCH_RUNS,
    policy: VerifyPolicy = DEFAULT_POLICY,
    sides: bool = False,
    data: str | None = None,
    **options: Unpack[ModelOptions],
) -> FixResult:
    """Rewrite the model so XNNPACK runs it whole, keeping only rewrites proven equal and not slower.

    With `output` the fixed model is written there atomically (never over the input, over
    another file only with `force`); without it, call `result.save(path)`. When no
    rewrite is kept nothing is written (`result.changed` is False) unless `force_write`.
    A quantized model is judged against a float reference (rewrite.fix.judged_against:
    the fp32 conversion of a Keras source, or the float model rebuilt from a .tflite's own
    weights). Every rewrite is verified on all samples of `data` (an .npz keyed by input
    name, like --data; a `labels` key is ignored), else on seeded random inputs in each
    input's value range (model/ranges.py); `result.rewrite.verified_on` says which. A dry
    run applies and verifies nothing: it lists the rules check promises. `sides` adds the
    profiled diagnoses before and after (`result.sides`, for the HTML report and the trace).
    """
    chosen = parse_recipes(recipe)
    if len(chosen) != 1:
        raise XnnfitError(f"fix takes one recipe, got {', '.join(r.name for r in chosen)}. Run it once per recipe.")
    runs = policy.comparison_runs(runs)
    job = _job("fix", model, options)
    source = job.source
    _refuse_unused_calibration(job, chosen[0])
    inputs = (source.path,) if source.path is not None else ()
    path = check_output_path(output, inputs=inputs, force=force) if output is not None and not dry_run else None
    selected = select_rules(rules, exclude)
    artifact = job.artifact(chosen[0])
    fp32 = None if source.is_tflite or dry_run else job.artifact(FP32).content  # the float reference of a Keras source
    sides = sides and not dry_run
    done = job.stage(
        fix_stage, artifact, fp32=fp32, rules=selected, dry_run=dry_run, runs=runs, policy=policy, sides=sides,
        data=data, what=f"fixing {artifact.what}",
    )  # fmt: skip
    notes = positional_notes(data, artifact.specs) if data and not dry_run else []
    result = FixResult(
        model=source.display,
        model_kind=source.kind,
        recipe=artifact.recipe,
        rewrite=done.rewrite,
        inputs=artifact.specs,
        dry_run=dry_run,
        keras_hints=done.keras_hints,
        versions=runtime_versions(),
        sides=done.sides,
        warnings=tuple(dict.fromkeys((*artifact.warnings, *notes))),
    )
    if path is not None and (result.changed or force_write):
        write_file(path, result.content, force=force, flag="-o")
        result = dataclasses.replace(result, output=str(path))
    return result


def _budget_args(max_error: float | None, max_accuracy_drop: float | None) -> None:
    if max_error is not None and max_error < 0:
        raise XnnfitError(f"max_error {max_error} is negative. Pass a share of the output scale, e.g. 0.05.")
    if max_accuracy_drop is not None and max_accuracy_drop < 0:
        raise XnnfitError(f"max_accuracy_drop {max_accuracy_drop} is negative. Pass top-1 points, e.g. 1.0.")


def _refuse_unused_calibration(job: Job, recipe: ConversionRecipe) -> None:
    """InputDataError when fix would not use its --calibration: a .tflite, or a recipe that does not calibrate."""
    if not job.options.calibration or (recipe.calibrate and not job.source.is_tflite):
        return
    what = (
        "a .tflite is fixed as given, never converted"
        if job.source.is_tflite
        else f"--recipe {recipe.name} does not calibrate (only {', '.join(CALIBRATED)} do)"
    )
    raise InputDataError(
        f"fix does not use --calibration here: {what}. Pass --data {job.options.calibration} to verify the "
        "rewrites on those inputs instead."
    )


def quant(
    model: Any,
    *,
    recipe: Recipes = None,
    eval_data: str | None = None,
    labels: str | None = None,
    eval_samples: int | None = None,
    max_error: float | None = None,
    max_accuracy_drop: float | None = None,
    runs: int = BENCH_RUNS,
    output_dir: str | Path | None = None,
    force: bool = False,
    explain_quant: bool = False,
    **options: Unpack[ModelOptions],
) -> QuantResult:
    """Convert with every recipe (default: all, mixed ones included) and recommend the fastest within the budget.

    Accuracy is measured on all of `eval_data` (or its first `eval_samples`), against its
    `labels` when it has them (the .npz's 'labels', or a `labels` file). The budget is
    `max_accuracy_drop` top-1 points below the fp32 conversion's with class labels
    (default 1), else `max_error` of the float output scale (default 5%); both, when both
    are given. With `output_dir` every converted model is written there (an existing file
    only with `force`). Full-int8 candidates over the budget (all of them with
    `explain_quant`) get `quantization_findings`, and int8-repaired joins the candidates
    when they name nodes to keep in float.
    """
    _budget_args(max_error, max_accuracy_drop)
    runs = DEFAULT_POLICY.comparison_runs(runs)
    job = _job("quant", model, options)
    result = run_sweep(
        job,
        parse_recipes(recipe, default=DEFAULT),
        request=EvalRequest(eval_data, labels, eval_samples),
        max_error=max_error,
        max_accuracy_drop=max_accuracy_drop,
        runs=runs,
        explain_quant=explain_quant,
    )
    if output_dir is not None:
        stem = job.source.path.stem if job.source.path is not None else "model"
        result.save(output_dir, stem=stem, force=force)
    return result


def optimize(
    model: Any,
    output: str | Path | None = None,
    *,
    recipe: Recipes = None,
    keep_all: str | Path | None = None,
    force: bool = False,
    eval_data: str | None = None,
    labels: str | None = None,
    eval_samples: int | None = None,
    max_error: float | None = None,
    max_accuracy_drop: float | None = None,
    threads: int = 1,
    runs: int = BENCH_RUNS,
    explain_quant: bool = False,
    **options: Unpack[ModelOptions],
) -> OptimizeResult:
    """The fastest model XNNPACK runs within the budget: every recipe converted, fixed and raced; written to `output`.

    Accuracy is measured against the fp32 conversion on all of `eval_data` (else the
    calibration data, else seeded random inputs, with a warning), and against its `labels`
    when it has them; the budget is as in `quant`. A .tflite alone is only fixed (its
    quantized form judged against the float model rebuilt from its weights). Full-int8
    candidates over the budget (all of them with `explain_quant`) get `quantization_findings`,
    and int8-repaired joins the candidates when they name nodes to keep in float.
    """
    _budget_args(max_error, max_accuracy_drop)
    runs = DEFAULT_POLICY.comparison_runs(runs)
    counts = parse_threads(threads)
    if len(counts) != 1:
        raise XnnfitError(
            f"optimize races the candidates at one thread count, got threads={threads!r}. "
            "Pass one value, e.g. --threads 4."
        )
    request = OptimizeRequest(
        output,
        keep_all,
        force,
        EvalRequest(eval_data, labels, eval_samples),
        max_error,
        max_accuracy_drop,
        counts[0],
        runs,
        explain_quant,
    )
    return run_optimize(_job("optimize", model, options), parse_recipes(recipe, default=DEFAULT), request)


def convert(model: Any, *, recipe: str = "fp32", **options: Unpack[ModelOptions]) -> bytes:
    """The .tflite bytes xnnfit measures for `model` with `recipe` (a .tflite comes back as it is)."""
    chosen = parse_recipes(recipe)
    if len(chosen) != 1:
        raise XnnfitError(f"convert takes one recipe, got {', '.join(r.name for r in chosen)}.")
    return _job("convert", model, options, runs_model=False).artifact(chosen[0]).content


def explain(cause: str | None = None) -> Explanation:
    """A stable id's doc: a KB cause (`XNN001`), a hazard (`XNN040`) or a rewrite rule (`XR013`); every id without one.

    A cause says what it is, why XNNPACK refuses it and what to write instead; a hazard what
    XNNPACK computes wrong and the way out; a rule what it rewrites and which ids it removes.
    """
    return explanation(cause, runtime_versions())
