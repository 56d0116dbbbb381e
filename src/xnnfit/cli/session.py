"""One command's session: consoles, exit codes, signals, progress, and the output policy around the work.

Exit codes: 0 fine, 1 a CI gate was violated, 2 usage error or unusable input, 128 + the
signal when stopped (130 Ctrl-C, 143 SIGTERM, 129 SIGHUP).
"""

from __future__ import annotations

import contextlib
import os
import signal
from collections.abc import Callable, Iterable, Iterator

import typer
from rich.console import Console

from xnnfit.cli.options import RunOptions
from xnnfit.core.errors import XnnfitError
from xnnfit.core.files import CACHE_ENV, Output, check_outputs, run_scope
from xnnfit.report import terminal
from xnnfit.report.json import write_json

EXIT_GATE, EXIT_USAGE, EXIT_INTERRUPTED = 1, 2, 130
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)  # Ctrl-C, `kill PID` (systemd, CI runners), a hang-up


def console_for(stderr: bool) -> Console:
    console = Console(stderr=stderr, highlight=False, soft_wrap=stderr)
    if not console.is_terminal:  # pipes and CI logs: do not wrap at 80 columns
        console = Console(stderr=stderr, highlight=False, width=160, soft_wrap=stderr)
    return console


out = console_for(stderr=False)
err = console_for(stderr=True)


class Interrupted(KeyboardInterrupt):
    """SIGTERM or SIGHUP, handled as Ctrl-C is: the run stops, children are killed, temporary files removed."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


_doing = {"what": "", "signum": 0}  # what the progress display shows now: an interrupt names it


def signal_received() -> int:
    """The stop signal this run received (0: none)."""
    return int(_doing["signum"])


def _on_stop_signal(signum: int, frame: object) -> None:
    """The first stop signal unwinds the run (children killed, files removed); a second one ends the process at once."""
    from xnnfit.core import isolate

    _doing["signum"] = signum
    for s in STOP_SIGNALS:
        signal.signal(s, _on_second_signal)
    isolate.stop_all()
    raise Interrupted(signum)


def _on_second_signal(signum: int, frame: object) -> None:
    from xnnfit.core import isolate

    isolate.stop_all()
    os._exit(128 + signum)


def install_signal_handlers() -> None:
    for s in STOP_SIGNALS:
        with contextlib.suppress(
            ValueError, OSError
        ):  # not the main thread (an embedding app): leave its handlers alone
            signal.signal(s, _on_stop_signal)


@contextlib.contextmanager
def errors(debug: bool) -> Iterator[None]:
    """Turn an XnnfitError into one line on stderr and exit 2; Ctrl-C into exit 130, SIGTERM 143, SIGHUP 129."""
    try:
        yield
    except XnnfitError as exc:
        terminal.render_error(err, str(exc), exc.detail if debug else None)
        raise typer.Exit(EXIT_USAGE) from None
    except KeyboardInterrupt as exc:
        from xnnfit.core import isolate

        isolate.stop_all()
        signum = exc.signum if isinstance(exc, Interrupted) else signal.SIGINT
        name = signal.Signals(signum).name
        what = f" while {_doing['what']}" if _doing["what"] else ""
        err.print(
            f"interrupted ({name}){what}: every child process was stopped and its temporary files "
            "removed; no output was written"
        )
        raise typer.Exit(128 + signum) from None


@contextlib.contextmanager
def guarded(force: bool, inputs: Iterable[tuple[str, str | None]], outputs: Iterable[Output]) -> Iterator[None]:
    """The output policy for one command: its inputs never written, its outputs all checked before the work starts."""
    with run_scope((label, input_path(path)) for label, path in inputs if path):
        check_outputs(outputs, force=force)
        yield


def input_path(reference: str) -> str:
    """The file a model reference reads: file.py for file.py:function, the path itself otherwise."""
    return reference.rsplit(":", 1)[0] if ".py:" in reference else reference


def models_read(references: Iterable[str]) -> list[tuple[str, str]]:
    """(label, path) of every model a command reads: inputs the output policy protects."""
    return [("the input model", r) for r in references]


def use_max_memory(max_memory: str | None) -> None:
    """--max-memory for this run and its children (footprint.limit reads it)."""
    if max_memory:
        from xnnfit.model.footprint import MEMORY_ENV, parse_size

        os.environ[MEMORY_ENV] = str(parse_size(max_memory))


def use_cache_dir(cache_dir: str | None) -> None:
    """--cache-dir moves every cache (results, runtime venvs) for this run and its children."""
    if cache_dir:
        os.environ[CACHE_ENV] = os.path.abspath(cache_dir)


def warn_threads(counts: Iterable[int]) -> None:
    cores = os.cpu_count() or 1
    over = sorted({n for n in counts if n > cores})
    if over:
        err.print(
            f"[yellow]warning[/]: --threads {','.join(map(str, over))} is more than this machine's "
            f"{cores} cores: the threads wait for "
            f"each other and the timings oversubscribe. Pass at most {cores}, or time on the target device."
        )


@contextlib.contextmanager
def progress(quiet: bool, title: str, total: int | None = None) -> Iterator[Callable[[str], None]]:
    """A transient spinner (or a bar when `total` is known) on stderr naming the current step; nothing with --quiet."""
    if quiet:
        _doing["what"] = title

        def remember(step: str) -> None:
            _doing["what"] = f"{title}: {step}"

        yield remember
        return
    _doing["what"] = title
    if total is None:
        with err.status(title + "…", spinner="dots") as status:

            def update(step: str) -> None:
                _doing["what"] = f"{title}: {step}"
                status.update(f"{title}: {step}…")

            yield update
        return
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        TimeElapsedColumn(),
        console=err,
        transient=True,
    ) as bar:
        task = bar.add_task(title, total=total)

        def advance(step: str) -> None:
            _doing["what"] = f"{title}: {step}"
            bar.update(task, advance=1, description=f"{title}: {step}")

        yield advance


def report_outputs(
    json_path: str | None, html: str | None = None, trace: str | None = None, explorer: str | None = None
) -> list[Output]:
    return [
        Output("--json", json_path),
        Output("--html", html),
        Output("--trace", trace),
        Output("--model-explorer", explorer),
    ]


def write(
    result,
    json_path: str | None,
    html: str | None = None,
    trace: str | None = None,
    explorer: str | None = None,
    *,
    force: bool = False,
) -> None:
    """Every file output the user asked for, each written atomically under the output policy."""
    if json_path:
        terminal.render_written(err, write_json(result, json_path, force=force))
    if html:
        from xnnfit.report.html import write_html

        terminal.render_written(err, write_html(result, html, force=force))
    if trace:
        from xnnfit.report.trace import write_trace

        terminal.render_written(err, write_trace(result, trace, force=force))
    if explorer:
        from xnnfit.report.overlays import write_overlays

        for path in write_overlays(result, explorer, force=force):
            terminal.render_written(err, path)


@contextlib.contextmanager
def session(run: RunOptions) -> Iterator[None]:
    """The errors of a model command as exit codes, with its --max-memory in force for it and its children."""
    with errors(run.debug):
        use_max_memory(run.max_memory)
        yield
