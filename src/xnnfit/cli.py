"""The xnnfit command line (typer); thin: parse, call the API, render, exit code.

Exit codes: 0 fine, 1 a CI gate was violated, 2 usage error or unusable input.
"""

from __future__ import annotations

import re
import sys
from typing import Optional

import typer
from rich.console import Console
from rich.markup import escape

from xnnfit import __version__
from xnnfit.errors import XnnfitError

EXIT_GATE = 1
EXIT_USAGE = 2

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    rich_markup_mode="rich",
    context_settings={"help_option_names": ["-h", "--help"]},
    help="Find out which parts of your model the XNNPACK CPU delegate refuses, why, and what to write instead.",
)
out = Console(highlight=False)
err = Console(stderr=True, highlight=False, soft_wrap=True)
if not out.is_terminal:  # pipes and CI logs: do not wrap at 80 columns
    out = Console(highlight=False, width=160)
if not err.is_terminal:
    err = Console(stderr=True, highlight=False, width=160, soft_wrap=True)
_debug = {"on": False}


_ANSI = re.compile(r"\x1b\[[0-9;]*m|\[[0-9;]*m(?=\w)")


def _one_line(text: str) -> str:
    return " ".join(_ANSI.sub("", text).split())


def _fail(exc: XnnfitError) -> None:
    err.print(f"[red]error:[/] {escape(_one_line(str(exc)))}")
    if _debug["on"] and exc.detail:
        err.print(exc.detail, markup=False)
    raise typer.Exit(EXIT_USAGE)


def _version(value: bool) -> None:
    if value:
        out.print(f"xnnfit {__version__}")
        raise typer.Exit()


@app.callback()
def main_options(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version and exit."),
) -> None:
    """xnnfit: runtime-true XNNPACK delegation diagnosis for Keras and TFLite models."""


@app.command(
    epilog="""[bold]Examples[/]\n
  xnnfit check model.keras\n
  xnnfit check model.tflite --json report.json\n
  xnnfit check examples/where_cnn.py:build --recipe fp32,int8 --calibration data.npz\n
  xnnfit check model.keras --fail-on-fallback            [dim]# CI gate: exit 1 on any CPU node[/]\n
  xnnfit check model.keras --max-partitions 3 --min-delegated 0.95"""
)
def check(
    models: list[str] = typer.Argument(..., metavar="MODEL...", help=".keras, .h5, SavedModel dir, .tflite, or path/to/file.py:function"),
    recipe: list[str] = typer.Option(["fp32"], "--recipe", "-r", help="fp32, fp16, dynamic-int8, int8, int16x8 (comma-separated or repeated; 'all')."),
    batch: int = typer.Option(1, "--batch", min=1, help="Batch size the model is pinned to."),
    dynamic_batch: bool = typer.Option(False, "--dynamic-batch", help="Keep the batch dimension dynamic, as many users ship it."),
    input_shape: list[str] = typer.Option([], "--input-shape", help="Pin an input's shape: NAME=1,128 (repeatable)."),
    calibration: Optional[str] = typer.Option(None, "--calibration", help=".npz of representative inputs for int8/int16x8 (one array per input)."),
    trust_model: bool = typer.Option(False, "--trust-model", help="Allow loading .keras/.h5 files that run code (Lambda layers)."),
    json_path: Optional[str] = typer.Option(None, "--json", help="Write the machine-readable report to FILE (one model)."),
    fail_on_fallback: bool = typer.Option(False, "--fail-on-fallback", help="Exit 1 if any node runs on CPU kernels."),
    max_partitions: Optional[int] = typer.Option(None, "--max-partitions", min=1, help="Exit 1 if the graph is cut into more partitions."),
    min_delegated: Optional[float] = typer.Option(None, "--min-delegated", min=0.0, max=1.0, help="Exit 1 if a smaller share of nodes runs on XNNPACK."),
    timeout: float = typer.Option(600.0, "--timeout", min=1.0, help="Seconds allowed per conversion/run before it is stopped."),
    all_nodes: bool = typer.Option(False, "--all-nodes", help="Also list every node with its verdict."),
    profile: bool = typer.Option(False, "--profile", help="Also time every partition and CPU node (see `xnnfit profile`)."),
    runs: int = typer.Option(20, "--runs", min=1, help="Timed runs per piece with --profile."),
    data: Optional[str] = typer.Option(None, "--data", help=".npz of inputs for --profile (default: seeded random)."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress display."),
    debug: bool = typer.Option(False, "--debug", help="Show tracebacks and the converter/runtime log on errors."),
) -> None:
    """Convert MODEL, ask the LiteRT runtime which nodes XNNPACK took, and explain every fallback."""
    _debug["on"] = debug
    try:
        from xnnfit.check import check as run_check
        from xnnfit.recipes import parse_recipes
        from xnnfit.report.json import report_dict, write_json
        from xnnfit.report.terminal import render_report

        recipes = parse_recipes(recipe)
        if json_path and len(models) > 1:
            raise XnnfitError(f"--json takes one model, got {len(models)}. Run xnnfit check once per model.")
        options = _options(batch, dynamic_batch, input_shape, calibration, timeout)
        gate_failed = False
        any_error = False
        for model in models:
            with err.status(f"checking {model}…", spinner="dots") if not quiet else _nullcontext() as status:

                def on_recipe(name: str, status=status, model=model) -> None:
                    if status is not None:
                        status.update(f"checking {model} ({name}): converting and running in LiteRT…")

                profile_opts = {"runs": runs, "data": data} if profile else None
                report = run_check(model, recipes, options, trust=trust_model, on_recipe=on_recipe, profile=profile_opts)
            render_report(out, report, all_nodes=all_nodes)
            if json_path:
                write_json(report_dict(report), json_path)
                err.print(f"wrote {json_path}")
            for d in report.results:
                if not d.ok:
                    any_error = True
                    err.print(f"[red]error:[/] {escape(_one_line(d.error or ''))}")
                    if debug and d.error_detail:
                        err.print(d.error_detail, markup=False)
                    continue
                gate_failed |= _gate(d, model, fail_on_fallback, max_partitions, min_delegated)
    except XnnfitError as exc:
        _fail(exc)
    except KeyboardInterrupt:
        err.print("interrupted")
        raise typer.Exit(130)
    if any_error:
        raise typer.Exit(EXIT_USAGE)
    if gate_failed:
        raise typer.Exit(EXIT_GATE)


class _nullcontext:
    def __enter__(self):
        return None

    def __exit__(self, *exc):
        return False


def _gate(d, model: str, fail_on_fallback: bool, max_partitions: int | None, min_delegated: float | None) -> bool:
    s = d.summary()
    failed = []
    if fail_on_fallback and s["cpu_nodes"]:
        failed.append(f"{s['cpu_nodes']} node(s) on CPU kernels (--fail-on-fallback)")
    if max_partitions is not None and s["partitions"] > max_partitions:
        failed.append(f"{s['partitions']} partitions > --max-partitions {max_partitions}")
    if min_delegated is not None and d.delegated_fraction < min_delegated:
        failed.append(f"{d.delegated_fraction:.1%} delegated < --min-delegated {min_delegated:.1%}")
    for f in failed:
        err.print(f"[red]gate failed[/] {model} ({d.recipe}): {f}")
    return bool(failed)


def _options(batch, dynamic_batch, input_shape, calibration, timeout):
    from xnnfit.convert import ConvertOptions
    from xnnfit.inputs import parse_input_shapes

    return ConvertOptions(
        batch=batch, dynamic_batch=dynamic_batch, input_shapes=tuple(parse_input_shapes(input_shape).items()), calibration=calibration, timeout=timeout
    )


@app.command(
    epilog="""[bold]Examples[/]\n
  xnnfit bench model.tflite\n
  xnnfit bench model.keras --recipe fp32,int8 --threads 1,2,4 --runs 50\n
  xnnfit bench model.tflite --data inputs.npz --json bench.json"""
)
def bench(
    model: str = typer.Argument(..., metavar="MODEL", help=".keras, .h5, SavedModel dir, .tflite, or path/to/file.py:function"),
    recipe: list[str] = typer.Option(["fp32"], "--recipe", "-r", help="Recipes to convert with (ignored for a .tflite)."),
    threads: str = typer.Option("1", "--threads", help="Thread counts, comma-separated (e.g. 1,2,4)."),
    runs: int = typer.Option(30, "--runs", min=1, help="Timed runs per configuration (interleaved)."),
    warmup: int = typer.Option(5, "--warmup", min=0, help="Untimed runs first."),
    data: Optional[str] = typer.Option(None, "--data", help=".npz with one array per input (first sample is used); default: seeded random."),
    batch: int = typer.Option(1, "--batch", min=1, help="Batch size the model is pinned to."),
    dynamic_batch: bool = typer.Option(False, "--dynamic-batch", help="Keep the batch dimension dynamic."),
    input_shape: list[str] = typer.Option([], "--input-shape", help="Pin an input's shape: NAME=1,128 (repeatable)."),
    calibration: Optional[str] = typer.Option(None, "--calibration", help=".npz of representative inputs for int8/int16x8."),
    trust_model: bool = typer.Option(False, "--trust-model", help="Allow loading .keras/.h5 files that run code (Lambda layers)."),
    json_path: Optional[str] = typer.Option(None, "--json", help="Write the machine-readable result to FILE."),
    timeout: float = typer.Option(600.0, "--timeout", min=1.0, help="Seconds allowed per conversion/benchmark."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress display."),
    debug: bool = typer.Option(False, "--debug", help="Show the converter/runtime log on errors."),
) -> None:
    """Whole-model latency with XNNPACK and with the built-in kernels only, and memory."""
    _debug["on"] = debug
    try:
        from xnnfit.bench import Failed, bench as run_bench, parse_threads
        from xnnfit.recipes import parse_recipes
        from xnnfit.report.json import bench_dict, write_json
        from xnnfit.report.terminal import render_bench
        from xnnfit.runtime import runtime_versions
        from xnnfit.source import ModelSource

        thread_counts = parse_threads(threads)
        source = ModelSource.parse(model, trust=trust_model)
        recipes = parse_recipes(recipe)
        with _steps(quiet, f"benchmarking {model}") as step:
            results = run_bench(
                source, recipes, _options(batch, dynamic_batch, input_shape, calibration, timeout),
                threads=thread_counts, runs=runs, warmup=warmup, data=data, on_step=step,
            )
        for r in results:
            render_bench(out, source.display, r)
            out.print()
        if json_path:
            from xnnfit import __version__ as v

            write_json(bench_dict(source.display, source.kind, {"xnnfit": v, **runtime_versions()}, results), json_path)
            err.print(f"wrote {json_path}")
        failed = [r for r in results if isinstance(r, Failed)]
        for r in failed:
            err.print(f"[red]error:[/] {escape(_one_line(r.error))}")
            if debug and r.detail:
                err.print(r.detail, markup=False)
    except XnnfitError as exc:
        _fail(exc)
    if failed:
        raise typer.Exit(EXIT_USAGE)


@app.command(
    epilog="""[bold]Examples[/]\n
  xnnfit profile examples/where_cnn.py:build --recipe int8\n
  xnnfit profile model.tflite --runs 50 --json profile.json"""
)
def profile(
    model: str = typer.Argument(..., metavar="MODEL", help=".keras, .h5, SavedModel dir, .tflite, or path/to/file.py:function"),
    recipe: list[str] = typer.Option(["fp32"], "--recipe", "-r", help="Recipes to convert with (ignored for a .tflite)."),
    threads: str = typer.Option("1", "--threads", help="Thread count for timing (one value)."),
    runs: int = typer.Option(20, "--runs", min=1, help="Timed runs per piece (interleaved with the whole model)."),
    data: Optional[str] = typer.Option(None, "--data", help=".npz with one array per input (first sample); default: seeded random."),
    batch: int = typer.Option(1, "--batch", min=1, help="Batch size the model is pinned to."),
    input_shape: list[str] = typer.Option([], "--input-shape", help="Pin an input's shape: NAME=1,128 (repeatable)."),
    calibration: Optional[str] = typer.Option(None, "--calibration", help=".npz of representative inputs for int8/int16x8."),
    trust_model: bool = typer.Option(False, "--trust-model", help="Allow loading .keras/.h5 files that run code (Lambda layers)."),
    json_path: Optional[str] = typer.Option(None, "--json", help="Write the machine-readable result to FILE."),
    timeout: float = typer.Option(600.0, "--timeout", min=1.0, help="Seconds allowed per conversion/profile."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress display."),
    debug: bool = typer.Option(False, "--debug", help="Show the converter/runtime log on errors."),
) -> None:
    """Time per partition, per CPU node and per Keras layer: which fallback to fix first."""
    _debug["on"] = debug
    failed = False
    try:
        from xnnfit.bench import parse_threads
        from xnnfit.check import check as run_check
        from xnnfit.recipes import parse_recipes
        from xnnfit.report.json import report_dict, write_json
        from xnnfit.report.terminal import headline, render_profile

        counts = parse_threads(threads)
        if len(counts) != 1:
            raise XnnfitError(f"profile times at one thread count, got --threads {threads}. Pass one value, e.g. --threads 1.")
        with _steps(quiet, f"profiling {model}") as step:
            report = run_check(
                model, parse_recipes(recipe), _options(batch, False, input_shape, calibration, timeout),
                trust=trust_model, on_recipe=step, profile={"runs": runs, "data": data, "threads": counts[0]},
            )
        for d in report.results:
            out.print(f"[bold]{escape(report.model)}[/] · [cyan]{d.recipe}[/]")
            if not d.ok:
                failed = True
                out.print("  [red]failed[/] (the error is on stderr)")
                err.print(f"[red]error:[/] {escape(_one_line(d.error or ''))}")
                continue
            out.print(f"  {headline(d)}")
            render_profile(out, d.profile)
            out.print()
        if json_path:
            write_json(report_dict(report), json_path)
            err.print(f"wrote {json_path}")
    except XnnfitError as exc:
        _fail(exc)
    if failed:
        raise typer.Exit(EXIT_USAGE)


class _progress:
    """A transient progress bar on stderr over a known number of steps (nothing with --quiet)."""

    def __init__(self, quiet: bool, title: str, total: int):
        self.quiet, self.title, self.total, self.bar, self.task = quiet, title, total, None, None

    def __enter__(self):
        if not self.quiet:
            from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

            self.bar = Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"), TimeElapsedColumn(), console=err, transient=True)
            self.bar.__enter__()
            self.task = self.bar.add_task(self.title, total=self.total)
        return self.update

    def update(self, step: str) -> None:
        if self.bar is not None:
            self.bar.update(self.task, advance=1, description=f"{self.title}: {step}")

    def __exit__(self, *exc):
        if self.bar is not None:
            self.bar.__exit__(*exc)
        return False


class _steps:
    """A transient spinner on stderr naming the current step (nothing with --quiet)."""

    def __init__(self, quiet: bool, title: str):
        self.quiet, self.title, self.status = quiet, title, None

    def __enter__(self):
        if not self.quiet:
            self.status = err.status(self.title + "…", spinner="dots")
            self.status.__enter__()
        return self.update

    def update(self, step: str) -> None:
        if self.status is not None:
            self.status.update(f"{self.title}: {step}…")

    def __exit__(self, *exc):
        if self.status is not None:
            self.status.__exit__(*exc)
        return False


@app.command(
    epilog="""[bold]Examples[/]\n
  xnnfit fix model.tflite -o model_fixed.tflite\n
  xnnfit fix examples/where_cnn.py:build --recipe int8 -o cnn_int8_fixed.tflite\n
  xnnfit fix model.tflite --dry-run --rules XR001,XR003\n
  xnnfit fix model.tflite -o fixed.tflite --input-shape tokens=1,128 --json fix.json"""
)
def fix(
    model: str = typer.Argument(..., metavar="MODEL", help=".tflite (any converter), or a Keras source converted with --recipe"),
    output: Optional[str] = typer.Option(None, "-o", "--output", help="Where to write the fixed .tflite (never the input)."),
    recipe: str = typer.Option("fp32", "--recipe", "-r", help="Recipe for Keras sources (one)."),
    rules: Optional[str] = typer.Option(None, "--rules", help="Only these rules, e.g. XR001,XR003."),
    exclude: Optional[str] = typer.Option(None, "--exclude", help="Skip these rules."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Show what would change; write nothing, verify nothing."),
    force: bool = typer.Option(False, "--force", help="Replace OUT if it exists."),
    runs: int = typer.Option(30, "--runs", min=3, help="Timed runs per latency comparison."),
    batch: int = typer.Option(1, "--batch", min=1, help="Batch size the model is pinned to."),
    input_shape: list[str] = typer.Option([], "--input-shape", help="Pin an input's shape: NAME=1,128 (repeatable)."),
    calibration: Optional[str] = typer.Option(None, "--calibration", help=".npz of representative inputs for int8."),
    trust_model: bool = typer.Option(False, "--trust-model", help="Allow loading .keras/.h5 files that run code (Lambda layers)."),
    json_path: Optional[str] = typer.Option(None, "--json", help="Write the machine-readable result to FILE."),
    timeout: float = typer.Option(900.0, "--timeout", min=1.0, help="Seconds allowed for conversion and for the fix."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress display."),
    debug: bool = typer.Option(False, "--debug", help="Show the converter/runtime log on errors."),
) -> None:
    """Rewrite the graph so XNNPACK runs it whole; keep only fixes proven equal and not slower."""
    _debug["on"] = debug
    try:
        from xnnfit.fix import fix as run_fix
        from xnnfit.recipes import parse_recipes
        from xnnfit.report.json import fix_dict, write_json
        from xnnfit.report.terminal import render_fix

        recipes = parse_recipes(recipe)
        if len(recipes) != 1:
            raise XnnfitError(f"fix takes one recipe, got {recipe!r}. Run it once per recipe.")
        split = lambda text: [t for t in (text or "").split(",") if t.strip()]  # noqa: E731
        with _steps(quiet, f"fixing {model}") as step:
            report = run_fix(
                model, output, recipe=recipes[0], options=_options(batch, False, input_shape, calibration, timeout),
                rules=split(rules) or None, exclude=split(exclude), dry_run=dry_run, force=force, trust=trust_model, runs=runs, on_step=step,
            )
        render_fix(out, report)
        if json_path:
            write_json(fix_dict(report), json_path)
            err.print(f"wrote {json_path}")
    except XnnfitError as exc:
        _fail(exc)


@app.command(
    epilog="""[bold]Examples[/]\n
  xnnfit quant model.keras --calibration calib.npz --eval eval.npz\n
  xnnfit quant examples/transformer_block.py:build --recipes fp32,int8,int8+float-ops\n
  xnnfit quant model.keras --max-error 0.02 -o converted/ --json quant.json"""
)
def quant(
    model: str = typer.Argument(..., metavar="MODEL", help=".keras, .h5, SavedModel dir, or path/to/file.py:function (not .tflite)"),
    recipes: Optional[str] = typer.Option(None, "--recipes", help="Subset to try, comma-separated (default: all, mixed ones included)."),
    calibration: Optional[str] = typer.Option(None, "--calibration", help=".npz of representative inputs (else seeded random, with a warning)."),
    eval_data: Optional[str] = typer.Option(None, "--eval", help=".npz of evaluation inputs (else the calibration data, else random)."),
    max_error: float = typer.Option(0.05, "--max-error", min=0.0, help="Accuracy budget: max abs error / max |float output| (default 5%)."),
    runs: int = typer.Option(30, "--runs", min=3, help="Timed runs per recipe (interleaved)."),
    output_dir: Optional[str] = typer.Option(None, "-o", "--output-dir", help="Write each converted model to DIR."),
    batch: int = typer.Option(1, "--batch", min=1, help="Batch size the model is pinned to."),
    input_shape: list[str] = typer.Option([], "--input-shape", help="Pin an input's shape: NAME=1,128 (repeatable)."),
    trust_model: bool = typer.Option(False, "--trust-model", help="Allow loading .keras/.h5 files that run code (Lambda layers)."),
    json_path: Optional[str] = typer.Option(None, "--json", help="Write the machine-readable result to FILE."),
    timeout: float = typer.Option(900.0, "--timeout", min=1.0, help="Seconds allowed per conversion/measurement."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress display."),
    debug: bool = typer.Option(False, "--debug", help="Show the converter/runtime log on errors."),
) -> None:
    """Convert with every recipe and pick one: size, delegation, latency, CPU time, accuracy."""
    _debug["on"] = debug
    try:
        from xnnfit.quant import DEFAULT_RECIPES, quant as run_quant
        from xnnfit.recipes import parse_recipes
        from xnnfit.report.json import quant_dict, write_json
        from xnnfit.report.terminal import render_quant

        chosen = parse_recipes(recipes, default=DEFAULT_RECIPES)
        steps = 2 * len(set(chosen) | {chosen[0]}) + 1
        with _progress(quiet, f"quantization sweep of {model}", steps) as step:
            report = run_quant(
                model, chosen, _options(batch, False, input_shape, calibration, timeout),
                eval_data=eval_data, max_error=max_error, runs=runs, output_dir=output_dir, trust=trust_model, on_step=step,
            )
        render_quant(out, report)
        if json_path:
            write_json(quant_dict(report), json_path)
            err.print(f"wrote {json_path}")
    except XnnfitError as exc:
        _fail(exc)


@app.command(epilog="[bold]Examples[/]\n\n  xnnfit explain            [dim]# list every cause[/]\n\n  xnnfit explain XNN001")
def explain(cause_id: Optional[str] = typer.Argument(None, metavar="[XNN0xx]", help="A cause id from a check report.")) -> None:
    """Explain a cause: what it is, why XNNPACK refuses it, and what to write instead."""
    from rich.table import Table

    from xnnfit import kb
    from xnnfit.report.terminal import render_cause

    if cause_id is None:
        table = Table(box=None, header_style="bold")
        table.add_column("id")
        table.add_column("cause")
        table.add_column("ops")
        for c in kb.CAUSES.values():
            ops = ", ".join(c.ops[:4]) + (" …" if len(c.ops) > 4 else "")
            table.add_row(c.id, c.title, ops)
        out.print(table)
        return
    try:
        render_cause(out, kb.get(cause_id))
    except XnnfitError as exc:
        _fail(exc)


def main() -> None:
    """Console-script entry point; usage errors exit 2 (typer's default)."""
    try:
        app()
    except XnnfitError as exc:  # pragma: no cover - commands catch their own
        err.print(f"error: {exc}")
        sys.exit(EXIT_USAGE)


if __name__ == "__main__":
    main()
