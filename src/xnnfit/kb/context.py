"""NodeContext: one node with its graph and the runtime's verdicts, what KB conditions and advice patterns read."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from xnnfit.kb.tables import PARAM_INPUTS
from xnnfit.tflite.graph import OpInfo, SubgraphInfo, TensorInfo


@dataclasses.dataclass(frozen=True)
class NodeContext:
    """One node with its graph and the runtime's verdicts, as conditions see it."""

    sub: SubgraphInfo
    op: OpInfo
    delegated: Mapping[int, bool | None]  # node index -> verdict, same subgraph
    runtime: Any = None  # kb.versions.RuntimeKnowledge of a --runtime target; None: the installed runtime

    def tensor(self, position: int, outputs: bool = False) -> TensorInfo | None:
        """The input (or output) tensor at `position`, None when absent or omitted."""
        ids = self.op.outputs if outputs else self.op.inputs
        if position >= len(ids) or ids[position] < 0:
            return None
        return self.sub.tensors[ids[position]]

    @property
    def inputs(self) -> list[TensorInfo]:
        """Present input tensors."""
        return [self.sub.tensors[t] for t in self.op.inputs if t >= 0]

    def data_inputs(self) -> list[TensorInfo]:
        """Present inputs that are data, not op parameters (kb.tables.PARAM_INPUTS: shapes, axes, bounds)."""
        params = PARAM_INPUTS.get(self.op.op, ())
        return [self.sub.tensors[t] for i, t in enumerate(self.op.inputs) if t >= 0 and i not in params]

    @property
    def outputs(self) -> list[TensorInfo]:
        """Present output tensors."""
        return [self.sub.tensors[t] for t in self.op.outputs if t >= 0]

    def producer_op(self, position: int) -> OpInfo | None:
        """The op that writes input `position`, if any."""
        return self.writer(self.op.inputs[position] if position < len(self.op.inputs) else -1)

    def consumer_ops(self) -> list[OpInfo]:
        """Ops that read any output of this node."""
        outs = {t for t in self.op.outputs if t >= 0}
        return [op for op in self.sub.ops if outs.intersection(op.inputs)]

    def writer(self, tensor: int) -> OpInfo | None:
        """The op that writes tensor index `tensor` (None for inputs, constants and -1)."""
        if tensor < 0:
            return None
        return next((op for op in self.sub.ops if tensor in op.outputs), None)

    def readers(self, tensor: int) -> list[OpInfo]:
        """Ops that read tensor index `tensor`."""
        return [op for op in self.sub.ops if tensor >= 0 and tensor in op.inputs]
