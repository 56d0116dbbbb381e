"""Run a function in a child process with a timeout; a crash or hang becomes an XnnfitError.

The child is started with `spawn` (no inherited TensorFlow threads), its stdout and
stderr go to a log file (TensorFlow and LiteRT are chatty), and whatever it returns
or raises comes back through a pipe.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import signal
import tempfile
import traceback
from typing import Any, Callable

from xnnfit import errors
from xnnfit.errors import IsolationError, XnnfitError

DEFAULT_TIMEOUT = 600.0
QUIET_ENV = {"TF_CPP_MIN_LOG_LEVEL": "3", "TF_ENABLE_ONEDNN_OPTS": "0", "KERAS_BACKEND": "tensorflow"}


def _child_main(conn: Any, log_path: str, fn: Callable, args: tuple, kwargs: dict) -> None:
    fd = os.open(log_path, os.O_WRONLY | os.O_APPEND)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    try:
        result = fn(*args, **kwargs)
        conn.send(("ok", result))
    except XnnfitError as exc:
        conn.send(("error", (type(exc).__name__, str(exc), exc.detail or traceback.format_exc())))
    except BaseException as exc:  # noqa: BLE001 - every failure must reach the parent as data
        conn.send(("error", ("XnnfitError", f"{type(exc).__name__}: {exc}", traceback.format_exc())))
    finally:
        conn.close()


def _tail(path: str, limit: int = 4000) -> str:
    try:
        with open(path, "rb") as f:
            data = f.read()
        return data[-limit:].decode("utf-8", "replace")
    except OSError:
        return ""


def run_isolated(fn: Callable, *args: Any, what: str, timeout: float = DEFAULT_TIMEOUT, **kwargs: Any) -> Any:
    """Call `fn(*args, **kwargs)` in a spawned child and return its result.

    `what` names the work for error messages ("converting model.keras (int8)").
    Raises the child's XnnfitError as is; a crash or a timeout as IsolationError.
    """
    ctx = mp.get_context("spawn")
    recv, send = ctx.Pipe(duplex=False)
    fd, log_path = tempfile.mkstemp(prefix="xnnfit-child-", suffix=".log")
    os.close(fd)
    saved = {k: os.environ.get(k) for k in QUIET_ENV}
    for k, v in QUIET_ENV.items():
        os.environ.setdefault(k, v)
    try:
        proc = ctx.Process(target=_child_main, args=(send, log_path, fn, args, kwargs), daemon=True)
        proc.start()
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
    send.close()
    try:
        if not recv.poll(timeout):
            proc.kill()
            proc.join()
            raise IsolationError(
                f"{what} did not finish within {timeout:.0f} s and was stopped. "
                "Pass a larger --timeout, or a smaller model or input shape.",
                detail=_tail(log_path),
            )
        try:
            status, payload = recv.recv()
        except (EOFError, OSError):
            proc.join()
            code = proc.exitcode
            how = f"signal {signal.Signals(-code).name}" if code is not None and code < 0 else f"exit code {code}"
            raise IsolationError(
                f"{what} crashed the child process ({how}); this is a bug in TensorFlow or LiteRT, not in your "
                "model file. Try another recipe, or run with --debug to see the native log.",
                detail=_tail(log_path),
            ) from None
        proc.join()
    finally:
        recv.close()
        if proc.is_alive():
            proc.kill()
        try:
            os.unlink(log_path)
        except OSError:
            pass
    if status == "ok":
        return payload
    cls_name, message, detail = payload
    cls = getattr(errors, cls_name, XnnfitError)
    if not (isinstance(cls, type) and issubclass(cls, XnnfitError)):
        cls = XnnfitError
    raise cls(message if cls_name != "XnnfitError" or ":" not in message else f"{what} failed: {message}", detail=detail)
