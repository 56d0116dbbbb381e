"""Causes: parameters that must be constants, and op-parameter limits."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from xnnfit.kb.cause import Cause
from xnnfit.kb.conditions import (
    InputCountOutside,
    RankAbove,
    computed_parameter,
    pool_stride,
    slice_to_end,
    strided_slice_limits,
)
from xnnfit.kb.limits import MAX_CONCAT_INPUTS, MAX_RANK, MAX_SPLIT_OUTPUTS, MIN_CONCAT_INPUTS, MIN_SPLIT_OUTPUTS
from xnnfit.kb.probes import RUNTIME_RESHAPE, delegated, lam, layers, rejected, runtime_reshape, static_reshape


def _concatenation(n: int) -> Callable[[], Any]:
    """A probe concatenating `n` tensors along the last axis."""
    return lam(lambda tf, x: tf.concat([x * float(i + 1) for i in range(n)], axis=-1))


def _split(n: int) -> Callable[[], Any]:
    """A probe splitting 16 values into `n` parts (their order reversed, so the split is not folded away)."""
    return lam(lambda tf, x: tf.concat(tf.split(x, n, axis=1)[::-1], 1))


def _counts(low: int, high: int) -> str:
    """'2, 3 or 4'."""
    return f"{', '.join(str(n) for n in range(low, high))} or {high}"


CAUSES = (
    Cause(
        id="XNN020",
        title="weight or shape parameter computed at run time",
        condition=computed_parameter,
        why="XNNPACK builds its plan once, so weights and shape/axes/bounds/paddings must be "
        "constants stored in the model; this one is computed by other nodes.",
        example=RUNTIME_RESHAPE,
        rewrites=("XR002",),
        probes=(
            rejected("RESHAPE", runtime_reshape, dynamic_batch=True),
            delegated("RESHAPE", static_reshape),
        ),
    ),
    Cause(
        id="XNN022",
        title="strided slice with step != 1 or an index that drops an axis",
        condition=strided_slice_limits,
        why="XNNPACK slices with stride 1 only and without ellipsis, new-axis or shrink masks (x[:, "
        "::2], x[:, 0] and x[..., None] are refused).",
        example="x[:, ::2] or x[:, 0]",
        rewrites=("XR005",),
        probes=(
            rejected("STRIDED_SLICE", lam(lambda tf, x: x[:, ::2] * 2.0)),
            rejected("STRIDED_SLICE", lam(lambda tf, x: x[:, 0] * 2.0, shape=(4, 4))),
            delegated("STRIDED_SLICE", lam(lambda tf, x: x[:, 1:9] * 2.0)),
        ),
    ),
    Cause(
        id="XNN035",
        title="slice with size -1 (to the end of an axis)",
        condition=slice_to_end,
        why="XNNPACK's SLICE wants every size as a positive constant; a -1 ('to the end') is refused "
        "by the delegate of LiteRT 1.0.1 and later "
        "(tflite-runtime 2.14 took it), so the slice runs on its CPU kernel.",
        example="tf.slice(x, [0, 2], [-1, 4])",
        probes=(
            rejected("SLICE", lam(lambda tf, x: tf.slice(x, [0, 2], [-1, 4]))),
            rejected("SLICE", lambda: _slice_to_end()),
            delegated("SLICE", lambda: _slice_sized()),
        ),
    ),
    Cause(
        id="XNN023",
        title=f"concatenation of more than {MAX_CONCAT_INPUTS} tensors",
        condition=InputCountOutside("CONCATENATION", MIN_CONCAT_INPUTS, MAX_CONCAT_INPUTS),
        why=f"The delegate concatenates {MIN_CONCAT_INPUTS} to {MAX_CONCAT_INPUTS} inputs in one node; more inputs "
        "stay on CPU kernels.",
        example=f"tf.concat([x] * {MAX_CONCAT_INPUTS + 1}, axis=-1)",
        rewrites=("XR004",),
        probes=(
            rejected("CONCATENATION", _concatenation(MAX_CONCAT_INPUTS + 1)),
            delegated("CONCATENATION", _concatenation(MAX_CONCAT_INPUTS)),
        ),
    ),
    Cause(
        id="XNN024",
        title=f"SPLIT into 1 or more than {MAX_SPLIT_OUTPUTS} parts",
        condition=InputCountOutside("SPLIT", MIN_SPLIT_OUTPUTS, MAX_SPLIT_OUTPUTS, outputs=True),
        why=f"XNNPACK splits evenly into {_counts(MIN_SPLIT_OUTPUTS, MAX_SPLIT_OUTPUTS)} outputs only.",
        example="tf.split(x, 8, axis=1)",
        rewrites=("XR004",),
        probes=(rejected("SPLIT", _split(8)), delegated("SPLIT", _split(MAX_SPLIT_OUTPUTS))),
    ),
    Cause(
        id="XNN025",
        title="pooling whose stride exceeds its window (1x1 pool, stride 2)",
        condition=pool_stride,
        why="XNNPACK pooling needs stride <= window size; a 1x1 window with stride > 1 is refused.",
        example="keras.layers.AveragePooling2D(pool_size=1, strides=2)",
        rewrites=("XR005",),
        probes=(
            rejected(
                "AVERAGE_POOL_2D",
                layers(lambda k: k.layers.AveragePooling2D(pool_size=1, strides=2), shape=(8, 8, 4)),
            ),
            delegated(
                "AVERAGE_POOL_2D",
                layers(lambda k: k.layers.AveragePooling2D(pool_size=2, strides=2), shape=(8, 8, 4)),
            ),
        ),
    ),
    Cause(
        id="XNN026",
        title=f"tensor rank above {MAX_RANK}",
        condition=RankAbove(MAX_RANK),
        why=f"XNNPACK tensors have at most {MAX_RANK} dimensions (XNN_MAX_TENSOR_DIMS).",
        example="tf.reshape(x, (1, 2, 2, 2, 2, 2, 2, 2)) + 1",
        probes=(
            rejected(
                "ADD",
                lam(lambda tf, x: tf.reshape(tf.reshape(x, (-1, 2, 2, 2, 2, 2, 2, 2)) + 1.0, (-1, 128)), shape=(128,)),
            ),
            delegated(
                "ADD",
                lam(lambda tf, x: tf.reshape(tf.reshape(x, (-1, 2, 2, 2, 2, 8)) + 1.0, (-1, 128)), shape=(128,)),
            ),
        ),
    ),
)


def _slice_to_end() -> bytes:
    from xnnfit.kb.oneop import variant_model

    return variant_model("SLICE", "size-minus-1")


def _slice_sized() -> bytes:
    from xnnfit.kb.oneop import one_op_model

    return one_op_model("SLICE")
