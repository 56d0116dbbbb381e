"""Causes about how the model was built: custom and Flex ops, unfrozen variables, other ops."""

from __future__ import annotations

from xnnfit.kb.cause import Cause, Probe
from xnnfit.kb.conditions import (
    CustomOp,
    NotImplemented_,
    refused_on_target_runtime,
    runtime_skips_dynamic_graph,
    weights_from_variable,
)
from xnnfit.kb.probes import RUNTIME_RESHAPE, delegated, lam, layers, rejected, unfrozen_conv

CAUSES = (
    Cause(
        id="XNN018",
        title="custom op",
        condition=CustomOp(flex=False),
        why="XNNPACK implements a handful of MediaPipe/ODML custom ops; any other custom op runs on "
        "its own registered kernel, outside the delegate.",
        example="converter.allow_custom_ops = True with tf.math.tan",
        probes=(),
    ),
    Cause(
        id="XNN019",
        title="op that needs TensorFlow kernels (Flex / SELECT_TF_OPS)",
        condition=CustomOp(flex=True),
        why="The op has no TFLite builtin; with SELECT_TF_OPS it runs on the TensorFlow kernel "
        "(Flex), which XNNPACK never takes and which adds MBs to the app.",
        example="tf.math.tan(x), tf.image.extract_patches(...)",
        probes=(
            Probe("conversion-error", "Tan", lam(lambda tf, x: tf.math.tan(x))),
            delegated("SIN", lam(lambda tf, x: tf.sin(x) / tf.cos(x))),
        ),
    ),
    Cause(
        id="XNN032",
        title="weights read from variables (model not frozen)",
        condition=weights_from_variable,
        why="The model was converted without freezing: weights are read from resource variables at "
        "run time, so conv weights are not constants and XNNPACK refuses those layers (matmuls "
        "still run: BATCH_MATMUL takes a variable operand).",
        example="TFLiteConverter.from_concrete_functions([fn.get_concrete_function()], model)",
        rewrites=("XR011",),
        probes=(
            rejected("CONV_2D", unfrozen_conv),
            delegated("CONV_2D", layers(lambda k: k.layers.Conv2D(4, 3), shape=(8, 8, 3))),
        ),
    ),
    Cause(
        id="XNN050",
        title="op this runtime's XNNPACK does not take (older runtime)",
        condition=refused_on_target_runtime,
        why="The XNNPACK delegate in the runtime the app ships (--runtime) refused this op, in this "
        "form (float or int8), when run alone; "
        "newer runtimes take it. Only given under --runtime, from that runtime's probe table (kb/versions.json).",
        example="GELU or BATCH_MATMUL on tflite-runtime 2.14; any int8 CONV_2D on the 2.14 pip build",
        probes=(),  # proven per runtime by the one-op probes of the matrix (tests/test_probe_matrix.py),
        # never on the installed one
    ),
    Cause(
        id="XNN051",
        title="graph with a dynamic tensor on a runtime that then skips XNNPACK (older runtime)",
        condition=runtime_skips_dynamic_graph,
        why="Some op's output shape is computed at run time (a reshape to tf.shape(x)...), so TFLite "
        "allocates that tensor dynamically; "
        "the runtime the app ships (--runtime) then applies no XNNPACK to the graph at all. "
        "Newer runtimes delegate around it. "
        "Only given under --runtime, from that runtime's probe table (kb/versions.json).",
        example=f"{RUNTIME_RESHAPE} with a dynamic batch, on tflite-runtime 2.14",
        probes=(),  # proven per runtime by the matrix's graph probe (probe_matrix.graph_probes),
        # never on the installed one
    ),
)


def other_ops_cause(claimed: frozenset[str]) -> Cause:
    """The catch-all for ops outside the delegate's switch that no family above names."""
    return Cause(
        id="XNN099",
        title="op the XNNPACK delegate does not implement",
        condition=NotImplemented_(claimed),
        why="This op is not among the ops the XNNPACK delegate implements, so it always runs on its CPU kernel.",
        example="tf.math.floordiv(x, 3.0)",
        probes=(
            rejected("FLOOR_DIV", lam(lambda tf, x: tf.math.floordiv(x, 3.0))),
            delegated("FLOOR", lam(lambda tf, x: tf.floor(x / 3.0))),
        ),
    )
