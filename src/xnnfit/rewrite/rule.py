"""The Rule base: a stable id, the KB causes it removes, how exact it is, match and apply, and the ops rules emit."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from xnnfit.kb.limits import MAX_CONCAT_INPUTS
from xnnfit.model.specs import InputSpec
from xnnfit.rewrite.graph import Graph
from xnnfit.tflite.schema import fb

# The options table each op a rule emits carries (ops not named here carry none).
OPTIONS = {
    "ADD": "AddOptions",
    "SUB": "SubOptions",
    "MUL": "MulOptions",
    "DIV": "DivOptions",
    "CONCATENATION": "ConcatenationOptions",
    "LEAKY_RELU": "LeakyReluOptions",
    "PAD": "PadOptions",
    "REDUCE_MAX": "ReducerOptions",
    "RESHAPE": "ReshapeOptions",
    "SLICE": "SliceOptions",
    "SPLIT": "SplitOptions",
    "SUM": "ReducerOptions",
}


@dataclasses.dataclass(frozen=True)
class Match:
    """One place a rule applies: the anchor op and what apply() needs."""

    rule: str
    anchor: int  # op index in the graph at match time
    where: str  # a tensor name users can recognise
    detail: dict = dataclasses.field(default_factory=dict, compare=False, hash=False)


@dataclasses.dataclass(frozen=True)
class NoMatch:
    """Why a rule did not apply."""

    reason: str


@dataclasses.dataclass(frozen=True)
class RewriteContext:
    """What rules may use besides the graph: the input specs the model runs at."""

    specs: tuple[InputSpec, ...] = ()


class Rule:
    """A graph rewrite; subclasses declare what they are and implement match (or ops and check) and apply.

    A rule declares its identity in its first line, `class X(Rule, id=..., fixes=..., ops=...)`
    (any class attribute below may be given so), and its title and example in its body. A
    rule that looks at one op at a time names them in `ops` and implements `check`; the
    default `match` is `scan`, the shared loop over them.
    """

    id: str = ""
    title: str = ""
    fixes: tuple[str, ...] = ()  # the KB cause and hazard ids it removes
    tolerance: float | None = None  # None: exact (same math); else the max abs error / max |output| it may introduce
    leaves: frozenset[str] = frozenset()  # ops the rule itself leaves on CPU by design (XR013's one input cast)
    judged_against: str = "current"  # 'cpu': the model before it, on the built-in kernels (repairing a miscompute)
    ops: tuple[str, ...] = ()  # for one-op rules: the ops `check` is asked about
    absent: str = ""  # why the rule applies nowhere when the graph has none of `ops` ('' : "no <ops> node")
    example: Callable[[], Any] | None = None  # builds a Keras model (or .tflite bytes) that triggers the rule
    example_recipe: str = "fp32"
    example_dynamic_batch: bool = False  # the example shows the fallback only with a dynamic batch

    def __init_subclass__(cls, **declared: Any) -> None:
        super().__init_subclass__()
        unknown = sorted(set(declared) - set(vars(Rule)))
        if unknown:
            raise TypeError(f"{cls.__name__} declares {', '.join(unknown)}, which rules do not have")
        for key, value in declared.items():
            setattr(cls, key, value)

    @property
    def exactness(self) -> str:
        """'exact': same math, judged at float rounding (VerifyPolicy); 'tolerance': an approximation."""
        return "exact" if self.tolerance is None else "tolerance"

    def match(self, g: Graph, ctx: RewriteContext) -> list[Match] | NoMatch:
        """Every place the rule applies now, or why it applies nowhere."""
        return self.scan(g)

    def check(self, g: Graph, i: int) -> dict | str | None:
        """For op i (one of `ops`): the match detail, why it does not apply, or None when it needs no rewrite."""
        raise NotImplementedError

    def apply(self, g: Graph, m: Match, ctx: RewriteContext) -> None:
        """Rewrite one match in place (dead ops are pruned later)."""
        raise NotImplementedError

    def scan(self, g: Graph) -> list[Match] | NoMatch:
        """Matches for every op named in `ops` that `check` accepts; the reasons it gave when there are none."""
        found, reasons = [], []
        for i in range(len(g.ops)):
            if g.op(i) not in self.ops:
                continue
            detail = self.check(g, i)
            if isinstance(detail, str):
                reasons.append(detail)
            elif detail is not None:
                found.append(Match(self.id, i, self.where(g, i), detail))
        return found or NoMatch("; ".join(dict.fromkeys(reasons)) or self.absent or f"no {' or '.join(self.ops)} node")

    def where(self, g: Graph, i: int) -> str:
        """The name users see for a match at op i: its first output's."""
        return g.name(g.outputs(i)[0])

    def tag(self, name: str) -> str:
        """A tensor name marking what this rule created."""
        return f"xnnfit:{self.id}/{name}"

    # -- the ops rules emit ------------------------------------------------------------------
    def emit(self, g: Graph, name: str, inputs: Sequence[int], outputs: Sequence[int], **fields: Any) -> Any:
        """Op `name` (not yet inserted) with its options table (OPTIONS) holding `fields`."""
        options = None
        if name in OPTIONS:
            options = getattr(fb, f"{OPTIONS[name]}T")()
            for key, value in fields.items():
                setattr(options, key, value)
        return g.make_op(name, list(inputs), list(outputs), options, OPTIONS.get(name))

    def ints(self, g: Graph, values: Any, label: str) -> int:
        """An int32 constant (a shape, begin, size or axis) tagged `label`."""
        return g.add_const(np.asarray(values, np.int32), self.tag(label))

    def scalar(self, g: Graph, value: float) -> int:
        """A float32 scalar constant."""
        return g.add_const(np.asarray(value, np.float32), self.tag(f"const/{value:g}"))

    def reshape(self, g: Graph, src: int, dst: int, shape: Sequence[int]) -> Any:
        """RESHAPE src into dst of static `shape`."""
        shape = [int(d) for d in shape]
        return self.emit(g, "RESHAPE", [src, self.ints(g, shape, "shape")], [dst], newShape=shape)

    def slice(self, g: Graph, src: int, dst: int, begin: Sequence[int], size: Sequence[int]) -> Any:
        """SLICE of src from `begin`, `size` long on every axis (every size positive: XNNPACK refuses -1)."""
        return self.emit(g, "SLICE", [src, self.ints(g, begin, "begin"), self.ints(g, size, "size")], [dst])

    def concat(self, g: Graph, inputs: list[int], out: int, axis: int, activation: int = 0) -> list:
        """CONCATENATION of `inputs` into out along `axis`, as a tree of nodes XNNPACK takes.

        The delegate concatenates at most MAX_CONCAT_INPUTS at once, so more inputs form nearly
        even groups of at most that many, level by level; intermediate tensors take out's type
        and quantization, and only the last node keeps the fused `activation`.
        """
        rank = len(g.shape(out))
        along = axis + rank if axis < 0 else axis
        ops, level = [], 0
        while len(inputs) > MAX_CONCAT_INPUTS:
            k = math.ceil(len(inputs) / MAX_CONCAT_INPUTS)
            bounds = [round(j * len(inputs) / k) for j in range(k + 1)]
            merged = []
            for j in range(k):
                group = inputs[bounds[j] : bounds[j + 1]]
                t = g.add_tensor(
                    _concat_shape(g, group, along), g.dtype(out), self.tag(f"concat{level}_{j}"), g.quant(out)
                )
                ops.append(self.emit(g, "CONCATENATION", group, [t], axis=axis))
                merged.append(t)
            inputs, level = merged, level + 1
        return [*ops, self.emit(g, "CONCATENATION", inputs, [out], axis=axis, fusedActivationFunction=activation)]


def _concat_shape(g: Graph, group: list[int], axis: int) -> list[int]:
    """The shape of concatenating `group` along `axis` (-1 where it is not known)."""
    shapes = [g.shape(t) for t in group]
    shape = [next((d for d in dims if d >= 0), -1) for dims in zip(*shapes)]
    along = [s[axis] for s in shapes]
    shape[axis] = sum(along) if all(d >= 0 for d in along) else -1
    return shape


def float32_last_axis(g: Graph, i: int, kernels: str) -> dict | str:
    """{} when op i reads a float32 tensor with a last axis to work along; else why not (`kernels` are float-only)."""
    x = g.inputs(i)[0]
    if g.dtype(x) != "float32":
        return f"{g.op(i)} on {g.dtype(x)} ({kernels} are delegated in float32 only)"
    if len(g.shape(x)) == 0:
        return f"{g.op(i)} of a scalar"
    return {}


def same_quant(a: Any, b: Any) -> bool:
    """True when two quantizations (or both none) map stored values to the same reals."""
    if a is None or b is None:
        return a is None and b is None
    return list(a.scale) == list(b.scale) and _zero_points(a) == _zero_points(b)


def _zero_points(q: Any) -> list[int]:
    return [int(z) for z in q.zeroPoint] if q.zeroPoint is not None else [0] * len(q.scale)
