"""TFLite node -> the Keras layer whose call created it (name, class, nesting) and the file:line of that call.

Evidence, strongest first; the first that names a layer decides:

1. 'debug-metadata': the converter's record of the TF ops behind the node (a fused node has
   several), else the call ops it was inlined from, read together with the Python stack: the
   innermost frame in some layer class's `call` says which class made the op, and whether
   directly or through a sublayer; the names pick the instance.
2. 'call-stack': the stack alone, when no name resolves.
3. 'tensor-name': the node's output tensor names (fused ops join names with ';').
4. 'constant-name': the names of its constant inputs.
5. 'model-output': the node makes a model output (behind converter-inserted (DE)QUANTIZE ops),
   and the Keras model says which layer makes it. Quantized models keep no debug metadata and
   their output tensors are renamed 'Identity', so this is often all that is known there.
6. 'neighbour': a producer's or consumer's layer, within what 2 and 5 allow. A guess, said so.

Keras 3 opens a TF name scope per layer call with a `_N` suffix ('dense_1' for layer 'dense');
tf_keras (Keras 2) uses the name as is. The model's own scope comes first
('bert_backbone_1/strided_slice'): an op whose name passes through no layer's scope was made in
the model's own graph or call, and maps to the model itself (`LayerInfo.top`).
"""

from __future__ import annotations

import dataclasses
import functools
import os
import re
from collections.abc import Callable

from xnnfit.model.keras import LayerIndex, LayerInfo, library_root
from xnnfit.tflite.debug_metadata import OpLocation, user_frame
from xnnfit.tflite.graph import ModelGraph, OpInfo, SubgraphInfo

_INFERENCE = re.compile(r"@__inference.*$")
_TRAILING_COUNTER = re.compile(r"[\d_]+$")
# When a fused node names several layers (conv + batch norm + relu), the layer whose
# class does the node's main work wins.
_PRIMARY = {
    "CONV_2D": ("Conv", "SeparableConv"),
    "DEPTHWISE_CONV_2D": ("DepthwiseConv", "SeparableConv", "Conv"),
    "TRANSPOSE_CONV": ("Conv2DTranspose", "ConvTranspose"),
    "FULLY_CONNECTED": ("Dense", "EinsumDense"),
    "BATCH_MATMUL": ("EinsumDense", "Dense", "Attention"),
}
# Next, the name whose TF op became the node: its last component without counters, lower case,
# starts with the node's own op name ('Reshape_11' for RESHAPE) or with one of these.
_TF_OPS = {
    "FULLY_CONNECTED": ("matmul", "tensordot", "einsum"),
    "BATCH_MATMUL": ("matmul", "einsum"),
    "CONV_2D": ("conv",),
    "DEPTHWISE_CONV_2D": ("depthwise",),
    "TRANSPOSE_CONV": ("conv",),
    "RESHAPE": ("expanddims", "squeeze"),
    "LOGISTIC": ("sigmoid",),
    "PACK": ("stack",),
}
# Ops the converter inserts: they carry no names of their own and stand between a layer's
# op and a model output. A DEQUANTIZE exists for the float op it feeds, so its consumer is
# the better neighbour; any other op is guessed from its producers first.
_PASS_THROUGH = frozenset({"QUANTIZE", "DEQUANTIZE"})
_CONSUMER_FIRST = frozenset({"DEQUANTIZE"})
# Keras's Layer.__call__ (Keras 3, tf_keras, Keras 2.13+, older Keras 2): a frame there, inside
# the frame of some layer's call, means a sublayer that call invoked made the op.
_LAYER_CALL_FILES = tuple(
    os.sep + os.path.join(*p)
    for p in (
        ("keras", "src", "layers", "layer.py"),
        ("tf_keras", "src", "engine", "base_layer.py"),
        ("keras", "src", "engine", "base_layer.py"),
        ("keras", "engine", "base_layer.py"),
    )
)
# xnnfit's own frames (the traced function in convert.py) are neither user nor library code.
_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))

LegacyLocation = tuple[tuple[str, ...], tuple[str, int] | None]  # (TF op names, first user frame)


@dataclasses.dataclass(frozen=True)
class NodeMapping:
    """Where one TFLite node comes from."""

    layer: (
        str | None
    )  # 'inner/dense' (Keras qualname), the model's name for its own ops, or a TF name scope for bare .tflite
    class_name: str | None
    source: str | None  # 'file.py:line' of the user or library code that made the op (None for Keras's own layers)
    via: str  # 'debug-metadata', 'call-stack', 'tensor-name', 'constant-name', 'model-output', 'neighbour', 'scope',
    # 'none'


@dataclasses.dataclass(frozen=True)
class _Loc:
    """One node's debug metadata, as the mapping uses it."""

    names: tuple[str, ...] = ()
    callers: tuple[str, ...] = ()
    frames: tuple[tuple[str, int], ...] = ()  # innermost first, only those inside the model's call
    user: tuple[str, int] | None = None  # the innermost frame of user code


@dataclasses.dataclass(frozen=True)
class _Owner:
    """What the stack says: the op was made in the call of one of `layers` (`direct`) or of a sublayer of one."""

    layers: tuple[LayerInfo, ...]
    direct: bool


@dataclasses.dataclass(frozen=True)
class _Found:
    """Evidence for one node: it belongs to one of `layers` itself (`own`), or lies somewhere inside one."""

    layers: tuple[LayerInfo, ...]
    via: str
    own: bool

    @property
    def exact(self) -> bool:
        """True when the evidence names exactly one layer as the op's own."""
        return self.own and len(self.layers) == 1


@functools.lru_cache(maxsize=4096)
def _real(path: str) -> str:
    return os.path.realpath(path)


class _Spans:
    """Finds the layers whose class's `call` method holds a frame."""

    def __init__(self, layers: tuple[LayerInfo, ...]):
        self._by_file: dict[str, list[tuple[int, int, LayerInfo]]] = {}
        for layer in layers:
            if layer.call_span:
                file, first, last = layer.call_span
                self._by_file.setdefault(file, []).append((first, last, layer))

    def owners(self, frame: tuple[str, int]) -> tuple[LayerInfo, ...]:
        """Layers whose call's lines hold the frame."""
        file, line = frame
        spans = self._by_file.get(_real(file), ())
        return tuple(layer for first, last, layer in spans if first <= line <= last)

    def owner(self, frames: tuple[tuple[str, int], ...]) -> _Owner | None:
        """The innermost frame in a layer's call, and whether a Layer.__call__ lies inside it."""
        through_sublayer = False
        for frame in frames:
            layers = self.owners(frame)
            if layers:
                return _Owner(layers, direct=not through_sublayer)
            through_sublayer = through_sublayer or _is_layer_call(frame[0])
        return None


def _is_layer_call(file: str) -> bool:
    return os.path.normpath(file).endswith(_LAYER_CALL_FILES)


def _within(layer: LayerInfo, ancestor: LayerInfo) -> bool:
    """True when `layer` is `ancestor` or nested inside it."""
    if ancestor.top:
        return True
    key = (*ancestor.path, ancestor.name)
    return (*layer.path, layer.name)[: len(key)] == key


def _as_loc(raw: OpLocation | LegacyLocation | None) -> _Loc:
    if raw is None:
        return _Loc()
    if isinstance(raw, OpLocation):
        frames = _inside_model_call(raw.frames)
        return _Loc(raw.names, raw.callers, frames, user_frame(OpLocation((), frames), (_PACKAGE_DIR,)))
    names, frame = raw  # (names, first user frame): no stack to read, the frame serves custom layers only
    return _Loc(tuple(names), user=frame)


def _inside_model_call(frames: tuple[tuple[str, int], ...]) -> tuple[tuple[str, int], ...]:
    """The frames inside the outermost Layer.__call__ (the model's): the rest is the caller's, not the model's."""
    last = max((i for i, f in enumerate(frames) if _is_layer_call(f[0])), default=len(frames))
    return frames[:last]


def map_nodes(
    graph: ModelGraph,
    layers: tuple[LayerInfo, ...] = (),
    framework: str | None = None,
    debug_locations: dict[tuple[int, int], OpLocation | LegacyLocation] | None = None,
) -> dict[tuple[int, int], NodeMapping]:
    """Map every node of every subgraph; keys are (subgraph, node index).

    Args:
        graph: The model.
        layers: The Keras layers the conversion saw (`describe_layers`); none for a bare .tflite.
        framework: 'keras3' or 'tf_keras': how layer names became TF name scopes.
        debug_locations: Per node, its `OpLocation` from the debug metadata (or, as older
            callers pass it, a tuple of its TF op names and first user frame).

    Returns:
        One NodeMapping per node.
    """
    debug_locations = debug_locations or {}
    locs = {key: _as_loc(raw) for key, raw in debug_locations.items()}
    if not layers:
        return {
            (sub.index, op.index): _scope_mapping(sub, op, locs.get((sub.index, op.index), _Loc()))
            for sub in graph.subgraphs
            for op in sub.ops
        }
    mapper = _Mapper(layers, framework)
    out: dict[tuple[int, int], NodeMapping] = {}
    for sub in graph.subgraphs:
        sub_locs = {i: loc for (s, i), loc in locs.items() if s == sub.index}
        out.update({(sub.index, i): m for i, m in mapper.map_subgraph(sub, sub_locs).items()})
    return out


class _Mapper:
    """Maps the nodes of one model's subgraphs to its layers."""

    def __init__(self, layers: tuple[LayerInfo, ...], framework: str | None):
        self.index = LayerIndex(layers, framework)
        self.spans = _Spans(layers)
        files = [layer.source.rsplit(":", 1)[0] for layer in layers if layer.library and layer.source]
        self.roots = tuple(dict.fromkeys(_real(library_root(f)) for f in files))  # where library frames lie

    def map_subgraph(self, sub: SubgraphInfo, locs: dict[int, _Loc]) -> dict[int, NodeMapping]:
        """Every node of one subgraph."""
        found = {op.index: self._evidence(sub, op, locs.get(op.index, _Loc())) for op in sub.ops}
        for i, evidence in self._output_evidence(sub).items():
            found[i] = found[i] or evidence
        layers = _settle(sub, found, self.index.enclosing)
        out = {}
        for op in sub.ops:
            layer, via = layers.get(op.index, (None, "none"))
            source = self._source(layer, locs.get(op.index, _Loc())) if layer else None
            out[op.index] = NodeMapping(
                layer.qualname if layer else None, layer.class_name if layer else None, source, via
            )
        return out

    def _evidence(self, sub: SubgraphInfo, op: OpInfo, loc: _Loc) -> _Found | None:
        owner = self.spans.owner(loc.frames)
        outputs, constants = _tensor_names(sub, op)
        for via, names in (
            ("debug-metadata", loc.names),
            ("debug-metadata", loc.callers),
            ("tensor-name", outputs),
            ("constant-name", constants),
        ):
            layer = self._pick(op.op, names, owner)
            if layer is not None:
                return _Found((layer,), via, own=True)
        return _Found(owner.layers, "call-stack", own=owner.direct) if owner else None

    def _pick(self, op: str, names, owner: _Owner | None) -> LayerInfo | None:
        """The layer the names say made the op, narrowed by what the stack says."""
        cands: list[tuple[LayerInfo, str]] = []
        for name in names:
            layer = self.index.scoped(name)
            if layer is not None and all(layer is not c[0] for c in cands):
                cands.append((layer, name))
        if owner is not None:
            cands = _consistent(cands, owner) or cands
        return _best(op, cands)[0] if cands else None

    def _output_evidence(self, sub: SubgraphInfo) -> dict[int, _Found]:
        """Nodes that make a model output, and the layer that makes it (the primary subgraph only)."""
        top = self.index.top
        if sub.index != 0 or top is None or len(top.outputs) != len(sub.outputs):
            return {}
        producers = sub.producers()
        out: dict[int, _Found] = {}
        for tensor, qualname in zip(sub.outputs, top.outputs):
            layer = self.index.by_qualname.get(qualname)
            i = producers.get(tensor)
            while layer is not None and i is not None and i not in out:
                out[i] = _Found((layer,), "model-output", own=False)
                op = sub.ops[i]
                i = producers.get(op.inputs[0]) if op.op in _PASS_THROUGH and op.inputs else None
        return out

    def _source(self, layer: LayerInfo, loc: _Loc) -> str | None:
        """'file:line' of the code that made the op.

        The innermost user frame for a custom layer, else the innermost library or user frame;
        without one, the code of the layer or of the innermost library or custom layer around it
        (a library model's __init__ for a Keras layer in its graph). None for Keras's own layers
        in a model that is Keras's own too.
        """
        frame = loc.user if layer.custom else self._code_frame(loc)
        if frame is not None:
            return f"{frame[0]}:{frame[1]}"
        return next((a.source for a in (layer, *self.index.ancestors(layer)) if a.source), None)

    def _code_frame(self, loc: _Loc) -> tuple[str, int] | None:
        for frame in loc.frames:
            if frame == loc.user or _real(frame[0]).startswith(self.roots):
                return frame
        return None


def _consistent(cands: list[tuple[LayerInfo, str]], owner: _Owner) -> list[tuple[LayerInfo, str]]:
    """The candidates the stack allows: one of its layers itself, or (through a sublayer) one inside them."""
    if owner.direct:
        return [c for c in cands if any(c[0] is o for o in owner.layers)]
    return [c for c in cands if any(c[0] is not o and _within(c[0], o) for o in owner.layers)]


def _best(op: str, cands: list[tuple[LayerInfo, str]]) -> tuple[LayerInfo, str]:
    """Of the layers a fused node names, the one of the main op's class, else the one whose TF op it was."""
    prefer = _PRIMARY.get(op, ())
    stems = (_stem(op), *_TF_OPS.get(op, ()))

    def rank(cand: tuple[LayerInfo, str]) -> tuple[bool, bool]:
        layer, name = cand
        return (not any(p in layer.class_name for p in prefer), not _stem(name.rsplit("/", 1)[-1]).startswith(stems))

    return min(cands, key=rank)


def _stem(name: str) -> str:
    """'reshape' for 'Reshape_11', 'stridedslice' for 'STRIDED_SLICE'."""
    return _TRAILING_COUNTER.sub("", name).replace("_", "").lower()


def _settle(
    sub: SubgraphInfo, found: dict[int, _Found | None], enclosing: Callable[[tuple[LayerInfo, ...]], LayerInfo]
) -> dict[int, tuple[LayerInfo, str]]:
    """One layer per node: exact evidence as is, the rest from neighbours within what the evidence allows."""
    done = {i: (f.layers[0], f.via) for i, f in found.items() if f is not None and f.exact}
    near = _neighbours(sub)
    while True:
        _propagate(sub, found, done, near)
        rest = {i: f for i, f in found.items() if i not in done and f is not None}
        if not rest:
            return done
        for i, f in rest.items():  # no neighbour fits: what the evidence says, as precisely as it says it
            done[i] = (enclosing(f.layers), f.via)


def _propagate(
    sub: SubgraphInfo,
    found: dict[int, _Found | None],
    done: dict[int, tuple[LayerInfo, str]],
    near: dict[int, list[int]],
) -> None:
    changed = True
    while changed:
        changed = False
        for op in sub.ops:
            if op.index in done:
                continue
            guess = _from_neighbours(found[op.index], [done[j][0] for j in near[op.index] if j in done])
            if guess is not None:
                done[op.index] = guess
                changed = True


def _from_neighbours(evidence: _Found | None, layers: list[LayerInfo]) -> tuple[LayerInfo, str] | None:
    """The first neighbour's layer that fits the evidence: the evidence's layer itself if the op is its own."""
    for layer in layers:
        if evidence is None:
            return layer, "neighbour"
        outer = next((o for o in evidence.layers if _within(layer, o)), None)
        if outer is not None:
            return (outer, evidence.via) if evidence.own or layer is outer else (layer, "neighbour")
    return None


def _neighbours(sub: SubgraphInfo) -> dict[int, list[int]]:
    producers = sub.producers()
    consumers = sub.consumers()
    out = {}
    for op in sub.ops:
        before = [producers[t] for t in op.inputs if t in producers]
        after = [c for t in op.outputs for c in consumers.get(t, [])]
        out[op.index] = after + before if op.op in _CONSUMER_FIRST else before + after
    return out


def _scope_mapping(sub: SubgraphInfo, op: OpInfo, loc: _Loc) -> NodeMapping:
    """A bare .tflite: the TF name scope of the first name that has one."""
    outputs, constants = _tensor_names(sub, op)
    for name in (*loc.names, *loc.callers, *outputs, *constants):
        scope = _scope_of(name)
        if scope:
            src = f"{loc.user[0]}:{loc.user[1]}" if loc.user else None
            return NodeMapping(scope, None, src, "scope")
    return NodeMapping(None, None, None, "none")


def _tensor_names(sub: SubgraphInfo, op: OpInfo) -> tuple[list[str], list[str]]:
    """The names of the node's output tensors and of its constant inputs (a fused tensor's joined by ';')."""
    outputs = [n for t in op.outputs if t >= 0 for n in sub.tensors[t].name.split(";") if n]
    constants = [
        n for t in op.inputs if t >= 0 and sub.tensors[t].constant for n in sub.tensors[t].name.split(";") if n
    ]
    return outputs, constants


def _scope_of(name: str) -> str | None:
    name = _INFERENCE.sub("", name.split(";")[0])
    parts = name.split("/")
    return "/".join(parts[:-1]) if len(parts) > 1 else None
