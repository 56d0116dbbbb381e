"""Quantization errors: why a quantized tensor departs from the float model's, as data with stable ids.

TensorFlow's quantization debugger (model/quant_debug.py) runs every quantized op of a
full-integer model twice on the same quantized inputs, in int8 and in float, so each
tensor's error is the error its own op adds, not the error it inherits. A tensor whose
own error reaches `policy.QUANT_TENSOR_ERROR` of its float scale explodes; the causes
below say why, each from that tensor's measured statistics (`TensorStats`), and each is
proven by a probe whose int8 conversion shows it and a control that does not
(tests/kb/test_quant_error.py). An exploding tensor no cause explains is reported as
unexplained.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

from xnnfit.core.policy import (
    BELOW_STEP_SHARE,
    CLIP_SHARE,
    FILL_RATIO,
    OUTLIER_RATIO,
    QUANT_TENSOR_ERROR,
)
from xnnfit.core.record import Record
from xnnfit.kb.probes import lam

FILL_ADVICE = 4.0  # a finite fill this many times the data's largest magnitude: exp() of it is ~0 after the max is
# subtracted, and the int8 range it sets still resolves the data in steps of 2% of its scale


@dataclasses.dataclass(frozen=True)
class TensorStats(Record):
    """One quantized tensor, measured on the eval inputs against the same op run in float on the same inputs.

    Ratios are per sample, then averaged over the samples (the debugger's aggregation).
    """

    tensor: str  # its name in the quantized model
    op: str  # the op that makes it ('QUANTIZE' for a model input's quantization)
    node: int  # that op's index in the quantized model (subgraph 0)
    scale: float
    zero_point: int
    absmax: float  # largest |float value|
    error: float  # max |dequantized - float| / max |float|
    channel_error: float  # the same per channel (last axis), the median channel's
    clipped: float  # share of float values beyond the quantized range
    below_step: float  # share of nonzero float values smaller than half a step (they quantize to zero)
    clipped_calibration: float | None = None  # `clipped` on the calibration inputs; None when not measured
    fill: float = 0.0  # largest |constant| among the inputs of this op and of the ops reading this tensor
    fill_node: str | None = None  # the output tensor of the op holding that constant
    shared_node: str | None = None  # output of an op reading this tensor that holds it under one scale with others
    weight_spread: float = 0.0  # max |w| / median |w| of a per-tensor quantized constant input of this op (0: none)
    qmin: int = -128
    qmax: int = 127
    samples: int = 0

    @property
    def range(self) -> float:
        """The real interval the quantized tensor can hold: (qmax - qmin) steps."""
        return (self.qmax - self.qmin) * self.scale

    @property
    def worst(self) -> float:
        """The larger of the tensor's and its median channel's error: what explodes."""
        return max(self.error, self.channel_error)


def explodes(t: TensorStats) -> bool:
    """The op's own error reaches QUANT_TENSOR_ERROR of its float scale (the whole tensor's, or a typical channel's)."""
    return t.worst >= QUANT_TENSOR_ERROR


@dataclasses.dataclass(frozen=True)
class QuantProbe:
    """A float model converted to int8 on calibration inputs drawn from one range and evaluated on another.

    `holds`: the cause must explain its first exploding tensor; a control (False) must have no finding of this cause.
    """

    what: str
    build: Callable[[], Any] = dataclasses.field(compare=False)  # -> keras.Model with one input 'x'
    holds: bool
    calibration: tuple[float, float] = (-1.0, 1.0)  # uniform range of the calibration inputs
    eval: tuple[float, float] = (-1.0, 1.0)  # uniform range of the eval inputs


@dataclasses.dataclass(frozen=True)
class QuantCause:
    """Why a quantized tensor lost its values: one KB entry with a stable id."""

    id: str
    title: str
    condition: Callable[[TensorStats], bool]
    when: str  # the condition, as `xnnfit explain` says it
    why: str
    advice: str  # the way out, in general (what `xnnfit explain` shows)
    detail: str  # str.format over TensorStats fields and `fill_hint`: this tensor's numbers for the advice
    probes: tuple[QuantProbe, ...]
    keeps_float: bool = True  # keeping the op (and the op holding a fill) in float restores the tensor
    rewrites: tuple[str, ...] = ()  # no rewrite rule repairs these; the repair is a conversion recipe

    def applies(self, t: TensorStats) -> bool:
        """True when this cause explains the exploding tensor."""
        return self.condition(t)

    def advise(self, t: TensorStats) -> str:
        """The advice, then this tensor's numbers."""
        return f"{self.advice} ({self.detail.format(fill_hint=FILL_ADVICE * t.absmax, **dataclasses.asdict(t))})"

    def float_nodes(self, t: TensorStats) -> tuple[str, ...]:
        """Output tensors of the ops to keep in float for this tensor: its op, and the op holding the fill or the
        shared range."""
        if not self.keeps_float or t.op == "QUANTIZE":
            return ()
        partner = {FILL: t.fill_node, SHARED: t.shared_node}.get(self.id)
        return tuple(dict.fromkeys(n for n in (t.tensor, partner) if n))


def _fill(t: TensorStats) -> bool:
    scale = max(t.absmax, 1e-30)
    return t.fill >= FILL_RATIO * scale and t.range >= FILL_RATIO * scale


def _below_step(t: TensorStats) -> bool:
    return t.below_step >= BELOW_STEP_SHARE and not _fill(t) and not _outliers(t)


def _clipped(t: TensorStats) -> bool:
    return t.clipped >= CLIP_SHARE and t.clipped_calibration is not None and t.clipped_calibration < CLIP_SHARE


def _shared(t: TensorStats) -> bool:
    return (
        t.shared_node is not None
        and t.clipped >= CLIP_SHARE
        and t.clipped_calibration is not None
        and t.clipped_calibration >= CLIP_SHARE
    )


def _outliers(t: TensorStats) -> bool:
    return t.weight_spread >= OUTLIER_RATIO


FILL, BELOW_STEP, CLIPPED, OUTLIERS, SHARED = "XNN036", "XNN037", "XNN038", "XNN039", "XNN042"
_MIN = -3.4e38  # float32's minimum: the fill Keras MultiHeadAttention (attention_mask) gives masked scores

CAUSES: dict[str, QuantCause] = {
    c.id: c
    for c in (
        QuantCause(
            id=FILL,
            title="mask or fill constant far outside the data range",
            condition=_fill,
            when=f"a constant among the inputs of the tensor's op or of the ops reading it is at least {FILL_RATIO:g}x "
            "the tensor's largest float value, and the tensor's quantized range spans it",
            why="int8 shares one scale between the data and the constant it is selected or combined with: a fill "
            "such as float32's minimum (Keras MultiHeadAttention with attention_mask fills masked scores with it) "
            "stretches the range to ~1e38, every real value falls inside one step and quantizes to the zero point, "
            "and the softmax after it sees no scores at all.",
            advice="keep this op and the one holding the fill in float (xnnfit's int8-repaired candidate does; "
            "the rest stays int8), or, in your own masking code, fill with a finite value a few times the data's "
            f"largest magnitude ({FILL_ADVICE:g}x) instead of the dtype's minimum or -1e9",
            detail="the fill is {fill:.3g}, the data reaches {absmax:.3g}: fill with about -{fill_hint:.3g}, "
            "scores - {fill_hint:.3g} * (1 - mask)",
            probes=(
                QuantProbe(
                    "tf.where(x > 0, 3x, float32 min): the masked scores of an attention layer",
                    lam(lambda tf, x: tf.nn.softmax(tf.where(x > 0.0, x * 3.0, _MIN)), name="masked_scores"),
                    holds=True,
                ),
                QuantProbe(
                    "tf.where(x > 0, 3x, -12): a finite fill 4x the scores' range",
                    lam(lambda tf, x: tf.nn.softmax(tf.where(x > 0.0, x * 3.0, -12.0)), name="masked_scores"),
                    holds=False,
                ),
            ),
        ),
        QuantCause(
            id=BELOW_STEP,
            title="values below the quantized step",
            condition=_below_step,
            when=f"at least {BELOW_STEP_SHARE:.0%} of the tensor's nonzero float values are smaller than half its "
            f"quantized step, and neither a fill constant ({FILL}) nor weight outliers ({OUTLIERS}) explain the range",
            why="the tensor's scale was fixed at calibration (or by the converter's smallest range): values much "
            "smaller than one step, such as near-zero outputs of an untrained layer or inputs far smaller than the "
            "calibration data, round to the zero point and the op's result is lost.",
            advice="calibrate on inputs like the ones the model will see (--calibration), or scale this op's "
            "values up to span their range (normalize them, or fold a constant factor into the next layer); "
            "keeping the op in float (int8-repaired) also keeps them",
            detail="{below_step:.0%} of its values are under half the step {scale:.3g}; they reach {absmax:.3g}",
            probes=(
                QuantProbe(
                    "x * 2 calibrated on [-1, 1], evaluated on [-0.001, 0.001]",
                    lam(lambda tf, x: x * 2.0, name="scaled"),
                    holds=True,
                    eval=(-1e-3, 1e-3),
                ),
                QuantProbe(
                    "x * 2 calibrated and evaluated on [-1, 1]",
                    lam(lambda tf, x: x * 2.0, name="scaled"),
                    holds=False,
                ),
            ),
        ),
        QuantCause(
            id=CLIPPED,
            title="activations clipped by a calibration range narrower than the data",
            condition=_clipped,
            when=f"at least {CLIP_SHARE:.0%} of the tensor's float values on the eval inputs lie beyond its "
            f"quantized range, but fewer on the calibration inputs (else {SHARED})",
            why="int8 holds only the range seen at calibration: values beyond it saturate at the end of the range, "
            "so inputs larger than the calibration data lose their magnitude.",
            advice="calibrate on data that covers the inputs the model will see (--calibration)",
            detail="{clipped:.0%} of its values are clipped; they reach {absmax:.3g}, the range ends at "
            "{scale:.3g} x ({qmax} - {zero_point})",
            keeps_float=False,
            probes=(
                QuantProbe(
                    "x * 2 calibrated on [0, 1], evaluated on [0, 3]",
                    lam(lambda tf, x: x * 2.0, name="scaled"),
                    holds=True,
                    calibration=(0.0, 1.0),
                    eval=(0.0, 3.0),
                ),
                QuantProbe(
                    "x * 2 calibrated and evaluated on [0, 3]",
                    lam(lambda tf, x: x * 2.0, name="scaled"),
                    holds=False,
                    calibration=(0.0, 3.0),
                    eval=(0.0, 3.0),
                ),
            ),
        ),
        QuantCause(
            id=OUTLIERS,
            title="weight outliers under one per-tensor scale",
            condition=_outliers,
            when=f"the op has a constant input quantized with one scale whose largest magnitude is at least "
            f"{OUTLIER_RATIO:g}x its median",
            why="a per-tensor weight scale is set by the largest weight: a few outliers leave the typical weights "
            "a handful of the 127 int8 steps, or none, and the channels they feed lose their values.",
            advice="keep this op in float (int8-repaired does), or bring the outliers in (clip or rescale them, "
            "fold a per-channel factor into a neighbouring layer)",
            detail="the largest weight is {weight_spread:.3g}x the median",
            probes=(
                QuantProbe(
                    "x * w with one weight 1000x the others",
                    lam(lambda tf, x: x * tf.constant([1000.0] + [1.0] * 15), shape=(8, 16), name="scaled"),
                    holds=True,
                ),
                QuantProbe(
                    "x * w with weights between 0.5 and 1.5",
                    lam(lambda tf, x: x * tf.linspace(0.5, 1.5, 16), shape=(8, 16), name="scaled"),
                    holds=False,
                ),
            ),
        ),
        QuantCause(
            id=SHARED,
            title="range shared with a narrower tensor",
            condition=_shared,
            when=f"at least {CLIP_SHARE:.0%} of the tensor's float values lie beyond its quantized range on the "
            "calibration inputs too, and an op reading it (select, concatenation, maximum, minimum, pack) holds it "
            "under one scale with its other tensors",
            why="the converter gives a select, a concatenation or a max/min one scale for all its tensors, "
            "calibrated on the output: an input with a wider range than the output (the negative side of "
            "tf.where(x < 0, 0.1 * x, x), a branch that is rarely picked) saturates, even on the calibration data.",
            advice="write the op without the shared range (an activation as LeakyReLU/PReLU or a relu blend, "
            "see `xnnfit explain XNN001`), or keep it and its input in float (int8-repaired does)",
            detail="{clipped:.0%} of its values are clipped, {clipped_calibration:.0%} on the calibration data; "
            "the range is {shared_node}'s",
            probes=(
                QuantProbe(
                    "tf.where(3x > 0, 3x, 0.3x): a leaky activation written with tf.where",
                    lam(lambda tf, x: tf.where(x * 3.0 > 0, x * 3.0, x * 0.3), name="where_activation"),
                    holds=True,
                ),
                QuantProbe(
                    "tf.nn.leaky_relu(3x, 0.1): the same activation as one op",
                    lam(lambda tf, x: tf.nn.leaky_relu(x * 3.0, 0.1), name="leaky_activation"),
                    holds=False,
                ),
            ),
        ),
    )
}


def causes_of(t: TensorStats) -> tuple[QuantCause, ...]:
    """The causes that explain an exploding tensor, in id order (none: unexplained)."""
    return tuple(c for c in CAUSES.values() if c.applies(t))
