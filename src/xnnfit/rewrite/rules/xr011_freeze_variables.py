"""XR011: variables that an init subgraph assigns once, and nothing else assigns, -> constants.

A model converted with resource variables keeps its weights as variables: VAR_HANDLE
and READ_VARIABLE in the graph, an ASSIGN_VARIABLE of the constant in the subgraph that
CALL_ONCE runs first. XNNPACK then refuses conv and fully-connected layers whose weights
are not constants (XNN032), and CALL_ONCE itself runs on CPU (XNN017). When a variable
is assigned only there, every READ_VARIABLE of it reads that constant: it becomes the
constant, and the variable plumbing goes; the layout ops the converter puts between a
weight and its conv (TRANSPOSE, RESHAPE) are applied to the constant too, so the conv
gets a constant filter. A variable any other subgraph assigns (another signature, or
the model itself as state) is left alone.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from xnnfit.rewrite.graph import Graph
from xnnfit.rewrite.rule import Match, NoMatch, RewriteContext, Rule


def _example() -> bytes:
    """A conv whose weights live in a variable that CALL_ONCE initialises (converted with resource variables)."""
    import tempfile

    import tensorflow as tf

    from xnnfit.tflite.writer import parse, serialize

    class Module(tf.Module):
        def __init__(self) -> None:
            self.w = tf.Variable(tf.random.stateless_normal((3, 3, 3, 4), seed=(1, 2)), name="w")

        @tf.function(input_signature=[tf.TensorSpec((1, 8, 8, 3), tf.float32)])
        def infer(self, x):
            return {"y": tf.nn.conv2d(x, self.w, 1, "SAME")}

        @tf.function(input_signature=[tf.TensorSpec((3, 3, 3, 4), tf.float32)])
        def set_w(self, w):
            self.w.assign(w)
            return {"ok": tf.constant(1.0)}

    module = Module()
    with tempfile.TemporaryDirectory() as folder:
        # a second signature that assigns the weights keeps the converter from freezing them
        tf.saved_model.save(module, folder, signatures={"serving_default": module.infer, "set_w": module.set_w})
        converter = tf.lite.TFLiteConverter.from_saved_model(folder, signature_keys=["serving_default", "set_w"])
        converter.experimental_enable_resource_variables = True
        content = converter.convert()
    model = parse(content)  # drop the assigning signature: what is left is an init-only variable
    keep = [i for i, sub in enumerate(model.subgraphs) if _name(sub.name) != "set_w"]
    renumber = {old: new for new, old in enumerate(keep)}
    model.subgraphs = [model.subgraphs[i] for i in keep]
    model.signatureDefs = [s for s in model.signatureDefs if _name(s.signatureKey) != "set_w"]
    for sig in model.signatureDefs:
        sig.subgraphIndex = renumber[sig.subgraphIndex]
    for sub in model.subgraphs:
        for op in sub.operators or []:
            if hasattr(op.builtinOptions, "initSubgraphIndex"):
                op.builtinOptions.initSubgraphIndex = renumber[op.builtinOptions.initSubgraphIndex]
    return serialize(model)


_LAYOUT = ("TRANSPOSE", "RESHAPE")  # what the converter puts between a weight and the op that uses it


def _fold_layout(g: Graph, tensor: int, value: np.ndarray, tag) -> None:
    """Replace every TRANSPOSE/RESHAPE that reads only constants derived from `value` by its constant result."""
    for c in g.consumers(tensor):
        if g.op(c) not in _LAYOUT:
            continue
        param = g.value(g.inputs(c)[1]) if len(g.inputs(c)) > 1 else None
        out = g.outputs(c)[0]
        if g.op(c) == "TRANSPOSE" and param is not None:
            result = np.transpose(value, [int(p) for p in param])
        elif g.op(c) == "RESHAPE" and -1 not in g.shape(out):
            result = value.reshape(g.shape(out))
        else:
            continue
        g.rewire(out, g.add_const(np.ascontiguousarray(result), tag(g.name(out) or "weight")))


def _name(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else (value or "")


def _init_subgraph(g: Graph, i: int) -> int | None:
    """The subgraph CALL_ONCE node i runs, or None when its options name none that exists."""
    opts = g.options(i, "CallOnceOptions")
    return opts.initSubgraphIndex if opts is not None and 0 <= opts.initSubgraphIndex < len(g.model.subgraphs) else None


def _key(g: Graph, i: int) -> tuple[str, str]:
    opts = g.options(i, "VarHandleOptions")
    return (_name(getattr(opts, "container", None)), _name(getattr(opts, "sharedName", None)))


def _handles(g: Graph) -> dict[int, tuple[str, str]]:
    """Tensor -> variable key, for every VAR_HANDLE of the subgraph."""
    return {g.outputs(i)[0]: _key(g, i) for i in range(len(g.ops)) if g.op(i) == "VAR_HANDLE"}


def _assignments(g: Graph) -> list[tuple[tuple[str, str], int]]:
    """(variable key, value tensor) of every ASSIGN_VARIABLE of the subgraph."""
    handles = _handles(g)
    return [
        (handles.get(g.inputs(i)[0], ("?", "?")), g.inputs(i)[1])
        for i in range(len(g.ops))
        if g.op(i) == "ASSIGN_VARIABLE"
    ]


class FreezeVariables(Rule, id="XR011", fixes=("XNN032", "XNN017")):
    title = "variables assigned once by the init subgraph -> constants"
    example = staticmethod(_example)

    def match(self, g: Graph, ctx: RewriteContext) -> list[Match] | NoMatch:
        reads = [i for i in range(len(g.ops)) if g.op(i) == "READ_VARIABLE"]
        if not reads:
            return NoMatch("no READ_VARIABLE node")
        calls = [i for i in range(len(g.ops)) if g.op(i) == "CALL_ONCE"]
        inits = {init for i in calls if (init := _init_subgraph(g, i)) is not None}
        initial: dict[tuple[str, str], np.ndarray] = {}
        mutable: set[tuple[str, str]] = set()
        for k in range(len(g.model.subgraphs)):
            sub = Graph(g.model, k)
            for key, value in _assignments(sub):
                constant = sub.value(value) if k in inits else None
                if constant is None or key in initial:
                    mutable.add(key)
                else:
                    initial[key] = constant
        handles = _handles(g)
        frozen = {}
        for i in reads:
            key = handles.get(g.inputs(i)[0])
            if key in initial and key not in mutable:
                frozen[i] = initial[key]
        if not frozen:
            return NoMatch(
                "every variable read is assigned outside the init subgraph (state or another signature), or never"
            )
        where = g.name(g.outputs(min(frozen))[0])
        return [
            Match(
                self.id, 0, where, {"frozen": frozen, "keys": {handles[g.inputs(i)[0]] for i in frozen}, "inits": inits}
            )
        ]

    def apply(self, g: Graph, m: Match, ctx: RewriteContext) -> None:
        frozen, keys = m.detail["frozen"], m.detail["keys"]
        for i, value in frozen.items():
            out = g.outputs(i)[0]
            const = g.add_const(np.asarray(value).astype(value.dtype), self.tag(g.name(out) or "variable"))
            g.rewire(out, const)
            _fold_layout(g, const, np.asarray(value), self.tag)
        still_read = {g.inputs(i)[0] for i in range(len(g.ops)) if g.op(i) == "READ_VARIABLE" and i not in frozen}
        dead = set(frozen)
        dead |= {
            i
            for i in range(len(g.ops))
            if g.op(i) == "VAR_HANDLE" and _key(g, i) in keys and g.outputs(i)[0] not in still_read
        }
        for i in range(len(g.ops)):
            init = _init_subgraph(g, i) if g.op(i) == "CALL_ONCE" else None
            if init is not None and all(key in keys for key, _ in _assignments(Graph(g.model, init))):
                dead.add(i)
        for i in sorted(dead, reverse=True):
            del g.sub.operators[i]
