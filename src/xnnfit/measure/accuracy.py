"""Output error, defined once: how far a model's outputs are from a reference's, as a share of the reference's scale.

The verifier of `xnnfit fix` (rewrite/verify.py), quant and optimize (choose/) and the
hazard probes all read errors from here, so "1.2% error" means the same everywhere: the
largest absolute difference over every output and sample, divided by the largest
|reference output|; a NaN where the reference has none, or an infinity that differs, is
an infinite error.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np

from xnnfit.core.errors import InputDataError
from xnnfit.core.policy import DEGENERATE_SPREAD
from xnnfit.core.record import Record
from xnnfit.runtime.interpreter import outputs
from xnnfit.tflite.graph import read_model

Outputs = Sequence[Sequence[np.ndarray]]  # per sample, every output of the model
CLASS_SCORE_OPS = frozenset({"FULLY_CONNECTED", "SOFTMAX"})  # what a classifier's score output comes out of


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


@dataclasses.dataclass(frozen=True)
class Agreement(Record):
    """A candidate's outputs against the float reference's on the eval inputs: error, direction, top class."""

    max_abs_error: float
    rel_error: float  # max abs error / max |reference output| (compare)
    mean_rel_error: float  # mean abs error / mean |reference output|
    cosine: float
    top1: float | None  # share of samples whose unique top class agrees; None unless the output is class scores


def _flat(outputs: Outputs) -> np.ndarray:
    return np.concatenate([np.concatenate([o.reshape(-1) for o in s]) for s in outputs]).astype(np.float64)


def top1(reference: Outputs, candidate: Outputs) -> float:
    """Share of samples whose unique top class agrees; a candidate with a tie at the top (all zeros) does not agree."""
    agree = []
    for r, c in zip(reference, candidate):
        r0, c0 = r[0].reshape(r[0].shape[0], -1), c[0].reshape(c[0].shape[0], -1)
        for rr, cc in zip(r0, c0):
            top = np.flatnonzero(cc == cc.max())
            agree.append(len(top) == 1 and top[0] == int(np.argmax(rr)))
    return float(np.mean(agree)) if agree else 0.0


def agreement(reference: Outputs, candidate: Outputs, classes: bool = False) -> Agreement:
    """How a candidate's outputs agree with the reference's (top-1 only when `classes`: the output is class scores)."""
    numerics = compare(reference, candidate)
    ref, got = _flat(reference), _flat(candidate)
    finite = np.isfinite(ref) & np.isfinite(got) if ref.shape == got.shape else np.zeros(0, bool)
    if finite.any():
        diff = np.abs(ref[finite] - got[finite])
        mean_rel = float(diff.mean() / (np.abs(ref[finite]).mean() or 1.0))
        denom = float(np.linalg.norm(ref[finite]) * np.linalg.norm(got[finite]))
        cosine = float(np.dot(ref[finite], got[finite]) / denom) if denom else (1.0 if not diff.any() else 0.0)
    else:
        mean_rel, cosine = (0.0, 1.0) if numerics.max_abs_error == 0 else (float("inf"), 0.0)
    return Agreement(
        numerics.max_abs_error,
        numerics.max_rel_error,
        mean_rel,
        cosine,
        top1(reference, candidate) if classes else None,
    )


@dataclasses.dataclass(frozen=True)
class TaskScore(Record):
    """A model's outputs against the labels: top-1 accuracy for class ids, MAE and RMSE for float targets."""

    accuracy: float | None = None  # share of samples whose unique top class is the label (0-1)
    mae: float | None = None
    rmse: float | None = None


def stacked(outputs: Outputs, output: int) -> np.ndarray:
    """Output number `output` of every sample, stacked on the first axis (batch rows in order)."""
    return np.concatenate([np.asarray(s[output]).reshape(-1, *np.asarray(s[output]).shape[1:]) for s in outputs])


def task_score(outputs: Outputs, output: int, labels: np.ndarray) -> TaskScore:
    """Score output number `output` against `labels` (one per batch row; rows past the outputs are ignored).

    Integer labels need class scores (rows, classes >= 2); a row whose top score is tied
    (all zeros after int8 collapsed) counts as wrong, as in `top1`.
    """
    got = stacked(outputs, output)
    want = labels[: len(got)]
    if labels.dtype.kind in "iu":
        scores = got.reshape(len(got), -1)
        if scores.shape[1] < 2:
            raise InputDataError(
                f"integer labels are class ids, but the output has shape {got.shape[1:]}, not class scores. "
                "Pass float targets shaped like the output instead."
            )
        top = scores.max(axis=1, keepdims=True)
        unique = (scores == top).sum(axis=1) == 1
        return TaskScore(accuracy=float(np.mean(unique & (np.argmax(scores, axis=1) == want))))
    if want.shape[1:] != got.shape[1:]:
        raise InputDataError(
            f"float labels are targets shaped like the output: they have shape {want.shape[1:]} per sample, "
            f"the output {got.shape[1:]}. Reshape them."
        )
    diff = got.astype(np.float64) - want.astype(np.float64)
    return TaskScore(mae=float(np.mean(np.abs(diff))), rmse=float(np.sqrt(np.mean(diff**2))))


def class_scores(content: bytes) -> bool:
    """True when the model has one output, (batch, classes >= 2), made by a dense layer or a softmax.

    Only then does top-1 agreement mean something.
    """
    sub = read_model(content).primary
    if len(sub.outputs) != 1:
        return False
    t = sub.tensors[sub.outputs[0]]
    producer = sub.producers().get(t.index)
    return len(t.shape) == 2 and t.shape[-1] >= 2 and producer is not None and sub.ops[producer].op in CLASS_SCORE_OPS


def reference_spread(reference: Outputs) -> float:
    """How much the float outputs move across samples, as a share of their scale (0: the same for every input)."""
    flat = np.stack([np.concatenate([o.reshape(-1) for o in s]) for s in reference])
    scale = float(np.max(np.abs(flat)))
    if scale < 1e-30 or len(flat) < 2:
        return 0.0
    return float(np.max(flat.max(axis=0) - flat.min(axis=0))) / scale


@dataclasses.dataclass(frozen=True)
class Judgement(Record):
    """Whether errors relative to a reference's outputs mean something, and when not, why and what to pass."""

    judged: bool
    reason: str | None = None  # what the reference outputs are, when they cannot be judged on
    kind: str | None = None  # 'zero', 'constant' or 'below-step'
    remedy: str | None = None  # what to pass instead, in the command's own words (set by the command)

    @property
    def message(self) -> str:
        """'accuracy cannot be judged: <reason>; <remedy>' ('' when judged)."""
        if self.judged:
            return ""
        return f"accuracy cannot be judged: {self.reason}" + (f"; {self.remedy}" if self.remedy else "")


JUDGED = Judgement(True)
FLOAT32_TINY = float(np.finfo(np.float32).tiny)  # float32's smallest normal number: below it, values are noise


def judge(reference: Outputs, *, output_step: float | Sequence[float | None] | None = None) -> Judgement:
    """Whether accuracy can be judged against `reference` (per sample, every output): the one judgement.

    It cannot when the reference outputs are zero or float32 noise (scale below float32's
    smallest normal number); when they are the same for every input (across two samples
    or more they move by less than DEGENERATE_SPREAD of their scale); or when an output's
    scale is below `output_step`, the quantization step of the quantized model's matching
    output (one value for every output, or one per output; None for a float output):
    that model can only give 0 or one step there.
    """
    samples = [[np.asarray(o, dtype=np.float64) for o in s] for s in reference]
    if not samples or not samples[0]:
        return Judgement(False, "there are no reference outputs to compare with", "zero")
    n = len(samples[0])
    scales = [0.0] * n  # per output, its largest finite |value| over the samples
    for sample in samples:
        for i, v in enumerate(sample[:n]):
            scales[i] = max(scales[i], float(np.max(np.abs(v[np.isfinite(v)]), initial=0.0)))
    scale = max(scales)
    if scale < FLOAT32_TINY:
        return Judgement(False, f"the reference outputs are zero (largest |value| {scale:.3g})", "zero")
    if len(samples) >= 2:
        spread = reference_spread(samples)
        if spread < DEGENERATE_SPREAD:
            moved = (
                f"are the same for every one of the {len(samples)} inputs"
                if spread == 0
                else f"move by only {spread:.2g} of their scale across the {len(samples)} inputs"
            )
            return Judgement(False, f"the reference outputs {moved}", "constant")
    steps = list(output_step) if isinstance(output_step, Sequence) else [output_step] * n
    for i, (out_scale, step) in enumerate(zip(scales, steps)):
        if step is not None and out_scale < step:
            which = f"output {i}'s" if n > 1 else "the reference outputs'"
            return Judgement(
                False,
                f"{which} scale ({out_scale:.3g}) is below the quantized output's step ({step:.3g}): the quantized "
                "model can only give 0 or one step there",
                "below-step",
            )
    return JUDGED


def output_steps(content: bytes) -> tuple[float | None, ...]:
    """Per model output, the quantization step its values come in (None for a float one).

    The output tensor's scale, or that of the integer tensor a DEQUANTIZE turns into it;
    None as well for per-channel quantization (no one step).
    """
    sub = read_model(content).primary
    producers = sub.producers()
    steps: list[float | None] = []
    for t in sub.outputs:
        tensor = sub.tensors[t]
        op = producers.get(t)
        if not tensor.quantized and op is not None and sub.ops[op].op == "DEQUANTIZE":
            tensor = sub.tensors[sub.ops[op].inputs[0]]
        quantized = tensor.quantized and tensor.num_scales == 1 and tensor.dtype.startswith(("int", "uint"))
        steps.append(float(tensor.scale) if quantized and tensor.scale else None)
    return tuple(steps)


def xnnpack_error(content: bytes, seed: int = 0) -> float:
    """Relative error of a model's XNNPACK outputs against its built-in kernels' on seeded random inputs.

    The hazard probes' measure: a hazard is a delegated node XNNPACK computes wrong.
    """
    rng = np.random.default_rng(seed)
    sub = read_model(content).primary
    sample = {sub.tensors[t].name: rng.uniform(-2, 2, sub.tensors[t].shape).astype(np.float32) for t in sub.inputs}
    return compare(outputs(content, [sample], xnnpack=False), outputs(content, [sample], xnnpack=True)).max_rel_error
