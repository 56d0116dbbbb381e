"""The xnnfit command line: typer commands over xnnfit.api, rendered by report/ (see cli/commands.py)."""

from xnnfit.cli import commands  # noqa: F401 - registers the commands on `app`
from xnnfit.cli.app import app, main

__all__ = ["app", "main"]
