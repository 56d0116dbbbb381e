"""Causes: ops the XNNPACK delegate does not implement at all, by family."""

from __future__ import annotations

from xnnfit.kb.cause import Cause
from xnnfit.kb.conditions import OpIn
from xnnfit.kb.limits import MAX_SPLIT_OUTPUTS, MIN_SPLIT_OUTPUTS
from xnnfit.kb.probes import RUNTIME_RESHAPE, delegated, lam, layers, rejected, runtime_reshape, static_reshape

COMPARE_SELECT = frozenset(
    "SELECT SELECT_V2 WHERE LESS LESS_EQUAL GREATER GREATER_EQUAL EQUAL NOT_EQUAL "
    "LOGICAL_AND LOGICAL_OR LOGICAL_NOT".split()
)

CAUSES = (
    Cause(
        id="XNN001",
        title="comparison, logical or select op (tf.where)",
        condition=OpIn(COMPARE_SELECT),
        why="XNNPACK has no comparison, logical or select kernels and no bool tensors, so tf.where "
        "and its mask run on CPU kernels and cut the graph.",
        example="tf.where(x < 0, 0.1 * x, tf.square(x))",
        rewrites=("XR001", "XR013"),
        probes=(
            rejected("SELECT", lam(lambda tf, x: tf.where(x < 0, 0.1 * x, tf.square(x)))),
            rejected("LESS", lam(lambda tf, x: tf.where(x < 0, 0.1 * x, tf.square(x)))),
            delegated("LEAKY_RELU", lam(lambda tf, x: tf.nn.leaky_relu(x, 0.1))),
        ),
    ),
    Cause(
        id="XNN002",
        title="CAST",
        condition=OpIn.of("CAST"),
        why="XNNPACK does not implement CAST, and the int/bool tensors it makes are not XNNPACK types either.",
        example="tf.cast(tf.cast(x, tf.int32), tf.float32)",
        probes=(
            rejected("CAST", lam(lambda tf, x: tf.cast(tf.cast(x * 4.0, tf.int32), tf.float32))),
            delegated("FLOOR", lam(lambda tf, x: tf.floor(x * 4.0))),
        ),
    ),
    Cause(
        id="XNN003",
        title="gather, scatter or embedding lookup",
        condition=OpIn.of("GATHER GATHER_ND EMBEDDING_LOOKUP SCATTER_ND ONE_HOT"),
        why="XNNPACK has no gather/scatter kernels: indexing by a tensor of indices runs on CPU kernels.",
        example="tf.gather(x, [0, 2, 4], axis=1)",
        rewrites=("XR010",),
        probes=(
            rejected("GATHER", lam(lambda tf, x: tf.gather(x, [0, 2, 4, 5], axis=1))),
            delegated("CONCATENATION", lam(lambda tf, x: tf.concat([x[:, 0:1], x[:, 2:3], x[:, 4:6]], axis=1))),
        ),
    ),
    Cause(
        id="XNN004",
        title="TILE or BROADCAST_TO",
        condition=OpIn.of("TILE BROADCAST_TO"),
        why="XNNPACK does not implement TILE or BROADCAST_TO; its binary ops broadcast by themselves.",
        example="tf.tile(x, [1, 2])",
        rewrites=("XR003",),
        probes=(
            rejected("TILE", lam(lambda tf, x: tf.tile(x, [1, 2]))),
            delegated("CONCATENATION", lam(lambda tf, x: tf.concat([x, x], axis=1))),
        ),
    ),
    Cause(
        id="XNN005",
        title="POW or SIGN",
        condition=OpIn.of("POW SIGN"),
        why="XNNPACK has no POW or SIGN kernel.",
        example="tf.pow(x, 3.0), tf.sign(x)",
        rewrites=("XR006",),
        probes=(
            rejected("POW", lam(lambda tf, x: tf.pow(tf.abs(x) + 1.0, 2.5))),
            rejected("SIGN", lam(lambda tf, x: tf.sign(x))),
            delegated("SQRT", lam(lambda tf, x: tf.sqrt(tf.abs(x) + 1.0))),
        ),
    ),
    Cause(
        id="XNN006",
        title="LOG_SOFTMAX",
        condition=OpIn.of("LOG_SOFTMAX"),
        why="XNNPACK implements SOFTMAX but not LOG_SOFTMAX.",
        example="tf.nn.log_softmax(x)",
        rewrites=("XR007",),
        probes=(
            rejected("LOG_SOFTMAX", lam(lambda tf, x: tf.nn.log_softmax(x))),
            delegated("SOFTMAX", lam(lambda tf, x: tf.nn.softmax(x))),
        ),
    ),
    Cause(
        id="XNN007",
        title="arg-max, top-k or cumulative sum",
        condition=OpIn.of("ARG_MAX ARG_MIN TOPK_V2 CUMSUM"),
        why="XNNPACK has no index-producing or scan kernels (ARG_MAX/ARG_MIN/TOPK_V2/CUMSUM).",
        example="tf.argmax(x, -1)",
        probes=(
            rejected("ARG_MAX", lam(lambda tf, x: tf.argmax(x, -1))),
            rejected("CUMSUM", lam(lambda tf, x: tf.cumsum(x, axis=-1))),
            delegated("REDUCE_MAX", lam(lambda tf, x: tf.reduce_max(x, -1))),
        ),
    ),
    Cause(
        id="XNN008",
        title="reflect/symmetric or non-zero padding",
        condition=OpIn.of("MIRROR_PAD PADV2"),
        why="XNNPACK only pads with zeros (PAD); MIRROR_PAD and PADV2 run on CPU kernels.",
        example="tf.pad(x, [[0, 0], [1, 1]], mode='REFLECT')",
        probes=(
            rejected("MIRROR_PAD", lam(lambda tf, x: tf.pad(x, [[0, 0], [2, 2]], mode="REFLECT"))),
            delegated("PAD", lam(lambda tf, x: tf.pad(x, [[0, 0], [2, 2]]))),
        ),
    ),
    Cause(
        id="XNN009",
        title="nearest-neighbour resize",
        condition=OpIn.of("RESIZE_NEAREST_NEIGHBOR"),
        why="XNNPACK implements RESIZE_BILINEAR only; nearest-neighbour resizing "
        "(tf.image.resize(method='nearest'), keras.layers.Resizing(interpolation='nearest')) "
        "runs on CPU kernels. Keras 3's UpSampling2D emits TILE instead (XNN004).",
        example="tf.image.resize(x, (16, 16), method='nearest')",
        rewrites=("XR003",),
        probes=(
            rejected(
                "RESIZE_NEAREST_NEIGHBOR",
                lam(lambda tf, x: tf.image.resize(x, (16, 16), method="nearest"), shape=(8, 8, 4)),
            ),
            delegated(
                "RESIZE_BILINEAR",
                lam(lambda tf, x: tf.image.resize(x, (16, 16), method="bilinear"), shape=(8, 8, 4)),
            ),
        ),
    ),
    Cause(
        id="XNN010",
        title="L2_NORMALIZATION",
        condition=OpIn.of("L2_NORMALIZATION"),
        why="XNNPACK has no L2_NORMALIZATION kernel.",
        example="tf.math.l2_normalize(x, axis=-1)",
        rewrites=("XR008",),
        probes=(
            rejected("L2_NORMALIZATION", lam(lambda tf, x: tf.math.l2_normalize(x, axis=-1))),
            delegated(
                "RSQRT",
                lam(lambda tf, x: x * tf.math.rsqrt(tf.reduce_sum(tf.square(x), -1, keepdims=True) + 1e-3)),
            ),
        ),
    ),
    Cause(
        id="XNN011",
        title="product or boolean reduction",
        condition=OpIn.of("REDUCE_PROD REDUCE_ANY REDUCE_ALL"),
        why="XNNPACK reduces with MEAN, SUM, REDUCE_MAX and REDUCE_MIN only.",
        example="tf.reduce_prod(x, -1)",
        rewrites=("XR013",),
        probes=(
            rejected("REDUCE_PROD", lam(lambda tf, x: tf.reduce_prod(x, -1))),
            delegated("SUM", lam(lambda tf, x: tf.reduce_sum(x, -1))),
        ),
    ),
    Cause(
        id="XNN012",
        title="3-D convolution",
        condition=OpIn.of("CONV_3D CONV_3D_TRANSPOSE"),
        why="XNNPACK's TFLite delegate handles 2-D convolutions only.",
        example="keras.layers.Conv3D(8, 3)",
        probes=(
            rejected("CONV_3D", layers(lambda k: k.layers.Conv3D(4, 3), shape=(6, 6, 6, 2))),
            delegated("CONV_2D", layers(lambda k: k.layers.Conv2D(4, 3), shape=(6, 6, 2))),
        ),
    ),
    Cause(
        id="XNN013",
        title="PACK or UNPACK (tf.stack / tf.unstack)",
        condition=OpIn.of("PACK UNPACK"),
        why="XNNPACK does not implement PACK/UNPACK; concatenation and split on an existing axis are delegated.",
        example="tf.stack([x, 2 * x], axis=1)",
        rewrites=("XR014", "XR002"),
        probes=(
            rejected("PACK", lam(lambda tf, x: tf.stack([x, 2.0 * x], axis=1))),
            delegated("CONCATENATION", lam(lambda tf, x: tf.concat([x, 2.0 * x], axis=1))),
        ),
    ),
    Cause(
        id="XNN014",
        title="shape computation at run time (SHAPE, FILL, RANGE...)",
        condition=OpIn.of("SHAPE FILL RANGE ZEROS_LIKE ONES_LIKE BROADCAST_ARGS RANK"),
        why="XNNPACK works on fixed shapes: ops that read or build shapes at run time (tf.shape) are "
        "integer plumbing on CPU kernels.",
        example=RUNTIME_RESHAPE,
        rewrites=("XR002",),
        probes=(
            rejected("SHAPE", runtime_reshape, dynamic_batch=True),
            delegated("RESHAPE", static_reshape),
        ),
    ),
    Cause(
        id="XNN015",
        title="SQUEEZE or EXPAND_DIMS",
        condition=OpIn.of("SQUEEZE EXPAND_DIMS"),
        why="The delegate does not handle SQUEEZE, and refuses EXPAND_DIMS unconditionally; RESHAPE "
        "to the same static shape is delegated.",
        example="tf.expand_dims(x, -1)",
        rewrites=("XR002",),
        probes=(
            rejected("EXPAND_DIMS", lam(lambda tf, x: tf.expand_dims(x, 1), shape=(4, 4)), dynamic_batch=True),
            delegated("RESHAPE", lam(lambda tf, x: tf.reshape(x, (1, 1, 4, 4)), shape=(4, 4))),
        ),
    ),
    Cause(
        id="XNN016",
        title="SPLIT_V (uneven split)",
        condition=OpIn.of("SPLIT_V"),
        why=f"XNNPACK splits only into {MIN_SPLIT_OUTPUTS}-{MAX_SPLIT_OUTPUTS} equal parts (SPLIT); SPLIT_V runs on "
        "CPU kernels.",
        example="tf.split(x, [4, 12], axis=1)",
        rewrites=("XR004",),
        probes=(
            rejected("SPLIT_V", lam(lambda tf, x: tf.concat(tf.split(x, [4, 12], axis=1)[::-1], 1) * 1.0)),
            delegated("SPLIT", lam(lambda tf, x: tf.concat(tf.split(x, 2, axis=1)[::-1], 1))),
        ),
    ),
    Cause(
        id="XNN017",
        title="control flow (WHILE, IF)",
        condition=OpIn.of("WHILE IF CALL_ONCE"),
        why="XNNPACK never takes control-flow nodes: the WHILE/IF node runs on its CPU kernel, cuts "
        "the graph, and re-enters its body subgraph from there on every iteration.",
        example="keras.layers.LSTM(16)",
        rewrites=("XR011",),
        probes=(
            rejected("WHILE", layers(lambda k: k.layers.SimpleRNN(8), shape=(4, 8))),
            delegated("FULLY_CONNECTED", layers(lambda k: k.layers.SimpleRNN(8, unroll=True), shape=(4, 8))),
        ),
    ),
)
