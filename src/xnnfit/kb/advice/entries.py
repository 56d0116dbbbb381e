"""The advice entries, per cause: the most specific first, the general one (`<cause>.general`, its `fix`) last."""

from __future__ import annotations

import dataclasses

from xnnfit.kb.advice.patterns import COMPARE_SELECT, SELECT
from xnnfit.kb.advice.schema import GENERAL, Advice, Demo, Inputs, When
from xnnfit.kb.limits import ADD_SCALE_RATIO, MAX_CONCAT_INPUTS, MAX_RANK, MAX_SPLIT_OUTPUTS

RNN_LAYERS = ("LSTM", "GRU", "SimpleRNN", "RNN", "Bidirectional")


def _advice(
    cause: str,
    slug: str,
    text: str,
    code: str | None,
    *,
    preserves: bool = True,
    rules: tuple[str, ...] = (),
    when: When | None = None,
    demo: Demo | None = None,
) -> Advice:
    return Advice(f"{cause}.{slug}", cause, text, code, preserves, rules, when, demo)


def _x(*shape: int) -> Inputs:
    return (("x", shape, "float32"),)


DENSE = "x = keras.layers.Dense(16)(x)"  # puts the op between quantized layers in int8 demos
NO_RULE = "No rewrite rule does this yet."
_ADD_RATIO = round(1 / ADD_SCALE_RATIO[0])  # 1024: an int8 ADD input scale over its output scale, at least 1/1024

_INDEX_WRAP_TEXT = (
    "Keras's Embedding wraps negative ids (where(ids < 0, ids + n, ids)) in int32, which "
    "XNNPACK cannot hold; gather the ids directly.\n"
    "This changes negative ids: they are no longer wrapped (ids must be in [0, input_dim)); "
    "the GATHER stays on CPU (XNN003). " + NO_RULE
)
_INDEX_WRAP_CODE = """class GatherEmbedding(keras.layers.Embedding):   # the same weights, no negative-id wrap
    def call(self, ids):
        return tf.gather(self.embeddings, ids)   # ids in [0, input_dim)
y = GatherEmbedding(100, 16)(ids)   # instead of keras.layers.Embedding(100, 16)(ids)"""
_EMBEDDING = Demo(
    "y = keras.layers.Embedding(100, 16)(ids)", ("LESS", "SELECT"), (("ids", (8,), "int32"),), high=100, within=0.0
)
_EMBEDDING_LAYERS = ("Embedding", "ReversibleEmbedding", "TokenAndPositionEmbedding")

_BROADCAST_UPSAMPLE = (
    "h, w, c = x.shape[1:]   # nearest x2 as a broadcast multiply (exact, any integer factor)\n"
    "y = keras.ops.reshape(keras.ops.reshape(x, (-1, h, 1, w, 1, c)) * keras.ops.ones((1, 1, 2, 1, 2, 1)), "
    "(-1, 2 * h, 2 * w, c))"
)

_STEP_RNN = """class StepRNN(keras.layers.Layer):   # RNN(cell, unroll=True) without UNPACK/PACK
    def __init__(self, cell, return_sequences=False, **kwargs):
        super().__init__(**kwargs)
        self.cell, self.return_sequences = cell, return_sequences

    def call(self, x):
        state, hs = self.cell.get_initial_state(batch_size=keras.ops.shape(x)[0]), []
        for t in range(x.shape[1]):   # one stride-1 slice per step instead of UNPACK
            h, state = self.cell(keras.ops.reshape(x[:, t:t + 1], (-1, x.shape[2])), state)
            hs.append(h)
        if not self.return_sequences:
            return h
        return keras.ops.reshape(keras.ops.concatenate(hs, -1), (-1, len(hs), h.shape[-1]))   # instead of PACK
y = StepRNN(keras.layers.LSTMCell(8), return_sequences=True)(x)   # LSTM(8, unroll=True, return_sequences=True)"""

_CAUSAL_ATTENTION = (
    "class BiasCausalAttention(keras.layers.MultiHeadAttention):   "
    "# use_causal_mask=True as an added bias (no attention_mask, no dropout)\n"
    "    def _compute_attention(self, query, key, value, *args, **kwargs):   "
    "# the method Keras documents for custom attention\n"
    '        bias = np.triu(np.full((query.shape[1], key.shape[1]), -1e9, "float32"), 1)   '
    "# -1e9 above the diagonal\n"
    "        return keras.ops.dot_product_attention(query, key, value, bias=bias, "
    "scale=1.0 / np.sqrt(query.shape[-1])), None\n"
    "y = BiasCausalAttention(num_heads=2, key_dim=4)(x, x)   # MultiHeadAttention(2, 4)(x, x, use_causal_mask=True)"
)

# XNN014 and XNN020 show the same reshape: the batch read at run time with tf.shape (dynamic batch).
_RUNTIME_RESHAPE = Demo(
    "y = keras.layers.Lambda(lambda t: tf.reshape(t, (tf.shape(t)[0], -1)))(x)",
    ("SHAPE", "STRIDED_SLICE", "PACK", "RESHAPE"),
    _x(4, 4),
    dynamic_batch=True,
)

_FLOAT_OPS = "`xnnfit check MODEL --recipe int8+float-ops`"

ENTRIES: tuple[Advice, ...] = (
    # XNN001 comparison / select
    _advice(
        "XNN001",
        "embedding-index-wrap",
        _INDEX_WRAP_TEXT,
        _INDEX_WRAP_CODE,
        preserves=False,
        when=When(tuple(sorted(COMPARE_SELECT)), "index-wrap", _EMBEDDING_LAYERS),
        demo=_EMBEDDING,
    ),
    _advice(
        "XNN001",
        "causal-attention",
        "MultiHeadAttention(use_causal_mask=True) masks with tf.where on a constant mask; add it "
        "as a constant -1e9 bias instead "
        "(same outputs: masked scores underflow to 0 either way). `xnnfit fix` (XR013) turns the "
        "converted selects into float blends.",
        _CAUSAL_ATTENTION,
        rules=("XR013",),
        when=When(tuple(sorted(SELECT)), "constant-mask-softmax", ("MultiHeadAttention",)),
        demo=Demo(
            "y = keras.layers.MultiHeadAttention(num_heads=2, key_dim=4)(x, x, use_causal_mask=True)",
            ("SELECT_V2",),
            _x(6, 8),
        ),
    ),
    _advice(
        "XNN001",
        "masked-softmax",
        "Mask by adding (mask - 1) * 1e9 instead of tf.where: masked scores go to -1e9 as with "
        "Softmax(mask=...), and the product "
        "zeroes fully masked rows. Pass the mask as float 0/1. `xnnfit fix` (XR013) does this "
        "after conversion, mask plumbing included. For a full-int8 model use a fill a few times the scores' "
        "range instead of 1e9 (XNN036: a huge fill leaves every score one quantization step).",
        "y = keras.layers.Softmax()(x + (mask - 1.0) * 1e9) * mask   # keras.layers.Softmax()(x, "
        "mask=mask), mask float 0/1",
        rules=("XR013",),
        when=When(tuple(sorted(COMPARE_SELECT)), "masked-softmax", ("Softmax",)),
        demo=Demo(
            "y = keras.layers.Softmax()(x, mask=mask)",
            ("GREATER", "SELECT_V2"),
            (("x", (16,), "float32"), ("mask", (16,), "float32")),
            binary=("mask",),
        ),
    ),
    _advice(
        "XNN001",
        "where-activation",
        "Write the activation with delegated ops: LeakyReLU/PReLU/ELU when it is one, else f(x - "
        "relu(x)) + g(relu(x)) - f(0) "
        "for tf.where(x < 0, f(x), g(x)) with f(0) == g(0). `xnnfit fix` (XR001) does this.",
        "pos = keras.ops.relu(x)\ny = 0.1 * (x - pos) + keras.ops.square(pos)   # tf.where(x < "
        "0, 0.1 * x, tf.square(x))",
        rules=("XR001",),
        when=When(tuple(sorted(COMPARE_SELECT)), "where-activation"),
        demo=Demo("y = keras.ops.where(x < 0, 0.1 * x, keras.ops.square(x))", ("LESS", "SELECT")),
    ),
    _advice(
        "XNN001",
        GENERAL,
        "XNNPACK has no compare or select kernels: carry masks as float 0/1 tensors and blend "
        "(equal for finite a and b). "
        "`xnnfit fix` does this: XR013 blends float selects and recomputes their masks in float, "
        "XR001 rewrites where-activations.",
        "y = m * a + (1.0 - m) * b   # tf.where(m > 0.5, a, b) with a float 0/1 mask m",
        rules=("XR013", "XR001"),
        demo=Demo(
            "y = keras.ops.where(m > 0.5, a, b)",
            ("GREATER", "SELECT"),
            (("m", (16,), "float32"), ("a", (16,), "float32"), ("b", (16,), "float32")),
            binary=("m",),
        ),
    ),
    # XNN002 CAST
    _advice(
        "XNN002",
        "input-mask",
        "An int or bool input (keras-hub's padding_mask) is cast once, at the start: after "
        "`xnnfit fix` (XR013 moves the mask math "
        "to float) it is the one CPU node a mask costs, before XNNPACK's partition. Declare the "
        "input float32 0/1 to remove it. " + NO_RULE,
        "y = x * mask   # mask = keras.Input(..., dtype='float32'), not an int32 input cast with "
        "keras.ops.cast(mask, 'float32')",
        when=When(("CAST",), "input-cast"),
        demo=Demo(
            "y = x * keras.ops.cast(mask, 'float32')",
            ("CAST",),
            (("x", (16,), "float32"), ("mask", (16,), "int32")),
            instead_inputs=(("x", (16,), "float32"), ("mask", (16,), "float32")),
            binary=("mask",),
        ),
    ),
    _advice(
        "XNN002",
        GENERAL,
        "Truncate in float: CAST has no XNNPACK kernel. tf.floor alone differs for negative "
        "values (the cast truncates toward 0). " + NO_RULE,
        "y = keras.ops.floor(keras.ops.relu(x)) - keras.ops.floor(keras.ops.relu(-x))   # "
        "tf.cast(tf.cast(x, tf.int32), tf.float32)",
        demo=Demo("y = keras.ops.cast(keras.ops.cast(x, 'int32'), 'float32')", ("CAST",), setup="x = x * 4.0"),
    ),
    # XNN003 gather / one-hot
    _advice(
        "XNN003",
        "embedding-lookup",
        "A lookup of computed ids in a constant table has no XNNPACK form: keep it on CPU at the "
        "model's input (it cuts the graph once) or look up "
        "in the app and feed the vectors. A one-hot matmul instead costs T·V·D multiply-adds (V: vocabulary). "
        + NO_RULE,
        None,
        when=When(("EMBEDDING_LOOKUP", "GATHER", "GATHER_ND"), "table-lookup", _EMBEDDING_LAYERS),
        demo=dataclasses.replace(_EMBEDDING, ops=("GATHER",), within=None),
    ),
    _advice(
        "XNN003",
        "one-hot",
        "Make the one-hot in float: feed the ids as float32 (exact below 2**24) and take relu(1 "
        "- |ids - class|); the CAST and ONE_HOT go away. " + NO_RULE,
        "y = keras.ops.relu(1.0 - keras.ops.abs(keras.ops.expand_dims(ids, -1) - np.arange(10, "
        "dtype='float32')))   # keras.ops.one_hot(ids, 10)",
        when=When(("ONE_HOT",)),
        demo=Demo(
            "y = keras.ops.one_hot(ids, 10)",
            ("ONE_HOT", "CAST"),
            (("ids", (5,), "int32"),),
            instead_inputs=(("ids", (5,), "float32"),),
            high=12,
        ),
    ),
    _advice(
        "XNN003",
        GENERAL,
        "Gathering at constant indices is static slicing: slice and concatenate. `xnnfit fix` (XR010) does this. "
        "Computed indices have no XNNPACK form (XNN003.embedding-lookup).",
        "y = keras.ops.concatenate([x[:, 0:1], x[:, 2:3], x[:, 4:6]], axis=1)   # tf.gather(x, [0, 2, 4, 5], axis=1)",
        rules=("XR010",),
        demo=Demo("y = keras.ops.take(x, [0, 2, 4, 5], axis=1)", ("GATHER",)),
    ),
    # XNN004 TILE
    _advice(
        "XNN004",
        "upsampling",
        "Keras 3's UpSampling2D repeats with TILE: write the repeat as a broadcast multiply by "
        "ones, or leave it: `xnnfit fix` (XR003) does this.",
        _BROADCAST_UPSAMPLE,
        rules=("XR003",),
        when=When(("BROADCAST_TO", "TILE"), "tile-size-1", ("UpSampling1D", "UpSampling2D", "UpSampling3D")),
        demo=Demo("y = keras.layers.UpSampling2D(2)(x)", ("TILE",), _x(4, 4, 3)),
    ),
    _advice(
        "XNN004",
        GENERAL,
        f"Repeat with a concatenation (at most {MAX_CONCAT_INPUTS} inputs each), or let ADD/MUL broadcast a size-1 "
        "axis. `xnnfit fix` (XR003) rewrites TILE "
        "over size-1 axes only; for other tiles no rewrite rule does this yet.",
        "y = keras.ops.concatenate([x, x], axis=1)   # tf.tile(x, [1, 2])",
        demo=Demo("y = keras.ops.tile(x, [1, 2])", ("TILE",)),
    ),
    # XNN005 POW / SIGN
    _advice(
        "XNN005",
        GENERAL,
        "Write constant powers as products (keras.ops.square, sqrt, rsqrt for 2, 0.5, -0.5). "
        "`xnnfit fix` (XR006) rewrites POW with a constant "
        "exponent, and SIGN.",
        "y = x * x * x   # keras.ops.power(x, 3.0)",
        rules=("XR006",),
        demo=Demo("y = keras.ops.power(x, 3.0)", ("POW",)),
    ),
    # XNN006 LOG_SOFTMAX
    _advice(
        "XNN006",
        GENERAL,
        "Write log-softmax with MEAN, not SUM: the converter fuses the SUM form back into "
        "LOG_SOFTMAX. `xnnfit fix` (XR007) rewrites it after conversion.",
        "y = x - keras.ops.max(x, -1, keepdims=True)\n"
        "y = y - keras.ops.log(keras.ops.mean(keras.ops.exp(y), -1, keepdims=True)) - "
        "float(np.log(x.shape[-1]))   # log_softmax(x)",
        rules=("XR007",),
        demo=Demo("y = keras.ops.log_softmax(x)", ("LOG_SOFTMAX",)),
    ),
    # XNN007 arg-max, top-k, cumsum
    _advice(
        "XNN007",
        GENERAL,
        "Return the scores and take argmax/top-k in post-processing (this changes the model's "
        "output: scores, not indices); "
        "for a short cumsum, matmul with a constant triangular matrix. " + NO_RULE,
        None,
        preserves=False,
    ),
    # XNN008 MIRROR_PAD / PADV2
    _advice(
        "XNN008",
        GENERAL,
        "Reflect-pad with slices and a concatenation (exact); pad a non-zero constant c as pad(x "
        "- c) + c. ZeroPadding2D instead "
        "changes the border values. " + NO_RULE,
        "y = keras.ops.concatenate([x[:, 1:2], x, x[:, -2:-1]], axis=1)   # pad H by 1, mode='reflect'\n"
        "y = keras.ops.concatenate([y[:, :, 1:2], y, y[:, :, -2:-1]], axis=2)   # and W",
        demo=Demo(
            "y = keras.ops.pad(x, [[0, 0], [1, 1], [1, 1], [0, 0]], mode='reflect')", ("MIRROR_PAD",), _x(6, 6, 3)
        ),
    ),
    # XNN009 RESIZE_NEAREST_NEIGHBOR
    _advice(
        "XNN009",
        GENERAL,
        "Nearest resizing by an integer factor is a broadcast multiply by ones (exact); `xnnfit "
        "fix` (XR003) does this. The op comes from "
        "Resizing/tf.image.resize with 'nearest'; Keras 3's UpSampling2D emits TILE instead (XNN004).",
        _BROADCAST_UPSAMPLE,
        rules=("XR003",),
        demo=Demo(
            "y = keras.layers.Resizing(8, 8, interpolation='nearest')(x)", ("RESIZE_NEAREST_NEIGHBOR",), _x(4, 4, 3)
        ),
    ),
    # XNN010 L2_NORMALIZATION
    _advice(
        "XNN010",
        GENERAL,
        "keras.ops.normalize converts to delegated ops (it differs only for norms below 1e-6); "
        "the converter fuses a hand-written "
        "x * rsqrt(sum(x * x)) back into L2_NORMALIZATION. `xnnfit fix` (XR008) rewrites it after conversion.",
        "y = keras.ops.normalize(x, axis=-1)   # tf.math.l2_normalize(x, axis=-1)",
        rules=("XR008",),
        demo=Demo("y = keras.layers.Lambda(lambda t: tf.math.l2_normalize(t, axis=-1))(x)", ("L2_NORMALIZATION",)),
    ),
    # XNN011 REDUCE_PROD / ANY / ALL
    _advice(
        "XNN011",
        GENERAL,
        "For positive values a product is the exp of a sum of logs; this changes the result for "
        "zero or negative values (log is undefined). "
        "A mask's REDUCE_ALL/ANY ending in a select is recomputed in float by XR013; for products " + NO_RULE.lower(),
        "y = keras.ops.exp(keras.ops.sum(keras.ops.log(x), -1))   # keras.ops.prod(x, -1) for x > 0",
        preserves=False,
        demo=Demo("y = keras.ops.prod(x, -1)", ("REDUCE_PROD",), setup="x = keras.ops.abs(x) + 0.5", within=1e-5),
    ),
    # XNN012 3-D convolution
    _advice(
        "XNN012",
        GENERAL,
        "Fold depth into batch or channels and use Conv2D, e.g. TimeDistributed(Conv2D(...)); "
        "this changes the layer (it no longer mixes "
        "along depth). " + NO_RULE,
        None,
        preserves=False,
    ),
    # XNN013 PACK / UNPACK
    _advice(
        "XNN013",
        "rnn-unroll",
        "An unrolled RNN splits the sequence with UNPACK (and stacks return_sequences with "
        "PACK): step the cell over stride-1 slices and "
        "concatenate (same outputs). `xnnfit fix` does this after conversion: XR014 turns "
        f"PACK/UNPACK into concatenation/split, XR004 splits a concatenation of more than {MAX_CONCAT_INPUTS}.",
        _STEP_RNN,
        rules=("XR014",),
        when=When(("PACK", "UNPACK"), "rnn-steps", RNN_LAYERS),
        demo=Demo("y = keras.layers.LSTM(8, unroll=True, return_sequences=True)(x)", ("UNPACK", "PACK"), _x(4, 6)),
    ),
    _advice(
        "XNN013",
        GENERAL,
        "Stack by concatenating on the last axis and reshaping (exact); unstack with stride-1 slices and a reshape. "
        "`xnnfit fix` does this (XR014; XR002 folds a PACK that builds a shape).",
        "y = keras.ops.reshape(keras.ops.concatenate([a, b], axis=-1), (-1, 2, 16))   # "
        "keras.ops.stack([a, b], axis=1), a, b: (batch, 16)",
        rules=("XR014", "XR002"),
        demo=Demo("y = keras.ops.stack([a, b], axis=1)", ("PACK",), setup="a, b = x, 2.0 * x"),
    ),
    # XNN014 run-time shapes
    _advice(
        "XNN014",
        GENERAL,
        "Reshape to constant dimensions and let -1 take the batch: keras.layers.Reshape reads "
        "the batch with tf.shape, which stays on CPU "
        "with --dynamic-batch. `xnnfit fix` (XR002) folds shape ops at pinned shapes.",
        "y = keras.ops.reshape(x, (-1, 16))   # not tf.reshape(x, (tf.shape(x)[0], -1))",
        rules=("XR002",),
        demo=_RUNTIME_RESHAPE,
    ),
    # XNN015 SQUEEZE / EXPAND_DIMS
    _advice(
        "XNN015",
        GENERAL,
        "Add or drop size-1 axes with a reshape to constant dimensions (-1 for the batch); "
        "keras.layers.Reshape reads the batch at run time "
        "with --dynamic-batch. `xnnfit fix` (XR002) turns EXPAND_DIMS/SQUEEZE into RESHAPE.",
        "y = keras.ops.reshape(x, (-1, 1, 4, 4))   # keras.ops.expand_dims(x, 1) of a (batch, 4, 4) tensor",
        rules=("XR002",),
        demo=Demo("y = keras.ops.expand_dims(x, 1)", ("EXPAND_DIMS",), _x(4, 4), dynamic_batch=True),
    ),
    # XNN016 SPLIT_V
    _advice(
        "XNN016",
        GENERAL,
        "Split unevenly with static slices. `xnnfit fix` (XR004) does this.",
        "a, b = x[:, :4], x[:, 4:]   # keras.ops.split(x, [4], axis=1)",
        rules=("XR004",),
        demo=Demo(
            "a, b = keras.ops.split(x, [4], axis=1)", ("SPLIT_V",), after="y = keras.ops.concatenate([b * 2.0, a], 1)"
        ),
    ),
    # XNN017 control flow
    _advice(
        "XNN017",
        "call-once",
        "CALL_ONCE runs the variable initialisation of a model converted with resource "
        "variables: convert it frozen (`xnnfit check "
        "model.keras` does), or `xnnfit fix` (XR011) turns variables that only the "
        "initialisation assigns into constants.",
        None,
        rules=("XR011",),
        when=When(("CALL_ONCE",)),
    ),
    _advice(
        "XNN017",
        GENERAL,
        "Unroll recurrent layers over a fixed sequence length so no WHILE remains; the unrolled "
        "layer still splits the sequence with "
        "UNPACK (XNN013.rnn-unroll removes that too). " + NO_RULE + " (XR011 removes only CALL_ONCE.)",
        "y = keras.layers.LSTM(8, unroll=True)(x)   # keras.layers.LSTM(8), fixed sequence length",
        demo=Demo("y = keras.layers.LSTM(8)(x)", ("WHILE",), _x(4, 6)),
    ),
    # XNN018 custom op
    _advice(
        "XNN018",
        GENERAL,
        "Express the op with TFLite builtins, or keep it at the model's edge so it cuts the graph once. " + NO_RULE,
        None,
    ),
    # XNN019 Flex
    _advice(
        "XNN019",
        GENERAL,
        "Express the op with builtins XNNPACK runs; build patches with Conv2D/DepthwiseConv2D "
        "instead of tf.image.extract_patches. " + NO_RULE,
        "y = keras.ops.sin(x) / keras.ops.cos(x)   # keras.ops.tan(x)",
        demo=Demo("y = keras.ops.tan(x)", ("Tan",), conversion_error=True),
    ),
    # XNN020 computed parameter
    _advice(
        "XNN020",
        GENERAL,
        "Pass shapes, axes and weights as Python constants (-1 for the batch): XNNPACK plans "
        "once, so a parameter cannot be computed at run "
        "time. `xnnfit fix` (XR002) folds shape ops at pinned shapes.",
        "y = keras.ops.reshape(x, (-1, 16))   # Python ints, not tf.shape(x)",
        rules=("XR002",),
        demo=_RUNTIME_RESHAPE,
    ),
    # XNN021 integer / bool data
    _advice(
        "XNN021",
        "embedding-index-wrap",
        _INDEX_WRAP_TEXT,
        _INDEX_WRAP_CODE,
        preserves=False,
        when=When(("ADD", "SUB"), "index-wrap", _EMBEDDING_LAYERS),
        demo=dataclasses.replace(_EMBEDDING, ops=("ADD",)),
    ),
    _advice(
        "XNN021",
        GENERAL,
        "Keep index and mask arithmetic in float (x * mask with a float 0/1 mask), or move it "
        "out of the model. `xnnfit fix` folds "
        "what does not depend on the inputs (XR002) and recomputes a mask that ends in a select "
        "in float (XR013); ids stay int.",
        None,
        rules=("XR002", "XR013"),
    ),
    # XNN022 strided slice
    _advice(
        "XNN022",
        GENERAL,
        "Take a size-1 slice and drop the axis with a reshape; for x[:, ::2], reshape to (..., "
        "n, 2) and slice [..., 0:1]. "
        "`xnnfit fix` (XR005) does both.",
        "y = keras.ops.reshape(x[:, 0:1], (-1, 4))   # x[:, 0] of a (batch, 4, 4) tensor",
        rules=("XR005",),
        demo=Demo("y = x[:, 0]", ("STRIDED_SLICE",), _x(4, 4), after="y = y * 2.0"),
    ),
    # XNN023 concatenation of > 5
    _advice(
        "XNN023",
        GENERAL,
        f"Concatenate in groups of at most {MAX_CONCAT_INPUTS}. `xnnfit fix` (XR004) builds the tree.",
        "y = keras.ops.concatenate([keras.ops.concatenate(xs[:3], -1), "
        "keras.ops.concatenate(xs[3:], -1)], -1)   # 6 tensors",
        rules=("XR004",),
        demo=Demo(
            "y = keras.ops.concatenate(xs, -1)", ("CONCATENATION",), setup="xs = [x * float(i + 1) for i in range(6)]"
        ),
    ),
    # XNN024 SPLIT into 1 or > 4
    _advice(
        "XNN024",
        GENERAL,
        f"Split into more than {MAX_SPLIT_OUTPUTS} parts with static slices. `xnnfit fix` (XR004) does this.",
        "parts = [x[:, i * 2:(i + 1) * 2] for i in range(8)]   # keras.ops.split(x, 8, axis=1)",
        rules=("XR004",),
        demo=Demo("parts = keras.ops.split(x, 8, axis=1)", ("SPLIT",), after="y = parts[0] * parts[7] + parts[3]"),
    ),
    # XNN025 pool stride > window
    _advice(
        "XNN025",
        "subsample",
        "A 1x1 pool with stride s only subsamples: a 1x1 depthwise convolution with weights 1 "
        "and stride s does the same (a 2x2 pool "
        "would change the output). `xnnfit fix` (XR005) does this.",
        "y = keras.layers.DepthwiseConv2D(1, strides=2, use_bias=False, "
        "depthwise_initializer='ones', trainable=False)(x)   # MaxPooling2D(1, strides=2)",
        rules=("XR005",),
        when=When(("AVERAGE_POOL_2D", "MAX_POOL_2D"), "pool-1x1"),
        demo=Demo("y = keras.layers.MaxPooling2D(1, strides=2)(x)", ("MAX_POOL_2D",), _x(7, 7, 4)),
    ),
    _advice(
        "XNN025",
        GENERAL,
        "XNNPACK pools only with stride <= window: a window at least as large as the stride "
        "changes which pixels are pooled (the output "
        "changes). " + NO_RULE + " (XR005 handles 1x1 windows.)",
        None,
        preserves=False,
        demo=Demo("y = keras.layers.MaxPooling2D(2, strides=3)(x)", ("MAX_POOL_2D",), _x(8, 8, 4)),
    ),
    # XNN026 rank > 6
    _advice(
        "XNN026",
        GENERAL,
        f"Merge adjacent axes with a reshape so every tensor has at most {MAX_RANK} dimensions. " + NO_RULE,
        None,
    ),
    # XNN027 dynamic-range depthwise
    _advice(
        "XNN027",
        GENERAL,
        "Quantize with --recipe int8 (full integer) or fp16, or keep depthwise weights float: "
        "`xnnfit fix` (XR009), or --recipe "
        "dynamic-int8+float-dw.",
        None,
        rules=("XR009",),
        demo=Demo(
            "y = keras.layers.DepthwiseConv2D(3, padding='same')(x)",
            ("DEPTHWISE_CONV_2D",),
            _x(8, 8, 128),
            recipe="dynamic-int8",
            instead_recipe="fp16",
        ),
    ),
    # XNN028 float-only op, quantized
    _advice(
        "XNN028",
        "gelu",
        f"{_FLOAT_OPS} keeps GELU in float on XNNPACK. All-int8, write the tanh approximation out "
        "(gelu(approximate=True) converts to "
        "GELU too): it changes outputs by less than 1e-3. " + NO_RULE,
        "y = 0.5 * x * (1.0 + keras.ops.tanh(0.7978845608 * (x + 0.044715 * x * x * x)))   # "
        "keras.activations.gelu(x), all-int8",
        preserves=False,
        when=When(("GELU",)),
        demo=Demo("y = keras.activations.gelu(x)", ("GELU",), setup="x = x * 4.0", recipe="int8", within=1e-3),
    ),
    _advice(
        "XNN028",
        "hard-swish",
        "All-int8, write hard-swish as an ADD with a fused relu6 and two MULs, which XNNPACK "
        "runs in int8 (same math; the converter fuses "
        f"x * relu6(x + 3) / 6 back into HARD_SWISH); or {_FLOAT_OPS}. " + NO_RULE,
        "y = keras.ops.relu6(x + 3.0) * (x * (1.0 / 6.0))   # keras.layers.Activation('hard_swish')(x), all-int8",
        when=When(("HARD_SWISH",)),
        demo=Demo("y = keras.layers.Activation('hard_swish')(x)", ("HARD_SWISH",), setup="x = x * 5.0", recipe="int8"),
    ),
    _advice(
        "XNN028",
        "layer-norm",
        f"{_FLOAT_OPS} keeps LayerNormalization's SQUARED_DIFFERENCE and RSQRT in float on "
        "XNNPACK; its epsilon ADD stays int8 (XNN034). " + NO_RULE,
        None,
        when=When(("RSQRT", "SQUARED_DIFFERENCE"), "layer-norm", ("LayerNormalization",)),
        demo=Demo(
            "y = keras.layers.LayerNormalization(epsilon=1e-6)(x)",
            ("SQUARED_DIFFERENCE", "RSQRT"),
            setup=DENSE,
            recipe="int8",
            instead_recipe="int8+float-ops",
        ),
    ),
    _advice(
        "XNN028",
        "rsqrt",
        f"XNNPACK has no int8 rsqrt (nor sqrt or division): {_FLOAT_OPS} keeps RSQRT in float on XNNPACK. " + NO_RULE,
        None,
        when=When(("RSQRT",)),
        demo=Demo(
            "y = keras.ops.rsqrt(x * x + 1.0)", ("RSQRT",), setup=DENSE, recipe="int8", instead_recipe="int8+float-ops"
        ),
    ),
    _advice(
        "XNN028",
        "squared-difference",
        "All-int8, square a difference with a SUB and a MUL, which XNNPACK runs in int8 (same "
        "math; the converter does not fuse d * d). "
        "Inside LayerNormalization see XNN028.layer-norm. " + NO_RULE,
        "d = a - b\ny = d * d   # keras.ops.square(a - b) or tf.math.squared_difference(a, b), all-int8",
        when=When(("SQUARED_DIFFERENCE",)),
        demo=Demo(
            "y = keras.ops.square(a - b)", ("SQUARED_DIFFERENCE",), setup="a, b = x, 0.5 * x + 0.1", recipe="int8"
        ),
    ),
    _advice(
        "XNN028",
        "softmax",
        f"XNNPACK has no int8 softmax: {_FLOAT_OPS} keeps SOFTMAX in float on XNNPACK (or return "
        "the logits and apply softmax in the app, "
        "which changes the model's output). " + NO_RULE,
        None,
        when=When(("SOFTMAX",)),
        demo=Demo(
            "y = keras.layers.Softmax()(x)", ("SOFTMAX",), setup=DENSE, recipe="int8", instead_recipe="int8+float-ops"
        ),
    ),
    _advice(
        "XNN028",
        "average-pool",
        "Average with a depthwise convolution of constant weights 1/k², which XNNPACK runs in "
        "int8 (exact with padding='valid'); "
        "GlobalAveragePooling2D (MEAN) is int8 too. int8+float-ops does not help: it still quantizes AVERAGE_POOL_2D. "
        + NO_RULE,
        "y = keras.layers.DepthwiseConv2D(2, strides=2, use_bias=False, "
        "depthwise_initializer=keras.initializers.Constant(1 / 4), "
        "trainable=False)(x)   # AveragePooling2D(2)",
        when=When(("AVERAGE_POOL_2D",)),
        demo=Demo(
            "y = keras.layers.AveragePooling2D(2)(x)",
            ("AVERAGE_POOL_2D",),
            _x(8, 8, 4),
            setup="x = keras.layers.Conv2D(4, 3)(x)",
            recipe="int8",
        ),
    ),
    _advice(
        "XNN028",
        "maximum",
        "All-int8, max(a, b) = b + relu(a - b): a SUB with a fused relu and an ADD, both int8 on XNNPACK (same math). "
        + NO_RULE,
        "y = b + keras.ops.relu(a - b)   # keras.ops.maximum(a, b), all-int8",
        when=When(("MAXIMUM",)),
        demo=Demo("y = keras.ops.maximum(a, b)", ("MAXIMUM",), setup="a, b = x, 0.5 * x + 0.1", recipe="int8"),
    ),
    _advice(
        "XNN028",
        "minimum",
        "All-int8, min(a, b) = a - relu(a - b): a SUB with a fused relu and a SUB, both int8 on XNNPACK (same math). "
        + NO_RULE,
        "y = a - keras.ops.relu(a - b)   # keras.ops.minimum(a, b), all-int8",
        when=When(("MINIMUM",)),
        demo=Demo("y = keras.ops.minimum(a, b)", ("MINIMUM",), setup="a, b = x, 0.5 * x + 0.1", recipe="int8"),
    ),
    _advice(
        "XNN028",
        GENERAL,
        f"XNNPACK has no int8 kernel for this op: {_FLOAT_OPS} keeps it in float on XNNPACK, "
        "except AVERAGE_POOL_2D, which the converter "
        "still quantizes (XNN028.average-pool). " + NO_RULE,
        None,
        demo=Demo("y = x / (x * x + 1.0)", ("DIV",), setup=DENSE, recipe="int8", instead_recipe="int8+float-ops"),
    ),
    # XNN029 int16 activations
    _advice(
        "XNN029",
        GENERAL,
        "Convert with int8 (full integer) or fp16 instead of int16x8: `xnnfit check MODEL --recipe int8,fp16`. "
        + NO_RULE,
        None,
        demo=Demo("y = keras.layers.Dense(8)(x)", ("FULLY_CONNECTED",), recipe="int16x8", instead_recipe="int8"),
    ),
    # XNN030 DEQUANTIZE feeding CPU
    _advice(
        "XNN030",
        GENERAL,
        "Fix the consumer (see its cause); the DEQUANTIZE then follows it onto XNNPACK. " + NO_RULE,
        None,
    ),
    # XNN031 fp16 activation
    _advice(
        "XNN031",
        GENERAL,
        "Keep activations float32 and only weights fp16 (target_spec.supported_types = [tf.float16], --recipe fp16). "
        + NO_RULE,
        None,
    ),
    # XNN032 unfrozen variables
    _advice(
        "XNN032",
        GENERAL,
        "Convert with TFLiteConverter.from_keras_model(model), or freeze the concrete function "
        "(convert_variables_to_constants_v2); "
        "`xnnfit check model.keras` does this. `xnnfit fix` (XR011) freezes variables that only "
        "the initialisation (CALL_ONCE) assigns.",
        None,
        rules=("XR011",),
    ),
    # XNN033 quantized activation matmul
    _advice(
        "XNN033",
        GENERAL,
        f"Keep activation-by-activation matmuls in float: {_FLOAT_OPS} keeps BATCH_MATMUL in "
        "float on XNNPACK; fp16 and dynamic-int8 "
        "keep all activations float. " + NO_RULE,
        None,
        demo=Demo(
            "y = keras.ops.matmul(x, keras.ops.transpose(x * 0.5 + 0.2, (0, 2, 1)))",
            ("BATCH_MATMUL",),
            _x(8, 16),
            recipe="int8",
            instead_recipe="int8+float-ops",
        ),
    ),
    # XNN034 int8 add/mul scales
    _advice(
        "XNN034",
        "layer-norm-epsilon",
        f"An int8 ADD needs the epsilon's scale within 1/{_ADD_RATIO} of the sum's: raise epsilon to at "
        f"least (largest variance)/{_ADD_RATIO}, or keep "
        "activations float (--recipe dynamic-int8, fp16).\nA larger epsilon changes outputs "
        "where the variance is small. " + NO_RULE,
        "y = keras.layers.LayerNormalization(epsilon=1e-3)(x)   # instead of epsilon=1e-6, all-int8",
        preserves=False,
        when=When(("ADD",), "epsilon-add", ("LayerNormalization",)),
        demo=Demo("y = keras.layers.LayerNormalization(epsilon=1e-6)(x)", ("ADD",), setup=DENSE, recipe="int8"),
    ),
    _advice(
        "XNN034",
        GENERAL,
        "Keep these activations in float: --recipe dynamic-int8 or fp16. int8+float-ops does not "
        "help: it keeps ADD and MUL int8. " + NO_RULE,
        None,
        demo=Demo("y = x + keras.ops.full((1, 16), 1e-7)", ("ADD",), recipe="int8", instead_recipe="dynamic-int8"),
    ),
    # XNN035 slice to the end
    _advice(
        "XNN035",
        GENERAL,
        "Slice with Python bounds: x[:, 2:6] converts to a STRIDED_SLICE XNNPACK takes, dynamic "
        "batch included; tf.slice with a -1 "
        "size converts to a SLICE that keeps the -1 even at a fixed batch. " + NO_RULE,
        "y = x[:, 2:6]   # tf.slice(x, [0, 2], [-1, 4])",
        demo=Demo("y = keras.layers.Lambda(lambda t: tf.slice(t, [0, 2], [-1, 4]))(x)", ("SLICE",)),
    ),
    # XNN050 refused by an older runtime (--runtime)
    _advice(
        "XNN050",
        GENERAL,
        "Ship a newer runtime in the app (xnnfit check MODEL --runtime all shows which versions "
        "take it), or express the op "
        "with ops that runtime delegates. " + NO_RULE,
        None,
    ),
    # XNN051 dynamic tensor on an older runtime (--runtime)
    _advice(
        "XNN051",
        GENERAL,
        "Give every shape as constants (pin the batch with --input-shape, or -1 for it; the "
        "shape op is XNN020), or ship a newer runtime; "
        "then check the result with --runtime. " + NO_RULE,
        None,
    ),
    # XNN099 other ops
    _advice(
        "XNN099",
        GENERAL,
        "Express the op with delegated ops (ADD/MUL/conv/FC/reshape/...) or move it to pre/post-processing. " + NO_RULE,
        None,
    ),
)
