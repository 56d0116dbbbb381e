"""Verification of a rewrite: same outputs, no worse delegation, not slower."""

from __future__ import annotations

import dataclasses

import numpy as np

from xnnfit.bench import feed
from xnnfit.delegation import observe
from xnnfit.runtime import build_interpreter
from xnnfit.timing import Stats, interleaved


@dataclasses.dataclass(frozen=True)
class Numerics:
    """How far one model's outputs are from another's over the same inputs."""

    max_abs_error: float
    max_rel_error: float  # max abs error / max |reference output|
    output_scale: float  # max |reference output|


def outputs(content: bytes, samples: list[dict[str, np.ndarray]]) -> list[list[np.ndarray]]:
    """Every output for every sample, with XNNPACK on (what users run)."""
    it = build_interpreter(content)
    result = []
    for s in samples:
        feed(it, s)
        it.invoke()
        result.append([np.array(it.get_tensor(d["index"]), dtype=np.float64) for d in it.get_output_details()])
    return result


def compare(reference: list[list[np.ndarray]], candidate: list[list[np.ndarray]]) -> Numerics:
    """Max abs and relative error of `candidate` against `reference`."""
    if len(reference) != len(candidate) or any(len(a) != len(b) for a, b in zip(reference, candidate)):
        return Numerics(float("inf"), float("inf"), 0.0)
    abs_err, scale = 0.0, 0.0
    for ra, ca in zip(reference, candidate):
        for r, c in zip(ra, ca):
            if r.shape != c.shape or not np.array_equal(np.isnan(r), np.isnan(c)):
                return Numerics(float("inf"), float("inf"), 0.0)
            finite = np.isfinite(r) & np.isfinite(c)
            if not np.array_equal(r[~finite & ~np.isnan(r)], c[~finite & ~np.isnan(c)]):
                return Numerics(float("inf"), float("inf"), 0.0)  # infinities must match exactly
            if finite.any():
                abs_err = max(abs_err, float(np.max(np.abs(r[finite] - c[finite]))))
                scale = max(scale, float(np.max(np.abs(r[finite]))))
    return Numerics(abs_err, abs_err / scale if scale else abs_err, scale)


def cpu_nodes(content: bytes) -> tuple[int, int]:
    """(CPU nodes, partitions) as the runtime sees them."""
    d = observe(content)
    return d.cpu_nodes, len(d.partitions)


def race(a: bytes, b: bytes, sample: dict[str, np.ndarray], runs: int, warmup: int = 5) -> tuple[Stats, Stats]:
    """Median latencies of `a` and `b`, timed interleaved in this process with XNNPACK on."""
    runners = {}
    for key, content in (("a", a), ("b", b)):
        it = build_interpreter(content)
        feed(it, sample)
        runners[key] = it.invoke
    stats = interleaved(runners, runs, warmup)
    return stats["a"], stats["b"]


def _float_tensors(content: bytes, sample: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    it = build_interpreter(content, xnnpack=False, preserve_all_tensors=True)
    feed(it, sample)
    it.invoke()
    out = {}
    for d in it.get_tensor_details():
        if d["dtype"] not in (np.float32, np.float16) or not d["name"] or d["name"].startswith("xnnfit:"):
            continue
        try:
            v = it.get_tensor(d["index"])
        except ValueError:
            continue
        if v is not None and v.size:
            out[d["name"]] = np.array(v, dtype=np.float64)
    return out


def internal_error(before: bytes, after: bytes, sample: dict[str, np.ndarray]) -> tuple[float, str]:
    """Worst relative difference over float tensors both models share by name (the rewrite's neighbourhood).

    Checks the rewrite where it happens, so a model whose outputs are degenerate (all ~0)
    still gets a meaningful comparison.
    """
    a, b = _float_tensors(before, sample), _float_tensors(after, sample)
    worst, name = 0.0, ""
    for key in a.keys() & b.keys():
        x, y = a[key], b[key]
        if x.shape != y.shape:
            continue
        scale = float(np.max(np.abs(x)))
        if scale < 1e-30:
            continue
        err = float(np.max(np.abs(x - y))) / scale
        if err > worst:
            worst, name = err, key
    return worst, name
