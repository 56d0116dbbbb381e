"""LayerInfo: the Keras layers of a model (name, class, nesting, source line), read in the child."""

from __future__ import annotations

import dataclasses
import inspect
import os
from typing import Any

from xnnfit.record import Record

_FRAMEWORK_DIRS = (f"{os.sep}keras{os.sep}", f"{os.sep}tf_keras{os.sep}", f"{os.sep}keras_hub{os.sep}", f"{os.sep}tensorflow{os.sep}")


@dataclasses.dataclass(frozen=True)
class LayerInfo(Record):
    """One Keras layer: where it sits and, for user code, where it is defined."""

    name: str
    class_name: str
    path: tuple[str, ...]  # names of the enclosing models/layers, outermost first (the top model excluded)
    source: str | None = None  # 'file.py:line' of the Lambda function or the custom layer's call
    custom: bool = False  # a Lambda or a class defined outside Keras

    @property
    def qualname(self) -> str:
        """'inner/dense' for a layer nested in model 'inner'."""
        return "/".join((*self.path, self.name))


def _where(obj: Any) -> str | None:
    try:
        fn = inspect.unwrap(obj)
        file = inspect.getsourcefile(fn)
        _, line = inspect.getsourcelines(fn)
    except (TypeError, OSError):
        return None
    return f"{file}:{line}" if file else None


def _is_framework(cls: type) -> bool:
    try:
        file = inspect.getsourcefile(cls) or ""
    except TypeError:
        return True
    return any(d in file for d in _FRAMEWORK_DIRS) or "site-packages" in file or "dist-packages" in file


def describe_layers(model: Any) -> tuple[LayerInfo, ...]:
    """Every layer reachable from `model`, nested models and layers included, in a stable order."""
    out: list[LayerInfo] = []
    seen: set[int] = set()

    def visit(layer: Any, path: tuple[str, ...]) -> None:
        if id(layer) in seen:
            return
        seen.add(id(layer))
        cls = type(layer)
        source = None
        custom = False
        if cls.__name__ == "Lambda" and hasattr(layer, "function"):
            custom = True
            source = _where(layer.function)
        elif not _is_framework(cls):
            custom = True
            source = _where(getattr(cls, "call", None)) or _where(cls)
        out.append(LayerInfo(layer.name, cls.__name__, path, source, custom))
        for child in _children(layer):
            visit(child, (*path, layer.name))

    for layer in _children(model):
        visit(layer, ())
    return tuple(out)


def _children(layer: Any) -> list[Any]:
    kids = getattr(layer, "layers", None)
    if kids is None:
        kids = getattr(layer, "_layers", None) or []
    try:
        return [k for k in kids if hasattr(k, "name")]
    except TypeError:
        return []
