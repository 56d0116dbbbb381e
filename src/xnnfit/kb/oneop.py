"""One-op probe models that prove the delegate's op tables (kb/tables.py) on the installed runtime.

Every op of `IMPLEMENTED` and `FLOAT_ONLY` gets a model made of that op alone, written
straight as a TFLite flatbuffer (no converter, no TensorFlow): `one_op_model(op)` is the
float32 form, `one_op_model(op, quantized=True)` the fully int8 one. `SPECS` says what
each op is fed; `expected(op, form)` is the verdict the runtime must give, which is the
table's claim unless `VERDICTS` records, with the reason, what the runtime does instead.
tests/kb/test_tables.py runs every probe and fails when the runtime disagrees.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable
from typing import Any

import numpy as np

from xnnfit.kb.tables import FLOAT_ONLY, IMPLEMENTED
from xnnfit.tflite import build
from xnnfit.tflite.schema import fb
from xnnfit.tflite.writer import serialize

FP32 = "fp32"
INT8 = "int8"
FORMS = (FP32, INT8)

# Operand kinds: what an input is in each form.
ACT = "act"  # float32 activation; int8 in the quantized form
QACT = "qact"  # int8 activation in both forms (what DEQUANTIZE reads)
WEIGHT = "weight"  # float32 constant; int8 constant in the quantized form
BIAS = "bias"  # float32 constant; int32 constant (scale in_scale * weight_scale) in the quantized form
PARAM = "param"  # int32 constant (shape, axes, bounds): the same in both forms

# int8 activations span [-2, 2): inside the domain of every probe op, with 256 steps across it.
ACT_SCALE = 1.0 / 64
# int8 weights span [-1, 1): the float weights below are drawn from that range.
WEIGHT_SCALE = 1.0 / 128
# The shape every data input has unless the op needs another: NHWC, channels divisible by 4
# (DEPTH_TO_SPACE with block 2) and small enough to build and run in microseconds.
X = (1, 4, 4, 8)
# Seed for constant weights: probes are byte-identical from run to run.
SEED = 0
# Name of the only STABLEHLO_COMPOSITE the delegate implements (scaled dot-product attention).
SDPA_COMPOSITE = "odml.scaled_dot_product_attention"
_NP = {"float32": np.float32, "int8": np.int8, "int32": np.int32}


@dataclasses.dataclass(frozen=True)
class Operand:
    """One input of a probe op."""

    kind: str
    shape: tuple[int, ...]
    values: tuple[int, ...] = ()  # contents of a PARAM


@dataclasses.dataclass(frozen=True)
class Options:
    """A builtin options table: its schema name ('Conv2DOptions') and the fields set."""

    name: str
    fields: tuple[tuple[str, Any], ...] = ()

    def build(self) -> Any:
        """The flatbuffer object (fb.Conv2DOptionsT...) with the fields set."""
        obj = getattr(fb, f"{self.name}T")()
        for key, value in self.fields:
            setattr(obj, key, value)
        return obj


@dataclasses.dataclass(frozen=True)
class OpSpec:
    """What a one-op probe feeds its op and what it gets back."""

    inputs: tuple[Operand, ...]
    options: Options | None = None
    outputs: int = 1
    output_dtype: str | None = None  # fixed output type; None: float32, or int8 in the quantized form
    output_quant: tuple[float, int] = (ACT_SCALE, 0)  # int8 output (scale, zero point) the CPU kernel accepts
    output_shape: tuple[int, ...] | None = None  # the guess for the first build; None: the first data input's


@dataclasses.dataclass(frozen=True)
class Verdict:
    """What the runtime does with a probe's op node.

    `delegated` None means the runtime cannot run the model at all: the node went to a
    built-in kernel that has no such type either and failed to prepare (so XNNPACK did
    not take it).
    """

    delegated: bool | None
    reason: str = ""


def opt(name: str, /, **fields: Any) -> Options:
    """Options `name` with `fields` set."""
    return Options(name, tuple(sorted(fields.items())))


def act(*shape: int) -> Operand:
    """A data input of `shape` (X by default)."""
    return Operand(ACT, shape or X)


def param(shape: tuple[int, ...], *values: int) -> Operand:
    """An int32 constant parameter."""
    return Operand(PARAM, shape, values)


def _unary(options: Options | None = None, **kw: Any) -> OpSpec:
    return OpSpec((act(),), options, **kw)


def _binary(options: Options | None = None) -> OpSpec:
    return OpSpec((act(), act()), options)


def _reduce() -> OpSpec:
    return OpSpec((act(), param((2,), 1, 2)), opt("ReducerOptions", keepDims=True))


_SAME = fb.Padding.SAME
_VALID = fb.Padding.VALID
_POOL = opt("Pool2DOptions", padding=_VALID, strideW=2, strideH=2, filterWidth=2, filterHeight=2)

# op -> what its one-op probe is made of. Shapes and constants are chosen so that the op is
# valid for the built-in kernels and has nothing XNNPACK refuses besides what is tested.
SPECS: dict[str, OpSpec] = {
    **{
        op: _unary()
        for op in "ABS CEIL COS EXP FLOOR HARD_SWISH LOG NEG RELU RELU6 RELU_N1_TO_1 ROUND RSQRT SIN SQRT "
        "SQUARE ELU".split()
    },
    "LOGISTIC": _unary(output_quant=(1.0 / 256, -128)),  # the int8 CPU kernel's fixed output range [0, 1)
    "TANH": _unary(output_quant=(1.0 / 128, 0)),  # the int8 CPU kernel's fixed output range [-1, 1)
    "GELU": _unary(opt("GeluOptions", approximate=False)),
    "LEAKY_RELU": _unary(opt("LeakyReluOptions", alpha=0.2)),
    "SOFTMAX": _unary(opt("SoftmaxOptions", beta=1.0), output_quant=(1.0 / 256, -128)),  # int8 CPU kernel's range
    "ADD": _binary(opt("AddOptions")),
    "SUB": _binary(opt("SubOptions")),
    "MUL": _binary(opt("MulOptions")),
    "DIV": _binary(opt("DivOptions")),
    "MAXIMUM": _binary(opt("MaximumMinimumOptions")),
    "MINIMUM": _binary(opt("MaximumMinimumOptions")),
    "SQUARED_DIFFERENCE": _binary(opt("SquaredDifferenceOptions")),
    "PRELU": OpSpec((act(), Operand(WEIGHT, (1, 1, X[-1])))),
    "DEQUANTIZE": OpSpec((Operand(QACT, X),), output_dtype="float32"),
    "QUANTIZE": OpSpec((act(),), output_dtype="int8"),
    "CONV_2D": OpSpec(
        (act(1, 8, 8, 4), Operand(WEIGHT, (8, 3, 3, 4)), Operand(BIAS, (8,))),
        opt("Conv2DOptions", padding=_SAME, strideW=1, strideH=1, dilationWFactor=1, dilationHFactor=1),
    ),
    "DEPTHWISE_CONV_2D": OpSpec(
        (act(1, 8, 8, 4), Operand(WEIGHT, (1, 3, 3, 4)), Operand(BIAS, (4,))),
        opt(
            "DepthwiseConv2DOptions",
            padding=_SAME,
            strideW=1,
            strideH=1,
            depthMultiplier=1,
            dilationWFactor=1,
            dilationHFactor=1,
        ),
    ),
    "TRANSPOSE_CONV": OpSpec(  # output shape first; the delegate needs it constant
        (param((4,), 1, 8, 8, 4), Operand(WEIGHT, (4, 3, 3, 8)), act(), Operand(BIAS, (4,))),
        opt("TransposeConvOptions", padding=_SAME, strideW=2, strideH=2),
    ),
    "FULLY_CONNECTED": OpSpec(
        (act(1, 16), Operand(WEIGHT, (8, 16)), Operand(BIAS, (8,))), opt("FullyConnectedOptions")
    ),
    "BATCH_MATMUL": OpSpec((act(1, 4, 8), act(1, 8, 4)), opt("BatchMatMulOptions")),
    "AVERAGE_POOL_2D": OpSpec((act(1, 8, 8, 4),), _POOL),
    "MAX_POOL_2D": OpSpec((act(1, 8, 8, 4),), _POOL),
    "MEAN": _reduce(),
    "SUM": _reduce(),
    "REDUCE_MAX": _reduce(),
    "REDUCE_MIN": _reduce(),
    "RESHAPE": OpSpec((act(), param((3,), 1, 16, 8)), opt("ReshapeOptions", newShape=[1, 16, 8])),
    "EXPAND_DIMS": OpSpec((act(), param((1,), 0))),
    "TRANSPOSE": OpSpec((act(), param((4,), 0, 2, 1, 3))),
    "CONCATENATION": OpSpec((act(), act()), opt("ConcatenationOptions", axis=3)),
    "SPLIT": OpSpec((param((), 3), act()), opt("SplitOptions", numSplits=2), outputs=2),
    # SLICE's kernel checks the output shape stored in the file, so the first build needs the real one.
    "SLICE": OpSpec((act(), param((4,), 0, 1, 1, 0), param((4,), 1, 2, 2, 8)), output_shape=(1, 2, 2, 8)),
    "STRIDED_SLICE": OpSpec(
        (act(), param((4,), 0, 0, 0, 0), param((4,), 1, 4, 4, 4), param((4,), 1, 1, 1, 1)), opt("StridedSliceOptions")
    ),
    "PAD": OpSpec((act(), param((4, 2), 0, 0, 1, 1, 1, 1, 0, 0))),
    "DEPTH_TO_SPACE": OpSpec((act(),), opt("DepthToSpaceOptions", blockSize=2)),
    "SPACE_TO_DEPTH": OpSpec((act(),), opt("SpaceToDepthOptions", blockSize=2)),
    "RESIZE_BILINEAR": OpSpec((act(), param((2,), 8, 8)), opt("ResizeBilinearOptions")),
}

# Ops of the delegate's VisitNode switch (HEAD and v2.2.0 source) kept out of IMPLEMENTED, and why.
OUTSIDE: dict[str, str] = {
    "EXPAND_DIMS": "its case calls VisitExpandDimsNode, which returns kTfLiteError before any check "
    "(disabled by a revert)",
}

# int8 forms of FLOAT_ONLY ops that the built-in kernels cannot run either: the node fails to
# prepare on CPU, which it would not if XNNPACK had taken it.
_NO_INT8_CPU_KERNEL = ("CEIL", "COS", "FLOOR", "ROUND", "SIN", "SQUARE")

# Probes whose verdict is not the table's plain claim, keyed by (op, form), with the reason.
# The test asserts these verdicts too, so a runtime that changes them fails it.
VERDICTS: dict[tuple[str, str], Verdict] = {
    **{(op, FP32): Verdict(False, reason) for op, reason in OUTSIDE.items()},
    **{
        (op, INT8): Verdict(
            None, "XNNPACK refuses it (float only) and the built-in kernel has no int8 version: the model cannot run"
        )
        for op in _NO_INT8_CPU_KERNEL
    },
}


class _Model:
    """A model under construction (tflite/build.py does the writing)."""

    def __init__(self) -> None:
        self.model = build.new_model("xnnfit one-op probe")

    def subgraph(self, name: str) -> _Subgraph:
        """A new, empty subgraph appended to the model."""
        return _Subgraph(self.model, build.new_subgraph(self.model, name))

    def to_bytes(self) -> bytes:
        """The .tflite bytes."""
        return serialize(self.model)


@dataclasses.dataclass
class _Subgraph:
    model: Any
    sub: Any

    def tensor(
        self, shape: tuple[int, ...], dtype: str, name: str, quant: Any = None, data: np.ndarray | None = None
    ) -> int:
        """A new tensor (a constant when `data` is given); returns its index."""
        values = None if data is None else np.asarray(data, dtype=_NP[dtype])
        return build.add_tensor(self.model, self.sub, shape, dtype, name, quant, values)

    def op(self, name: str, inputs: list[int], outputs: list[int], options: Options | None = None) -> None:
        """Append builtin op `name`."""
        built = options.build() if options is not None else None
        self.sub.operators.append(
            build.make_op(self.model, name, inputs, outputs, built, options.name if options else None)
        )


def _operand(g: _Subgraph, spec: OpSpec, i: int, quantized: bool, rng: np.random.Generator) -> int:
    """Add input `i` of `spec`; subgraph inputs are registered too."""
    operand = spec.inputs[i]
    name, shape = f"in{i}", operand.shape
    if operand.kind == PARAM:
        return g.tensor(shape, "int32", name, data=np.asarray(operand.values, dtype=np.int32).reshape(shape))
    if operand.kind in (WEIGHT, BIAS):
        real = rng.uniform(-1.0, 1.0, size=shape).astype(np.float32)
        if not quantized:
            return g.tensor(shape, "float32", name, data=real)
        if operand.kind == WEIGHT:
            return g.tensor(
                shape,
                "int8",
                name,
                build.per_tensor_quant(WEIGHT_SCALE, 0),
                np.round(real / WEIGHT_SCALE).clip(-127, 127),
            )
        bias_scale = ACT_SCALE * WEIGHT_SCALE
        return g.tensor(shape, "int32", name, build.per_tensor_quant(bias_scale, 0), np.round(real / bias_scale))
    int8 = operand.kind == QACT or quantized
    t = g.tensor(shape, "int8" if int8 else "float32", name, build.per_tensor_quant(ACT_SCALE, 0) if int8 else None)
    g.sub.inputs.append(t)
    return t


def _build(op: str, quantized: bool, output_shapes: tuple[tuple[int, ...], ...], spec: OpSpec | None = None) -> bytes:
    spec = spec or SPECS[op]
    m = _Model()
    g = m.subgraph(f"probe_{op.lower()}")
    rng = np.random.default_rng(SEED)
    inputs = [_operand(g, spec, i, quantized, rng) for i in range(len(spec.inputs))]
    dtype = spec.output_dtype or ("int8" if quantized else "float32")
    quant = build.per_tensor_quant(*spec.output_quant) if dtype == "int8" else None
    outputs = [g.tensor(shape, dtype, f"out{k}", quant) for k, shape in enumerate(output_shapes)]
    g.sub.outputs = list(outputs)
    g.op(op, inputs, outputs, spec.options)
    return m.to_bytes()


def reference_run(content: bytes) -> tuple[tuple[int, ...], ...]:
    """Run `content` once on the built-in kernels (no delegate); the output shapes it produced."""
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    interp = Interpreter(
        model_content=content, experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
    )
    interp.allocate_tensors()
    for d in interp.get_input_details():
        interp.set_tensor(d["index"], np.ones(d["shape"], dtype=d["dtype"]))
    interp.invoke()
    return tuple(tuple(int(x) for x in interp.get_tensor(d["index"]).shape) for d in interp.get_output_details())


@functools.cache
def _output_shapes(op: str, variant: str | None = None) -> tuple[tuple[int, ...], ...]:
    """The op's real output shapes: the float form built with a guess, then run."""
    spec = VARIANTS[op, variant] if variant else SPECS[op]
    guess = spec.output_shape or next(o.shape for o in spec.inputs if o.kind in (ACT, QACT))
    return reference_run(_build(op, False, (guess,) * spec.outputs, spec))


# Variants: an op probed once more with the parameter some runtime versions decide on (the
# installed runtime takes both). kb/versions.json keys them 'OP:variant/form';
# variant_of() names the variant of a real node, so explanations look up the right row.
_INNER = dict(inputs=(act(1, 16, 8), param((1,), 2)), options=opt("ReducerOptions", keepDims=True))
REDUCERS = frozenset({"MEAN", "SUM", "REDUCE_MAX", "REDUCE_MIN"})
CONCAT_COUNTS = (3, 4, 5)  # input counts XNNPACK versions moved their limit through (the plain probe has 2)
VARIANTS: dict[tuple[str, str], OpSpec] = {
    ("GELU", "approximate"): _unary(opt("GeluOptions", approximate=True)),  # tanh form: keras-hub BERT's gelu
    **{
        (op, "inner-axis"): OpSpec(**_INNER) for op in sorted(REDUCERS)
    },  # over the channels of a rank-3 tensor: LayerNorm's mean
    **{
        ("CONCATENATION", f"{n}-inputs"): OpSpec((act(),) * n, opt("ConcatenationOptions", axis=3))
        for n in CONCAT_COUNTS
    },
    ("SLICE", "size-minus-1"): OpSpec(
        (act(), param((4,), 0, 1, 1, 0), param((4,), 1, 2, 2, -1)), output_shape=(1, 2, 2, 8)
    ),  # "to the end"
}
SPATIAL_AXES = frozenset({1, 2})  # a reduction over H and W of an NHWC tensor: what every runtime's XNNPACK takes


def variant_model(op: str, variant: str, quantized: bool = False) -> bytes:
    """The .tflite probe of one variant of `op`."""
    return _build(op, quantized, _output_shapes(op, variant), VARIANTS[op, variant])


# A variant some runtime takes although a KB cause (proven on the installed runtime) refuses it: on a runtime
# whose table records the variant delegated, that cause does not hold for nodes of that variant (kb/versions.py).
# Its probe is a graph probe (probe_matrix.graph_probes): the shape needs a producer, which a one-op model lacks.
VOIDED_CAUSES: dict[tuple[str, str], str] = {
    (
        "RESHAPE",
        "prepare-time-shape",
    ): "XNN020",  # tflite-runtime 2.14 reshapes to a shape computed from SHAPE before allocation
}


def variant_of(sub: Any, node: Any) -> str | None:
    """The variant (a key of VARIANTS or VOIDED_CAUSES) a real node is, or None for the op's plain probe."""
    if node.op == "GELU":
        return "approximate" if node.options.get("approximate") else None
    if node.op == "CONCATENATION":
        n = sum(1 for t in node.inputs if t >= 0)
        return f"{n}-inputs" if n in CONCAT_COUNTS else None
    if (
        node.op == "RESHAPE"
        and len(node.inputs) > 1
        and node.inputs[1] >= 0
        and not sub.tensors[node.inputs[1]].constant
    ):
        from xnnfit.kb.shapes import known_before_allocation

        return "prepare-time-shape" if known_before_allocation(sub, node.inputs[1]) else None
    if node.op == "SLICE" and len(node.inputs) > 2 and node.inputs[2] >= 0:
        size = sub.tensors[node.inputs[2]].values
        return "size-minus-1" if size is not None and -1 in size else None
    if node.op in REDUCERS and len(node.inputs) > 1 and node.inputs[1] >= 0:
        data, axes = sub.tensors[node.inputs[0]], sub.tensors[node.inputs[1]].values
        if axes is None:
            return None
        rank = len(data.shape)
        return None if rank == 4 and {a % rank for a in axes} == SPATIAL_AXES else "inner-axis"
    return None


def _variable_model() -> bytes:
    """VAR_HANDLE feeding ASSIGN_VARIABLE (of the input) then READ_VARIABLE (to the output).

    One model probes all three ops: none of them means anything alone.
    """
    m = _Model()
    g = m.subgraph("probe_variable")
    x = g.tensor(X, "float32", "x")
    handle = g.tensor((), "resource", "handle")
    y = g.tensor(X, "float32", "y")
    g.sub.inputs, g.sub.outputs = [x], [y]
    g.op("VAR_HANDLE", [], [handle], opt("VarHandleOptions", sharedName="probe_variable"))
    g.op("ASSIGN_VARIABLE", [handle, x], [], opt("AssignVariableOptions"))
    g.op("READ_VARIABLE", [handle], [y], opt("ReadVariableOptions"))
    return m.to_bytes()


def _attention_attributes() -> list[int]:
    """The composite's attributes: a flexbuffer map with a float32 'scale', as the delegate reads it."""
    from flatbuffers import flexbuffers

    b = flexbuffers.Builder()
    with b.Map():
        b.Key("scale")
        b.Float(0.25, byte_width=4)  # the delegate reads the scale through a float32 pointer
    return list(b.Finish())


def _attention_model() -> bytes:
    """A STABLEHLO_COMPOSITE 'odml.scaled_dot_product_attention' over float [B, T, N, H] q, k, v.

    Its decomposition subgraph (what the built-in kernel runs) is a stand-in, q + v, with
    the attention's output shape: XNNPACK replaces the whole composite with its own
    attention and never runs it. Float32 only, like the delegate's attention.
    """
    m = _Model()
    g = m.subgraph("probe_attention")
    qkv = [g.tensor(X, "float32", name) for name in "qkv"]
    out = g.tensor(X, "float32", "attention")
    g.sub.inputs, g.sub.outputs = list(qkv), [out]
    options = opt(
        "StableHLOCompositeOptions",
        name=SDPA_COMPOSITE,
        decompositionSubgraphIndex=1,
        compositeAttributes=_attention_attributes(),
        compositeAttributesFormat=fb.CustomOptionsFormat.FLEXBUFFERS,
        version=0,
    )
    g.op("STABLEHLO_COMPOSITE", qkv, [out], options)
    d = m.subgraph("decomposition")
    dq, dk, dv = (d.tensor(X, "float32", name) for name in "qkv")
    dout = d.tensor(X, "float32", "out")
    d.sub.inputs, d.sub.outputs = [dq, dk, dv], [dout]
    d.op("ADD", [dq, dv], [dout], opt("AddOptions"))
    return m.to_bytes()


# Ops whose probe needs more than the op alone, and their model builders.
SPECIAL: dict[str, Callable[[], bytes]] = {
    "VAR_HANDLE": _variable_model,
    "READ_VARIABLE": _variable_model,
    "ASSIGN_VARIABLE": _variable_model,
    "STABLEHLO_COMPOSITE": _attention_model,
}


@functools.cache
def one_op_model(op: str, quantized: bool = False) -> bytes:
    """The .tflite probe for `op`: float32, or fully int8 when `quantized`."""
    if quantized and INT8 not in forms(op):
        raise ValueError(f"{op} has no int8 probe; its forms are {forms(op)}")
    if op in SPECIAL:
        return SPECIAL[op]()
    return _build(op, quantized, _output_shapes(op))


def forms(op: str) -> tuple[str, ...]:
    """The forms `op` is probed in: float32 always, int8 for a table row with an int8 form.

    DEQUANTIZE and QUANTIZE convert between the two, so their one form has an int8 side.
    """
    return (FP32,) if op in SPECIAL or op in OUTSIDE or SPECS[op].output_dtype else FORMS


def expected(op: str, form: str) -> Verdict:
    """The verdict the runtime must give `op`'s probe in `form`."""
    if (op, form) in VERDICTS:
        return VERDICTS[op, form]
    if form == INT8 and op in FLOAT_ONLY:
        return Verdict(False, "FLOAT_ONLY: the delegate has no int8 kernel for it")
    return Verdict(op in IMPLEMENTED, "IMPLEMENTED" if op in IMPLEMENTED else "not in IMPLEMENTED")


# Per-runtime tables observe every probe with this float op beside it: tflite-runtime 2.14
# does not delegate a graph whose only nodes are int8 (measured: a lone int8 TRANSPOSE stays
# on CPU; the same TRANSPOSE next to an unrelated CPU QUANTIZE or float NEG is delegated), so
# a probe alone would blame the op for what is the graph's doing.
COMPANION_OP = "NEG"


def with_companion(content: bytes) -> bytes:
    """`content` with an unrelated float32 NEG (own input and output) appended to subgraph 0."""
    from xnnfit.tflite.writer import parse

    model = parse(content)
    sub = model.subgraphs[0]
    a = build.add_tensor(model, sub, (1, 4), "float32", "companion_in")
    b = build.add_tensor(model, sub, (1, 4), "float32", "companion_out")
    sub.inputs = [*sub.inputs, a]
    sub.outputs = [*sub.outputs, b]
    sub.operators.append(build.make_op(model, COMPANION_OP, [a], [b]))
    return serialize(model)
