"""The output policy for every file xnnfit writes: never an input, never twice, never a special or partial file.

Every output option of every command is pointed at what it must refuse; each refusal is
exit 2 with one line on stderr, and the input, the existing files and the folder are
left exactly as they were.
"""

from __future__ import annotations

import hashlib
import os
import socket
import stat
import subprocess
from pathlib import Path

import pytest
from typer.testing import CliRunner

from xnnfit.cli import app
from xnnfit.tflite.build import add_tensor, make_op, new_model, new_subgraph
from xnnfit.tflite.writer import serialize


def _tiny_where() -> bytes:
    """y = select(x < 0, x, -x): a real .tflite with two CPU nodes (LESS, SELECT), built without TensorFlow."""
    model = new_model("xnnfit test: tf.where")
    sub = new_subgraph(model, "main")
    x = add_tensor(model, sub, (1, 8), "float32", "x")
    import numpy as np

    zero = add_tensor(model, sub, (1,), "float32", "zero", data=np.zeros((1,), np.float32))
    neg = add_tensor(model, sub, (1, 8), "float32", "neg")
    mask = add_tensor(model, sub, (1, 8), "bool", "mask")
    y = add_tensor(model, sub, (1, 8), "float32", "y")
    sub.inputs, sub.outputs = [x], [y]
    sub.operators += [
        make_op(model, "NEG", [x], [neg]),
        make_op(model, "LESS", [x, zero], [mask]),
        make_op(model, "SELECT_V2", [mask, x, neg], [y]),
    ]
    return serialize(model)


@pytest.fixture(scope="module")
def model_bytes() -> bytes:
    return _tiny_where()


@pytest.fixture(scope="module")
def saved_result(tmp_path_factory, model_bytes) -> bytes:
    """A check result saved with --json: the input of `xnnfit report`."""
    folder = tmp_path_factory.mktemp("result")
    (folder / "m.tflite").write_bytes(model_bytes)
    result = CliRunner().invoke(app, ["check", str(folder / "m.tflite"), "-q", "--json", str(folder / "result.json")])
    assert result.exit_code == 0, result.output
    return (folder / "result.json").read_bytes()


@pytest.fixture
def work(tmp_path, model_bytes, saved_result):
    """A folder with the input model, a saved check result, and what the policy must not touch."""
    (tmp_path / "m.tflite").write_bytes(model_bytes)
    (tmp_path / "result.json").write_bytes(saved_result)
    return tmp_path


# command -> argv with OUT as the output under test; MODEL and RESULT are the inputs
COMMANDS = {
    "check --json": ["check", "MODEL", "--json", "OUT"],
    "check --html": ["check", "MODEL", "--html", "OUT"],
    "check --model-explorer": ["check", "MODEL", "--model-explorer", "OUT"],
    "profile --trace": ["profile", "MODEL", "--runs", "3", "--trace", "OUT"],
    "fix -o": ["fix", "MODEL", "--runs", "5", "-o", "OUT"],
    "fix --json": ["fix", "MODEL", "--runs", "5", "-o", "FIXED", "--json", "OUT"],
    "optimize -o": ["optimize", "MODEL", "--runs", "5", "-o", "OUT"],
    "optimize --keep-all": ["optimize", "MODEL", "--runs", "5", "--keep-all", "OUT"],
    "bench --json": ["bench", "MODEL", "--runs", "3", "--json", "OUT"],
    "check --junit": ["check", "MODEL", "--jobs", "1", "--junit", "OUT"],
    "check --sarif": ["check", "MODEL", "--jobs", "1", "--sarif", "OUT"],
    "check --markdown": ["check", "MODEL", "--jobs", "1", "--markdown", "OUT"],
    "check --write-baseline": ["check", "MODEL", "--jobs", "1", "--write-baseline", "OUT"],
    "report --html": ["report", "RESULT", "--html", "OUT"],
    "explain --json": ["explain", "XNN001", "--json", "OUT"],
}
FOLDER_OUTPUTS = {"optimize --keep-all"}


def _inputs_of(command: str) -> list[str]:
    return ["RESULT"] if command.startswith("report") else [] if command.startswith("explain") else ["MODEL"]


def _argv(command: str, folder: Path, out: str, *extra: str) -> list[str]:
    names = {
        "MODEL": str(folder / "m.tflite"),
        "RESULT": str(folder / "result.json"),
        "FIXED": str(folder / "fixed.tflite"),
        "OUT": out,
    }
    return [names.get(a, a) for a in COMMANDS[command]] + list(extra)


def _snapshot(folder: Path) -> dict[str, tuple[int, str]]:
    """Every entry of the folder: its mode and, for regular files, a digest of its bytes."""
    out = {}
    for p in sorted(folder.rglob("*")):
        st = os.lstat(p)
        digest = hashlib.sha256(p.read_bytes()).hexdigest() if stat.S_ISREG(st.st_mode) else ""
        out[str(p.relative_to(folder))] = (st.st_mode, digest)
    return out


def _refused(argv: list[str], folder: Path, needle: str) -> None:
    before = _snapshot(folder)
    result = CliRunner().invoke(app, argv)
    assert result.exit_code == 2, (argv, result.output)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:"), result.stderr
    assert needle in lines[0], lines[0]
    assert "Traceback" not in result.output
    assert _snapshot(folder) == before  # inputs, existing files and special files as they were; no temp file left


@pytest.mark.parametrize("command", sorted(c for c in COMMANDS if _inputs_of(c) and c not in FOLDER_OUTPUTS))
@pytest.mark.parametrize("how", ["itself", "hard link", "symlink"])
def test_an_output_is_never_an_input(work, command, how):
    source = work / ("result.json" if command.startswith("report") else "m.tflite")
    target = source
    if how == "hard link":
        target = work / "link"
        os.link(source, target)
    elif how == "symlink":
        target = work / "alias"
        target.symlink_to(source.name)
    _refused(_argv(command, work, str(target), "--force"), work, "xnnfit never overwrites what it reads")


@pytest.mark.parametrize("command", sorted(COMMANDS))
@pytest.mark.parametrize("kind", ["character device", "FIFO", "socket"])
def test_special_files_are_refused_even_with_force(work, command, kind):
    target = work / "special"
    if kind == "character device":
        os.mknod(
            target, stat.S_IFCHR | 0o666, os.makedev(1, 3)
        )  # what /dev/null is, made here: the system's is never touched
    elif kind == "FIFO":
        os.mkfifo(target)
    else:
        sock = socket.socket(socket.AF_UNIX)
        sock.bind(str(target))
        sock.close()
    _refused(_argv(command, work, str(target), "--force"), work, "not a regular file")


@pytest.mark.parametrize("command", sorted(set(COMMANDS) - FOLDER_OUTPUTS))
def test_an_existing_file_only_with_force(work, command):
    target = work / "existing.out"
    target.write_text("the user's file")
    _refused(_argv(command, work, str(target)), work, "already exists. Pass --force")


@pytest.mark.parametrize("command", sorted(set(COMMANDS) - FOLDER_OUTPUTS))
def test_a_directory_is_refused(work, command):
    (work / "adir").mkdir()
    _refused(_argv(command, work, str(work / "adir")), work, "is a directory")


@pytest.mark.parametrize("command", sorted(set(COMMANDS) - FOLDER_OUTPUTS))
def test_a_missing_folder_is_refused_before_the_work(work, command):
    _refused(_argv(command, work, str(work / "no" / "such" / "out")), work, "does not exist")


@pytest.mark.parametrize(
    "argv",
    [
        ["fix", "MODEL", "-o", "SAME", "--json", "SAME"],
        ["check", "MODEL", "--json", "SAME", "--html", "SAME"],
        ["profile", "MODEL", "--html", "SAME", "--trace", "SAME"],
        ["check", "MODEL", "--jobs", "1", "--junit", "SAME", "--sarif", "SAME"],
        ["optimize", "MODEL", "--keep-all", "DIR", "-o", "DIR/m.as-given.tflite"],
    ],
    ids=lambda a: " ".join(x for x in a if x.startswith("-")),
)
def test_one_path_is_never_two_outputs_of_a_run(work, argv):
    names = {"MODEL": str(work / "m.tflite"), "SAME": str(work / "same.out"), "DIR": str(work / "kept")}
    (work / "kept").mkdir()
    argv = [names.get(a, a.replace("DIR", str(work / "kept"))) for a in argv]
    _refused(argv, work, "each output needs a path of its own")


def test_force_never_reaches_an_input_through_a_folder_input(tmp_path, model_bytes):
    """A SavedModel folder is an input too: nothing is written inside it."""
    saved = tmp_path / "saved"
    saved.mkdir()
    (saved / "saved_model.pb").write_bytes(b"not read: the output is refused first")
    (tmp_path / "m.tflite").write_bytes(model_bytes)
    _refused(["check", str(saved), "--json", str(saved / "r.json")], tmp_path, "inside the input model")


@pytest.fixture
def full_fs(tmp_path):
    """A 64 KB tmpfs the test mounts (and unmounts), filled to the last byte."""
    mount = tmp_path / "full"
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(mount)], capture_output=True, text=True
    )
    if done.returncode:
        pytest.skip(f"cannot mount a small file system here to fill it ({done.stderr.strip()}); needs root")
    try:
        fd = os.open(mount / "filler", os.O_WRONLY | os.O_CREAT)
        try:
            while os.write(fd, b"\0" * 512):
                pass
        except OSError:
            pass  # ENOSPC: full
        finally:
            os.close(fd)
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


@pytest.mark.parametrize(
    ("command", "extra"),
    [
        ("check --json", ()),
        ("check --html", ()),
        ("fix -o", ("--force-write",)),
        ("optimize -o", ()),
        ("check --junit", ()),
    ],
)
def test_a_full_disk_is_one_line_and_leaves_nothing(work, full_fs, command, extra):
    before = sorted(p.name for p in full_fs.iterdir())
    argv = _argv(command, work, str(full_fs / "out"), *extra)
    result = CliRunner().invoke(app, argv)
    assert result.exit_code == 2, result.output
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "no space left on the device" in errors[0], result.stderr
    assert "Traceback" not in result.output
    assert sorted(p.name for p in full_fs.iterdir()) == before  # no partial output, no temp file


def test_a_read_only_file_system_is_refused_before_the_work(work, full_fs):
    subprocess.run(["mount", "-o", "remount,ro", str(full_fs)], check=True)
    _refused(_argv("check --json", work, str(full_fs / "r.json")), work, "read-only file system")


def test_force_replaces_a_regular_file_and_keeps_the_input(work):
    target = work / "report.json"
    target.write_text("old")
    model = (work / "m.tflite").read_bytes()
    result = CliRunner().invoke(app, _argv("check --json", work, str(target), "--force", "-q"))
    assert result.exit_code == 0, result.output
    assert target.read_text().startswith("{")
    assert (work / "m.tflite").read_bytes() == model
    assert not [p for p in work.iterdir() if p.name.startswith(".")]


def test_explain_without_an_output_writes_nothing(tmp_path):
    result = CliRunner().invoke(app, ["explain", "XNN001"])
    assert result.exit_code == 0 and "XNN001" in result.stdout
