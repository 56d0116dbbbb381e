"""Graph patterns: named predicates that tell where a node came from, for choosing its advice.

A pattern reads the node's neighbourhood in the graph (what writes its inputs, what reads
its outputs, a few hops away through data movement and arithmetic): the LESS/SELECT of
an Embedding's negative-id wrap, a masked softmax, a tf.where activation, an unrolled
RNN's time steps. `When.pattern` names one; `PATTERNS` maps the names to the predicates.
"""

from __future__ import annotations

from collections.abc import Callable

from xnnfit.kb.context import NodeContext
from xnnfit.kb.tables import QUANTIZED
from xnnfit.tflite.graph import OpInfo

COMPARE = frozenset("LESS LESS_EQUAL GREATER GREATER_EQUAL EQUAL NOT_EQUAL".split())
ORDER = frozenset("LESS LESS_EQUAL GREATER GREATER_EQUAL".split())  # the comparisons a where-activation uses
SELECT = frozenset({"SELECT", "SELECT_V2"})
COMPARE_SELECT = COMPARE | SELECT
INTEGER = frozenset({"int32", "int64"})
# Ops a pattern looks through between the nodes it is about: data movement, (de)quantization, arithmetic.
THROUGH = frozenset("RESHAPE TRANSPOSE EXPAND_DIMS SQUEEZE QUANTIZE DEQUANTIZE CAST ADD SUB MUL DIV NEG".split())
# Elementwise functions a where-activation's branches are made of (0.1 * x, tf.square(x), tf.exp(x) - 1, ...).
ELEMENTWISE = THROUGH | frozenset(
    "ABS SQUARE SQRT RSQRT EXP LOG TANH LOGISTIC RELU RELU6 LEAKY_RELU ELU GELU HARD_SWISH "
    "SIN COS POW MAXIMUM MINIMUM".split()
)
# How many such ops a pattern crosses: Keras puts a mask 0-1 ops from its softmax and an int8
# graph adds a (DE)QUANTIZE on each side; 3 reaches those without wandering into the next layer.
HOPS = 3

PATTERNS: dict[str, Callable[[NodeContext], bool]] = {}


def _pattern(name: str) -> Callable[[Callable[[NodeContext], bool]], Callable[[NodeContext], bool]]:
    def register(fn: Callable[[NodeContext], bool]) -> Callable[[NodeContext], bool]:
        PATTERNS[name] = fn
        return fn

    return register


def _selects(ctx: NodeContext) -> list[OpInfo]:
    """The SELECTs the node takes part in: itself, or the selects that read its output (a mask, a wrapped index)."""
    if ctx.op.op in SELECT:
        return [ctx.op]
    return [op for t in ctx.op.outputs for op in ctx.readers(t) if op.op in SELECT]


def _feeds(ctx: NodeContext, tensor: int, targets: frozenset[str]) -> bool:
    """`tensor` is read by an op of `targets`, directly or through at most HOPS ops of THROUGH."""
    frontier = [tensor]
    for _ in range(HOPS + 1):
        nxt = []
        for t in frontier:
            for op in ctx.readers(t):
                if op.op in targets:
                    return True
                if op.op in THROUGH:
                    nxt.extend(o for o in op.outputs if o >= 0)
        frontier = nxt
    return False


def _comes_from(ctx: NodeContext, tensor: int, targets: frozenset[str], through: frozenset[str] = THROUGH) -> bool:
    """`tensor` is written by an op of `targets`, directly or through at most HOPS ops of `through`."""
    frontier = [tensor]
    for _ in range(HOPS + 1):
        writers = [w for w in (ctx.writer(t) for t in frontier) if w is not None]
        if any(w.op in targets for w in writers):
            return True
        frontier = [t for w in writers if w.op in through for t in w.inputs if t >= 0]
    return False


def _derives(ctx: NodeContext, tensor: int, source: int) -> bool:
    """`tensor` is `source` or an elementwise function of it (at most HOPS ops of ELEMENTWISE away)."""
    frontier = [tensor]
    for _ in range(HOPS + 1):
        if source in frontier:
            return True
        writers = [w for w in (ctx.writer(t) for t in frontier) if w is not None and w.op in ELEMENTWISE]
        frontier = [t for w in writers for t in w.inputs if t >= 0]
    return False


def _scalar_constant(ctx: NodeContext, tensor: int) -> bool:
    t = ctx.sub.tensors[tensor]
    return t.constant and all(d == 1 for d in t.shape)


def _wraps_index(ctx: NodeContext, sel: OpInfo) -> bool:
    """`sel` is where(ids < 0, ids + n, ids) on integer ids: keras.ops.take's negative-index wrap."""
    less = ctx.writer(sel.inputs[0])
    if less is None or less.op != "LESS" or len(sel.inputs) < 3:
        return False
    ids, zero = less.inputs[:2]
    if ctx.sub.tensors[ids].dtype not in INTEGER or not ctx.sub.tensors[zero].constant:
        return False
    if any(v != 0 for v in ctx.sub.tensors[zero].values or ()):
        return False
    branches = list(sel.inputs[1:3])
    if ids not in branches:
        return False
    add = ctx.writer(branches[1 - branches.index(ids)])
    return (
        add is not None
        and add.op == "ADD"
        and ids in add.inputs
        and all(ctx.sub.tensors[t].constant for t in add.inputs if t != ids)
    )


@_pattern("index-wrap")
def index_wrap(ctx: NodeContext) -> bool:
    """The LESS, ADD or SELECT of where(ids < 0, ids + n, ids) on integer ids (keras.ops.take, Embedding)."""
    return any(_wraps_index(ctx, sel) for sel in _selects(ctx))


@_pattern("input-cast")
def input_cast(ctx: NodeContext) -> bool:
    """A CAST of a graph input of integer or bool type (a padding mask, segment ids) made once, at the start."""
    if ctx.op.op != "CAST" or not ctx.op.inputs or ctx.op.inputs[0] < 0:
        return False
    t = ctx.sub.tensors[ctx.op.inputs[0]]
    return ctx.writer(t.index) is None and not t.constant and t.dtype in INTEGER | {"bool"}


@_pattern("masked-softmax")
def masked_softmax(ctx: NodeContext) -> bool:
    """A select (or the comparison making its mask) whose output feeds a SOFTMAX or whose branch is a SOFTMAX's output.

    A large negative constant branch alone does not qualify: float constants' values are
    not read from the file, and the softmax is what makes the select a mask.
    """
    for sel in _selects(ctx):
        if _feeds(ctx, sel.outputs[0], frozenset({"SOFTMAX"})):
            return True
        if any(_comes_from(ctx, t, frozenset({"SOFTMAX"})) for t in sel.inputs[1:3] if t >= 0):
            return True
    return False


@_pattern("constant-mask-softmax")
def constant_mask_softmax(ctx: NodeContext) -> bool:
    """A masked softmax whose mask is a constant (a causal mask folded by the converter)."""
    return any(ctx.sub.tensors[sel.inputs[0]].constant for sel in _selects(ctx)) and masked_softmax(ctx)


@_pattern("where-activation")
def where_activation(ctx: NodeContext) -> bool:
    """A select on x compared with a constant scalar, whose branches are elementwise functions of x; or that comparison.

    Float constants' values are not read from the file (TensorInfo holds small integer
    constants only), so "compared with 0" is "compared with a constant scalar".
    """
    for sel in _selects(ctx):
        cmp = ctx.writer(sel.inputs[0])
        if cmp is None or cmp.op not in ORDER:
            continue
        a, b = cmp.inputs[:2]
        if _scalar_constant(ctx, a) == _scalar_constant(ctx, b):
            continue
        x = b if _scalar_constant(ctx, a) else a
        dtype = ctx.sub.tensors[x].dtype
        if not (dtype.startswith("float") or dtype in QUANTIZED):
            continue
        if any(_derives(ctx, t, x) for t in sel.inputs[1:3]):
            return True
    return False


@_pattern("rnn-steps")
def rnn_steps(ctx: NodeContext) -> bool:
    """An UNPACK along axis 0 whose every output feeds a FULLY_CONNECTED: an unrolled RNN's time steps."""
    if ctx.op.op != "UNPACK" or ctx.op.options.get("axis", 0) != 0:
        return False
    outs = [t for t in ctx.op.outputs if t >= 0]
    return bool(outs) and all(any(r.op == "FULLY_CONNECTED" for r in ctx.readers(t)) for t in outs)


@_pattern("tile-size-1")
def tile_size_1(ctx: NodeContext) -> bool:
    """A TILE that repeats only axes of size 1: a repeat (nearest upsampling), i.e. a broadcast."""
    x, mult = ctx.tensor(0), ctx.tensor(1)
    if x is None or mult is None or mult.values is None or len(mult.values) != len(x.shape):
        return False
    return any(m > 1 for m in mult.values) and all(m == 1 or d == 1 for m, d in zip(mult.values, x.shape))


@_pattern("table-lookup")
def table_lookup(ctx: NodeContext) -> bool:
    """A gather of computed indices from a constant table (an embedding lookup)."""
    table, ids = (1, 0) if ctx.op.op == "EMBEDDING_LOOKUP" else (0, 1)
    t, i = ctx.tensor(table), ctx.tensor(ids)
    if t is None or i is None or i.constant:
        return False
    return t.constant or _comes_from(ctx, ctx.op.inputs[table], frozenset({"DEQUANTIZE"}), frozenset())


@_pattern("layer-norm")
def layer_norm(ctx: NodeContext) -> bool:
    """The variance of a layer norm: SQUARED_DIFFERENCE feeding a MEAN, or RSQRT of a MEAN (plus epsilon)."""
    if ctx.op.op == "SQUARED_DIFFERENCE":
        return _feeds(ctx, ctx.op.outputs[0], frozenset({"MEAN"}))
    return ctx.op.op == "RSQRT" and _comes_from(ctx, ctx.op.inputs[0], frozenset({"MEAN"}))


@_pattern("epsilon-add")
def epsilon_add(ctx: NodeContext) -> bool:
    """An ADD of a constant scalar whose sum feeds an RSQRT or SQRT: a normalization's epsilon."""
    if not any(_scalar_constant(ctx, t) for t in ctx.op.inputs if t >= 0):
        return False
    return _feeds(ctx, ctx.op.outputs[0], frozenset({"RSQRT", "SQRT"}))


@_pattern("pool-1x1")
def pool_1x1(ctx: NodeContext) -> bool:
    """A pooling with a 1x1 window (it only subsamples)."""
    return ctx.op.options.get("filterHeight", 1) == 1 and ctx.op.options.get("filterWidth", 1) == 1
