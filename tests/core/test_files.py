"""Writing the user's files: exclusive under concurrency, atomic, the usual mode, nothing left behind."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import threading

import fixtures_models
from xnnfit.core.errors import XnnfitError
from xnnfit.core.files import write_file


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_concurrent_writers_of_one_path_exactly_one_wins(tmp_path):
    target = tmp_path / "out.tflite"
    results: list[str] = []
    barrier = threading.Barrier(8)

    def writer(k: int) -> None:
        barrier.wait()
        try:
            write_file(target, f"writer {k}".encode())
            results.append(f"ok {k}")
        except XnnfitError as exc:
            results.append(str(exc))

    threads = [threading.Thread(target=writer, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wins = [r for r in results if r.startswith("ok")]
    assert len(wins) == 1, results
    assert target.read_bytes() == f"writer {wins[0].split()[1]}".encode()
    assert all("already exists" in r for r in results if not r.startswith("ok"))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.tflite"]  # no temp file left


def test_force_replaces_atomically_and_files_get_the_usual_mode(tmp_path):
    target = tmp_path / "out.json"
    write_file(target, "old")
    write_file(target, "new", force=True)
    assert target.read_text() == "new"
    assert stat.S_IMODE(target.stat().st_mode) == 0o666 & ~_umask()  # not mkstemp's 0600


def test_two_fix_runs_on_one_output_never_both_write(tmp_path):
    src = tmp_path / "where.tflite"
    src.write_bytes(fixtures_models.convert_example("where_activation", "fp32").content)
    out = tmp_path / "fixed.tflite"
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    cmd = [sys.executable, "-m", "xnnfit", "fix", str(src), "-o", str(out), "--runs", "5", "--force-write", "-q"]
    procs = [
        subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env) for _ in range(2)
    ]
    done = [p.communicate(timeout=300) + (p.returncode,) for p in procs]
    codes = sorted(rc for _, _, rc in done)
    assert codes == [0, 2], done
    loser = next(e for _, e, rc in done if rc == 2)
    assert "already exists" in loser
    assert out.read_bytes()[4:8] == b"TFL3"
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]
