"""Stopping a run: SIGTERM, SIGHUP and SIGINT stop it like Ctrl-C, SIGKILL takes its children with it, nothing is left.

Each test runs the real CLI with TMPDIR pointed at a fresh folder, signals it at a
moment read from its process tree (a conversion child, a stage child, a pip install),
then checks: the exit status, one line saying what was interrupted, no process of the
run alive, no temporary file, no output, and (for runtime venvs) a consistent cache.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
UNBUILT_RUNTIME = "ai-edge-litert==1.2.0"  # a runtime no other test installs: its first install is interrupted here


def _children() -> dict[int, int]:
    """pid -> parent pid of every process on the machine."""
    out = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat", encoding="ascii", errors="replace") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
                out[int(entry)] = int(fields[1])
            except (OSError, IndexError, ValueError):
                continue
    return out


def _descendants(pid: int) -> set[int]:
    parents = _children()
    found, frontier = set(), {pid}
    while frontier:
        frontier = {p for p, pp in parents.items() if pp in frontier} - found
        found |= frontier
    return found


def _cmdline(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def _alive(pids: set[int]) -> set[int]:
    alive = set()
    for p in pids:
        try:
            with open(f"/proc/{p}/stat", encoding="ascii", errors="replace") as f:
                state = f.read().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if state != "Z":
            alive.add(p)
    return alive


def _start(args: list[str], tmp: Path, env: dict[str, str] | None = None) -> subprocess.Popen:
    scratch = tmp / "tmpdir"
    scratch.mkdir(exist_ok=True)
    full_env = {**os.environ, "TMPDIR": str(scratch), "TF_CPP_MIN_LOG_LEVEL": "3", **(env or {})}
    return subprocess.Popen(
        [sys.executable, "-m", "xnnfit", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=full_env,
        cwd=tmp,
    )


def _wait_for(proc: subprocess.Popen, what: str, test, timeout: float = 240.0) -> set[int]:
    """The process tree once `test(tree)` holds; fails if the run ends first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        tree = _descendants(proc.pid)
        if test(tree):
            return tree
        if proc.poll() is not None:
            pytest.fail(f"the run ended before {what}: {proc.returncode} {proc.stderr.read()[-2000:]}")
        time.sleep(0.05)
    proc.kill()
    pytest.fail(f"no {what} within {timeout:.0f} s")


def _stage_children(tree: set[int]) -> set[int]:
    return {p for p in tree if "xnnfit.core.isolate" in _cmdline(p)}


def _all_gone(seen: set[int]) -> None:
    deadline = time.monotonic() + 10
    while _alive(seen) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _alive(seen), {p: _cmdline(p) for p in _alive(seen)}


def _nothing_left(seen: set[int], tmp: Path) -> None:
    _all_gone(seen)
    assert not list((tmp / "tmpdir").iterdir()), list((tmp / "tmpdir").iterdir())


def _killed(proc: subprocess.Popen, seen: set[int]) -> None:
    """SIGKILL the main process: no handler runs; the kernel must take every child with it."""
    seen = seen | _descendants(proc.pid)
    proc.kill()
    proc.communicate(timeout=60)
    _all_gone(seen)


def _stopped(proc: subprocess.Popen, sig: int, seen: set[int], tmp: Path) -> str:
    seen = seen | _descendants(proc.pid)
    proc.send_signal(sig)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 128 + sig, (proc.returncode, stderr)
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert lines and lines[-1].startswith(f"interrupted ({signal.Signals(sig).name})"), stderr
    assert "Traceback" not in stderr
    _nothing_left(seen, tmp)
    return lines[-1]


@pytest.mark.parametrize("moment", ["converting", "fixing"])
def test_sigterm_stops_optimize_at_any_moment(tmp_path, moment):
    proc = _start(["optimize", f"{EXAMPLES}/where_cnn.py:build", "-o", "best.tflite", "--runs", "5"], tmp_path)
    seen: set[int] = set()

    def reached(tree: set[int]) -> bool:
        seen.update(_stage_children(tree))
        return (
            bool(seen) if moment == "converting" else len(seen) >= 3
        )  # fp32 converted, the others converting or fixing

    _wait_for(proc, f"a child {moment}", reached)
    line = _stopped(proc, signal.SIGTERM, seen, tmp_path)
    assert "while optimizing" in line
    assert not (tmp_path / "best.tflite").exists()


def test_sigterm_stops_fix_in_its_stage(tmp_path):
    model = tmp_path / "m.tflite"
    sys.path.insert(0, str(Path(__file__).parents[1]))
    import fixtures_models

    model.write_bytes(fixtures_models.convert_example("where_cnn", "fp32").content)
    proc = _start(["fix", str(model), "-o", "fixed.tflite", "--runs", "50"], tmp_path)
    seen = _wait_for(proc, "the fix stage", _stage_children)
    before = model.read_bytes()
    _stopped(proc, signal.SIGTERM, seen, tmp_path)
    assert model.read_bytes() == before and not (tmp_path / "fixed.tflite").exists()


def test_sighup_and_sigint_to_the_main_process_alone_leave_nothing(tmp_path):
    """Only the main process is signalled (not its group): it must take its children and TensorFlow's files with it."""
    scratch = tmp_path / "tmpdir"

    def tensorflow_wrote(tree: set[int]) -> bool:  # autograph's generated files, or the converter's export folder
        return any(p.name.startswith(("__autograph_generated", "tmp")) for p in scratch.rglob("*"))

    for sig in (signal.SIGHUP, signal.SIGINT):
        proc = _start(["check", f"{EXAMPLES}/sin_cos_lambda.py:build", "--recipe", "int8"], tmp_path)
        seen = _wait_for(proc, "TensorFlow's temporary files", tensorflow_wrote)
        _stopped(proc, sig, seen, tmp_path)


def test_sigkill_takes_the_children_and_the_next_run_removes_the_files(tmp_path):
    proc = _start(["optimize", f"{EXAMPLES}/where_cnn.py:build", "-o", "best.tflite", "--runs", "5"], tmp_path)
    seen = _wait_for(proc, "a conversion child", _stage_children)
    time.sleep(1)
    _killed(proc, seen)
    left = list((tmp_path / "tmpdir").iterdir())
    assert [p.name for p in left if p.name.startswith("xnnfit-run-")], left  # a SIGKILLed run cannot clean up ...
    (tmp_path / "add.tflite").write_bytes(_add_model())
    nxt = _start(["check", "add.tflite", "-q"], tmp_path)
    assert nxt.wait(timeout=120) == 0, nxt.stderr.read()
    assert not list((tmp_path / "tmpdir").iterdir())  # ... the next run removes what it left


def _add_model() -> bytes:
    from xnnfit.runtime.targets import _tiny_model

    return _tiny_model()


def _pip(tree: set[int]) -> bool:
    return any("pip install" in _cmdline(p) for p in tree)


def test_sigterm_during_a_first_runtime_install_leaves_no_venv_and_no_pip(tmp_path):
    cache = tmp_path / "cache"
    (tmp_path / "add.tflite").write_bytes(_add_model())
    proc = _start(["check", "add.tflite", "--runtime", UNBUILT_RUNTIME, "--cache-dir", str(cache)], tmp_path)
    seen = _wait_for(proc, "pip install", _pip)
    line = _stopped(proc, signal.SIGTERM, seen, tmp_path)
    assert "installing" in line
    runtimes = cache / "runtimes"
    assert sorted(p.name for p in runtimes.iterdir()) == [".lock"]  # no staging venv, no half-made venv


def test_sigkill_during_a_first_runtime_install_is_cleaned_by_the_next_run(tmp_path):
    from xnnfit.runtime import targets

    cache = tmp_path / "cache"
    (tmp_path / "add.tflite").write_bytes(_add_model())
    proc = _start(["check", "add.tflite", "--runtime", UNBUILT_RUNTIME, "--cache-dir", str(cache)], tmp_path)
    _killed(proc, _wait_for(proc, "pip install", _pip))  # pip died with xnnfit
    runtimes = cache / "runtimes"
    staging = [p for p in runtimes.iterdir() if p.is_dir()]
    assert staging and all(p.name.startswith(".") for p in staging)  # a half-built venv, never under its final name
    # the next run that takes the lock (for any runtime) removes it before anything else
    with targets._locked(runtimes / targets.LOCK):
        targets._remove_half_built(runtimes)
    assert sorted(p.name for p in runtimes.iterdir()) == [".lock"]
    assert not targets.venv_dir(targets.parse(UNBUILT_RUNTIME), cache).exists()
