"""Quantization findings and the int8-repaired candidate, on models with trained weights (tests/trained.py).

For each trained model (scikit-learn digits CNNs with ReLU and with the seed article's
tf.where activations, and the masked-attention transformer whose full-int8 conversion
collapses), `xnnfit optimize --explain-quant` converts it with the full-int8 recipes, explains
each candidate's quantization error and adds int8-repaired when the findings name nodes to keep
in float. Every candidate written is then measured here independently: top-1 accuracy against
the eval labels over all eval samples on the LiteRT interpreter, and its CPU nodes.

    .venv/bin/python benchmarks/quant_findings.py [--models digits_relu,masked_transformer] [--runs 10]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))  # tests/trained.py


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default="digits_relu,digits_where,masked_transformer")
    parser.add_argument("--recipes", default="int8,int8+float-ops")
    parser.add_argument("--runs", type=int, default=10)
    args = parser.parse_args()

    import trained
    from xnnfit import api
    from xnnfit.observe.delegation import observe

    print(
        f"{'model':20s} {'recipe':15s} {'top-1':>7s} {'error':>7s} {'CPU nodes':>9s} {'ms':>8s}  "
        "findings (cause layer: own error), first = where the error starts"
    )
    for name in args.models.split(","):
        folder = Path(tempfile.mkdtemp(prefix=f"quant-findings-{name}-"))
        saved = trained.save(name, folder)
        result = api.optimize(
            saved.builder,
            recipe=args.recipes,
            calibration=str(saved.calibration),
            eval_data=str(saved.eval),
            runs=args.runs,
            explain_quant=True,
        )
        for c in result.candidates:
            if c.status != "ok":
                print(f"{name:20s} {c.recipe:15s} failed: {' '.join((c.error or '').split())[:100]}")
                continue
            found = "; ".join(
                f"{f.id or 'unexplained'} {f.layer or f.tensor}: {f.error:.0%}" for f in c.quantization_findings
            )
            print(
                f"{name:20s} {c.recipe:15s} {trained.litert_top1(c.content, saved.eval):7.2%} {c.rel_error:7.2%} "
                f"{observe(c.content).cpu_nodes:9d} {c.median_ms:8.4f}  {found or '-'}"
            )
        print(f"{'':20s} chosen: {result.chosen} ({result.reason[:110]})")
        for w in result.warnings:
            if "quantization findings" in w:
                print(f"{'':20s} {w}")


if __name__ == "__main__":
    main()
