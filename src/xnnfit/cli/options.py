"""Every command-line option, declared once; the options every model command shares come in one `RunOptions`.

A command lists only its own options. `@run_options` adds the shared ones to its
signature (so `--help` shows them and typer parses them) and hands them to the command
as one `RunOptions`.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
from collections.abc import Callable
from typing import Annotated, Any

import typer

from xnnfit.core.files import CACHE_ENV
from xnnfit.core.policy import DEFAULT_POLICY, DEFAULT_TIMEOUT
from xnnfit.model.recipes import ALL
from xnnfit.runtime.targets import MATRIX

MODEL_HELP = ".keras, .h5, SavedModel dir, .tflite, or path/to/file.py:function"


def _file(flag: str, help_text: str, metavar: str = "FILE") -> Any:
    """An optional path option: `flag FILE`, None when not given."""
    return Annotated[str | None, typer.Option(flag, metavar=metavar, help=help_text)]


RECIPE_NAMES = ", ".join(ALL)

# --- the model and how it is converted ----------------------------------------------------
Model = Annotated[str, typer.Argument(metavar="MODEL", help=MODEL_HELP)]
Recipes = Annotated[
    list[str] | None,
    typer.Option(
        "--recipe",
        "--recipes",
        "-r",
        metavar="R",
        help=f"{RECIPE_NAMES} (comma-separated or repeated; 'all'). Ignored for a .tflite.",
    ),
]
AllRecipes = Annotated[
    list[str] | None,
    typer.Option(
        "--recipe",
        "--recipes",
        "-r",
        metavar="R",
        help="Recipes to try, comma-separated or repeated (default: all, mixed ones included).",
    ),
]
OneRecipe = Annotated[
    str,
    typer.Option(
        "--recipe",
        "-r",
        metavar="R",
        help="Recipe for Keras sources (one); quantized fixes are judged against the fp32 model.",
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
InputRange = Annotated[
    list[str] | None,
    typer.Option(
        "--input-range",
        metavar="[NAME=]LOW,HIGH",
        help="Values random inputs are drawn from when no data is given: LOW,HIGH for every float input, "
        "NAME=LOW,HIGH for one (repeatable; a negative LOW as --input-range=-1,1). Default: what the model says "
        "(a Rescaling/Normalization layer, the input's quantization), else -1,1.",
    ),
]
Calibration = _file(
    "--calibration", ".npz of representative inputs for int8/int16x8 (one array per input, samples on axis 0)."
)
Trust = Annotated[
    bool, typer.Option("--trust-model", help="Allow loading .keras/.h5 files that run code (Lambda layers).")
]
Timeout = Annotated[
    float, typer.Option("--timeout", min=1.0, help="Seconds allowed per conversion or run before it is stopped.")
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
Quiet = Annotated[bool, typer.Option("--quiet", "-q", help="No progress display.")]
Debug = Annotated[bool, typer.Option("--debug", help="Show the converter/runtime log and tracebacks on errors.")]

# --- data, timing, runtimes -----------------------------------------------------------------
Data = _file("--data", ".npz with one array per input (first sample is used); default: seeded random.")
FixData = _file(
    "--data",
    ".npz with one array per input, samples on axis 0 (a 'labels' key is ignored): every rewrite is verified on "
    "all of them. Default: seeded random inputs in each input's range (see --input-range).",
)
EvalData = _file(
    "--eval", ".npz of evaluation inputs, used whole, with an optional 'labels' array (else the calibration data)."
)
Labels = _file("--labels", "Labels for the --eval inputs (.npy, or .npz with 'labels'): class ids or float targets.")
EvalSamples = Annotated[
    int | None, typer.Option("--eval-samples", min=1, metavar="N", help="Use only the first N eval samples.")
]
MaxError = Annotated[
    float | None,
    typer.Option(
        "--max-error",
        min=0.0,
        help="Accuracy budget: max abs error / max |fp32 output| (default 5% when there are no class labels).",
    ),
]
MaxAccuracyDrop = Annotated[
    float | None,
    typer.Option(
        "--max-accuracy-drop",
        min=0.0,
        metavar="POINTS",
        help="Accuracy budget with class labels: top-1 points below the fp32 conversion's (default 1).",
    ),
]
ExplainQuant = Annotated[
    bool,
    typer.Option(
        "--explain-quant",
        help="Explain every full-int8 candidate's error (where it starts, the Keras layer, the cause), "
        "not only those over the budget.",
    ),
]
Threads = Annotated[str, typer.Option("--threads", metavar="N,..", help="Thread counts, comma-separated (e.g. 1,2,4).")]
OneThread = Annotated[int, typer.Option("--threads", min=1, help="The thread count timings are taken at (the app's).")]
Runs = Annotated[int, typer.Option("--runs", min=1, help="Timed runs per measurement (interleaved).")]
ComparisonRuns = Annotated[
    int,
    typer.Option(
        "--runs",
        min=DEFAULT_POLICY.min_runs,
        help=f"Timed runs per latency comparison (interleaved; at least {DEFAULT_POLICY.min_runs}).",
    ),
]
Warmup = Annotated[int, typer.Option("--warmup", min=0, help="Untimed runs first.")]
Runtime = Annotated[
    str | None,
    typer.Option(
        "--runtime",
        metavar="SPEC",
        help="The runtime the app ships, as a pip requirement (tflite-runtime==2.14.0, ai-edge-litert==1.4.0): "
        "installed on first use into its own venv under the cache folder and observed there "
        "(default: the installed ai-edge-litert).",
    ),
]
Runtimes = Annotated[
    str | None,
    typer.Option(
        "--runtime",
        metavar="SPEC",
        help="The runtime(s) the app ships: a pip requirement (tflite-runtime==2.14.0), several comma-separated, "
        f"or 'all' for {', '.join(MATRIX)}; each installed on first use into its own venv under the cache folder.",
    ),
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

# --- outputs -----------------------------------------------------------------------------
Output = Annotated[
    str | None,
    typer.Option("-o", "--output", metavar="OUT", help="Where to write the chosen .tflite (never the input)."),
]
Json = _file("--json", "Write the machine-readable result to FILE (atomically).")
Html = _file("--html", "Write a self-contained HTML report to FILE (no network needed to view it).")
Trace = _file("--trace", "Write a Chrome trace-event JSON (open it in ui.perfetto.dev).")
Explorer = _file("--model-explorer", "Write Model Explorer node-data overlays (delegation; latency when profiled).")
Force = Annotated[
    bool,
    typer.Option("--force", help="Replace output files that exist (never an input, never a device, FIFO or socket)."),
]


@dataclasses.dataclass(frozen=True)
class RunOptions:
    """The options every command that reads a model takes: how to convert it, bound it, and report progress."""

    batch: int = 1
    dynamic_batch: bool = False
    input_shape: list[str] | None = None
    input_range: list[str] | None = None
    calibration: str | None = None
    trust_model: bool = False
    timeout: float = DEFAULT_TIMEOUT
    max_memory: str | None = None
    quiet: bool = False
    debug: bool = False

    def api(self) -> dict[str, Any]:
        """These options as the Python API takes them (api.ModelOptions)."""
        return {
            "batch": self.batch,
            "dynamic_batch": self.dynamic_batch,
            "input_shape": self.input_shape or [],
            "input_range": self.input_range or [],
            "calibration": self.calibration,
            "trust_model": self.trust_model,
            "timeout": self.timeout,
        }


_SHARED = [  # (name, annotation, default): RunOptions' fields as typer parameters
    ("batch", Batch, 1),
    ("dynamic_batch", DynamicBatch, False),
    ("input_shape", InputShape, None),
    ("input_range", InputRange, None),
    ("calibration", Calibration, None),
    ("trust_model", Trust, False),
    ("timeout", Timeout, DEFAULT_TIMEOUT),
    ("max_memory", MaxMemory, None),
    ("quiet", Quiet, False),
    ("debug", Debug, False),
]


def run_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """Add RunOptions' options to `command`'s signature; call it with them gathered as `run=RunOptions(...)`."""
    own = inspect.signature(command, eval_str=True)
    shared = [inspect.Parameter(n, inspect.Parameter.KEYWORD_ONLY, default=d, annotation=a) for n, a, d in _SHARED]
    params = [p.replace(kind=inspect.Parameter.KEYWORD_ONLY) for p in own.parameters.values() if p.name != "run"]

    @functools.wraps(command)
    def wrapper(**kwargs: Any) -> Any:
        run = RunOptions(**{n: kwargs.pop(n) for n, _, _ in _SHARED})
        return command(run=run, **kwargs)

    wrapper.__signature__ = own.replace(parameters=[*params, *shared])  # type: ignore[attr-defined]
    wrapper.__annotations__ = {p.name: p.annotation for p in wrapper.__signature__.parameters.values()}  # type: ignore[attr-defined]
    del wrapper.__wrapped__  # typer reads __signature__, not the wrapped function's
    return wrapper
