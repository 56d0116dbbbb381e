"""Latency: interleaved runs (A B A B ...) in one process, robust statistics, memory readings."""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Callable, Hashable, Mapping, Sequence
from typing import Any

import numpy as np

from xnnfit.core.record import Record
from xnnfit.model.specs import InputSpec
from xnnfit.runtime.interpreter import build_interpreter, feed


@dataclasses.dataclass(frozen=True)
class Stats(Record):
    """Summary of repeated timings, in milliseconds."""

    median_ms: float
    p10_ms: float
    p90_ms: float
    min_ms: float
    runs: int

    @classmethod
    def of(cls, samples_ms: list[float]) -> Stats:
        """Stats of a non-empty list of samples."""
        a = np.asarray(samples_ms, dtype=float)
        return cls(
            float(np.median(a)), float(np.percentile(a, 10)), float(np.percentile(a, 90)), float(a.min()), len(a)
        )

    @property
    def spread(self) -> float:
        """(p90 - p10) / median."""
        return (self.p90_ms - self.p10_ms) / self.median_ms if self.median_ms > 0 else 0.0


NOT_TIMED = Stats(0.0, 0.0, 0.0, 0.0, 0)


def interleaved(runners: Mapping[Hashable, Callable[[], Any]], runs: int, warmup: int) -> dict[Hashable, Stats]:
    """Time each runner `runs` times in rounds (A B A B ...) after `warmup` untimed rounds."""
    for _ in range(warmup):
        for fn in runners.values():
            fn()
    samples: dict[Hashable, list[float]] = {k: [] for k in runners}
    for _ in range(runs):
        for key, fn in runners.items():
            start = time.perf_counter()
            fn()
            samples[key].append((time.perf_counter() - start) * 1e3)
    return {k: Stats.of(v) for k, v in samples.items()}


def race(
    contents: Mapping[Hashable, bytes],
    sample: dict[str, np.ndarray],
    runs: int,
    *,
    specs: Sequence[InputSpec] = (),
    threads: int = 1,
    warmup: int = 5,
) -> dict[Hashable, Stats]:
    """Latency of several models on the same sample, timed interleaved in this process with XNNPACK on."""
    runners = {}
    for key, content in contents.items():
        it = build_interpreter(content, specs=specs, threads=threads)
        feed(it, sample)
        runners[key] = it.invoke
    return interleaved(runners, runs, warmup)


def rss_bytes() -> int:
    """Resident set size of this process now (Linux /proc; 0 elsewhere)."""
    try:
        with open("/proc/self/statm") as f:
            pages = int(f.read().split()[1])
        return pages * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0
