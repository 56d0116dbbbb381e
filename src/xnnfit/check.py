"""check(): convert with each recipe, observe the runtime, explain and map every node.

Each recipe runs in its own child process (conversion and interpreter together), so a
converter or runtime crash costs one recipe, not the report. A .tflite source skips
conversion and never imports TensorFlow.
"""

from __future__ import annotations

import dataclasses
import os
from typing import TYPE_CHECKING, Callable

import xnnfit
from xnnfit.convert import ConvertOptions, Converted, convert_in_process
from xnnfit.delegation import Partition, observe
from xnnfit.errors import XnnfitError
from xnnfit.explain import NodeVerdict, explain
from xnnfit.isolate import run_isolated
from xnnfit.layers import LayerInfo
from xnnfit.mapping import map_nodes
from xnnfit.recipes import FP32, ConversionRecipe
from xnnfit.runtime import runtime_versions
from xnnfit.source import ModelSource
from xnnfit.tflite.debug_metadata import read_debug_metadata, user_frame
from xnnfit.tflite.graph import ModelGraph, read_model

if TYPE_CHECKING:
    from xnnfit.profile import ProfileResult

_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))


@dataclasses.dataclass(frozen=True)
class Diagnosis:
    """The check result for one recipe: every node's verdict, the partitions, and notes."""

    recipe: str
    nodes: tuple[NodeVerdict, ...] = ()
    partitions: tuple[Partition, ...] = ()
    size_bytes: int = 0
    needs_xnnpack: bool = False
    notes: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()
    error: str | None = None  # the recipe failed (conversion refused, crash, timeout)
    error_detail: str | None = dataclasses.field(default=None, repr=False)
    content: bytes | None = dataclasses.field(default=None, repr=False, compare=False)
    profile: "ProfileResult | None" = None  # with check --profile

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


@dataclasses.dataclass(frozen=True)
class CheckReport:
    """check() for one model: one Diagnosis per recipe."""

    model: str
    kind: str
    results: tuple[Diagnosis, ...]
    versions: dict[str, str] = dataclasses.field(default_factory=dict)


def debug_locations(graph: ModelGraph) -> dict[tuple[int, int], tuple[tuple[str, ...], tuple[str, int] | None]]:
    """(TF op names, first user frame) per node from the converter's debug metadata, if present."""
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
                out[(sub.index, op.index)] = (loc.names, user_frame(loc, (_PACKAGE_DIR,)))
    return out


def analyze(content: bytes, recipe: str, layers: tuple[LayerInfo, ...] = (), framework: str | None = None, *, what: str = "the model", warnings: tuple[str, ...] = ()) -> Diagnosis:
    """Observe, map and explain one .tflite in this process (no TensorFlow import)."""
    graph = read_model(content, what)
    delegation = observe(content, graph, what=what)
    mapping = map_nodes(graph, layers, framework, debug_locations(graph))
    nodes = explain(graph, delegation, mapping)
    return Diagnosis(
        recipe=recipe,
        nodes=nodes,
        partitions=delegation.partitions,
        size_bytes=len(content),
        needs_xnnpack=delegation.needs_xnnpack,
        notes=delegation.notes,
        warnings=warnings,
        content=content,
    )


def _convert_and_analyze(source: ModelSource, recipe: ConversionRecipe, options: ConvertOptions) -> Diagnosis:
    converted: Converted = convert_in_process(source, recipe, options)
    return analyze(
        converted.content,
        recipe.name,
        converted.layers,
        converted.framework,
        what=f"{source.display} ({recipe.name})",
        warnings=converted.warnings,
    )


def _profile_converted(diag: Diagnosis, converted: Converted, profile_options: dict) -> Diagnosis:
    from xnnfit.profile import profile_content

    result = profile_content(diag.content, diag.recipe, converted.inputs, diag.nodes, diag.partitions, **profile_options)
    return dataclasses.replace(diag, profile=result)


def _analyze_and_profile(converted: Converted, what: str, profile_options: dict) -> Diagnosis:
    diag = analyze(converted.content, converted.recipe, converted.layers, converted.framework, what=what, warnings=converted.warnings)
    return _profile_converted(diag, converted, profile_options)


def check(
    model: str | ModelSource,
    recipes: tuple[ConversionRecipe, ...] = (FP32,),
    options: ConvertOptions = ConvertOptions(),
    *,
    trust: bool = False,
    on_recipe: Callable[[str], None] | None = None,
    profile: dict | None = None,
) -> CheckReport:
    """Diagnose `model` under each recipe; a failing recipe is reported, not raised.

    Raises XnnfitError only for a source that cannot be used at all (missing, unreadable).
    `profile` (keyword arguments of profile_content) also times every partition and CPU node.
    """
    if profile is not None:
        return _check_with_profile(model, recipes, options, trust=trust, on_recipe=on_recipe, profile=profile)
    source = model if isinstance(model, ModelSource) else ModelSource.parse(model, trust=trust)
    versions = {"xnnfit": xnnfit.__version__, **runtime_versions()}
    results = []
    if source.is_tflite:
        content = source.read_bytes()
        read_model(content, repr(str(source.path)))  # fail fast, in this process, on a non-TFLite file
        if on_recipe:
            on_recipe("as given")
        diag = run_isolated(analyze, content, "as-given", what=f"running {source.display} in LiteRT", timeout=options.timeout)
        return CheckReport(source.display, source.kind, (diag,), versions)
    for recipe in recipes:
        if on_recipe:
            on_recipe(recipe.name)
        try:
            diag = run_isolated(
                _convert_and_analyze, source, recipe, options, what=f"converting {source.display} ({recipe.name})", timeout=options.timeout
            )
        except XnnfitError as exc:
            if _is_source_problem(exc):
                raise
            diag = Diagnosis(recipe=recipe.name, error=str(exc), error_detail=exc.detail)
        results.append(diag)
    return CheckReport(source.display, source.kind, tuple(results), versions)


def _is_source_problem(exc: XnnfitError) -> bool:
    from xnnfit.errors import InputDataError, SourceError

    return isinstance(exc, (SourceError, InputDataError))


def _check_with_profile(model, recipes, options, *, trust, on_recipe, profile) -> CheckReport:
    """check() plus profile: conversion in one child, analysis and timing in a TensorFlow-free one."""
    from xnnfit.convert import materialize

    source = model if isinstance(model, ModelSource) else ModelSource.parse(model, trust=trust)
    versions = {"xnnfit": xnnfit.__version__, **runtime_versions()}
    results = []
    for recipe in recipes if not source.is_tflite else recipes[:1]:
        name = recipe.name if not source.is_tflite else "as-given"
        if on_recipe:
            on_recipe(name)
        try:
            converted = materialize(source, recipe, options)
            if profile.get("sample") is None and profile.get("data"):
                from xnnfit.bench import sample_from

                profile = {**profile, "sample": sample_from(profile["data"], converted.inputs)}
            opts = {k: v for k, v in profile.items() if k != "data"}
            diag = run_isolated(
                _analyze_and_profile, converted, f"{source.display} ({name})", opts, what=f"profiling {source.display} ({name})", timeout=options.timeout
            )
        except XnnfitError as exc:
            if _is_source_problem(exc):
                raise
            diag = Diagnosis(recipe=name, error=str(exc), error_detail=exc.detail)
        results.append(diag)
    return CheckReport(source.display, source.kind, tuple(results), versions)
