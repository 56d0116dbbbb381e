"""observe(): which nodes the XNNPACK delegate took, and how TFLite partitions the graph.

The runtime is the judge: an interpreter is built with its default delegate, and the
DELEGATE nodes it appends tell which original nodes they replaced (found by walking
producers back from a DELEGATE node's outputs until its inputs). Partitions are then
counted the way TFLite's partitioner does (greedy epochs of one kind at a time), and
the delegated epochs are checked against the DELEGATE nodes the runtime made.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from xnnfit.core.errors import RuntimeFailure
from xnnfit.core.record import Record
from xnnfit.model.specs import InputSpec, input_name
from xnnfit.runtime.interpreter import build_interpreter
from xnnfit.runtime.targets import Target, ops_details
from xnnfit.tflite.graph import ModelGraph, SubgraphInfo, read_model

# Ops TFLite flags as "might have side effect": the partitioner chains them in order.
SIDE_EFFECT_OPS = frozenset({"VAR_HANDLE", "READ_VARIABLE", "ASSIGN_VARIABLE", "CALL_ONCE"})


@dataclasses.dataclass(frozen=True)
class NodeObservation:
    """What the runtime did with one TFLite node."""

    subgraph: int
    index: int
    op: str
    input_dtypes: tuple[str, ...]
    output_dtypes: tuple[str, ...]
    input_shapes: tuple[tuple[int, ...], ...]
    output_shapes: tuple[tuple[int, ...], ...]
    delegated: bool | None  # None: not observable (node of a non-primary subgraph)
    partition: int | None


@dataclasses.dataclass(frozen=True)
class Partition(Record):
    """A run of nodes executed together: one XNNPACK delegate kernel or a group on CPU kernels."""

    index: int
    delegated: bool
    nodes: tuple[int, ...]


@dataclasses.dataclass(frozen=True)
class Delegation:
    """Ground truth for one model: per-node verdicts and the partitioning."""

    nodes: tuple[NodeObservation, ...]
    partitions: tuple[Partition, ...]
    delegate_nodes: int  # DELEGATE nodes the runtime created
    needs_xnnpack: bool  # the model fails to run without XNNPACK (custom ops it implements)
    notes: tuple[str, ...] = ()

    @property
    def primary(self) -> tuple[NodeObservation, ...]:
        """Nodes of subgraph 0."""
        return tuple(n for n in self.nodes if n.subgraph == 0)

    @property
    def delegated(self) -> int:
        """Number of nodes XNNPACK runs."""
        return sum(1 for n in self.nodes if n.delegated)

    @property
    def cpu_nodes(self) -> int:
        """Number of nodes left on the built-in CPU kernels."""
        return sum(1 for n in self.nodes if n.delegated is False)

    @property
    def delegate_applied(self) -> bool:
        """False when the delegate took no node at all."""
        return self.delegate_nodes > 0

    @property
    def delegate_partitions(self) -> int:
        """Partitions run by XNNPACK."""
        return sum(1 for p in self.partitions if p.delegated)


def _silent_members(sub: SubgraphInfo, ops_details: list[dict], num_original: int) -> list[set[int]]:
    """Per DELEGATE node, the output-less nodes (ASSIGN_VARIABLE) it took: it reads a tensor only such a node reads.

    Walking back from a DELEGATE node's outputs never reaches a node that has none.
    """
    consumers = sub.consumers()
    silent = [op for op in sub.ops if not any(t >= 0 for t in op.outputs)]
    out = []
    for d in ops_details[num_original:]:
        if d["op_name"] != "DELEGATE":
            continue
        reads = {int(t) for t in d["inputs"] if t >= 0}
        out.append(
            {
                op.index
                for op in silent
                if any(consumers.get(t) == [op.index] and not sub.tensors[t].constant and t in reads for t in op.inputs)
            }
        )
    return out


def delegate_members(
    ops_details: list[dict], num_original: int, producers: dict[int, int], sub: SubgraphInfo | None = None
) -> list[set[int]]:
    """For each DELEGATE node after the original ones, the original nodes it replaced."""
    members = []
    for d in ops_details[num_original:]:
        if d["op_name"] != "DELEGATE":
            continue
        stop = {int(t) for t in d["inputs"] if t >= 0}
        seen: set[int] = set()
        stack = [int(t) for t in d["outputs"] if t >= 0]
        visited_tensors: set[int] = set()
        while stack:
            t = stack.pop()
            if t in stop or t in visited_tensors:
                continue
            visited_tensors.add(t)
            node = producers.get(t)
            if node is None or node in seen:
                continue
            seen.add(node)
            stack.extend(int(x) for x in ops_details[node]["inputs"] if x >= 0)
        members.append(seen)
    if sub is not None:
        members = [m | extra for m, extra in zip(members, _silent_members(sub, ops_details, num_original))]
    return members


def partition(sub: SubgraphInfo, delegated: set[int]) -> list[tuple[bool, list[int]]]:
    """Greedy epochs as TFLite's partitioner makes them: (delegated?, node indices) per partition.

    Each epoch takes the kind of the first ready node in execution order, then keeps
    adding ready nodes of that kind until none is left; then the next epoch starts.
    """
    produced = {t for op in sub.ops for t in op.outputs if t >= 0}
    ready_tensors = {t.index for t in sub.tensors if t.index not in produced}
    done: set[int] = set()
    order_deps: dict[int, int] = {}
    last = None
    for op in sub.ops:
        if op.op in SIDE_EFFECT_OPS:
            if last is not None:
                order_deps[op.index] = last
            last = op.index
    epochs: list[tuple[bool, list[int]]] = []
    while len(done) < len(sub.ops):
        kind: bool | None = None
        nodes: list[int] = []
        progress = True
        while progress:
            progress = False
            for op in sub.ops:
                if op.index in done:
                    continue
                if any(t >= 0 and t not in ready_tensors for t in op.inputs):
                    continue
                dep = order_deps.get(op.index)
                if dep is not None and dep not in done:
                    continue
                is_delegated = op.index in delegated
                if kind is None:
                    kind = is_delegated
                if is_delegated != kind:
                    continue
                done.add(op.index)
                nodes.append(op.index)
                ready_tensors.update(t for t in op.outputs if t >= 0)
                progress = True
        if not nodes:  # a cycle or a missing tensor: stop rather than loop forever
            break
        epochs.append((bool(kind), nodes))
    return epochs


def node_observation(sub: SubgraphInfo, idx: int, delegated: bool | None, part: int | None) -> NodeObservation:
    """One node's record: its op, dtypes and shapes from the file, with the verdict given."""
    op = sub.ops[idx]
    tin = [sub.tensors[t] for t in op.inputs if t >= 0]
    tout = [sub.tensors[t] for t in op.outputs if t >= 0]
    return NodeObservation(
        subgraph=sub.index,
        index=idx,
        op=op.label,
        input_dtypes=tuple(t.dtype for t in tin),
        output_dtypes=tuple(t.dtype for t in tout),
        input_shapes=tuple(t.shape_signature for t in tin),
        output_shapes=tuple(t.shape_signature for t in tout),
        delegated=delegated,
        partition=part,
    )


def input_shapes(graph: ModelGraph, specs: Sequence[InputSpec]) -> dict[int, tuple[int, ...]]:
    """The pinned run shape of each input tensor of subgraph 0, by tensor index."""
    sub = graph.primary
    by_name = {s.name: tuple(s.run_shape) for s in specs}
    return {
        t: by_name[input_name(sub.tensors[t].name)] for t in sub.inputs if input_name(sub.tensors[t].name) in by_name
    }


def observe(
    content: bytes,
    graph: ModelGraph | None = None,
    *,
    specs: Sequence[InputSpec] = (),
    what: str = "the model",
    target: Target | None = None,
) -> Delegation:
    """Build the real interpreter with its default XNNPACK delegate at the specs' shapes and record what it did.

    With a `target` other than the installed runtime, the interpreter is built in that
    runtime's venv (targets.py) and only its node list comes back.
    """
    graph = graph or read_model(content, what)
    sub = graph.primary
    notes: list[str] = []
    needs_xnnpack = False
    if target is not None and not target.in_process:
        details = ops_details(target, content, input_shapes(graph, specs), what)
    else:
        interp = build_interpreter(content, specs=specs, xnnpack=True, what=what)
        if any(op.op == "CUSTOM" for op in sub.ops):
            try:
                build_interpreter(content, specs=specs, xnnpack=False, what=what)
            except RuntimeFailure:
                needs_xnnpack = True
                notes.append("the model runs only with XNNPACK: it has custom ops that only the delegate implements")
        details = interp._get_ops_details()
    return from_details(graph, details, needs_xnnpack, notes, what)


def from_details(
    graph: ModelGraph,
    details: list[dict],
    needs_xnnpack: bool = False,
    notes: Sequence[str] = (),
    what: str = "the model",
) -> Delegation:
    """The Delegation a runtime's node list describes.

    The list is `_get_ops_details()`: the original nodes, then its DELEGATE nodes.
    """
    sub = graph.primary
    notes = list(notes)
    n = len(sub.ops)
    if len(details) < n:
        raise RuntimeFailure(
            f"the runtime lists {len(details)} nodes for {what}, the file has {n}. Re-export the model."
        )
    producers = sub.producers()
    members = delegate_members(details, n, producers, sub)
    delegated = set().union(*members) if members else set()
    epochs = partition(sub, delegated)
    runtime_sets = sorted(tuple(sorted(m)) for m in members)
    predicted_sets = sorted(tuple(sorted(nodes)) for kind, nodes in epochs if kind)
    if runtime_sets != predicted_sets:
        notes.append(
            f"partition count is approximate: the runtime made {len(runtime_sets)} delegate kernels, "
            f"the partitioner model predicts {len(predicted_sets)}"
        )
    part_of = {i: p for p, (_, nodes) in enumerate(epochs) for i in nodes}
    nodes = [node_observation(sub, i, i in delegated, part_of.get(i)) for i in range(n)]
    for other in graph.subgraphs[1:]:
        nodes.extend(node_observation(other, i, None, None) for i in range(len(other.ops)))
    if len(graph.subgraphs) > 1:
        notes.append(
            f"{len(graph.subgraphs) - 1} other subgraph(s) (control-flow bodies, composite "
            "decompositions) are listed but not observed: "
            "the Python runtime API reports nodes of the primary subgraph only"
        )
    parts = tuple(Partition(i, kind, tuple(ns)) for i, (kind, ns) in enumerate(epochs))
    return Delegation(tuple(nodes), parts, len(members), needs_xnnpack, tuple(notes))


def observe_node_per_delegate(content: bytes, specs: Sequence[InputSpec] = ()) -> set[int]:
    """Delegated nodes of subgraph 0 seen with node fusion off: one DELEGATE node per op (a cross-check)."""
    graph = read_model(content)
    interp = build_interpreter(content, specs=specs, node_per_delegate=True)
    details = interp._get_ops_details()
    members = delegate_members(details, len(graph.primary.ops), graph.primary.producers(), graph.primary)
    return set().union(*members) if members else set()


def observe_nothing(graph: ModelGraph) -> Delegation:
    """Every node listed, none observed: for a model the runtime could not load."""
    nodes = tuple(node_observation(sub, i, None, None) for sub in graph.subgraphs for i in range(len(sub.ops)))
    return Delegation(nodes, (), 0, False)
