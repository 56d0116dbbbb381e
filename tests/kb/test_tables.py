"""Every row of the delegate's op tables (kb/tables.py) is proven by a one-op probe on the installed runtime."""

from __future__ import annotations

import pytest

import fixtures_models
from xnnfit import kb
from xnnfit.core.errors import RuntimeFailure
from xnnfit.kb import oneop
from xnnfit.kb.cause import NodeContext
from xnnfit.kb.tables import FLOAT_ONLY, IMPLEMENTED
from xnnfit.observe.delegation import observe
from xnnfit.tflite.graph import read_model


def _table(op: str, form: str) -> str:
    if op in oneop.OUTSIDE:
        return "OUTSIDE"
    return "FLOAT_ONLY" if form == oneop.INT8 and op in FLOAT_ONLY else "IMPLEMENTED"


CASES = [
    pytest.param(op, form, id=f"{_table(op, form)}-{op}-{form}")
    for op in sorted(IMPLEMENTED | FLOAT_ONLY | set(oneop.OUTSIDE))
    for form in oneop.forms(op)
]


def _verdicts(content: bytes) -> dict[int, bool | None]:
    """Node index -> delegated, for subgraph 0, as the runtime decided (observe() also sees output-less nodes)."""
    return {n.index: n.delegated for n in observe(content).primary}


def test_every_row_has_a_probe():
    assert FLOAT_ONLY <= IMPLEMENTED, "a FLOAT_ONLY op must also be IMPLEMENTED (its float form is delegated)"
    assert not IMPLEMENTED & set(oneop.OUTSIDE)
    assert IMPLEMENTED | set(oneop.OUTSIDE) <= set(oneop.SPECS) | set(oneop.SPECIAL)
    assert all(oneop.INT8 in oneop.forms(op) for op in FLOAT_ONLY)


def test_verdicts_name_probed_rows():
    for op, form in oneop.VERDICTS:
        assert op in IMPLEMENTED | set(oneop.OUTSIDE) and form in oneop.forms(op), (op, form)
        assert oneop.VERDICTS[op, form].reason


@pytest.mark.parametrize("op", sorted(oneop.SPECS))
def test_probe_is_the_op_alone(op):
    graph = read_model(oneop.one_op_model(op))
    assert [o.op for o in graph.primary.ops] == [op]
    assert all(not graph.primary.tensors[t].dynamic for t in graph.primary.inputs)


@pytest.mark.parametrize(("op", "form"), CASES)
def test_row_matches_runtime(op, form):
    content = oneop.one_op_model(op, form == oneop.INT8)
    graph = read_model(content)
    sub = graph.primary
    nodes = [o.index for o in sub.ops if o.op == op]
    assert nodes, f"the {op} probe has no {op} node: {[o.op for o in sub.ops]}"
    want = oneop.expected(op, form)
    if want.delegated is None:
        with pytest.raises(RuntimeFailure, match=rf"\({op}\) failed to prepare"):
            observe(content)
        verdicts: dict[int, bool | None] = {o.index: False for o in sub.ops}
    else:
        oneop.reference_run(content)  # the model is valid for the built-in kernels too
        verdicts = _verdicts(content)
        fixtures_models.assert_predicted(content, observe(content))
        got = {i: verdicts[i] for i in nodes}
        assert set(got.values()) == {want.delegated}, (
            f"runtime: {op} {form} delegated={got}; expected {want.delegated} ({want.reason})"
        )
    explained = kb.CAUSES["XNN028"]
    for i in nodes:
        ctx = NodeContext(sub, sub.ops[i], verdicts)
        assert explained.applies(ctx) == (form == oneop.INT8 and op in FLOAT_ONLY), f"XNN028 on {op} {form}"
