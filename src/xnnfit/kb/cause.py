"""Cause (a KB entry), Probe (a model that proves it) and Condition (when it holds)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, Protocol

from xnnfit.kb import advice
from xnnfit.kb.context import NodeContext


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
    example: str  # what triggers it
    probes: tuple[Probe, ...]
    rewrites: tuple[str, ...] = ()  # rewrite rule ids that remove it (xnnfit fix)

    @property
    def fix(self) -> str:
        """Keras-level "use instead": the cause's general advice (`<id>.general` in kb/advice), rendered."""
        return advice.general(self.id).render()

    @property
    def ops(self) -> tuple[str, ...]:
        """The ops it concerns, from its condition; ('*',) for any op."""
        return tuple(sorted(self.condition.ops)) if self.condition.ops is not None else ("*",)

    def applies(self, ctx: NodeContext) -> bool:
        """True when this cause explains why the node stayed on CPU."""
        return self.condition(ctx)


__all__ = ["Cause", "Condition", "NodeContext", "Probe"]  # NodeContext: where importers found it before
