"""Explanation: KB causes as plain data (what `xnnfit explain` shows), independent of their probe builders."""

from __future__ import annotations

import dataclasses
from typing import ClassVar

from xnnfit.kb.cause import Cause
from xnnfit.record import Record


@dataclasses.dataclass(frozen=True)
class CauseDoc(Record):
    """One cause: what it is, when it holds, why XNNPACK refuses it, what to write instead, what proves it."""

    id: str
    title: str
    ops: tuple[str, ...]
    when: str
    why: str
    fix: str
    example: str
    rewrites: tuple[str, ...] = ()
    probes: tuple[str, ...] = ()  # 'rejected SELECT (fp32)', ...

    @classmethod
    def of(cls, cause: Cause) -> "CauseDoc":
        """The doc of a KB entry."""
        probes = tuple(f"{p.expect} {p.op} ({p.recipe})" for p in cause.probes)
        return cls(cause.id, cause.title, cause.ops, cause.condition.describe(), cause.why, cause.fix, cause.example, cause.rewrites, probes)


@dataclasses.dataclass(frozen=True)
class Explanation(Record):
    """explain(): one cause, or all of them."""

    RESULT: ClassVar[str] = "explain"

    causes: tuple[CauseDoc, ...]
    versions: dict[str, str] = dataclasses.field(default_factory=dict)
