"""diagnose(artifact) -> Diagnosis: observe the runtime, map every node to its Keras layer, attach causes.

Runs without TensorFlow: the artifact already holds the Keras layers the conversion saw.
"""

from __future__ import annotations

import dataclasses
from typing import ClassVar

from xnnfit.core import fmt
from xnnfit.core.errors import RuntimeFailure, XnnfitError
from xnnfit.core.record import NOT_IN_DICT, PerModel, Record
from xnnfit.explain.costs import Profile
from xnnfit.explain.verdicts import NO_TABLE, NodeVerdict, node_verdicts
from xnnfit.kb import versions
from xnnfit.kb.hazards import ERROR, Finding, detect
from xnnfit.kb.versions import RuntimeKnowledge
from xnnfit.model.artifact import Artifact
from xnnfit.model.specs import InputSpec
from xnnfit.observe.delegation import Partition, observe, observe_nothing
from xnnfit.observe.mapping import map_nodes
from xnnfit.observe.prediction import is_load_failure, load_blockers, predict
from xnnfit.runtime.targets import MATRIX, Target
from xnnfit.runtime.targets import default as default_target
from xnnfit.tflite.debug_metadata import OpLocation, read_debug_metadata
from xnnfit.tflite.graph import ModelGraph, read_model


@dataclasses.dataclass(frozen=True)
class FixPreview(Record):
    """What `xnnfit fix` would change, from matching its rules without verifying them."""

    rules: tuple[tuple[str, int], ...]  # (rule id, matches) of the rules that match
    cpu_nodes_after: int  # CPU nodes left if every matching rule were kept


@dataclasses.dataclass(frozen=True)
class Diagnosis(Record):
    """One recipe of one model: every node's verdict, the partitions, and notes; or why the recipe failed."""

    recipe: str
    inputs: tuple[InputSpec, ...] = ()
    nodes: tuple[NodeVerdict, ...] = ()
    partitions: tuple[Partition, ...] = ()
    size_bytes: int = 0
    needs_xnnpack: bool = False
    notes: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()
    error: str | None = None  # the recipe failed (conversion refused, crash, timeout)
    error_detail: str | None = dataclasses.field(default=None, repr=False, compare=False, metadata=NOT_IN_DICT)
    profile: Profile | None = None  # with profile() / check --profile
    fix_preview: FixPreview | None = None  # with check(), when nodes fall back
    findings: tuple[Finding, ...] = ()  # delegated nodes XNNPACK computes wrong (kb/hazards.py)
    graph_name: str = "main"  # subgraph 0 as graph viewers name it (Model Explorer's graph id)
    predicted: str | None = None  # why the verdicts are predicted from the KB instead of observed (None: observed)
    compiled_fully_accelerated: bool | None = (
        None  # LiteRT 2's CompiledModel.is_fully_accelerated() (check only; None: not asked)
    )
    runtime: str = ""  # what the verdicts were observed on: 'pip ai-edge-litert 2.3.0 (x86_64 Linux)'
    not_loaded: str | None = None  # a --runtime target could not load the model: its reason (no verdicts then)
    load_failed: bool = False  # the installed runtime could not load the model: the verdicts are predicted

    @classmethod
    def failed(cls, recipe: str, exc: XnnfitError) -> Diagnosis:
        """The entry for a recipe that could not be diagnosed."""
        return cls(recipe=recipe, error=str(exc), error_detail=exc.detail)

    @property
    def ok(self) -> bool:
        """True when the recipe produced a diagnosis."""
        return self.error is None

    @property
    def observed(self) -> tuple[NodeVerdict, ...]:
        """Nodes the runtime reported on (the primary subgraph)."""
        return tuple(n for n in self.nodes if n.delegated is not None)

    def summary(self) -> dict[str, int]:
        """Counts for the headline and the JSON summary."""
        nodes = self.observed
        cpu = [n for n in nodes if not n.delegated]
        return {
            "nodes": len(nodes),
            "delegated": len(nodes) - len(cpu),
            "cpu_nodes": len(cpu),
            "partitions": len(self.partitions),
            "delegate_partitions": sum(1 for p in self.partitions if p.delegated),
            "unexplained": sum(1 for n in cpu if not n.causes),
        }

    @property
    def delegated_fraction(self) -> float:
        """Share of observed nodes XNNPACK runs (1.0 for an empty graph)."""
        s = self.summary()
        return s["delegated"] / s["nodes"] if s["nodes"] else 1.0

    def _extra(self) -> dict:
        return {"status": "ok" if self.ok else "error", **({"summary": self.summary()} if self.ok else {})}


def debug_locations(graph: ModelGraph) -> dict[tuple[int, int], OpLocation]:
    """Each node's location (TF op names, callers, Python stack) from the converter's debug metadata, if present."""
    buf = graph.metadata.get("debug_metadata")
    if not buf:
        return {}
    try:
        table = read_debug_metadata(buf)
    except ValueError:
        return {}
    out = {}
    for sub in graph.subgraphs:
        for op in sub.ops:
            if op.debug_index is None:
                continue
            loc = table.location(sub.index, op.debug_index)
            if loc is not None:
                out[(sub.index, op.index)] = loc
    return out


PREDICT_ASKED = "asked for (--predict): verdicts from the knowledge base, no interpreter built"


def _reason(exc: RuntimeFailure) -> str:
    """The runtime's words from a RuntimeFailure ('Didn't find op for builtin opcode ...') without xnnfit's framing."""
    return str(exc).split(": ", 1)[-1].split(". ")[0][:200]


def _not_loaded(artifact: Artifact, graph: ModelGraph, target: Target, exc: RuntimeFailure) -> Diagnosis:
    """A target runtime that cannot load the model: no verdicts, one line per blocker and what to do."""
    reason = _reason(exc)
    blockers = load_blockers(graph, str(exc), runtime=target.label)
    return Diagnosis(
        recipe=artifact.recipe,
        inputs=artifact.specs,
        size_bytes=artifact.size_bytes,
        graph_name=graph.primary_name,
        warnings=(*artifact.warnings, *blockers),
        runtime=target.label,
        not_loaded=reason,
        nodes=node_verdicts(graph, observe_nothing(graph), {}),
    )


def diagnose(artifact: Artifact, *, predict_only: bool = False, target: Target | None = None) -> Diagnosis:
    """Observe, map and explain one artifact in this process (no TensorFlow import).

    With `predict_only`, or when the runtime cannot load the model at all (Flex or
    unresolved custom ops, op versions it does not know), the verdicts are predicted from
    the knowledge base and the Diagnosis says so. With a `target` other than the installed
    runtime, the verdicts are observed in that runtime's venv and explained with its probe
    table (kb/versions.py); a model it cannot load gets no verdicts, only what blocks it.
    """
    graph = read_model(artifact.content, artifact.what)
    target = target or default_target()
    predicted, warnings = None, list(artifact.warnings)
    knowledge: RuntimeKnowledge | str | None = None
    if not target.in_process:
        knowledge = versions.knowledge(target.spec) or NO_TABLE
        if knowledge == NO_TABLE:
            warnings.append(
                f"no probe table for {target.spec} (kb/versions.json covers {', '.join(MATRIX)}): its CPU "
                "nodes are left "
                "unexplained rather than given the installed runtime's reasons; python -m "
                "xnnfit.probe_matrix --runtime "
                f"'{target.spec}' --write derives one"
            )
    load_failed = False
    if predict_only:
        delegation, predicted = predict(graph, note=""), PREDICT_ASKED
    else:
        try:
            delegation = observe(artifact.content, graph, specs=artifact.specs, what=artifact.what, target=target)
        except RuntimeFailure as exc:
            if not target.in_process:
                return _not_loaded(artifact, graph, target, exc)
            if not is_load_failure(str(exc)):
                raise
            predicted, load_failed = f"the runtime could not load this model ({_reason(exc)})", True
            delegation = predict(graph, note="")  # the Diagnosis says why it is predicted
            warnings += load_blockers(graph, str(exc))
    mapping = map_nodes(graph, artifact.layers, artifact.framework, debug_locations(graph))
    return Diagnosis(
        recipe=artifact.recipe,
        inputs=artifact.specs,
        nodes=node_verdicts(graph, delegation, mapping, knowledge),
        partitions=delegation.partitions,
        size_bytes=artifact.size_bytes,
        needs_xnnpack=delegation.needs_xnnpack,
        notes=delegation.notes,
        warnings=tuple(warnings),
        findings=detect(graph, artifact.specs),
        graph_name=graph.primary_name,
        predicted=predicted,
        load_failed=load_failed,
        runtime=target.label,
    )


def short_runtime(label: str) -> str:
    """'tflite-runtime 2.14.0' for 'pip tflite-runtime 2.14.0 (x86_64 Linux)'."""
    return label.removeprefix("pip ").split(" (")[0] or "the installed runtime"


def runtime_option(label: str) -> str:
    """' --runtime tflite-runtime==2.14.0' for a target's label ('' for the installed runtime).

    What a next step's command repeats.
    """
    if not label or label == default_target().label:
        return ""
    dist, _, version = short_runtime(label).partition(" ")
    return f" --runtime {dist}=={version}" if version else ""


@dataclasses.dataclass(frozen=True)
class VerdictChange(Record):
    """A node whose verdict differs across the runtimes a model was checked on, with each refusing runtime's reasons."""

    recipe: str
    node: int
    op: str
    layer: str | None
    delegated_on: tuple[str, ...]  # short runtime names
    cpu_on: tuple[tuple[str, tuple[str, ...]], ...]  # (short runtime name, its causes; empty: unexplained there)


def runtime_changes(diagnoses: tuple[Diagnosis, ...]) -> tuple[VerdictChange, ...]:
    """Nodes of subgraph 0 whose verdict is not the same on every runtime that loaded the recipe."""
    out = []
    for recipe in dict.fromkeys(d.recipe for d in diagnoses):
        loaded = [d for d in diagnoses if d.recipe == recipe and d.ok and not d.not_loaded]
        if len(loaded) < 2:
            continue
        by_node = [{n.index: n for n in d.observed} for d in loaded]
        for index in sorted(set().union(*by_node)):
            seen = [(short_runtime(d.runtime), nodes.get(index)) for d, nodes in zip(loaded, by_node)]
            if len({n.delegated for _, n in seen if n is not None}) < 2:
                continue
            first = next(n for _, n in seen if n is not None)
            out.append(
                VerdictChange(
                    recipe,
                    index,
                    first.op,
                    first.layer,
                    tuple(rt for rt, n in seen if n is not None and n.delegated),
                    tuple((rt, n.causes) for rt, n in seen if n is not None and not n.delegated),
                )
            )
    return tuple(out)


@dataclasses.dataclass(frozen=True)
class CheckResult(PerModel):
    """check() of one model: one Diagnosis per recipe."""

    RESULT: ClassVar[str] = "check"

    recipes: tuple[Diagnosis, ...] = ()

    def recipe(self, name: str) -> Diagnosis:
        """The diagnosis of one recipe (on the first runtime it was checked on)."""
        return next(d for d in self.recipes if d.recipe == name)

    @property
    def runtimes(self) -> tuple[str, ...]:
        """The runtimes the recipes were observed on, in order."""
        return tuple(dict.fromkeys(d.runtime for d in self.recipes if d.runtime))

    def _extra(self) -> dict:
        if len(self.runtimes) < 2:
            return {}
        return {"runtime_changes": [c.to_dict() for c in runtime_changes(self.recipes)]}


@dataclasses.dataclass(frozen=True)
class Gates(Record):
    """CI gates on a diagnosis: --fail-on-fallback, --max-partitions, --min-delegated.

    An error-level finding always fails.
    """

    fail_on_fallback: bool = False
    max_partitions: int | None = None
    min_delegated: float | None = None

    def stricter(self, other: Gates) -> Gates:
        """Both sets of budgets at once: the stricter of each (a manifest's, with the command line's on top)."""
        return Gates(
            self.fail_on_fallback or other.fail_on_fallback,
            min((g for g in (self.max_partitions, other.max_partitions) if g is not None), default=None),
            max((g for g in (self.min_delegated, other.min_delegated) if g is not None), default=None),
        )

    def failures(self, d: Diagnosis, accepted: frozenset[str] = frozenset()) -> list[str]:
        """One line per gate the diagnosis violates, with its figure.

        `accepted` ids (a manifest's `ignore`) are findings and causes the user accepts: an
        accepted hazard does not fail, and --fail-on-fallback counts only CPU nodes with a
        cause not accepted (or none).
        """
        s = d.summary()
        out = [
            f"{f.hazard} on node {f.node} ({f.op}): XNNPACK computes it wrong"
            for f in d.findings
            if f.severity == ERROR and f.hazard not in accepted
        ]
        cpu = sum(1 for n in d.observed if not n.delegated and (not n.causes or set(n.causes) - accepted))
        if self.fail_on_fallback and cpu:
            out.append(f"{cpu} node(s) on CPU kernels (--fail-on-fallback)")
        if self.max_partitions is not None and s["partitions"] > self.max_partitions:
            out.append(f"{s['partitions']} partitions > --max-partitions {self.max_partitions}")
        if d.not_loaded:
            out.append(f"{d.runtime or 'the runtime'} cannot load the model: {d.not_loaded}")
        if self.min_delegated is not None and d.delegated_fraction < self.min_delegated:
            out.append(f"{fmt.pct(d.delegated_fraction)} delegated < --min-delegated {fmt.pct(self.min_delegated)}")
        return out
