"""Causes: parameters that must be constants, and op-parameter limits."""

from __future__ import annotations

from xnnfit.kb.cause import Cause, Probe
from xnnfit.kb.conditions import ComputedParameter, InputCountOutside, PoolStride, RankAbove, StridedSliceLimits
from xnnfit.kb.probes import lam, layers

CAUSES = (
    Cause(
        id="XNN020",
        title="weight or shape parameter computed at run time",
        condition=ComputedParameter(),
        why="XNNPACK builds its plan once, so weights and shape/axes/bounds/paddings must be constants stored in the model; this one is computed by other nodes.",
        fix="y = tf.reshape(x, (1, -1))   # Python ints, not tf.shape(x); convert with a fixed batch",
        example="tf.reshape(x, (tf.shape(x)[0], -1))",
        rewrites=("XR002",),
        probes=(
            Probe("rejected", "RESHAPE", lam(lambda tf, x: tf.reshape(x, (tf.shape(x)[0], -1)), shape=(4, 4)), dynamic_batch=True),
            Probe("delegated", "RESHAPE", lam(lambda tf, x: tf.reshape(x, (-1, 16)), shape=(4, 4))),
        ),
    ),
    Cause(
        id="XNN022",
        title="strided slice with step != 1 or an index that drops an axis",
        condition=StridedSliceLimits(),
        why="XNNPACK slices with stride 1 only and without ellipsis, new-axis or shrink masks (x[:, ::2], x[:, 0] and x[..., None] are refused).",
        fix="y = tf.reshape(x[:, 0:1], (1, 16))   # for x[:, 0]; for x[:, ::2] reshape to (.., n, 2) and slice [..., 0:1]",
        example="x[:, ::2] or x[:, 0]",
        rewrites=("XR005",),
        probes=(
            Probe("rejected", "STRIDED_SLICE", lam(lambda tf, x: x[:, ::2] * 2.0)),
            Probe("rejected", "STRIDED_SLICE", lam(lambda tf, x: x[:, 0] * 2.0, shape=(4, 4))),
            Probe("delegated", "STRIDED_SLICE", lam(lambda tf, x: x[:, 1:9] * 2.0)),
        ),
    ),
    Cause(
        id="XNN023",
        title="concatenation of more than 5 tensors",
        condition=InputCountOutside("CONCATENATION", 2, 5),
        why="The delegate concatenates 2 to 5 inputs in one node; more inputs stay on CPU kernels.",
        fix="y = tf.concat([tf.concat(xs[:4], -1), tf.concat(xs[4:], -1)], -1)   # groups of at most 5",
        example="tf.concat([x] * 6, axis=-1)",
        rewrites=("XR004",),
        probes=(
            Probe("rejected", "CONCATENATION", lam(lambda tf, x: tf.concat([x * float(i + 1) for i in range(6)], axis=-1))),
            Probe("delegated", "CONCATENATION", lam(lambda tf, x: tf.concat([x * float(i + 1) for i in range(5)], axis=-1))),
        ),
    ),
    Cause(
        id="XNN024",
        title="SPLIT into 1 or more than 4 parts",
        condition=InputCountOutside("SPLIT", 2, 4, outputs=True),
        why="XNNPACK splits evenly into 2, 3 or 4 outputs only.",
        fix="parts = [x[:, i * 2:(i + 1) * 2] for i in range(8)]   # static slices instead of tf.split(x, 8, axis=1)",
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
        fix="# subsample with a reshape and a stride-1 slice (xnnfit fix does this), or use a 2x2 pool / strided conv",
        example="keras.layers.AveragePooling2D(pool_size=1, strides=2)",
        rewrites=("XR005",),
        probes=(
            Probe("rejected", "AVERAGE_POOL_2D", layers(lambda k: k.layers.AveragePooling2D(pool_size=1, strides=2), shape=(8, 8, 4))),
            Probe("delegated", "AVERAGE_POOL_2D", layers(lambda k: k.layers.AveragePooling2D(pool_size=2, strides=2), shape=(8, 8, 4))),
        ),
    ),
    Cause(
        id="XNN026",
        title="tensor rank above 6",
        condition=RankAbove(6),
        why="XNNPACK tensors have at most 6 dimensions (XNN_MAX_TENSOR_DIMS).",
        fix="# merge adjacent axes with tf.reshape so every tensor has at most 6 dimensions",
        example="tf.reshape(x, (1, 2, 2, 2, 2, 2, 2, 2)) + 1",
        probes=(
            Probe("rejected", "ADD", lam(lambda tf, x: tf.reshape(tf.reshape(x, (-1, 2, 2, 2, 2, 2, 2, 2)) + 1.0, (-1, 128)), shape=(128,))),
            Probe("delegated", "ADD", lam(lambda tf, x: tf.reshape(tf.reshape(x, (-1, 2, 2, 2, 2, 8)) + 1.0, (-1, 128)), shape=(128,))),
        ),
    ),
)
