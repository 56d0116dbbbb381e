"""A read-only view of a .tflite model: subgraphs, ops, tensors, metadata."""

from __future__ import annotations

import dataclasses
from typing import Any

from xnnfit.errors import SourceError
from xnnfit.tflite.schema import fb, op_name, type_name

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
        msg += f" {hint})." if hint else "; a .tflite has 'TFL3' at bytes 4-8). Pass a .tflite produced by the TFLite converter."
        raise SourceError(msg)


def _options(op: Any) -> dict[str, Any]:
    """The op's builtin options as a dict, from the first options union or, for newer ops (STABLEHLO_COMPOSITE...), the second."""
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


def _tensor(model: Any, sub: Any, i: int) -> TensorInfo:
    t = sub.Tensors(i)
    shape = tuple(int(d) for d in t.ShapeAsNumpy()) if t.ShapeLength() else ()
    sig = tuple(int(d) for d in t.ShapeSignatureAsNumpy()) if t.ShapeSignatureLength() else shape
    buf = model.Buffers(t.Buffer()) if t.Buffer() > 0 else None
    constant = buf is not None and (buf.DataLength() > 0 or buf.Offset() > 1)
    q = t.Quantization()
    n_scales = q.ScaleLength() if q is not None else 0
    zp = int(q.ZeroPoint(0)) if q is not None and q.ZeroPointLength() else None
    scale = float(q.Scale(0)) if n_scales else None
    values = None
    dtype = type_name(t.Type())
    if constant and dtype in _SMALL_INT and buf.DataLength() <= 8 * _SMALL_LIMIT:
        values = tuple(int(v) for v in buf.DataAsNumpy().view(_SMALL_INT[dtype]))
    name = t.Name()
    return TensorInfo(
        index=i,
        name=name.decode("utf-8", "replace") if name else "",
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


def read_model(data: bytes, what: str = "the model") -> ModelGraph:
    """Parse TFLite bytes into a ModelGraph; SourceError names what was wrong."""
    check_identifier(data, what)
    try:
        model = fb.Model.GetRootAs(data, 0)
        codes = []
        for i in range(model.OperatorCodesLength()):
            oc = model.OperatorCodes(i)
            custom = oc.CustomCode()
            codes.append((max(oc.BuiltinCode(), oc.DeprecatedBuiltinCode()), custom.decode() if custom else None))
        subgraphs = []
        for s in range(model.SubgraphsLength()):
            sub = model.Subgraphs(s)
            tensors = tuple(_tensor(model, sub, i) for i in range(sub.TensorsLength()))
            ops = []
            for i in range(sub.OperatorsLength()):
                op = sub.Operators(i)
                code, custom = codes[op.OpcodeIndex()]
                dbg = op.DebugMetadataIndex()
                ops.append(
                    OpInfo(
                        index=i,
                        op=op_name(code),
                        custom_code=custom,
                        inputs=tuple(int(x) for x in op.InputsAsNumpy()) if op.InputsLength() else (),
                        outputs=tuple(int(x) for x in op.OutputsAsNumpy()) if op.OutputsLength() else (),
                        options=_options(op),
                        debug_index=dbg if dbg >= 0 else None,
                    )
                )
            name = sub.Name()
            subgraphs.append(
                SubgraphInfo(
                    index=s,
                    name=name.decode() if name else f"subgraph_{s}",
                    tensors=tensors,
                    ops=tuple(ops),
                    inputs=tuple(int(x) for x in sub.InputsAsNumpy()) if sub.InputsLength() else (),
                    outputs=tuple(int(x) for x in sub.OutputsAsNumpy()) if sub.OutputsLength() else (),
                )
            )
        metadata = {}
        for i in range(model.MetadataLength()):
            md = model.Metadata(i)
            buf = model.Buffers(md.Buffer())
            metadata[md.Name().decode()] = buf.DataAsNumpy().tobytes() if buf.DataLength() else b""
        keys = tuple(
            (model.SignatureDefs(i).SignatureKey() or b"").decode() for i in range(model.SignatureDefsLength())
        )
    except SourceError:
        raise
    except Exception as exc:  # flatbuffers raises bare IndexError/struct.error on damaged files
        raise SourceError(
            f"cannot read {what}: the TFLite flatbuffer is damaged or truncated ({type(exc).__name__}: {exc}). "
            "Re-export the model."
        ) from exc
    if not subgraphs:
        raise SourceError(f"cannot read {what}: the TFLite model has no subgraph. Re-export the model.")
    return ModelGraph(tuple(subgraphs), metadata, keys, len(data))
