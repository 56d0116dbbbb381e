"""How xnnfit check, fix and profile survive corrupted models: tracebacks, hangs, modified inputs, leftover files.

Seeds are real .tflite files from xnnfit's own conversion of the bundled examples
(fp32, fp16, int8, a dynamic batch) and of keras.applications.MobileNetV3Small
(weights=None, 96x96), converted once and cached in --cache. Each case mutates one seed
with an RNG seeded by (--seed, case number): bit flips, truncations, splices of two
models, 32-bit integer overwrites at aligned offsets (flatbuffer offsets, shapes, buffer
and opcode indexes), or a structural edit made on the parsed model and re-serialized (a
huge, zero or negative dimension, an index out of range, a wrong type or op code...).
Byte-level edits prefer the flatbuffer's tables over weight data, where a flip does
nothing visible.

Every case runs one command, rotating `check`, `fix -o OUT --runs 5` and `profile --runs 3`, as a
real `python -m xnnfit` process with `--timeout 30`, TMPDIR set to an empty folder of its
own and a hard wall limit (then its process group is killed). A case is OK when the exit
code is 0, 1 or 2 (2 with exactly one line on stderr), neither stream holds a traceback
nor an unhandled Python exception passed on from a child ("... failed: IndexError: ..."),
the input's bytes are unchanged, no process of its group outlives it, and its TMPDIR
and the folder of its input and output hold nothing new. Anything else is a finding,
saved with its mutated model and the command to rerun in --findings. Prints N, the
seed, counts per class, per command and per mutation, and one line per finding; exits
1 when there are findings.

    .venv/bin/python benchmarks/fuzz.py [--cases 1000] [--seed 0] [--jobs 2] [--cache DIR] [--findings DIR]
"""

from __future__ import annotations

import argparse
import collections
import concurrent.futures
import dataclasses
import hashlib
import os
import random
import re
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from xnnfit.core.policy import DEFAULT_POLICY

ROOT = Path(__file__).resolve().parents[1]
COMMANDS = ("check", "fix", "profile")
CLI_TIMEOUT = 30  # --timeout per child: the seeds run in well under a second, so only a hang gets near it
WALL_LIMIT = 120.0  # seconds for a whole case: a command starts a few children, each bounded by CLI_TIMEOUT
RUNS = 3  # --runs for profile: few, timing figures do not matter here
FIX_RUNS = DEFAULT_POLICY.min_runs  # --runs for fix: the fewest it accepts (its speed gate's minimum)
ORPHAN_GRACE = (
    2.0  # seconds a child may take to die after the command ended (a parent-death signal is delivered asynchronously)
)
STDOUT, STDERR = "stdout.txt", "stderr.txt"
CASE_FILES = {
    "model.tflite",
    "out.tflite",
    "tmp",
    STDOUT,
    STDERR,
}  # a case folder after the command: input, fix's output, TMPDIR, output
OK_EXIT_CODES = (0, 1, 2)  # fine, a gate failed, unusable input
EXIT_USAGE = 2  # an unusable model: exactly one line on stderr saying what was wrong and what to do
SMALL_BUFFER = (
    64  # bytes: buffers up to this size hold shapes, axes and the like, structure a byte edit should reach too
)
STRUCTURE_SHARE = (
    0.8  # share of byte edits aimed at flatbuffer tables rather than weight data (flips there do nothing visible)
)
# 32-bit values written over aligned words: zero, all ones, the int32 edges, sizes an allocator refuses, small offsets
SPECIAL_WORDS = (0, 1, 4, 0xFFFFFFFF, 0x7FFFFFFF, 0x80000000, 0x7FFFFFF0, 0x40000000, 0x00010000, 0xFFFFFFFC)
MUTATIONS = (("flip", 25), ("truncate", 12), ("splice", 13), ("overwrite", 30), ("structure", 20))  # kind, weight
# The Python exception an isolated child passes on as text when xnnfit's own code did not handle it.
_UNHANDLED = re.compile(r"\bfailed: ([A-Za-z_.]*(Error|Exception|Interrupt)|error|StopIteration)\b: ")
_TRACEBACK = "Traceback (most recent call last)"

# (name, source, recipe, options): the seeds, all converted by xnnfit itself
SEED_SPECS = (
    ("where_activation-fp32", "examples/where_activation.py:build", "fp32", {}),
    ("where_cnn-fp32", "examples/where_cnn.py:build", "fp32", {}),
    ("where_cnn-int8", "examples/where_cnn.py:build", "int8", {}),
    ("upsampling_decoder-fp16", "examples/upsampling_decoder.py:build", "fp16", {}),
    ("transformer_block-int8", "examples/transformer_block.py:build", "int8", {}),
    ("dynamic_reshape-fp32-dynamic", "examples/dynamic_reshape.py:build", "fp32", {"dynamic_batch": True}),
    ("mobilenet_v3_small-dynamic-int8", "benchmarks/fuzz.py:mobilenet_v3_small", "dynamic-int8", {}),
)  # sources relative to the repository root


def mobilenet_v3_small():
    """keras.applications.MobileNetV3Small, untrained, at 96x96: a model no one here wrote, small enough to run fast."""
    import keras

    keras.utils.set_random_seed(0)
    return keras.applications.MobileNetV3Small(input_shape=(96, 96, 3), weights=None)


def build_seeds(cache: Path, log: Callable[[str], None] = print) -> dict[str, bytes]:
    """Every seed of SEED_SPECS as .tflite bytes, converted by xnnfit on first use and read from `cache` afterwards."""
    from xnnfit.api import convert
    from xnnfit.core.version import __version__

    folder = cache / f"xnnfit-{__version__}"
    folder.mkdir(parents=True, exist_ok=True)
    seeds = {}
    for name, source, recipe, options in SEED_SPECS:
        path = folder / f"{name}.tflite"
        if not path.exists():
            start = time.perf_counter()
            content = convert(str(ROOT / source), recipe=recipe, **options)
            tmp = path.with_suffix(".part")
            tmp.write_bytes(content)
            os.replace(tmp, path)
            log(f"  converted seed {name} ({len(content) / 1024:.0f} KB) in {time.perf_counter() - start:.1f} s")
        seeds[name] = path.read_bytes()
    return seeds


# ---------------------------------------------------------------------------------------
# Mutations
# ---------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Mutation:
    """A mutated model and how it was made."""

    kind: str  # one of MUTATIONS' kinds
    seed: str  # the seed model's name (both names for a splice)
    what: str  # the edit, short
    content: bytes = dataclasses.field(repr=False)


def _weight_ranges(content: bytes) -> list[tuple[int, int]]:
    """Byte ranges holding buffer data (weights), sorted; everything else is flatbuffer tables, vectors and strings."""
    import flatbuffers

    from xnnfit.tflite.schema import fb

    model = fb.Model.GetRootAs(content, 0)
    ranges = []
    for i in range(model.BuffersLength()):
        tab = model.Buffers(i)._tab
        o = flatbuffers.number_types.UOffsetTFlags.py_type(tab.Offset(4))
        if o:
            start, length = tab.Vector(o), tab.VectorLen(o)
            if length > SMALL_BUFFER:
                ranges.append((start, start + length))
    return sorted(ranges)


class Mutator:
    """Seeded mutations of a set of seed models."""

    def __init__(self, seeds: dict[str, bytes], kinds: Sequence[str] = ()):
        self.seeds = dict(sorted(seeds.items()))
        self.kinds = [(k, w) for k, w in MUTATIONS if not kinds or k in kinds]
        self._structural = {name: self._structural_spans(content) for name, content in self.seeds.items()}

    @staticmethod
    def _structural_spans(content: bytes) -> list[tuple[int, int]]:
        spans, pos = [], 0
        for start, end in _weight_ranges(content):
            if start > pos:
                spans.append((pos, start))
            pos = max(pos, end)
        if pos < len(content):
            spans.append((pos, len(content)))
        return spans

    def _offset(self, rng: random.Random, name: str, size: int, align: int = 1) -> int:
        """A position in seed `name` (of `size` bytes), in its tables with probability STRUCTURE_SHARE."""
        spans = [(a, min(b, size)) for a, b in self._structural[name] if a < size]
        if spans and rng.random() < STRUCTURE_SHARE:
            a, b = rng.choices(spans, weights=[b - a for a, b in spans])[0]
            pos = rng.randrange(a, b)
        else:
            pos = rng.randrange(size)
        return min(pos - pos % align, size - align)

    def mutate(self, rng: random.Random) -> Mutation:
        """One mutation; every choice comes from `rng`."""
        kind = rng.choices([k for k, _ in self.kinds], weights=[w for _, w in self.kinds])[0]
        name = rng.choice(list(self.seeds))
        if kind == "structure":
            edited = _structure_edit(rng, self.seeds[name])
            if edited is not None:
                return Mutation(kind, name, *edited)
            kind = "overwrite"  # the edit could not be serialized: a byte-level one instead
        return getattr(self, f"_{kind}")(rng, name)

    def _flip(self, rng: random.Random, name: str) -> Mutation:
        data = bytearray(self.seeds[name])
        n = rng.choice((1, 1, 2, 4, 8, 32))
        places = []
        for _ in range(n):
            pos = self._offset(rng, name, len(data))
            if rng.random() < 0.5:
                data[pos] ^= 1 << rng.randrange(8)
            else:
                data[pos] = rng.randrange(256)
            places.append(pos)
        return Mutation("flip", name, f"{n} byte(s) at {_places(places)}", bytes(data))

    def _truncate(self, rng: random.Random, name: str) -> Mutation:
        data = self.seeds[name]
        cut = rng.choice((rng.randrange(1, 64), rng.randrange(len(data)), len(data) - rng.randrange(1, 4096)))
        cut = max(1, min(cut, len(data) - 1))
        return Mutation("truncate", name, f"kept {cut} of {len(data)} bytes", data[:cut])

    def _splice(self, rng: random.Random, name: str) -> Mutation:
        other = rng.choice(list(self.seeds))
        a, b = self.seeds[name], self.seeds[other]
        i = self._offset(rng, name, len(a))
        if rng.random() < 0.5:  # head of one, tail of the other
            j = rng.randrange(len(b))
            return Mutation("splice", f"{name}+{other}", f"{name}[:{i}] + {other}[{j}:]", a[:i] + b[j:])
        j = rng.randrange(len(b))
        n = rng.randrange(1, 4096)
        return Mutation(
            "splice", f"{name}+{other}", f"{n} bytes of {other}@{j} over {name}@{i}", a[:i] + b[j : j + n] + a[i + n :]
        )

    def _overwrite(self, rng: random.Random, name: str) -> Mutation:
        data = bytearray(self.seeds[name])
        n = rng.choice((1, 1, 1, 2, 3))
        edits = []
        for _ in range(n):
            pos = self._offset(rng, name, len(data), align=4)
            old = struct.unpack_from("<I", data, pos)[0]
            value = rng.choice(
                (
                    *SPECIAL_WORDS,
                    len(data),
                    len(data) + 4,
                    rng.randrange(2**32),
                    old + 4,
                    old - 4,
                    old * 2,
                    old + rng.randrange(1, 256),
                )
            )
            struct.pack_into("<I", data, pos, value % 2**32)
            edits.append(f"{value % 2**32:#x}@{pos}")
        return Mutation("overwrite", name, ", ".join(edits), bytes(data))


def _places(places: Sequence[int]) -> str:
    shown = ", ".join(str(p) for p in sorted(places)[:4])
    return shown + (f" (+{len(places) - 4})" if len(places) > 4 else "")


# Structural edits on the parsed model (ModelT), each returning a description or None when it does not apply.
def _pick_tensor(rng, model):
    sub = rng.choice(model.subgraphs)
    if not sub.tensors:
        return None, None
    i = rng.randrange(len(sub.tensors))
    return sub, i


def _edit_dim(rng, model):
    sub, i = _pick_tensor(rng, model)
    if sub is None:
        return None
    if rng.random() < 0.6 and sub.inputs:  # inputs shape what the runtime allocates and what xnnfit generates
        i = int(rng.choice(list(sub.inputs)))
        if not 0 <= i < len(sub.tensors):
            return None
    t = sub.tensors[i]
    shape = list(t.shape if t.shape is not None else [])
    value = rng.choice((0, -1, -7, 2**31 - 1, 2**20, 65536, 3, 10**9))
    if shape and rng.random() < 0.8:
        d = rng.randrange(len(shape))
        shape[d] = value
        where = f"dim {d}"
    else:
        shape = [value] * rng.choice((0, 1, 7, 9))
        where = f"rank {len(shape)}"
    t.shape = shape
    if rng.random() < 0.5:
        t.shapeSignature = list(shape)
    return f"tensor {i} ({_name(t)}) {where} = {value} -> shape {shape}"


def _edit_index(rng, model):
    sub = rng.choice(model.subgraphs)
    if not sub.operators:
        return None
    k = rng.randrange(len(sub.operators))
    op = sub.operators[k]
    field = rng.choice(("inputs", "outputs"))
    seq = list(getattr(op, field) or [])
    if not seq:
        return None
    j = rng.randrange(len(seq))
    value = rng.choice((len(sub.tensors), len(sub.tensors) + 1000, -2, -1, 2**31 - 1, rng.randrange(len(sub.tensors))))
    seq[j] = value
    setattr(op, field, seq)
    return f"op {k} {field}[{j}] = {value} (of {len(sub.tensors)} tensors)"


def _edit_arity(rng, model):
    sub = rng.choice(model.subgraphs)
    if not sub.operators:
        return None
    k = rng.randrange(len(sub.operators))
    op = sub.operators[k]
    field = rng.choice(("inputs", "outputs"))
    seq = list(getattr(op, field) or [])
    extra = [rng.randrange(len(sub.tensors))] if sub.tensors else []
    new = rng.choice((seq[: len(seq) // 2], [], seq + extra, seq + [-1] * 3))
    setattr(op, field, new)
    return f"op {k} {field} {seq} -> {new}"


def _edit_intermediates(rng, model):
    sub = rng.choice(model.subgraphs)
    if not sub.operators:
        return None
    k = rng.randrange(len(sub.operators))
    value = rng.choice((len(sub.tensors), len(sub.tensors) + 9, -5, 0))
    sub.operators[k].intermediates = [value]
    return f"op {k} intermediates = [{value}] (of {len(sub.tensors)} tensors)"


def _edit_opcode(rng, model):
    sub = rng.choice(model.subgraphs)
    if not sub.operators:
        return None
    k = rng.randrange(len(sub.operators))
    value = rng.choice((len(model.operatorCodes), len(model.operatorCodes) + 50, 2**31 - 1))
    sub.operators[k].opcodeIndex = value
    return f"op {k} opcodeIndex = {value} (of {len(model.operatorCodes)} codes)"


def _edit_builtin(rng, model):
    from xnnfit.tflite.schema import fb

    if not model.operatorCodes:
        return None
    k = rng.randrange(len(model.operatorCodes))
    code = model.operatorCodes[k]
    names = sorted(n for n, v in vars(fb.BuiltinOperator).items() if not n.startswith("_") and isinstance(v, int))
    choice = rng.choice((*names, 9999, 127))  # any op, or codes no runtime knows
    value = getattr(fb.BuiltinOperator, choice) if isinstance(choice, str) else choice
    code.builtinCode = value
    code.deprecatedBuiltinCode = min(value, 127)
    if rng.random() < 0.3:
        code.version = rng.choice((0, 99, 2**31 - 1))
    return f"operator code {k} = {choice} version {code.version}"


def _edit_buffer_index(rng, model):
    sub, i = _pick_tensor(rng, model)
    if sub is None:
        return None
    value = rng.choice((len(model.buffers), len(model.buffers) + 100, 2**31 - 1, 0))
    sub.tensors[i].buffer = value
    return f"tensor {i} buffer = {value} (of {len(model.buffers)})"


def _edit_buffer_data(rng, model):
    full = [b for b in model.buffers if b.data is not None and len(b.data)]
    if not full:
        return None
    buf = rng.choice(full)
    n = len(buf.data)
    keep = rng.choice((0, 1, n // 2, n - 1, n + 7))
    buf.data = bytes(buf.data[:keep]) + (b"\x01" * (keep - n) if keep > n else b"")
    return f"a {n}-byte buffer now {keep} bytes"


def _edit_type(rng, model):
    sub, i = _pick_tensor(rng, model)
    if sub is None:
        return None
    value = rng.choice((*range(23), 99))  # every TensorType of the schema, and one it does not define
    sub.tensors[i].type = value
    return f"tensor {i} ({_name(sub.tensors[i])}) type = {value}"


def _edit_io(rng, model):
    sub = rng.choice(model.subgraphs)
    field = rng.choice(("inputs", "outputs"))
    n = len(sub.tensors)
    value = rng.choice(
        ([], [n], [-1], [0, 0], [2**31 - 1], list(getattr(sub, field) or []) * 2, [rng.randrange(max(n, 1))])
    )
    setattr(sub, field, value)
    return f"subgraph {field} = {value}"


def _edit_quant(rng, model):
    from xnnfit.tflite.schema import fb

    sub, i = _pick_tensor(rng, model)
    if sub is None:
        return None
    t = sub.tensors[i]
    q = t.quantization or fb.QuantizationParametersT()
    choice = rng.randrange(4)
    if choice == 0:
        q.scale, q.zeroPoint = [0.0], [0]
    elif choice == 1:
        q.scale, q.zeroPoint = [float("nan")], [2**40]
    elif choice == 2:
        q.scale, q.zeroPoint = [1.0, 2.0, 3.0], [0]
    else:
        q.scale, q.zeroPoint, q.quantizedDimension = [float("inf")], [-1], 99
    t.quantization = q
    return f"tensor {i} ({_name(t)}) quantization scale {q.scale} zero point {q.zeroPoint}"


def _edit_cycle(rng, model):
    sub = rng.choice(model.subgraphs)
    if len(sub.operators or []) < 2:
        return None
    k = rng.randrange(1, len(sub.operators))
    later, earlier = sub.operators[k], sub.operators[rng.randrange(k)]
    if not later.outputs or not earlier.inputs:
        return None
    later.outputs = [int(earlier.inputs[0]), *list(later.outputs)[1:]]
    return f"op {k} writes tensor {int(earlier.inputs[0])}, an input of an earlier op"


def _edit_drop_ops(rng, model):
    sub = rng.choice(model.subgraphs)
    if not sub.operators:
        return None
    k = rng.randrange(len(sub.operators))
    n = rng.choice((1, len(sub.operators)))
    del sub.operators[k : k + n]
    return f"removed ops {k}..{k + n - 1}"


def _edit_signature(rng, model):
    sigs = model.signatureDefs or []
    if not sigs:
        return None
    sig = sigs[0]
    entries = list(sig.inputs or []) + list(sig.outputs or [])
    if entries and rng.random() < 0.7:
        entry = rng.choice(entries)
        entry.tensorIndex = rng.choice((2**31 - 1, 10**6, -1))
        return f"signature tensor index = {entry.tensorIndex}"
    sig.subgraphIndex = rng.choice((5, 2**31 - 1))
    return f"signature subgraph index = {sig.subgraphIndex}"


def _edit_metadata(rng, model):
    from xnnfit.tflite.schema import fb

    md = fb.MetadataT()
    md.name = rng.choice(("min_runtime_version", "debug_metadata", "CONVERSION_METADATA", "x" * 300))
    md.buffer = rng.choice((len(model.buffers) + 3, 0, 2**31 - 1))
    model.metadata = [*(model.metadata or []), md]
    return f"metadata {md.name[:20]!r} -> buffer {md.buffer}"


def _edit_no_subgraph(rng, model):
    if rng.random() < 0.5:
        model.subgraphs = []
        return "no subgraphs"
    model.subgraphs = model.subgraphs + [model.subgraphs[0]] * rng.choice((1, 3))
    return f"{len(model.subgraphs)} subgraphs (copies of the first)"


STRUCTURE_EDITS = (
    _edit_dim,
    _edit_dim,
    _edit_index,
    _edit_arity,
    _edit_intermediates,
    _edit_opcode,
    _edit_builtin,
    _edit_buffer_index,
    _edit_buffer_data,
    _edit_type,
    _edit_io,
    _edit_quant,
    _edit_cycle,
    _edit_drop_ops,
    _edit_signature,
    _edit_metadata,
    _edit_no_subgraph,
)


def _name(tensor) -> str:
    name = tensor.name.decode("utf-8", "replace") if isinstance(tensor.name, bytes) else str(tensor.name)
    return name[-40:]


def _structure_edit(rng: random.Random, content: bytes) -> tuple[str, bytes] | None:
    """(what, bytes) of one structural edit of the parsed model, re-serialized; None when none can be made."""
    from xnnfit.tflite.writer import parse, serialize

    model = parse(content)
    for _ in range(5):  # an edit may not apply to this model (no signature, no quantization...): try another
        edit = rng.choice(STRUCTURE_EDITS)
        what = edit(rng, model)
        if what is None:
            continue
        try:
            return f"{edit.__name__[len('_edit_') :]}: {what}", serialize(model)
        except Exception:  # noqa: BLE001 - a value the flatbuffer builder cannot pack (out of int32 range)
            return None
    return None


# ---------------------------------------------------------------------------------------
# Running a case
# ---------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Outcome:
    """What one case did."""

    index: int
    command: str
    mutation: Mutation
    argv: tuple[str, ...]
    problems: tuple[str, ...]  # finding classes, most severe first; empty when OK
    exit_code: int | None  # None for a hang
    seconds: float
    stdout: str
    stderr: str
    leftovers: tuple[str, ...] = ()  # files left in TMPDIR ($TMPDIR/...) or beside the input and output

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def message(self) -> str:
        """The line that tells what happened: a traceback's last line, the error on stderr, else the last line."""
        text = self.stderr if self.stderr.strip() else self.stdout
        lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
        if _TRACEBACK in text:
            return lines[-1] if lines else ""
        errors = [ln for ln in lines if ln.lower().startswith("error")]
        return (errors or lines or [""])[-1][:300]

    def summary(self) -> str:
        kind = self.problems[0] if self.problems else "ok"
        code = "killed" if self.exit_code is None else f"exit {self.exit_code}"
        extra = f" leftovers {', '.join(self.leftovers[:3])}" if self.leftovers else ""
        made = f"{self.mutation.kind} {self.mutation.seed}: {self.mutation.what[:120]}"
        return f"case {self.index} {self.command} [{made}] {kind} ({code}){extra}: {self.message}"


def _argv(command: str, model: Path, out: Path) -> list[str]:
    base = [sys.executable, "-m", "xnnfit", command, str(model)]
    extra = {"check": [], "fix": ["-o", str(out), "--runs", str(FIX_RUNS)], "profile": ["--runs", str(RUNS)]}[command]
    return [*base, *extra, "--timeout", str(CLI_TIMEOUT), "--quiet"]


def run_case(index: int, command: str, mutation: Mutation, workdir: Path, wall_limit: float = WALL_LIMIT) -> Outcome:
    """Run `command` on the mutated model in a fresh folder of `workdir` and classify what it did."""
    case = workdir / f"case-{index}"
    shutil.rmtree(case, ignore_errors=True)
    tmp = case / "tmp"
    tmp.mkdir(parents=True)
    model = case / "model.tflite"
    model.write_bytes(mutation.content)
    digest = hashlib.sha256(mutation.content).hexdigest()
    argv = _argv(command, model, case / "out.tflite")
    env = {**os.environ, "TMPDIR": str(tmp), "TF_CPP_MIN_LOG_LEVEL": "3", "COLUMNS": "160"}
    env.pop("PYTHONWARNINGS", None)
    start = time.perf_counter()
    # Output goes to files, not pipes: a child left running would hold a pipe open and look like a hang.
    with open(case / STDOUT, "wb") as out, open(case / STDERR, "wb") as err:
        proc = subprocess.Popen(argv, cwd=case, env=env, stdout=out, stderr=err, start_new_session=True)
        orphans = False
        try:
            code: int | None = proc.wait(timeout=wall_limit)
            orphans = _group_alive(proc.pid)  # children are meant to die with the command
        except subprocess.TimeoutExpired:
            code = None
        _kill_group(proc.pid)
        proc.wait()
    seconds = time.perf_counter() - start
    stdout = (case / STDOUT).read_text("utf-8", "replace")
    stderr = (case / STDERR).read_text("utf-8", "replace")
    leftovers = [f"$TMPDIR/{p.relative_to(tmp)}" for p in tmp.rglob("*")]
    leftovers += [p.name for p in case.iterdir() if p.name not in CASE_FILES]  # e.g. a half-written output's temp file
    leftovers = tuple(sorted(leftovers))
    problems = []
    if code is None:
        problems.append("hang")
    if orphans:
        problems.append("processes left running")
    if _TRACEBACK in stdout or _TRACEBACK in stderr:
        problems.append("traceback")
    if _UNHANDLED.search(stdout) or _UNHANDLED.search(stderr):
        problems.append("unhandled exception")
    if code is not None and code not in OK_EXIT_CODES:
        problems.append("bad exit code")
    if code == EXIT_USAGE and len([ln for ln in stderr.splitlines() if ln.strip()]) != 1:
        problems.append("error not one line")
    if not model.exists() or hashlib.sha256(model.read_bytes()).hexdigest() != digest:
        problems.append("modified input")
    if leftovers:
        problems.append("leftover files")
    return Outcome(index, command, mutation, tuple(argv), tuple(problems), code, seconds, stdout, stderr, leftovers)


def _group_alive(pid: int) -> bool:
    """Whether a process of the command's group still runs ORPHAN_GRACE seconds after the command ended."""
    deadline = time.monotonic() + ORPHAN_GRACE
    while True:
        try:
            os.killpg(pid, 0)
        except (ProcessLookupError, PermissionError):
            return False
        if time.monotonic() > deadline:
            return True
        time.sleep(0.05)


def _kill_group(pid: int) -> None:
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def save_finding(outcome: Outcome, findings: Path, seed: int) -> Path:
    """The mutated model, the command to rerun and what it printed, in a folder of `findings`."""
    folder = findings / f"seed{seed}-case{outcome.index}-{outcome.problems[0].replace(' ', '-')}"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "model.tflite").write_bytes(outcome.mutation.content)
    argv = [a if not a.endswith("model.tflite") else "model.tflite" for a in outcome.argv]
    argv = [a if not a.endswith("out.tflite") else "out.tflite" for a in argv]
    rerun = " ".join(["python", *argv[1:]])
    (folder / "README.txt").write_text(
        f"{outcome.summary()}\n\nproblems: {', '.join(outcome.problems)}\n"
        f"mutation: {outcome.mutation.kind} of {outcome.mutation.seed}: {outcome.mutation.what}\n"
        f"rerun (in this folder): {rerun}\nexit code: {outcome.exit_code}, {outcome.seconds:.1f} s\n"
        f"leftover files: {', '.join(outcome.leftovers) or 'none'}\n\n--- stdout ---\n{outcome.stdout[-20000:]}\n"
        f"--- stderr ---\n{outcome.stderr[-20000:]}\n"
    )
    return folder


# ---------------------------------------------------------------------------------------
# A run
# ---------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Report:
    """Every case of a run."""

    cases: int
    seed: int
    outcomes: tuple[Outcome, ...]
    seconds: float

    @property
    def findings(self) -> tuple[Outcome, ...]:
        return tuple(o for o in self.outcomes if not o.ok)

    def lines(self) -> list[str]:
        """The printed summary."""
        out = [
            f"fuzz: N={self.cases} seed={self.seed} in {self.seconds:.0f} s "
            f"({self.seconds / max(self.cases, 1):.1f} s per case)"
        ]
        classes = collections.Counter(o.problems[0] if o.problems else "ok" for o in self.outcomes)
        out.append("  by class:    " + ", ".join(f"{k} {v}" for k, v in sorted(classes.items(), key=lambda kv: -kv[1])))
        codes = collections.Counter("killed" if o.exit_code is None else f"exit {o.exit_code}" for o in self.outcomes)
        out.append("  exit codes:  " + ", ".join(f"{k} {v}" for k, v in sorted(codes.items())))
        for label, key in (("by command: ", lambda o: o.command), ("by mutation:", lambda o: o.mutation.kind)):
            groups = collections.defaultdict(list)
            for o in self.outcomes:
                groups[key(o)].append(o)
            parts = [f"{k} {len(v)} ({sum(not o.ok for o in v)} findings)" for k, v in sorted(groups.items())]
            out.append(f"  {label} " + ", ".join(parts))
        out.append(f"  findings: {len(self.findings)}")
        out.extend(f"    {o.summary()}" for o in self.findings)
        return out

    def error_lines(self) -> list[str]:
        """The distinct messages OK cases ended with (exit 2), most frequent first: are they one clear line each?"""
        counts = collections.Counter(re.sub(r"\d+", "N", o.message) for o in self.outcomes if o.ok and o.exit_code == 2)
        return [f"  {n:4d} x {msg}" for msg, n in counts.most_common()]


def fuzz(
    seeds: dict[str, bytes],
    cases: int,
    seed: int = 0,
    *,
    jobs: int = 2,
    workdir: Path,
    findings: Path | None = None,
    commands: Sequence[str] = COMMANDS,
    mutations: Sequence[str] = (),
    first: int = 0,
    wall_limit: float = WALL_LIMIT,
    progress: Callable[[Outcome], None] | None = None,
) -> Report:
    """Run cases `first`..`first + cases - 1` of the run seeded with `seed` and classify each.

    Case i mutates with random.Random(f"{seed}:{i}") and runs commands[i % len(commands)],
    so any case can be rerun alone (with the same `commands` and `mutations`, the kinds
    drawn from; all when empty). Findings are saved in `findings` when given.
    """
    mutator = Mutator(seeds, mutations)
    start = time.perf_counter()

    def one(i: int) -> Outcome:
        mutation = mutator.mutate(random.Random(f"{seed}:{i}"))
        outcome = run_case(i, commands[i % len(commands)], mutation, workdir, wall_limit)
        if outcome.ok:
            shutil.rmtree(workdir / f"case-{i}", ignore_errors=True)
        elif findings is not None:
            save_finding(outcome, findings, seed)
        if progress:
            progress(outcome)
        return outcome

    with concurrent.futures.ThreadPoolExecutor(max_workers=max(jobs, 1)) as pool:
        outcomes = list(pool.map(one, range(first, first + cases)))
    return Report(cases, seed, tuple(outcomes), time.perf_counter() - start)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cases", "-n", type=int, default=1000, help="how many cases (N)")
    parser.add_argument(
        "--seed", type=int, default=0, help="seed of the run: case i mutates with random.Random(f'{seed}:{i}')"
    )
    parser.add_argument("--first", type=int, default=0, help="first case number (rerun one case: --first 17 --cases 1)")
    parser.add_argument("--jobs", "-j", type=int, default=2, help="cases run in parallel")
    parser.add_argument("--commands", default=",".join(COMMANDS), help="commands to rotate, comma-separated")
    parser.add_argument(
        "--mutations",
        default="",
        help=f"mutation kinds to draw from, comma-separated (default: all of {', '.join(k for k, _ in MUTATIONS)})",
    )
    parser.add_argument(
        "--cache",
        type=Path,
        default=Path(tempfile.gettempdir()) / "xnnfit-fuzz-seeds",
        help="folder of the converted seeds",
    )
    parser.add_argument("--findings", type=Path, default=Path("fuzz-findings"), help="folder the findings are saved in")
    parser.add_argument("--wall-limit", type=float, default=WALL_LIMIT, help="seconds before a case counts as a hang")
    parser.add_argument("--errors", action="store_true", help="also print the distinct error lines of OK cases")
    args = parser.parse_args()
    commands = tuple(c for c in args.commands.split(",") if c)
    if unknown := set(commands) - set(COMMANDS):
        parser.error(f"unknown commands {sorted(unknown)}: pick from {', '.join(COMMANDS)}")
    mutations = tuple(m for m in args.mutations.split(",") if m)
    if unknown := set(mutations) - {k for k, _ in MUTATIONS}:
        parser.error(f"unknown mutations {sorted(unknown)}: pick from {', '.join(k for k, _ in MUTATIONS)}")

    print(f"seeds in {args.cache}")
    seeds = build_seeds(args.cache)
    for name, content in seeds.items():
        print(f"  {name}: {len(content) / 1024:.0f} KB")
    done = [0]

    def progress(outcome: Outcome) -> None:
        done[0] += 1
        if not outcome.ok:
            print(f"  ! {outcome.summary()}", flush=True)
        elif done[0] % 50 == 0:
            print(f"  {done[0]}/{args.cases} cases", flush=True)

    with tempfile.TemporaryDirectory(prefix="xnnfit-fuzz-") as work:
        report = fuzz(
            seeds,
            args.cases,
            args.seed,
            jobs=args.jobs,
            workdir=Path(work),
            findings=args.findings,
            commands=commands,
            mutations=mutations,
            first=args.first,
            wall_limit=args.wall_limit,
            progress=progress,
        )
    print("\n".join(report.lines()))
    if report.findings:
        print(f"  saved in {args.findings.resolve()}")
    if args.errors:
        print("error lines of OK cases (exit 2):")
        print("\n".join(report.error_lines()))
    return 1 if report.findings else 0


if __name__ == "__main__":
    sys.exit(main())
