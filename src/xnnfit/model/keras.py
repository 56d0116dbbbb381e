"""LayerInfo: the Keras layers of a model (name, class, nesting, source line), read in the child."""

from __future__ import annotations

import dataclasses
import functools
import inspect
import os
import re
from collections.abc import Iterator
from typing import Any

from xnnfit.core.record import Record

_SEP = os.sep
# Classes defined here are Keras itself: their file:line says nothing about the user's model.
_KERAS_DIRS = (f"{_SEP}keras{_SEP}", f"{_SEP}tf_keras{_SEP}", f"{_SEP}tensorflow{_SEP}")
# ...except the model zoos shipped inside Keras: their blocks are library code a user reads.
_KERAS_LIBRARY_DIRS = (
    f"{_SEP}keras{_SEP}src{_SEP}applications{_SEP}",
    f"{_SEP}tf_keras{_SEP}src{_SEP}applications{_SEP}",
)
# Installed packages other than Keras (keras-hub, ...); keras_hub is named too for editable installs.
_LIBRARY_DIRS = (f"{_SEP}site-packages{_SEP}", f"{_SEP}dist-packages{_SEP}", f"{_SEP}keras_hub{_SEP}")


@dataclasses.dataclass(frozen=True)
class LayerInfo(Record):
    """One Keras layer, or the model itself (`top`): where it sits and where its code is."""

    name: str
    class_name: str
    path: tuple[str, ...]  # names of the enclosing models/layers, outermost first (the top model excluded)
    source: str | None = (
        None  # 'file.py:line': the Lambda function, a custom or library layer's call, a library model's __init__
    )
    custom: bool = False  # a Lambda or a class defined outside Keras and installed libraries
    library: bool = False  # a class from an installed library (keras-hub, keras.applications blocks)
    call_span: tuple[str, int, int] | None = None  # (real path, first line, last line) of the class's call method
    top: bool = False  # the model itself: owns the ops of its own graph or call, not inside any layer
    outputs: tuple[str, ...] = ()  # top only: qualname of the layer making each flattened model output ('' unknown)

    @property
    def qualname(self) -> str:
        """'inner/dense' for a layer nested in model 'inner'; the model's own name for the top model."""
        return "/".join((*self.path, self.name))


def _source(obj: Any) -> tuple[str, int, int] | None:
    """(file, first line, last line) of a function's or class's source; None for builtins and code without a file."""
    try:
        fn = inspect.unwrap(obj)
        file = inspect.getsourcefile(fn)
        lines, start = inspect.getsourcelines(fn)
    except (TypeError, OSError):
        return None
    return (file, start, start + len(lines) - 1) if file else None


def _where(obj: Any) -> str | None:
    found = _source(obj)
    return f"{found[0]}:{found[1]}" if found else None


@functools.cache
def _span(fn: Any) -> tuple[str, int, int] | None:
    """(real path, first line, last line) of a function's source, or None for builtins."""
    found = _source(fn)
    return (os.path.realpath(found[0]), found[1], found[2]) if found else None


def _file_origin(file: str | None) -> str:
    """'keras' (Keras or TensorFlow itself), 'library' (an installed package) or 'custom' (user code)."""
    if not file:
        return "keras"
    if any(d in file for d in _KERAS_LIBRARY_DIRS):
        return "library"
    if any(d in file for d in _KERAS_DIRS):
        return "keras"
    return "library" if any(d in file for d in _LIBRARY_DIRS) else "custom"


def _origin(cls: type) -> str:
    try:
        return _file_origin(inspect.getsourcefile(cls))
    except TypeError:
        return "keras"


def library_root(file: str) -> str:
    """The directory whose files are the library that `file` belongs to ('.../site-packages/keras_hub/')."""
    for d in _KERAS_LIBRARY_DIRS:
        if d in file:
            return file[: file.index(d) + len(d)]
    parts = file.split(_SEP)
    for marker in ("site-packages", "dist-packages"):
        if marker in parts[:-2]:
            return _SEP.join(parts[: parts.index(marker) + 2]) + _SEP
    return os.path.dirname(file) + _SEP


def _is_functional(obj: Any) -> bool:
    return any(c.__name__ == "Functional" for c in type(obj).__mro__)


def _code_source(obj: Any, origin: str) -> str | None:
    """Where a custom or library class's ops come from.

    A functional model's __init__ builds its graph, a layer's call runs.
    """
    cls = type(obj)
    if cls.__name__ == "Lambda" and hasattr(obj, "function"):
        return _where(obj.function)
    if origin == "keras":
        return None
    if _is_functional(obj) and _file_origin((_span(cls.__init__) or ("",))[0]) == origin:
        return _where(cls.__init__)
    return _where(getattr(cls, "call", None)) or _where(cls)


def _info(obj: Any, path: tuple[str, ...], *, top: bool = False, outputs: tuple[str, ...] = ()) -> LayerInfo:
    cls = type(obj)
    lam = cls.__name__ == "Lambda" and hasattr(obj, "function")
    origin = "custom" if lam else _origin(cls)
    return LayerInfo(
        name=obj.name,
        class_name=cls.__name__,
        path=path,
        source=_code_source(obj, origin),
        custom=origin == "custom",
        library=origin == "library",
        call_span=_span(getattr(cls, "call", None)),
        top=top,
        outputs=outputs,
    )


def describe_layers(model: Any) -> tuple[LayerInfo, ...]:
    """The model itself (first, `top=True`), then every layer reachable from it, nested ones too, in a stable order."""
    out: list[LayerInfo] = []
    qualnames: dict[int, str] = {}

    def visit(layer: Any, path: tuple[str, ...]) -> None:
        if id(layer) in qualnames:
            return
        info = _info(layer, path)
        qualnames[id(layer)] = info.qualname
        out.append(info)
        for child in children(layer):
            visit(child, (*path, layer.name))

    for layer in children(model):
        visit(layer, ())
    qualnames[id(model)] = model.name
    top = _info(model, (), top=True, outputs=_output_owners(model, qualnames))
    return (top, *out)


def _output_owners(model: Any, qualnames: dict[int, str]) -> tuple[str, ...]:
    """For each flattened output of a functional model, the qualname of the layer that makes it."""
    try:
        tensors = list(model.outputs or ())
    except (AttributeError, ValueError, TypeError):
        return ()
    return tuple(_owner(t, model, qualnames) for t in tensors)


def _owner(tensor: Any, model: Any, qualnames: dict[int, str]) -> str:
    """The layer whose output `tensor` is; inside a nested functional model, the layer deep inside it."""
    for _ in range(len(qualnames) + 1):  # one step per nesting level; bounded against a cycle
        history = getattr(tensor, "_keras_history", None)
        if not history:
            return ""
        op, index = history[0], history[2]
        if type(op).__name__ == "InputLayer":
            return ""
        if id(op) not in qualnames:  # an operation of the model's own graph (x[:, 0], x + 1)
            return qualnames.get(id(model), "")
        inner = getattr(op, "outputs", None) if _is_functional(op) else None
        if not inner or index >= len(inner):
            return qualnames[id(op)]
        tensor, model = inner[index], op
    return ""


def children(layer: Any) -> list[Any]:
    """The layers directly inside `layer` (a model's `layers`, a custom layer's tracked `_layers`)."""
    kids = getattr(layer, "layers", None) or getattr(layer, "_layers", None) or []
    try:
        return [k for k in kids if hasattr(k, "name") and k is not layer]
    except TypeError:
        return []


def walk(layer: Any) -> Iterator[Any]:
    """`layer`, then every layer nested in it (depth first, each once, however often it is reused)."""
    stack, seen = [layer], set()
    while stack:
        current = stack.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        stack.extend(reversed(children(current)))


_SUFFIX = re.compile(r"^(.*)_\d+$")  # Keras uniquifies a repeated name with _1, _2 ...
_INFERENCE = re.compile(r"@__inference.*$")  # TF's suffix on names inside a traced function


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
        self.top = next((layer for layer in layers if layer.top), None)
        nested = [layer for layer in layers if not layer.top]
        self.by_path = {(*layer.path, layer.name): layer for layer in nested}
        self.containers = {layer.path for layer in nested}
        self.by_qualname = {layer.qualname: layer for layer in nested}
        if self.top is not None:
            self.by_qualname.setdefault(self.top.qualname, self.top)

    def scoped(self, op_name: str) -> LayerInfo | None:
        """The deepest layer whose name scope the op name passes through; the model itself for its own scope."""
        parts = [p for p in _INFERENCE.sub("", op_name).split("/") if p]
        return self._walk(parts[:-1])

    def find(self, op_name: str) -> LayerInfo | None:
        """`scoped`, else a layer at any depth uniquely named like one of the name's scopes (a guess)."""
        parts = [p for p in _INFERENCE.sub("", op_name).split("/") if p]
        scopes = parts[:-1] if len(parts) > 1 else parts
        return self._walk(scopes) or self._anywhere(scopes)

    def _walk(self, scopes: list[str]) -> LayerInfo | None:
        context: tuple[str, ...] = ()
        best = None
        for i, comp in enumerate(scopes):
            variants = _variants(comp, self.framework)
            if (
                i == 0 and self.top is not None and self.top.name in variants
            ):  # every name in the model's call starts so
                best = self.top
                continue
            for cand in variants:
                layer = self.by_path.get((*context, cand))
                if layer is not None:
                    best = layer
                    if (*context, cand) in self.containers:
                        context = (*context, cand)
                    break
        return best

    def ancestors(self, layer: LayerInfo) -> list[LayerInfo]:
        """The layers around `layer`, innermost first, the model last."""
        around = [self.by_path.get(layer.path[:k]) for k in range(len(layer.path), 0, -1)]
        if self.top is not None and not layer.top:
            around.append(self.top)
        return [a for a in around if a is not None]

    def enclosing(self, layers: tuple[LayerInfo, ...]) -> LayerInfo:
        """The one layer, or the innermost layer (at worst the model) that holds all of several."""
        if len(layers) == 1:
            return layers[0]
        keys = [(*lay.path, lay.name) for lay in layers]
        n = 0
        while all(len(k) > n and k[n] == keys[0][n] for k in keys):
            n += 1
        return self.by_path.get(keys[0][:n]) or self.top or layers[0]

    def _anywhere(self, scopes: list[str]) -> LayerInfo | None:
        for comp in reversed(scopes):
            for cand in _variants(comp, self.framework):
                hits = [lay for key, lay in self.by_path.items() if key[-1] == cand]
                if len(hits) == 1:
                    return hits[0]
        return None


def layer_for_scope(op_name: str, layers: tuple[LayerInfo, ...], framework: str | None) -> LayerInfo | None:
    """The Keras layer an op name belongs to, or None."""
    return LayerIndex(layers, framework).find(op_name)
