"""What `xnnfit check` costs on top of what a user does anyway, measured in one run.

Prints, for keras.applications.MobileNetV2(weights=None) saved as .keras:
  - wall time of `xnnfit check model.keras` (fresh process, as a user runs it),
  - wall time of a bare script doing load + TFLiteConverter + one interpreter build,
  - their ratio (target <= 1.5x),
and the wall time of `xnnfit check model.tflite` (target < 2 s, no TensorFlow import).
Each figure is the median of --repeat runs, interleaved A B A B so drift hits both.

    .venv/bin/python benchmarks/check_overhead.py [--repeat 3]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BARE = """
import sys, tensorflow as tf, keras
from ai_edge_litert.interpreter import Interpreter
model = keras.saving.load_model(sys.argv[1], compile=False)
converter = tf.lite.TFLiteConverter.from_keras_model(model)
content = converter.convert()
it = Interpreter(model_content=content); it.allocate_tensors()
"""

NO_TF = """
import sys
import xnnfit
report = xnnfit.check(sys.argv[1])
assert report.recipes[0].ok
print("tensorflow imported:", "tensorflow" in sys.modules)
"""


def wall(cmd: list[str]) -> float:
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    start = time.perf_counter()
    res = subprocess.run(cmd, capture_output=True, text=True, env=env)
    elapsed = time.perf_counter() - start
    if res.returncode not in (0, 1):
        raise SystemExit(f"command failed ({res.returncode}): {' '.join(cmd)}\n{res.stderr[-2000:]}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import keras
    import tensorflow as tf

    tmp = Path(tempfile.mkdtemp(prefix="xnnfit-bench-"))
    keras_path = tmp / "mobilenet_v2.keras"
    model = keras.applications.MobileNetV2(weights=None)
    model.save(keras_path)
    tflite_path = tmp / "mobilenet_v2.tflite"
    with contextlib.redirect_stdout(io.StringIO()):  # the converter prints the SavedModel signature
        tflite_path.write_bytes(tf.lite.TFLiteConverter.from_keras_model(model).convert())
    xnnfit = [sys.executable, "-m", "xnnfit", "check", "-q"]
    bare = [sys.executable, "-c", BARE, str(keras_path)]
    times: dict[str, list[float]] = {"check .keras": [], "bare": [], "check .tflite": []}
    for _ in range(args.repeat):
        times["check .keras"].append(wall([*xnnfit, str(keras_path)]))
        times["bare"].append(wall(bare))
        times["check .tflite"].append(wall([*xnnfit, str(tflite_path)]))
    med = {k: statistics.median(v) for k, v in times.items()}
    print(f"MobileNetV2 (weights=None), {args.repeat} interleaved runs, median wall seconds")
    for k, v in times.items():
        print(f"  {k:14s} {med[k]:6.2f} s   (runs: {', '.join(f'{x:.2f}' for x in v)})")
    print(f"  ratio check .keras / bare conversion+interpreter: {med['check .keras'] / med['bare']:.2f}x (target <= 1.5x)")
    print(f"  check .tflite: {med['check .tflite']:.2f} s (target < 2 s)")
    res = subprocess.run([sys.executable, "-c", NO_TF, str(tflite_path)], capture_output=True, text=True)
    print(f"  {res.stdout.strip() or res.stderr.strip()[-300:]}")


if __name__ == "__main__":
    main()
