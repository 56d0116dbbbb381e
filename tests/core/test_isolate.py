"""xnnfit.core.isolate.run_isolated: results, errors, crashes and hangs of a real child process.

The target functions live in tests/isolate_targets.py: the child imports them by name
through the PYTHONPATH run_isolated builds from the parent's sys.path.
"""

from __future__ import annotations

import os
import sys

import pytest

import isolate_targets
from xnnfit.core import errors
from xnnfit.core.errors import IsolationError, XnnfitError
from xnnfit.core.isolate import run_isolated

TESTS_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
XNNFIT_CLASSES = sorted(
    name
    for name, cls in vars(errors).items()
    if isinstance(cls, type) and issubclass(cls, XnnfitError) and cls is not XnnfitError
)


def test_helper_module_is_importable_by_the_child():
    # the premise of every test here: the child can import isolate_targets by name
    assert isolate_targets.__name__ == "isolate_targets"
    assert TESTS_DIR in sys.path
    _, child_path = run_isolated(isolate_targets.child_env, what="reading the child's sys.path")
    assert TESTS_DIR in child_path


def test_returns_the_value_computed_in_a_child():
    result = run_isolated(isolate_targets.add, 2, 3, scale=10, what="adding")
    assert result["sum"] == 50
    assert result["pid"] != os.getpid()


def test_child_gets_quiet_env_and_the_parents_env(monkeypatch):
    monkeypatch.setenv("XNNFIT_TEST_MARK", "inherited")
    monkeypatch.delenv("PYTHONWARNINGS", raising=False)
    env, _ = run_isolated(isolate_targets.child_env, what="reading the child's env")
    assert env["XNNFIT_TEST_MARK"] == "inherited"
    assert env["KERAS_BACKEND"] == os.environ.get("KERAS_BACKEND", "tensorflow")
    assert env["PYTHONWARNINGS"] == "ignore"
    assert env["TF_CPP_MIN_LOG_LEVEL"] is not None


def test_parent_env_wins_over_quiet_defaults(monkeypatch):
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "1")
    env, _ = run_isolated(isolate_targets.child_env, what="reading the child's env")
    assert env["TF_CPP_MIN_LOG_LEVEL"] == "1"


@pytest.mark.parametrize("class_name", XNNFIT_CLASSES)
def test_xnnfit_error_keeps_class_message_and_detail(class_name):
    message = f"cannot do the thing ({class_name}). Do the other thing."
    with pytest.raises(XnnfitError) as info:
        run_isolated(isolate_targets.raise_xnnfit, class_name, message, "native log here", what="doing the thing")
    assert type(info.value) is getattr(errors, class_name)
    assert str(info.value) == message  # not wrapped with `what`
    assert info.value.detail == "native log here"


def test_xnnfit_error_without_detail_carries_the_child_traceback():
    with pytest.raises(errors.ConversionError) as info:
        run_isolated(isolate_targets.raise_xnnfit, "ConversionError", "refused", what="converting")
    assert str(info.value) == "refused"
    assert "Traceback" in info.value.detail and "raise_xnnfit" in info.value.detail


def test_generic_exception_becomes_xnnfit_error_naming_what():
    with pytest.raises(XnnfitError) as info:
        run_isolated(isolate_targets.raise_value_error, "bad shape (3, 4)", what="converting model.keras (int8)")
    assert type(info.value) is XnnfitError
    message = str(info.value)
    assert "converting model.keras (int8)" in message
    assert "ValueError" in message and "bad shape (3, 4)" in message
    assert "raise_value_error" in info.value.detail  # the child's traceback, for --debug


def test_child_output_goes_to_the_log_not_the_parent(capfd):
    with pytest.raises(XnnfitError, match="RuntimeError: after chatter"):
        run_isolated(isolate_targets.chatty_then_fail, what="chatting")
    out, err = capfd.readouterr()
    assert "chatter from the child" not in out + err


def test_abort_becomes_isolation_error():
    with pytest.raises(IsolationError) as info:
        run_isolated(isolate_targets.abort, what="converting crash.keras (fp32)")
    message = str(info.value)
    assert "converting crash.keras (fp32)" in message
    assert "crashed" in message
    assert "SIGABRT" in message
    assert "\n" not in message
    assert "about to abort" in (info.value.detail or "")  # the child's log tail


def test_exit_without_result_becomes_isolation_error():
    with pytest.raises(IsolationError) as info:
        run_isolated(isolate_targets.hard_exit, 3, what="exiting early")
    message = str(info.value)
    assert "exiting early" in message and "crashed" in message
    assert "exit code 3" in message


def test_hang_becomes_isolation_error():
    with pytest.raises(IsolationError) as info:
        run_isolated(isolate_targets.sleep, 60, what="sleeping", timeout=2)
    message = str(info.value)
    assert "sleeping" in message
    assert "did not finish" in message
    assert "2 s" in message
    assert "--timeout" in message


def test_fast_child_within_timeout_returns():
    assert run_isolated(isolate_targets.sleep, 0, what="not sleeping", timeout=60) == "woke up"


BUILDERS = {
    "segfault": "import ctypes\ndef build():\n    ctypes.string_at(0)\n",
    "exit": "import os\ndef build():\n    os._exit(7)\n",
}


@pytest.mark.parametrize(("kind", "how"), [("segfault", "signal SIGSEGV"), ("exit", "exit code 7")])
def test_a_crash_in_the_users_builder_is_blamed_on_the_builder(tmp_path, kind, how):
    """The child knows it was running the user's code: the line says so, and does not blame TensorFlow or LiteRT."""
    import subprocess

    (tmp_path / "crashing.py").write_text(BUILDERS[kind])
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    res = subprocess.run(
        [sys.executable, "-m", "xnnfit", "check", "crashing.py:build", "-q"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert res.returncode == 2, res.stderr
    errors_ = [line for line in res.stderr.splitlines() if line.startswith("error:")]
    assert len(errors_) == 1, res.stderr
    assert f"crashed the child process ({how}) while running your builder crashing.py:build" in errors_[0]
    assert "not in xnnfit, TensorFlow or LiteRT" in errors_[0] and "a bug in TensorFlow" not in errors_[0]


def test_a_crash_outside_user_code_still_names_the_runtime():
    with pytest.raises(
        IsolationError, match=r"crashed the child process \(signal SIGABRT\): a bug in TensorFlow or LiteRT"
    ):
        run_isolated(isolate_targets.abort, what="aborting")


def test_a_dead_runs_folder_is_swept_and_a_live_one_kept(tmp_path):
    """Run folders are owned through a lock: one whose process is gone is removed, one whose process lives is not."""
    import subprocess

    from xnnfit.core import isolate

    script = (
        f"import sys, time; sys.path[:0] = {sys.path!r}; from xnnfit.core import isolate; "
        "print(isolate.run_folder(), flush=True); time.sleep(60)"
    )
    env = {**os.environ, "TMPDIR": str(tmp_path)}
    live = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True, env=env)
    dead = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True, env=env)
    try:
        live_dir, dead_dir = live.stdout.readline().strip(), dead.stdout.readline().strip()
        dead.kill()
        dead.wait()
        assert os.path.isdir(dead_dir)  # SIGKILL: no chance to clean up
        assert isolate.sweep_stale(str(tmp_path)) == 1
        assert not os.path.exists(dead_dir) and os.path.isdir(live_dir)
    finally:
        live.kill()
        live.wait()


def test_a_batchs_threads_share_one_run_folder_published_only_once_owned(tmp_path):
    """Threads asking at once get one folder (without the lock, two threads made two in 37 of 40 runs here)."""
    import subprocess

    script = (
        f"import sys, threading, os; sys.path[:0] = {sys.path!r}; from xnnfit.core import isolate; got = []; "
        "ts = [threading.Thread(target=lambda: got.append(isolate.run_folder())) for _ in range(8)]; "
        "[t.start() for t in ts]; [t.join() for t in ts]; print(len(set(got)), all(os.path.isdir(p) for p in got))"
    )
    env = {**os.environ, "TMPDIR": str(tmp_path)}
    for _ in range(5):
        out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, check=True)
        assert out.stdout.split() == ["1", "True"], out.stderr
    assert not list(tmp_path.iterdir())  # each removed its folder at exit; no staging folder left
