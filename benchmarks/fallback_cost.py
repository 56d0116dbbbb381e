"""What fallbacks cost, measured: the figures behind `xnnfit bench` / `xnnfit profile`.

Prints, in one run on this machine (ratios are what to read; absolute ms are noisy):
  1. the tf.where CNN (examples/where_cnn.py) in fp32 and full int8 against its
     hand-written twin (build_twin), both timed interleaved in one process;
  2. the transformer block in full int8: share of time on CPU kernels, top CPU ops;
  3. MobileNetV2 (weights=None) fp32 vs dynamic-int8 (depthwise convs fall back);
  4. that profile pieces add up to the whole on the examples, MobileNetV2 and a keras-hub BERT.

    .venv/bin/python benchmarks/fallback_cost.py [--runs 50]
"""

from __future__ import annotations

import argparse
import os
import sys
from collections import Counter

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
from _examples import example  # noqa: E402  (benchmarks/ is on sys.path when a script runs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=50)
    args = parser.parse_args()

    import keras

    from xnnfit.explain.diagnosis import diagnose
    from xnnfit.measure.profile import profile_content
    from xnnfit.model.convert import ConvertOptions, convert_model
    from xnnfit.model.inputs import random_inputs
    from xnnfit.model.recipes import RECIPES
    from xnnfit.model.specs import ShapeRequest
    from xnnfit.runtime.timing import race

    def converted(model, recipe, options=ConvertOptions()):
        conv = convert_model(model, RECIPES[recipe], options)
        return conv, diagnose(conv)

    def timed_pair(a, b):
        stats = race({"a": a.content, "b": b.content}, random_inputs(a.specs, 1)[0], args.runs, specs=a.specs)
        return stats["a"], stats["b"]

    def profile_line(name, conv, diag):
        sample = random_inputs(conv.specs, 1)[0]
        prof = profile_content(conv.content, conv.specs, diag.nodes, diag.partitions, sample, runs=args.runs // 2)
        print(
            f"  {name:28s} whole {prof.total.median_ms:7.3f} ms, pieces sum {prof.sum_ratio:.2f}x "
            f"({prof.adjusted_sum_ratio:.2f}x without {len(prof.pieces) - 1} extra invokes), CPU "
            f"share {prof.cpu_share:.0%}"
        )
        return prof

    cnn = example("where_cnn")
    print("1. tf.where CNN vs hand-written twin (XNNPACK, 1 thread, median of interleaved runs)")
    for recipe in ("fp32", "int8"):
        orig, orig_d = converted(cnn.build(), recipe)
        twin, twin_d = converted(cnn.build_twin(), recipe)
        a, b = timed_pair(orig, twin)
        so, st = orig_d.summary(), twin_d.summary()
        print(
            f"  {recipe:5s} original {a.median_ms:.3f} ms ({so['cpu_nodes']} of {so['nodes']} nodes "
            f"on CPU, {so['partitions']} partitions) | "
            f"twin {b.median_ms:.3f} ms ({st['cpu_nodes']} of {st['nodes']} on CPU) | original/twin "
            f"{a.median_ms / b.median_ms:.2f}x"
        )

    print("2. transformer block, full int8")
    conv, diag = converted(example("transformer_block").build(), "int8")
    prof = profile_line("transformer_block int8", conv, diag)
    cpu_ops = Counter()
    for p in prof.pieces:
        if p.kind == "cpu":
            cpu_ops[p.ops[0]] += p.ms
    print("  CPU time by op: " + ", ".join(f"{op} {ms / prof.sum_ms:.0%}" for op, ms in cpu_ops.most_common(5)))

    print("3. MobileNetV2 (weights=None, 224x224) fp32 vs dynamic-int8")
    mnv2 = keras.applications.MobileNetV2(weights=None)
    fp32, fp32_d = converted(mnv2, "fp32")
    dyn, dyn_d = converted(mnv2, "dynamic-int8")
    a, b = timed_pair(dyn, fp32)
    print(
        f"  dynamic-int8 {a.median_ms:.2f} ms ({dyn_d.summary()['cpu_nodes']} depthwise convs on "
        f"CPU) | fp32 {b.median_ms:.2f} ms | "
        f"dynamic-int8/fp32 {a.median_ms / b.median_ms:.2f}x"
    )

    print("4. profile pieces vs whole")
    for name in ("where_activation", "where_cnn", "upsampling_decoder"):
        profile_line(f"{name} fp32", *converted(example(name).build(), "fp32"))
    profile_line("where_cnn int8", *converted(cnn.build(), "int8"))
    profile_line("MobileNetV2 fp32", fp32, fp32_d)
    profile_line("MobileNetV2 dynamic-int8", dyn, dyn_d)
    import keras_hub

    bert = keras_hub.models.BertBackbone(
        vocabulary_size=1000, num_layers=2, num_heads=2, hidden_dim=64, intermediate_dim=128, max_sequence_length=64
    )
    shapes = tuple((k, (1, 64)) for k in ("token_ids", "segment_ids", "padding_mask"))
    profile_line("keras-hub BERT fp32", *converted(bert, "fp32", ConvertOptions(ShapeRequest(input_shapes=shapes))))


if __name__ == "__main__":
    sys.exit(main())
