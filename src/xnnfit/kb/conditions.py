"""The named predicates KB causes are made of; each reads only the graph and the verdicts."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable
from typing import ClassVar

from xnnfit.kb.context import NodeContext
from xnnfit.kb.limits import ADD_SCALE_RATIO, MAX_RANK, MUL_SCALE_RATIO, ratio_text
from xnnfit.kb.shapes import GRAPH_DYNAMIC, has_dynamic_tensor
from xnnfit.kb.tables import IMPLEMENTED, QUANTIZED, STATIC_INPUTS
from xnnfit.kb.versions import form_of
from xnnfit.tflite.graph import TensorInfo


class OpCondition:
    """A condition about nodes of some ops: `ops` (None: any op) is checked first, then `holds`.

    Causes take their op lists from their condition, so each op set is written once;
    `text` is what `describe()` says unless the condition's parameters change it.
    """

    ops: ClassVar[frozenset[str] | None] = None
    text: ClassVar[str] = ""

    def __call__(self, ctx: NodeContext) -> bool:
        return (self.ops is None or ctx.op.op in self.ops) and self.holds(ctx)

    def holds(self, ctx: NodeContext) -> bool:
        """The condition, for a node whose op is in `ops`."""
        return True

    def describe(self) -> str:
        """When the condition holds, in words (`xnnfit explain` shows it)."""
        return self.text


@dataclasses.dataclass(frozen=True)
class Predicate(OpCondition):
    """A condition written as a function of the node (`@condition` makes one)."""

    test: Callable[[NodeContext], bool] = dataclasses.field(compare=False)
    ops: frozenset[str] | None = None  # type: ignore[misc]
    text: str = ""  # type: ignore[misc]

    def holds(self, ctx: NodeContext) -> bool:
        return self.test(ctx)


def condition(ops: str | Iterable[str] | None, text: str) -> Callable[[Callable[[NodeContext], bool]], Predicate]:
    """The decorated function becomes a condition about nodes of `ops` (names, or space-separated; None: any op)."""
    names = None if ops is None else frozenset(ops.split() if isinstance(ops, str) else ops)
    return lambda test: Predicate(test, names, text)


def _is_quasi_static(ctx: NodeContext, position: int) -> bool:
    """A tensor made by a DEQUANTIZE/DENSIFY of a constant counts as static for the delegate."""
    prod = ctx.producer_op(position)
    if prod is None or prod.op not in ("DEQUANTIZE", "DENSIFY"):
        return False
    return all(ctx.sub.tensors[t].constant for t in prod.inputs if t >= 0)


@dataclasses.dataclass(frozen=True)
class OpIn(OpCondition):
    """The node's op is one of `ops`."""

    ops: frozenset[str]  # type: ignore[misc]

    @classmethod
    def of(cls, ops: str) -> OpIn:
        """The condition for the ops named in `ops`, space-separated."""
        return cls(frozenset(ops.split()))

    def describe(self) -> str:
        return f"op in {{{', '.join(sorted(self.ops))}}}"


@dataclasses.dataclass(frozen=True)
class NotImplemented_(OpCondition):
    """The op is not in the delegate's switch and no other family claims it."""

    exclude: frozenset[str]
    text: ClassVar[str] = "op not handled by the XNNPACK delegate"

    def holds(self, ctx: NodeContext) -> bool:
        return ctx.op.op not in IMPLEMENTED and ctx.op.op != "CUSTOM" and ctx.op.op not in self.exclude


@condition(frozenset(STATIC_INPUTS), "a weight/shape/axes/bounds input is not a constant")
def computed_parameter(ctx: NodeContext) -> bool:
    """A weight or parameter input that must be a constant is computed at run time."""
    for pos in STATIC_INPUTS.get(ctx.op.op, ()):
        t = ctx.tensor(pos)
        if t is not None and not t.constant and not _is_quasi_static(ctx, pos):
            return True
    return False


@dataclasses.dataclass(frozen=True)
class AnyTensorDtype(OpCondition):
    """Any input or output of the node has one of `dtypes`."""

    dtypes: frozenset[str]
    kind: ClassVar[str] = "tensor"

    def tensors(self, ctx: NodeContext) -> list[TensorInfo]:
        """The tensors whose type is checked."""
        return [*ctx.inputs, *ctx.outputs]

    def holds(self, ctx: NodeContext) -> bool:
        return any(t.dtype in self.dtypes for t in self.tensors(ctx))

    def describe(self) -> str:
        return f"a {self.kind} of type {'/'.join(sorted(self.dtypes))}"


@dataclasses.dataclass(frozen=True)
class DataDtype(AnyTensorDtype):
    """An implemented op reads or writes a data tensor of a type XNNPACK has no values for."""

    kind: ClassVar[str] = "data tensor"

    def tensors(self, ctx: NodeContext) -> list[TensorInfo]:
        """Data inputs and outputs of an implemented op, but a quantized int32 (a conv/FC bias, which is fine)."""
        if ctx.op.op not in IMPLEMENTED:
            return []
        return [t for t in (*ctx.data_inputs(), *ctx.outputs) if not (t.dtype == "int32" and t.quantized)]


@dataclasses.dataclass(frozen=True)
class QuantizedOp(OpCondition):
    """One of `ops` with a quantized (int8/uint8) data input."""

    ops: frozenset[str]  # type: ignore[misc]

    def holds(self, ctx: NodeContext) -> bool:
        first = ctx.tensor(0)
        return first is not None and first.dtype in QUANTIZED

    def describe(self) -> str:
        return f"quantized {{{', '.join(sorted(self.ops))}}}"


@condition("BATCH_MATMUL", "quantized BATCH_MATMUL with a non-zero zero point on B")
def quantized_matmul_zero_point(ctx: NodeContext) -> bool:
    """Quantized BATCH_MATMUL whose B operand has a non-zero zero point (activation x activation)."""
    a, b = ctx.tensor(0), ctx.tensor(1)
    if a is None or b is None or a.dtype not in QUANTIZED:
        return False
    return (b.zero_point or 0) != 0 or (b.num_scales > 1 and a.num_scales == 1 and b.dtype == a.dtype)


@condition("DEPTHWISE_CONV_2D", "depthwise conv with float input and int8 filter")
def hybrid_depthwise(ctx: NodeContext) -> bool:
    """DEPTHWISE_CONV_2D with float activations and int8 weights (dynamic-range quantization)."""
    x, w = ctx.tensor(0), ctx.tensor(1)
    return x is not None and w is not None and x.dtype.startswith("float") and w.dtype in QUANTIZED


@condition("STRIDED_SLICE", "stride != 1 or ellipsis/new-axis/shrink mask")
def strided_slice_limits(ctx: NodeContext) -> bool:
    """STRIDED_SLICE with a stride other than 1 or an ellipsis/new-axis/shrink mask."""
    o = ctx.op.options
    if o.get("ellipsisMask") or o.get("newAxisMask") or o.get("shrinkAxisMask"):
        return True
    return _strides_not_one(ctx)


@condition("SLICE", "size -1 (to the end)")
def slice_to_end(ctx: NodeContext) -> bool:
    """SLICE whose size parameter holds -1 ('to the end of the axis')."""
    t = ctx.tensor(2)
    return t is not None and t.values is not None and any(v < 0 for v in t.values)


def _strides_not_one(ctx: NodeContext) -> bool:
    t = ctx.tensor(3)
    return t is not None and t.values is not None and any(v != 1 for v in t.values)


@dataclasses.dataclass(frozen=True)
class InputCountOutside(OpCondition):
    """`op` with fewer than `low` or more than `high` inputs (or outputs)."""

    op: str
    low: int
    high: int
    outputs: bool = False

    @property  # type: ignore[override]
    def ops(self) -> frozenset[str]:
        return frozenset({self.op})

    def holds(self, ctx: NodeContext) -> bool:
        n = len(ctx.outputs if self.outputs else ctx.inputs)
        return not (self.low <= n <= self.high)

    def describe(self) -> str:
        return f"{self.op} with {'outputs' if self.outputs else 'inputs'} outside {self.low}..{self.high}"


@condition("AVERAGE_POOL_2D MAX_POOL_2D", "pool window 1x1 with stride > 1, or stride > window")
def pool_stride(ctx: NodeContext) -> bool:
    """Pooling with a 1x1 window and stride > 1, or a stride larger than the window."""
    o = ctx.op.options
    fh, fw, sh, sw = (o.get(k, 1) for k in ("filterHeight", "filterWidth", "strideH", "strideW"))
    return (fh == 1 and fw == 1 and (sh > 1 or sw > 1)) or sh > fh or sw > fw


@dataclasses.dataclass(frozen=True)
class RankAbove(OpCondition):
    """A tensor of the node has more than `rank` dimensions."""

    rank: int = MAX_RANK

    def holds(self, ctx: NodeContext) -> bool:
        return any(len(t.shape) > self.rank for t in (*ctx.data_inputs(), *ctx.outputs))

    def describe(self) -> str:
        return f"a tensor of rank > {self.rank}"


@condition("DEQUANTIZE", "DEQUANTIZE feeding a node on CPU")
def dequantize_consumer_on_cpu(ctx: NodeContext) -> bool:
    """A DEQUANTIZE of constant weights whose consumer runs on CPU kernels.

    A DEQUANTIZE of an int8 activation is a standalone XNNPACK convert, delegated
    whatever reads it (found by prediction on XR014's int8 RoPE example).
    """
    x = ctx.tensor(0)
    return x is not None and x.constant and any(ctx.delegated.get(c.index) is False for c in ctx.consumer_ops())


@condition("DEQUANTIZE", "DEQUANTIZE of an fp16 activation")
def float16_activation(ctx: NodeContext) -> bool:
    """DEQUANTIZE of a non-constant float16 tensor (an fp16 activation)."""
    x = ctx.tensor(0)
    return x is not None and x.dtype == "float16" and not x.constant


@dataclasses.dataclass(frozen=True)
class CustomOp(OpCondition):
    """A CUSTOM op; `flex` selects Flex (TF kernel) ops or the others."""

    ops: ClassVar[frozenset[str]] = frozenset({"CUSTOM"})
    flex: bool
    delegate_implements: frozenset[str] = frozenset(
        {
            "Convolution2DTransposeBias",
            "MaxPoolingWithArgmax2D",
            "MaxUnpooling2D",
            "odml.scaled_dot_product_attention",
            "moe",
        }
    )

    def holds(self, ctx: NodeContext) -> bool:
        code = ctx.op.custom_code or ""
        is_flex = code.startswith("Flex")
        return is_flex if self.flex else not is_flex and code not in self.delegate_implements

    def describe(self) -> str:
        return "Flex (TF kernel) custom op" if self.flex else "custom op XNNPACK does not implement"


@condition("CONV_2D DEPTHWISE_CONV_2D FULLY_CONNECTED TRANSPOSE_CONV", "weights come from READ_VARIABLE")
def weights_from_variable(ctx: NodeContext) -> bool:
    """Conv/FC weights read from a resource variable (READ_VARIABLE): the model was not frozen."""
    producers = ctx.sub.producers()
    frontier = [t for t in ctx.op.inputs[1:3] if t >= 0]
    for _ in range(4):  # READ_VARIABLE -> TRANSPOSE/RESHAPE/CAST -> weight
        ops = [ctx.sub.ops[producers[t]] for t in frontier if t in producers]
        if any(op.op == "READ_VARIABLE" for op in ops):
            return True
        frontier = [t for op in ops for t in op.inputs if t >= 0]
    return False


@condition(
    "ADD SUB MUL",
    (
        f"quantized ADD/SUB input/output scale ratio outside {ratio_text(ADD_SCALE_RATIO)}, "
        f"MUL outside {ratio_text(MUL_SCALE_RATIO)}"
    ),
)
def quantized_scale_ratio(ctx: NodeContext) -> bool:
    """Quantized ADD/SUB (or MUL) whose input/output scales are further apart than XNNPACK handles."""
    a, b, out = ctx.tensor(0), ctx.tensor(1), ctx.tensor(0, outputs=True)
    if a is None or b is None or out is None or a.dtype not in QUANTIZED or not (a.scale and b.scale and out.scale):
        return False
    if ctx.op.op == "MUL":
        return not _within(a.scale * b.scale / out.scale, MUL_SCALE_RATIO)
    return any(not _within(s / out.scale, ADD_SCALE_RATIO) for s in (a.scale, b.scale))


def _within(ratio: float, bounds: tuple[float, float]) -> bool:
    return bounds[0] <= ratio < bounds[1]


@condition(None, "the target runtime's XNNPACK refused this op in its one-op probe")
def refused_on_target_runtime(ctx: NodeContext) -> bool:
    """A --runtime target's XNNPACK left this op, in this node's form, on CPU in its one-op probe (kb/versions.json)."""
    if ctx.runtime is None:
        return False
    from xnnfit.kb.oneop import variant_of  # oneop builds probe models; only targets need it

    form = form_of(tuple(t.dtype for t in ctx.inputs + ctx.outputs))
    variant = variant_of(ctx.sub, ctx.op)
    return bool(ctx.runtime.refuses(f"{ctx.op.op}:{variant}" if variant else ctx.op.op, form))


@condition(None, "the target runtime skips XNNPACK for graphs with dynamic tensors, and this graph has one")
def runtime_skips_dynamic_graph(ctx: NodeContext) -> bool:
    """A --runtime target that applies no XNNPACK at all to a graph with a dynamic tensor, and this graph has one.

    The target's probe table says so.
    """
    return ctx.runtime is not None and bool(ctx.runtime.refuses(GRAPH_DYNAMIC, "fp32")) and has_dynamic_tensor(ctx.sub)
