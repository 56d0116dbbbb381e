"""Writing the user's files: atomically, never over an input, never over a file without --force.

Content goes to a temporary file in the target folder first. Without `force` the final
step is a hard link, which fails if the name exists, so two runs writing the same path
at once cannot both succeed; with `force` it is a rename over the old file. Either way
a reader never sees a partial file and an interrupted write leaves nothing behind.
"""

from __future__ import annotations

import errno
import os
import tempfile
from pathlib import Path

from xnnfit.errors import XnnfitError


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def check_output_path(output: str | Path, *, inputs: tuple[Path, ...] = (), force: bool = False, flag: str = "-o") -> Path:
    """`output` as a Path, refused when it is an input, a directory, exists (without force) or cannot be written."""
    path = Path(output)
    for source in inputs:
        if path.exists() and source.exists() and path.resolve() == source.resolve():
            raise XnnfitError(f"{flag} {str(output)!r} is the input model; xnnfit never overwrites its input. Pick another output path.")
    if path.is_dir():
        raise XnnfitError(f"{flag} {str(output)!r} is a directory. Pass a file path such as {str(path / 'model_fixed.tflite')!r}.")
    if path.exists() and not force:
        raise XnnfitError(f"{str(output)!r} already exists. Pass --force to replace it, or pick another path.")
    folder = path.parent if str(path.parent) else Path(".")
    if not folder.is_dir():
        raise XnnfitError(f"cannot write {str(output)!r}: folder {str(folder)!r} does not exist. Create it first.")
    if not os.access(folder, os.W_OK):
        raise XnnfitError(f"cannot write {str(output)!r}: folder {str(folder)!r} is not writable. Pick a writable folder.")
    return path


def write_file(path: str | Path, content: bytes | str, *, force: bool = False) -> Path:
    """Write `content` to `path` atomically; without `force` an existing file is an XnnfitError."""
    path = Path(path)
    folder = path.parent if str(path.parent) else Path(".")
    data = content.encode() if isinstance(content, str) else content
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=folder)
    except OSError as exc:
        raise XnnfitError(f"cannot write {str(path)!r}: {exc.strerror}. Pick a writable folder that exists.") from exc
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.chmod(tmp, 0o666 & ~_umask())  # the usual mode of a new file, not mkstemp's 0600
        if force:
            os.replace(tmp, path)
        else:
            _link_new(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def _link_new(tmp: str, path: Path) -> None:
    try:
        os.link(tmp, path)
    except FileExistsError:
        raise XnnfitError(f"{str(path)!r} already exists (written by another run meanwhile?). Pass --force to replace it.") from None
    except OSError as exc:
        if exc.errno not in (errno.EPERM, errno.EOPNOTSUPP, errno.EXDEV, errno.EMLINK):
            raise XnnfitError(f"cannot write {str(path)!r}: {exc.strerror}. Pick a writable folder.") from exc
        try:  # no hard links here: exclusive create, then copy
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        except FileExistsError:
            raise XnnfitError(f"{str(path)!r} already exists. Pass --force to replace it.") from None
        with os.fdopen(fd, "wb") as out, open(tmp, "rb") as src:
            out.write(src.read())


def read_json(path: str | Path, hint: str) -> object:
    """The JSON a file holds; XnnfitError in one line (missing, unreadable, not JSON) ending with `hint` (what to pass instead)."""
    import json

    p = Path(path)
    try:
        return json.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise XnnfitError(f"cannot read {str(p)!r}: no such file. {hint}") from None
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise XnnfitError(f"cannot read {str(p)!r} as JSON ({exc}). {hint}") from None
