"""Start a command that dies with the process that started it, even when that process is SIGKILLed.

    python -S lifeline.py PARENT_PID COMMAND [ARG ...]

Linux's PR_SET_PDEATHSIG asks the kernel to kill this process when its parent dies; the
setting survives the exec into COMMAND, so every child xnnfit starts (stage children, pip,
other runtimes' venvs) is launched through this file. It imports only the standard library
and is run by path, so any Python can run it.
"""

from __future__ import annotations

import os
import signal
import sys

PR_SET_PDEATHSIG = 1  # linux/prctl.h
ORPHANED = 137  # the exit status a SIGKILL gives: what the kernel would have done had the setting come in time


def die_with_parent(parent_pid: int) -> None:
    """Be killed when the parent dies; exit at once if it died already (before the setting could take)."""
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):
        return  # not Linux: the caller's timeouts and process-group kills still bound the child
    if os.getppid() != parent_pid:
        os._exit(ORPHANED)


def command(argv: list[str]) -> list[str]:
    """`argv` wrapped so that it dies with this process (or the thread that starts it)."""
    return [sys.executable, "-S", os.path.abspath(__file__), str(os.getpid()), *argv]


if __name__ == "__main__":
    die_with_parent(int(sys.argv[1]))
    os.execvp(sys.argv[2], sys.argv[2:])
