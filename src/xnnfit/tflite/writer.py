"""Writing TFLite models: cut a set of nodes out into a standalone model (for timing pieces).

Uses the flatbuffer object API and helpers that ship in ai_edge_litert; nothing is
packed by hand. The cut keeps only the buffers its tensors use when the model has a
single subgraph; with control flow it keeps every subgraph and buffer unchanged.
"""

from __future__ import annotations

import copy
import dataclasses
import struct
from collections.abc import Sequence
from typing import Any

from ai_edge_litert.tools import flatbuffer_utils

from xnnfit.tflite.graph import damaged
from xnnfit.tflite.schema import fb

_METADATA_BUFFER_FIELD = 6  # vtable offset of Metadata.buffer (field 1: 4 + 2 * 1), as the generated reader reads it


@dataclasses.dataclass(frozen=True)
class Piece:
    """A standalone model made of some nodes of a bigger one."""

    content: bytes = dataclasses.field(repr=False)
    nodes: tuple[int, ...]
    inputs: tuple[int, ...]  # original tensor indices fed to the piece, in its input order
    outputs: tuple[int, ...]  # original tensor indices it produces for the rest of the graph


def parse(content: bytes, what: str = "the model") -> Any:
    """The mutable object tree (ModelT) of a .tflite; SourceError when the flatbuffer is damaged.

    It unpacks every table, also those read_model does not read (options, quantization
    details, sparsity), so damage there shows here. Two faults the runtime tolerates are
    mended, so that cutting and rewriting need not check for them: a metadata entry
    pointing past the buffers is pointed at buffer 0, the empty one, first
    (flatbuffer_utils would fail on it with an IndexError), and intermediate tensor
    indices outside the subgraph (ignored by every op that uses no intermediates) are dropped.
    """
    try:
        model = flatbuffer_utils.read_model_from_bytearray(_without_dangling_metadata(bytearray(content)))
    except Exception as exc:  # flatbuffers raises bare IndexError/struct.error/ValueError on damaged files
        raise damaged(what, exc, len(content)) from exc
    for sub in model.subgraphs or []:
        count = len(sub.tensors or [])
        for op in sub.operators or []:
            if op.intermediates is not None and not all(0 <= t < count for t in op.intermediates):
                op.intermediates = [t for t in op.intermediates if 0 <= t < count]
    return model


def _without_dangling_metadata(data: bytearray) -> bytearray:
    model = fb.Model.GetRootAs(data, 0)
    buffers = model.BuffersLength()
    for i in range(model.MetadataLength()):
        entry = model.Metadata(i)
        if entry.Buffer() >= buffers:  # a field read as non-zero is present in the table: overwritten in place
            struct.pack_into("<I", data, entry._tab.Pos + entry._tab.Offset(_METADATA_BUFFER_FIELD), 0)
    return data


def serialize(model: Any) -> bytes:
    """Pack a ModelT into .tflite bytes."""
    return bytes(flatbuffer_utils.convert_object_to_bytearray(model))


def _constant_dequantizers(model: Any, sub: Any) -> dict[int, int]:
    """Output tensor -> op index of DEQUANTIZE/DENSIFY nodes whose input is a constant (fp16/int8 weights)."""
    out = {}
    for i, op in enumerate(sub.operators or []):
        code = model.operatorCodes[op.opcodeIndex]
        name = max(code.builtinCode, code.deprecatedBuiltinCode)
        if (
            name in (fb.BuiltinOperator.DEQUANTIZE, fb.BuiltinOperator.DENSIFY)
            and op.inputs is not None
            and len(op.inputs)
        ):
            if _is_constant(model, sub.tensors[op.inputs[0]]):
                out[int(op.outputs[0])] = i
    return out


def cut(model: Any, nodes: Sequence[int], subgraph: int = 0) -> Piece:
    """A model that runs `nodes` of `subgraph` alone, reading the tensors they get from outside.

    Weight DEQUANTIZE nodes (of constants) feeding the piece are copied into it, and their
    outputs are not exported: XNNPACK folds such a DEQUANTIZE into its consumer and cannot
    hand its value across a piece boundary.
    """
    sub = model.subgraphs[subgraph]
    requested = sorted(set(nodes))
    weights = _constant_dequantizers(model, sub)
    chosen = set(requested)
    for i in requested:
        for t in sub.operators[i].inputs if sub.operators[i].inputs is not None else []:
            if int(t) in weights:
                chosen.add(weights[int(t)])
    chosen = sorted(chosen)
    ops = [sub.operators[i] for i in chosen]
    produced = {t for op in ops for t in (op.outputs if op.outputs is not None else []) if t >= 0}
    outside_readers: set[int] = set()
    for i, op in enumerate(sub.operators):
        if i not in set(chosen):
            outside_readers.update(t for t in (op.inputs if op.inputs is not None else []) if t >= 0)
    graph_outputs = set(int(t) for t in sub.outputs) if sub.outputs is not None else set()
    inputs: list[int] = []
    for op in ops:
        for t in op.inputs if op.inputs is not None else []:
            if t < 0 or t in produced or t in inputs:
                continue
            tensor = sub.tensors[t]
            if _is_constant(model, tensor) or tensor.isVariable:
                continue
            inputs.append(int(t))
    only_weights = all(int(sub.operators[i].outputs[0]) in weights for i in requested)
    outputs = [
        int(t)
        for op in ops
        for t in (op.outputs if op.outputs is not None else [])
        if t >= 0 and (t in outside_readers or t in graph_outputs) and (only_weights or int(t) not in weights)
    ]
    if not outputs:  # a dead end (only feeds nothing): keep its last outputs so it still runs
        outputs = [int(t) for t in (ops[-1].outputs if ops[-1].outputs is not None else []) if t >= 0]
    used = sorted(
        {
            int(t)
            for op in ops
            for seq in (op.inputs, op.outputs, op.intermediates)
            if seq is not None
            for t in seq
            if t >= 0
        }
    )
    remap = {old: new for new, old in enumerate(used)}
    new_model = fb.ModelT()
    new_model.version = model.version
    new_model.operatorCodes = model.operatorCodes
    single = len(model.subgraphs) == 1
    buffers = [fb.BufferT()] if single else model.buffers
    tensors = []
    for old in used:
        tensor = copy.copy(sub.tensors[old])
        if single and tensor.buffer:
            buffers.append(model.buffers[tensor.buffer])
            tensor.buffer = len(buffers) - 1
        tensors.append(tensor)
    new_ops = []
    for op in ops:
        new = copy.copy(op)
        new.inputs = [remap[t] if t >= 0 else -1 for t in (op.inputs if op.inputs is not None else [])]
        # an omitted output (-1) stays in its place
        new.outputs = [remap[t] if t >= 0 else -1 for t in (op.outputs if op.outputs is not None else [])]
        if op.intermediates is not None:
            new.intermediates = [remap[t] for t in op.intermediates if t >= 0]
        new.debugMetadataIndex = -1
        new_ops.append(new)
    new_sub = fb.SubGraphT()
    new_sub.tensors = tensors
    new_sub.operators = new_ops
    new_sub.inputs = [remap[t] for t in inputs]
    new_sub.outputs = [remap[t] for t in outputs]
    new_sub.name = f"piece_{chosen[0]}_{chosen[-1]}"
    new_model.subgraphs = [new_sub] if single else [new_sub, *model.subgraphs[1:]]
    new_model.buffers = buffers
    new_model.description = "xnnfit piece"
    return Piece(serialize(new_model), tuple(requested), tuple(inputs), tuple(outputs))


def _is_constant(model: Any, tensor: Any) -> bool:
    if not tensor.buffer:
        return False
    buf = model.buffers[tensor.buffer]
    return (buf.data is not None and len(buf.data) > 0) or bool(getattr(buf, "offset", 0) > 1)
