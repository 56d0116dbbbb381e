"""The knowledge base: why XNNPACK refuses a node, as data with stable ids, each proven by probes.

Entries were derived from the XNNPACK delegate source of LiteRT
(`tflite/delegates/xnnpack/xnnpack_delegate.cc`) and are checked against the installed
runtime by tests/kb: every probe model is converted and run, and an entry the runtime
contradicts fails the suite.
"""

from __future__ import annotations

from xnnfit.core.errors import XnnfitError
from xnnfit.kb import dtypes, graph, ops, params, quant
from xnnfit.kb.cause import Cause, NodeContext, Probe

_FAMILIES = (ops.CAUSES, params.CAUSES, dtypes.CAUSES, quant.CAUSES, graph.CAUSES)
_CLAIMED = frozenset(op for fam in _FAMILIES for c in fam for op in c.ops if op not in ("*", "CUSTOM"))
CAUSES: dict[str, Cause] = {c.id: c for fam in _FAMILIES for c in fam}
CAUSES[graph.other_ops_cause(_CLAIMED).id] = graph.other_ops_cause(_CLAIMED)
CAUSES = dict(sorted(CAUSES.items()))


def get(cause_id: str) -> Cause:
    """The entry with this id; XnnfitError lists valid ids."""
    key = cause_id.strip().upper()
    if key not in CAUSES:
        raise XnnfitError(f"no KB entry {cause_id!r}. Known ids: {', '.join(CAUSES)}.")
    return CAUSES[key]


__all__ = ["CAUSES", "Cause", "NodeContext", "Probe", "get"]
