"""What `xnnfit fix` does to transformers, measured: CPU nodes, partitions, CPU-time share, latency before -> after.

keras-hub BERT, GPT-2 and Llama (GQA) at 4 layers, hidden 256, sequence 128, plus tiny
configs, in fp32 and dynamic-int8; latency at each --threads count, before and after the
fix timed interleaved in one process (ratios, not absolute ms, are the result).

    .venv/bin/python benchmarks/transformers.py [--threads 1,4] [--runs 30] [--quick]
"""

from __future__ import annotations

import argparse
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def backbones(quick: bool) -> list[tuple[str, object, int]]:
    """(name, builder, sequence length)."""
    import keras_hub

    tiny = dict(vocabulary_size=1000, num_layers=2, hidden_dim=64, intermediate_dim=128)
    mid = dict(vocabulary_size=5000, num_layers=4, hidden_dim=256, intermediate_dim=1024)
    out = [
        ("BERT tiny", lambda: keras_hub.models.BertBackbone(num_heads=2, max_sequence_length=32, **tiny), 32),
        ("GPT-2 tiny", lambda: keras_hub.models.GPT2Backbone(num_heads=2, max_sequence_length=32, **tiny), 32),
        (
            "Llama tiny (GQA)",
            lambda: keras_hub.models.LlamaBackbone(num_query_heads=4, num_key_value_heads=2, **tiny),
            32,
        ),
        (
            "Gemma tiny",
            lambda: keras_hub.models.GemmaBackbone(num_query_heads=2, num_key_value_heads=1, head_dim=32, **tiny),
            32,
        ),
    ]
    if not quick:
        out += [
            (
                "BERT 4x256, seq 128",
                lambda: keras_hub.models.BertBackbone(num_heads=4, max_sequence_length=128, **mid),
                128,
            ),
            (
                "GPT-2 4x256, seq 128",
                lambda: keras_hub.models.GPT2Backbone(num_heads=4, max_sequence_length=128, **mid),
                128,
            ),
            (
                "Llama 4x256 (GQA), seq 128",
                lambda: keras_hub.models.LlamaBackbone(num_query_heads=4, num_key_value_heads=2, **mid),
                128,
            ),
        ]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", default="1,4")
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--quick", action="store_true", help="tiny configs only")
    args = parser.parse_args()
    threads = tuple(int(t) for t in args.threads.split(","))

    import keras

    from xnnfit.explain.diagnosis import diagnose
    from xnnfit.measure.profile import profile_content
    from xnnfit.model.convert import ConvertOptions, convert_model
    from xnnfit.model.inputs import random_inputs
    from xnnfit.model.recipes import RECIPES
    from xnnfit.model.specs import ShapeRequest
    from xnnfit.rewrite.engine import fix_content
    from xnnfit.runtime.timing import race

    print(
        f"{'model':28s} {'recipe':13s} {'CPU nodes':>10s} {'partitions':>11s} {'CPU time':>9s}  "
        + "  ".join(f"{n} thr ms before->after" for n in threads)
        + "  rules"
    )
    for name, build, seq in backbones(args.quick):
        for recipe in ("fp32", "dynamic-int8"):
            keras.utils.set_random_seed(0)
            model = build()
            options = ConvertOptions(ShapeRequest(input_shapes=tuple((k, (1, seq)) for k in model.input)))
            conv = convert_model(model, RECIPES[recipe], options)
            ref = convert_model(model, RECIPES["fp32"], options).content if recipe != "fp32" else None
            before = diagnose(conv)
            sample = random_inputs(conv.specs, 1)[0]
            prof = profile_content(
                conv.content, conv.specs, before.nodes, before.partitions, sample, runs=max(5, args.runs // 3)
            )
            res = fix_content(conv, reference=ref, reference_name="the fp32 conversion", runs=args.runs)
            times = []
            for n in threads:
                stats = race(
                    {"before": conv.content, "after": res.content}, sample, args.runs, specs=conv.specs, threads=n
                )
                b, a = stats["before"].median_ms, stats["after"].median_ms
                times.append(f"{b:7.3g} -> {a:<7.3g} ({b / a:4.2f}x)")
            rules = ", ".join(f"{o.rule}×{o.count}" for o in res.applied) or "none"
            print(
                f"{name:28s} {recipe:13s} {res.before.cpu_nodes:>4d} -> {res.after.cpu_nodes:<3d} "
                f"{res.before.partitions:>4d} -> {res.after.partitions:<4d} "
                f"{prof.cpu_share:8.0%}  " + "  ".join(times) + f"  {rules}",
                flush=True,
            )


if __name__ == "__main__":
    sys.exit(main())
