"""What `xnnfit fix` buys, measured: CPU nodes, error against the float reference, latency before -> after.

The error column is relative to the float reference's output scale: for fp32 rows the
original model (what the fix must not change), for quantized rows the fp32 conversion of
the same Keras model, before -> after (a fix must not move away from it).

For the bundled examples (and against the hand-written twin of the tf.where CNN) and for
models no one here wrote (keras.applications with weights=None, a keras-hub backbone).
Latency ratios come from interleaved runs in one process; read ratios, not absolute ms.

    .venv/bin/python benchmarks/fix_effect.py [--runs 50] [--quick]
"""

from __future__ import annotations

import argparse
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
from _examples import example  # noqa: E402  (benchmarks/ is on sys.path when a script runs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--quick", action="store_true", help="examples only, no keras.applications / keras-hub")
    args = parser.parse_args()

    from xnnfit.model.convert import ConvertOptions, convert_model
    from xnnfit.model.inputs import random_inputs
    from xnnfit.model.recipes import RECIPES
    from xnnfit.model.specs import ShapeRequest
    from xnnfit.rewrite.engine import fix_content
    from xnnfit.runtime.timing import race as race_all

    def race(a: bytes, b: bytes, sample, runs: int):
        stats = race_all({"a": a, "b": b}, sample, runs)
        return stats["a"], stats["b"]

    print(
        f"{'model':34s} {'recipe':13s} {'CPU nodes':>10s} {'partitions':>11s} "
        f"{'error vs float ref':>22s} {'before ms':>10s} {'after ms':>9s} {'speedup':>8s}  rules"
    )

    def row(name, model, recipe, options=ConvertOptions(), twin=None):
        conv = convert_model(model, RECIPES[recipe], options)
        ref = convert_model(model, RECIPES["fp32"], options).content if recipe != "fp32" else None
        res = fix_content(conv, reference=ref, reference_name="the fp32 conversion", runs=args.runs)
        applied = ", ".join(f"{o.rule}×{o.count}" for o in res.applied) or "none"
        rolled = [f"{o.rule} rolled back ({o.reason})" for o in res.outcomes if o.status == "rolled-back"]
        if res.reference_before is not None:
            err = f"{res.reference_before.max_rel_error:.2%} -> {res.reference_after.max_rel_error:.2%}"
        else:
            err = f"0 -> {res.numerics.max_rel_error:.2g}"
        print(
            f"{name:34s} {recipe:13s} {res.before.cpu_nodes:>4d} -> {res.after.cpu_nodes:<3d} "
            f"{res.before.partitions:>4d} -> {res.after.partitions:<4d} "
            f"{err:>22s} {res.before.median_ms:10.4f} {res.after.median_ms:9.4f} "
            f"{res.before.median_ms / res.after.median_ms:7.2f}x  {applied}"
        )
        for r in rolled:
            print(f"{'':34s} {r}")
        if twin is not None:
            tconv = convert_model(twin, RECIPES[recipe], options)
            sample = random_inputs(conv.specs, 1)[0]
            fixed, hand = race(res.content, tconv.content, sample, args.runs)
            print(
                f"{'':34s} fixed vs hand-written twin: {fixed.median_ms:.4f} vs {hand.median_ms:.4f} ms "
                f"({fixed.median_ms / hand.median_ms:.2f}x)"
            )
        return res

    cnn = example("where_cnn")
    for recipe in ("fp32", "int8"):
        row("where_activation", example("where_activation").build(), recipe)
        row("where_cnn", cnn.build(), recipe, twin=cnn.build_twin())
        row("upsampling_decoder", example("upsampling_decoder").build(), recipe)
    row(
        "dynamic_reshape (--dynamic-batch)",
        example("dynamic_reshape").build(),
        "fp32",
        ConvertOptions(ShapeRequest(dynamic_batch=True)),
    )
    row("transformer_block", example("transformer_block").build(), "int8")
    if args.quick:
        return
    import keras
    import keras_hub

    mnv2 = keras.applications.MobileNetV2(weights=None)
    res = row("MobileNetV2", mnv2, "dynamic-int8")
    fp32 = convert_model(mnv2, RECIPES["fp32"])
    sample = random_inputs(fp32.specs, 1)[0]
    fixed, plain = race(res.content, fp32.content, sample, args.runs)
    print(
        f"{'':34s} fixed dynamic-int8 vs fp32 conversion: {fixed.median_ms:.3f} vs "
        f"{plain.median_ms:.3f} ms ({fixed.median_ms / plain.median_ms:.2f}x)"
    )
    row("NASNetMobile", keras.applications.NASNetMobile(weights=None), "fp32")
    keras.utils.set_random_seed(0)
    row(
        "EfficientNetB0 (logits)",
        keras.applications.EfficientNetB0(weights=None, classifier_activation=None),
        "dynamic-int8",
    )
    row(
        "MobileNetV3Large (logits)",
        keras.applications.MobileNetV3Large(weights=None, classifier_activation=None),
        "dynamic-int8",
    )
    bert = keras_hub.models.BertBackbone(
        vocabulary_size=1000, num_layers=2, num_heads=2, hidden_dim=64, intermediate_dim=128, max_sequence_length=64
    )
    shapes = tuple((k, (1, 64)) for k in ("token_ids", "segment_ids", "padding_mask"))
    row("keras-hub BERT", bert, "fp32", ConvertOptions(ShapeRequest(input_shapes=shapes)))


if __name__ == "__main__":
    sys.exit(main())
