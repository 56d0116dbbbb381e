"""xnnfit.observe.delegation.observe against the runtime itself.

The reference is the runtime's one-delegate-node-per-op mode (`observe_node_per_delegate`,
delegate node fusion off): it names every node XNNPACK accepted without any partitioning
logic of ours. The fused mode then tells how the runtime grouped them into delegate
kernels, which our partition model must predict exactly.
"""

from __future__ import annotations

import pytest

import fixtures_models
from xnnfit.explain.verdicts import causes_for
from xnnfit.observe.delegation import Delegation, delegate_members, observe, observe_node_per_delegate
from xnnfit.runtime.interpreter import build_interpreter
from xnnfit.tflite import read_model

PROBES = [
    pytest.param(cause_id, i, id=fixtures_models.probe_id(cause_id, i, probe))
    for cause_id, i, probe in fixtures_models.probes()
]
EXAMPLES = [
    pytest.param(name, recipe, id=f"{name}-{recipe}")
    for name in fixtures_models.example_names()
    for recipe in ("fp32", "int8")
]


def _runtime_kernels(content: bytes) -> list[tuple[int, ...]]:
    """Node sets of the DELEGATE kernels the runtime made with fusion on (its default)."""
    graph = read_model(content)
    details = build_interpreter(content)._get_ops_details()
    members = delegate_members(details, len(graph.primary.ops), graph.primary.producers())
    return sorted(tuple(sorted(m)) for m in members)


def assert_observation_matches_runtime(content: bytes) -> Delegation:
    """Every claim observe() makes about `content`, checked against the runtime."""
    graph = read_model(content)
    delegation = observe(content, graph)
    primary = delegation.primary
    assert [n.index for n in primary] == list(range(len(graph.primary.ops)))
    assert [n.op for n in primary] == [op.label for op in graph.primary.ops]

    # which nodes: equal to the runtime's one-node-per-delegate mode
    reference = observe_node_per_delegate(content)
    observed = {n.index for n in primary if n.delegated}
    assert observed == reference, f"observe() says {sorted(observed)}, the runtime {sorted(reference)}"
    assert delegation.delegated == len(reference)
    assert delegation.cpu_nodes == len(primary) - len(reference)
    assert all(n.delegated is False for n in primary if n.index not in reference)

    # how they are grouped: our partition model predicted the runtime's kernels exactly
    assert not [note for note in delegation.notes if "approximate" in note], delegation.notes
    assert delegation.delegate_partitions == delegation.delegate_nodes
    delegated_parts = sorted(p.nodes for p in delegation.partitions if p.delegated)
    assert [tuple(sorted(p)) for p in delegated_parts] == _runtime_kernels(content)
    assert delegation.delegate_applied == bool(reference)

    # partitions: numbered in order, cover every primary node once, one kind each, alternating
    parts = delegation.partitions
    assert [p.index for p in parts] == list(range(len(parts)))
    covered = [i for p in parts for i in p.nodes]
    assert sorted(covered) == list(range(len(primary)))
    by_index = {n.index: n for n in primary}
    for p in parts:
        assert p.nodes, p
        for i in p.nodes:
            assert by_index[i].partition == p.index
            assert by_index[i].delegated == p.delegated, (i, p)
    for before, after in zip(parts, parts[1:]):
        assert before.delegated != after.delegated, parts
    assert all(n.partition is not None for n in primary)

    # a node's inputs come from its own or an earlier partition
    producers = graph.primary.producers()
    for op in graph.primary.ops:
        for t in op.inputs:
            if t in producers:
                assert by_index[producers[t]].partition <= by_index[op.index].partition, (op, t)

    # nodes of control-flow bodies are listed, not judged
    for n in delegation.nodes:
        if n.subgraph != 0:
            assert n.delegated is None and n.partition is None
    return delegation


@pytest.mark.parametrize(("cause_id", "index"), PROBES)
def test_probe_models(cause_id, index):
    assert_observation_matches_runtime(fixtures_models.probe_content(cause_id, index))


@pytest.mark.parametrize(("name", "recipe"), EXAMPLES)
def test_examples(name, recipe):
    delegation = assert_observation_matches_runtime(fixtures_models.convert_example(name, recipe).content)
    assert delegation.delegate_applied  # every example has something XNNPACK runs


def test_probes_cover_delegated_rejected_and_mixed_models():
    # the parametrization above is only as good as its variety
    kinds = set()
    for cause_id, i, _ in fixtures_models.probes():
        d = observe(fixtures_models.probe_content(cause_id, i))
        kinds.add("all" if d.cpu_nodes == 0 else "none" if d.delegated == 0 else "mixed")
        if len(d.partitions) >= 3:
            kinds.add("3+ partitions")
    assert kinds == {"all", "none", "mixed", "3+ partitions"}


def test_nothing_delegated_int16x8_dense():
    content = fixtures_models.convert(fixtures_models.dense_model(), "int16x8").content
    delegation = assert_observation_matches_runtime(content)
    assert not delegation.delegate_applied
    assert delegation.delegate_nodes == 0
    assert delegation.delegated == 0
    assert delegation.cpu_nodes == len(delegation.primary) > 0
    assert [p.delegated for p in delegation.partitions] == [False]
    assert delegation.delegate_partitions == 0
    assert "FULLY_CONNECTED" in [n.op for n in delegation.primary]
    assert all(n.input_dtypes and "int16" in n.input_dtypes for n in delegation.primary if n.op == "FULLY_CONNECTED")


def test_everything_delegated_is_one_partition():
    content = fixtures_models.convert(fixtures_models.dense_model()).content
    delegation = assert_observation_matches_runtime(content)
    assert delegation.cpu_nodes == 0
    assert delegation.delegate_nodes == 1
    assert [(p.delegated, p.nodes) for p in delegation.partitions] == [(True, tuple(range(len(delegation.primary))))]


def test_where_splits_into_cpu_and_delegate_partitions():
    # LESS, SQUARE, MUL, SELECT: LESS on CPU first, SQUARE and MUL delegated, SELECT waits for both
    content = fixtures_models.convert(fixtures_models.load_example("where_activation").build()).content
    delegation = assert_observation_matches_runtime(content)
    cpu = [n.op for n in delegation.primary if not n.delegated]
    assert sorted(cpu) == ["LESS", "SELECT"]
    assert delegation.delegate_nodes == 2  # the first Dense + where's arithmetic, then the head


@pytest.fixture(scope="module")
def mobilenet():
    import keras

    return keras.applications.MobileNetV2(weights=None, input_shape=(96, 96, 3))


@pytest.mark.slow
def test_mobilenet_v2(mobilenet):
    # fp32: the whole network is one XNNPACK kernel
    fp32 = fixtures_models.convert(mobilenet, "fp32").content
    delegation = assert_observation_matches_runtime(fp32)
    ops = {n.op for n in delegation.primary}
    assert {"CONV_2D", "DEPTHWISE_CONV_2D", "ADD", "MEAN", "FULLY_CONNECTED", "SOFTMAX"} <= ops
    assert delegation.cpu_nodes == 0
    assert delegation.delegate_nodes == 1
    assert len(delegation.partitions) == 1

    # dynamic-int8: hybrid depthwise convs stay on CPU, and XNN027 says why
    dyn = fixtures_models.convert(mobilenet, "dynamic-int8").content
    graph = read_model(dyn)
    delegation = assert_observation_matches_runtime(dyn)
    cpu = [n for n in delegation.primary if not n.delegated]
    assert cpu, "dynamic-int8 MobileNetV2 ran entirely on XNNPACK; XNN027 claims it would not"
    assert {n.op for n in cpu} == {"DEPTHWISE_CONV_2D"}
    for n in cpu:
        assert "XNN027" in causes_for(graph, delegation, 0, n.index), n
    for n in delegation.primary:
        if n.delegated:
            assert "XNN027" not in causes_for(graph, delegation, 0, n.index), n
    assert {n.op for n in delegation.primary if n.delegated} >= {"CONV_2D", "ADD", "FULLY_CONNECTED"}
    # every CPU island cuts the graph: one delegate kernel more than there are CPU runs
    cpu_parts = [p for p in delegation.partitions if not p.delegated]
    assert delegation.delegate_nodes == len(cpu_parts) + 1
