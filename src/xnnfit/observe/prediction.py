"""Predicted verdicts: what XNNPACK would take, from the knowledge base alone, without building an interpreter.

For a model the installed runtime cannot load (Flex ops, unresolved custom ops, op
versions it does not know) or with `check --predict`. A node is predicted on CPU when a KB
cause holds for it; causes that look at neighbours (a DEQUANTIZE feeding a refused node)
see the predictions so far, so the verdicts are iterated to a fixpoint. Partitions come
from the same partitioner observation uses. tests/observe/test_prediction.py proves prediction
equal to the runtime, node by node, on the whole test corpus.
"""

from __future__ import annotations

import re

from xnnfit.kb import CAUSES
from xnnfit.kb.cause import NodeContext
from xnnfit.kb.versions import TARGET_CAUSES, RuntimeKnowledge
from xnnfit.observe.delegation import Delegation, Partition, node_observation, partition
from xnnfit.tflite.graph import ModelGraph
from xnnfit.tflite.schema import op_name

MAX_ROUNDS = (
    20  # verdicts settle in 2-3 rounds (a refusal reaches a neighbour's condition); the cap only guards a cycle
)
# What the runtime says when it cannot load a model (the cases prediction stands in for).
LOAD_FAILURES = (
    "unresolved custom op",
    "select tensorflow op",
    "didn't find op for builtin opcode",
    "flex",
    "op builtin_code out of range",
)


def predict(
    graph: ModelGraph,
    note: str = "predicted from the knowledge base, not observed",
    runtime: RuntimeKnowledge | None = None,
) -> Delegation:
    """The Delegation the KB predicts for subgraph 0: on the installed runtime, or with `runtime`'s probe table.

    Probe tables are kept in kb/versions.py.
    On a target, only the causes its table proves hold there are used, plus XNN050 (the ops its one-op probes refused).
    """
    sub = graph.primary
    causes = [c for c in CAUSES.values() if runtime is None or c.id in TARGET_CAUSES or runtime.holds(c.id)]
    verdict: dict[int, bool | None] = {op.index: True for op in sub.ops}
    for _ in range(MAX_ROUNDS):
        changed = False
        for op in sub.ops:
            ctx = NodeContext(sub, op, verdict, runtime)
            cpu = any(c.applies(ctx) and not (runtime is not None and runtime.voids(c.id, sub, op)) for c in causes)
            if verdict[op.index] is cpu:
                verdict[op.index] = not cpu
                changed = True
        if not changed:
            break
    delegated = {i for i, v in verdict.items() if v}
    epochs = partition(sub, delegated)
    part_of = {i: p for p, (_, nodes) in enumerate(epochs) for i in nodes}
    nodes = [node_observation(sub, i, i in delegated, part_of.get(i)) for i in range(len(sub.ops))]
    for other in graph.subgraphs[1:]:
        nodes.extend(node_observation(other, i, None, None) for i in range(len(other.ops)))
    parts = tuple(Partition(i, kind, tuple(ns)) for i, (kind, ns) in enumerate(epochs))
    return Delegation(tuple(nodes), parts, sum(1 for kind, _ in epochs if kind), False, (note,) if note else ())


def is_load_failure(text: str) -> bool:
    """True when a runtime error says the model cannot be loaded at all (prediction can still answer)."""
    low = text.lower()
    return any(k in low for k in LOAD_FAILURES)


_CODE_RANGE = re.compile(r"builtin_code out of range[^0-9]*(\d+)?", re.I)
_OP_VERSION = re.compile(r"find op for builtin opcode '(\w+)' version '(\d+)'", re.I)


def _where(nodes: list[int]) -> str:
    """'node(s) 3, 7 ' (the first few), or '' when the op is not in subgraph 0."""
    return f"node(s) {', '.join(map(str, nodes[:8]))}{' …' if len(nodes) > 8 else ''} " if nodes else ""


def load_blockers(graph: ModelGraph, error: str = "", runtime: str = "this runtime") -> list[str]:
    """One line per op (with its nodes) that keeps the runtime from loading the model, and what to do.

    `error` is the runtime's message: an op version or op code it does not know is named there.
    """
    ops = graph.primary.ops
    out = []
    code = _CODE_RANGE.search(error)
    if code:
        name = op_name(int(code.group(1))) if code.group(1) else "an op"
        out.append(
            f"{_where([o.index for o in ops if o.op == name])}{name} (builtin op code "
            f"{code.group(1)}) is newer than {runtime} knows: "
            "convert with the converter of the app's runtime (an older TensorFlow, or without the "
            "option that produced it), "
            f"or upgrade the runtime the app ships"
        )
    m = _OP_VERSION.search(error)
    if m:
        op, version = m.group(1), m.group(2)
        out.append(
            f"{_where([o.index for o in ops if o.op == op])}{op} version {version} is newer than "
            f"{runtime} knows: convert with the "
            f"converter of the app's runtime (an older TensorFlow), or upgrade the runtime the app ships"
        )
    custom: dict[str, list[int]] = {}
    for o in ops:
        if o.op == "CUSTOM":
            custom.setdefault(o.custom_code or "", []).append(o.index)
    for name, nodes in custom.items():
        if name.startswith("Flex"):
            out.append(
                f"{_where(nodes)}({name}) need TensorFlow's kernels (Flex), which {runtime} does not have: "
                f"replace the layer that produced {name[4:]} with builtin ops (xnnfit never converts with "
                "SELECT_TF_OPS)"
            )
        else:
            out.append(
                f"{_where(nodes)}(custom op {name!r}) have no kernel in {runtime}: register it with the interpreter "
                f"(the app's op resolver), or replace the layer that produced it"
            )
    return out
