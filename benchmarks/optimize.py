"""What `xnnfit optimize` chooses, measured: the chosen recipe, its speed against the plain fp32 conversion, its error.

Models: keras.applications MobileNetV2 and EfficientNetB0 (weights=None, logits output),
the bundled tf.where CNN, and a small CNN trained here for a few epochs on synthetic
data (so that full int8 can be accurate). Also what optimize costs against `quant` plus
one `fix` per recipe (it must not convert twice). Ratios come from interleaved runs in
one process; read ratios, not absolute ms.

    .venv/bin/python benchmarks/optimize.py [--runs 30] [--quick]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

ROOT = Path(__file__).resolve().parents[1]

APPS = """
import keras
def mobilenet_v2():
    keras.utils.set_random_seed(0)
    return keras.applications.MobileNetV2(weights=None, classifier_activation=None)
def efficientnet_b0():
    keras.utils.set_random_seed(0)
    return keras.applications.EfficientNetB0(weights=None, classifier_activation=None)
"""

TRAINED = """
import keras, numpy as np
from pathlib import Path
def data(n, seed):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 24, 24, 3)).astype("float32")
    y = (x[:, :12].mean(axis=(1, 2, 3)) > x[:, 12:].mean(axis=(1, 2, 3))).astype("int64") + 2 * (
        x[..., 0].mean(axis=(1, 2)) > 0
    )
    return x, y
def build():
    keras.utils.set_random_seed(0)
    inp = keras.Input((24, 24, 3), name="image")
    h = keras.layers.Conv2D(16, 3, padding="same", activation="relu")(inp)
    h = keras.layers.Conv2D(32, 3, strides=2, padding="same", activation="relu")(h)
    h = keras.layers.Conv2D(32, 3, strides=2, padding="same", activation="relu")(h)
    h = keras.layers.GlobalAveragePooling2D()(h)
    model = keras.Model(inp, keras.layers.Dense(4, name="logits")(h))
    model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"])
    x, y = data(4000, 0)
    model.fit(x, y, epochs=4, batch_size=64, verbose=0)
    return model
"""


def line(name: str, result) -> None:
    best = result.best
    if best is None:
        print(f"  {name:30s} nothing chosen: {result.reason}")
        return
    float_best = max(
        (c for c in result.candidates if c.status == "ok" and c.recipe in ("fp32", "fp16")),
        key=lambda c: -c.median_ms,
        default=None,
    )
    print(
        f"  {name:30s} chosen {best.recipe:22s} {result.baseline_ms / best.median_ms:5.2f}x plain fp32 "
        f"({best.median_ms:.3g} vs {result.baseline_ms:.3g} ms), error {best.rel_error:.2%}, CPU "
        f"nodes {best.cpu_nodes}, "
        f"{'fixed ' + ', '.join(best.rules) if best.rules else 'not fixed'}"
    )
    if float_best is not None and best.recipe not in ("fp32", "fp16"):
        print(
            f"  {'':30s} vs the fastest fixed float candidate ({float_best.recipe}): "
            f"{float_best.median_ms / best.median_ms:.2f}x"
        )
    for c in result.candidates:
        state = (
            f"{c.median_ms:8.3g} ms  error {c.rel_error:8.2%}  CPU {c.cpu_nodes_before:>3d} -> {c.cpu_nodes:<3d}"
            if c.status == "ok"
            else f"failed: {c.error[:90]}"
        )
        print(f"      {c.recipe:22s} {state}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--quick", action="store_true", help="the bundled CNN and the trained model only")
    args = parser.parse_args()

    import numpy as np

    import xnnfit

    tmp = Path(tempfile.mkdtemp(prefix="xnnfit-optimize-"))
    (tmp / "apps.py").write_text(APPS)
    (tmp / "trained.py").write_text(TRAINED)
    eval_x = {}
    exec(TRAINED.split("def build")[0], eval_x)  # data() only
    x, _ = eval_x["data"](64, 1)
    np.savez(tmp / "calib.npz", image=x[:32])
    np.savez(tmp / "eval.npz", image=x[32:])

    print("optimize: chosen candidate per model (1 thread)")
    line("where_cnn (bundled)", xnnfit.optimize(f"{ROOT}/examples/where_cnn.py:build", runs=args.runs))
    trained = xnnfit.optimize(
        f"{tmp}/trained.py:build", calibration=str(tmp / "calib.npz"), eval_data=str(tmp / "eval.npz"), runs=args.runs
    )
    line("small CNN, trained", trained)
    if not args.quick:
        for fn in ("mobilenet_v2", "efficientnet_b0"):
            line(f"{fn} (weights=None, logits)", xnnfit.optimize(f"{tmp}/apps.py:{fn}", runs=args.runs))

    print("cost: optimize vs quant + one fix per recipe (where_cnn, wall seconds)")
    model = f"{ROOT}/examples/where_cnn.py:build"
    start = time.perf_counter()
    xnnfit.optimize(model, runs=args.runs)
    t_opt = time.perf_counter() - start
    start = time.perf_counter()
    sweep = xnnfit.quant(model, runs=args.runs)
    for row in sweep.rows:
        if row.status == "ok":
            xnnfit.fix(model, recipe=row.recipe, runs=args.runs)
    t_sep = time.perf_counter() - start
    print(
        f"  optimize {t_opt:.1f} s | quant + {sum(r.status == 'ok' for r in sweep.rows)} fixes "
        f"{t_sep:.1f} s | ratio {t_opt / t_sep:.2f}x (target <= 1)"
    )


if __name__ == "__main__":
    sys.exit(main())
