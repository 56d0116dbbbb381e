"""Read the converter's "debug_metadata" buffer: which TF ops and source lines made each TFLite op.

`tf.lite.TFLiteConverter` with `serialize_debug_metadata = True` stores the MLIR location of
every op as a `debug_metadata.DebugMetadata` flatbuffer in the model metadata entry
"debug_metadata". Found by experiment (TF 2.21, ai-edge-litert 2.3):

* `Operator.DebugMetadataIndex()` indexes the subgraph's `operators_debug_metadata`, not
  `attributes`; that entry's `attribute_metadata_indexes` then point into `attributes`.
  The vector is longer than the op list (it also covers ops folded away), -1 means none.
* `attributes[0]` is an UnknownLoc, the target of every NameLoc without a child.
* The TF importer writes each Python stack trace outermost frame first: a NameLoc whose child
  is the outermost frame, then a chain of CallSiteLocs with FileLineColLoc callees. Inlining
  CallSiteLocs keep the MLIR order (callee = the op, caller = the call op around it).
  `OpLocation.frames` reverses the former so that every trace reads innermost frame first.
* An op inlined from a function call (a layer's `tf.function`, e.g. Keras's XLA grouped conv)
  has an inlining CallSiteLoc whose callee names the op inside the function body
  ('convolution', no scope) and whose caller names the call op in the model
  ('model_1/conv_1/StatefulPartitionedCall'). `OpLocation.callers` keeps the latter: often the
  only name that says where the call was made.
* TensorFlow keeps at most 10 frames per op, ending two frames inside the innermost frame
  outside tensorflow/ and site-packages/keras/ (`error_interpolation._compute_useful_frames`):
  frames inside Keras's own layers are cut off; library (keras-hub) and user frames are kept.
* `from_keras_model` on a Keras 3 model saves through `keras.export.ExportArchive.write_out`
  without `save_debug_info`, so its locations carry op names only and no frames. Frames need a
  SavedModel written with `tf.saved_model.SaveOptions(save_debug_info=True)` (then
  `from_saved_model`) or `from_concrete_functions`.
"""

from __future__ import annotations

import dataclasses
import os
import re
import struct
import sysconfig

from flatbuffers import number_types as N
from flatbuffers.table import Table

__all__ = ["DebugMetadataTable", "OpLocation", "read_debug_metadata", "user_frame"]

_ATTR_LOCATION, _ATTR_DICT = 1, 2
_CALLSITE, _FILELINE, _FUSED, _NAME, _OPAQUE, _UNKNOWN = 1, 2, 3, 4, 5, 6
_CONVERSION = 1


@dataclasses.dataclass(frozen=True)
class OpLocation:
    """Where one TFLite op came from: TF op names and Python frames, innermost first."""

    names: tuple[str, ...]
    frames: tuple[tuple[str, int], ...]
    callers: tuple[str, ...] = ()  # names of the call ops the op was inlined from, innermost call first


# What the names met while walking a location describe: the op itself or a call op around it.
_OWN, _CALLER = "own", "caller"


class _Malformed(Exception):
    pass


class _Reader:
    """Bounds-checked access to flatbuffer tables through flatbuffers.table.Table."""

    def __init__(self, buf: bytes):
        self.buf = buf
        self.size = len(buf)

    def _need(self, pos: int, length: int, what: str) -> None:
        if pos < 0 or length < 0 or pos + length > self.size:
            raise _Malformed(f"{what} at byte {pos} (+{length}) lies outside the {self.size}-byte buffer")

    def root(self) -> Table:
        self._need(0, 4, "root offset")
        return self.table(Table(self.buf, 0).Indirect(0))

    def table(self, pos: int) -> Table:
        self._need(pos, 4, "table")
        t = Table(self.buf, pos)
        vtable = pos - t.Get(N.SOffsetTFlags, pos)
        self._need(vtable, 4, "vtable")
        vt_size = t.Get(N.VOffsetTFlags, vtable)
        if vt_size < 4 or vt_size % 2:
            raise _Malformed(f"vtable at byte {vtable} has an invalid size {vt_size}")
        self._need(vtable, vt_size, "vtable")
        self._need(pos, t.Get(N.VOffsetTFlags, vtable + 2), "table body")
        return t

    def _field(self, t: Table, slot: int, width: int) -> int:
        o = t.Offset(4 + 2 * slot)
        if o:
            self._need(t.Pos + o, width, "field")
        return o

    def uint(self, t: Table, slot: int, flags: type = N.Uint32Flags) -> int:
        o = self._field(t, slot, flags.bytewidth)
        return int(t.Get(flags, t.Pos + o)) if o else 0

    def string(self, t: Table, slot: int) -> str:
        o = self._field(t, slot, 4)
        if not o:
            return ""
        start = t.Indirect(t.Pos + o)
        self._need(start, 4, "string length")
        self._need(start + 4, t.Get(N.Uint32Flags, start), "string")
        return t.String(t.Pos + o).decode("utf-8", "replace")

    def _vector(self, t: Table, slot: int, width: int) -> tuple[int, int]:
        o = self._field(t, slot, 4)
        if not o:
            return 0, 0
        self._need(t.Indirect(t.Pos + o), 4, "vector length")
        start, length = t.Vector(o), t.VectorLen(o)
        self._need(start, length * width, "vector")
        return start, length

    def scalars(self, t: Table, slot: int, flags: type) -> list[int]:
        o = self._field(t, slot, 4)
        if not o:
            return []
        self._vector(t, slot, flags.bytewidth)
        return [int(x) for x in t.GetVectorAsNumpy(flags, o)]

    def tables(self, t: Table, slot: int) -> list[Table]:
        start, length = self._vector(t, slot, 4)
        return [self.table(t.Indirect(start + 4 * i)) for i in range(length)]

    def union(self, t: Table, slot: int) -> tuple[int, Table | None]:
        kind = self.uint(t, slot, N.Uint8Flags)
        o = self._field(t, slot + 1, 4)
        return (kind, self.table(t.Indirect(t.Pos + o))) if kind and o else (0, None)


def _location(r: _Reader, loc: Table) -> tuple:
    kind, t = r.union(loc, 0)
    if t is None or kind == _UNKNOWN:
        return (_UNKNOWN,)
    if kind == _CALLSITE:
        return (_CALLSITE, r.uint(t, 0), r.uint(t, 1))
    if kind == _FILELINE:
        return (_FILELINE, r.string(t, 0), r.uint(t, 1))
    if kind == _FUSED:
        return (_FUSED, tuple(r.scalars(t, 0, N.Uint32Flags)))
    if kind == _NAME:
        return (_NAME, r.string(t, 0), r.uint(t, 1))
    if kind == _OPAQUE:
        return (_OPAQUE, r.uint(t, 1))
    raise _Malformed(f"unknown location type {kind}")


def _refs(attr: tuple | None) -> tuple[int, ...]:
    if attr is None:
        return ()
    kind = attr[0]
    if kind == _CALLSITE:
        return attr[1:]
    if kind == _FUSED:
        return attr[1]
    if kind == _NAME:
        return (attr[2],)
    if kind == _OPAQUE:
        return (attr[1],)
    return ()


def _parse(buf: bytes) -> tuple[list[tuple | None], list[list[tuple[int, ...]]]]:
    r = _Reader(buf)
    root = r.root()
    kinds = r.scalars(root, 0, N.Uint8Flags)
    entries = r.tables(root, 1)
    if len(kinds) != len(entries):
        raise _Malformed(f"{len(kinds)} debug metadata types for {len(entries)} entries")
    conv = next((e for k, e in zip(kinds, entries) if k == _CONVERSION), None)
    if conv is None:
        raise _Malformed("no ConversionDebugMetadata entry")
    attr_kinds = r.scalars(conv, 1, N.Uint8Flags)
    attr_tables = r.tables(conv, 2)
    if len(attr_kinds) != len(attr_tables):
        raise _Malformed(f"{len(attr_kinds)} attribute types for {len(attr_tables)} attributes")
    attrs: list[tuple | None] = []
    for kind, t in zip(attr_kinds, attr_tables):
        if kind == _ATTR_LOCATION:
            attrs.append(_location(r, t))
        elif kind == _ATTR_DICT:
            attrs.append(None)
        else:
            raise _Malformed(f"unknown attribute type {kind}")
    subgraphs = [[tuple(r.scalars(op, 0, N.Uint32Flags)) for op in r.tables(sub, 0)] for sub in r.tables(conv, 0)]
    n = len(attrs)
    bad = next((i for a in attrs for i in _refs(a) if i >= n), None)
    if bad is None:
        bad = next((i for ops in subgraphs for op in ops for i in op if i >= n), None)
    if bad is not None:
        raise _Malformed(f"attribute index {bad} out of range ({n} attributes)")
    return attrs, subgraphs


def _clean_name(name: str) -> str:
    return name.split("@", 1)[0]


class DebugMetadataTable:
    """The parsed locations of one model; look ops up by subgraph and DebugMetadataIndex."""

    def __init__(self, attributes: list[tuple | None], subgraphs: list[list[tuple[int, ...]]]):
        self._attrs = attributes
        self._subgraphs = subgraphs
        self._cache: dict[tuple[int, int], OpLocation | None] = {}

    @property
    def num_subgraphs(self) -> int:
        """How many subgraphs carry debug metadata."""
        return len(self._subgraphs)

    def location(self, subgraph: int, debug_index: int) -> OpLocation | None:
        """The location of the op with this DebugMetadataIndex, or None when nothing is known.

        Args:
            subgraph: Index of the subgraph in the model.
            debug_index: The op's `Operator.DebugMetadataIndex()`.

        Returns:
            The op's names and frames; None for an index out of range or an UnknownLoc only.
        """
        key = (subgraph, debug_index)
        if key not in self._cache:
            ops = self._subgraphs[subgraph] if 0 <= subgraph < len(self._subgraphs) else []
            self._cache[key] = self._resolve(ops[debug_index]) if 0 <= debug_index < len(ops) else None
        return self._cache[key]

    def _trace(self, spine: list[int]) -> list[tuple[str, int]] | None:
        """Frames innermost first if the CallSite spine is one importer stack trace, else None."""
        attrs = self._attrs
        head, rest = attrs[spine[0]], [attrs[i] for i in spine[1:]]
        if head is None or not all(a is not None and a[0] == _FILELINE for a in rest):
            return None
        if head[0] == _FILELINE:
            outer = head
        elif head[0] == _NAME and attrs[head[2]] is not None and attrs[head[2]][0] == _FILELINE:
            outer = attrs[head[2]]
        else:
            return None
        return [(a[1], a[2]) for a in reversed([outer, *rest])]

    def _resolve(self, attr_indexes: tuple[int, ...]) -> OpLocation | None:
        attrs = self._attrs
        names: dict[str, list[str]] = {_OWN: [], _CALLER: []}
        frames: list[tuple[str, int]] = []
        visited: set[int] = set()
        stack: list[tuple[int, str]] = [(i, _OWN) for i in reversed(attr_indexes)]
        while stack:
            idx, role = stack.pop()
            attr = attrs[idx]
            if attr is None or attr[0] == _UNKNOWN:
                continue
            kind = attr[0]
            if kind == _FILELINE:
                frames.append((attr[1], attr[2]))
                continue
            if idx in visited:
                continue
            visited.add(idx)
            if kind == _NAME:
                names[role].append(attr[1])
                stack.append((attr[2], role))
            elif kind == _FUSED:
                stack.extend((i, role) for i in reversed(attr[1]))
            elif kind == _OPAQUE:
                stack.append((attr[1], role))
            elif kind == _CALLSITE:
                stack.extend(self._callsite(attr, role, names[role], frames, visited))
        own = _cleaned(names[_OWN])
        callers = tuple(n for n in _cleaned(names[_CALLER]) if n not in own)
        if not own and not callers and not frames:
            return None
        return OpLocation(own, tuple(frames), callers)

    def _callsite(
        self, attr: tuple, role: str, names: list[str], frames: list, visited: set[int]
    ) -> list[tuple[int, str]]:
        """Record one CallSite chain if it is an importer stack trace; else return its parts to visit."""
        attrs = self._attrs
        spine = [attr[1]]
        node = attr[2]
        while attrs[node] is not None and attrs[node][0] == _CALLSITE and node not in visited:
            visited.add(node)
            spine.append(attrs[node][1])
            node = attrs[node][2]
        spine.append(node)
        trace = self._trace(spine)
        if trace is not None:
            head = attrs[spine[0]]
            if head[0] == _NAME:
                names.append(head[1])
            frames.extend(trace)
            return []
        # an inlining call site: the callee is the op itself, each caller a call op around it
        return [(i, role if n == 0 else _CALLER) for n, i in reversed(list(enumerate(spine)))]


def _cleaned(names: list[str]) -> tuple[str, ...]:
    """Names without function suffixes ('@__inference...'), op type labels ('Conv2D:') and repeats."""
    out = dict.fromkeys(_clean_name(n) for n in names if n and not n.endswith(":"))
    out.pop("", None)
    return tuple(out)


def read_debug_metadata(buffer: bytes) -> DebugMetadataTable:
    """Parse the "debug_metadata" buffer of a TFLite model.

    Args:
        buffer: The bytes of the model buffer that metadata "debug_metadata" points to.

    Returns:
        A table to look op locations up in.

    Raises:
        ValueError: The bytes are not a DebugMetadata flatbuffer with conversion metadata.
    """
    data = bytes(buffer)
    try:
        attrs, subgraphs = _parse(data)
    except (_Malformed, struct.error, IndexError, OverflowError, ValueError) as exc:
        raise ValueError(
            f"not a TFLite debug_metadata flatbuffer ({len(data)} bytes): {exc}. "
            "Pass the 'debug_metadata' metadata buffer of a model converted with serialize_debug_metadata=True."
        ) from exc
    return DebugMetadataTable(attrs, subgraphs)


_LIBRARY_DIRS = frozenset({"site-packages", "dist-packages"})
_STDLIB_RE = re.compile(r"(^|/)lib(64)?/python\d+\.\d+t?/")


def _stdlib_prefixes() -> tuple[str, ...]:
    paths = sysconfig.get_paths()
    dirs = {paths.get("stdlib"), paths.get("platstdlib"), os.path.dirname(os.__file__)}
    return tuple(os.path.normpath(d) + os.sep for d in dirs if d)


_STDLIB_PREFIXES = _stdlib_prefixes()


def _is_library(filename: str, exclude_prefixes: tuple[str, ...]) -> bool:
    if filename.startswith("<frozen ") or not filename:
        return True
    path = os.path.normpath(filename)
    parts = set(path.replace("\\", "/").split("/"))
    if parts & _LIBRARY_DIRS or _STDLIB_RE.search(path.replace("\\", "/")):
        return True
    if path.startswith(_STDLIB_PREFIXES):
        return True
    return any(path.startswith(os.path.normpath(p)) for p in exclude_prefixes if p)


def user_frame(loc: OpLocation, exclude_prefixes: tuple[str, ...] = ()) -> tuple[str, int] | None:
    """The innermost frame outside site-/dist-packages, the stdlib and `exclude_prefixes`.

    Args:
        loc: A location from `DebugMetadataTable.location`.
        exclude_prefixes: Path prefixes to skip as well (e.g. a wrapper library outside site-packages).

    Returns:
        `(filename, line)` of the first user code frame, or None when every frame is library code.
    """
    return next((f for f in loc.frames if not _is_library(f[0], exclude_prefixes)), None)
