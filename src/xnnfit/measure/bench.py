"""bench_stage(): whole-model latency with XNNPACK on and off, per thread count, interleaved, with memory."""

from __future__ import annotations

import dataclasses
import tempfile
from typing import Any, ClassVar

from xnnfit.core.errors import InputDataError, XnnfitError
from xnnfit.core.policy import BENCH_RUNS, BENCH_WARMUP, WIDE_SPREAD
from xnnfit.core.record import NOT_IN_DICT, PerModel, Record
from xnnfit.model.artifact import Artifact
from xnnfit.model.inputs import samples_for
from xnnfit.model.specs import InputSpec
from xnnfit.runtime.interpreter import build_interpreter, compiled_runner, feed, invoke
from xnnfit.runtime.targets import Target, inputs_in_order, time_configs
from xnnfit.runtime.targets import default as default_target
from xnnfit.runtime.timing import Stats, interleaved, rss_bytes

INTERPRETER, COMPILED = "interpreter", "compiled"  # the runtime API a configuration is timed through
APIS = (INTERPRETER, COMPILED)


@dataclasses.dataclass(frozen=True)
class ConfigTiming(Record):
    """Latency of one runtime configuration."""

    xnnpack: bool
    threads: int
    stats: Stats
    rss_delta_bytes: int  # resident memory added by building and running this interpreter
    api: str = INTERPRETER  # 'compiled': LiteRT 2's CompiledModel on the CPU accelerator (XNNPACK), weight cache on

    def _extra(self) -> dict:
        s = self.stats
        return {"median_ms": s.median_ms, "p10_ms": s.p10_ms, "p90_ms": s.p90_ms, "min_ms": s.min_ms}


@dataclasses.dataclass(frozen=True)
class BenchRun(Record):
    """One recipe of one model: every configuration, measured in the same process; or why it failed."""

    recipe: str
    inputs: tuple[InputSpec, ...] = ()
    size_bytes: int = 0
    configs: tuple[ConfigTiming, ...] = ()
    warnings: tuple[str, ...] = ()
    error: str | None = None
    error_detail: str | None = dataclasses.field(default=None, repr=False, compare=False, metadata=NOT_IN_DICT)

    @classmethod
    def failed(cls, recipe: str, exc: XnnfitError) -> BenchRun:
        """The entry for a recipe that could not be measured."""
        return cls(recipe=recipe, error=str(exc), error_detail=exc.detail)

    @property
    def ok(self) -> bool:
        """True when the recipe was measured."""
        return self.error is None

    runtime: str = ""  # what it was timed on: 'pip ai-edge-litert 2.3.0 (x86_64 Linux)'

    def config(self, xnnpack: bool, threads: int, api: str = INTERPRETER) -> ConfigTiming:
        """The timing of one configuration."""
        return next(c for c in self.configs if c.xnnpack == xnnpack and c.threads == threads and c.api == api)

    def speedup(self, threads: int) -> float:
        """Median latency without XNNPACK / with XNNPACK, at `threads`."""
        return self.config(False, threads).stats.median_ms / self.config(True, threads).stats.median_ms

    def _extra(self) -> dict:
        return {"status": "ok" if self.ok else "error"}


def parse_threads(value: str | int | tuple[int, ...] | list[int]) -> tuple[int, ...]:
    """(1, 2, 4) from '1,2,4', 4 or (1, 2, 4); InputDataError for anything but positive integers."""
    try:
        if isinstance(value, str):
            values = tuple(int(t) for t in value.split(",") if t.strip())
        elif isinstance(value, int):
            values = (value,)
        else:
            values = tuple(int(v) for v in value)
    except (TypeError, ValueError):
        values = ()
    if not values or any(v < 1 for v in values):
        raise InputDataError(f"--threads {value!r} is not valid. Pass positive thread counts, e.g. --threads 1,2,4.")
    return tuple(dict.fromkeys(values))


def bench_stage(
    artifact: Artifact,
    *,
    threads: tuple[int, ...] = (1,),
    runs: int = BENCH_RUNS,
    warmup: int = BENCH_WARMUP,
    data: str | None = None,
    seed: int = 0,
    target: Target | None = None,
    compiled: bool = False,
) -> BenchRun:
    """Time the artifact with XNNPACK on and off at each thread count (call it in a TensorFlow-free child).

    On a `target` runtime the interpreters are built and timed in its venv's child; with
    `compiled`, LiteRT 2's CompiledModel (XNNPACK weight cache in a temporary folder) is
    timed in the same interleaved rounds as the Interpreter.
    """
    sample = samples_for(artifact.specs, data, 1, seed)[0]
    keys = [(x, n, INTERPRETER) for n in threads for x in (True, False)] + [
        (True, n, COMPILED) for n in threads if compiled
    ]
    if target is not None and not target.in_process:
        values = inputs_in_order(artifact.content, sample)
        samples, rss_list = time_configs(
            target, [(artifact.content, values, x, n) for x, n, _ in keys], runs, warmup, f"timing {artifact.what}"
        )
        stats = {k: Stats.of(v) for k, v in zip(keys, samples)}
        rss = dict(zip(keys, rss_list))
        label = target.label
    else:
        with tempfile.TemporaryDirectory(prefix="xnnfit-weights-") as cache_dir:
            runners: dict[tuple[bool, int, str], Any] = {}
            rss = {}
            for key in keys:
                xnnpack, n, api = key
                before = rss_bytes()
                if api == COMPILED:
                    runners[key] = compiled_runner(
                        artifact.content, artifact.specs, sample, n, cache_dir, artifact.what
                    )
                else:
                    it = build_interpreter(
                        artifact.content, specs=artifact.specs, xnnpack=xnnpack, threads=n, what=artifact.what
                    )
                    feed(it, sample)
                    invoke(it, f"{artifact.what} with {'XNNPACK' if xnnpack else 'CPU kernels'}", artifact.specs)
                    runners[key] = it.invoke
                rss[key] = max(0, rss_bytes() - before)
            stats = interleaved(runners, runs, warmup)
        label = default_target().label
    configs = tuple(ConfigTiming(x, n, stats[(x, n, api)], rss[(x, n, api)], api) for (x, n, api) in keys)
    warnings = (
        *artifact.warnings,
        *(
            f"{_config_name(c)}, {c.threads} thread(s): spread p10-p90 is {c.stats.spread:.0%} of the median; "
            "the machine is noisy, use more --runs or a quieter machine"
            for c in configs
            if c.stats.spread > WIDE_SPREAD
        ),
    )
    return BenchRun(artifact.recipe, artifact.specs, artifact.size_bytes, configs, warnings, runtime=label)


def _config_name(c: ConfigTiming) -> str:
    if c.api == COMPILED:
        return "CompiledModel (XNNPACK)"
    return "XNNPACK" if c.xnnpack else "no XNNPACK"


@dataclasses.dataclass(frozen=True)
class BenchResult(PerModel):
    """bench() of one model: one BenchRun per recipe."""

    RESULT: ClassVar[str] = "bench"

    recipes: tuple[BenchRun, ...] = ()


@dataclasses.dataclass(frozen=True)
class CompareEntry(Record):
    """One (model, recipe) of a comparison: its latency with XNNPACK at each thread count."""

    model: str
    recipe: str
    size_bytes: int
    configs: tuple[ConfigTiming, ...]

    def median(self, threads: int) -> float:
        """Median ms at `threads`."""
        return next(c.stats.median_ms for c in self.configs if c.threads == threads)


@dataclasses.dataclass(frozen=True)
class CompareResult(Record):
    """Several models timed against each other: interleaved in one process, the same runs, ratios to the first."""

    RESULT: ClassVar[str] = "compare"

    entries: tuple[CompareEntry, ...]
    threads: tuple[int, ...] = (1,)
    warnings: tuple[str, ...] = ()
    versions: dict[str, str] = dataclasses.field(default_factory=dict)

    def ratio(self, index: int, threads: int) -> float:
        """How many times faster entry `index` is than the first entry (>1: faster)."""
        return self.entries[0].median(threads) / self.entries[index].median(threads)

    def _extra(self) -> dict:
        return {
            "speedup_vs_first": {str(n): [self.ratio(i, n) for i in range(len(self.entries))] for n in self.threads}
        }


def compare_stage(
    artifacts: tuple[tuple[str, Artifact], ...],
    *,
    threads: tuple[int, ...] = (1,),
    runs: int = BENCH_RUNS,
    warmup: int = BENCH_WARMUP,
    data: str | None = None,
    seed: int = 0,
) -> CompareResult:
    """Time every (model name, artifact) with XNNPACK, all interleaved in this process, at each thread count."""
    configs: dict[int, list[ConfigTiming]] = {i: [] for i in range(len(artifacts))}
    warnings = []
    for n in threads:
        runners = {}
        for i, (_, a) in enumerate(artifacts):
            it = build_interpreter(a.content, specs=a.specs, threads=n, what=a.what)
            feed(it, samples_for(a.specs, data, 1, seed)[0])
            invoke(it, a.what, a.specs)
            runners[i] = it.invoke
        stats = interleaved(runners, runs, warmup)
        for i, st in stats.items():
            configs[i].append(ConfigTiming(True, n, st, 0))
            if st.spread > WIDE_SPREAD:
                warnings.append(
                    f"{artifacts[i][0]} at {n} thread(s): spread p10-p90 is {st.spread:.0%} of the median; "
                    "use more --runs"
                )
    entries = tuple(
        CompareEntry(name, a.recipe, a.size_bytes, tuple(configs[i])) for i, (name, a) in enumerate(artifacts)
    )
    return CompareResult(entries, threads, tuple(warnings))
