"""Run a function in a child process with a timeout; a crash or hang becomes an XnnfitError.

The child is a fresh `python -m xnnfit.isolate` (no inherited TensorFlow threads, no
re-import of the caller's __main__). The call goes in as a pickle on stdin, the result
comes back as a pickle file; the child's stdout and stderr go to a log file (TensorFlow
and LiteRT are chatty) that is shown only with --debug.
"""

from __future__ import annotations

import os
import pickle
import signal
import subprocess
import sys
import tempfile
import threading
import traceback
from typing import Any, Callable

from xnnfit import errors
from xnnfit.errors import IsolationError, XnnfitError
from xnnfit.policy import DEFAULT_TIMEOUT

QUIET_ENV = {"TF_CPP_MIN_LOG_LEVEL": "3", "KERAS_BACKEND": "tensorflow", "PYTHONWARNINGS": "ignore"}

SCRATCH_ENV = "XNNFIT_CHILD_SCRATCH"  # a folder the parent removes when the child ends, however it ends
_live: set[subprocess.Popen] = set()  # children running now, from any thread (a batch runs several at once)
_live_lock = threading.Lock()


def kill_all() -> int:
    """Kill every child still running (Ctrl-C or SIGTERM in a batch); returns how many were killed."""
    with _live_lock:
        procs = list(_live)
    for proc in procs:
        try:
            proc.kill()
        except OSError:
            pass
    return len(procs)


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
    with tempfile.TemporaryDirectory(prefix="xnnfit-child-") as tmp:
        log_path = os.path.join(tmp, "child.log")
        result_path = os.path.join(tmp, "result.pickle")
        env = {**os.environ, **{k: os.environ.get(k, v) for k, v in QUIET_ENV.items()}}
        env["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p)
        env[SCRATCH_ENV] = tmp  # the child's own temporary files go here: removed with it even when it is killed
        try:
            payload = pickle.dumps((fn, args, kwargs))
        except (pickle.PicklingError, AttributeError, TypeError) as exc:
            raise XnnfitError(f"{what}: cannot hand the work to a child process ({exc}). This is a bug in xnnfit; please report it.") from exc
        with open(log_path, "wb") as log:
            proc = subprocess.Popen(
                [sys.executable, "-m", "xnnfit.isolate", result_path],
                stdin=subprocess.PIPE,
                stdout=log,
                stderr=log,
                env=env,
            )
            with _live_lock:
                _live.add(proc)
            try:
                proc.communicate(payload, timeout=timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
                raise IsolationError(
                    f"{what} did not finish within {timeout:.0f} s and was stopped. "
                    "Pass a larger --timeout, or a smaller model or input shape.",
                    detail=_tail(log_path),
                ) from None
            except BaseException:
                proc.kill()
                proc.wait()
                raise
            finally:
                with _live_lock:
                    _live.discard(proc)
        if not os.path.exists(result_path):
            code = proc.returncode
            how = f"signal {signal.Signals(-code).name}" if code is not None and code < 0 else f"exit code {code}"
            raise IsolationError(
                f"{what} crashed the child process ({how}): a bug in TensorFlow or LiteRT, not in your model file. "
                "Try another recipe, or run with --debug to see the native log.",
                detail=_tail(log_path),
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


def _child(result_path: str) -> int:
    """Child side: read the call from stdin, run it, pickle ("ok", result) or ("error", info)."""
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
