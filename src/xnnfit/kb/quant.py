"""Causes: quantization schemes XNNPACK does not run for some ops."""

from __future__ import annotations

from xnnfit.kb.cause import Cause
from xnnfit.kb.conditions import (
    QuantizedOp,
    dequantize_consumer_on_cpu,
    float16_activation,
    hybrid_depthwise,
    quantized_matmul_zero_point,
    quantized_scale_ratio,
)
from xnnfit.kb.limits import ADD_SCALE_RATIO, MUL_SCALE_RATIO, ratio_text
from xnnfit.kb.probes import delegated, lam, layers, rejected
from xnnfit.kb.tables import FLOAT_ONLY

CAUSES = (
    Cause(
        id="XNN027",
        title="dynamic-range int8 depthwise convolution",
        condition=hybrid_depthwise,
        why="XNNPACK runs float-activation x int8-weight (dynamic-range) CONV_2D and "
        "FULLY_CONNECTED, but not DEPTHWISE_CONV_2D: it needs the same type for input, filter "
        "and output.",
        example="keras.layers.DepthwiseConv2D(3) converted with Optimize.DEFAULT and no representative data",
        rewrites=("XR009",),
        probes=(
            rejected(
                "DEPTHWISE_CONV_2D",
                layers(lambda k: k.layers.DepthwiseConv2D(3, padding="same"), shape=(8, 8, 128)),
                recipe="dynamic-int8",
            ),
            delegated(
                "DEPTHWISE_CONV_2D",
                layers(lambda k: k.layers.DepthwiseConv2D(3, padding="same"), shape=(8, 8, 128)),
                recipe="fp16",
            ),
        ),
    ),
    Cause(
        id="XNN028",
        title="op that XNNPACK runs in float only, quantized here",
        condition=QuantizedOp(FLOAT_ONLY),
        why="XNNPACK has float kernels but no int8/uint8 kernels for this op, so in a fully "
        "quantized model it runs on CPU kernels.",
        example="keras.layers.Softmax() in a full-int8 model",
        probes=(
            rejected("SOFTMAX", layers(lambda k: k.layers.Dense(16), lambda k: k.layers.Softmax()), recipe="int8"),
            rejected(
                "AVERAGE_POOL_2D",
                layers(lambda k: k.layers.Conv2D(4, 3), lambda k: k.layers.AveragePooling2D(2), shape=(8, 8, 4)),
                recipe="int8",
            ),
            rejected("MAXIMUM", lam(lambda tf, x: tf.maximum(x, x * 0.5 + 0.1)), recipe="int8"),
            delegated(
                "SOFTMAX",
                layers(lambda k: k.layers.Dense(16), lambda k: k.layers.Softmax()),
                recipe="fp32",
            ),
            delegated(
                "AVERAGE_POOL_2D",
                layers(lambda k: k.layers.Conv2D(4, 3), lambda k: k.layers.AveragePooling2D(2), shape=(8, 8, 4)),
            ),
        ),
    ),
    Cause(
        id="XNN033",
        title="quantized matmul of two activations",
        condition=quantized_matmul_zero_point,
        why="XNNPACK's int8 BATCH_MATMUL needs a B operand with zero point 0 (weights); "
        "attention-style activation x activation products are asymmetric and stay on CPU kernels.",
        example="tf.matmul(q, k, transpose_b=True) in a full-int8 model",
        probes=(
            rejected(
                "BATCH_MATMUL",
                lam(lambda tf, x: tf.matmul(x, x * 0.5 + 0.2, transpose_b=True), shape=(8, 16)),
                recipe="int8",
            ),
            delegated(
                "BATCH_MATMUL",
                lam(lambda tf, x: tf.matmul(x, x * 0.5 + 0.2, transpose_b=True), shape=(8, 16)),
            ),
        ),
    ),
    Cause(
        id="XNN030",
        title="DEQUANTIZE of weights feeding a node on CPU kernels",
        condition=dequantize_consumer_on_cpu,
        why="XNNPACK absorbs a constant DEQUANTIZE (fp16/int8 weights) only when every consumer is "
        "delegated; this one feeds a CPU node, so it stays on CPU too.",
        example="fp16 weights feeding a tf.where",
        probes=(
            rejected(
                "DEQUANTIZE",
                lam(lambda tf, x: tf.where(x < tf.linspace(-1.0, 1.0, 16), x, 2.0 * x)),
                recipe="fp16",
            ),
            delegated("DEQUANTIZE", lam(lambda tf, x: tf.maximum(x, tf.linspace(-1.0, 1.0, 16))), recipe="fp16"),
        ),
    ),
    Cause(
        id="XNN031",
        title="DEQUANTIZE of an fp16 activation",
        condition=float16_activation,
        why="XNNPACK converts only int8/uint8 activations with DEQUANTIZE; an fp16 activation tensor is refused.",
        example="a model whose inference type is float16",
        probes=(),
    ),
    Cause(
        id="XNN034",
        title="quantized add/mul of tensors with very different scales",
        condition=quantized_scale_ratio,
        why=f"XNNPACK's int8 ADD/SUB need each input scale within {ratio_text(ADD_SCALE_RATIO)} of the output scale "
        f"(MUL: s1*s2/s_out within {ratio_text(MUL_SCALE_RATIO)}); adding a tiny constant such as a layer-norm "
        "epsilon or a -1e9 attention mask breaks that.",
        example="x + 1e-12 in a full-int8 model (layer-norm epsilon)",
        probes=(
            rejected("ADD", lam(lambda tf, x: x + tf.fill((1, 16), 1e-7)), recipe="int8"),
            delegated("ADD", lam(lambda tf, x: x + tf.fill((1, 16), 0.5)), recipe="int8"),
        ),
    ),
)
