"""The same models on every runtime of the --runtime matrix: delegation, partitions and latency, one run, one machine.

For each model (converted once by the pinned converter) and each runtime: nodes on
XNNPACK, partitions, and the latency with XNNPACK and with the built-in kernels (1
thread). Every runtime is timed the same way, in a child of its own venv (the installed
2.3.0 too, in a venv of its own), in rounds A B C D A B C D ... of `--runs` interleaved
runs each, so a slow spell of the machine hits every runtime; the figure is the median of
the rounds' medians, and the ratio is to 2.3.0's. Also the wall time of a venv build when
--cold is given (a fresh cache folder), and of `check --runtime all` on a warm cache.

    .venv/bin/python benchmarks/runtimes.py [--runs 20] [--rounds 5] [--cold]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BERT = """import keras_hub


def build():
    return keras_hub.models.BertBackbone(
        vocabulary_size=1000, num_layers=2, hidden_dim=64, intermediate_dim=128, num_heads=2, max_sequence_length=32
    )
"""
MODELS = [
    ("where_cnn full-int8", f"{ROOT / 'examples' / 'where_cnn.py'}:build", "int8"),
    ("where_cnn fp32", f"{ROOT / 'examples' / 'where_cnn.py'}:build", "fp32"),
    ("BERT tiny fp32", "BERT", "fp32"),
]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--cold", action="store_true", help="also time building one venv in a fresh cache folder")
    args = parser.parse_args()

    from xnnfit import api
    from xnnfit.runtime import targets

    with tempfile.TemporaryDirectory() as tmp:
        bert = Path(tmp) / "bert.py"
        bert.write_text(BERT)
        if args.cold:
            env = {**os.environ, "XNNFIT_CACHE_DIR": str(Path(tmp) / "cold")}
            start = time.perf_counter()
            subprocess.run(
                [
                    sys.executable,
                    "-c",
                    "from xnnfit.runtime import targets; targets.ensure(targets.parse('tflite-runtime==2.14.0'))",
                ],
                env=env,
                check=True,
            )
            print(
                f"cold venv build (tflite-runtime==2.14.0, pip from the registry): {time.perf_counter() - start:.1f} s"
            )
        for t in targets.parse_many("all"):
            targets.ensure(t)  # warm every venv before timing anything
        start = time.perf_counter()
        subprocess.run(
            [sys.executable, "-m", "xnnfit", "check", str(bert) + ":build", "--runtime", "all", "-q"],
            check=True,
            capture_output=True,
        )
        print(f"check BERT --runtime all, warm venvs (conversion included): {time.perf_counter() - start:.1f} s\n")

        import numpy as np

        from xnnfit.model.inputs import samples_for
        from xnnfit.model.specs import ShapeRequest, tflite_declared_inputs
        from xnnfit.tflite.graph import read_model

        timed = [targets.ensure(targets.parse(s)) for s in targets.MATRIX[:-1]]
        timed.append(
            targets.ensure(targets.Target(targets.MATRIX[-1], "ai-edge-litert", "2.3.0"))
        )  # 2.3.0 in a child as well
        print(
            f"{'model':22} {'runtime':24} {'on XNNPACK':>12} {'partitions':>10} {'XNNPACK ms':>11} "
            f"{'CPU ms':>9} {'vs 2.3.0':>9}"
        )
        for label, source, recipe in MODELS:
            content = api.convert(str(bert) + ":build" if source == "BERT" else source, recipe=recipe)
            specs, _ = ShapeRequest().pin_all(tflite_declared_inputs(read_model(content)))
            values = targets.inputs_in_order(content, samples_for(specs, None, 1, 0)[0])
            shapes = {"on": {}, "off": {}}
            meta = {}
            for t in timed:
                d = api.check(content, runtime=t.spec).recipes[0]
                meta[t.spec] = None if (d.not_loaded or not d.ok) else d.summary()
            for _ in range(args.rounds):
                for t in timed:
                    if meta[t.spec] is None:
                        continue
                    samples, _ = targets.time_configs(
                        t, [(content, values, True, 1), (content, values, False, 1)], args.runs, 3
                    )
                    shapes["on"].setdefault(t.spec, []).append(float(np.median(samples[0])))
                    shapes["off"].setdefault(t.spec, []).append(float(np.median(samples[1])))
            base = float(np.median(shapes["on"][timed[-1].spec]))
            for t in timed:
                name = t.label.removeprefix("pip ").split(" (")[0]
                s = meta[t.spec]
                if s is None:
                    print(f"{label:22} {name:24} {'does not load':>12}")
                    continue
                on, off = float(np.median(shapes["on"][t.spec])), float(np.median(shapes["off"][t.spec]))
                print(
                    f"{label:22} {name:24} {s['delegated']:>5}/{s['nodes']:<6} {s['partitions']:>10} "
                    f"{on:>11.3g} {off:>9.3g} {on / base:>8.2f}x"
                )
    return 0


if __name__ == "__main__":
    sys.exit(main())
