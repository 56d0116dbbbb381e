"""Verification of a rewrite under the VerifyPolicy: same outputs, same intermediate tensors, no worse delegation, not slower.

A rule's exactness picks the output bound: exact rules must match to float rounding,
tolerance rules within their stated tolerance. A quantized model is judged against a
float reference instead: the candidate may be no farther from it than the original
(within the policy's margin).
"""

from __future__ import annotations

import dataclasses
from typing import Sequence

import numpy as np

from xnnfit.delegation import observe
from xnnfit.errors import XnnfitError
from xnnfit.policy import VerifyPolicy
from xnnfit.record import Record
from xnnfit.rewrite.rule import Rule
from xnnfit.runtime import build_interpreter, feed, invoke, outputs
from xnnfit.specs import InputSpec
from xnnfit.timing import Stats, race

Outputs = list[list[np.ndarray]]


@dataclasses.dataclass(frozen=True)
class Numerics(Record):
    """How far one model's outputs are from another's over the same inputs."""

    max_abs_error: float
    max_rel_error: float  # max abs error / max |reference output|
    output_scale: float  # max |reference output|


MISMATCH = Numerics(float("inf"), float("inf"), 0.0)


def compare(reference: Outputs, candidate: Outputs) -> Numerics:
    """Max abs and relative error of `candidate` against `reference` (NaN or inf mismatches are infinite errors)."""
    if len(reference) != len(candidate) or any(len(a) != len(b) for a, b in zip(reference, candidate)):
        return MISMATCH
    abs_err, scale = 0.0, 0.0
    for ra, ca in zip(reference, candidate):
        for r, c in zip(ra, ca):
            if r.shape != c.shape or not np.array_equal(np.isnan(r), np.isnan(c)):
                return MISMATCH
            finite = np.isfinite(r) & np.isfinite(c)
            if not np.array_equal(r[~finite & ~np.isnan(r)], c[~finite & ~np.isnan(c)]):
                return MISMATCH  # infinities must match exactly
            if finite.any():
                abs_err = max(abs_err, float(np.max(np.abs(r[finite] - c[finite]))))
                scale = max(scale, float(np.max(np.abs(r[finite]))))
    return Numerics(abs_err, abs_err / scale if scale else abs_err, scale)


def cpu_nodes(content: bytes, specs: Sequence[InputSpec] = ()) -> tuple[int, int]:
    """(CPU nodes, partitions) as the runtime sees them."""
    d = observe(content, specs=specs)
    return d.cpu_nodes, len(d.partitions)


def _float_tensors(content: bytes, sample: dict[str, np.ndarray], specs: Sequence[InputSpec]) -> dict[str, np.ndarray]:
    it = build_interpreter(content, specs=specs, xnnpack=False, preserve_all_tensors=True)
    feed(it, sample)
    invoke(it, specs=specs)
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


def internal_error(before: bytes, after: bytes, sample: dict[str, np.ndarray], specs: Sequence[InputSpec] = ()) -> tuple[float, str]:
    """Worst relative difference over float tensors both models share by name (the rewrite's neighbourhood).

    Checks the rewrite where it happens, so a model whose outputs are degenerate (all ~0)
    still gets a meaningful comparison.
    """
    a, b = _float_tensors(before, sample, specs), _float_tensors(after, sample, specs)
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


@dataclasses.dataclass(frozen=True)
class State:
    """A model the engine holds: its bytes, outputs on the samples, CPU nodes and partitions."""

    content: bytes = dataclasses.field(repr=False)
    outputs: Outputs = dataclasses.field(repr=False, compare=False)
    cpu_nodes: int
    partitions: int


@dataclasses.dataclass(frozen=True)
class Judgement:
    """Whether a candidate is kept, why, and the state it becomes."""

    ok: bool
    reason: str
    numerics: Numerics | None = None
    state: State | None = None


class Verifier:
    """Judges candidates of one fix run: fixed samples, a float reference (for quantized models), one policy."""

    def __init__(self, specs: tuple[InputSpec, ...], samples: list[dict], policy: VerifyPolicy, runs: int, reference: bytes | None = None):
        self.specs, self.samples, self.policy, self.runs = specs, samples, policy, max(runs, policy.min_runs)
        self.reference = outputs(reference, samples, specs) if reference else None

    def state(self, content: bytes) -> State:
        """Outputs, CPU nodes and partitions of `content`."""
        return State(content, outputs(content, self.samples, self.specs), *cpu_nodes(content, self.specs))

    def judge(self, rule: Rule, current: State, candidate: bytes) -> Judgement:
        """Keep `candidate` only if it is as faithful as `current`, no worse delegated and not slower."""
        try:
            new = self.state(candidate)
        except XnnfitError as exc:
            return Judgement(False, f"the rewritten model does not run: {exc}")
        num = compare(current.outputs, new.outputs)
        ok, text = self._faithful(rule, num, current, new)
        if ok:
            try:
                inner, where = internal_error(current.content, candidate, self.samples[0], self.specs)
            except (XnnfitError, RuntimeError, ValueError) as exc:
                return Judgement(False, f"the rewritten model does not run on the built-in kernels: {exc}", num)
            bound = self.policy.internal_bound(rule.exactness, rule.tolerance or 0.0)
            if inner > bound:
                ok, text = False, f"tensor {where!r} differs by {inner:.3g} of its scale (bound {bound:g})"
            else:
                text += f"; shared tensors within {inner:.2g} of their scale"
        if not ok:
            return Judgement(False, f"outside tolerance: {text}", num)
        if new.cpu_nodes > current.cpu_nodes:
            return Judgement(False, f"more CPU nodes ({current.cpu_nodes} -> {new.cpu_nodes})", num)
        before, after = self.race(current.content, candidate)
        p = self.policy
        if after.median_ms > before.median_ms * p.slower_margin and after.p10_ms > before.p90_ms:
            return Judgement(False, f"slower ({before.median_ms:.3g} -> {after.median_ms:.3g} ms)", num)
        return Judgement(True, text, num, new)

    def _faithful(self, rule: Rule, num: Numerics, current: State, new: State) -> tuple[bool, str]:
        if self.reference is not None:  # quantized: judged against the float reference
            base, cand = compare(self.reference, current.outputs), compare(self.reference, new.outputs)
            p = self.policy
            ok = cand.max_abs_error <= p.quantized_margin * base.max_abs_error + p.quantized_floor * max(base.output_scale, 1.0)
            return ok, f"error vs float model {cand.max_abs_error:.3g} (before {base.max_abs_error:.3g})"
        bound = self.policy.bound(rule.exactness, rule.tolerance or 0.0)
        ok = num.max_rel_error <= bound
        return ok, f"max abs error {num.max_abs_error:.3g} ({num.max_rel_error:.2g} of output scale; bound {bound:g}, {rule.exactness})"

    def race(self, a: bytes, b: bytes, runs: int | None = None) -> tuple[Stats, Stats]:
        """Median latencies of `a` and `b`, interleaved."""
        stats = race({"a": a, "b": b}, self.samples[0], runs or self.runs, specs=self.specs)
        return stats["a"], stats["b"]
