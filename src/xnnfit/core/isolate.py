"""Run a function in a child process with a timeout; a crash or hang becomes an XnnfitError.

The child is a fresh `python -m xnnfit.core.isolate` (no inherited TensorFlow threads, no
re-import of the caller's __main__). The call goes in as a pickle on stdin, the result
comes back as a pickle file; the child's stdout and stderr go to a log file (TensorFlow
and LiteRT are chatty) that is shown only with --debug.

Nothing outlives the run: each child is started in its own process group through
`lifeline.py` (it dies with this process, even a SIGKILLed one) and killed with its whole
group on a timeout or an interrupt; its temporary files (TMPDIR points into its scratch
folder, so TensorFlow's export and autograph files land there too) live in this process's
run folder, removed at exit, and a run folder whose process died is removed by the next run.
"""

from __future__ import annotations

import atexit
import contextlib
import fcntl
import os
import pickle
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from typing import Any

from xnnfit.core import errors, lifeline
from xnnfit.core.errors import IsolationError, XnnfitError
from xnnfit.core.policy import DEFAULT_TIMEOUT

QUIET_ENV = {"TF_CPP_MIN_LOG_LEVEL": "3", "KERAS_BACKEND": "tensorflow", "PYTHONWARNINGS": "ignore"}

SCRATCH_ENV = "XNNFIT_CHILD_SCRATCH"  # a folder the parent removes when the child ends, however it ends
PHASE_FILE = "phase"  # what the child was doing, written by phase(): a crash is blamed on the right party
RUN_PREFIX = "xnnfit-run-"  # this process's temporary folder in the system temp dir
STAGING = ".xnnfit-new-run-"  # a run folder before its owner lock is held: never swept as unowned
OWNER = (
    ".owner"  # held locked by the process that owns a run folder: a folder whose lock can be taken has no owner left
)
YOUNG = 3600.0  # seconds a run folder without an owner file is left alone (being created right now by another run)
_live: set[subprocess.Popen] = set()  # children running now, from any thread (a batch runs several at once)
_live_lock = threading.Lock()
_stopping = threading.Event()  # set by stop_all(): no new child starts
_run: dict[str, Any] = {}  # this process's run folder: path, owner pid, lock fd
_run_lock = threading.Lock()  # a batch's threads ask for the run folder at once: one makes it


def kill_tree(proc: subprocess.Popen) -> None:
    """Kill a child and every process of its group (its own children), then reap it."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    with contextlib.suppress(OSError):
        proc.kill()
    with contextlib.suppress(OSError):
        proc.wait()


def kill_all() -> int:
    """Kill every child still running (Ctrl-C or SIGTERM in a batch); returns how many were killed."""
    with _live_lock:
        procs = list(_live)
    for proc in procs:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        with contextlib.suppress(OSError):
            proc.kill()
    return len(procs)


def stop_all() -> int:
    """Kill every child and start no new one (the run was interrupted); returns how many were killed."""
    _stopping.set()
    return kill_all()


def resume() -> None:
    """Allow new children again (an interrupted batch returned to a caller that goes on, such as a notebook)."""
    _stopping.clear()


def spawn(argv: list[str], **popen_kwargs: Any) -> subprocess.Popen:
    """Popen `argv` in its own process group, dying with this process; tracked until reap() so stop_all() reaches it."""
    if _stopping.is_set():
        raise KeyboardInterrupt
    proc = subprocess.Popen(lifeline.command(argv), start_new_session=True, **popen_kwargs)
    with _live_lock:
        _live.add(proc)
    return proc


def reap(proc: subprocess.Popen) -> None:
    """Forget a finished child."""
    with _live_lock:
        _live.discard(proc)


def run_command(
    argv: list[str], *, timeout: float, env: dict[str, str] | None = None, cwd: str | None = None
) -> subprocess.CompletedProcess:
    """subprocess.run() for a child that must not outlive us: its whole group is killed on a timeout or an interrupt."""
    proc = spawn(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=cwd)
    try:
        out, err = proc.communicate(timeout=timeout)
    except BaseException:
        kill_tree(proc)
        raise
    finally:
        reap(proc)
    return subprocess.CompletedProcess(argv, proc.returncode, out, err)


def run_folder() -> str:
    """This process's temporary folder (created on first use, removed at exit); dead runs' folders are removed first.

    One per process even when a batch's threads ask at once, and published under its name
    only once its owner lock is held: a sweep (of this process or another) never sees it
    unowned.
    """
    with _run_lock:
        if _run.get("pid") == os.getpid() and os.path.isdir(_run["path"]):
            return _run["path"]
        sweep_stale()
        staging = tempfile.mkdtemp(prefix=f"{STAGING}{os.getpid()}-")
        fd = os.open(os.path.join(staging, OWNER), os.O_CREAT | os.O_WRONLY, 0o600)
        fcntl.flock(fd, fcntl.LOCK_EX)
        path = os.path.join(os.path.dirname(staging), RUN_PREFIX + os.path.basename(staging)[len(STAGING) :])
        os.rename(staging, path)
        _run.update(path=path, pid=os.getpid(), fd=fd)
        atexit.register(_remove_run_folder, path, os.getpid(), fd)
        return path


def _remove_run_folder(path: str, pid: int, fd: int) -> None:
    if os.getpid() != pid:  # a forked copy of this process: the folder is its parent's
        return
    shutil.rmtree(path, ignore_errors=True)
    with contextlib.suppress(OSError):
        os.close(fd)


def sweep_stale(root: str | None = None) -> int:
    """Remove run folders whose process is gone (SIGKILLed, or the machine lost power); returns how many."""
    root = root or tempfile.gettempdir()
    removed = 0
    try:
        entries = list(os.scandir(root))
    except OSError:
        return 0
    for entry in entries:
        if entry.name.startswith(STAGING) and entry.is_dir(follow_symlinks=False):  # a run killed while making it
            with contextlib.suppress(OSError):
                if time.time() - entry.stat(follow_symlinks=False).st_mtime > YOUNG:
                    shutil.rmtree(entry.path, ignore_errors=True)
                    removed += 1
            continue
        if not entry.name.startswith(RUN_PREFIX) or not entry.is_dir(follow_symlinks=False):
            continue
        try:
            fd = os.open(os.path.join(entry.path, OWNER), os.O_RDONLY)
        except FileNotFoundError:
            with contextlib.suppress(OSError):
                if time.time() - entry.stat(follow_symlinks=False).st_mtime > YOUNG:
                    shutil.rmtree(entry.path, ignore_errors=True)
                    removed += 1
            continue
        except OSError:
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            continue  # its owner is alive
        finally:
            os.close(fd)
        shutil.rmtree(entry.path, ignore_errors=True)
        removed += 1
    return removed


@contextlib.contextmanager
def phase(what: str) -> Iterator[None]:
    """In a child: record what it is doing (the user's builder, the converter, the runtime) so a crash names it."""
    folder = os.environ.get(SCRATCH_ENV)
    if not folder:
        yield
        return
    path = os.path.join(folder, PHASE_FILE)
    previous = None
    with contextlib.suppress(OSError):
        with open(path, encoding="utf-8") as f:
            previous = f.read()
    with contextlib.suppress(OSError):
        with open(path, "w", encoding="utf-8") as f:
            f.write(what)
    try:
        yield
    finally:
        with contextlib.suppress(OSError):
            if previous is None:
                os.unlink(path)
            else:
                with open(path, "w", encoding="utf-8") as f:
                    f.write(previous)


USER_CODE = "user code"  # the phase name of running the user's own builder or custom layers


def _tail(path: str, limit: int = 4000) -> str:
    try:
        with open(path, "rb") as f:
            data = f.read()
        return data[-limit:].decode("utf-8", "replace")
    except OSError:
        return ""


def run_isolated(fn: Callable, *args: Any, what: str, timeout: float = DEFAULT_TIMEOUT, **kwargs: Any) -> Any:
    """Call `fn(*args, **kwargs)` in a child process and return its result.

    `fn` must be importable by name. `what` names the work for error messages
    ("converting model.keras (int8)"). The child's XnnfitError is raised as is; a
    crash or a timeout as IsolationError.
    """
    with tempfile.TemporaryDirectory(prefix="child-", dir=run_folder()) as tmp:
        log_path = os.path.join(tmp, "child.log")
        result_path = os.path.join(tmp, "result.pickle")
        env = {**os.environ, **{k: os.environ.get(k, v) for k, v in QUIET_ENV.items()}}
        env["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p)
        env[SCRATCH_ENV] = tmp  # the child's own temporary files go here: removed with it even when it is killed
        env["TMPDIR"] = tmp  # and so do TensorFlow's (SavedModel exports, autograph's generated files)
        try:
            payload = pickle.dumps((fn, args, kwargs))
        except (pickle.PicklingError, AttributeError, TypeError) as exc:
            raise XnnfitError(
                f"{what}: cannot hand the work to a child process ({exc}). This is a bug in xnnfit; please report it."
            ) from exc
        with open(log_path, "wb") as log:
            proc = spawn(
                [sys.executable, "-m", "xnnfit.core.isolate", result_path],
                stdin=subprocess.PIPE,
                stdout=log,
                stderr=log,
                env=env,
            )
            try:
                proc.communicate(payload, timeout=timeout)
            except subprocess.TimeoutExpired:
                kill_tree(proc)
                raise IsolationError(
                    f"{what} did not finish within {timeout:.0f} s and was stopped. "
                    "Pass a larger --timeout, or a smaller model or input shape.",
                    detail=_tail(log_path),
                ) from None
            except BaseException:
                kill_tree(proc)
                raise
            finally:
                reap(proc)
        if _stopping.is_set():
            raise KeyboardInterrupt
        if not os.path.exists(result_path):
            raise IsolationError(
                _crash_message(what, proc.returncode, _read(os.path.join(tmp, PHASE_FILE))), detail=_tail(log_path)
            )
        with open(result_path, "rb") as f:
            status, value = pickle.load(f)
    if status == "ok":
        return value
    cls_name, message, detail = value
    cls = getattr(errors, cls_name, None)
    if not (isinstance(cls, type) and issubclass(cls, XnnfitError)):
        cls, message = XnnfitError, f"{what} failed: {message}"
    raise cls(message, detail=detail)


def _read(path: str) -> str:
    try:
        with open(path, encoding="utf-8") as f:
            return f.read().strip()
    except OSError:
        return ""


def _crash_message(what: str, code: int | None, doing: str) -> str:
    """One line for a child that died without a result: how it died, and whose code was running then."""
    how = f"signal {signal.Signals(-code).name}" if code is not None and code < 0 else f"exit code {code}"
    if doing.startswith(USER_CODE):
        where = doing[len(USER_CODE) :].strip(": ") or "the model's own code"
        return (
            f"{what} crashed the child process ({how}) while running {where}: the crash is in that "
            "code or a library it calls, "
            "not in xnnfit, TensorFlow or LiteRT. Run it on its own to see the error, or pass "
            "--debug for the child's log."
        )
    return (
        f"{what} crashed the child process ({how}){' while ' + doing if doing else ''}: a bug in "
        "TensorFlow or LiteRT, not in your "
        "model file. Try another recipe, or run with --debug to see the native log."
    )


def _child(result_path: str) -> int:
    """Child side: read the call from stdin, run it, pickle ("ok", result) or ("error", info)."""
    signal.signal(
        signal.SIGINT, signal.SIG_DFL
    )  # the parent decides when a child stops: no half-written result on Ctrl-C
    try:
        fn, args, kwargs = pickle.loads(sys.stdin.buffer.read())
        outcome: tuple = ("ok", fn(*args, **kwargs))
    except XnnfitError as exc:
        outcome = ("error", (type(exc).__name__, str(exc), exc.detail or traceback.format_exc()))
    except BaseException as exc:  # noqa: BLE001 - every failure must reach the parent as data
        outcome = ("error", ("", f"{type(exc).__name__}: {exc}", traceback.format_exc()))
    tmp = result_path + ".part"
    with open(tmp, "wb") as f:
        pickle.dump(outcome, f)
    os.replace(tmp, result_path)
    return 0


if __name__ == "__main__":
    sys.exit(_child(sys.argv[1]))
