"""Why a quantized candidate's outputs drift: its exploding tensors, their Keras layers and the KB causes.

The tensors come measured (measure/quant_debug.py: each op's own error against the same op
in float); here each tensor whose error explodes becomes a `QuantFinding` with its cause
from kb/quant_error.py (or none: unexplained), the Keras layer and source line of the node
that makes it (the diagnosis' mapping), the measured error and the advice. The first
finding is where the error starts. The stage also names the nodes int8-repaired must keep
in float: those the findings name, and those XNNPACK refuses quantized because of their
scales (XNN034), so that the repaired model can run on XNNPACK whole.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from xnnfit.core.record import Record
from xnnfit.explain.diagnosis import diagnose
from xnnfit.kb.quant_error import CAUSES, TensorStats, causes_of, explodes
from xnnfit.model.artifact import Artifact
from xnnfit.tflite.graph import read_model

UNEXPLAINED = "unexplained"
FLOAT_ONLY_CAUSES = ("XNN034",)  # delegation causes of single int8 nodes that XNNPACK takes in float: keep them float


@dataclasses.dataclass(frozen=True)
class QuantFinding(Record):
    """One tensor a quantized candidate broke: the cause, where it is in the Keras model, how much, what to do."""

    id: str | None  # the kb.quant_error cause, None when no cause explains it (unexplained)
    tensor: str  # the tensor's name in the quantized model
    op: str
    layer: str | None  # the Keras layer that made its node (qualname), None when unknown
    layer_class: str | None
    line: str | None  # file:line of the code that made it (Lambda and custom layers), None for Keras's own layers
    error: float  # the op's own max |int8 - float| over max |float| on the eval inputs (debugger, per layer)
    channel_error: float  # the same for the median channel (0 when the tensor has too few values per channel)
    advice: str
    float_nodes: tuple[str, ...] = ()  # output tensors of the nodes int8-repaired keeps in float for it
    title: str = ""  # the cause's title


@dataclasses.dataclass(frozen=True)
class QuantAnalysis(Record):
    """A quantized candidate's findings, and the nodes XNNPACK refuses quantized that a repair keeps in float."""

    recipe: str
    findings: tuple[QuantFinding, ...]
    float_only: tuple[str, ...] = ()  # output tensors of CPU nodes with a FLOAT_ONLY_CAUSES cause
    samples: int = 0  # eval inputs the tensors were measured on


def findings_stage(artifact: Artifact, tensors: Sequence[TensorStats], samples: int = 0) -> QuantAnalysis:
    """The findings of `artifact` from its measured tensors (run it in a TensorFlow-free child: it diagnoses)."""
    diag = diagnose(artifact)
    sub = read_model(artifact.content).primary
    node_of = {sub.tensors[t].name: op.index for op in sub.ops for t in op.outputs if t >= 0}
    verdicts = {v.index: v for v in diag.nodes if v.subgraph == 0}
    found = []
    for t in tensors:
        if not explodes(t):
            continue
        verdict = verdicts.get(node_of.get(t.tensor, -1))
        where = {
            "layer": verdict.layer if verdict else None,
            "layer_class": verdict.layer_class if verdict else None,
            "line": verdict.source if verdict else None,
        }
        causes = causes_of(t)
        if not causes:
            found.append(
                QuantFinding(
                    None,
                    t.tensor,
                    t.op,
                    **where,
                    error=t.error,
                    channel_error=t.channel_error,
                    advice="no KB cause explains it: keep this op in float (int8-repaired does) and check it with "
                    "`xnnfit quant --explain-quant`",
                    float_nodes=(t.tensor,) if t.op != "QUANTIZE" else (),
                    title=UNEXPLAINED,
                )
            )
        for cause in causes:
            found.append(
                QuantFinding(
                    cause.id,
                    t.tensor,
                    t.op,
                    **where,
                    error=t.error,
                    channel_error=t.channel_error,
                    advice=cause.advise(t),
                    float_nodes=cause.float_nodes(t),
                    title=cause.title,
                )
            )
    float_only = tuple(
        sub.tensors[sub.ops[v.index].outputs[0]].name
        for v in verdicts.values()
        if v.delegated is False and any(c in FLOAT_ONLY_CAUSES for c in v.causes)
    )
    return QuantAnalysis(artifact.recipe, tuple(found), float_only, samples)


def repair_nodes(analyses: Sequence[QuantAnalysis]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(nodes to keep in float, the Keras layers they belong to) for int8-repaired; no nodes: no repair.

    A repair needs a finding whose cause keeping the op in float restores; the nodes XNNPACK refuses
    quantized join them only then.
    """
    findings = [f for a in analyses for f in a.findings if f.float_nodes and (f.id is None or CAUSES[f.id].keeps_float)]
    if not findings:
        return (), ()
    nodes = [n for f in findings for n in f.float_nodes] + [n for a in analyses for n in a.float_only]
    layers = [f.layer or f.tensor for f in findings]
    return tuple(dict.fromkeys(nodes)), tuple(dict.fromkeys(layers))
