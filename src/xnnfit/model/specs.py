"""Input specs, decided once: each input's name, dtype, declared shape and the shape xnnfit runs it at.

A dynamic dimension (declared -1 or None) is pinned by `--input-shape NAME=...`, else like
the same axis of an input with the same declared shape that `--input-shape` pinned, else
the batch dimension by `--batch` (or kept dynamic with `--dynamic-batch`), else to the
model's own limit for that axis (a `max_sequence_length`) when it is below DEFAULT_DIM,
else to DEFAULT_DIM; every guess comes with a warning. The same rule serves Keras
sources (at conversion) and .tflite files (resized before the interpreter allocates),
and every command then runs the model at these shapes.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

from xnnfit.core.errors import InputDataError
from xnnfit.core.policy import DEFAULT_DIM
from xnnfit.core.record import Record

if TYPE_CHECKING:
    from xnnfit.tflite.graph import ModelGraph


USER_PINS = ("--input-shape", "same as ", "--batch", "--dynamic-batch")  # `Pin.by` prefixes of sizes the user chose


@dataclasses.dataclass(frozen=True)
class Pin(Record):
    """One dynamic dimension and what fixed its size."""

    axis: int
    size: int  # -1: kept dynamic (--dynamic-batch)
    by: str  # '--input-shape', 'same as NAME', '--batch', '--dynamic-batch', a model limit ('max_sequence_length')
    # or 'default'

    @property
    def guessed(self) -> bool:
        """True when xnnfit chose the size (the default or a model limit), not the user."""
        return not self.by.startswith(USER_PINS)


@dataclasses.dataclass(frozen=True)
class DimLimit(Record):
    """The largest size a model accepts on one axis of its inputs, and what declares it."""

    axis: int
    size: int
    by: str  # the attribute that declares it: 'max_sequence_length', 'sequence_length', 'input_dim'
    layer: str = ""  # the layer (or model) carrying it
    inputs: tuple[str, ...] = ()  # the inputs that reach that layer; () for a limit of the whole model


@dataclasses.dataclass(frozen=True)
class InputSpec(Record):
    """One model input: declared shape, the shape it runs at, and how its dynamic dims were pinned."""

    name: str
    dtype: str
    signature: tuple[int, ...]  # as the model declares it; -1 marks a dynamic dimension
    shape: tuple[int, ...]  # what xnnfit runs; -1 only where --dynamic-batch keeps the batch dynamic
    pins: tuple[Pin, ...] = ()
    high: int | None = None  # exclusive upper bound for integer inputs that index a table (token ids)
    value_range: tuple[float, float] | None = None  # random samples' values, in the tensor's own units (model/ranges)
    range_source: str = ""  # what decided value_range: '--input-range', a Keras layer, the quantization, 'default'

    @property
    def dynamic(self) -> bool:
        """True when the model declares a dynamic dimension."""
        return any(d < 0 for d in self.signature)

    @property
    def run_shape(self) -> tuple[int, ...]:
        """The concrete shape tensors are allocated with (a kept-dynamic batch runs as 1)."""
        return tuple(1 if d < 0 else d for d in self.shape)

    def describe_range(self) -> str:
        """'image in [0, 1] (the calibrated range of the QUANTIZE op it feeds)'; '' when no range was decided."""
        if self.value_range is None:
            return ""
        low, high = self.value_range
        return f"{self.name} in [{low:.4g}, {high:.4g}] ({self.range_source or 'default'})"

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

    def pin_all(
        self,
        declared: Iterable[tuple[str, tuple[int, ...], str, int | None]],
        *,
        limits: Sequence[DimLimit] = (),
    ) -> tuple[tuple[InputSpec, ...], tuple[str, ...]]:
        """Specs for (name, declared shape, dtype, high) inputs, and one warning per group of guessed inputs.

        Inputs with the same declared shape (same rank, same fixed sizes, dynamic at the
        same axes: a backbone's token_ids, segment_ids and padding_mask) form a group and
        share their dynamic sizes: a member pinned by --input-shape sets the others' (which
        have no --input-shape of their own), and guesses are the same for all members.
        `limits` are the sizes the model accepts at most (its sequence length): a dimension
        nothing else pins gets the smallest limit for its axis when that is below
        DEFAULT_DIM, else DEFAULT_DIM.
        """
        overrides = dict(self.input_shapes)
        declared = [(name, tuple(signature), dtype, high) for name, signature, dtype, high in declared]
        names = [d[0] for d in declared]
        unknown = [n for n in overrides if n not in names]
        if unknown:
            raise InputDataError(
                f"--input-shape names no model input: {', '.join(unknown)}. The inputs are: "
                f"{', '.join(names) or 'none'}."
            )
        specs: dict[str, InputSpec] = {}
        warnings = []
        for group in _groups(declared):
            bounds = _strictest([lim for lim in limits if not lim.inputs or group[0][0] in lim.inputs])
            given = [d for d in group if d[0] in overrides]
            for name, signature, dtype, high in given:
                specs[name] = _pin_given(name, signature, dtype, high, overrides[name])
            for name, signature, dtype, high in group:
                if name in specs:
                    continue
                if given:
                    specs[name] = _follow(name, signature, dtype, high, specs[given[0][0]])
                else:
                    specs[name] = self._pin(name, signature, dtype, high, bounds)
            warning = _guess_warning([specs[d[0]] for d in group], bounds)
            if warning:
                warnings.append(warning)
        return tuple(specs[n] for n in names), tuple(warnings)

    def _pin(
        self, name: str, signature: tuple[int, ...], dtype: str, high: int | None, bounds: dict[int, DimLimit]
    ) -> InputSpec:
        shape, pins = [], []
        for i, d in enumerate(signature):
            if d >= 0:
                shape.append(d)
                continue
            if i == 0 and self.dynamic_batch:
                pin = Pin(0, -1, "--dynamic-batch")
            elif i == 0:
                pin = Pin(0, self.batch, "--batch")
            elif i in bounds and bounds[i].size < DEFAULT_DIM:
                pin = Pin(i, bounds[i].size, bounds[i].by)
            else:
                pin = Pin(i, DEFAULT_DIM, "default")
            shape.append(pin.size)
            pins.append(pin)
        return InputSpec(name, dtype, signature, tuple(shape), tuple(pins), high)


def _pin_given(
    name: str, signature: tuple[int, ...], dtype: str, high: int | None, override: tuple[int, ...]
) -> InputSpec:
    """The spec of an input the user gave --input-shape for; InputDataError when it does not fit the declared shape."""
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


def _follow(name: str, signature: tuple[int, ...], dtype: str, high: int | None, leader: InputSpec) -> InputSpec:
    """The spec of an input that takes its dynamic sizes from `leader`, a same-shaped input the user pinned."""
    pins = tuple(Pin(p.axis, p.size, f"same as {leader.name}") for p in leader.pins)
    return InputSpec(name, dtype, signature, leader.shape, pins, high)


def _groups(
    declared: list[tuple[str, tuple[int, ...], str, int | None]],
) -> list[list[tuple[str, tuple[int, ...], str, int | None]]]:
    """Inputs grouped by declared shape, in declaration order; inputs with no dynamic dimension stay alone."""
    groups: dict[tuple, list] = {}
    for item in declared:
        signature = item[1]
        key = signature if any(d < 0 for d in signature) else (item[0],)
        groups.setdefault(key, []).append(item)
    return list(groups.values())


def _strictest(limits: Sequence[DimLimit]) -> dict[int, DimLimit]:
    """The smallest limit per axis."""
    out: dict[int, DimLimit] = {}
    for limit in limits:
        if limit.size > 0 and (limit.axis not in out or limit.size < out[limit.axis].size):
            out[limit.axis] = limit
    return out


def _guess_warning(group: list[InputSpec], bounds: dict[int, DimLimit]) -> str:
    """'' unless xnnfit guessed a size for the group; else what it chose, why, and what to pass to choose."""
    first = group[0]
    guessed = [p for p in first.pins if p.guessed]
    if not guessed:
        return ""
    axes = ", ".join(str(p.axis) for p in guessed)
    plural = "s" if len(guessed) > 1 else ""
    if len(guessed) == 1:
        sizes = f"to {guessed[0].size}{_why(guessed[0], bounds)}"
    else:
        sizes = ", ".join(f"axis {p.axis} to {p.size}{_why(p, bounds)}" for p in guessed)
    if len(group) == 1:
        who = f"input {first.name!r} has unknown dimension{plural} {axes}"
        follow = ""
    else:
        who = (
            f"inputs {', '.join(repr(s.name) for s in group)} (same declared shape {list(first.signature)}) "
            f"have unknown dimension{plural} {axes}"
        )
        follow = "; the others follow"
    return (
        f"{who}; pinned {sizes}: shape {list(first.shape)}. "
        f"Pass --input-shape {first.name}={','.join(map(str, first.run_shape))} to choose{follow}."
    )


def _why(pin: Pin, bounds: dict[int, DimLimit]) -> str:
    """Why a guessed size: ", the max_sequence_length of 'bert_backbone'", or what the model takes past the default."""
    limit = bounds.get(pin.axis)
    if limit is None:
        return ""
    where = f"{limit.by} of {limit.layer!r}" if limit.layer else f"the model's {limit.by}"
    if pin.by == limit.by:
        return f", the {where}" if limit.layer else f", {where}"
    return f" (the model accepts up to {limit.size}: {where})"


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
            raise InputDataError(
                f"cannot read --input-shape {item!r}. Write NAME=D1,D2,... with positive sizes, e.g. tokens=1,128."
            )
        out[name.strip()] = shape
    return tuple(out.items())


def input_name(tensor_name: str) -> str:
    """'tokens' for 'serving_default_tokens:0'; the name users see in npz keys and --input-shape."""
    name = tensor_name.split(":")[0]
    return name[len("serving_default_") :] if name.startswith("serving_default_") else name


# Ops an index passes through on its way to a table lookup: casts, reshapes, slices, and the
# Embedding layer's wrap of negative ids (where(ids < 0, ids + vocab, ids)).
_INDEX_PATH = frozenset(
    {
        "CAST",
        "RESHAPE",
        "EXPAND_DIMS",
        "SQUEEZE",
        "STRIDED_SLICE",
        "SLICE",
        "TRANSPOSE",
        "SELECT",
        "SELECT_V2",
        "ADD",
        "LESS",
        "GREATER_EQUAL",
        "MAXIMUM",
        "MINIMUM",
    }
)
_LOOKUPS = ("GATHER", "EMBEDDING_LOOKUP")


def table_bound(graph: ModelGraph, tensor: int) -> int | None:
    """Rows of the smallest table an integer input indexes (GATHER/EMBEDDING_LOOKUP), traced through index plumbing."""
    sub = graph.primary
    consumers = sub.consumers()
    bound, seen, frontier = None, set(), [tensor]
    while frontier:
        t = frontier.pop()
        if t in seen:
            continue
        seen.add(t)
        for c in consumers.get(t, []):
            op = sub.ops[c]
            if op.op in _LOOKUPS and len(op.inputs) > 1 and op.inputs[1] == t and op.options.get("axis", 0) == 0:
                rows = sub.tensors[op.inputs[0]].shape[:1]
                if rows:
                    bound = rows[0] if bound is None else min(bound, rows[0])
            elif op.op in _INDEX_PATH:
                frontier.extend(x for x in op.outputs if x >= 0 and sub.tensors[x].dtype.startswith(("int", "uint")))
    return bound


def tflite_declared_inputs(graph: ModelGraph) -> list[tuple[str, tuple[int, ...], str, int | None]]:
    """(name, declared shape, dtype, high) per input of a .tflite.

    An integer input indexing a table gets its rows as `high`.
    """
    sub = graph.primary
    out = []
    for t in sub.inputs:
        tensor = sub.tensors[t]
        high = table_bound(graph, t) if tensor.dtype.startswith(("int", "uint")) else None
        out.append((input_name(tensor.name), tensor.shape_signature or tensor.shape, tensor.dtype, high))
    return out


def with_table_bounds(specs: tuple[InputSpec, ...], graph: ModelGraph) -> tuple[InputSpec, ...]:
    """`specs` with each integer input's `high` read from the converted graph (the table it really indexes)."""
    bounds = {name: high for name, _, dtype, high in tflite_declared_inputs(graph) if dtype.startswith(("int", "uint"))}
    return tuple(dataclasses.replace(s, high=bounds[s.name]) if s.name in bounds else s for s in specs)


def dynamic_hint(specs: tuple[InputSpec, ...]) -> str:
    """What to say when the model fails at pinned shapes ('' when no input is dynamic).

    Every pinned input is described (declared shape, run shape, what pinned each axis);
    the example names one input per group of same-shaped inputs, since the others follow.
    """
    pinned = [s for s in specs if s.pins]
    if not pinned:
        return ""
    what = "; ".join(s.describe() for s in pinned)
    leaders = _leaders(pinned)
    example = " ".join(f"--input-shape {s.name}={','.join(_placeholders(s))}" for s in leaders)
    followers = [s.name for s in pinned if s not in leaders]
    follow = (
        f" ({', '.join(followers)} follow{'s' if len(followers) == 1 else ''}: same declared shape)"
        if followers
        else ""
    )
    return f"Inputs with dynamic dimensions were pinned: {what}. Pass shapes the model accepts: {example}{follow}"


def _leaders(pinned: list[InputSpec]) -> list[InputSpec]:
    """The inputs an example must name: those the user pinned, and the first of each group pinned otherwise."""
    out, groups = [], set()
    for spec in pinned:
        given = any(p.by == "--input-shape" for p in spec.pins)
        if _follows(spec) or (not given and spec.signature in groups):
            continue
        groups.add(spec.signature)
        out.append(spec)
    return out


def _follows(spec: InputSpec) -> bool:
    return any(p.by.startswith("same as ") for p in spec.pins)


def _placeholders(spec: InputSpec) -> list[str]:
    """The run shape with 'N' at every pinned axis but the batch: the sizes to choose again."""
    chosen = {p.axis for p in spec.pins if p.axis > 0}
    return ["N" if i in chosen else str(d) for i, d in enumerate(spec.run_shape)]
