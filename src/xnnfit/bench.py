"""bench(): whole-model latency with XNNPACK on and off, per thread count, interleaved runs."""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from xnnfit.convert import ConvertOptions, materialize
from xnnfit.errors import InputDataError, RuntimeFailure, SourceError, XnnfitError
from xnnfit.isolate import run_isolated
from xnnfit.recipes import ConversionRecipe
from xnnfit.source import ModelSource
from xnnfit.inputs import InputSpec, input_name, load_npz, random_inputs
from xnnfit.runtime import build_interpreter
from xnnfit.timing import WIDE_SPREAD, Stats, interleaved, rss_bytes
from xnnfit.tflite.graph import read_model


@dataclasses.dataclass(frozen=True)
class ConfigTiming:
    """Latency of one runtime configuration."""

    xnnpack: bool
    threads: int
    stats: Stats
    rss_delta_bytes: int  # resident memory added by building and running this interpreter


@dataclasses.dataclass(frozen=True)
class BenchResult:
    """bench() for one model: every configuration, measured in the same process."""

    recipe: str
    size_bytes: int
    configs: tuple[ConfigTiming, ...]
    warnings: tuple[str, ...] = ()

    def config(self, xnnpack: bool, threads: int) -> ConfigTiming:
        """The timing of one configuration."""
        return next(c for c in self.configs if c.xnnpack == xnnpack and c.threads == threads)

    def speedup(self, threads: int) -> float:
        """Median latency without XNNPACK / with XNNPACK, at `threads`."""
        return self.config(False, threads).stats.median_ms / self.config(True, threads).stats.median_ms


def feed(interpreter: Any, sample: dict[str, np.ndarray]) -> None:
    """Set every input of `interpreter` from `sample` (keys are input names), resizing dynamic dims."""
    names = [input_name(d["name"]) for d in interpreter.get_input_details()]
    feed_values(interpreter, [sample[n] for n in names])


def feed_values(interpreter: Any, values: list[np.ndarray]) -> None:
    """Set the inputs of `interpreter` in order, resizing dynamic dimensions first."""
    details = interpreter.get_input_details()
    resized = False
    for d, v in zip(details, values):
        if tuple(d["shape"]) != v.shape:
            interpreter.resize_tensor_input(d["index"], v.shape, strict=False)
            resized = True
    if resized:
        interpreter.allocate_tensors()
    for d, v in zip(interpreter.get_input_details(), values):
        interpreter.set_tensor(d["index"], v)


def check_sample(sample: dict[str, np.ndarray], specs: tuple[InputSpec, ...]) -> None:
    """XnnfitError unless `sample` has every input with a compatible shape and finite values."""
    for s in specs:
        if s.name not in sample:
            raise InputDataError(f"input data has no array for {s.name!r} (it has {', '.join(sample)}). Name arrays after the model inputs.")
        v = sample[s.name]
        if len(v.shape) != len(s.shape) or any(d >= 0 and d != vd for d, vd in zip(s.shape, v.shape)):
            raise InputDataError(f"input {s.name!r} needs shape {tuple(s.shape)}, the data has {v.shape}. Reshape the data.")
        if v.dtype.kind == "f" and not np.isfinite(v).all():
            raise InputDataError(f"input {s.name!r} has NaN or infinite values. Clean the data first.")


def bench_content(
    content: bytes,
    recipe: str,
    specs: tuple[InputSpec, ...],
    *,
    threads: tuple[int, ...] = (1,),
    runs: int = 30,
    warmup: int = 5,
    sample: dict[str, np.ndarray] | None = None,
    seed: int = 0,
) -> BenchResult:
    """Time `content` with XNNPACK on and off at each thread count (call it in a child process)."""
    read_model(content)
    sample = sample or random_inputs(specs, 1, seed)[0]
    check_sample(sample, specs)
    interpreters: dict[tuple[bool, int], Any] = {}
    rss: dict[tuple[bool, int], int] = {}
    for n in threads:
        for xnnpack in (True, False):
            before = rss_bytes()
            it = build_interpreter(content, xnnpack=xnnpack, threads=n)
            feed(it, sample)
            try:
                it.invoke()
            except (RuntimeError, ValueError) as exc:
                raise RuntimeFailure(f"the model fails to run with {'XNNPACK' if xnnpack else 'CPU kernels'}: {' '.join(str(exc).split())[:300]}. Check the input data.") from exc
            rss[(xnnpack, n)] = max(0, rss_bytes() - before)
            interpreters[(xnnpack, n)] = it
    stats = interleaved({k: it.invoke for k, it in interpreters.items()}, runs, warmup)
    configs = tuple(ConfigTiming(x, n, stats[(x, n)], rss[(x, n)]) for (x, n) in interpreters)
    warnings = tuple(
        f"{'XNNPACK' if c.xnnpack else 'no XNNPACK'}, {c.threads} thread(s): spread p10-p90 is {c.stats.spread:.0%} of the median; "
        "the machine is noisy, use more --runs or a quieter machine"
        for c in configs
        if c.stats.spread > WIDE_SPREAD
    )
    return BenchResult(recipe, len(content), configs, warnings)


@dataclasses.dataclass(frozen=True)
class Failed:
    """A recipe that could not be measured, and why."""

    recipe: str
    error: str
    detail: str | None = None


def parse_threads(text: str) -> tuple[int, ...]:
    """(1, 2, 4) from '1,2,4'; XnnfitError for anything but positive integers."""
    try:
        values = tuple(int(t) for t in text.split(",") if t.strip())
    except ValueError:
        values = ()
    if not values or any(v < 1 for v in values):
        raise InputDataError(f"--threads {text!r} is not valid. Pass positive thread counts, e.g. --threads 1,2,4.")
    return tuple(dict.fromkeys(values))


def sample_from(data: str | None, specs: tuple[InputSpec, ...]) -> dict[str, np.ndarray] | None:
    """The first sample of an --data .npz, checked against the inputs; None for random data."""
    if not data:
        return None
    sample = load_npz(data, specs)[0]
    check_sample(sample, specs)
    return sample


def bench(
    source: ModelSource,
    recipes: tuple[ConversionRecipe, ...],
    options: ConvertOptions = ConvertOptions(),
    *,
    threads: tuple[int, ...] = (1,),
    runs: int = 30,
    warmup: int = 5,
    data: str | None = None,
    on_step=None,
) -> tuple[BenchResult | Failed, ...]:
    """Benchmark each recipe of `source` (conversion and timing each in a child process)."""
    out: list[BenchResult | Failed] = []
    for recipe in recipes if not source.is_tflite else recipes[:1]:
        try:
            if on_step:
                on_step(f"converting ({recipe.name})")
            conv = materialize(source, recipe, options)
            sample = sample_from(data, conv.inputs)
            if on_step:
                on_step(f"timing ({conv.recipe})")
            out.append(
                run_isolated(
                    bench_content, conv.content, conv.recipe, conv.inputs, threads=threads, runs=runs, warmup=warmup, sample=sample,
                    what=f"benchmarking {source.display} ({conv.recipe})", timeout=options.timeout,
                )
            )
        except XnnfitError as exc:
            if isinstance(exc, (SourceError, InputDataError)):
                raise
            out.append(Failed(recipe.name if not source.is_tflite else "as-given", str(exc), exc.detail))
    return tuple(out)
