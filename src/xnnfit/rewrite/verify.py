"""Verification of a rewrite (VerifyPolicy): same outputs, same intermediate tensors, no worse delegation, not slower.

A rule's exactness picks the output bound: exact rules must match to float rounding,
tolerance rules within their stated tolerance. A quantized model is judged against a
float reference instead: the candidate may be no farther from it than the original
(within the policy's margin). When accuracy cannot be judged on the reference's outputs
(measure.accuracy.judge: constant, zero, below the quantized output's step) the same
bounds still hold, but only absolute differences are said: relative errors would mean
nothing; the shared intermediate tensors carry the comparison.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np

from xnnfit.core import fmt
from xnnfit.core.errors import XnnfitError
from xnnfit.core.policy import VerifyPolicy
from xnnfit.measure.accuracy import JUDGED, Judgement, Numerics, compare, judge, output_steps
from xnnfit.model.specs import InputSpec
from xnnfit.observe.delegation import observe
from xnnfit.rewrite.rule import Rule
from xnnfit.runtime.interpreter import build_interpreter, feed, invoke, outputs
from xnnfit.runtime.timing import Stats, race

Outputs = list[list[np.ndarray]]


def cpu_nodes(content: bytes, specs: Sequence[InputSpec] = ()) -> tuple[int, int]:
    """(CPU nodes, partitions) as the runtime sees them."""
    d = observe(content, specs=specs)
    return d.cpu_nodes, len(d.partitions)


def real_tensors(
    content: bytes, sample: dict[str, np.ndarray], specs: Sequence[InputSpec] = ()
) -> dict[str, np.ndarray]:
    """Every named float or quantized tensor after one run on the built-in kernels, as real (dequantized) values."""
    it = build_interpreter(content, specs=specs, xnnpack=False, preserve_all_tensors=True)
    feed(it, sample)
    invoke(it, specs=specs)
    out = {}
    for d in it.get_tensor_details():
        name = d["name"]
        if not name or name.startswith("xnnfit:"):
            continue
        q = d.get("quantization_parameters") or {}
        scales = np.asarray(q.get("scales", ()), dtype=np.float64)
        if d["dtype"] not in (np.float32, np.float16) and not (
            scales.size and d["dtype"] in (np.int8, np.uint8, np.int16)
        ):
            continue
        try:
            v = it.get_tensor(d["index"])
        except ValueError:
            continue
        if v is None or not v.size:
            continue
        v = np.array(v, dtype=np.float64)
        if scales.size:
            zp = np.asarray(q.get("zero_points", ()), dtype=np.float64)
            shape = [1] * v.ndim
            if scales.size > 1 and v.ndim:
                shape[q.get("quantized_dimension", 0)] = -1
            v = (v - zp.reshape(shape)) * scales.reshape(shape)
        out[name] = v
    return out


def _relative(x: np.ndarray, y: np.ndarray) -> float | None:
    scale = float(np.max(np.abs(x)))
    if x.shape != y.shape or scale < 1e-30:
        return None
    return float(np.max(np.abs(x - y))) / scale


def internal_error(before: dict[str, np.ndarray], after: dict[str, np.ndarray]) -> tuple[float, str]:
    """Worst relative difference over tensors both models share by name (the rewrite's neighbourhood).

    Checks the rewrite where it happens, so a model whose outputs are degenerate (all ~0)
    still gets a meaningful comparison.
    """
    worst, name = 0.0, ""
    for key in before.keys() & after.keys():
        err = _relative(before[key], after[key])
        if err is not None and err > worst:
            worst, name = err, key
    return worst, name


def internal_drift(
    reference: dict[str, np.ndarray],
    before: dict[str, np.ndarray],
    after: dict[str, np.ndarray],
    margin: float,
    floor: float,
) -> tuple[bool, str]:
    """Whether the tensors all three share are, at worst, no farther from the reference after than before.

    Farther means: the worst after is more than `margin` times the worst before, plus `floor`.

    Quantization error moves from tensor to tensor when a rewrite changes which ops are
    quantized, so single tensors are not compared one by one: the worst of them is. A
    wrong rewrite makes its neighbourhood far worse than any quantization did.
    """
    shared = reference.keys() & before.keys() & after.keys()
    worst_before, worst_after, where = 0.0, 0.0, ""
    for key in shared:
        e_before, e_after = _relative(reference[key], before[key]), _relative(reference[key], after[key])
        if e_before is None or e_after is None:
            continue
        worst_before = max(worst_before, e_before)
        if e_after > worst_after:
            worst_after, where = e_after, key
    if not where:
        return True, "no tensor shared with the reference to compare"
    if worst_after > margin * worst_before + floor:
        return (
            False,
            f"tensor {where!r} is {worst_after:.3g} of its scale from the reference; the worst before "
            f"was {worst_before:.3g}",
        )
    return True, f"shared tensors within {worst_after:.2g} of the reference's scale (worst before {worst_before:.2g})"


@dataclasses.dataclass(frozen=True)
class State:
    """A model the engine holds: its bytes, outputs on the samples, CPU nodes and partitions."""

    content: bytes = dataclasses.field(repr=False)
    outputs: Outputs = dataclasses.field(repr=False, compare=False)
    cpu_nodes: int
    partitions: int
    tensors: dict = dataclasses.field(
        default_factory=dict, repr=False, compare=False
    )  # real values on the first sample


@dataclasses.dataclass(frozen=True)
class Decision:
    """Whether a candidate is kept, why, and the state it becomes."""

    ok: bool
    reason: str
    numerics: Numerics | None = None
    state: State | None = None


class Verifier:
    """Judges candidates of one fix run: fixed samples, a float reference (for quantized models), one policy."""

    def __init__(
        self,
        specs: tuple[InputSpec, ...],
        samples: list[dict],
        policy: VerifyPolicy,
        runs: int,
        reference: bytes | None = None,
        reference_name: str = "the float model",
    ):
        self.specs, self.samples, self.policy, self.runs = specs, samples, policy, runs
        self.reference_name = reference_name
        self.reference = outputs(reference, samples, specs) if reference else None
        self.reference_tensors = real_tensors(reference, samples[0], specs) if reference else None
        self.judgement: Judgement = JUDGED

    def start(self, content: bytes) -> State:
        """The original model's state, and whether accuracy can be judged on the reference's outputs.

        The reference is the float model for a quantized one (then the original's output
        steps count), else the original itself.
        """
        original = self.state(content)
        if self.reference is not None:
            self.judgement = judge(self.reference, output_step=output_steps(content))
        else:
            self.judgement = judge(original.outputs)
        return original

    def state(self, content: bytes) -> State:
        """Outputs, CPU nodes, partitions and intermediate tensors of `content`."""
        return State(
            content,
            outputs(content, self.samples, self.specs),
            *cpu_nodes(content, self.specs),
            real_tensors(content, self.samples[0], self.specs),
        )

    def judge(self, rule: Rule, current: State, candidate: bytes) -> Decision:
        """Keep `candidate` only if it is as faithful as `current`, no worse delegated and not slower."""
        try:
            new = self.state(candidate)
        except XnnfitError as exc:
            return Decision(False, f"the rewritten model does not run: {exc}")
        if rule.judged_against == "cpu":  # the current model's XNNPACK outputs are the wrong ones being repaired
            num = compare(outputs(current.content, self.samples, self.specs, xnnpack=False), new.outputs)
        else:
            num = compare(current.outputs, new.outputs)
        ok, text = self._faithful(rule, num, current, new)
        if ok:
            ok, inner = self._neighbourhood(rule, current, new)
            text = f"{text}; {inner}" if ok else inner
        shown = num if self.judgement.judged else None  # relative errors mean nothing on a degenerate reference
        if not ok:
            return Decision(False, f"outside tolerance: {text}", shown)
        if new.cpu_nodes > current.cpu_nodes:
            return Decision(False, f"more CPU nodes ({current.cpu_nodes} -> {new.cpu_nodes})", shown)
        before, after = self.race(current.content, candidate)
        p = self.policy
        if after.median_ms > before.median_ms * p.slower_margin and after.p10_ms > before.p90_ms:
            return Decision(False, f"slower ({before.median_ms:.3g} -> {after.median_ms:.3g} ms)", shown)
        return Decision(True, text, shown, new)

    def reference_errors(self, state: State) -> Numerics | None:
        """How far `state`'s outputs are from the float reference (None without one, or when it cannot be judged)."""
        if self.reference is None or not self.judgement.judged:
            return None
        return compare(self.reference, state.outputs)

    def _faithful(self, rule: Rule, num: Numerics, current: State, new: State) -> tuple[bool, str]:
        p = self.policy
        judged = self.judgement.judged
        if self.reference is not None:  # quantized: judged against the float reference
            base, cand = compare(self.reference, current.outputs), compare(self.reference, new.outputs)
            bound = p.quantized_margin * base.max_rel_error + p.quantized_floor
            ok = cand.max_rel_error <= bound
            if not judged:
                return ok, (
                    f"outputs not judged against {self.reference_name} (accuracy cannot be judged on them)"
                    if ok
                    else f"outputs farther from {self.reference_name} (max abs difference "
                    f"{base.max_abs_error:.3g} -> {cand.max_abs_error:.3g})"
                )
            return ok, (
                f"error vs {self.reference_name} {fmt.rel(cand.max_rel_error)} of its output scale "
                f"(before {fmt.rel(base.max_rel_error)}; bound {p.quantized_margin:g}x before + {p.quantized_floor:g})"
            )
        bound = p.bound(rule.exactness, rule.tolerance or 0.0)
        ok = num.max_rel_error <= bound
        against = " of the original on the built-in kernels" if rule.judged_against == "cpu" else ""
        if not judged:
            return ok, (
                "outputs not judged (accuracy cannot be judged on them)"
                if ok
                else f"outputs moved (max abs difference {num.max_abs_error:.3g}{against})"
            )
        return (
            ok,
            f"outputs within {num.max_rel_error:.2g} of their scale{against} (bound {bound:g}, {rule.exactness} rule)",
        )

    def _neighbourhood(self, rule: Rule, current: State, new: State) -> tuple[bool, str]:
        p = self.policy
        if self.reference_tensors is not None:
            return internal_drift(
                self.reference_tensors, current.tensors, new.tensors, p.quantized_margin, p.internal_floor
            )
        inner, where = internal_error(current.tensors, new.tensors)
        bound = p.internal_bound(rule.exactness, rule.tolerance or 0.0)
        if inner > bound:
            return False, f"tensor {where!r} differs by {inner:.3g} of its scale (bound {bound:g})"
        return True, f"shared tensors within {inner:.2g} of their scale"

    def race(self, a: bytes, b: bytes, runs: int | None = None) -> tuple[Stats, Stats]:
        """Median latencies of `a` and `b`, interleaved."""
        stats = race({"a": a, "b": b}, self.samples[0], runs or self.runs, specs=self.specs)
        return stats["a"], stats["b"]
