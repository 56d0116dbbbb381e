"""A mutable view of one subgraph of a .tflite (flatbuffer object API) for rewrite rules.

Rules add constants, tensors and ops, rewire consumers, and leave dead nodes behind;
`to_bytes()` prunes dead ops, tensors and buffers and renumbers every reference
(ops, subgraph inputs/outputs, signature defs, metadata buffers), so everything not
rewritten survives unchanged in meaning.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np

from xnnfit.tflite import build, constants
from xnnfit.tflite.schema import fb, op_name, type_name
from xnnfit.tflite.writer import parse, serialize

_SIDE_EFFECTS = {"ASSIGN_VARIABLE", "CALL_ONCE", "VAR_HANDLE", "READ_VARIABLE", "WHILE", "IF", "CUSTOM"}


class Graph:
    """Subgraph `index` of a parsed model, with helpers to edit it."""

    def __init__(self, model: Any, index: int = 0):
        self.model = model
        self.index = index
        self.sub = model.subgraphs[index]
        if self.model.buffers is None:
            self.model.buffers = [fb.BufferT()]

    @classmethod
    def from_bytes(cls, content: bytes, index: int = 0) -> Graph:
        """Parse .tflite bytes."""
        return cls(parse(content), index)

    def copy(self) -> Graph:
        """An independent copy (round-trips through bytes)."""
        return Graph.from_bytes(self.to_bytes(prune=False), self.index)

    # -- reading -------------------------------------------------------------------------
    @property
    def ops(self) -> list[Any]:
        """Operators in execution order."""
        return self.sub.operators or []

    def op(self, i: int) -> str:
        """'CONV_2D' for operator i."""
        code = self.model.operatorCodes[self.ops[i].opcodeIndex]
        return op_name(max(code.builtinCode, code.deprecatedBuiltinCode))

    def tensor(self, t: int) -> Any:
        """TensorT t."""
        return self.sub.tensors[t]

    def name(self, t: int) -> str:
        """Tensor t's name as text."""
        n = self.tensor(t).name
        return n.decode("utf-8", "replace") if isinstance(n, bytes) else (n or "")

    def dtype(self, t: int) -> str:
        """'float32', 'int8', ..."""
        return type_name(self.tensor(t).type)

    def shape(self, t: int) -> tuple[int, ...]:
        """Shape with -1 for dynamic dimensions."""
        tensor = self.tensor(t)
        sig = tensor.shapeSignature
        dims = sig if sig is not None and len(sig) else tensor.shape
        return tuple(int(d) for d in dims) if dims is not None else ()

    def inputs(self, i: int) -> list[int]:
        """Input tensor ids of op i (-1 for omitted)."""
        return [int(t) for t in (self.ops[i].inputs if self.ops[i].inputs is not None else [])]

    def outputs(self, i: int) -> list[int]:
        """Output tensor ids of op i."""
        return [int(t) for t in (self.ops[i].outputs if self.ops[i].outputs is not None else [])]

    def options(self, i: int, kind: str) -> Any:
        """Op i's builtin options when they are `kind` ('GatherOptions'), else None.

        A file may attach options of another type than the op's (damaged, or written by
        another tool): the runtime then reads none and uses the op's defaults, so rules
        must too, instead of reading a field the object does not have.
        """
        options = self.ops[i].builtinOptions
        return options if isinstance(options, getattr(fb, f"{kind}T")) else None

    def quant(self, t: int) -> Any:
        """QuantizationParametersT of tensor t, or None."""
        q = self.tensor(t).quantization
        return q if q is not None and q.scale is not None and len(q.scale) else None

    def value(self, t: int) -> np.ndarray | None:
        """The contents of a constant tensor (raw stored values), None for computed tensors.

        The float32 output of a DEQUANTIZE of a float16 constant (fp16 weights) counts as
        a constant too: its value is the widened float16 data.
        """
        tensor = self.tensor(t)
        if not tensor.buffer:
            return self._widened_fp16(t)
        return constants.stored(self.model, tensor)

    def _widened_fp16(self, t: int) -> np.ndarray | None:
        if self.dtype(t) != "float32":
            return None
        p = self.producer(t)
        if p is None or self.op(p) != "DEQUANTIZE":
            return None
        (x,) = self.inputs(p)[:1]
        if self.dtype(x) != "float16" or not self.tensor(x).buffer:
            return None
        v = self.value(x)
        return None if v is None else v.astype(np.float32)

    def real_value(self, t: int) -> np.ndarray | None:
        """A constant's real value (dequantized when quantized)."""
        v = self.value(t)
        q = self.quant(t)
        if v is None or q is None or self.dtype(t).startswith("float"):
            return None if v is None else v.astype(np.float64)
        return constants.dequantized(v, q)

    def producer(self, t: int) -> int | None:
        """Index of the op writing tensor t."""
        for i in range(len(self.ops)):
            if t in self.outputs(i):
                return i
        return None

    def consumers(self, t: int) -> list[int]:
        """Indices of the ops reading tensor t."""
        return [i for i in range(len(self.ops)) if t in self.inputs(i)]

    def is_graph_output(self, t: int) -> bool:
        """True when t is an output of the subgraph."""
        return t in [int(x) for x in (self.sub.outputs if self.sub.outputs is not None else [])]

    # -- editing -------------------------------------------------------------------------
    def add_tensor(self, shape: Iterable[int], dtype: str, name: str, quant: Any = None) -> int:
        """A new computed tensor; returns its id."""
        return build.add_tensor(self.model, self.sub, shape, dtype, name, quant)

    def add_const(self, value: np.ndarray, name: str, quant: Any = None) -> int:
        """A new constant tensor holding `value` (stored as is); returns its id."""
        value = np.ascontiguousarray(value)
        return build.add_tensor(self.model, self.sub, value.shape, value.dtype.name, name, quant, value)

    def opcode_index(self, name: str) -> int:
        """The operator-code index for builtin `name`, added to the model if missing."""
        return build.opcode_index(self.model, name)

    def make_op(
        self, name: str, inputs: list[int], outputs: list[int], options: Any = None, options_type: str | None = None
    ) -> Any:
        """An OperatorT (not yet inserted)."""
        return build.make_op(self.model, name, inputs, outputs, options, options_type)

    def insert(self, position: int, ops: list[Any]) -> None:
        """Insert `ops` before the op now at `position` (execution order)."""
        self.sub.operators[position:position] = ops

    def rewire(self, old: int, new: int) -> None:
        """Make every reader of tensor `old` (ops and subgraph outputs) read `new`."""
        for op in self.ops:
            if op.inputs is not None:
                op.inputs = [new if int(t) == old else int(t) for t in op.inputs]
        if self.sub.outputs is not None:
            self.sub.outputs = [new if int(t) == old else int(t) for t in self.sub.outputs]
        self._rename_signature(old, new)

    def _rename_signature(self, old: int, new: int) -> None:
        for sig in self.model.signatureDefs or []:
            if sig.subgraphIndex != self.index:
                continue
            for tm in sig.outputs or []:
                if tm.tensorIndex == old:
                    tm.tensorIndex = new
        # keep the user-facing output name on the new tensor
        if self.is_graph_output(new) and self.name(old):
            old_name = self.name(old)
            self.tensor(new).name, self.tensor(old).name = old_name, old_name + "/replaced"

    # -- writing -------------------------------------------------------------------------
    def prune(self) -> None:
        """Drop ops whose outputs nobody reads, then unused tensors and buffers."""
        changed = True
        while changed:
            changed = False
            used = {int(t) for op in self.ops for t in (op.inputs if op.inputs is not None else [])}
            used |= {int(t) for t in (self.sub.outputs if self.sub.outputs is not None else [])}
            keep = []
            for i, op in enumerate(self.ops):
                if self.op(i) in _SIDE_EFFECTS or any(
                    int(t) in used for t in (op.outputs if op.outputs is not None else [])
                ):
                    keep.append(op)
                else:
                    changed = True
            self.sub.operators = keep
        self._renumber_tensors()
        self._renumber_buffers()

    def _renumber_tensors(self) -> None:
        sub = self.sub
        used: set[int] = set()
        for op in self.ops:
            for seq in (op.inputs, op.outputs, op.intermediates):
                used.update(int(t) for t in (seq if seq is not None else []) if t >= 0)
        used.update(int(t) for t in (sub.inputs if sub.inputs is not None else []))
        used.update(int(t) for t in (sub.outputs if sub.outputs is not None else []))
        order = sorted(used)
        remap = {old: new for new, old in enumerate(order)}
        sub.tensors = [sub.tensors[i] for i in order]
        for op in self.ops:
            op.inputs = [remap[int(t)] if t >= 0 else -1 for t in (op.inputs if op.inputs is not None else [])]
            outputs = op.outputs if op.outputs is not None else []
            op.outputs = [remap[int(t)] if t >= 0 else -1 for t in outputs]  # an omitted output (-1) stays in its place
            if op.intermediates is not None:
                op.intermediates = [remap[int(t)] for t in op.intermediates]
        sub.inputs = [remap[int(t)] for t in (sub.inputs if sub.inputs is not None else [])]
        sub.outputs = [remap[int(t)] for t in (sub.outputs if sub.outputs is not None else [])]
        for sig in self.model.signatureDefs or []:
            if sig.subgraphIndex == self.index:
                for tm in (sig.inputs or []) + (sig.outputs or []):
                    tm.tensorIndex = remap.get(tm.tensorIndex, tm.tensorIndex)

    def _renumber_buffers(self) -> None:
        model = self.model
        used = {0}
        for sub in model.subgraphs:
            used.update(int(t.buffer) for t in sub.tensors or [])
        used.update(int(m.buffer) for m in model.metadata or [])
        order = sorted(b for b in used if b < len(model.buffers))
        remap = {old: new for new, old in enumerate(order)}
        model.buffers = [model.buffers[i] for i in order]
        for sub in model.subgraphs:
            for t in sub.tensors or []:
                t.buffer = remap.get(int(t.buffer), 0)
        for m in model.metadata or []:
            m.buffer = remap[int(m.buffer)]

    def to_bytes(self, prune: bool = True) -> bytes:
        """Serialize the model (pruned unless told otherwise)."""
        if prune:
            self.prune()
        return serialize(self.model)
