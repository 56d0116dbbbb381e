"""kb/limits.py: each XNNPACK limit is written once; the causes state it, the rules stay within it, the runtime agrees.

The models are the KB's own probes (the runtime must refuse one past the limit and take
one at it) and small Keras models, converted with the real converter and observed on the
installed runtime.
"""

from __future__ import annotations

import functools

import pytest

import fixtures_models
from xnnfit import kb
from xnnfit.kb import advice
from xnnfit.kb.conditions import InputCountOutside, RankAbove
from xnnfit.kb.limits import (
    ADD_SCALE_RATIO,
    MAX_CONCAT_INPUTS,
    MAX_RANK,
    MAX_SPLIT_OUTPUTS,
    MIN_CONCAT_INPUTS,
    MIN_SPLIT_OUTPUTS,
    MUL_SCALE_RATIO,
    ratio_text,
)
from xnnfit.observe.delegation import observe
from xnnfit.rewrite.engine import rewrite_only
from xnnfit.rewrite.graph import Graph
from xnnfit.rewrite.rule import NoMatch, RewriteContext
from xnnfit.rewrite.rules import RULES
from xnnfit.tflite.graph import read_model


def _probe(cause_id: str, expect: str) -> bytes:
    """The .tflite of the cause's first probe with that expectation."""
    i = next(i for i, p in enumerate(kb.CAUSES[cause_id].probes) if p.expect == expect)
    return fixtures_models.probe_content(cause_id, i)


def _nodes(content: bytes, op: str) -> list:
    """(node, its input or output count) of every `op` node of the primary subgraph, with the runtime's verdict."""
    graph, seen = read_model(content), observe(content).primary
    return [(n, graph.primary.ops[n.index]) for n in seen if n.op == op]


@functools.cache
def _keras(code: str) -> bytes:
    """A Lambda model over a (4, 4, 3) input: `code` of tf and x, converted fp32."""
    from xnnfit.kb.probes import lam

    return fixtures_models.convert(lam(eval(f"lambda tf, x: {code}"), shape=(4, 4, 3))()).content  # noqa: S307


def test_the_causes_state_the_limits():
    concat, split, rank = kb.CAUSES["XNN023"], kb.CAUSES["XNN024"], kb.CAUSES["XNN026"]
    assert concat.condition == InputCountOutside("CONCATENATION", MIN_CONCAT_INPUTS, MAX_CONCAT_INPUTS)
    assert split.condition == InputCountOutside("SPLIT", MIN_SPLIT_OUTPUTS, MAX_SPLIT_OUTPUTS, outputs=True)
    assert rank.condition == RankAbove(MAX_RANK)
    assert (
        f"more than {MAX_CONCAT_INPUTS}" in concat.title and f"{MIN_CONCAT_INPUTS} to {MAX_CONCAT_INPUTS}" in concat.why
    )
    assert f"more than {MAX_SPLIT_OUTPUTS}" in split.title
    assert f"above {MAX_RANK}" in rank.title and f"at most {MAX_RANK} dimensions" in rank.why
    assert f"at most {MAX_CONCAT_INPUTS}" in advice.general("XNN023").text
    assert f"at most {MAX_RANK} dimensions" in advice.general("XNN026").text
    scales = kb.CAUSES["XNN034"]
    for text in (scales.why, scales.condition.describe()):
        assert ratio_text(ADD_SCALE_RATIO) in text and ratio_text(MUL_SCALE_RATIO) in text
    assert ratio_text(ADD_SCALE_RATIO) == "[1/1024, 256)" and ratio_text(MUL_SCALE_RATIO) == "[1/65536, 256)"


def test_the_runtime_takes_a_concatenation_at_the_limit_and_refuses_one_past_it():
    (at,) = _nodes(_probe("XNN023", "delegated"), "CONCATENATION")
    (past,) = _nodes(_probe("XNN023", "rejected"), "CONCATENATION")
    assert len(at[1].inputs) == MAX_CONCAT_INPUTS and at[0].delegated
    assert len(past[1].inputs) == MAX_CONCAT_INPUTS + 1 and not past[0].delegated


def test_xr004_refuses_a_concatenation_within_the_limit_naming_it():
    g = Graph.from_bytes(_probe("XNN023", "delegated"))
    found = RULES["XR004"].match(g, RewriteContext())
    assert isinstance(found, NoMatch)
    assert found.reason == f"every CONCATENATION has at most {MAX_CONCAT_INPUTS} inputs"


def test_xr004_splits_a_concatenation_past_the_limit_into_nodes_the_runtime_takes():
    content = _probe("XNN023", "rejected")
    (match,) = RULES["XR004"].match(Graph.from_bytes(content), RewriteContext())
    assert match.detail == {"kind": "concat"}
    nodes = _nodes(rewrite_only(content, ("XR004",)), "CONCATENATION")
    assert len(nodes) > 1
    assert all(MIN_CONCAT_INPUTS <= len(op.inputs) <= MAX_CONCAT_INPUTS and n.delegated for n, op in nodes)


def test_xr004_leaves_a_split_within_the_limit_and_rewrites_one_past_it():
    (at,) = _nodes(_probe("XNN024", "delegated"), "SPLIT")
    assert len(at[1].outputs) == MAX_SPLIT_OUTPUTS and at[0].delegated
    kept = RULES["XR004"].match(Graph.from_bytes(_probe("XNN024", "delegated")), RewriteContext())
    assert isinstance(kept, NoMatch) and f"SPLIT into {MAX_SPLIT_OUTPUTS} parts is delegated as is" in kept.reason
    past = _probe("XNN024", "rejected")
    assert not _nodes(rewrite_only(past, ("XR004",)), "SPLIT")  # its parts are slices now


@pytest.mark.parametrize("count", [MAX_CONCAT_INPUTS + 1, 2 * MAX_CONCAT_INPUTS + 2])
def test_xr014_stacks_past_the_limit_as_concatenations_the_runtime_takes(count):
    content = _keras(f"tf.stack([x * (k + 1.0) for k in range({count})], axis=1)")
    assert {n.op for n, _ in _nodes(content, "PACK")} == {"PACK"}
    nodes = _nodes(rewrite_only(content, ("XR014",)), "CONCATENATION")
    assert sum(len(op.inputs) for _, op in nodes) == count + len(nodes) - 1  # a tree: every input once
    assert all(len(op.inputs) <= MAX_CONCAT_INPUTS and n.delegated for n, op in nodes)


def test_xr014_refuses_a_stack_past_the_rank_limit_naming_it():
    content = _keras("tf.stack([tf.reshape(x, (-1, 2, 2, 3, 2, 1))] * 2, axis=1)")
    (pack,) = _nodes(content, "PACK")
    assert len(read_model(content).primary.tensors[pack[1].outputs[0]].shape) == MAX_RANK + 1
    found = RULES["XR014"].match(Graph.from_bytes(content), RewriteContext())
    assert isinstance(found, NoMatch)
    assert found.reason == f"PACK makes a rank-{MAX_RANK + 1} tensor (XNNPACK stops at {MAX_RANK})"
