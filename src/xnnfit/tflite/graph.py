"""A read-only view of a .tflite model: subgraphs, ops, tensors, metadata."""

from __future__ import annotations

import dataclasses
import math
import re
import struct
import traceback
from typing import Any

import numpy as np

from xnnfit.core.errors import SourceError
from xnnfit.tflite.schema import fb, op_name, type_defined, type_name

TFLITE_IDENTIFIER = b"TFL3"
_SMALL_INT = {"int32": "<i4", "int64": "<i8"}
_SMALL_LIMIT = 64

_MAGIC_HINTS = {
    b"PK\x03\x04": "look like a .keras zip. Pass the .keras file as a Keras model instead",
    b"\x89HDF": "look like an HDF5 (.h5) Keras file. Pass it with the .h5 extension instead",
}


@dataclasses.dataclass(frozen=True)
class TensorInfo:
    """One tensor of a subgraph."""

    index: int
    name: str
    shape: tuple[int, ...]
    shape_signature: tuple[int, ...]  # -1 marks a dynamic dimension
    dtype: str  # 'float32', 'int8', 'bool', ...
    constant: bool  # backed by a non-empty buffer
    variable: bool
    quantized: bool  # carries quantization scales
    num_scales: int
    zero_point: int | None = None  # first zero point of a quantized tensor
    scale: float | None = None  # first scale of a quantized tensor
    values: tuple | None = None  # contents of small integer constants (shapes, axes, strides)

    @property
    def dynamic(self) -> bool:
        """True when a dimension is only known at run time."""
        return any(d < 0 for d in self.shape_signature)


@dataclasses.dataclass(frozen=True)
class OpInfo:
    """One operator (node) of a subgraph, in execution order."""

    index: int
    op: str  # 'CONV_2D', 'CUSTOM', ...
    custom_code: str | None
    inputs: tuple[int, ...]  # -1 marks an omitted optional input
    outputs: tuple[int, ...]
    options: dict[str, Any] = dataclasses.field(hash=False, compare=False)
    debug_index: int | None = None

    @property
    def label(self) -> str:
        """The op as users see it: 'CONV_2D' or 'CUSTOM(MyOp)'."""
        return f"CUSTOM({self.custom_code})" if self.op == "CUSTOM" else self.op


@dataclasses.dataclass(frozen=True)
class SubgraphInfo:
    """A subgraph: its tensors, ops, inputs and outputs."""

    index: int
    name: str
    tensors: tuple[TensorInfo, ...]
    ops: tuple[OpInfo, ...]
    inputs: tuple[int, ...]
    outputs: tuple[int, ...]

    def producers(self) -> dict[int, int]:
        """Tensor index -> index of the op that writes it."""
        return {t: op.index for op in self.ops for t in op.outputs if t >= 0}

    def consumers(self) -> dict[int, list[int]]:
        """Tensor index -> indices of the ops that read it."""
        out: dict[int, list[int]] = {}
        for op in self.ops:
            for t in op.inputs:
                if t >= 0:
                    out.setdefault(t, []).append(op.index)
        return out


@dataclasses.dataclass(frozen=True)
class ModelGraph:
    """The whole model as read from the flatbuffer."""

    subgraphs: tuple[SubgraphInfo, ...]
    metadata: dict[str, bytes] = dataclasses.field(hash=False, compare=False)
    signature_keys: tuple[str, ...] = ()
    size_bytes: int = 0

    @property
    def primary(self) -> SubgraphInfo:
        """Subgraph 0, the one the interpreter runs."""
        return self.subgraphs[0]

    @property
    def primary_name(self) -> str:
        """Subgraph 0's name as graph viewers show it: its own name, else its signature key, else 'main'."""
        return self.primary.name or (self.signature_keys[0] if self.signature_keys else "") or "main"


def check_identifier(data: bytes, what: str) -> None:
    """Raise SourceError unless `data` starts like a TFLite flatbuffer."""
    if not data:
        raise SourceError(f"cannot read {what}: the file is empty. Pass a .tflite produced by the TFLite converter.")
    if len(data) < 8 or data[4:8] != TFLITE_IDENTIFIER:
        hint = next((h for m, h in _MAGIC_HINTS.items() if data.startswith(m)), None)
        head = data[:8]
        msg = f"cannot read {what}: not a TFLite flatbuffer (first bytes {head!r}"
        msg += (
            f" {hint})."
            if hint
            else "; a .tflite has 'TFL3' at bytes 4-8). Pass a .tflite produced by the TFLite converter."
        )
        raise SourceError(msg)


def _options(op: Any) -> dict[str, Any]:
    """The op's builtin options as a dict.

    From the first options union or, for newer ops (STABLEHLO_COMPOSITE...), the second.
    """
    if op.BuiltinOptionsType() != 0 and op.BuiltinOptions() is not None:
        kind, table, creator = op.BuiltinOptionsType(), op.BuiltinOptions(), fb.BuiltinOptionsCreator
    elif op.BuiltinOptions2Type() != 0 and op.BuiltinOptions2() is not None:
        kind, table, creator = op.BuiltinOptions2Type(), op.BuiltinOptions2(), fb.BuiltinOptions2Creator
    else:
        return {}
    try:
        obj = creator(kind, table)
    except Exception:  # an options type newer than the schema
        return {}
    return {k: v for k, v in vars(obj).items() if not k.startswith("_")} if obj is not None else {}


# Bits per element of the tensor types whose constants have a fixed size (strings, resources and variants do not).
_ELEMENT_BITS = {
    "float32": 32,
    "float16": 16,
    "int32": 32,
    "uint8": 8,
    "int64": 64,
    "bool": 8,
    "int16": 16,
    "complex64": 64,
    "int8": 8,
    "float64": 64,
    "complex128": 128,
    "uint64": 64,
    "uint32": 32,
    "uint16": 16,
    "int4": 4,
    "bfloat16": 16,
    "int2": 2,
    "uint4": 4,
    "float8_e4m3fn": 8,
    "float8_e5m2": 8,
}
# The flatbuffers reader's own words for a read outside the file (struct.error, ValueError).
_PAST_THE_END = re.compile(r"unpacking \d+ bytes at offset (-?\d+)")
_BAD_OFFSET = re.compile(r"bad number (-?\d+) for type uint32")  # an offset computed below 0 or past 4 GB (TypeError)
_VECTOR_PAST_THE_END = "buffer is smaller than requested size"
_SIZE_LIMIT = 2**64  # the runtime computes a tensor's element count and byte size in size_t and refuses an overflow
_SHOWN_DIMS = 8  # dimensions of a shape quoted in an error: every real one, the start of a garbled one
_SHOWN_BYTES = 24  # bytes of a garbled name quoted around the fault: enough to recognize it, short enough for one line


class _Damaged(Exception):
    """A structural fault found while reading: the text after "the TFLite flatbuffer is damaged: "."""


def _lenient(raw: bytes | None) -> str:
    """A name the runtime's Python API never reads (op, subgraph, metadata, signature) as text, bad bytes replaced."""
    return raw.decode("utf-8", "replace") if raw else ""


def _text(raw: bytes | None, whose: str) -> str:
    """A tensor name as text; _Damaged when it is not UTF-8 (the runtime's Python API fails on every listing then)."""
    if not raw:
        return ""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        start = max(0, exc.start - _SHOWN_BYTES // 2)
        shown = raw[start : start + _SHOWN_BYTES]
        raise _Damaged(
            f"{whose} is not UTF-8 text "
            f"(byte {exc.start} is {raw[exc.start : exc.start + 1]!r} in {'...' * (start > 0)}{shown!r})"
        ) from None


def _index(value: int, count: int, where: str, noun: str, *, optional: bool = False) -> int:
    """`value` when it indexes one of `count` items (or is -1, an omitted optional input), else _Damaged."""
    if 0 <= value < count or (optional and value == -1):
        return value
    if value < 0:
        raise _Damaged(f"{where} is {noun} {value}, a negative index")
    raise _Damaged(f"{where} is {noun} {value}, but there are only {count}")


def _buffer_bytes(buf: Any, size: int) -> int:
    """Bytes of a buffer's data, inline or at an offset in the file (models over 2 GB); _Damaged past the end."""
    if buf.Offset() > 1:
        if buf.Offset() + buf.Size() > size:
            raise _Damaged(
                f"a buffer's data at bytes {buf.Offset()}-{buf.Offset() + buf.Size()} "
                f"lies past the end of the {size}-byte file"
            )
        return buf.Size()
    return buf.DataLength()


def _tensor(model: Any, sub: Any, s: int, i: int, data: bytes) -> TensorInfo:
    t = sub.Tensors(i)
    name = _text(t.Name(), f"the name of tensor {i} of subgraph {s}")
    shape = tuple(int(d) for d in t.ShapeAsNumpy()) if t.ShapeLength() else ()
    sig = tuple(int(d) for d in t.ShapeSignatureAsNumpy()) if t.ShapeSignatureLength() else shape
    index = _index(t.Buffer(), model.BuffersLength(), f"the data of tensor {i} ({name!r}) of subgraph {s}", "buffer")
    buf = model.Buffers(index) if index > 0 else None
    nbytes = _buffer_bytes(buf, len(data)) if buf is not None else 0
    constant = buf is not None and (nbytes > 0 or buf.Offset() > 1)
    if any(d < 0 for d in shape):  # the runtime refuses it too ('invalidly specified in schema')
        raise _Damaged(
            f"tensor {i} ({name!r}) of subgraph {s} has shape {_shown(shape)}, with a negative dimension "
            "(a dynamic one is 1 there and -1 in the shape signature)"
        )
    if not type_defined(t.Type()):
        raise _Damaged(
            f"tensor {i} ({name!r}) of subgraph {s} has type code {t.Type()}, which the TFLite schema does not define"
        )
    dtype = type_name(t.Type())
    if _overflows(shape, dtype):
        raise _Damaged(
            f"tensor {i} ({name!r}) of subgraph {s} has shape {_shown(shape)} of {dtype}: "
            "its size in bytes does not fit in 64 bits"
        )
    if constant:
        _check_constant_size(name, s, i, shape, dtype, nbytes, sparse=t.Sparsity() is not None)
    q = t.Quantization()
    # whole vectors, not just their first items: a damaged length shows here, in the file's reader, not in a later stage
    scales = q.ScaleAsNumpy() if q is not None and q.ScaleLength() else ()
    zero_points = q.ZeroPointAsNumpy() if q is not None and q.ZeroPointLength() else ()
    n_scales = len(scales)
    if (
        n_scales and q.DetailsType() == 0
    ):  # affine quantization, checked as the runtime does (custom details are its own)
        _check_quantization(name, s, i, shape, q.QuantizedDimension(), n_scales, len(zero_points))
    zp = int(zero_points[0]) if len(zero_points) else None
    scale = float(scales[0]) if n_scales else None
    values = None
    if constant and dtype in _SMALL_INT and nbytes <= 8 * _SMALL_LIMIT:
        raw = data[buf.Offset() : buf.Offset() + nbytes] if buf.Offset() > 1 else buf.DataAsNumpy().tobytes()
        # a longer buffer is allowed: the runtime reads as many elements as the shape has
        values = tuple(int(v) for v in np.frombuffer(raw, dtype=_SMALL_INT[dtype], count=math.prod(shape)))
    return TensorInfo(
        index=i,
        name=name,
        shape=shape,
        shape_signature=sig,
        dtype=dtype,
        constant=constant,
        variable=bool(t.IsVariable()),
        quantized=n_scales > 0,
        num_scales=n_scales,
        zero_point=zp,
        scale=scale,
        values=values,
    )


def _check_quantization(
    name: str, s: int, i: int, shape: tuple[int, ...], axis: int, scales: int, zero_points: int
) -> None:
    """_Damaged when the runtime would refuse the tensor's quantization ('invalid quantization parameters')."""
    where = f"tensor {i} ({name!r}) of subgraph {s}"
    if axis < 0 or (shape and axis >= len(shape)):
        raise _Damaged(f"{where} is quantized along dimension {axis}, but its shape {_shown(shape)} has {len(shape)}")
    if shape and scales not in (1, shape[axis]):
        raise _Damaged(
            f"{where} has {scales} quantization scales: "
            f"1 (per tensor) or {shape[axis]} (per channel of dimension {axis}) expected"
        )
    if zero_points != scales:
        raise _Damaged(f"{where} has {zero_points} quantization zero points for {scales} scales")


def _overflows(shape: tuple[int, ...], dtype: str) -> bool:
    """Whether the runtime's BytesRequired overflows: it multiplies the dimensions, then the item size, in 64 bits."""
    bits = _ELEMENT_BITS.get(dtype)
    if bits is None:  # strings and resources are sized when written, not from the shape
        return False
    count = 1
    for d in shape:
        count *= d
        if count >= _SIZE_LIMIT:
            return True
    return count * max(1, bits // 8) >= _SIZE_LIMIT


def _shown(shape: tuple[int, ...]) -> str:
    """A shape for an error line: a damaged one can have hundreds of dimensions."""
    return (
        str(list(shape))
        if len(shape) <= _SHOWN_DIMS
        else f"[{', '.join(map(str, shape[:_SHOWN_DIMS]))}, ... ({len(shape)} dimensions)]"
    )


def _check_constant_size(
    name: str, s: int, i: int, shape: tuple[int, ...], dtype: str, nbytes: int, sparse: bool
) -> None:
    """_Damaged when a constant's data is shorter than its shape and type need (the runtime refuses it too)."""
    bits = _ELEMENT_BITS.get(dtype)
    if bits is None or sparse:  # strings and resources have no fixed size; sparse data is smaller than its dense shape
        return
    needed = (math.prod(shape) * bits + 7) // 8
    if nbytes < needed:
        raise _Damaged(
            f"constant tensor {i} ({name!r}) of subgraph {s} holds {nbytes} bytes, "
            f"but its shape {_shown(shape)} of {dtype} needs {needed}"
        )


def damaged(what: str, exc: Exception, size: int) -> SourceError:
    """The one-line error for a `size`-byte flatbuffer the reader failed on with `exc` (traceback kept for --debug)."""
    text = " ".join(str(exc).split())
    outside = _PAST_THE_END.search(text) if isinstance(exc, struct.error) else None
    outside = outside or (_BAD_OFFSET.match(text) if isinstance(exc, TypeError) else None)
    if outside:
        at = int(outside.group(1))
        plain = f"an offset in it points to byte {at}, outside its {size} bytes"
    elif text == _VECTOR_PAST_THE_END:
        plain = f"a vector in it runs past the end of its {size} bytes"
    else:
        plain = f"{type(exc).__name__}: {text}"
    return SourceError(
        f"cannot read {what}: the TFLite flatbuffer is damaged or truncated ({plain}). Re-export the model.",
        detail=traceback.format_exc(),
    )


def read_model(data: bytes, what: str = "the model") -> ModelGraph:
    """Parse TFLite bytes into a ModelGraph; SourceError names what was wrong.

    The indices the runtime checks (op codes, op and subgraph tensors, tensor buffers)
    must be in range, tensor names UTF-8 and constants as long as their shapes need:
    what the runtime refuses, or its Python API fails on, is refused here with the place
    of the fault. What the runtime tolerates (an unreadable signature or metadata entry)
    is read as far as it goes.
    """
    check_identifier(data, what)
    try:
        graph = _read(data)
    except _Damaged as exc:
        raise SourceError(
            f"cannot read {what}: the TFLite flatbuffer is damaged: {exc}. Re-export the model."
        ) from None
    except Exception as exc:  # flatbuffers raises bare IndexError/struct.error on damaged files
        raise damaged(what, exc, len(data)) from exc
    if not graph.subgraphs:
        raise SourceError(f"cannot read {what}: the TFLite model has no subgraph. Re-export the model.")
    return graph


def _read(data: bytes) -> ModelGraph:
    model = fb.Model.GetRootAs(data, 0)
    codes = []
    for i in range(model.OperatorCodesLength()):
        oc = model.OperatorCodes(i)
        codes.append((max(oc.BuiltinCode(), oc.DeprecatedBuiltinCode()), _lenient(oc.CustomCode()) or None))
    subgraphs = []
    for s in range(model.SubgraphsLength()):
        sub = model.Subgraphs(s)
        count = sub.TensorsLength()
        tensors = tuple(_tensor(model, sub, s, i, data) for i in range(count))
        ops = []
        for i in range(sub.OperatorsLength()):
            op = sub.Operators(i)
            code, custom = codes[
                _index(op.OpcodeIndex(), len(codes), f"the kind of op {i} of subgraph {s}", "operator code")
            ]
            inputs = tuple(int(x) for x in op.InputsAsNumpy()) if op.InputsLength() else ()
            outputs = tuple(int(x) for x in op.OutputsAsNumpy()) if op.OutputsLength() else ()
            for side, seq in (("input", inputs), ("output", outputs)):
                for k, t in enumerate(seq):
                    _index(t, count, f"{side} {k} of op {i} ({op_name(code)}) of subgraph {s}", "tensor", optional=True)
            dbg = op.DebugMetadataIndex()
            ops.append(
                OpInfo(
                    index=i,
                    op=op_name(code),
                    custom_code=custom,
                    inputs=inputs,
                    outputs=outputs,
                    options=_options(op),
                    debug_index=dbg if dbg >= 0 else None,
                )
            )
        inputs = tuple(int(x) for x in sub.InputsAsNumpy()) if sub.InputsLength() else ()
        outputs = tuple(int(x) for x in sub.OutputsAsNumpy()) if sub.OutputsLength() else ()
        for side, seq in (("input", inputs), ("output", outputs)):
            for k, t in enumerate(seq):
                _index(t, count, f"{side} {k} of subgraph {s}", "tensor")
        subgraphs.append(
            SubgraphInfo(
                index=s,
                name=_lenient(sub.Name()) or f"subgraph_{s}",
                tensors=tensors,
                ops=tuple(ops),
                inputs=inputs,
                outputs=outputs,
            )
        )
    metadata = {}
    for i in range(model.MetadataLength()):
        md = model.Metadata(i)
        if md.Buffer() >= model.BuffersLength():  # the runtime ignores an entry without data, and so does xnnfit
            continue
        buf = model.Buffers(md.Buffer())
        metadata[_lenient(md.Name())] = buf.DataAsNumpy().tobytes() if buf.DataLength() else b""
    keys = tuple(_lenient(model.SignatureDefs(i).SignatureKey()) for i in range(model.SignatureDefsLength()))
    return ModelGraph(tuple(subgraphs), metadata, keys, len(data))
