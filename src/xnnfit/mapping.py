"""TFLite node -> Keras layer (name, class, nesting) and, for custom code, the Python file:line.

Evidence, strongest first: the converter's debug metadata (original TF op names and the
Python stack), the node's output tensor names (fused ops join names with ';'), the names
of its constant inputs, then its neighbours. Keras 3 opens a TF name scope per layer
call with a `_N` suffix ('dense_1' for layer 'dense'); tf_keras (Keras 2) uses the name as is.
"""

from __future__ import annotations

import dataclasses
import re

from xnnfit.layers import LayerInfo
from xnnfit.tflite.graph import ModelGraph, SubgraphInfo

_SUFFIX = re.compile(r"^(.*)_\d+$")
# When a fused node names several layers (conv + batch norm + relu), the layer whose
# class does the node's main work wins.
_PRIMARY = {
    "CONV_2D": ("Conv", "SeparableConv"),
    "DEPTHWISE_CONV_2D": ("DepthwiseConv", "SeparableConv", "Conv"),
    "TRANSPOSE_CONV": ("Conv2DTranspose", "ConvTranspose"),
    "FULLY_CONNECTED": ("Dense", "EinsumDense"),
    "BATCH_MATMUL": ("EinsumDense", "Dense", "Attention"),
}
_INFERENCE = re.compile(r"@__inference.*$")


@dataclasses.dataclass(frozen=True)
class NodeMapping:
    """Where one TFLite node comes from."""

    layer: str | None  # 'inner/dense' (Keras qualname) or a TF name scope for bare .tflite
    class_name: str | None
    source: str | None  # 'file.py:line' for Lambda/custom layers
    via: str  # 'debug-metadata', 'tensor-name', 'constant-name', 'neighbour', 'scope', 'none'


def _variants(component: str, framework: str | None) -> list[str]:
    m = _SUFFIX.match(component)
    stripped = m.group(1) if m else None
    if stripped is None:
        return [component]
    return [stripped, component] if framework == "keras3" else [component, stripped]


class LayerIndex:
    """Finds the Keras layer a TF op name belongs to."""

    def __init__(self, layers: tuple[LayerInfo, ...], framework: str | None):
        self.framework = framework
        self.by_path = {(*layer.path, layer.name): layer for layer in layers}
        self.containers = {layer.path for layer in layers}

    def find(self, op_name: str) -> LayerInfo | None:
        """The deepest layer whose name scope the op name passes through."""
        parts = [p for p in _INFERENCE.sub("", op_name).split("/") if p]
        scopes = parts[:-1] if len(parts) > 1 else parts
        context: tuple[str, ...] = ()
        best = None
        for comp in scopes:
            for cand in _variants(comp, self.framework):
                layer = self.by_path.get((*context, cand))
                if layer is not None:
                    best = layer
                    if (*context, cand) in self.containers:
                        context = (*context, cand)
                    break
        if best is None and self.by_path:
            # a constant or a name outside the model's scope: try any level for the last scopes
            for comp in reversed(scopes):
                for cand in _variants(comp, self.framework):
                    hits = [lay for key, lay in self.by_path.items() if key[-1] == cand]
                    if len(hits) == 1:
                        return hits[0]
        return best


def layer_for_scope(op_name: str, layers: tuple[LayerInfo, ...], framework: str | None) -> LayerInfo | None:
    """The Keras layer an op name belongs to, or None."""
    return LayerIndex(layers, framework).find(op_name)


def _scope_of(name: str) -> str | None:
    name = _INFERENCE.sub("", name.split(";")[0])
    parts = name.split("/")
    return "/".join(parts[:-1]) if len(parts) > 1 else None


def map_nodes(
    graph: ModelGraph,
    layers: tuple[LayerInfo, ...] = (),
    framework: str | None = None,
    debug_locations: dict[tuple[int, int], tuple[tuple[str, ...], tuple[str, int] | None]] | None = None,
) -> dict[tuple[int, int], NodeMapping]:
    """Map every node of every subgraph; keys are (subgraph, node index).

    `debug_locations` maps a node to (TF op names, first user frame) from debug metadata.
    """
    index = LayerIndex(layers, framework)
    debug_locations = debug_locations or {}
    out: dict[tuple[int, int], NodeMapping] = {}
    for sub in graph.subgraphs:
        for op in sub.ops:
            out[(sub.index, op.index)] = _direct(sub, op.index, index, debug_locations.get((sub.index, op.index)), bool(layers))
        _fill_from_neighbours(sub, out)
    return out


def _as_mapping(layer: LayerInfo, via: str, frame: tuple[str, int] | None) -> NodeMapping:
    source = None
    if layer.custom:
        source = f"{frame[0]}:{frame[1]}" if frame else layer.source
    return NodeMapping(layer.qualname, layer.class_name, source, via)


def _direct(sub: SubgraphInfo, i: int, index: LayerIndex, debug, have_layers: bool) -> NodeMapping:
    op = sub.ops[i]
    names_dbg, frame = debug if debug else ((), None)
    out_names = [n for t in op.outputs if t >= 0 for n in sub.tensors[t].name.split(";") if n]
    const_names = [n for t in op.inputs if t >= 0 and sub.tensors[t].constant for n in sub.tensors[t].name.split(";") if n]
    if have_layers:
        found: list[tuple[LayerInfo, str]] = []
        for via, names in (("debug-metadata", names_dbg), ("tensor-name", out_names), ("constant-name", const_names)):
            for name in names:
                layer = index.find(name)
                if layer is not None and all(layer is not f[0] for f in found):
                    found.append((layer, via))
            if found and via == "debug-metadata":
                break
        if not found:
            return NodeMapping(None, None, None, "none")
        prefer = _PRIMARY.get(op.op, ())
        best = next((f for f in found if any(p in f[0].class_name for p in prefer)), found[0])
        return _as_mapping(best[0], best[1], frame)
    for name in (*names_dbg, *out_names, *const_names):
        scope = _scope_of(name)
        if scope:
            src = f"{frame[0]}:{frame[1]}" if frame else None
            return NodeMapping(scope, None, src, "scope")
    return NodeMapping(None, None, None, "none")


def _fill_from_neighbours(sub: SubgraphInfo, out: dict[tuple[int, int], NodeMapping]) -> None:
    producers = sub.producers()
    consumers = sub.consumers()
    changed = True
    while changed:
        changed = False
        for op in sub.ops:
            key = (sub.index, op.index)
            if out[key].layer is not None:
                continue
            near = [producers[t] for t in op.inputs if t in producers]
            near += [c for t in op.outputs for c in consumers.get(t, [])]
            for j in near:
                m = out[(sub.index, j)]
                if m.layer is not None and m.via != "neighbour-pending":
                    out[key] = dataclasses.replace(m, via="neighbour")
                    changed = True
                    break
