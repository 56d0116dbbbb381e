"""The named predicates KB causes are made of; each reads only the graph and the verdicts."""

from __future__ import annotations

import dataclasses
from typing import ClassVar

from xnnfit.kb.cause import NodeContext
from xnnfit.kb.shapes import GRAPH_DYNAMIC, has_dynamic_tensor
from xnnfit.kb.tables import IMPLEMENTED, PARAM_INPUTS, QUANTIZED, STATIC_INPUTS
from xnnfit.kb.versions import form_of


class OpCondition:
    """A condition about nodes of some ops: `ops` (None: any op) is checked first, then `holds`.

    Causes take their op lists from their condition, so each op set is written once.
    """

    ops: ClassVar[frozenset[str] | None] = None

    def __call__(self, ctx: NodeContext) -> bool:
        return (self.ops is None or ctx.op.op in self.ops) and self.holds(ctx)

    def holds(self, ctx: NodeContext) -> bool:
        """The condition, for a node whose op is in `ops`."""
        return True

    def describe(self) -> str:
        raise NotImplementedError


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

    def describe(self) -> str:
        return f"op in {{{', '.join(sorted(self.ops))}}}"


@dataclasses.dataclass(frozen=True)
class NotImplemented_(OpCondition):
    """The op is not in the delegate's switch and no other family claims it."""

    exclude: frozenset[str]

    def holds(self, ctx: NodeContext) -> bool:
        return ctx.op.op not in IMPLEMENTED and ctx.op.op != "CUSTOM" and ctx.op.op not in self.exclude

    def describe(self) -> str:
        return "op not handled by the XNNPACK delegate"


@dataclasses.dataclass(frozen=True)
class ComputedParameter(OpCondition):
    """A weight or parameter input that must be a constant is computed at run time."""

    ops: ClassVar[frozenset[str]] = frozenset(STATIC_INPUTS)

    def holds(self, ctx: NodeContext) -> bool:
        for pos in STATIC_INPUTS.get(ctx.op.op, ()):
            t = ctx.tensor(pos)
            if t is not None and not t.constant and not _is_quasi_static(ctx, pos):
                return True
        return False

    def describe(self) -> str:
        return "a weight/shape/axes/bounds input is not a constant"


@dataclasses.dataclass(frozen=True)
class DataDtype(OpCondition):
    """An implemented op reads or writes a data tensor of a type XNNPACK has no values for."""

    dtypes: frozenset[str]

    def holds(self, ctx: NodeContext) -> bool:
        if ctx.op.op not in IMPLEMENTED:
            return False
        params = PARAM_INPUTS.get(ctx.op.op, ())
        tensors = [
            t
            for i, t in enumerate(ctx.sub.tensors[x] if x >= 0 else None for x in ctx.op.inputs)
            if t is not None and i not in params
        ]
        tensors += ctx.outputs
        # a quantized int32 bias of conv/FC is fine
        return any(t.dtype in self.dtypes and not (t.dtype == "int32" and t.quantized) for t in tensors)

    def describe(self) -> str:
        return f"a data tensor of type {'/'.join(sorted(self.dtypes))}"


@dataclasses.dataclass(frozen=True)
class AnyTensorDtype(OpCondition):
    """Any input or output of the node has one of `dtypes`."""

    dtypes: frozenset[str]

    def holds(self, ctx: NodeContext) -> bool:
        return any(t.dtype in self.dtypes for t in (*ctx.inputs, *ctx.outputs))

    def describe(self) -> str:
        return f"a tensor of type {'/'.join(sorted(self.dtypes))}"


@dataclasses.dataclass(frozen=True)
class QuantizedOp(OpCondition):
    """One of `ops` with a quantized (int8/uint8) data input."""

    ops: frozenset[str]  # type: ignore[misc]

    def holds(self, ctx: NodeContext) -> bool:
        first = ctx.tensor(0)
        return first is not None and first.dtype in QUANTIZED

    def describe(self) -> str:
        return f"quantized {{{', '.join(sorted(self.ops))}}}"


@dataclasses.dataclass(frozen=True)
class QuantizedMatmulZeroPoint(OpCondition):
    """Quantized BATCH_MATMUL whose B operand has a non-zero zero point (activation x activation)."""

    ops: ClassVar[frozenset[str]] = frozenset({"BATCH_MATMUL"})

    def holds(self, ctx: NodeContext) -> bool:
        a, b = ctx.tensor(0), ctx.tensor(1)
        if a is None or b is None or a.dtype not in QUANTIZED:
            return False
        return (b.zero_point or 0) != 0 or (b.num_scales > 1 and a.num_scales == 1 and b.dtype == a.dtype)

    def describe(self) -> str:
        return "quantized BATCH_MATMUL with a non-zero zero point on B"


@dataclasses.dataclass(frozen=True)
class HybridDepthwise(OpCondition):
    """DEPTHWISE_CONV_2D with float activations and int8 weights (dynamic-range quantization)."""

    ops: ClassVar[frozenset[str]] = frozenset({"DEPTHWISE_CONV_2D"})

    def holds(self, ctx: NodeContext) -> bool:
        x, w = ctx.tensor(0), ctx.tensor(1)
        return x is not None and w is not None and x.dtype.startswith("float") and w.dtype in QUANTIZED

    def describe(self) -> str:
        return "depthwise conv with float input and int8 filter"


@dataclasses.dataclass(frozen=True)
class StridedSliceLimits(OpCondition):
    """STRIDED_SLICE with a stride other than 1 or an ellipsis/new-axis/shrink mask."""

    ops: ClassVar[frozenset[str]] = frozenset({"STRIDED_SLICE"})

    def holds(self, ctx: NodeContext) -> bool:
        o = ctx.op.options
        if o.get("ellipsisMask") or o.get("newAxisMask") or o.get("shrinkAxisMask"):
            return True
        return _strides_not_one(ctx)

    def describe(self) -> str:
        return "stride != 1 or ellipsis/new-axis/shrink mask"


@dataclasses.dataclass(frozen=True)
class SliceToEnd(OpCondition):
    """SLICE whose size parameter holds -1 ('to the end of the axis')."""

    ops: ClassVar[frozenset[str]] = frozenset({"SLICE"})

    def holds(self, ctx: NodeContext) -> bool:
        t = ctx.tensor(2)
        return t is not None and t.values is not None and any(v < 0 for v in t.values)

    def describe(self) -> str:
        return "size -1 (to the end)"


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


@dataclasses.dataclass(frozen=True)
class PoolStride(OpCondition):
    """Pooling with a 1x1 window and stride > 1, or a stride larger than the window."""

    ops: ClassVar[frozenset[str]] = frozenset({"AVERAGE_POOL_2D", "MAX_POOL_2D"})

    def holds(self, ctx: NodeContext) -> bool:
        o = ctx.op.options
        fh, fw, sh, sw = (o.get(k, 1) for k in ("filterHeight", "filterWidth", "strideH", "strideW"))
        return (fh == 1 and fw == 1 and (sh > 1 or sw > 1)) or sh > fh or sw > fw

    def describe(self) -> str:
        return "pool window 1x1 with stride > 1, or stride > window"


@dataclasses.dataclass(frozen=True)
class RankAbove(OpCondition):
    """A tensor of the node has more than `rank` dimensions."""

    rank: int

    def holds(self, ctx: NodeContext) -> bool:
        params = PARAM_INPUTS.get(ctx.op.op, ())
        ins = [t for i, t in enumerate(ctx.inputs) if i not in params]
        return any(len(t.shape) > self.rank for t in (*ins, *ctx.outputs))

    def describe(self) -> str:
        return f"a tensor of rank > {self.rank}"


@dataclasses.dataclass(frozen=True)
class DequantizeConsumerOnCpu(OpCondition):
    """A DEQUANTIZE of constant weights whose consumer runs on CPU kernels.

    A DEQUANTIZE of an int8 activation is a standalone XNNPACK convert, delegated
    whatever reads it (found by prediction on XR014's int8 RoPE example).
    """

    ops: ClassVar[frozenset[str]] = frozenset({"DEQUANTIZE"})

    def holds(self, ctx: NodeContext) -> bool:
        x = ctx.tensor(0)
        return x is not None and x.constant and any(ctx.delegated.get(c.index) is False for c in ctx.consumer_ops())

    def describe(self) -> str:
        return "DEQUANTIZE feeding a node on CPU"


@dataclasses.dataclass(frozen=True)
class Float16Activation(OpCondition):
    """DEQUANTIZE of a non-constant float16 tensor (an fp16 activation)."""

    ops: ClassVar[frozenset[str]] = frozenset({"DEQUANTIZE"})

    def holds(self, ctx: NodeContext) -> bool:
        x = ctx.tensor(0)
        return x is not None and x.dtype == "float16" and not x.constant

    def describe(self) -> str:
        return "DEQUANTIZE of an fp16 activation"


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


@dataclasses.dataclass(frozen=True)
class WeightsFromVariable(OpCondition):
    """Conv/FC weights read from a resource variable (READ_VARIABLE): the model was not frozen."""

    ops: ClassVar[frozenset[str]] = frozenset({"CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "TRANSPOSE_CONV"})

    def holds(self, ctx: NodeContext) -> bool:
        producers = ctx.sub.producers()
        frontier = [t for t in ctx.op.inputs[1:3] if t >= 0]
        for _ in range(4):  # READ_VARIABLE -> TRANSPOSE/RESHAPE/CAST -> weight
            ops = [ctx.sub.ops[producers[t]] for t in frontier if t in producers]
            if any(op.op == "READ_VARIABLE" for op in ops):
                return True
            frontier = [t for op in ops for t in op.inputs if t >= 0]
        return False

    def describe(self) -> str:
        return "weights come from READ_VARIABLE"


@dataclasses.dataclass(frozen=True)
class QuantizedScaleRatio(OpCondition):
    """Quantized ADD/SUB (or MUL) whose input/output scales are further apart than XNNPACK handles."""

    ops: ClassVar[frozenset[str]] = frozenset({"ADD", "SUB", "MUL"})

    def holds(self, ctx: NodeContext) -> bool:
        a, b, out = ctx.tensor(0), ctx.tensor(1), ctx.tensor(0, outputs=True)
        if a is None or b is None or out is None or a.dtype not in QUANTIZED or not (a.scale and b.scale and out.scale):
            return False
        if ctx.op.op in ("ADD", "SUB"):
            return any(not (1 / 1024 <= s / out.scale < 256) for s in (a.scale, b.scale))
        if ctx.op.op == "MUL":
            return not (1 / 65536 <= a.scale * b.scale / out.scale < 256)
        return False

    def describe(self) -> str:
        return "quantized ADD/SUB input/output scale ratio outside [1/1024, 256), MUL outside [1/65536, 256)"


@dataclasses.dataclass(frozen=True)
class RefusedOnTargetRuntime(OpCondition):
    """A --runtime target's XNNPACK left this op, in this node's form, on CPU in its one-op probe (kb/versions.json)."""

    def holds(self, ctx: NodeContext) -> bool:
        if ctx.runtime is None:
            return False
        from xnnfit.kb.oneop import variant_of  # oneop builds probe models; only targets need it

        form = form_of(tuple(t.dtype for t in ctx.inputs + ctx.outputs))
        variant = variant_of(ctx.sub, ctx.op)
        return bool(ctx.runtime.refuses(f"{ctx.op.op}:{variant}" if variant else ctx.op.op, form))

    def describe(self) -> str:
        return "the target runtime's XNNPACK refused this op in its one-op probe"


@dataclasses.dataclass(frozen=True)
class RuntimeSkipsDynamicGraph(OpCondition):
    """A --runtime target that applies no XNNPACK at all to a graph with a dynamic tensor, and this graph has one.

    The target's probe table says so.
    """

    def holds(self, ctx: NodeContext) -> bool:
        return (
            ctx.runtime is not None and bool(ctx.runtime.refuses(GRAPH_DYNAMIC, "fp32")) and has_dynamic_tensor(ctx.sub)
        )

    def describe(self) -> str:
        return "the target runtime skips XNNPACK for graphs with dynamic tensors, and this graph has one"
