"""The public Python API: optimize, check, profile, bench, compare, fix, quant, explain.

Every function takes the model first (a path, TFLite bytes, or a Keras model object)
and keyword options named like the CLI's (`--input-shape` is `input_shape`), and
returns a frozen result with `to_dict()` / `from_dict()`. A Keras model object is
converted in the caller's process (TensorFlow is loaded there already); paths are
converted in child processes, so a converter crash raises an error instead of killing
the caller. Every run on the LiteRT runtime happens in a child process.

    import xnnfit
    result = xnnfit.check("model.keras", recipe="fp32,int8")
    result.recipes[0].summary()
    fixed = xnnfit.fix("model.tflite")
    fixed.save("model_fixed.tflite")
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from xnnfit import kb
from xnnfit.choose.optimize import OptimizeResult, run_optimize
from xnnfit.choose.quant import DEFAULT_RECIPES, QuantResult, run_sweep
from xnnfit.core.errors import XnnfitError
from xnnfit.core.files import check_output_path, write_file
from xnnfit.core.isolate import run_isolated
from xnnfit.core.policy import (
    BENCH_RUNS,
    BENCH_WARMUP,
    DEFAULT_MAX_ERROR,
    DEFAULT_POLICY,
    DEFAULT_TIMEOUT,
    PROFILE_RUNS,
    PROFILE_WARMUP,
    VerifyPolicy,
)
from xnnfit.explain.diagnosis import CheckResult, Diagnosis
from xnnfit.ids import CauseDoc, Explanation
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
from xnnfit.model.recipes import FP32, ConversionRecipe, parse_recipes
from xnnfit.model.source import ModelSource
from xnnfit.model.specs import ShapeRequest, parse_input_shapes
from xnnfit.rewrite.engine import select_rules
from xnnfit.rewrite.fix import FixResult
from xnnfit.runner import Progress, materialize, per_recipe, recipes_for
from xnnfit.runtime import targets
from xnnfit.runtime.interpreter import runtime_versions
from xnnfit.runtime.targets import Target
from xnnfit.stages import check_stage, check_targets_stage, fix_stage

RuntimeSpec = str | Sequence[str] | None
Recipes = str | ConversionRecipe | Iterable[str | ConversionRecipe] | None
InputShapes = Iterable[str] | dict[str, tuple[int, ...]] | None


def _source(model: Any, trust_model: bool) -> ModelSource:
    return ModelSource.of(model, trust=trust_model)


def _options(batch: int, dynamic_batch: bool, input_shape: InputShapes, calibration: str | None) -> ConvertOptions:
    if batch < 1:
        raise XnnfitError(f"batch {batch} is not valid. Pass --batch 1 or more.")
    return ConvertOptions(ShapeRequest(batch, dynamic_batch, parse_input_shapes(input_shape)), calibration)


def _per_model(
    result_type,
    model: Any,
    recipe: Recipes,
    stage,
    failed,
    label: str,
    common: dict,
    run_model: bool = True,
    **stage_kwargs: Any,
):
    """Run `stage` for every recipe of `model` (pipeline.per_recipe) and wrap the results in `result_type`."""
    source = _source(model, common["trust_model"])
    options = _options(common["batch"], common["dynamic_batch"], common["input_shape"], common["calibration"])
    results = per_recipe(
        source,
        parse_recipes(recipe),
        stage,
        failed,
        options=options,
        timeout=common["timeout"],
        label=label,
        on_progress=common["on_progress"],
        run_model=run_model,
        **stage_kwargs,
    )
    flat = tuple(
        r for item in results for r in (item if isinstance(item, tuple) else (item,))
    )  # one per runtime target
    return result_type(source.display, source.kind, flat, runtime_versions())


def runtime_targets(runtime: RuntimeSpec, on_progress: Progress | None = None) -> tuple[Target, ...]:
    """The targets of `runtime` (a pip requirement, several comma-separated, or 'all'), each venv built on first use."""
    return tuple(targets.ensure(t, on_progress=on_progress) for t in targets.parse_many(runtime))


def _one_target(runtime: RuntimeSpec, command: str, on_progress: Progress | None) -> Target | None:
    found = runtime_targets(runtime, on_progress) if runtime else ()
    if len(found) > 1:
        raise XnnfitError(
            f"{command} times on one runtime, got --runtime {runtime!r}. Pass one, e.g. --runtime "
            "tflite-runtime==2.14.0 "
            f"(xnnfit check takes several)."
        )
    return found[0] if found and not found[0].in_process else None


def _common(batch, dynamic_batch, input_shape, calibration, trust_model, timeout, on_progress) -> dict:
    return {
        "batch": batch,
        "dynamic_batch": dynamic_batch,
        "input_shape": input_shape,
        "calibration": calibration,
        "trust_model": trust_model,
        "timeout": timeout,
        "on_progress": on_progress,
    }


def check(
    model: Any,
    *,
    recipe: Recipes = "fp32",
    batch: int = 1,
    dynamic_batch: bool = False,
    input_shape: InputShapes = None,
    calibration: str | None = None,
    trust_model: bool = False,
    timeout: float = DEFAULT_TIMEOUT,
    on_progress: Progress | None = None,
    predict: bool = False,
    runtime: RuntimeSpec = None,
) -> CheckResult:
    """Which nodes XNNPACK runs, per recipe, with the cause of every fallback and its Keras layer.

    A recipe that fails (converter refusal, crash, timeout) is a Diagnosis with `error`;
    an unusable model or input data raises XnnfitError. `predict` computes the verdicts
    from the knowledge base without building an interpreter (also done, and said, when
    the runtime cannot load the model). `runtime` names the runtime(s) to observe on
    (targets.py): a pip requirement such as 'tflite-runtime==2.14.0', several, or 'all';
    each recipe then has one Diagnosis per runtime.
    """
    common = _common(batch, dynamic_batch, input_shape, calibration, trust_model, timeout, on_progress)
    if runtime:
        found = runtime_targets(runtime, on_progress)
        return _per_model(
            CheckResult,
            model,
            recipe,
            check_targets_stage,
            Diagnosis.failed,
            "running in LiteRT",
            common,
            run_model=not predict,
            predict_only=predict,
            targets=found,
        )
    return _per_model(
        CheckResult,
        model,
        recipe,
        check_stage,
        Diagnosis.failed,
        "running in LiteRT",
        common,
        run_model=not predict,
        predict_only=predict,
    )


def profile(
    model: Any,
    *,
    recipe: Recipes = "fp32",
    threads: int = 1,
    runs: int = PROFILE_RUNS,
    warmup: int = PROFILE_WARMUP,
    data: str | None = None,
    batch: int = 1,
    dynamic_batch: bool = False,
    input_shape: InputShapes = None,
    calibration: str | None = None,
    trust_model: bool = False,
    timeout: float = DEFAULT_TIMEOUT,
    on_progress: Progress | None = None,
    runtime: RuntimeSpec = None,
) -> ProfileResult:
    """check() plus the time of every XNNPACK partition, CPU node and Keras layer's fallbacks; on `runtime` if given."""
    counts = parse_threads(threads)
    if len(counts) != 1:
        raise XnnfitError(
            f"profile times at one thread count, got threads={threads!r}. Pass one value, e.g. --threads 1."
        )
    common = _common(batch, dynamic_batch, input_shape, calibration, trust_model, timeout, on_progress)
    target = _one_target(runtime, "profile", on_progress)
    return _per_model(
        ProfileResult,
        model,
        recipe,
        profile_stage,
        Diagnosis.failed,
        "profiling",
        common,
        threads=counts[0],
        runs=runs,
        warmup=warmup,
        data=data,
        target=target,
    )


def bench(
    model: Any,
    *,
    recipe: Recipes = "fp32",
    threads: str | int | Iterable[int] = 1,
    runs: int = BENCH_RUNS,
    warmup: int = BENCH_WARMUP,
    data: str | None = None,
    batch: int = 1,
    dynamic_batch: bool = False,
    input_shape: InputShapes = None,
    calibration: str | None = None,
    trust_model: bool = False,
    timeout: float = DEFAULT_TIMEOUT,
    on_progress: Progress | None = None,
    runtime: RuntimeSpec = None,
    api: str = INTERPRETER,
) -> BenchResult:
    """Whole-model latency with XNNPACK and with the built-in kernels only, per thread count, and memory.

    `runtime` times on another runtime (one pip requirement, targets.py); `api='compiled'`
    also times LiteRT 2's CompiledModel (CpuOptions: threads, XNNPACK weight cache) next to the Interpreter.
    """
    counts = parse_threads(threads if isinstance(threads, (str, int)) else tuple(threads))
    if api not in APIS:
        raise XnnfitError(f"--api {api!r} is not known. Pass one of {', '.join(APIS)}.")
    common = _common(batch, dynamic_batch, input_shape, calibration, trust_model, timeout, on_progress)
    target = _one_target(runtime, "bench", on_progress)
    if target is not None and api == COMPILED:
        raise XnnfitError(
            f"--api compiled times the installed ai-edge-litert's CompiledModel, not {target.spec}. "
            "Drop one of --api and --runtime."
        )
    return _per_model(
        BenchResult,
        model,
        recipe,
        bench_stage,
        BenchRun.failed,
        "timing",
        common,
        threads=counts,
        runs=runs,
        warmup=warmup,
        data=data,
        target=target,
        compiled=api == COMPILED,
    )


def compare(
    *models: Any,
    recipe: Recipes = "fp32",
    threads: str | int | Iterable[int] = 1,
    runs: int = BENCH_RUNS,
    warmup: int = BENCH_WARMUP,
    data: str | None = None,
    batch: int = 1,
    dynamic_batch: bool = False,
    input_shape: InputShapes = None,
    calibration: str | None = None,
    trust_model: bool = False,
    timeout: float = DEFAULT_TIMEOUT,
    on_progress: Progress | None = None,
) -> CompareResult:
    """Time several models (each with every recipe) against each other, interleaved in one process: fair ratios.

    Two runs of `bench` on a machine that is busy differently overstate small gains;
    racing the models in one loop gives each the same conditions.
    """
    if not models:
        raise XnnfitError("compare needs at least one model. Pass two or more, e.g. original.tflite fixed.tflite.")
    counts = parse_threads(threads if isinstance(threads, (str, int)) else tuple(threads))
    options = _options(batch, dynamic_batch, input_shape, calibration)
    artifacts = []
    for model in models:
        source = _source(model, trust_model)
        for r in recipes_for(source, parse_recipes(recipe)):
            if on_progress:
                on_progress(f"{source.display}: {'reading' if source.is_tflite else 'converting ' + r.name}")
            artifacts.append((source.display, materialize(source, r, options, timeout=timeout)))
    if on_progress:
        on_progress(f"timing {len(artifacts)} models together")
    result = run_isolated(
        compare_stage,
        tuple(artifacts),
        threads=counts,
        runs=runs,
        warmup=warmup,
        data=data,
        what="timing the models together",
        timeout=timeout,
    )
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
    batch: int = 1,
    dynamic_batch: bool = False,
    input_shape: InputShapes = None,
    calibration: str | None = None,
    trust_model: bool = False,
    timeout: float = DEFAULT_TIMEOUT,
    on_progress: Progress | None = None,
    sides: bool = False,
) -> FixResult:
    """Rewrite the model so XNNPACK runs it whole, keeping only rewrites proven equal and not slower.

    With `output` the fixed model is written there atomically (never over the input, over
    another file only with `force`); without it, call `result.save(path)`. When no
    rewrite is kept nothing is written (`result.changed` is False) unless `force_write`.
    A quantized model is judged against a float reference: the fp32 conversion of a
    Keras source, or the float model rebuilt from a .tflite's own weights. `sides` adds
    the profiled diagnoses before and after (`result.sides`, for the HTML report and the trace).
    """
    chosen = parse_recipes(recipe)
    if len(chosen) != 1:
        raise XnnfitError(f"fix takes one recipe, got {', '.join(r.name for r in chosen)}. Run it once per recipe.")
    return _run_fix(
        _source(model, trust_model),
        output,
        recipe=chosen[0],
        options=_options(batch, dynamic_batch, input_shape, calibration),
        rules=rules,
        exclude=exclude,
        dry_run=dry_run,
        force=force,
        force_write=force_write,
        runs=runs,
        policy=policy,
        timeout=timeout,
        on_progress=on_progress,
        sides=sides,
    )


def quant(
    model: Any,
    *,
    recipe: Recipes = None,
    calibration: str | None = None,
    eval_data: str | None = None,
    max_error: float = DEFAULT_MAX_ERROR,
    runs: int = BENCH_RUNS,
    output_dir: str | Path | None = None,
    force: bool = False,
    batch: int = 1,
    input_shape: InputShapes = None,
    trust_model: bool = False,
    timeout: float = DEFAULT_TIMEOUT,
    on_progress: Progress | None = None,
) -> QuantResult:
    """Convert with every recipe (default: all, mixed ones included) and recommend the fastest within `max_error`.

    With `output_dir` every converted model is written there (an existing file only with `force`).
    """
    if max_error < 0:
        raise XnnfitError(f"max_error {max_error} is negative. Pass a share of the output scale, e.g. 0.05.")
    source = _source(model, trust_model)
    result = run_sweep(
        source,
        parse_recipes(recipe, default=DEFAULT_RECIPES),
        _options(batch, False, input_shape, calibration),
        eval_data=eval_data,
        max_error=max_error,
        runs=runs,
        timeout=timeout,
        on_progress=on_progress,
    )
    if output_dir is not None:
        result.save(output_dir, stem=source.path.stem if source.path is not None else "model", force=force)
    return result


def optimize(
    model: Any,
    output: str | Path | None = None,
    *,
    recipe: Recipes = None,
    keep_all: str | Path | None = None,
    force: bool = False,
    calibration: str | None = None,
    eval_data: str | None = None,
    max_error: float = DEFAULT_MAX_ERROR,
    threads: int = 1,
    runs: int = BENCH_RUNS,
    batch: int = 1,
    input_shape: InputShapes = None,
    trust_model: bool = False,
    timeout: float = DEFAULT_TIMEOUT,
    on_progress: Progress | None = None,
) -> OptimizeResult:
    """The fastest model XNNPACK runs within `max_error`: every recipe converted, fixed and raced; written to `output`.

    Accuracy is measured against the fp32 conversion on `eval_data` (else the calibration
    data, else seeded random inputs, with a warning). A .tflite alone is only fixed (its
    quantized form judged against the float model rebuilt from its weights).
    """
    if max_error < 0:
        raise XnnfitError(f"max_error {max_error} is negative. Pass a share of the output scale, e.g. 0.05.")
    counts = parse_threads(threads)
    if len(counts) != 1:
        raise XnnfitError(
            f"optimize races the candidates at one thread count, got threads={threads!r}. Pass one "
            "value, e.g. --threads 4."
        )
    return run_optimize(
        _source(model, trust_model),
        parse_recipes(recipe, default=DEFAULT_RECIPES),
        _options(batch, False, input_shape, calibration),
        output=output,
        keep_all=keep_all,
        force=force,
        eval_data=eval_data,
        max_error=max_error,
        threads=counts[0],
        runs=runs,
        timeout=timeout,
        on_progress=on_progress,
    )


def convert(
    model: Any,
    *,
    recipe: str = "fp32",
    batch: int = 1,
    dynamic_batch: bool = False,
    input_shape: InputShapes = None,
    calibration: str | None = None,
    trust_model: bool = False,
    timeout: float = DEFAULT_TIMEOUT,
) -> bytes:
    """The .tflite bytes xnnfit measures for `model` with `recipe` (a .tflite comes back as it is)."""
    chosen = parse_recipes(recipe)
    if len(chosen) != 1:
        raise XnnfitError(f"convert takes one recipe, got {', '.join(r.name for r in chosen)}.")
    options = _options(batch, dynamic_batch, input_shape, calibration)
    return materialize(_source(model, trust_model), chosen[0], options, timeout=timeout, runs=False).content


def explain(cause: str | None = None) -> Explanation:
    """A KB cause (`XNN001`): what it is, why XNNPACK refuses it, what to write instead; all causes without an id."""
    causes = (kb.get(cause),) if cause else tuple(kb.CAUSES.values())
    return Explanation(tuple(CauseDoc.of(c) for c in causes), runtime_versions())


def _run_fix(
    source: ModelSource,
    output: str | Path | None,
    *,
    recipe: ConversionRecipe = FP32,
    options: ConvertOptions = ConvertOptions(),
    rules: list[str] | str | None = None,
    exclude: list[str] | str | None = None,
    dry_run: bool = False,
    force: bool = False,
    force_write: bool = False,
    runs: int = BENCH_RUNS,
    policy: VerifyPolicy = DEFAULT_POLICY,
    timeout: float = DEFAULT_TIMEOUT,
    on_progress: Progress | None = None,
    sides: bool = False,
) -> FixResult:
    """Fix `source` (a .tflite, or a Keras source converted with `recipe`) and write it to `output`.

    Nothing is written for a dry run, nor when no rewrite was kept unless `force_write`.
    `sides` adds the profiled diagnoses before and after (for the HTML report and the trace).
    """
    inputs = (source.path,) if source.path is not None else ()
    path = check_output_path(output, inputs=inputs, force=force) if output is not None and not dry_run else None
    chosen = select_rules(rules, exclude)
    step = on_progress or (lambda _: None)
    step("converting" if not source.is_tflite else "reading")
    artifact = materialize(source, recipe, options, timeout=timeout)
    reference = None
    if not source.is_tflite and recipe.name != FP32.name and not dry_run:
        step("converting the float reference (fp32)")
        reference = materialize(source, FP32, options, timeout=timeout).content
    step("rewriting and verifying" if not dry_run else "matching rules")
    sides = sides and not dry_run
    if sides:
        step("rewriting, verifying and profiling before and after")
    done = run_isolated(
        fix_stage,
        artifact,
        reference=reference,
        rules=chosen,
        dry_run=dry_run,
        runs=runs,
        policy=policy,
        sides=sides,
        what=f"fixing {artifact.what}",
        timeout=timeout,
    )
    rewrite, hints = done[:2]
    result = FixResult(
        source.display,
        source.kind,
        artifact.recipe,
        rewrite,
        artifact.specs,
        None,
        dry_run,
        hints,
        runtime_versions(),
        done[2] if sides else (),
    )
    if path is not None and (result.changed or force_write):
        write_file(path, result.content, force=force, flag="-o")
        result = dataclasses.replace(result, output=str(path))
    return result
