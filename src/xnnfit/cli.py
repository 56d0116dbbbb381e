"""The xnnfit command line (typer): parse options, call xnnfit.api, hand the result to report/, set the exit code.

Exit codes: 0 fine, 1 a CI gate was violated, 2 usage error or unusable input, 130 interrupted.
Options shared by several commands are declared once below and mean the same everywhere.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
from collections.abc import Callable, Iterable, Iterator
from typing import Annotated

import typer
from rich.console import Console

from xnnfit import api
from xnnfit.core.errors import XnnfitError
from xnnfit.core.files import CACHE_ENV, Output, check_outputs, run_scope
from xnnfit.core.policy import BENCH_RUNS, BENCH_WARMUP, DEFAULT_MAX_ERROR, DEFAULT_TIMEOUT, PROFILE_RUNS
from xnnfit.core.version import __version__
from xnnfit.explain.diagnosis import Gates, short_runtime
from xnnfit.report import terminal
from xnnfit.report.json import write_json

EXIT_GATE, EXIT_USAGE, EXIT_INTERRUPTED = 1, 2, 130
STOP_SIGNALS = (
    signal.SIGINT,
    signal.SIGTERM,
    signal.SIGHUP,
)  # Ctrl-C, `kill PID` (systemd, Kubernetes, CI runners), a closed terminal
MODEL_HELP = ".keras, .h5, SavedModel dir, .tflite, or path/to/file.py:function"

# --- options shared by the commands (one declaration each) ----------------------------
Model = Annotated[str, typer.Argument(metavar="MODEL", help=MODEL_HELP)]
Recipe = Annotated[
    list[str] | None,
    typer.Option(
        "--recipe",
        "-r",
        metavar="R",
        help="fp32, fp16, dynamic-int8, int8, int16x8, int8+float-ops, dynamic-int8+float-dw "
        "(comma-separated or repeated; 'all'). Ignored for a .tflite.",
    ),
]
Batch = Annotated[int, typer.Option("--batch", min=1, help="Batch size a dynamic batch dimension is pinned to.")]
DynamicBatch = Annotated[
    bool, typer.Option("--dynamic-batch", help="Keep the batch dimension dynamic, as many users ship it.")
]
InputShape = Annotated[
    list[str] | None,
    typer.Option(
        "--input-shape",
        metavar="NAME=D,..",
        help="Pin an input's dynamic dimensions: NAME=1,128 (repeatable; .tflite files too).",
    ),
]
Calibration = Annotated[
    str | None,
    typer.Option(
        "--calibration",
        metavar="FILE",
        help=".npz of representative inputs for int8/int16x8 (one array per input, samples on axis 0).",
    ),
]
Trust = Annotated[
    bool, typer.Option("--trust-model", help="Allow loading .keras/.h5 files that run code (Lambda layers).")
]
Json = Annotated[
    str | None,
    typer.Option("--json", metavar="FILE", help="Write the machine-readable result to FILE (atomically)."),
]
Html = Annotated[
    str | None,
    typer.Option(
        "--html", metavar="FILE", help="Write a self-contained HTML report to FILE (no network needed to view it)."
    ),
]
Trace = Annotated[
    str | None,
    typer.Option("--trace", metavar="FILE", help="Write a Chrome trace-event JSON (open it in ui.perfetto.dev)."),
]
Explorer = Annotated[
    str | None,
    typer.Option(
        "--model-explorer",
        metavar="FILE",
        help="Write Model Explorer node-data overlays (delegation; latency when profiled).",
    ),
]
Timeout = Annotated[
    float, typer.Option("--timeout", min=1.0, help="Seconds allowed per conversion or run before it is stopped.")
]
Quiet = Annotated[bool, typer.Option("--quiet", "-q", help="No progress display.")]
Debug = Annotated[bool, typer.Option("--debug", help="Show the converter/runtime log and tracebacks on errors.")]
Threads = Annotated[str, typer.Option("--threads", metavar="N,..", help="Thread counts, comma-separated (e.g. 1,2,4).")]
Runs = Annotated[int, typer.Option("--runs", min=1, help="Timed runs per measurement (interleaved).")]
RuntimeOpt = Annotated[
    str | None,
    typer.Option(
        "--runtime",
        metavar="SPEC",
        help="The runtime the app ships, as a pip requirement (tflite-runtime==2.14.0, ai-edge-litert==1.4.0): "
        "installed on first use into its own venv under the cache folder and observed there "
        "(default: the installed ai-edge-litert).",
    ),
]
Warmup = Annotated[int, typer.Option("--warmup", min=0, help="Untimed runs first.")]
Data = Annotated[
    str | None,
    typer.Option(
        "--data", metavar="FILE", help=".npz with one array per input (first sample is used); default: seeded random."
    ),
]
MaxMemory = Annotated[
    str | None,
    typer.Option(
        "--max-memory",
        metavar="SIZE",
        help="Memory a model's run may take (8G, 512M; default: a quarter of the free memory). Larger "
        "models are refused before anything is allocated.",
    ),
]
Force = Annotated[
    bool,
    typer.Option("--force", help="Replace output files that exist (never an input, never a device, FIFO or socket)."),
]
CacheDir = Annotated[
    str | None,
    typer.Option(
        "--cache-dir",
        metavar="DIR",
        help="Where xnnfit keeps its caches: batch results and --runtime venvs (default: "
        f"${CACHE_ENV}, else the user cache folder).",
    ),
]

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    rich_markup_mode="rich",
    context_settings={"help_option_names": ["-h", "--help"]},
    help="Find out which parts of your model the XNNPACK CPU delegate refuses, why, and what to write instead.",
)


def _console(stderr: bool) -> Console:
    console = Console(stderr=stderr, highlight=False, soft_wrap=stderr)
    if not console.is_terminal:  # pipes and CI logs: do not wrap at 80 columns
        console = Console(stderr=stderr, highlight=False, width=160, soft_wrap=stderr)
    return console


out = _console(stderr=False)
err = _console(stderr=True)


class Interrupted(KeyboardInterrupt):
    """SIGTERM or SIGHUP, handled as Ctrl-C is: the run stops, children are killed, temporary files removed."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


_doing = {"what": "", "signum": 0}  # what the progress display shows now: an interrupt names it


def _on_stop_signal(signum: int, frame: object) -> None:
    """The first stop signal unwinds the run (children killed, files removed); a second one ends the process at once."""
    from xnnfit.core import isolate

    _doing["signum"] = signum
    for s in STOP_SIGNALS:
        signal.signal(s, _on_second_signal)
    isolate.stop_all()
    raise Interrupted(signum)


def _on_second_signal(signum: int, frame: object) -> None:
    from xnnfit.core import isolate

    isolate.stop_all()
    os._exit(128 + signum)


def _install_signal_handlers() -> None:
    for s in STOP_SIGNALS:
        with contextlib.suppress(
            ValueError, OSError
        ):  # not the main thread (an embedding app): leave its handlers alone
            signal.signal(s, _on_stop_signal)


@contextlib.contextmanager
def _errors(debug: bool) -> Iterator[None]:
    """Turn an XnnfitError into one line on stderr and exit 2; Ctrl-C into exit 130, SIGTERM 143, SIGHUP 129."""
    try:
        yield
    except XnnfitError as exc:
        terminal.render_error(err, str(exc), exc.detail if debug else None)
        raise typer.Exit(EXIT_USAGE) from None
    except KeyboardInterrupt as exc:
        from xnnfit.core import isolate

        isolate.stop_all()
        signum = exc.signum if isinstance(exc, Interrupted) else signal.SIGINT
        name = signal.Signals(signum).name
        what = f" while {_doing['what']}" if _doing["what"] else ""
        err.print(
            f"interrupted ({name}){what}: every child process was stopped and its temporary files "
            "removed; no output was written"
        )
        raise typer.Exit(128 + signum) from None


@contextlib.contextmanager
def _guarded(force: bool, inputs: Iterable[tuple[str, str | None]], outputs: Iterable[Output]) -> Iterator[None]:
    """The output policy for one command: its inputs never written, its outputs all checked before the work starts."""
    with run_scope((label, _input_path(path)) for label, path in inputs if path):
        check_outputs(outputs, force=force)
        yield


def _input_path(reference: str) -> str:
    """The file a model reference reads: file.py for file.py:function, the path itself otherwise."""
    return reference.rsplit(":", 1)[0] if ".py:" in reference else reference


def _models(references: Iterable[str]) -> list[tuple[str, str]]:
    return [("the input model", r) for r in references]


def _use_max_memory(max_memory: str | None) -> None:
    """--max-memory for this run and its children (footprint.limit reads it)."""
    if max_memory:
        from xnnfit.model.footprint import MEMORY_ENV, parse_size

        os.environ[MEMORY_ENV] = str(parse_size(max_memory))


def _use_cache_dir(cache_dir: str | None) -> None:
    """--cache-dir moves every cache (results, runtime venvs) for this run and its children."""
    if cache_dir:
        os.environ[CACHE_ENV] = os.path.abspath(cache_dir)


def _warn_threads(counts: Iterable[int]) -> None:
    cores = os.cpu_count() or 1
    over = sorted({n for n in counts if n > cores})
    if over:
        err.print(
            f"[yellow]warning[/]: --threads {','.join(map(str, over))} is more than this machine's "
            f"{cores} cores: the threads wait for "
            f"each other and the timings oversubscribe. Pass at most {cores}, or time on the target device."
        )


@contextlib.contextmanager
def _progress(quiet: bool, title: str, total: int | None = None) -> Iterator[Callable[[str], None]]:
    """A transient spinner (or a bar when `total` is known) on stderr naming the current step; nothing with --quiet."""
    if quiet:
        _doing["what"] = title

        def remember(step: str) -> None:
            _doing["what"] = f"{title}: {step}"

        yield remember
        return
    _doing["what"] = title
    if total is None:
        with err.status(title + "…", spinner="dots") as status:

            def update(step: str) -> None:
                _doing["what"] = f"{title}: {step}"
                status.update(f"{title}: {step}…")

            yield update
        return
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        TimeElapsedColumn(),
        console=err,
        transient=True,
    ) as bar:
        task = bar.add_task(title, total=total)

        def advance(step: str) -> None:
            _doing["what"] = f"{title}: {step}"
            bar.update(task, advance=1, description=f"{title}: {step}")

        yield advance


def _report_outputs(
    json_path: str | None, html: str | None = None, trace: str | None = None, explorer: str | None = None
) -> list[Output]:
    return [
        Output("--json", json_path),
        Output("--html", html),
        Output("--trace", trace),
        Output("--model-explorer", explorer),
    ]


def _write(
    result,
    json_path: str | None,
    html: str | None = None,
    trace: str | None = None,
    explorer: str | None = None,
    *,
    force: bool = False,
) -> None:
    """Every file output the user asked for, each written atomically under the output policy."""
    if json_path:
        terminal.render_written(err, write_json(result, json_path, force=force))
    if html:
        from xnnfit.report.html import write_html

        terminal.render_written(err, write_html(result, html, force=force))
    if trace:
        from xnnfit.report.trace import write_trace

        terminal.render_written(err, write_trace(result, trace, force=force))
    if explorer:
        from xnnfit.report.overlays import write_overlays

        for path in write_overlays(result, explorer, force=force):
            terminal.render_written(err, path)


def _shared(
    batch: int, input_shape: list[str] | None, calibration: str | None, trust_model: bool, timeout: float
) -> dict:
    return {
        "batch": batch,
        "input_shape": input_shape or [],
        "calibration": calibration,
        "trust_model": trust_model,
        "timeout": timeout,
    }


def _version(value: bool) -> None:
    if value:
        out.print(f"xnnfit {__version__}")
        raise typer.Exit()


@app.callback()
def main_options(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = False,
) -> None:
    """xnnfit: runtime-true XNNPACK delegation diagnosis for Keras and TFLite models."""


@app.command(
    epilog="""[bold]Examples[/]\n
  xnnfit optimize model.keras -o model_best.tflite\n
  xnnfit optimize model.keras -o best.tflite --calibration calib.npz --eval eval.npz --max-error 0.02\n
  xnnfit optimize model.keras -o best.tflite --threads 4 --keep-all candidates/ --json optimize.json"""
)
def optimize(
    model: Model,
    output: Annotated[
        str | None,
        typer.Option("-o", "--output", metavar="OUT", help="Where to write the chosen .tflite (never the input)."),
    ] = None,
    recipe: Annotated[
        list[str] | None,
        typer.Option(
            "--recipe", "--recipes", "-r", metavar="R", help="Recipes to try (default: all, mixed ones included)."
        ),
    ] = None,
    keep_all: Annotated[
        str | None, typer.Option("--keep-all", metavar="DIR", help="Also write every candidate to DIR.")
    ] = None,
    force: Annotated[
        bool,
        typer.Option(
            "--force",
            help="Replace OUT, --json/--html and files in --keep-all if they exist (never an input, never a device).",
        ),
    ] = False,
    calibration: Calibration = None,
    eval_data: Annotated[
        str | None,
        typer.Option(
            "--eval", metavar="FILE", help=".npz of evaluation inputs (else the calibration data, else random)."
        ),
    ] = None,
    max_error: Annotated[
        float,
        typer.Option("--max-error", min=0.0, help="Accuracy budget: max abs error / max |fp32 output| (default 5%)."),
    ] = DEFAULT_MAX_ERROR,
    threads: Annotated[
        int, typer.Option("--threads", min=1, help="Thread count the candidates are raced at (the app's).")
    ] = 1,
    runs: Annotated[int, typer.Option("--runs", min=3, help="Timed runs per comparison (interleaved).")] = BENCH_RUNS,
    batch: Batch = 1,
    input_shape: InputShape = None,
    trust_model: Trust = False,
    json_path: Json = None,
    html: Html = None,
    timeout: Timeout = DEFAULT_TIMEOUT,
    max_memory: MaxMemory = None,
    quiet: Quiet = False,
    debug: Debug = False,
) -> None:
    """The main job: convert with every recipe, fix each, race them, write the fastest model within the error budget."""
    from xnnfit.model.recipes import DEFAULT, parse_recipes, with_reference

    with _errors(debug):
        _use_max_memory(max_memory)
        if output is None and keep_all is None:
            raise XnnfitError("no output path. Pass -o BEST.tflite (and/or --keep-all DIR).")
        chosen = parse_recipes(recipe, default=DEFAULT)
        _warn_threads([threads])
        inputs = [*_models([model]), ("the --calibration file", calibration), ("the --eval file", eval_data)]
        from pathlib import Path

        from xnnfit.model.artifact import AS_GIVEN

        stem = Path(_input_path(model)).stem
        recipes = (
            [AS_GIVEN]
            if model.endswith((".tflite", ".lite"))
            else [r.name for r in with_reference(chosen)]
        )
        kept = tuple(f"{stem}.{r}{fixed}.tflite" for r in recipes for fixed in ("", ".fixed"))
        outputs = [
            Output("-o", output),
            Output("--keep-all", keep_all, folder=True, names=kept),
            *_report_outputs(json_path, html),
        ]
        with _guarded(force, inputs, outputs):
            steps = 2 * len(with_reference(chosen)) + 1  # convert and fix each recipe, then one race
            with _progress(quiet, f"optimizing {model}", steps) as step:
                result = api.optimize(
                    model,
                    output,
                    recipe=chosen,
                    keep_all=keep_all,
                    force=force,
                    eval_data=eval_data,
                    max_error=max_error,
                    threads=threads,
                    runs=runs,
                    on_progress=step,
                    **_shared(batch, input_shape, calibration, trust_model, timeout),
                )
            terminal.render_optimize(out, result)
            _write(result, json_path, html, force=force)


@app.command(
    epilog="""[bold]Examples[/]\n
  xnnfit check model.keras\n
  xnnfit check model.tflite --json report.json\n
  xnnfit check melspectrogram.tflite --input-shape input=1,16000\n
  xnnfit check examples/where_cnn.py:build --recipe fp32,int8 --calibration data.npz\n
  xnnfit check model.keras --fail-on-fallback            [dim]# CI gate: exit 1 on any CPU node[/]\n
  xnnfit check model.keras --max-partitions 3 --min-delegated 0.95\n
  xnnfit check model.tflite --predict                     [dim]# verdicts from the knowledge base, no interpreter[/]\n
  xnnfit check model.tflite --runtime tflite-runtime==2.14.0   [dim]# what the runtime your app ships does[/]\n
  xnnfit check model.tflite --runtime all                 [dim]# model x runtime: 2.14, 1.0.1, 1.4.0, 2.3.0[/]\n
  xnnfit check models/ --jobs 2 --junit x.xml --sarif x.sarif   [dim]# a batch: every model in the folder[/]\n
  xnnfit check --manifest zoo.toml --baseline base.json --markdown mr.md\n
  xnnfit check 'models/**/*.tflite' --write-baseline base.json --backend ray"""
)
def check(
    models: Annotated[
        list[str] | None,
        typer.Argument(metavar="MODEL...", help=MODEL_HELP + "; folders (every model inside) and globs for a batch"),
    ] = None,
    recipe: Recipe = None,
    batch: Batch = 1,
    dynamic_batch: DynamicBatch = False,
    input_shape: InputShape = None,
    calibration: Calibration = None,
    trust_model: Trust = False,
    json_path: Json = None,
    html: Html = None,
    explorer: Explorer = None,
    fail_on_fallback: Annotated[
        bool, typer.Option("--fail-on-fallback", help="Exit 1 if any node runs on CPU kernels.")
    ] = False,
    max_partitions: Annotated[
        int | None, typer.Option("--max-partitions", min=1, help="Exit 1 if the graph is cut into more partitions.")
    ] = None,
    min_delegated: Annotated[
        float | None,
        typer.Option("--min-delegated", min=0.0, max=1.0, help="Exit 1 if a smaller share of nodes runs on XNNPACK."),
    ] = None,
    timeout: Timeout = DEFAULT_TIMEOUT,
    max_memory: MaxMemory = None,
    all_nodes: Annotated[bool, typer.Option("--all-nodes", help="Also list every node with its verdict.")] = False,
    profile: Annotated[
        bool, typer.Option("--profile", help="Also time every partition and CPU node (see `xnnfit profile`).")
    ] = False,
    runs: Annotated[
        int | None,
        typer.Option("--runs", min=1, help=f"Timed runs per piece with --profile (default {PROFILE_RUNS})."),
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
            help="Verdicts from the knowledge base, without building an interpreter (automatic when the "
            "runtime cannot load the model).",
        ),
    ] = False,
    runtime: Annotated[
        str | None,
        typer.Option(
            "--runtime",
            metavar="SPEC",
            help="The runtime(s) the app ships: a pip requirement (tflite-runtime==2.14.0), several "
            "comma-separated, or 'all' for the matrix; each installed on first use into its own venv "
            "under the cache folder.",
        ),
    ] = None,
    manifest: Annotated[
        str | None,
        typer.Option(
            "--manifest", metavar="FILE", help="TOML: per model its recipes, input shapes, calibration and budgets."
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
        str | None, typer.Option("--sarif", metavar="FILE", help="SARIF 2.1.0 for code-scanning UIs.")
    ] = None,
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
            help="Where batch jobs run: local child processes, or Ray tasks (extra xnnfit[ray]).",
        ),
    ] = "local",
    ray_address: Annotated[
        str | None,
        typer.Option("--ray-address", metavar="ADDR", help="An existing Ray cluster (default: start a local one)."),
    ] = None,
    quiet: Quiet = False,
    debug: Debug = False,
) -> None:
    """Convert MODEL, ask the LiteRT runtime which nodes XNNPACK took, and explain every fallback."""
    gates = Gates(fail_on_fallback, max_partitions, min_delegated)
    gate_failed = any_error = False
    with _errors(debug):
        _use_max_memory(max_memory)
        from xnnfit.batch import jobs as batches

        _use_cache_dir(cache_dir)
        if not profile:
            for flag, value in (("--data", data), ("--runs", runs)):
                if value is not None:
                    raise XnnfitError(
                        f"{flag} is used only when timing: check without --profile runs no data and times "
                        f"nothing. Add --profile, or drop {flag}."
                    )
        names = batches.expand(models or []) if models else []
        if not names and not manifest:
            raise XnnfitError("no model. Pass MODEL..., a folder or glob, or --manifest FILE.")
        batch_mode = (
            bool(
                manifest
                or jobs
                or junit
                or sarif
                or markdown
                or baseline
                or write_baseline
                or bench
                or backend != "local"
            )
            or len(names) != len(models or [])
            or len(names) > 1
        )
        if runtime:
            from xnnfit.runtime import targets as runtime_targets

            if batch_mode and len(runtime_targets.parse_many(runtime)) > 1:
                raise XnnfitError(
                    f"a batch is checked on one runtime, got --runtime {runtime!r}. Pass one SPEC, or check "
                    "one model with --runtime all."
                )
        if batch_mode:
            for flag, value in (("--html", html), ("--model-explorer", explorer), ("--profile", profile)):
                if value:
                    raise XnnfitError(f"{flag} takes one model, got a batch. Run xnnfit check once per model for it.")
            code = _check_batch(
                names,
                manifest,
                recipe,
                gates,
                jobs,
                _shared(batch, input_shape, calibration, trust_model, timeout)
                | {"dynamic_batch": dynamic_batch, "predict": predict}
                | ({"runtime": runtime} if runtime else {}),
                json_path,
                junit,
                sarif,
                markdown,
                baseline,
                write_baseline,
                None if no_cache else cache_dir or "",
                details,
                quiet,
                debug,
                backend,
                ray_address,
                BENCH_RUNS if bench else 0,
                force,
            )
            if code:
                raise typer.Exit(code)
            return
        inputs = [*_models(names), ("the --calibration file", calibration), ("the --data file", data)]
        guard = _guarded(force, inputs, _report_outputs(json_path, html, None, explorer))
        with guard:
            model = names[0]
            options = {
                **_shared(batch, input_shape, calibration, trust_model, timeout),
                "recipe": recipe,
                "dynamic_batch": dynamic_batch,
            }
            with _progress(quiet, f"checking {model}") as step:
                if profile:
                    result = api.profile(
                        model, runs=runs or PROFILE_RUNS, data=data, on_progress=step, runtime=runtime, **options
                    )
                else:
                    result = api.check(model, on_progress=step, predict=predict, runtime=runtime, **options)
            terminal.render_check(out, result, all_nodes=all_nodes, details=details)
            _write(result, json_path, html, explorer=explorer, force=force)
            any_error |= bool(terminal.render_errors(err, result.recipes, debug=debug))
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


def _check_batch(
    names,
    manifest,
    recipe,
    gates,
    jobs,
    options,
    json_path,
    junit,
    sarif,
    markdown,
    baseline,
    write_baseline,
    cache_dir,
    details,
    quiet,
    debug,
    backend="local",
    ray_address=None,
    bench_runs=0,
    force=False,
) -> int:
    """A batch: every (model, recipe) in parallel, one progress bar, summary worst first, CI files; the exit code."""
    from xnnfit.batch import jobs as batches
    from xnnfit.batch.baseline import compare, load_rows
    from xnnfit.batch.cache import ResultCache, default_dir
    from xnnfit.model.recipes import parse_recipes
    from xnnfit.report import ci

    recipes = tuple(r.name for r in parse_recipes(recipe)) if recipe else ("fp32",)
    specs = batches.read_manifest(manifest) if manifest else []
    specs += [batches.ModelSpec(n, recipes, (), None, gates) for n in names]
    inputs = [
        *_models(s.path for s in specs),
        ("the --manifest file", manifest),
        ("the --baseline file", baseline),
        *(("a --calibration file", s.calibration) for s in specs),
        ("the --calibration file", options.get("calibration")),
    ]
    outputs = [
        Output("--json", json_path),
        Output("--write-baseline", write_baseline),
        Output("--junit", junit),
        Output("--sarif", sarif),
        Output("--markdown", markdown),
    ]
    with _guarded(force, inputs, outputs):
        cache = (
            ResultCache(default_dir()) if cache_dir is not None else None
        )  # default_dir follows --cache-dir (_use_cache_dir)
        previous = load_rows(baseline) if baseline else None  # read first: a bad baseline fails before the work
        total = sum(len(s.recipes) for s in specs)
        with _progress(quiet, f"checking {len(specs)} model(s)", total) as step:
            result = batches.run_batch(
                specs,
                jobs=jobs,
                cache=cache,
                options=options,
                backend=backend,
                ray_address=ray_address,
                bench_runs=bench_runs,
                on_progress=lambda d, t, f, last: step(f"{last}, {f} failed" if f else last),
            )
        if details:
            for m in result.models:
                terminal.render_check(out, m)
        terminal.render_batch(out, result)
        diff = compare(result, previous) if previous is not None else None
        if diff is not None:
            terminal.render_baseline(out, diff)
        if json_path:
            terminal.render_written(err, write_json(result, json_path, force=force))
        if write_baseline:
            terminal.render_written(err, write_json(result, write_baseline, force=force, flag="--write-baseline"))
        if junit:
            terminal.render_written(err, ci.write(junit, ci.junit(result), force=force, flag="--junit"))
        if sarif:
            terminal.render_written(err, ci.write_sarif(result, sarif, force=force))
        if markdown:
            regressions = [f"{c.model} ({c.recipe}): {c.what}" for c in diff.regressions] if diff else None
            terminal.render_written(
                err, ci.write(markdown, ci.markdown(result, regressions), force=force, flag="--markdown")
            )
    for r in result.rows:
        if r.status == "error":
            terminal.render_error(err, f"{r.model} ({r.recipe}): {r.failures[0] if r.failures else 'failed'}")
    if result.incomplete:
        name = signal.Signals(_doing["signum"] or signal.SIGINT).name
        err.print(
            f"interrupted ({name}): the results above are the jobs that finished (marked incomplete "
            "in the files); the next run resumes from the cache"
        )
        return 128 + (_doing["signum"] or signal.SIGINT)
    if any(r.status == "error" for r in result.rows):
        return EXIT_USAGE
    if any(r.status == "gate" for r in result.rows) or (diff is not None and diff.regressions):
        return EXIT_GATE
    return 0


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
def bench(
    models: Annotated[list[str], typer.Argument(metavar="MODEL...", help=MODEL_HELP)],
    recipe: Recipe = None,
    threads: Threads = "1",
    runs: Runs = BENCH_RUNS,
    warmup: Warmup = BENCH_WARMUP,
    data: Data = None,
    compare: Annotated[
        bool,
        typer.Option("--compare", help="Race every model and recipe against each other (implied by several models)."),
    ] = False,
    runtime: RuntimeOpt = None,
    api_name: Annotated[
        str,
        typer.Option(
            "--api",
            metavar="interpreter|compiled",
            help="Also time LiteRT 2's CompiledModel (CpuOptions: threads, XNNPACK weight cache) next to "
            "the Interpreter.",
        ),
    ] = "interpreter",
    batch: Batch = 1,
    dynamic_batch: DynamicBatch = False,
    input_shape: InputShape = None,
    calibration: Calibration = None,
    trust_model: Trust = False,
    json_path: Json = None,
    force: Force = False,
    cache_dir: CacheDir = None,
    timeout: Timeout = DEFAULT_TIMEOUT,
    max_memory: MaxMemory = None,
    quiet: Quiet = False,
    debug: Debug = False,
) -> None:
    """Whole-model latency with XNNPACK and with the built-in kernels only, and memory; or several models raced."""
    failed = 0
    with (
        _errors(debug),
        _guarded(
            force,
            [*_models(models), ("the --data file", data), ("the --calibration file", calibration)],
            _report_outputs(json_path),
        ),
    ):
        _use_max_memory(max_memory)
        from xnnfit.measure.bench import parse_threads

        _use_cache_dir(cache_dir)
        _warn_threads(parse_threads(threads))
        shared = {
            **_shared(batch, input_shape, calibration, trust_model, timeout),
            "recipe": recipe,
            "threads": threads,
            "runs": runs,
            "warmup": warmup,
            "data": data,
            "dynamic_batch": dynamic_batch,
        }
        if compare or len(models) > 1:
            if runtime or api_name != "interpreter":
                raise XnnfitError(
                    "--runtime and --api time one model. Race models on the installed runtime, or bench each "
                    "one with --runtime."
                )
            with _progress(quiet, "racing the models") as step:
                result = api.compare(*models, on_progress=step, **shared)
            terminal.render_compare(out, result)
        else:
            with _progress(quiet, f"benchmarking {models[0]}") as step:
                result = api.bench(models[0], on_progress=step, runtime=runtime, api=api_name, **shared)
            terminal.render_bench(out, result)
            failed = terminal.render_errors(err, result.recipes, debug=debug)
        _write(result, json_path, force=force)
    if failed:
        raise typer.Exit(EXIT_USAGE)


@app.command(
    epilog="""[bold]Examples[/]\n
  xnnfit profile examples/where_cnn.py:build --recipe int8\n
  xnnfit profile model.tflite --runs 50 --json profile.json\n
  xnnfit profile model.tflite --html r.html --trace t.json --model-explorer me.json\n
  xnnfit profile model.tflite --runtime ai-edge-litert==1.4.0   [dim]# where the time goes on the app's runtime[/]"""
)
def profile(
    model: Model,
    recipe: Recipe = None,
    threads: Annotated[
        str, typer.Option("--threads", metavar="N,..", help="Thread count for timing (one value).")
    ] = "1",
    runs: Runs = PROFILE_RUNS,
    data: Data = None,
    batch: Batch = 1,
    dynamic_batch: DynamicBatch = False,
    input_shape: InputShape = None,
    calibration: Calibration = None,
    trust_model: Trust = False,
    json_path: Json = None,
    html: Html = None,
    trace: Trace = None,
    explorer: Explorer = None,
    runtime: RuntimeOpt = None,
    force: Force = False,
    cache_dir: CacheDir = None,
    timeout: Timeout = DEFAULT_TIMEOUT,
    max_memory: MaxMemory = None,
    quiet: Quiet = False,
    debug: Debug = False,
) -> None:
    """Time per partition, per CPU node and per Keras layer: which fallback to fix first."""
    inputs = [*_models([model]), ("the --data file", data), ("the --calibration file", calibration)]
    with _errors(debug), _guarded(force, inputs, _report_outputs(json_path, html, trace, explorer)):
        _use_max_memory(max_memory)
        from xnnfit.measure.bench import parse_threads

        _use_cache_dir(cache_dir)
        _warn_threads(parse_threads(threads))
        with _progress(quiet, f"profiling {model}") as step:
            result = api.profile(
                model,
                recipe=recipe,
                threads=threads,
                runs=runs,
                data=data,
                dynamic_batch=dynamic_batch,
                on_progress=step,
                runtime=runtime,
                **_shared(batch, input_shape, calibration, trust_model, timeout),
            )
        terminal.render_profile_result(out, result)
        _write(result, json_path, html, trace, explorer, force=force)
        failed = terminal.render_errors(err, result.recipes, debug=debug)
    if failed:
        raise typer.Exit(EXIT_USAGE)


@app.command(
    epilog="""[bold]Examples[/]\n
  xnnfit fix model.tflite -o model_fixed.tflite\n
  xnnfit fix examples/where_cnn.py:build --recipe int8 -o cnn_int8_fixed.tflite\n
  xnnfit fix model.tflite --dry-run --rules XR001,XR003\n
  xnnfit fix model.tflite -o fixed.tflite --input-shape tokens=1,128 --json fix.json\n
  xnnfit fix model.tflite -o fixed.tflite --html fix.html --trace fix.trace.json   [dim]# before/after, drawn[/]\n
  xnnfit fix models/ -o fixed/                       [dim]# each model of a folder into fixed/[/]"""
)
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
    recipe: Annotated[
        str,
        typer.Option(
            "--recipe",
            "-r",
            metavar="R",
            help="Recipe for Keras sources (one); quantized fixes are judged against the fp32 model.",
        ),
    ] = "fp32",
    rules: Annotated[
        str | None, typer.Option("--rules", metavar="XR0xx,..", help="Only these rules, e.g. XR001,XR003.")
    ] = None,
    exclude: Annotated[str | None, typer.Option("--exclude", metavar="XR0xx,..", help="Skip these rules.")] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Show which rules match; apply, verify and write nothing.")
    ] = False,
    force: Annotated[
        bool,
        typer.Option(
            "--force", help="Replace OUT and the report files if they exist (never the input, never a device)."
        ),
    ] = False,
    force_write: Annotated[
        bool, typer.Option("--force-write", help="Write OUT even when no rewrite was kept (an unchanged copy).")
    ] = False,
    runs: Annotated[int, typer.Option("--runs", min=3, help="Timed runs per latency comparison.")] = BENCH_RUNS,
    batch: Batch = 1,
    dynamic_batch: DynamicBatch = False,
    input_shape: InputShape = None,
    calibration: Calibration = None,
    trust_model: Trust = False,
    json_path: Json = None,
    html: Html = None,
    trace: Trace = None,
    explorer: Explorer = None,
    timeout: Timeout = DEFAULT_TIMEOUT,
    max_memory: MaxMemory = None,
    quiet: Quiet = False,
    debug: Debug = False,
) -> None:
    """Rewrite the graph so XNNPACK runs it whole; keep only fixes proven equal and not slower."""
    with _errors(debug):
        _use_max_memory(max_memory)
        if output is None and not dry_run:
            raise XnnfitError("no output path. Pass -o OUT.tflite, or --dry-run to only see which rules match.")
        from xnnfit.batch import jobs as batches

        names = batches.expand([model])
        inputs = [*_models(names), ("the --calibration file", calibration)]
        if names != [model]:  # a folder or glob: each model into -o DIR
            if html or trace or explorer:
                raise XnnfitError(
                    "--html, --trace and --model-explorer take one model. Fix the models one by one for them."
                )
            with _guarded(force, inputs, []):
                code = _fix_many(
                    names,
                    output,
                    recipe,
                    rules,
                    exclude,
                    dry_run,
                    force,
                    force_write,
                    runs,
                    dynamic_batch,
                    json_path,
                    quiet,
                    _shared(batch, input_shape, calibration, trust_model, timeout),
                )
            if code:
                raise typer.Exit(code)
            return
        with _guarded(
            force,
            inputs,
            [Output("-o", None if dry_run else output), *_report_outputs(json_path, html, trace, explorer)],
        ):
            with _progress(quiet, f"fixing {model}") as step:
                result = api.fix(
                    model,
                    output,
                    recipe=recipe,
                    rules=rules,
                    exclude=exclude,
                    dry_run=dry_run,
                    force=force,
                    force_write=force_write,
                    runs=runs,
                    dynamic_batch=dynamic_batch,
                    sides=bool(html or trace or explorer) and not dry_run,
                    on_progress=step,
                    **_shared(batch, input_shape, calibration, trust_model, timeout),
                )
            terminal.render_fix(out, result)
            _write(
                result,
                json_path,
                html,
                trace if result.sides else None,
                explorer if result.sides else None,
                force=force,
            )


def _fix_many(
    names, output, recipe, rules, exclude, dry_run, force, force_write, runs, dynamic_batch, json_path, quiet, shared
) -> int:
    """Fix every model of a folder or glob into -o DIR, one after another.

    Not in parallel: fix races latencies, and parallel runs would skew them.
    """
    from pathlib import Path

    from rich.table import Table

    folder = Path(output) if output and not dry_run else None
    stems = [Path(n.rsplit(":", 1)[0] if ".py:" in n else n).stem for n in names]
    dupes = sorted({s for s in stems if stems.count(s) > 1})
    if dupes:
        raise XnnfitError(
            f"several models are named {', '.join(dupes)}: their fixed files would collide in "
            f"{output}. Fix those folders separately."
        )
    check_outputs(
        [
            Output("-o", folder, folder=True, names=tuple(f"{stem}_fixed.tflite" for stem in stems)),
            Output("--json", json_path),
        ],
        force=force,
    )
    made = folder is not None and not folder.exists()
    if folder is not None:
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            from xnnfit.core.files import os_error

            raise os_error(folder, exc, "create the folder") from exc
    table = Table(box=None, header_style="bold")
    for col in ("model", "kept", "CPU nodes", "partitions", "written"):
        table.add_column(col)
    docs, errors = [], 0
    with _progress(quiet, f"fixing {len(names)} model(s)", len(names)) as step:
        for name, stem in zip(names, stems):
            target = folder / f"{stem}_fixed.tflite" if folder is not None else None
            try:
                r = api.fix(
                    name,
                    target,
                    recipe=recipe,
                    rules=rules,
                    exclude=exclude,
                    dry_run=dry_run,
                    force=force,
                    force_write=force_write,
                    runs=runs,
                    dynamic_batch=dynamic_batch,
                    **shared,
                )
            except XnnfitError as exc:
                errors += 1
                terminal.render_error(err, f"{name}: {exc}")
                table.add_row(name, "[red]error[/]", "", "", "")
                step(name)
                continue
            b, a = r.rewrite.before, r.rewrite.after
            kept = ", ".join(f"{o.rule}×{o.count}" for o in r.rewrite.applied) or "none"
            table.add_row(
                name,
                kept,
                f"{b.cpu_nodes} -> {a.cpu_nodes}" if b and a else "",
                f"{b.partitions} -> {a.partitions}" if b and a else "",
                r.output or "-",
            )
            docs.append(r.to_dict())
            step(name)
    out.print(table)
    if made and folder is not None and not any(folder.iterdir()):
        folder.rmdir()  # nothing was fixed: leave no empty folder behind
    if json_path:
        from xnnfit.core.record import SCHEMA_VERSION

        doc = {
            "schema_version": SCHEMA_VERSION,
            "result": "fix-batch",
            "versions": docs[0]["versions"] if docs else {},
            "models": docs,
        }
        terminal.render_written(err, write_json(doc, json_path, force=force))
    return EXIT_USAGE if errors else 0


@app.command(
    epilog="""[bold]Examples[/]\n
  xnnfit quant model.keras --calibration calib.npz --eval eval.npz\n
  xnnfit quant examples/transformer_block.py:build --recipe fp32,int8,int8+float-ops\n
  xnnfit quant model.keras --max-error 0.02 -o converted/ --json quant.json"""
)
def quant(
    model: Annotated[
        str,
        typer.Argument(metavar="MODEL", help=".keras, .h5, SavedModel dir, or path/to/file.py:function (not .tflite)"),
    ],
    recipe: Annotated[
        list[str] | None,
        typer.Option(
            "--recipe",
            "--recipes",
            "-r",
            metavar="R",
            help="Recipes to try, comma-separated or repeated (default: all, mixed ones included).",
        ),
    ] = None,
    calibration: Calibration = None,
    eval_data: Annotated[
        str | None,
        typer.Option(
            "--eval", metavar="FILE", help=".npz of evaluation inputs (else the calibration data, else random)."
        ),
    ] = None,
    max_error: Annotated[
        float,
        typer.Option("--max-error", min=0.0, help="Accuracy budget: max abs error / max |float output| (default 5%)."),
    ] = DEFAULT_MAX_ERROR,
    runs: Annotated[int, typer.Option("--runs", min=3, help="Timed runs per recipe (interleaved).")] = BENCH_RUNS,
    output_dir: Annotated[
        str | None, typer.Option("-o", "--output-dir", metavar="DIR", help="Write each converted model to DIR.")
    ] = None,
    batch: Batch = 1,
    input_shape: InputShape = None,
    trust_model: Trust = False,
    json_path: Json = None,
    html: Html = None,
    force: Annotated[
        bool,
        typer.Option(
            "--force",
            help="Replace the files in -o DIR and the report files if they exist (never an input, never a device).",
        ),
    ] = False,
    timeout: Timeout = DEFAULT_TIMEOUT,
    max_memory: MaxMemory = None,
    quiet: Quiet = False,
    debug: Debug = False,
) -> None:
    """Convert with every recipe and pick one: size, delegation, latency, CPU time, accuracy."""
    from pathlib import Path

    from xnnfit.model.recipes import DEFAULT, parse_recipes, with_reference

    with _errors(debug):
        _use_max_memory(max_memory)
        chosen = parse_recipes(recipe, default=DEFAULT)
        stem = Path(_input_path(model)).stem
        names = tuple(f"{stem}.{r.name}.tflite" for r in with_reference(chosen))
        inputs = [*_models([model]), ("the --calibration file", calibration), ("the --eval file", eval_data)]
        with _guarded(
            force, inputs, [Output("-o", output_dir, folder=True, names=names), *_report_outputs(json_path, html)]
        ):
            steps = 2 * len(with_reference(chosen)) + 1  # convert and measure each recipe, then one race
            with _progress(quiet, f"quantization sweep of {model}", steps) as step:
                result = api.quant(
                    model,
                    recipe=chosen,
                    eval_data=eval_data,
                    max_error=max_error,
                    runs=runs,
                    output_dir=output_dir,
                    force=force,
                    on_progress=step,
                    **_shared(batch, input_shape, calibration, trust_model, timeout),
                )
            terminal.render_quant(out, result)
            _write(result, json_path, html, force=force)


@app.command(
    epilog="[bold]Examples[/]\n\n  xnnfit explain            [dim]# list every cause[/]\n\n  xnnfit explain XNN001"
)
def explain(
    cause_id: Annotated[str | None, typer.Argument(metavar="[XNN0xx]", help="A cause id from a check report.")] = None,
    json_path: Json = None,
    force: Force = False,
) -> None:
    """Explain a cause: what it is, why XNNPACK refuses it, and what to write instead."""
    with _errors(False), _guarded(force, [], _report_outputs(json_path)):
        result = api.explain(cause_id)
        terminal.render_explanation(out, result, table=cause_id is None)
        _write(result, json_path, force=force)


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

    with _errors(debug):
        if not (html or trace or explorer):
            raise XnnfitError("nothing to write. Pass --html FILE, --trace FILE and/or --model-explorer FILE.")
        with _guarded(force, [("the result file", result_json)], _report_outputs(None, html, trace, explorer)):
            _write(load_result(result_json), None, html, trace, explorer, force=force)


@app.command(
    epilog="""[bold]Examples[/]\n
  xnnfit explore model.tflite                [dim]# opens Model Explorer with the delegation and latency overlays[/]\n
  xnnfit explore examples/where_cnn.py:build --recipe int8 --no-open"""
)
def explore(
    model: Model,
    recipe: Annotated[
        str, typer.Option("--recipe", "-r", metavar="R", help="Recipe for Keras sources (one).")
    ] = "fp32",
    port: Annotated[
        int, typer.Option("--port", min=1, max=65535, help="Port for Model Explorer's local server.")
    ] = 8080,
    no_open: Annotated[bool, typer.Option("--no-open", help="Print the URL instead of opening a browser.")] = False,
    batch: Batch = 1,
    input_shape: InputShape = None,
    calibration: Calibration = None,
    trust_model: Trust = False,
    timeout: Timeout = DEFAULT_TIMEOUT,
    max_memory: MaxMemory = None,
    quiet: Quiet = False,
    debug: Debug = False,
) -> None:
    """Open Model Explorer (optional extra xnnfit[explorer]) on MODEL with xnnfit's delegation and latency overlays."""
    from xnnfit.report.model_explorer import explore as run_explore

    with _errors(debug):
        _use_max_memory(max_memory)
        run_explore(
            model,
            recipe=recipe,
            port=port,
            open_browser=not no_open,
            quiet=quiet,
            err=err,
            **_shared(batch, input_shape, calibration, trust_model, timeout),
        )


def main() -> None:
    """Console-script entry point: usage errors exit 2 (typer's default); SIGTERM and SIGHUP stop a run like Ctrl-C."""
    _install_signal_handlers()
    try:
        app()
    except XnnfitError as exc:  # pragma: no cover - commands catch their own
        terminal.render_error(err, str(exc))
        sys.exit(EXIT_USAGE)
    except SystemExit as exc:
        if _doing["signum"] and exc.code not in (128 + _doing["signum"],):  # click turned a late signal into "Aborted!"
            sys.exit(128 + _doing["signum"])
        raise
    except KeyboardInterrupt as exc:  # a signal outside any command (while starting up)
        signum = exc.signum if isinstance(exc, Interrupted) else signal.SIGINT
        sys.exit(128 + signum)


if __name__ == "__main__":
    main()
