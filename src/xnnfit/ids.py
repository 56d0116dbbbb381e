"""Explanation: KB causes as plain data (what `xnnfit explain` shows), independent of their probe builders."""

from __future__ import annotations

import dataclasses
from typing import ClassVar

from xnnfit.core.record import Record
from xnnfit.kb import versions
from xnnfit.kb.cause import Cause


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
    runtimes: tuple[tuple[str, str], ...] = ()  # (runtime spec, what kb/versions.json says of the cause there)

    @classmethod
    def of(cls, cause: Cause) -> CauseDoc:
        """The doc of a KB entry."""
        probes = tuple(f"{p.expect} {p.op} ({p.recipe})" for p in cause.probes)
        return cls(
            cause.id,
            cause.title,
            cause.ops,
            cause.condition.describe(),
            cause.why,
            cause.fix,
            cause.example,
            cause.rewrites,
            probes,
            _on_runtimes(cause.id),
        )


def _on_runtimes(cause_id: str) -> tuple[tuple[str, str], ...]:
    """Per runtime of the table: 'holds'/'differs'/'unproven', or for the target-only causes where they apply."""
    from xnnfit.runtime.targets import default

    table = versions.load().get("runtimes", {})
    installed = table.get(default().spec, {}).get("ops", {})
    out = []
    for spec, entry in table.items():
        ops = entry.get("ops", {})
        if cause_id == "XNN050":
            refused = sum(1 for k, v in ops.items() if v == versions.CPU and installed.get(k) == versions.DELEGATED)
            out.append((spec, f"{refused} op forms the installed runtime delegates are refused"))
        elif cause_id == "XNN051":
            out.append(
                (
                    spec,
                    "applies"
                    if ops.get("graph:dynamic-tensors/fp32") == versions.CPU
                    else "never (partial delegation)",
                )
            )
        else:
            out.append((spec, entry.get("causes", {}).get(cause_id, "unproven")))
    return tuple(out)


@dataclasses.dataclass(frozen=True)
class Explanation(Record):
    """explain(): one cause, or all of them."""

    RESULT: ClassVar[str] = "explain"

    causes: tuple[CauseDoc, ...]
    versions: dict[str, str] = dataclasses.field(default_factory=dict)
