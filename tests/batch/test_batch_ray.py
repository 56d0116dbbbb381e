"""The Ray backend on a real local cluster (loopback only): the same results as a local run, a killed worker retried."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest

from xnnfit.batch.jobs import ModelSpec, run_batch
from xnnfit.kb.oneop import one_op_model

ray = pytest.importorskip("ray")
pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]
SLOW_ONCE = """import time
from pathlib import Path

import keras


def build():
    marker = Path(__file__).with_suffix(".attempts")
    attempts = int(marker.read_text()) if marker.exists() else 0
    marker.write_text(str(attempts + 1))
    if attempts == 0:
        time.sleep(40)  # the first attempt is slow: the test kills its Ray worker meanwhile
    inp = keras.Input((8,), name="x")
    return keras.Model(inp, keras.layers.Dense(4, name="head")(inp))
"""


@pytest.fixture(scope="module")
def cluster():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, _node_ip_address="127.0.0.1")
    yield
    ray.shutdown()


def _verdicts(result):
    return {(r.model, r.recipe): (r.status, r.nodes, r.cpu_nodes, r.partitions, r.causes) for r in result.rows}


def test_ray_gives_the_local_results(cluster, tmp_path):
    (tmp_path / "add.tflite").write_bytes(one_op_model("ADD"))
    (tmp_path / "pack.tflite").write_bytes(one_op_model("SOFTMAX"))
    specs = [
        ModelSpec(str(tmp_path / "add.tflite")),
        ModelSpec(str(tmp_path / "pack.tflite")),
        ModelSpec(f"{ROOT / 'examples' / 'where_activation.py'}:build", ("fp32", "fp16")),
    ]
    local = run_batch(specs, jobs=2)
    remote = run_batch(specs, jobs=2, backend="ray")
    assert _verdicts(remote) == _verdicts(local)
    assert [d.nodes for m in remote.models for d in m.recipes] == [d.nodes for m in local.models for d in m.recipes]
    assert not remote.incomplete and all(r.status == "ok" for r in remote.rows)


def _ray_worker_running_job() -> int | None:
    out = subprocess.run(["ps", "-eo", "pid,args"], capture_output=True, text=True).stdout
    for line in out.splitlines():
        if "ray::_ray_job" in line:
            return int(line.split()[0])
    return None


def test_a_killed_worker_is_retried_once(cluster, tmp_path):
    src = tmp_path / "slow_once.py"
    src.write_text(SLOW_ONCE)
    killed = []

    def killer():
        deadline = time.time() + 120
        while time.time() < deadline and not killed:
            pid = _ray_worker_running_job()
            attempts = tmp_path / "slow_once.attempts"
            if pid and attempts.exists():  # the shipped copy writes its marker next to itself: watch the worker instead
                os.kill(pid, signal.SIGKILL)
                killed.append(pid)
            time.sleep(0.5)

    # the model is shipped as bytes into the worker's temp folder, so the marker lives there; count attempts through
    # ps instead
    src.write_text(
        SLOW_ONCE.replace('Path(__file__).with_suffix(".attempts")', f"Path({str(tmp_path / 'slow_once.attempts')!r})")
    )
    t = threading.Thread(target=killer, daemon=True)
    t.start()
    result = run_batch([ModelSpec(f"{src}:build")], backend="ray", options={"timeout": 300})
    t.join(timeout=5)
    assert killed, "no Ray worker was seen running the job"
    (row,) = result.rows
    assert row.status == "ok", row.failures
    assert (tmp_path / "slow_once.attempts").read_text() == "2"  # killed once, retried once


HANG = "import time\n\ndef build():\n    time.sleep(3600)\n"


def test_an_interrupted_ray_batch_leaves_nothing_in_the_temp_folder(tmp_path):
    """Ctrl-C on --backend ray: jobs cancelled (their workers killed), no xnnfit folder left, the rest skipped."""
    scratch = Path(tempfile.mkdtemp(prefix="xr", dir="/tmp"))  # the run's TMPDIR: short, Ray's sockets live under it
    try:
        (tmp_path / "add.tflite").write_bytes(one_op_model("ADD"))
        (tmp_path / "hang.py").write_text(HANG)
        cache = tmp_path / "cache"
        env = {**os.environ, "TMPDIR": str(scratch), "TF_CPP_MIN_LOG_LEVEL": "3"}
        argv = [sys.executable, "-m", "xnnfit", "check", str(tmp_path / "add.tflite"), f"{tmp_path / 'hang.py'}:build"]
        argv += ["--backend", "ray", "--jobs", "2", "--junit", str(tmp_path / "r.xml"), "--cache-dir", str(cache), "-q"]
        proc = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        deadline = time.time() + 180
        while time.time() < deadline:  # add.tflite done (cached) and the hanging job's task folder made in a worker
            tasks = [p for p in scratch.rglob("ray-*") if "xnnfit-run-" in str(p.parent)]
            if list(cache.rglob("*.json")) and len(tasks) >= 2:
                break
            time.sleep(0.5)
        else:
            proc.kill()
            pytest.fail(f"the hanging job never started: {proc.communicate()[1][-2000:]}")
        proc.send_signal(signal.SIGINT)
        _, stderr = proc.communicate(timeout=120)
        assert proc.returncode == 130, stderr
        assert [p.name for p in scratch.iterdir() if p.name.startswith("xnnfit-")] == []  # Ray's own ray/ stays
        text = (tmp_path / "r.xml").read_text()
        assert 'skipped="1"' in text and "<skipped " in text and "incomplete" in text
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
