"""Functions run_isolated calls in a child process; they must be importable there by name.

The child (`python -m xnnfit.core.isolate`) gets the parent's sys.path as PYTHONPATH. Under
pytest's default "prepend" import mode tests/ (the rootdir conftest.py directory) is on
sys.path, so this module imports as `isolate_targets` in the parent and in the child.
"""

from __future__ import annotations

import os
import sys
import time

from xnnfit.core import errors


def add(a, b, *, scale=1):
    """A plain result built from positional and keyword arguments."""
    return {"sum": (a + b) * scale, "pid": os.getpid()}


def child_env():
    """What the child sees: its environment and sys.path."""
    keys = ("TF_CPP_MIN_LOG_LEVEL", "KERAS_BACKEND", "PYTHONWARNINGS", "XNNFIT_TEST_MARK")
    return {k: os.environ.get(k) for k in keys}, list(sys.path)


def raise_xnnfit(class_name, message, detail=None):
    """Raise the xnnfit.core.errors class `class_name`."""
    raise getattr(errors, class_name)(message, detail=detail)


def raise_value_error(message):
    """A non-xnnfit exception."""
    raise ValueError(message)


def chatty_then_fail():
    """Writes to stdout/stderr (as TF does) before failing: the text goes to the log, not the parent."""
    print("stdout chatter from the child", flush=True)
    print("stderr chatter from the child", file=sys.stderr, flush=True)
    raise RuntimeError("after chatter")


def abort():
    """Die with SIGABRT, as a native crash in TensorFlow or LiteRT does."""
    print("about to abort", file=sys.stderr, flush=True)
    os.abort()


def hard_exit(code):
    """Leave without writing a result."""
    os._exit(code)


def sleep(seconds):
    """Hang (from the parent's point of view)."""
    time.sleep(seconds)
    return "woke up"


def observe_on(python: str) -> None:
    """Ask a runtime child (here a fake `python` that hangs) for a model's nodes: the stage a --runtime check runs."""
    from xnnfit.runtime import targets

    targets.ops_details(targets.Target("tflite-runtime==2.14.0", "tflite-runtime", "2.14.0", python), b"model", {})
