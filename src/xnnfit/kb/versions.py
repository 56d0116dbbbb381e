"""Per-runtime knowledge: which KB entries hold, and which ops XNNPACK refuses, on each runtime of the matrix.

`versions.json` beside this module is derived, not written: `make kb-versions`
(python -m xnnfit.probe_matrix) runs every KB probe and every one-op table probe under each
runtime of targets.MATRIX and records what that runtime did. Explanations under
`--runtime` use the table of that runtime: a cause whose probes the runtime contradicts is
not given as a reason there, and a runtime with no table explains nothing ("unexplained")
rather than borrow the installed runtime's reasons. tests/test_probe_matrix.py
regenerates the table and fails when it changed.
"""

from __future__ import annotations

import dataclasses
import functools
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

TABLE = Path(__file__).with_name("versions.json")
HOLDS, DIFFERS, NO_LOAD = "holds", "differs", "does-not-load"  # a cause on one runtime
DELEGATED, CPU = "delegated", "cpu"  # a one-op probe on one runtime (or NO_LOAD)
QUANTIZED_DTYPES = frozenset({"int8", "uint8"})
# Causes only a target's table gives (its one-op and graph probes); never checked against holds(),
# never true on the installed runtime.
TARGET_CAUSES = frozenset({"XNN050", "XNN051"})


@dataclasses.dataclass(frozen=True)
class RuntimeKnowledge:
    """What the probes showed on one runtime: per cause id holds/differs/does-not-load, per 'OP/form' its verdict."""

    spec: str
    causes: Mapping[str, str]
    ops: Mapping[str, str]

    def holds(self, cause_id: str) -> bool:
        """True only when every probe of the cause behaved on this runtime as the cause says."""
        return self.causes.get(cause_id) == HOLDS

    def refuses(self, op: str, form: str) -> bool:
        """True when this runtime left the one-op probe of `op` in `form` on CPU.

        `op` is 'GELU', or a variant 'GELU:approximate'. A variant the table lacks is looked up as its plain op.
        """
        key = f"{op}/{form}"
        if key not in self.ops and ":" in op:
            key = f"{op.split(':')[0]}/{form}"
        return self.ops.get(key) == CPU

    def voids(self, cause_id: str, sub: Any, node: Any) -> bool:
        """True when this runtime's table shows it takes this node's variant although `cause_id` refuses it.

        The variants and the causes they void: oneop.VOIDED_CAUSES.
        """
        from xnnfit.kb.oneop import VOIDED_CAUSES, variant_of

        if cause_id not in VOIDED_CAUSES.values():
            return False
        variant = variant_of(sub, node)
        if variant is None or VOIDED_CAUSES.get((node.op, variant)) != cause_id:
            return False
        form = form_of(tuple(sub.tensors[t].dtype for t in (*node.inputs, *node.outputs) if t >= 0))
        return self.ops.get(f"{node.op}:{variant}/{form}") == DELEGATED

    def changed_ops(self, reference: RuntimeKnowledge) -> dict[str, tuple[str, str]]:
        """'OP/form' -> (reference verdict, this runtime's) where the two differ."""
        keys = sorted(set(self.ops) | set(reference.ops))
        return {
            k: (reference.ops.get(k, "?"), self.ops.get(k, "?"))
            for k in keys
            if self.ops.get(k) != reference.ops.get(k)
        }


def form_of(dtypes: tuple[str, ...]) -> str:
    """'int8' for a node with a quantized tensor, else 'fp32' (the two forms of the one-op probes)."""
    return "int8" if QUANTIZED_DTYPES.intersection(dtypes) else "fp32"


@functools.lru_cache(maxsize=1)
def load() -> dict:
    """The derived table (empty when it was never generated)."""
    try:
        return json.loads(TABLE.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def knowledge(spec: str) -> RuntimeKnowledge | None:
    """The table of runtime `spec` (a pip requirement as in targets.MATRIX), None when it has none."""
    entry = load().get("runtimes", {}).get(spec)
    if entry is None:
        return None
    return RuntimeKnowledge(spec, entry.get("causes", {}), entry.get("ops", {}))
