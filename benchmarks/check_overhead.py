"""What `xnnfit check` costs on top of what a user does anyway, measured in one run.

Prints, for keras.applications.MobileNetV2(weights=None) saved as .keras:
  - wall time of `xnnfit check model.keras` (fresh process, as a user runs it),
  - wall time of a bare script doing load + TFLiteConverter + one interpreter build,
  - their ratio (target <= 1.5x),
and the wall time of `xnnfit check model.tflite` (target < 2 s, no TensorFlow import).
Each figure is the median of --repeat runs, interleaved A B A B so drift hits both.

With --big, the same for a large model (VGG16, weights=None: 554 MB of weights): wall
time and peak resident memory of the whole process tree (the CLI and its children,
summed, sampled every 20 ms) for `xnnfit check` against the bare conversion (target:
both within 1.5x), so a laptop can check what it can convert.

    .venv/bin/python benchmarks/check_overhead.py [--repeat 3] [--big]
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


def _tree_rss(root: int) -> int:
    """Resident bytes of `root` and every descendant, from /proc."""
    children: dict[int, list[int]] = {}
    rss: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            with open(f"/proc/{entry}/statm") as f:
                rss[int(entry)] = int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(int(fields[1]), []).append(int(entry))
    total, stack = 0, [root]
    while stack:
        pid = stack.pop()
        total += rss.get(pid, 0)
        stack.extend(children.get(pid, []))
    return total


def wall_and_peak(cmd: list[str]) -> tuple[float, int]:
    """Wall seconds and peak summed RSS of the process tree of `cmd`."""
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    peak = 0
    while proc.poll() is None:
        peak = max(peak, _tree_rss(proc.pid))
        time.sleep(0.02)
    elapsed = time.perf_counter() - start
    if proc.returncode not in (0, 1):
        raise SystemExit(f"command failed ({proc.returncode}): {' '.join(cmd)}\n{proc.stderr.read().decode()[-2000:]}")
    return elapsed, peak


def big(repeat: int) -> None:
    """Time and peak memory of check vs a bare conversion on VGG16."""
    import keras

    tmp = Path(tempfile.mkdtemp(prefix="xnnfit-bench-big-"))
    path = tmp / "vgg16.keras"
    keras.applications.VGG16(weights=None).save(path)
    runs: dict[str, list[tuple[float, int]]] = {"check .keras": [], "bare": []}
    for _ in range(repeat):
        runs["check .keras"].append(wall_and_peak([sys.executable, "-m", "xnnfit", "check", "-q", str(path)]))
        runs["bare"].append(wall_and_peak([sys.executable, "-c", BARE, str(path)]))
    med = {k: (statistics.median(t for t, _ in v), statistics.median(m for _, m in v)) for k, v in runs.items()}
    print(f"VGG16 (weights=None, {path.stat().st_size / 1e6:.0f} MB .keras), {repeat} interleaved runs, medians")
    for k, (t, m) in med.items():
        print(f"  {k:14s} {t:6.1f} s   peak {m / 1e9:5.2f} GB (process tree)")
    (tc, mc), (tb, mb) = med["check .keras"], med["bare"]
    print(f"  ratio check / bare: time {tc / tb:.2f}x, peak memory {mc / mb:.2f}x (targets <= 1.5x)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--big", action="store_true", help="also VGG16: time and peak memory against a bare conversion")
    args = parser.parse_args()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    if args.big:
        big(max(1, args.repeat // 2))
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
    print(
        f"  ratio check .keras / bare conversion+interpreter: {med['check .keras'] / med['bare']:.2f}x (target <= 1.5x)"
    )
    print(f"  check .tflite: {med['check .tflite']:.2f} s (target < 2 s)")
    res = subprocess.run([sys.executable, "-c", NO_TF, str(tflite_path)], capture_output=True, text=True)
    print(f"  {res.stdout.strip() or res.stderr.strip()[-300:]}")


if __name__ == "__main__":
    main()
