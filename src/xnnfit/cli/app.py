"""The typer application and the console-script entry point."""

from __future__ import annotations

import signal
import sys
from typing import Annotated

import typer

from xnnfit.cli import session
from xnnfit.core.errors import XnnfitError
from xnnfit.core.version import __version__
from xnnfit.report import terminal

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    rich_markup_mode="rich",
    context_settings={"help_option_names": ["-h", "--help"]},
    help="Find out which parts of your model the XNNPACK CPU delegate refuses, why, and what to write instead.",
)


def _version(value: bool) -> None:
    if value:
        session.out.print(f"xnnfit {__version__}")
        raise typer.Exit()


@app.callback()
def main_options(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = False,
) -> None:
    """xnnfit: runtime-true XNNPACK delegation diagnosis for Keras and TFLite models."""


def main() -> None:
    """Console-script entry point: usage errors exit 2; SIGTERM and SIGHUP stop a run as Ctrl-C does."""
    session.install_signal_handlers()
    signum = session.signal_received
    try:
        app()
    except XnnfitError as exc:  # pragma: no cover - commands catch their own
        terminal.render_error(session.err, str(exc))
        sys.exit(session.EXIT_USAGE)
    except SystemExit as exc:
        if signum() and exc.code != 128 + signum():  # click turned a late signal into "Aborted!"
            sys.exit(128 + signum())
        raise
    except KeyboardInterrupt as exc:  # a signal outside any command (while starting up)
        sys.exit(128 + (exc.signum if isinstance(exc, session.Interrupted) else signal.SIGINT))
