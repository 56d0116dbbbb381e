"""The quantization sweep behind `xnnfit quant`, on MobileNetV2 (weights=None), the bundled
transformer block and the tf.where CNN. Prints each table and the recommendation.

    .venv/bin/python benchmarks/quant_sweep.py [--runs 30] [--quick]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

from rich.console import Console

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
ROOT = Path(__file__).resolve().parents[1]
MOBILENET = """
import keras
def build():
    return keras.applications.MobileNetV2(weights=None)
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--quick", action="store_true", help="skip MobileNetV2")
    args = parser.parse_args()

    from xnnfit import quant
    from xnnfit.report.terminal import render_quant

    console = Console(width=160)
    models = [f"{ROOT}/examples/transformer_block.py:build", f"{ROOT}/examples/where_cnn.py:build"]
    if not args.quick:
        path = Path(tempfile.mkdtemp(prefix="xnnfit-quant-")) / "mobilenet_v2.py"
        path.write_text(MOBILENET)
        models.insert(0, f"{path}:build")
    for model in models:
        render_quant(console, quant(model, runs=args.runs))
        console.print()


if __name__ == "__main__":
    sys.exit(main())
