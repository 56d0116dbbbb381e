"""The commands: parse their own options, call xnnfit.api, hand the result to report/, set the exit code.

Options every model command shares come in `run` (options.RunOptions); each option is
declared once in options.py.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from xnnfit import api
from xnnfit.cli import batches
from xnnfit.cli.app import app
from xnnfit.cli.options import (
    MODEL_HELP,
    AllRecipes,
    CacheDir,
    ComparisonRuns,
    Data,
    Debug,
    EvalData,
    EvalSamples,
    ExplainQuant,
    Explorer,
    FixData,
    Force,
    Html,
    Json,
    Labels,
    MaxAccuracyDrop,
    MaxError,
    Model,
    OneRecipe,
    OneThread,
    Output,
    Recipes,
    RunOptions,
    Runs,
    Runtime,
    Runtimes,
    Threads,
    Trace,
    Warmup,
    run_options,
)
from xnnfit.cli.session import (
    EXIT_GATE,
    EXIT_USAGE,
    err,
    errors,
    guarded,
    input_path,
    models_read,
    out,
    progress,
    report_outputs,
    session,
    use_cache_dir,
    warn_threads,
    write,
)
from xnnfit.core.errors import XnnfitError
from xnnfit.core.files import Output as OutputPath
from xnnfit.core.policy import BENCH_RUNS, BENCH_WARMUP, PROFILE_RUNS
from xnnfit.explain.diagnosis import Gates, short_runtime
from xnnfit.measure.bench import parse_threads
from xnnfit.model.artifact import AS_GIVEN
from xnnfit.model.recipes import DEFAULT, REPAIRED, parse_recipes, with_reference
from xnnfit.report import terminal
from xnnfit.runtime.targets import MATRIX


def _steps(chosen) -> int:
    """Progress steps of quant and optimize: convert and measure (or fix) each recipe, then one race."""
    return 2 * len(with_reference(chosen)) + 1


@app.command(
    epilog="""[bold]Examples[/]\n
  xnnfit optimize model.keras -o model_best.tflite\n
  xnnfit optimize model.keras -o best.tflite --calibration calib.npz --eval eval.npz  [dim]# with 'labels'[/]\n
  xnnfit optimize model.keras -o best.tflite --eval eval.npz --max-accuracy-drop 0.5\n
  xnnfit optimize model.keras -o best.tflite --threads 4 --keep-all candidates/ --json optimize.json"""
)
@run_options
def optimize(
    model: Model,
    output: Output = None,
    recipe: AllRecipes = None,
    keep_all: Annotated[
        str | None, typer.Option("--keep-all", metavar="DIR", help="Also write every candidate to DIR.")
    ] = None,
    force: Force = False,
    eval_data: EvalData = None,
    labels: Labels = None,
    eval_samples: EvalSamples = None,
    max_error: MaxError = None,
    max_accuracy_drop: MaxAccuracyDrop = None,
    threads: OneThread = 1,
    runs: ComparisonRuns = BENCH_RUNS,
    explain_quant: ExplainQuant = False,
    json_path: Json = None,
    html: Html = None,
    *,
    run: RunOptions,
) -> None:
    """The main job: convert with every recipe, fix each, race them, write the fastest model within the error budget."""
    with session(run):
        if output is None and keep_all is None:
            raise XnnfitError("no output path. Pass -o BEST.tflite (and/or --keep-all DIR).")
        chosen = parse_recipes(recipe, default=DEFAULT)
        warn_threads([threads])
        stem = Path(input_path(model)).stem
        names = [*(r.name for r in with_reference(chosen)), REPAIRED]  # int8-repaired joins when findings call for it
        recipes = [AS_GIVEN] if model.endswith((".tflite", ".lite")) else names
        kept = tuple(f"{stem}.{r}{fixed}.tflite" for r in recipes for fixed in ("", ".fixed"))
        inputs = [
            *models_read([model]),
            ("the --calibration file", run.calibration),
            ("the --eval file", eval_data),
            ("the --labels file", labels),
        ]
        outputs = [
            OutputPath("-o", output),
            OutputPath("--keep-all", keep_all, folder=True, names=kept),
            *report_outputs(json_path, html),
        ]
        with guarded(force, inputs, outputs):
            with progress(run.quiet, f"optimizing {model}", _steps(chosen)) as step:
                result = api.optimize(
                    model, output, recipe=chosen, keep_all=keep_all, force=force, eval_data=eval_data,
                    labels=labels, eval_samples=eval_samples, max_error=max_error,
                    max_accuracy_drop=max_accuracy_drop, threads=threads, runs=runs, explain_quant=explain_quant,
                    on_progress=step, **run.api(),
                )  # fmt: skip
            terminal.render_optimize(out, result)
            write(result, json_path, html, force=force)


@app.command(
    epilog=f"""[bold]Examples[/]\n
  xnnfit check model.keras\n
  xnnfit check model.tflite --json report.json\n
  xnnfit check melspectrogram.tflite --input-shape input=1,16000\n
  xnnfit check examples/where_cnn.py:build --recipe fp32,int8 --calibration data.npz\n
  xnnfit check model.keras --fail-on-fallback            [dim]# CI gate: exit 1 on any CPU node[/]\n
  xnnfit check model.keras --max-partitions 3 --min-delegated 0.95\n
  xnnfit check model.tflite --predict                     [dim]# verdicts from the knowledge base, no interpreter[/]\n
  xnnfit check model.tflite --runtime tflite-runtime==2.14.0   [dim]# what the runtime your app ships does[/]\n
  xnnfit check model.tflite --runtime all                 [dim]# model x runtime: {", ".join(MATRIX)}[/]\n
  xnnfit check models/ --jobs 2 --junit x.xml --sarif x.sarif   [dim]# a batch: every model in the folder[/]\n
  xnnfit check --manifest zoo.toml --baseline base.json --markdown mr.md\n
  xnnfit check models/ --runtime all --junit x.xml         [dim]# zoo x runtime: a job per model, recipe, runtime[/]\n
  xnnfit check --manifest zoo.toml --output-format github   [dim]# annotations in a GitHub Actions log[/]\n
  xnnfit check 'models/**/*.tflite' --write-baseline base.json --backend ray"""
)
@run_options
def check(
    models: Annotated[
        list[str] | None,
        typer.Argument(metavar="MODEL...", help=MODEL_HELP + "; folders (every model inside) and globs for a batch"),
    ] = None,
    recipe: Recipes = None,
    json_path: Json = None,
    html: Html = None,
    explorer: Explorer = None,
    fail_on_fallback: Annotated[
        bool,
        typer.Option(
            "--fail-on-fallback",
            help="Exit 1 if any node runs on CPU kernels. Applies on top of a manifest's budgets (the stricter wins).",
        ),
    ] = False,
    max_partitions: Annotated[
        int | None,
        typer.Option(
            "--max-partitions",
            min=1,
            help="Exit 1 if the graph is cut into more partitions. With --manifest, the smaller of this and the "
            "model's max_partitions.",
        ),
    ] = None,
    min_delegated: Annotated[
        float | None,
        typer.Option(
            "--min-delegated",
            min=0.0,
            max=1.0,
            help="Exit 1 if a smaller share of nodes runs on XNNPACK. With --manifest, the larger of this and the "
            "model's min_delegated.",
        ),
    ] = None,
    all_nodes: Annotated[bool, typer.Option("--all-nodes", help="Also list every node with its verdict.")] = False,
    profile: Annotated[
        bool, typer.Option("--profile", help="Also time every partition and CPU node (see `xnnfit profile`).")
    ] = False,
    runs: Annotated[
        int | None, typer.Option("--runs", min=1, help=f"Timed runs per piece with --profile (default {PROFILE_RUNS}).")
    ] = None,
    data: Annotated[
        str | None,
        typer.Option(
            "--data",
            metavar="FILE",
            help=".npz with one array per input, fed when timing with --profile (default: seeded random).",
        ),
    ] = None,
    predict: Annotated[
        bool,
        typer.Option(
            "--predict",
            help="Verdicts from the knowledge base, without building an interpreter (automatic when the runtime "
            "cannot load the model).",
        ),
    ] = False,
    runtime: Runtimes = None,
    manifest: Annotated[
        str | None,
        typer.Option(
            "--manifest",
            metavar="FILE",
            help="TOML: per model its recipes, input shapes, calibration, budgets and accepted ids (ignore); paths "
            "relative to it. Its models are checked once, as it says, even when a folder argument holds them.",
        ),
    ] = None,
    jobs: Annotated[
        int | None,
        typer.Option("--jobs", "-j", min=1, help="(model, recipe) jobs run at once in a batch (default: CPU cores)."),
    ] = None,
    junit: Annotated[
        str | None, typer.Option("--junit", metavar="FILE", help="JUnit XML: a testcase per model x recipe.")
    ] = None,
    sarif: Annotated[
        str | None,
        typer.Option("--sarif", metavar="FILE", help="SARIF 2.1.0 for code scanning: one result per cause and layer."),
    ] = None,
    sarif_root: Annotated[
        str | None,
        typer.Option(
            "--sarif-root",
            metavar="DIR",
            help="SARIF URIs are relative to DIR (%SRCROOT%; default: the git top level).",
        ),
    ] = None,
    output_format: Annotated[
        str,
        typer.Option(
            "--output-format",
            metavar="text|github",
            help="'github': GitHub Actions annotations (::error file=...) instead of the table; makes it a batch.",
        ),
    ] = "text",
    markdown: Annotated[
        str | None, typer.Option("--markdown", metavar="FILE", help="A Markdown table for a merge-request comment.")
    ] = None,
    baseline: Annotated[
        str | None,
        typer.Option(
            "--baseline", metavar="FILE", help="Compare with an earlier --write-baseline: regressions exit 1."
        ),
    ] = None,
    write_baseline: Annotated[
        str | None, typer.Option("--write-baseline", metavar="FILE", help="Store this batch as the baseline.")
    ] = None,
    cache_dir: CacheDir = None,
    force: Force = False,
    no_cache: Annotated[bool, typer.Option("--no-cache", help="Recompute every job of a batch.")] = False,
    details: Annotated[
        bool, typer.Option("--details", help="In a batch, also print each model's full report.")
    ] = False,
    bench: Annotated[
        bool,
        typer.Option("--bench", help="In a batch, also time each job (one at a time) so --baseline catches slowdowns."),
    ] = False,
    backend: Annotated[
        str,
        typer.Option(
            "--backend",
            metavar="local|ray",
            help="Where batch jobs run: local child processes, or Ray tasks (extra xnnfit\\[ray]).",
        ),
    ] = "local",
    ray_address: Annotated[
        str | None,
        typer.Option("--ray-address", metavar="ADDR", help="An existing Ray cluster (default: start a local one)."),
    ] = None,
    *,
    run: RunOptions,
) -> None:
    """Convert MODEL, ask the LiteRT runtime which nodes XNNPACK took, and explain every fallback."""
    from xnnfit.batch.manifest import expand

    gates = Gates(fail_on_fallback, max_partitions, min_delegated)
    gate_failed = any_error = False
    with session(run):
        use_cache_dir(cache_dir)
        if not profile:
            for flag, value in (("--data", data), ("--runs", runs)):
                if value is not None:
                    raise XnnfitError(
                        f"{flag} is used only when timing: check without --profile runs no data and times "
                        f"nothing. Add --profile, or drop {flag}."
                    )
        names = expand(models or []) if models else []
        if not names and not manifest:
            raise XnnfitError("no model. Pass MODEL..., a folder or glob, or --manifest FILE.")
        if output_format not in ("text", "github"):
            raise XnnfitError(f"--output-format {output_format!r} is not known. Pass text or github.")
        asked_batch = manifest or jobs or junit or sarif or markdown or baseline or write_baseline or bench
        batch_mode = bool(asked_batch) or backend != "local" or len(names) != len(models or []) or len(names) > 1
        batch_mode = batch_mode or output_format != "text"
        if bench and predict:
            raise XnnfitError("--bench times the model on the runtime; --predict builds no runtime. Drop one of them.")
        if batch_mode:
            for flag, value in (("--html", html), ("--model-explorer", explorer), ("--profile", profile)):
                if value:
                    raise XnnfitError(f"{flag} takes one model, got a batch. Run xnnfit check once per model for it.")
            options = {**run.api(), "predict": predict, **({"runtime": runtime} if runtime else {})}
            request = batches.BatchCheck(
                names=tuple(names), manifest=manifest, recipe=recipe, gates=gates, jobs=jobs, options=options,
                json_path=json_path, junit=junit, sarif=sarif, sarif_root=sarif_root, markdown=markdown,
                baseline=baseline, write_baseline=write_baseline, cache=None if no_cache else cache_dir or "",
                details=details, quiet=run.quiet, debug=run.debug, backend=backend, ray_address=ray_address,
                bench_runs=BENCH_RUNS if bench else 0, force=force, output_format=output_format,
            )  # fmt: skip
            code = batches.check_batch(request)
            if code:
                raise typer.Exit(code)
            return
        model = names[0]
        inputs = [*models_read(names), ("the --calibration file", run.calibration), ("the --data file", data)]
        with guarded(force, inputs, report_outputs(json_path, html, None, explorer)):
            with progress(run.quiet, f"checking {model}") as step:
                if profile:
                    result = api.profile(
                        model, recipe=recipe, runs=runs or PROFILE_RUNS, data=data, on_progress=step, runtime=runtime,
                        **run.api(),
                    )  # fmt: skip
                else:
                    result = api.check(
                        model, recipe=recipe, on_progress=step, predict=predict, runtime=runtime, **run.api()
                    )
            terminal.render_check(out, result, all_nodes=all_nodes, details=details)
            write(result, json_path, html, explorer=explorer, force=force)
            any_error |= bool(terminal.render_errors(err, result.recipes, debug=run.debug))
            for d in result.recipes:
                if d.ok:
                    failures = gates.failures(d)
                    where = d.recipe if len(result.runtimes) < 2 else f"{d.recipe} on {short_runtime(d.runtime)}"
                    terminal.render_gate_failures(err, model, where, failures)
                    gate_failed |= bool(failures)
    if any_error:
        raise typer.Exit(EXIT_USAGE)
    if gate_failed:
        raise typer.Exit(EXIT_GATE)


@app.command(
    epilog="""[bold]Examples[/]\n
  xnnfit bench model.tflite\n
  xnnfit bench model.keras --recipe fp32,int8 --threads 1,2,4 --runs 50\n
  xnnfit bench original.tflite fixed.tflite        [dim]# several models: raced against each other, interleaved[/]\n
  xnnfit bench model.keras -r fp32,dynamic-int8 --compare\n
  xnnfit bench model.tflite --data inputs.npz --json bench.json\n
  xnnfit bench model.tflite --runtime tflite-runtime==2.14.0   [dim]# timed on the runtime your app ships[/]\n
  xnnfit bench model.tflite --api compiled --threads 1,2   [dim]# LiteRT 2's CompiledModel next to the Interpreter[/]"""
)
@run_options
def bench(
    models: Annotated[list[str], typer.Argument(metavar="MODEL...", help=MODEL_HELP)],
    recipe: Recipes = None,
    threads: Threads = "1",
    runs: Runs = BENCH_RUNS,
    warmup: Warmup = BENCH_WARMUP,
    data: Data = None,
    compare: Annotated[
        bool,
        typer.Option("--compare", help="Race every model and recipe against each other (implied by several models)."),
    ] = False,
    runtime: Runtime = None,
    api_name: Annotated[
        str,
        typer.Option(
            "--api",
            metavar="interpreter|compiled",
            help="Also time LiteRT 2's CompiledModel (CpuOptions: threads, XNNPACK weight cache) next to the "
            "Interpreter.",
        ),
    ] = "interpreter",
    json_path: Json = None,
    force: Force = False,
    cache_dir: CacheDir = None,
    *,
    run: RunOptions,
) -> None:
    """Whole-model latency with XNNPACK and with the built-in kernels only, and memory; or several models raced."""
    failed = 0
    inputs = [*models_read(models), ("the --data file", data), ("the --calibration file", run.calibration)]
    with session(run), guarded(force, inputs, report_outputs(json_path)):
        use_cache_dir(cache_dir)
        warn_threads(parse_threads(threads))
        timing = {"recipe": recipe, "threads": threads, "runs": runs, "warmup": warmup, "data": data, **run.api()}
        if compare or len(models) > 1:
            if runtime or api_name != "interpreter":
                raise XnnfitError(
                    "--runtime and --api time one model. Race models on the installed runtime, or bench each "
                    "one with --runtime."
                )
            with progress(run.quiet, "racing the models") as step:
                result = api.compare(*models, on_progress=step, **timing)
            terminal.render_compare(out, result)
        else:
            with progress(run.quiet, f"benchmarking {models[0]}") as step:
                result = api.bench(models[0], on_progress=step, runtime=runtime, api=api_name, **timing)
            terminal.render_bench(out, result)
            failed = terminal.render_errors(err, result.recipes, debug=run.debug)
        write(result, json_path, force=force)
    if failed:
        raise typer.Exit(EXIT_USAGE)


@app.command(
    epilog="""[bold]Examples[/]\n
  xnnfit profile examples/where_cnn.py:build --recipe int8\n
  xnnfit profile model.tflite --runs 50 --json profile.json\n
  xnnfit profile model.tflite --html r.html --trace t.json --model-explorer me.json\n
  xnnfit profile model.tflite --runtime ai-edge-litert==1.4.0   [dim]# where the time goes on the app's runtime[/]"""
)
@run_options
def profile(
    model: Model,
    recipe: Recipes = None,
    threads: OneThread = 1,
    runs: Runs = PROFILE_RUNS,
    data: Data = None,
    json_path: Json = None,
    html: Html = None,
    trace: Trace = None,
    explorer: Explorer = None,
    runtime: Runtime = None,
    force: Force = False,
    cache_dir: CacheDir = None,
    *,
    run: RunOptions,
) -> None:
    """Time per partition, per CPU node and per Keras layer: which fallback to fix first."""
    inputs = [*models_read([model]), ("the --data file", data), ("the --calibration file", run.calibration)]
    with session(run), guarded(force, inputs, report_outputs(json_path, html, trace, explorer)):
        use_cache_dir(cache_dir)
        warn_threads([threads])
        with progress(run.quiet, f"profiling {model}") as step:
            result = api.profile(
                model, recipe=recipe, threads=threads, runs=runs, data=data, on_progress=step, runtime=runtime,
                **run.api(),
            )  # fmt: skip
        terminal.render_profile_result(out, result)
        write(result, json_path, html, trace, explorer, force=force)
        failed = terminal.render_errors(err, result.recipes, debug=run.debug)
    if failed:
        raise typer.Exit(EXIT_USAGE)


@app.command(
    epilog="""[bold]Examples[/]\n
  xnnfit fix model.tflite -o model_fixed.tflite\n
  xnnfit fix examples/where_cnn.py:build --recipe int8 -o cnn_int8_fixed.tflite\n
  xnnfit fix model.tflite --dry-run --rules XR001,XR003\n
  xnnfit fix model_int8.tflite -o fixed.tflite --data eval.npz   [dim]# every rewrite verified on your inputs[/]\n
  xnnfit fix model.tflite -o fixed.tflite --input-shape tokens=1,128 --json fix.json\n
  xnnfit fix model.tflite -o fixed.tflite --html fix.html --trace fix.trace.json   [dim]# before/after, drawn[/]\n
  xnnfit fix models/ -o fixed/                       [dim]# each model of a folder into fixed/[/]"""
)
@run_options
def fix(
    model: Annotated[
        str,
        typer.Argument(
            metavar="MODEL",
            help=".tflite (any converter), or a Keras source converted with --recipe; a folder or glob "
            "fixes each model into -o DIR",
        ),
    ],
    output: Annotated[
        str | None,
        typer.Option(
            "-o",
            "--output",
            metavar="OUT",
            help="Where to write the fixed .tflite (never the input); a folder for a folder or glob.",
        ),
    ] = None,
    recipe: OneRecipe = "fp32",
    rules: Annotated[
        str | None, typer.Option("--rules", metavar="XR0xx,..", help="Only these rules, e.g. XR001,XR003.")
    ] = None,
    exclude: Annotated[str | None, typer.Option("--exclude", metavar="XR0xx,..", help="Skip these rules.")] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Show which rules match; apply, verify and write nothing.")
    ] = False,
    force: Force = False,
    force_write: Annotated[
        bool, typer.Option("--force-write", help="Write OUT even when no rewrite was kept (an unchanged copy).")
    ] = False,
    runs: ComparisonRuns = BENCH_RUNS,
    data: FixData = None,
    json_path: Json = None,
    html: Html = None,
    trace: Trace = None,
    explorer: Explorer = None,
    *,
    run: RunOptions,
) -> None:
    """Rewrite the graph so XNNPACK runs it whole; keep only fixes proven equal and not slower."""
    from xnnfit.batch.manifest import expand

    with session(run):
        if output is None and not dry_run:
            raise XnnfitError("no output path. Pass -o OUT.tflite, or --dry-run to only see which rules match.")
        names = expand([model])
        inputs = [*models_read(names), ("the --calibration file", run.calibration), ("the --data file", data)]
        fixing = {"recipe": recipe, "rules": rules, "exclude": exclude, "dry_run": dry_run, "force": force}
        fixing |= {"force_write": force_write, "runs": runs, "data": data, **run.api()}
        if names != [model]:  # a folder or glob: each model into -o DIR
            if html or trace or explorer:
                raise XnnfitError(
                    "--html, --trace and --model-explorer take one model. Fix the models one by one for them."
                )
            with guarded(force, inputs, []):
                code = batches.fix_many(names, output, fixing, json_path, quiet=run.quiet)
            if code:
                raise typer.Exit(code)
            return
        outputs = [OutputPath("-o", None if dry_run else output), *report_outputs(json_path, html, trace, explorer)]
        with guarded(force, inputs, outputs):
            sides = bool(html or trace or explorer) and not dry_run
            with progress(run.quiet, f"fixing {model}") as step:
                result = api.fix(model, output, sides=sides, on_progress=step, **fixing)
            terminal.render_fix(out, result)
            drawn = (trace, explorer) if result.sides else (None, None)
            write(result, json_path, html, *drawn, force=force)


@app.command(
    epilog="""[bold]Examples[/]\n
  xnnfit quant model.keras --calibration calib.npz --eval eval.npz\n
  xnnfit quant examples/transformer_block.py:build --recipe fp32,int8,int8+float-ops\n
  xnnfit quant model.keras --calibration calib.npz --eval eval.npz --max-accuracy-drop 0.5 -o converted/\n
  xnnfit quant model.keras --max-error 0.02 --json quant.json   [dim]# no labels: error vs the fp32 outputs[/]"""
)
@run_options
def quant(
    model: Annotated[
        str,
        typer.Argument(metavar="MODEL", help=".keras, .h5, SavedModel dir, or path/to/file.py:function (not .tflite)"),
    ],
    recipe: AllRecipes = None,
    eval_data: EvalData = None,
    labels: Labels = None,
    eval_samples: EvalSamples = None,
    max_error: MaxError = None,
    max_accuracy_drop: MaxAccuracyDrop = None,
    runs: ComparisonRuns = BENCH_RUNS,
    explain_quant: ExplainQuant = False,
    output_dir: Annotated[
        str | None, typer.Option("-o", "--output-dir", metavar="DIR", help="Write each converted model to DIR.")
    ] = None,
    json_path: Json = None,
    html: Html = None,
    force: Force = False,
    *,
    run: RunOptions,
) -> None:
    """Convert with every recipe and pick one: size, delegation, latency, CPU time, accuracy."""
    with session(run):
        chosen = parse_recipes(recipe, default=DEFAULT)
        stem = Path(input_path(model)).stem
        names = tuple(f"{stem}.{r}.tflite" for r in (*(r.name for r in with_reference(chosen)), REPAIRED))
        inputs = [
            *models_read([model]),
            ("the --calibration file", run.calibration),
            ("the --eval file", eval_data),
            ("the --labels file", labels),
        ]
        outputs = [OutputPath("-o", output_dir, folder=True, names=names), *report_outputs(json_path, html)]
        with guarded(force, inputs, outputs):
            with progress(run.quiet, f"quantization sweep of {model}", _steps(chosen)) as step:
                result = api.quant(
                    model, recipe=chosen, eval_data=eval_data, labels=labels, eval_samples=eval_samples,
                    max_error=max_error, max_accuracy_drop=max_accuracy_drop, runs=runs, output_dir=output_dir,
                    force=force, explain_quant=explain_quant, on_progress=step, **run.api(),
                )  # fmt: skip
            terminal.render_quant(out, result)
            write(result, json_path, html, force=force)


@app.command(
    epilog="[bold]Examples[/]\n\n  xnnfit explain            [dim]# list every id, by kind[/]\n\n"
    "  xnnfit explain XNN001     [dim]# a cause[/]\n\n  xnnfit explain XNN040     [dim]# a hazard[/]\n\n"
    "  xnnfit explain XNN036     [dim]# a quantization cause (quant and optimize findings)[/]\n\n"
    "  xnnfit explain XR013      [dim]# a rewrite rule[/]"
)
def explain(
    cause_id: Annotated[
        str | None,
        typer.Argument(
            metavar="[ID]", help="A cause (XNN0xx), hazard (XNN040) or rule (XR0xx) id from a check or fix report."
        ),
    ] = None,
    json_path: Json = None,
    force: Force = False,
) -> None:
    """Explain a stable id: a cause (why XNNPACK refuses a node, what to write instead), a hazard or a rewrite rule."""
    with errors(False), guarded(force, [], report_outputs(json_path)):
        result = api.explain(cause_id)
        terminal.render_explanation(out, result, table=cause_id is None)
        write(result, json_path, force=force)


@app.command(
    epilog="""[bold]Examples[/]\n
  xnnfit report check.json --html check.html          [dim]# render a saved result (a CI artifact) later[/]\n
  xnnfit report profile.json --trace t.json --model-explorer me.json"""
)
def report(
    result_json: Annotated[
        str,
        typer.Argument(
            metavar="RESULT.json", help="A result written with --json by check, profile, fix, quant or optimize."
        ),
    ],
    html: Html = None,
    trace: Trace = None,
    explorer: Explorer = None,
    force: Force = False,
    debug: Debug = False,
) -> None:
    """Render a saved JSON result as an HTML report, a trace or Model Explorer overlays."""
    from xnnfit.report.load import load_result

    with errors(debug):
        if not (html or trace or explorer):
            raise XnnfitError("nothing to write. Pass --html FILE, --trace FILE and/or --model-explorer FILE.")
        with guarded(force, [("the result file", result_json)], report_outputs(None, html, trace, explorer)):
            write(load_result(result_json), None, html, trace, explorer, force=force)


@app.command(
    epilog="""[bold]Examples[/]\n
  xnnfit explore model.tflite                [dim]# opens Model Explorer with the delegation and latency overlays[/]\n
  xnnfit explore examples/where_cnn.py:build --recipe int8 --no-open"""
)
@run_options
def explore(
    model: Model,
    recipe: Annotated[
        str, typer.Option("--recipe", "-r", metavar="R", help="Recipe for Keras sources (one).")
    ] = "fp32",
    port: Annotated[
        int, typer.Option("--port", min=1, max=65535, help="Port for Model Explorer's local server.")
    ] = 8080,
    no_open: Annotated[bool, typer.Option("--no-open", help="Print the URL instead of opening a browser.")] = False,
    *,
    run: RunOptions,
) -> None:
    """Open Model Explorer (optional extra xnnfit[explorer]) on MODEL with xnnfit's delegation and latency overlays."""
    from xnnfit.report.model_explorer import explore as run_explore

    with session(run):
        run_explore(model, recipe=recipe, port=port, open_browser=not no_open, quiet=run.quiet, err=err, **run.api())
