"""Causes: ops the XNNPACK delegate does not implement at all, by family."""

from __future__ import annotations

from xnnfit.kb.cause import Cause, Probe
from xnnfit.kb.conditions import OpIn
from xnnfit.kb.probes import lam, layers

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
        fix="y = m * a + (1.0 - m) * b   # tf.where(m > 0.5, a, b) with a float 0/1 mask m\n# "
        "XNNPACK has no compare or select kernels: carry masks as float 0/1 tensors and blend "
        "(equal for finite a and b). `xnnfit fix` does this: XR013 blends float selects and "
        "recomputes their masks in float, XR001 rewrites where-activations.",
        example="tf.where(x < 0, 0.1 * x, tf.square(x))",
        rewrites=("XR001", "XR013"),
        probes=(
            Probe("rejected", "SELECT", lam(lambda tf, x: tf.where(x < 0, 0.1 * x, tf.square(x)))),
            Probe("rejected", "LESS", lam(lambda tf, x: tf.where(x < 0, 0.1 * x, tf.square(x)))),
            Probe("delegated", "LEAKY_RELU", lam(lambda tf, x: tf.nn.leaky_relu(x, 0.1))),
        ),
    ),
    Cause(
        id="XNN002",
        title="CAST",
        condition=OpIn(frozenset({"CAST"})),
        why="XNNPACK does not implement CAST, and the int/bool tensors it makes are not XNNPACK types either.",
        fix="y = keras.ops.floor(keras.ops.relu(x)) - keras.ops.floor(keras.ops.relu(-x))   # "
        "tf.cast(tf.cast(x, tf.int32), tf.float32)\n"
        "# Truncate in float: CAST has no XNNPACK kernel. tf.floor alone differs for negative "
        "values (the cast truncates toward 0). No rewrite rule does this yet.",
        example="tf.cast(tf.cast(x, tf.int32), tf.float32)",
        probes=(
            Probe("rejected", "CAST", lam(lambda tf, x: tf.cast(tf.cast(x * 4.0, tf.int32), tf.float32))),
            Probe("delegated", "FLOOR", lam(lambda tf, x: tf.floor(x * 4.0))),
        ),
    ),
    Cause(
        id="XNN003",
        title="gather, scatter or embedding lookup",
        condition=OpIn(frozenset({"GATHER", "GATHER_ND", "EMBEDDING_LOOKUP", "SCATTER_ND", "ONE_HOT"})),
        why="XNNPACK has no gather/scatter kernels: indexing by a tensor of indices runs on CPU kernels.",
        fix="y = keras.ops.concatenate([x[:, 0:1], x[:, 2:3], x[:, 4:6]], axis=1)   # tf.gather(x, "
        "[0, 2, 4, 5], axis=1)\n"
        "# Gathering at constant indices is static slicing: slice and concatenate. `xnnfit fix` "
        "(XR010) does this. Computed indices have no XNNPACK form (XNN003.embedding-lookup).",
        example="tf.gather(x, [0, 2, 4], axis=1)",
        rewrites=("XR010",),
        probes=(
            Probe("rejected", "GATHER", lam(lambda tf, x: tf.gather(x, [0, 2, 4, 5], axis=1))),
            Probe(
                "delegated", "CONCATENATION", lam(lambda tf, x: tf.concat([x[:, 0:1], x[:, 2:3], x[:, 4:6]], axis=1))
            ),
        ),
    ),
    Cause(
        id="XNN004",
        title="TILE or BROADCAST_TO",
        condition=OpIn(frozenset({"TILE", "BROADCAST_TO"})),
        why="XNNPACK does not implement TILE or BROADCAST_TO; its binary ops broadcast by themselves.",
        fix="y = keras.ops.concatenate([x, x], axis=1)   # tf.tile(x, [1, 2])\n"
        "# Repeat with a concatenation (at most 5 inputs each), or let ADD/MUL broadcast a "
        "size-1 axis. `xnnfit fix` (XR003) rewrites TILE over size-1 axes only; for other tiles "
        "no rewrite rule does this yet.",
        example="tf.tile(x, [1, 2])",
        rewrites=("XR003",),
        probes=(
            Probe("rejected", "TILE", lam(lambda tf, x: tf.tile(x, [1, 2]))),
            Probe("delegated", "CONCATENATION", lam(lambda tf, x: tf.concat([x, x], axis=1))),
        ),
    ),
    Cause(
        id="XNN005",
        title="POW or SIGN",
        condition=OpIn(frozenset({"POW", "SIGN"})),
        why="XNNPACK has no POW or SIGN kernel.",
        fix="y = x * x * x   # keras.ops.power(x, 3.0)\n"
        "# Write constant powers as products (keras.ops.square, sqrt, rsqrt for 2, 0.5, -0.5). "
        "`xnnfit fix` (XR006) rewrites POW with a constant exponent, and SIGN.",
        example="tf.pow(x, 3.0), tf.sign(x)",
        rewrites=("XR006",),
        probes=(
            Probe("rejected", "POW", lam(lambda tf, x: tf.pow(tf.abs(x) + 1.0, 2.5))),
            Probe("rejected", "SIGN", lam(lambda tf, x: tf.sign(x))),
            Probe("delegated", "SQRT", lam(lambda tf, x: tf.sqrt(tf.abs(x) + 1.0))),
        ),
    ),
    Cause(
        id="XNN006",
        title="LOG_SOFTMAX",
        condition=OpIn(frozenset({"LOG_SOFTMAX"})),
        why="XNNPACK implements SOFTMAX but not LOG_SOFTMAX.",
        fix="y = x - keras.ops.max(x, -1, keepdims=True)\n"
        "y = y - keras.ops.log(keras.ops.mean(keras.ops.exp(y), -1, keepdims=True)) - "
        "float(np.log(x.shape[-1]))   # log_softmax(x)\n"
        "# Write log-softmax with MEAN, not SUM: the converter fuses the SUM form back into "
        "LOG_SOFTMAX. `xnnfit fix` (XR007) rewrites it after conversion.",
        example="tf.nn.log_softmax(x)",
        rewrites=("XR007",),
        probes=(
            Probe("rejected", "LOG_SOFTMAX", lam(lambda tf, x: tf.nn.log_softmax(x))),
            Probe("delegated", "SOFTMAX", lam(lambda tf, x: tf.nn.softmax(x))),
        ),
    ),
    Cause(
        id="XNN007",
        title="arg-max, top-k or cumulative sum",
        condition=OpIn(frozenset({"ARG_MAX", "ARG_MIN", "TOPK_V2", "CUMSUM"})),
        why="XNNPACK has no index-producing or scan kernels (ARG_MAX/ARG_MIN/TOPK_V2/CUMSUM).",
        fix="# Return the scores and take argmax/top-k in post-processing (this changes the model's "
        "output: scores, not indices); for a short cumsum, matmul with a constant triangular "
        "matrix. No rewrite rule does this yet.",
        example="tf.argmax(x, -1)",
        probes=(
            Probe("rejected", "ARG_MAX", lam(lambda tf, x: tf.argmax(x, -1))),
            Probe("rejected", "CUMSUM", lam(lambda tf, x: tf.cumsum(x, axis=-1))),
            Probe("delegated", "REDUCE_MAX", lam(lambda tf, x: tf.reduce_max(x, -1))),
        ),
    ),
    Cause(
        id="XNN008",
        title="reflect/symmetric or non-zero padding",
        condition=OpIn(frozenset({"MIRROR_PAD", "PADV2"})),
        why="XNNPACK only pads with zeros (PAD); MIRROR_PAD and PADV2 run on CPU kernels.",
        fix="y = keras.ops.concatenate([x[:, 1:2], x, x[:, -2:-1]], axis=1)   # pad H by 1, mode='reflect'\n"
        "y = keras.ops.concatenate([y[:, :, 1:2], y, y[:, :, -2:-1]], axis=2)   # and W\n"
        "# Reflect-pad with slices and a concatenation (exact); pad a non-zero constant c as "
        "pad(x - c) + c. ZeroPadding2D instead changes the border values. No rewrite rule does "
        "this yet.",
        example="tf.pad(x, [[0, 0], [1, 1]], mode='REFLECT')",
        probes=(
            Probe("rejected", "MIRROR_PAD", lam(lambda tf, x: tf.pad(x, [[0, 0], [2, 2]], mode="REFLECT"))),
            Probe("delegated", "PAD", lam(lambda tf, x: tf.pad(x, [[0, 0], [2, 2]]))),
        ),
    ),
    Cause(
        id="XNN009",
        title="nearest-neighbour resize",
        condition=OpIn(frozenset({"RESIZE_NEAREST_NEIGHBOR"})),
        why="XNNPACK implements RESIZE_BILINEAR only; nearest-neighbour resizing "
        "(tf.image.resize(method='nearest'), keras.layers.Resizing(interpolation='nearest')) "
        "runs on CPU kernels. Keras 3's UpSampling2D emits TILE instead (XNN004).",
        fix="h, w, c = x.shape[1:]   # nearest x2 as a broadcast multiply (exact, any integer factor)\n"
        "y = keras.ops.reshape(keras.ops.reshape(x, (-1, h, 1, w, 1, c)) * keras.ops.ones((1, 1, "
        "2, 1, 2, 1)), (-1, 2 * h, 2 * w, c))\n"
        "# Nearest resizing by an integer factor is a broadcast multiply by ones (exact); "
        "`xnnfit fix` (XR003) does this. The op comes from Resizing/tf.image.resize with "
        "'nearest'; Keras 3's UpSampling2D emits TILE instead (XNN004).",
        example="tf.image.resize(x, (16, 16), method='nearest')",
        rewrites=("XR003",),
        probes=(
            Probe(
                "rejected",
                "RESIZE_NEAREST_NEIGHBOR",
                lam(lambda tf, x: tf.image.resize(x, (16, 16), method="nearest"), shape=(8, 8, 4)),
            ),
            Probe(
                "delegated",
                "RESIZE_BILINEAR",
                lam(lambda tf, x: tf.image.resize(x, (16, 16), method="bilinear"), shape=(8, 8, 4)),
            ),
        ),
    ),
    Cause(
        id="XNN010",
        title="L2_NORMALIZATION",
        condition=OpIn(frozenset({"L2_NORMALIZATION"})),
        why="XNNPACK has no L2_NORMALIZATION kernel.",
        fix="y = keras.ops.normalize(x, axis=-1)   # tf.math.l2_normalize(x, axis=-1)\n"
        "# keras.ops.normalize converts to delegated ops (it differs only for norms below 1e-6); "
        "the converter fuses a hand-written x * rsqrt(sum(x * x)) back into L2_NORMALIZATION. "
        "`xnnfit fix` (XR008) rewrites it after conversion.",
        example="tf.math.l2_normalize(x, axis=-1)",
        rewrites=("XR008",),
        probes=(
            Probe("rejected", "L2_NORMALIZATION", lam(lambda tf, x: tf.math.l2_normalize(x, axis=-1))),
            Probe(
                "delegated",
                "RSQRT",
                lam(lambda tf, x: x * tf.math.rsqrt(tf.reduce_sum(tf.square(x), -1, keepdims=True) + 1e-3)),
            ),
        ),
    ),
    Cause(
        id="XNN011",
        title="product or boolean reduction",
        condition=OpIn(frozenset({"REDUCE_PROD", "REDUCE_ANY", "REDUCE_ALL"})),
        why="XNNPACK reduces with MEAN, SUM, REDUCE_MAX and REDUCE_MIN only.",
        fix="y = keras.ops.exp(keras.ops.sum(keras.ops.log(x), -1))   # keras.ops.prod(x, -1) for x "
        "> 0\n# For positive values a product is the exp of a sum of logs; this changes the "
        "result for zero or negative values (log is undefined). A mask's REDUCE_ALL/ANY ending "
        "in a select is recomputed in float by XR013; for products no rewrite rule does this yet.",
        example="tf.reduce_prod(x, -1)",
        rewrites=("XR013",),
        probes=(
            Probe("rejected", "REDUCE_PROD", lam(lambda tf, x: tf.reduce_prod(x, -1))),
            Probe("delegated", "SUM", lam(lambda tf, x: tf.reduce_sum(x, -1))),
        ),
    ),
    Cause(
        id="XNN012",
        title="3-D convolution",
        condition=OpIn(frozenset({"CONV_3D", "CONV_3D_TRANSPOSE"})),
        why="XNNPACK's TFLite delegate handles 2-D convolutions only.",
        fix="# Fold depth into batch or channels and use Conv2D, e.g. TimeDistributed(Conv2D(...)); "
        "this changes the layer (it no longer mixes along depth). No rewrite rule does this yet.",
        example="keras.layers.Conv3D(8, 3)",
        probes=(
            Probe("rejected", "CONV_3D", layers(lambda k: k.layers.Conv3D(4, 3), shape=(6, 6, 6, 2))),
            Probe("delegated", "CONV_2D", layers(lambda k: k.layers.Conv2D(4, 3), shape=(6, 6, 2))),
        ),
    ),
    Cause(
        id="XNN013",
        title="PACK or UNPACK (tf.stack / tf.unstack)",
        condition=OpIn(frozenset({"PACK", "UNPACK"})),
        why="XNNPACK does not implement PACK/UNPACK; concatenation and split on an existing axis are delegated.",
        fix="y = keras.ops.reshape(keras.ops.concatenate([a, b], axis=-1), (-1, 2, 16))   # "
        "keras.ops.stack([a, b], axis=1), a, b: (batch, 16)\n"
        "# Stack by concatenating on the last axis and reshaping (exact); unstack with stride-1 "
        "slices and a reshape. `xnnfit fix` does this (XR014; XR002 folds a PACK that builds a "
        "shape).",
        example="tf.stack([x, 2 * x], axis=1)",
        rewrites=("XR014", "XR002"),
        probes=(
            Probe("rejected", "PACK", lam(lambda tf, x: tf.stack([x, 2.0 * x], axis=1))),
            Probe("delegated", "CONCATENATION", lam(lambda tf, x: tf.concat([x, 2.0 * x], axis=1))),
        ),
    ),
    Cause(
        id="XNN014",
        title="shape computation at run time (SHAPE, FILL, RANGE...)",
        condition=OpIn(frozenset({"SHAPE", "FILL", "RANGE", "ZEROS_LIKE", "ONES_LIKE", "BROADCAST_ARGS", "RANK"})),
        why="XNNPACK works on fixed shapes: ops that read or build shapes at run time (tf.shape) are "
        "integer plumbing on CPU kernels.",
        fix="y = keras.ops.reshape(x, (-1, 16))   # not tf.reshape(x, (tf.shape(x)[0], -1))\n"
        "# Reshape to constant dimensions and let -1 take the batch: keras.layers.Reshape reads "
        "the batch with tf.shape, which stays on CPU with --dynamic-batch. `xnnfit fix` (XR002) "
        "folds shape ops at pinned shapes.",
        example="tf.reshape(x, (tf.shape(x)[0], -1))",
        rewrites=("XR002",),
        probes=(
            Probe(
                "rejected",
                "SHAPE",
                lam(lambda tf, x: tf.reshape(x, (tf.shape(x)[0], -1)), shape=(4, 4)),
                dynamic_batch=True,
            ),
            Probe("delegated", "RESHAPE", lam(lambda tf, x: tf.reshape(x, (-1, 16)), shape=(4, 4))),
        ),
    ),
    Cause(
        id="XNN015",
        title="SQUEEZE or EXPAND_DIMS",
        condition=OpIn(frozenset({"SQUEEZE", "EXPAND_DIMS"})),
        why="The delegate does not handle SQUEEZE, and refuses EXPAND_DIMS unconditionally; RESHAPE "
        "to the same static shape is delegated.",
        fix="y = keras.ops.reshape(x, (-1, 1, 4, 4))   # keras.ops.expand_dims(x, 1) of a (batch, 4, 4) tensor\n"
        "# Add or drop size-1 axes with a reshape to constant dimensions (-1 for the batch); "
        "keras.layers.Reshape reads the batch at run time with --dynamic-batch. `xnnfit fix` "
        "(XR002) turns EXPAND_DIMS/SQUEEZE into RESHAPE.",
        example="tf.expand_dims(x, -1)",
        rewrites=("XR002",),
        probes=(
            Probe("rejected", "EXPAND_DIMS", lam(lambda tf, x: tf.expand_dims(x, 1), shape=(4, 4)), dynamic_batch=True),
            Probe("delegated", "RESHAPE", lam(lambda tf, x: tf.reshape(x, (1, 1, 4, 4)), shape=(4, 4))),
        ),
    ),
    Cause(
        id="XNN016",
        title="SPLIT_V (uneven split)",
        condition=OpIn(frozenset({"SPLIT_V"})),
        why="XNNPACK splits only into 2-4 equal parts (SPLIT); SPLIT_V runs on CPU kernels.",
        fix="a, b = x[:, :4], x[:, 4:]   # keras.ops.split(x, [4], axis=1)\n"
        "# Split unevenly with static slices. `xnnfit fix` (XR004) does this.",
        example="tf.split(x, [4, 12], axis=1)",
        rewrites=("XR004",),
        probes=(
            Probe("rejected", "SPLIT_V", lam(lambda tf, x: tf.concat(tf.split(x, [4, 12], axis=1)[::-1], 1) * 1.0)),
            Probe("delegated", "SPLIT", lam(lambda tf, x: tf.concat(tf.split(x, 2, axis=1)[::-1], 1))),
        ),
    ),
    Cause(
        id="XNN017",
        title="control flow (WHILE, IF)",
        condition=OpIn(frozenset({"WHILE", "IF", "CALL_ONCE"})),
        why="XNNPACK never takes control-flow nodes: the WHILE/IF node runs on its CPU kernel, cuts "
        "the graph, and re-enters its body subgraph from there on every iteration.",
        fix="y = keras.layers.LSTM(8, unroll=True)(x)   # keras.layers.LSTM(8), fixed sequence length\n"
        "# Unroll recurrent layers over a fixed sequence length so no WHILE remains; the "
        "unrolled layer still splits the sequence with UNPACK (XNN013.rnn-unroll removes that "
        "too). No rewrite rule does this yet. (XR011 removes only CALL_ONCE.)",
        example="keras.layers.LSTM(16)",
        rewrites=("XR011",),
        probes=(
            Probe("rejected", "WHILE", layers(lambda k: k.layers.SimpleRNN(8), shape=(4, 8))),
            Probe("delegated", "FULLY_CONNECTED", layers(lambda k: k.layers.SimpleRNN(8, unroll=True), shape=(4, 8))),
        ),
    ),
)
