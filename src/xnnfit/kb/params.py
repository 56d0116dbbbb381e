"""Causes: parameters that must be constants, and op-parameter limits."""

from __future__ import annotations

from xnnfit.kb.cause import Cause, Probe
from xnnfit.kb.conditions import (
    ComputedParameter,
    InputCountOutside,
    PoolStride,
    RankAbove,
    SliceToEnd,
    StridedSliceLimits,
)
from xnnfit.kb.probes import lam, layers

CAUSES = (
    Cause(
        id="XNN020",
        title="weight or shape parameter computed at run time",
        condition=ComputedParameter(),
        why="XNNPACK builds its plan once, so weights and shape/axes/bounds/paddings must be "
        "constants stored in the model; this one is computed by other nodes.",
        example="tf.reshape(x, (tf.shape(x)[0], -1))",
        rewrites=("XR002",),
        probes=(
            Probe(
                "rejected",
                "RESHAPE",
                lam(lambda tf, x: tf.reshape(x, (tf.shape(x)[0], -1)), shape=(4, 4)),
                dynamic_batch=True,
            ),
            Probe("delegated", "RESHAPE", lam(lambda tf, x: tf.reshape(x, (-1, 16)), shape=(4, 4))),
        ),
    ),
    Cause(
        id="XNN022",
        title="strided slice with step != 1 or an index that drops an axis",
        condition=StridedSliceLimits(),
        why="XNNPACK slices with stride 1 only and without ellipsis, new-axis or shrink masks (x[:, "
        "::2], x[:, 0] and x[..., None] are refused).",
        example="x[:, ::2] or x[:, 0]",
        rewrites=("XR005",),
        probes=(
            Probe("rejected", "STRIDED_SLICE", lam(lambda tf, x: x[:, ::2] * 2.0)),
            Probe("rejected", "STRIDED_SLICE", lam(lambda tf, x: x[:, 0] * 2.0, shape=(4, 4))),
            Probe("delegated", "STRIDED_SLICE", lam(lambda tf, x: x[:, 1:9] * 2.0)),
        ),
    ),
    Cause(
        id="XNN035",
        title="slice with size -1 (to the end of an axis)",
        condition=SliceToEnd(),
        why="XNNPACK's SLICE wants every size as a positive constant; a -1 ('to the end') is refused "
        "by the delegate of LiteRT 1.0.1 and later "
        "(tflite-runtime 2.14 took it), so the slice runs on its CPU kernel.",
        example="tf.slice(x, [0, 2], [-1, 4])",
        probes=(
            Probe("rejected", "SLICE", lam(lambda tf, x: tf.slice(x, [0, 2], [-1, 4]))),
            Probe("rejected", "SLICE", lambda: _slice_to_end()),
            Probe("delegated", "SLICE", lambda: _slice_sized()),
        ),
    ),
    Cause(
        id="XNN023",
        title="concatenation of more than 5 tensors",
        condition=InputCountOutside("CONCATENATION", 2, 5),
        why="The delegate concatenates 2 to 5 inputs in one node; more inputs stay on CPU kernels.",
        example="tf.concat([x] * 6, axis=-1)",
        rewrites=("XR004",),
        probes=(
            Probe(
                "rejected", "CONCATENATION", lam(lambda tf, x: tf.concat([x * float(i + 1) for i in range(6)], axis=-1))
            ),
            Probe(
                "delegated",
                "CONCATENATION",
                lam(lambda tf, x: tf.concat([x * float(i + 1) for i in range(5)], axis=-1)),
            ),
        ),
    ),
    Cause(
        id="XNN024",
        title="SPLIT into 1 or more than 4 parts",
        condition=InputCountOutside("SPLIT", 2, 4, outputs=True),
        why="XNNPACK splits evenly into 2, 3 or 4 outputs only.",
        example="tf.split(x, 8, axis=1)",
        rewrites=("XR004",),
        probes=(
            Probe("rejected", "SPLIT", lam(lambda tf, x: tf.concat(tf.split(x, 8, axis=1)[::-1], 1))),
            Probe("delegated", "SPLIT", lam(lambda tf, x: tf.concat(tf.split(x, 4, axis=1)[::-1], 1))),
        ),
    ),
    Cause(
        id="XNN025",
        title="pooling whose stride exceeds its window (1x1 pool, stride 2)",
        condition=PoolStride(),
        why="XNNPACK pooling needs stride <= window size; a 1x1 window with stride > 1 is refused.",
        example="keras.layers.AveragePooling2D(pool_size=1, strides=2)",
        rewrites=("XR005",),
        probes=(
            Probe(
                "rejected",
                "AVERAGE_POOL_2D",
                layers(lambda k: k.layers.AveragePooling2D(pool_size=1, strides=2), shape=(8, 8, 4)),
            ),
            Probe(
                "delegated",
                "AVERAGE_POOL_2D",
                layers(lambda k: k.layers.AveragePooling2D(pool_size=2, strides=2), shape=(8, 8, 4)),
            ),
        ),
    ),
    Cause(
        id="XNN026",
        title="tensor rank above 6",
        condition=RankAbove(6),
        why="XNNPACK tensors have at most 6 dimensions (XNN_MAX_TENSOR_DIMS).",
        example="tf.reshape(x, (1, 2, 2, 2, 2, 2, 2, 2)) + 1",
        probes=(
            Probe(
                "rejected",
                "ADD",
                lam(lambda tf, x: tf.reshape(tf.reshape(x, (-1, 2, 2, 2, 2, 2, 2, 2)) + 1.0, (-1, 128)), shape=(128,)),
            ),
            Probe(
                "delegated",
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
