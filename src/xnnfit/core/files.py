"""Writing the user's files: one output policy for everything xnnfit writes.

Every output path is checked against the same rules, before the work starts (`OutputPlan`)
and again when it is written (`write_file`):

- never an input (compared by device and inode, so a hard link or a symlink to the input
  counts; nor a file inside an input folder such as a SavedModel);
- never the same path twice in one run;
- never a special file (a device, FIFO or socket), even with force;
- never a directory; an existing file only with force.

Content goes to a temporary file in the target folder first. Without `force` the final
step is a hard link (or, where the file system has none, a rename that refuses to replace),
which fails if the name exists, so two runs writing the same path at once cannot both
succeed; with `force` it is a rename over the old file. A reader never sees a partial file,
and any failure (full disk, quota, read-only file system, permissions) is one XnnfitError
that leaves neither the final name nor a temporary file behind.
"""

from __future__ import annotations

import contextlib
import contextvars
import dataclasses
import errno
import os
import stat
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path

from xnnfit.core.errors import XnnfitError

RENAME_NOREPLACE = 1  # linux/fs.h: renameat2 fails with EEXIST instead of replacing
AT_FDCWD = -100  # linux/fcntl.h: paths relative to the working folder
_NO_LINKS = (
    errno.EPERM,
    errno.EOPNOTSUPP,
    errno.EXDEV,
    errno.EMLINK,
)  # file systems without hard links say one of these
_WHAT_WENT_WRONG = {
    errno.ENOSPC: ("no space left on the device", "Free some space or write to another folder"),
    errno.EDQUOT: ("the disk quota is exceeded", "Free some space or write to another folder"),
    errno.EROFS: ("the file system is read-only", "Write to a writable folder"),
    errno.EACCES: ("permission denied", "Write to a folder you may write in"),
    errno.EPERM: ("operation not permitted", "Write to a folder you may write in"),
    errno.EISDIR: ("it is a directory", "Pass a file path"),
    errno.ENOTDIR: ("a part of the path is not a folder", "Check the path"),
    errno.ENOENT: ("its folder does not exist", "Create the folder first"),
    errno.ENAMETOOLONG: ("the name is too long", "Pick a shorter path"),
    errno.EIO: ("an input/output error on the device", "Check the disk"),
}


_EXAMPLE_NAMES = {
    "--json": "result.json",
    "--html": "report.html",
    "--trace": "trace.json",
    "--model-explorer": "overlay.json",
    "--junit": "junit.xml",
    "--sarif": "results.sarif",
    "--markdown": "summary.md",
    "--write-baseline": "baseline.json",
}


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _kind(mode: int) -> str | None:
    """'a character device', 'a FIFO', ... for special files; None for regular files and directories."""
    if stat.S_ISCHR(mode):
        return "a character device"
    if stat.S_ISBLK(mode):
        return "a block device"
    if stat.S_ISFIFO(mode):
        return "a FIFO (named pipe)"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return None


def os_error(path: str | Path, exc: OSError, action: str = "write") -> XnnfitError:
    """One line for an OSError on `path`: what went wrong and what to do."""
    what, todo = _WHAT_WENT_WRONG.get(exc.errno or 0, (exc.strerror or str(exc), "Pick another path"))
    return XnnfitError(f"cannot {action} {str(path)!r}: {what}. {todo}; nothing was written.")


@dataclasses.dataclass(frozen=True)
class _Input:
    label: str  # 'the input model', 'the --data file'
    path: Path
    dev: int
    ino: int
    folder: bool


@dataclasses.dataclass
class Run:
    """The inputs one run reads and the outputs it wrote so far; write_file consults the current one."""

    inputs: list[_Input] = dataclasses.field(default_factory=list)
    written: set[str] = dataclasses.field(default_factory=set)

    def protect(self, path: str | Path | None, label: str = "an input") -> None:
        """Never write over `path` (nor inside it, when it is a folder) in this run."""
        if path is None:
            return
        try:
            st = os.stat(path)
        except (OSError, ValueError):
            return  # not there (yet): nothing to overwrite
        self.inputs.append(_Input(label, Path(path), st.st_dev, st.st_ino, stat.S_ISDIR(st.st_mode)))


_current: contextvars.ContextVar[Run | None] = contextvars.ContextVar("xnnfit_files_run", default=None)


@contextlib.contextmanager
def run_scope(inputs: Iterable[tuple[str, str | Path | None]] = ()) -> Iterator[Run]:
    """A run whose inputs every write in it refuses: (label, path) pairs such as ('the input model', 'm.tflite')."""
    run = Run()
    for label, path in inputs:
        run.protect(path, label)
    token = _current.set(run)
    try:
        yield run
    finally:
        _current.reset(token)


def _inputs(extra: Iterable[Path | str | None]) -> list[_Input]:
    run = _current.get()
    found = list(run.inputs) if run else []
    probe = Run()
    for p in extra:
        probe.protect(p, "the input model")
    return found + probe.inputs


def _refuse_input(path: Path, flag: str, inputs: list[_Input]) -> None:
    try:
        st = os.stat(path)  # follows symlinks: a link to the input is the input
    except OSError:
        st = None
    if st is not None:
        for i in inputs:
            if (st.st_dev, st.st_ino) == (i.dev, i.ino):
                raise XnnfitError(
                    f"{flag} {str(path)!r} is {i.label} ({str(i.path)!r}); xnnfit never overwrites what it "
                    "reads. Pick another path."
                )
    folder = path.parent if str(path.parent) else Path(".")
    try:
        chain = [os.stat(p) for p in (folder.resolve(), *folder.resolve().parents)]
    except OSError:
        return
    for i in inputs:
        if i.folder and any((s.st_dev, s.st_ino) == (i.dev, i.ino) for s in chain):
            raise XnnfitError(
                f"{flag} {str(path)!r} is inside {i.label} ({str(i.path)!r}); xnnfit never writes into "
                "what it reads. Pick another folder."
            )


def check_output_path(
    output: str | Path,
    *,
    inputs: tuple[Path, ...] = (),
    force: bool = False,
    flag: str = "-o",
    folder_ok: bool = False,
    force_flag: str = "--force",
) -> Path:
    """`output` as a Path, refused (XnnfitError, one line) when writing it would break the output policy.

    `folder_ok` checks a folder output (files are written inside it): it may exist as a folder, or be created.
    `flag` and `force_flag` name the output and the way to replace it in the caller's terms (the CLI's
    options, or an API's arguments such as 'force=True').
    """
    path = Path(output)
    _refuse_input(path, flag, _inputs(inputs))
    try:
        st = os.stat(path)
    except FileNotFoundError:
        st = None
    except OSError as exc:
        raise os_error(path, exc) from exc
    if st is not None:
        special = _kind(st.st_mode)
        if special:
            raise XnnfitError(
                f"{flag} {str(output)!r} is {special}, not a regular file; xnnfit writes only regular "
                f"files, even with {force_flag}. Pick a file path."
            )
        if stat.S_ISDIR(st.st_mode):
            if folder_ok:
                _writable(path, output)
                return path
            example = _EXAMPLE_NAMES.get(flag, "model_fixed.tflite")
            raise XnnfitError(
                f"{flag} {str(output)!r} is a directory. Pass a file path such as {str(path / example)!r}."
            )
        if folder_ok:
            raise XnnfitError(f"{flag} {str(output)!r} is a file; it names a folder to write into. Pass a folder path.")
        if not force:
            raise XnnfitError(
                f"{flag} {str(output)!r} already exists. Pass {force_flag} to replace it, or pick another path."
            )
    elif os.path.islink(path) and not force:
        raise XnnfitError(
            f"{flag} {str(output)!r} already exists (a symlink to nowhere). Pass {force_flag} to replace "
            "it, or pick another path."
        )
    parent = path.parent if str(path.parent) else Path(".")
    if folder_ok:  # a folder made when the first file is written: its nearest existing ancestor must be writable
        while not parent.exists() and parent != parent.parent:
            parent = parent.parent
    _writable(parent, output)
    return path


def _writable(folder: Path, output: str | Path) -> None:
    if not folder.is_dir():
        raise XnnfitError(f"cannot write {str(output)!r}: folder {str(folder)!r} does not exist. Create it first.")
    if not os.access(folder, os.W_OK):
        try:
            readonly = bool(os.statvfs(folder).f_flag & os.ST_RDONLY)
        except OSError:
            readonly = False
        what = "is on a read-only file system" if readonly else "is not writable"
        raise XnnfitError(f"cannot write {str(output)!r}: folder {str(folder)!r} {what}. Pick a writable folder.")


@dataclasses.dataclass(frozen=True)
class Output:
    """One output of a run: the option that names it, its path, and whether it is a folder files go into."""

    flag: str
    path: str | Path | None
    folder: bool = False
    names: tuple[str, ...] = ()  # files a folder output will hold, when known before the work


def check_outputs(outputs: Iterable[Output], *, force: bool) -> None:
    """Every output of a run checked before the work starts: the policy for each, and no path named twice."""
    seen: dict[str, str] = {}
    for out in outputs:
        if out.path is None or str(out.path) == "":
            continue
        path = check_output_path(out.path, force=force, flag=out.flag, folder_ok=out.folder)
        for target in [path / n for n in out.names] if out.folder else [path]:
            if out.folder and path.is_dir():  # a folder made later holds nothing yet
                check_output_path(target, force=force, flag=out.flag)
            key = _identity(target)
            if key in seen:
                raise XnnfitError(
                    f"{out.flag} {str(out.path)!r} is also the {seen[key]} output of this run: each output "
                    "needs a path of its own. Pick another path."
                )
            seen[key] = out.flag
        if out.folder:
            seen.setdefault(_identity(path), out.flag)


def _identity(path: Path) -> str:
    """The path a write would reach: symlinks and '..' resolved (a missing file keeps its name)."""
    return os.path.realpath(path)


def write_file(
    path: str | Path,
    content: bytes | str,
    *,
    force: bool = False,
    flag: str = "",
    inputs: tuple[Path, ...] = (),
    track: bool = True,
    force_flag: str = "--force",
) -> Path:
    """Write `content` to `path` atomically under the output policy; XnnfitError (one line) when refused or failed.

    `track=False` is for xnnfit's own files (cache entries): not counted as this run's outputs.
    """
    path = Path(path)
    label = f"{flag} " if flag else ""
    check_output_path(path, inputs=inputs, force=force, flag=(flag or "output"), force_flag=force_flag)
    run = _current.get()
    key = _identity(path)
    if track and run is not None and key in run.written:
        raise XnnfitError(
            f"{label}{str(path)!r} was already written by this run: each output needs a path of its "
            "own. Pick another path."
        )
    data = content.encode() if isinstance(content, str) else content
    folder = path.parent if str(path.parent) else Path(".")
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=folder)
    except OSError as exc:
        raise os_error(path, exc) from exc
    try:
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())  # a full disk shows here on file systems that allocate late, not after the rename
            os.chmod(tmp, 0o666 & ~_umask())  # the usual mode of a new file, not mkstemp's 0600
            if force:
                os.replace(tmp, path)
            else:
                _publish_new(tmp, path, force_flag)
        except OSError as exc:
            raise os_error(path, exc) from exc
    finally:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
    if track and run is not None:
        run.written.add(key)
    return path


def _publish_new(tmp: str, path: Path, force_flag: str = "--force") -> None:
    """Give the finished temporary file its final name, failing if that name exists."""
    try:
        os.link(tmp, path)
        return
    except FileExistsError:
        raise XnnfitError(
            f"{str(path)!r} already exists (written by another run meanwhile?). Pass {force_flag} to replace it."
        ) from None
    except OSError as exc:
        if exc.errno not in _NO_LINKS:
            raise
    if _rename_noreplace(tmp, path, force_flag):
        return
    if os.path.lexists(path):  # no hard links and no renameat2 here: the last check before a plain rename
        raise XnnfitError(f"{str(path)!r} already exists. Pass {force_flag} to replace it.")
    os.rename(tmp, path)


def _rename_noreplace(tmp: str, path: Path, force_flag: str = "--force") -> bool:
    """renameat2(RENAME_NOREPLACE): True when done; False where the system or file system lacks it."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        rename2 = libc.renameat2
    except (OSError, AttributeError):
        return False
    if rename2(AT_FDCWD, os.fsencode(tmp), AT_FDCWD, os.fsencode(str(path)), RENAME_NOREPLACE) == 0:
        return True
    code = ctypes.get_errno()
    if code == errno.EEXIST:
        raise XnnfitError(
            f"{str(path)!r} already exists (written by another run meanwhile?). Pass {force_flag} to replace it."
        )
    if code in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP):
        return False
    raise OSError(code, os.strerror(code), str(path))


CACHE_ENV = "XNNFIT_CACHE_DIR"  # the one setting that moves every cache (results, conversions, runtime venvs);
# --cache-dir sets it


def cache_root() -> Path:
    """The one folder for xnnfit's files: $XNNFIT_CACHE_DIR, else the user cache folder (~/.cache/xnnfit on Linux)."""
    env = os.environ.get(CACHE_ENV)
    if env:
        return Path(env)
    import platformdirs

    return Path(platformdirs.user_cache_dir("xnnfit", appauthor=False))


def read_json(path: str | Path, hint: str) -> object:
    """The JSON a file holds; XnnfitError in one line (missing, unreadable, not JSON) ending with `hint`.

    `hint` says what to pass instead.
    """
    import json

    p = Path(path)
    try:
        return json.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise XnnfitError(f"cannot read {str(p)!r}: no such file. {hint}") from None
    except IsADirectoryError:
        raise XnnfitError(f"cannot read {str(p)!r}: it is a directory. {hint}") from None
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise XnnfitError(f"cannot read {str(p)!r} as JSON ({exc}). {hint}") from None
