"""Cause (a KB entry), Probe (a model that proves it) and NodeContext (what a condition sees)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any, Protocol

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


class Condition(Protocol):
    """A named predicate over a NodeContext, about nodes of `ops` (None: any op)."""

    ops: frozenset[str] | None

    def __call__(self, ctx: NodeContext) -> bool: ...

    def describe(self) -> str: ...


@dataclasses.dataclass(frozen=True)
class Probe:
    """A model the runtime must treat as `expect` for its nodes of op `op`.

    `expect` is 'delegated' (every such node on XNNPACK, this cause silent), 'rejected'
    (some such node on CPU and explained by this cause) or 'conversion-error' (xnnfit
    refuses to convert it, naming `op`).
    """

    expect: str
    op: str
    build: Callable[[], Any] = dataclasses.field(compare=False)  # -> keras.Model, or .tflite bytes
    recipe: str = "fp32"
    dynamic_batch: bool = False


@dataclasses.dataclass(frozen=True)
class Cause:
    """Why XNNPACK refused a node: one KB entry with a stable id."""

    id: str
    title: str
    condition: Condition
    why: str
    fix: str  # Keras-level "use instead": its general advice, rendered (kb/advice.py; tests/kb/test_advice.py checks)
    example: str  # what triggers it
    probes: tuple[Probe, ...]
    rewrites: tuple[str, ...] = ()  # rewrite rule ids that remove it (xnnfit fix)

    @property
    def ops(self) -> tuple[str, ...]:
        """The ops it concerns, from its condition; ('*',) for any op."""
        return tuple(sorted(self.condition.ops)) if self.condition.ops is not None else ("*",)

    def applies(self, ctx: NodeContext) -> bool:
        """True when this cause explains why the node stayed on CPU."""
        return self.condition(ctx)
