"""Accuracy against labels on trained models: each recipe's top-1, its error, and what optimize chose.

The models are trained here on shipped data (tests/trained.py: scikit-learn's digits, a
synthetic masked-token task), each recipe is converted with calibration data from the
training split and scored on every held-out sample against its label. Timings are this
machine's (x86, AVX2, no VNNI: int8 is slower here than on ARM phones).

    .venv/bin/python benchmarks/quant_accuracy.py [--models digits_relu,digits_where,masked_transformer]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))


def main() -> None:
    import trained

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default=",".join(trained.MODELS), help="comma-separated, from tests/trained.py")
    parser.add_argument("--recipes", default=None, help="comma-separated recipes (default: all)")
    parser.add_argument("--runs", type=int, default=20)
    args = parser.parse_args()

    import xnnfit

    folder = Path(tempfile.mkdtemp(prefix="xnnfit-accuracy-"))
    print("| model | recipe | top-1 on labels | vs fp32 | error vs fp32 | on XNNPACK | median ms | chosen |")
    print("|---|---|---|---|---|---|---|---|")
    for name in args.models.split(","):
        saved = trained.save(name, folder / name)
        result = xnnfit.optimize(
            saved.builder,
            folder / name / "best.tflite",
            recipe=args.recipes,
            calibration=str(saved.calibration),
            eval_data=str(saved.eval),
            runs=args.runs,
            trust_model=True,
            on_progress=lambda step, n=name: print(f"  {n}: {step}", file=sys.stderr),
        )
        ref = result.budget.reference_accuracy
        for c in result.candidates:
            if not c.ok:
                print(f"| {name} | {c.recipe} | failed | | | | | |")
                continue
            drop = f"{(c.accuracy - ref) * 100:+.1f} pts" if c.accuracy is not None and ref is not None else ""
            chosen = "**chosen**" if c.recipe == result.chosen else ""
            print(
                f"| {name} | {c.recipe} | {c.accuracy:.1%} | {drop} | {c.rel_error:.2%} | "
                f"{c.delegated_fraction:.0%} | {c.median_ms:.3g} | {chosen} |"
            )
        print(f"<!-- {name}: Keras {saved.keras_accuracy:.1%}; {result.eval.describe()}; {result.reason} -->")


if __name__ == "__main__":
    main()
