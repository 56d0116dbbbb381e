"""node_verdicts(): each node's runtime verdict, its Keras layer, and the KB causes that hold for a CPU node.

A CPU node for which no cause holds is unexplained.
"""

from __future__ import annotations

import dataclasses

from xnnfit import kb
from xnnfit.core.record import Record
from xnnfit.kb import CAUSES, NodeContext
from xnnfit.kb.advice import BY_ID, Advice, advise, general
from xnnfit.kb.cause import Cause
from xnnfit.kb.versions import TARGET_CAUSES, RuntimeKnowledge
from xnnfit.observe.delegation import Delegation
from xnnfit.observe.mapping import NodeMapping
from xnnfit.tflite.graph import ModelGraph


@dataclasses.dataclass(frozen=True)
class NodeVerdict(Record):
    """What the runtime did with one TFLite node, where it came from, and why."""

    subgraph: int
    index: int
    op: str
    delegated: bool | None  # None: not observable (non-primary subgraph)
    partition: int | None
    layer: str | None  # Keras layer (or TF scope for a bare .tflite), None if unmapped
    layer_class: str | None
    source: str | None  # 'file.py:line' for Lambda/custom layers
    causes: tuple[str, ...] = ()  # KB ids; empty when delegated or unexplained
    advice: tuple[str, ...] = ()  # one advice id per cause (kb/advice.py): what to write instead, for this context
    input_dtypes: tuple[str, ...] = ()
    output_shapes: tuple[tuple[int, ...], ...] = ()

    @property
    def unexplained(self) -> bool:
        """A CPU node no KB entry explains."""
        return self.delegated is False and not self.causes


# A --runtime target's own knowledge: None for the installed runtime (every KB entry is proven on it),
# NO_TABLE for a target with no probe table (nothing is explained there), else kb.versions.RuntimeKnowledge.
NO_TABLE = "no-table"


def _context(
    graph: ModelGraph, delegation: Delegation, subgraph: int, index: int, runtime: RuntimeKnowledge | None = None
) -> NodeContext:
    sub = graph.subgraphs[subgraph]
    verdicts = {n.index: n.delegated for n in delegation.nodes if n.subgraph == subgraph}
    return NodeContext(sub, sub.ops[index], verdicts, runtime)


def _valid(cause_id: str, runtime: RuntimeKnowledge | str | None) -> bool:
    if runtime is None:
        return True  # XNN050's condition needs a target's table: it never holds here
    if runtime == NO_TABLE:
        return False
    return cause_id in TARGET_CAUSES or runtime.holds(cause_id)  # type: ignore[union-attr]


def causes_for(
    graph: ModelGraph, delegation: Delegation, subgraph: int, index: int, runtime: RuntimeKnowledge | str | None = None
) -> tuple[str, ...]:
    """KB ids whose condition holds for a node the runtime left on CPU (on a target: those its probe table proves)."""
    ctx = _context(graph, delegation, subgraph, index, runtime if isinstance(runtime, RuntimeKnowledge) else None)
    voided = (
        (lambda cid: runtime.voids(cid, ctx.sub, ctx.op))
        if isinstance(runtime, RuntimeKnowledge)
        else (lambda cid: False)
    )
    return tuple(c.id for c in CAUSES.values() if _valid(c.id, runtime) and c.applies(ctx) and not voided(c.id))


def node_verdicts(
    graph: ModelGraph,
    delegation: Delegation,
    mapping: dict[tuple[int, int], NodeMapping],
    runtime: RuntimeKnowledge | str | None = None,
) -> tuple[NodeVerdict, ...]:
    """One NodeVerdict per node of every subgraph; `runtime` is a target's knowledge (see NO_TABLE)."""
    out = []
    for n in delegation.nodes:
        m = mapping.get((n.subgraph, n.index)) or NodeMapping(None, None, None, "none")
        causes: tuple[str, ...] = ()
        advice: tuple[str, ...] = ()
        if n.delegated is False:
            ctx = _context(
                graph, delegation, n.subgraph, n.index, runtime if isinstance(runtime, RuntimeKnowledge) else None
            )
            causes = causes_for(graph, delegation, n.subgraph, n.index, runtime)
            advice = tuple(advise(c, ctx, m.class_name).id for c in causes)
        out.append(
            NodeVerdict(
                subgraph=n.subgraph,
                index=n.index,
                op=n.op,
                delegated=n.delegated,
                partition=n.partition,
                layer=m.layer,
                layer_class=m.class_name,
                source=m.source,
                causes=causes,
                advice=advice,
                input_dtypes=n.input_dtypes,
                output_shapes=n.output_shapes,
            )
        )
    return tuple(out)


UNEXPLAINED = "unexplained"  # the group of CPU nodes no KB entry explains


def by_cause(cpu: list[NodeVerdict]) -> list[tuple[str, list[NodeVerdict]]]:
    """CPU nodes grouped by cause ('unexplained' when none), most nodes first: what every report lists."""
    groups: dict[str, list[NodeVerdict]] = {}
    for n in cpu:
        for c in n.causes or (UNEXPLAINED,):
            groups.setdefault(c, []).append(n)
    return sorted(groups.items(), key=lambda kv: (-len(kv[1]), kv[0]))


def cause_advice(cid: str, nodes: list[NodeVerdict]) -> tuple[list[Advice], list[str]]:
    """The advice these nodes got for cause `cid` (the general one when none), and the fix rules it names."""
    ids = dict.fromkeys(a for n in nodes for c, a in zip(n.causes, n.advice) if c == cid) or {f"{cid}.general": None}
    advices = [BY_ID.get(a) or general(cid) for a in ids]
    return advices, sorted({r for a in advices for r in a.rules})


@dataclasses.dataclass(frozen=True)
class CauseGroup:
    """The CPU nodes of one cause, as every report lists them: the cause, its layers, the advice they got, the rules."""

    id: str  # a KB id, or UNEXPLAINED
    nodes: tuple[NodeVerdict, ...]
    layers: frozenset[str]
    cause: Cause | None = None  # None when unexplained
    advice: tuple[Advice, ...] = ()
    rules: tuple[str, ...] = ()  # the fix rules the advice names


def cause_groups(cpu: list[NodeVerdict]) -> list[CauseGroup]:
    """by_cause() with what each report shows of a group, most nodes first."""
    out = []
    for cid, nodes in by_cause(cpu):
        layers = frozenset(n.layer or "(unmapped)" for n in nodes)
        if cid == UNEXPLAINED:
            out.append(CauseGroup(cid, tuple(nodes), layers))
            continue
        advices, rules = cause_advice(cid, nodes)
        out.append(CauseGroup(cid, tuple(nodes), layers, kb.get(cid), tuple(advices), tuple(rules)))
    return out
