"""Input specs, decided once: each input's name, dtype, declared shape and the shape xnnfit runs it at.

A dynamic dimension (declared -1 or None) is pinned by `--input-shape NAME=...`, else the
batch dimension by `--batch` (or kept dynamic with `--dynamic-batch`), else to
DEFAULT_DIM with a warning. The same rule serves Keras sources (at conversion) and
.tflite files (resized before the interpreter allocates), and every command then runs
the model at these shapes.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Iterable

from xnnfit.errors import InputDataError
from xnnfit.policy import DEFAULT_DIM
from xnnfit.record import Record

if TYPE_CHECKING:
    from xnnfit.tflite.graph import ModelGraph


@dataclasses.dataclass(frozen=True)
class Pin(Record):
    """One dynamic dimension and what fixed its size."""

    axis: int
    size: int  # -1: kept dynamic (--dynamic-batch)
    by: str  # '--input-shape', '--batch', '--dynamic-batch' or 'default'


@dataclasses.dataclass(frozen=True)
class InputSpec(Record):
    """One model input: declared shape, the shape it runs at, and how its dynamic dims were pinned."""

    name: str
    dtype: str
    signature: tuple[int, ...]  # as the model declares it; -1 marks a dynamic dimension
    shape: tuple[int, ...]  # what xnnfit runs; -1 only where --dynamic-batch keeps the batch dynamic
    pins: tuple[Pin, ...] = ()
    high: int | None = None  # exclusive upper bound for integer inputs that index a table (token ids)

    @property
    def dynamic(self) -> bool:
        """True when the model declares a dynamic dimension."""
        return any(d < 0 for d in self.signature)

    @property
    def run_shape(self) -> tuple[int, ...]:
        """The concrete shape tensors are allocated with (a kept-dynamic batch runs as 1)."""
        return tuple(1 if d < 0 else d for d in self.shape)

    def describe(self) -> str:
        """'tokens int32 [-1, -1] -> [1, 64] (axis 0 --batch, axis 1 default)'."""
        text = f"{self.name} {self.dtype} {list(self.signature)}"
        if self.pins:
            text += f" -> {list(self.shape)} ({', '.join(f'axis {p.axis} {p.by}' for p in self.pins)})"
        return text


@dataclasses.dataclass(frozen=True)
class ShapeRequest(Record):
    """What the user asked about shapes: batch, whether to keep it dynamic, explicit input shapes."""

    batch: int = 1
    dynamic_batch: bool = False
    input_shapes: tuple[tuple[str, tuple[int, ...]], ...] = ()

    def pin_all(self, declared: Iterable[tuple[str, tuple[int, ...], str, int | None]]) -> tuple[tuple[InputSpec, ...], tuple[str, ...]]:
        """Specs for (name, declared shape, dtype, high) inputs, and one warning per defaulted input."""
        overrides = dict(self.input_shapes)
        declared = list(declared)
        names = [d[0] for d in declared]
        unknown = [n for n in overrides if n not in names]
        if unknown:
            raise InputDataError(
                f"--input-shape names no model input: {', '.join(unknown)}. The inputs are: {', '.join(names) or 'none'}."
            )
        specs, warnings = [], []
        for name, signature, dtype, high in declared:
            spec = self._pin(name, tuple(signature), dtype, high, overrides.get(name))
            defaulted = [p.axis for p in spec.pins if p.by == "default"]
            if defaulted:
                axes = ", ".join(map(str, defaulted))
                warnings.append(
                    f"input {name!r} has unknown dimension{'s' if len(defaulted) > 1 else ''} {axes}; pinned to {DEFAULT_DIM}: "
                    f"shape {list(spec.shape)}. Pass --input-shape {name}={','.join(map(str, spec.run_shape))} to choose."
                )
            specs.append(spec)
        return tuple(specs), tuple(warnings)

    def _pin(self, name: str, signature: tuple[int, ...], dtype: str, high: int | None, override: tuple[int, ...] | None) -> InputSpec:
        if override is not None:
            if len(override) != len(signature):
                raise InputDataError(
                    f"--input-shape {name}={','.join(map(str, override))} has {len(override)} dimensions; "
                    f"input {name!r} has {len(signature)} (declared {list(signature)}). Give one size per dimension."
                )
            clash = [i for i, (d, o) in enumerate(zip(signature, override)) if d >= 0 and d != o]
            if clash:
                raise InputDataError(
                    f"--input-shape {name}={','.join(map(str, override))} changes fixed dimension {clash[0]} of input {name!r} "
                    f"(declared {list(signature)}). Only dynamic (-1) dimensions can be pinned."
                )
            pins = tuple(Pin(i, o, "--input-shape") for i, (d, o) in enumerate(zip(signature, override)) if d < 0)
            return InputSpec(name, dtype, signature, tuple(override), pins, high)
        shape, pins = [], []
        for i, d in enumerate(signature):
            if d >= 0:
                shape.append(d)
            elif i == 0 and self.dynamic_batch:
                shape.append(-1)
                pins.append(Pin(0, -1, "--dynamic-batch"))
            elif i == 0:
                shape.append(self.batch)
                pins.append(Pin(0, self.batch, "--batch"))
            else:
                shape.append(DEFAULT_DIM)
                pins.append(Pin(i, DEFAULT_DIM, "default"))
        return InputSpec(name, dtype, signature, tuple(shape), tuple(pins), high)


def parse_input_shapes(items: Iterable[str] | dict | None) -> tuple[tuple[str, tuple[int, ...]], ...]:
    """(('tokens', (1, 128)),) from ['tokens=1,128'] or {'tokens': (1, 128)}; InputDataError on malformed text."""
    if isinstance(items, dict):
        return tuple((str(k), tuple(int(d) for d in v)) for k, v in items.items())
    out: dict[str, tuple[int, ...]] = {}
    for item in items or []:
        name, sep, dims = item.partition("=")
        try:
            shape = tuple(int(d) for d in dims.split(",") if d.strip())
        except ValueError:
            shape = ()
        if not sep or not name.strip() or not shape or any(d < 1 for d in shape):
            raise InputDataError(f"cannot read --input-shape {item!r}. Write NAME=D1,D2,... with positive sizes, e.g. tokens=1,128.")
        out[name.strip()] = shape
    return tuple(out.items())


def input_name(tensor_name: str) -> str:
    """'tokens' for 'serving_default_tokens:0'; the name users see in npz keys and --input-shape."""
    name = tensor_name.split(":")[0]
    return name[len("serving_default_"):] if name.startswith("serving_default_") else name


def tflite_declared_inputs(graph: ModelGraph) -> list[tuple[str, tuple[int, ...], str, int | None]]:
    """(name, declared shape, dtype, high) per input of a .tflite; integer inputs indexing a table get its size as `high`."""
    sub = graph.primary
    consumers = sub.consumers()
    out = []
    for t in sub.inputs:
        tensor = sub.tensors[t]
        high = None
        if tensor.dtype.startswith(("int", "uint")):
            for c in consumers.get(t, []):
                op = sub.ops[c]
                if op.op in ("GATHER", "EMBEDDING_LOOKUP") and len(op.inputs) > 1 and op.inputs[1] == t:
                    table = sub.tensors[op.inputs[0]]
                    if table.shape:
                        high = table.shape[0] if high is None else min(high, table.shape[0])
        out.append((input_name(tensor.name), tensor.shape_signature or tensor.shape, tensor.dtype, high))
    return out


def dynamic_hint(specs: tuple[InputSpec, ...]) -> str:
    """What to say when the runtime fails at pinned shapes ('' when no input is dynamic)."""
    pinned = [s for s in specs if s.pins]
    if not pinned:
        return ""
    what = "; ".join(s.describe() for s in pinned)
    example = " ".join(f"--input-shape {s.name}={','.join(_placeholders(s))}" for s in pinned)
    return f"inputs with dynamic dimensions were pinned: {what}. Pass shapes the model accepts: {example}"


def _placeholders(spec: InputSpec) -> list[str]:
    """The run shape with 'N' where nothing but the default pinned a dimension."""
    guessed = {p.axis for p in spec.pins if p.by == "default"}
    return ["N" if i in guessed else str(d) for i, d in enumerate(spec.run_shape)]
