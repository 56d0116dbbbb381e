"""Every threshold xnnfit decides with, in one place, each with the reason for its value."""

from __future__ import annotations

import dataclasses

from xnnfit.core.record import Record


def _why(default, reason: str):
    return dataclasses.field(default=default, metadata={"why": reason})


@dataclasses.dataclass(frozen=True)
class VerifyPolicy(Record):
    """When `xnnfit fix` keeps a rewrite (rewrite/verify.py applies it)."""

    samples: int = _why(
        4, "seeded inputs every candidate runs on: enough to catch a wrong branch of a select, cheap on big models"
    )
    rounding_tolerance: float = _why(
        1e-5,
        "exact rules change only which kernels run (XNNPACK vs built-in reassociate sums): "
        "float32 rounding over a deep "
        "graph stays well below 1e-5 of the output scale, a wrong rewrite does not",
    )
    quantized_margin: float = _why(
        1.5,
        "a quantized model's error against the float reference moves when requantization points move; "
        "1.5x of the original's error keeps rewrites that are as faithful, refuses ones that add real error",
    )
    quantized_floor: float = _why(
        1e-6,
        "share of the output scale added to the quantized bound, so an original with ~0 error "
        "does not refuse float rounding",
    )
    internal_floor: float = _why(
        1e-4,
        "shared intermediate tensors are compared relative to their own scale; below 1e-4 the "
        "difference is kernel rounding "
        "(XNNPACK vs built-in), above it the rewrite changed what the tensor holds",
    )
    slower_margin: float = _why(
        1.05, "a candidate is slower only when its median is >5% above and its p10 above the original's p90"
    )
    min_runs: int = _why(5, "fewest timed runs for any latency comparison: fewer and the median is one noisy sample")

    def comparison_runs(self, runs: int) -> int:
        """`runs` for a latency comparison; InputDataError when fewer than `min_runs` (never raised silently)."""
        if runs < self.min_runs:
            from xnnfit.core.errors import InputDataError

            raise InputDataError(
                f"runs={runs} is too few for a latency comparison: its median would be one noisy sample. "
                f"Pass --runs {self.min_runs} or more."
            )
        return runs

    def bound(self, exactness: str, tolerance: float) -> float:
        """Max output error (share of output scale) a rule may introduce: float rounding for exact rules."""
        return self.rounding_tolerance if exactness == "exact" else tolerance

    def internal_bound(self, exactness: str, tolerance: float) -> float:
        """Max difference on shared intermediate tensors (share of each tensor's scale)."""
        return max(self.bound(exactness, tolerance), self.internal_floor)


DEFAULT_POLICY = VerifyPolicy()

# Sample data and conversions.
CALIBRATION_SAMPLES = (
    8  # random calibration samples when no --calibration: enough for ranges to settle on a toy, fast to convert
)
RANDOM_EVAL_SAMPLES = 16  # synthetic inputs accuracy is measured on without --eval data: indicative only, so few
# (real --eval data is used whole, or up to --eval-samples)
DEFAULT_INPUT_RANGE = (-1.0, 1.0)  # random float inputs when nothing says what the model expects: both signs at unit
# scale, where normalized activations live; a model that expects [0, 255] or a calibrated [0, 1] says so (model/ranges)
DEGENERATE_SPREAD = (
    1e-3  # float outputs that move by less than this share of their scale across eval inputs carry no signal
)
LATENCY_TIE = 0.05  # latencies closer than 5% (or the fastest's own p10-p90 spread) are equal when choosing a recipe
DEFAULT_MAX_ERROR = (
    0.05  # quant budget: max abs error / max |float output|; 5% keeps the top classes of a classifier in place
)
DEFAULT_MAX_ACCURACY_DROP = 1.0  # budget with class labels: top-1 points below the fp32 conversion's; one point is
# what a model release usually tolerates, and it is over 4 samples on a 450-sample eval set, above sampling noise
# Quantization findings (kb/quant_error.py, from the TF quantization debugger's per-layer comparison).
QUANT_TENSOR_ERROR = 0.2  # an op's own error (max |int8 - float| over its float scale, or the median channel's) above
# 20% is a tensor the quantization broke: rounding adds half a step (0.2% of a full-range int8 tensor), and on the
# trained test models calibration noise stayed under 7% per tensor (17% for one channel), a destroyed tensor is ~100%
FILL_RATIO = 255.0  # a constant this many times beyond the data it shares a range with puts all that data inside one
# of int8's 255 steps: the data quantizes to the zero point (the -3.4e38 attention mask fill is ~1e37 times)
BELOW_STEP_SHARE = 0.5  # most of a tensor's nonzero values round to zero: smaller than half its quantized step
CLIP_SHARE = 0.01  # values beyond the quantized range on 1% of a tensor's elements: the calibrated range is too narrow
# when the calibration data stays under it (a range shared with another tensor clips the calibration data too)
OUTLIER_RATIO = 32.0  # a per-tensor weight scale set by weights 32x the median leaves the median weight 4 of the 127
# int8 steps: its channels lose most of their precision
QUANT_DEBUG_SAMPLES = 64  # eval inputs the quantization debugger runs per candidate: its debug model runs every op in
# int8 and in float and keeps every tensor; 64 samples average the per-tensor errors stably in seconds on small models
FOLD_BYTES = 4 * 2**20  # XR002 stores a data-independent tensor as a constant up to this size: a causal mask or a
# relative-position bias at 1024 tokens (1024² float32) fits; anything larger grows the file more than the CPU time
# it saves, so the fold stops one step earlier (at that tensor's smaller inputs) and the op computing it stays
SAVEDMODEL_ROUTE_BYTES = 32 * 2**20  # models with more weights convert through a SavedModel: the concrete-function
# route holds extra copies of every weight (measured 9.4 GB vs 4.1 GB peak on VGG16) but skips a ~0.4 s disk round trip
COMPILED_CROSSCHECK_BYTES = 64 * 2**20  # check cross-checks CompiledModel.is_fully_accelerated() up to this model size:
# it compiles the model a second time (VGG16-sized models would double check's time and memory for one boolean)
MEMORY_SHARE = 0.25  # a model may take this share of the free memory to run: bench and fix hold several interpreters of
# it at once (XNNPACK on and off, the original and its rewrite, each thread count) and the samples they feed, so a
# model whose single run needs more than a quarter cannot be measured without swapping or the OOM killer;
# --max-memory overrides it
DEFAULT_DIM = 64  # size for unknown non-batch dimensions (sequence length, image side) nothing else pins: small,
# valid for most models

# Timing.
BENCH_RUNS, BENCH_WARMUP = 30, 5  # interleaved runs: medians stable to a few % on this 2-core CI machine
PROFILE_RUNS, PROFILE_WARMUP = 20, 3  # per piece: pieces are many, each run is short
SWEEP_PROFILE_DIVISOR = 3  # quant profiles each recipe with runs/3: only the CPU share is used, not the latency
SUM_TOLERANCE = 0.15  # profile pieces may differ from the whole by this share before the report flags it
WIDE_SPREAD = 0.5  # (p90 - p10) / median above this is flagged as a noisy measurement

DEFAULT_TIMEOUT = 900.0  # seconds per child (conversion, run): a 500 MB model converts in minutes; a hang is stopped
