"""A model zoo through `xnnfit check`: wall time, --jobs 1 vs --jobs N vs Ray on a local cluster, plus a cached rerun.

The zoo is the bundled examples plus generated Keras models, each × the recipes given
(default fp32, int8), as .py:build sources converted by the real converter. Every run is
a fresh `xnnfit check` process; the peak RSS is the largest of its children.

    .venv/bin/python benchmarks/zoo.py [--models 12] [--recipes fp32,int8] [--jobs 2] [--no-ray]
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = [
    "sin_cos_lambda",
    "where_activation",
    "dynamic_reshape",
    "where_cnn",
    "transformer_block",
    "upsampling_decoder",
]
GENERATED = """import keras


def build():
    keras.utils.set_random_seed({seed})
    inp = keras.Input(({side}, {side}, 3), name="x")
    x = keras.layers.Conv2D({width}, 3, padding="same", activation="relu")(inp)
    for _ in range({depth}):
        x = keras.layers.DepthwiseConv2D(3, padding="same")(x)
        x = keras.layers.Conv2D({width}, 1, activation="{act}")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    return keras.Model(inp, keras.layers.Dense(10)(x))
"""


def zoo(folder: Path, count: int) -> list[str]:
    models = [f"{ROOT / 'examples' / name}.py:build" for name in EXAMPLES][:count]
    for k in range(count - len(models)):
        path = folder / f"gen_{k}.py"
        path.write_text(
            GENERATED.format(
                seed=k,
                side=16 + 8 * (k % 3),
                width=8 + 4 * (k % 4),
                depth=1 + k % 3,
                act=("relu", "hard_swish", "sigmoid")[k % 3],
            )
        )
        models.append(f"{path}:build")
    return models


def run(
    models: list[str], recipes: str, jobs: int, cache: str | None, backend: str = "local"
) -> tuple[float, float, int]:
    args = [
        sys.executable,
        "-m",
        "xnnfit",
        "check",
        *models,
        "--recipe",
        recipes,
        "--jobs",
        str(jobs),
        "--backend",
        backend,
        "-q",
    ]
    args += ["--cache-dir", cache] if cache else ["--no-cache"]
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    start = time.perf_counter()
    res = subprocess.run(args, capture_output=True, text=True, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    wall = time.perf_counter() - start
    peak = max(before, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
    return wall, peak / 1024, res.returncode


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", type=int, default=12)
    parser.add_argument("--recipes", default="fp32,int8")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 2)
    parser.add_argument("--no-ray", action="store_true", help="skip the Ray backend (needs the extra xnnfit[ray])")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        models = zoo(Path(tmp), args.models)
        jobs_count = len(models) * len(args.recipes.split(","))
        print(f"{len(models)} models x {args.recipes} = {jobs_count} jobs on {os.cpu_count()} cores")
        serial, peak1, rc1 = run(models, args.recipes, 1, None)
        print(f"--jobs 1               {serial:7.1f} s   peak child RSS {peak1:6.0f} MB   exit {rc1}", flush=True)
        cache = str(Path(tmp) / "cache")
        parallel, peak2, rc2 = run(models, args.recipes, args.jobs, cache)
        print(
            f"--jobs {args.jobs} (filling cache) {parallel:5.1f} s   peak child RSS {peak2:6.0f} MB   "
            f"exit {rc2}   {serial / parallel:.2f}x vs --jobs 1",
            flush=True,
        )
        cached, _, rc3 = run(models, args.recipes, args.jobs, cache)
        print(
            f"--jobs {args.jobs} cached rerun    {cached:5.1f} s   {cached / parallel:.1%} of the "
            f"first run   exit {rc3}",
            flush=True,
        )
        if not args.no_ray:
            ray_s, peak4, rc4 = run(models, args.recipes, args.jobs, None, backend="ray")
            print(
                f"--backend ray (local)  {ray_s:7.1f} s   peak child RSS {peak4:6.0f} MB   exit {rc4}   "
                f"{serial / ray_s:.2f}x vs --jobs 1 (cluster start included)"
            )


if __name__ == "__main__":
    main()
