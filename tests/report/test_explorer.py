"""Model Explorer overlays: loaded with its own node-data classes, node ids as its TFLite adapter names them."""

from __future__ import annotations

import json

import pytest

from xnnfit.report.overlays import overlays, write_overlays

me = pytest.importorskip("model_explorer")


def _adapter_ops(path) -> tuple[str, set[str]]:
    """(graph id, ids of the operator nodes) as Model Explorer's built-in TFLite adapter produces them."""
    from model_explorer.builtin_tflite_flatbuffer_adapter import BuiltinTfliteFlatbufferAdapter

    graph = BuiltinTfliteFlatbufferAdapter().convert(str(path), {})["graphCollections"][0].graphs[0]
    return graph["id"], {
        n["id"] for n in graph["nodes"] if n["label"] not in ("GraphInputs", "GraphOutputs", "pseudo_const")
    }


def test_overlays_cover_every_node_with_the_adapters_ids(fixed, tmp_path):
    from model_explorer.node_data_builder import GraphNodeData, NodeDataResult

    gid, ops = _adapter_ops(fixed.output)
    after = fixed.sides[1]
    assert gid == after.graph_name
    for name, data in overlays(fixed).items():
        ((graph_id, graph),) = data.items()
        assert graph_id == gid
        if "after" in name:
            assert set(graph["results"]) == ops == {str(n.index) for n in after.observed}
        node_data = GraphNodeData(
            results={k: NodeDataResult(**v) for k, v in graph["results"].items()}, gradient=graph.get("gradient", [])
        )
        assert len(node_data.results) == len(graph["results"])


def test_written_files_load_in_model_explorers_config(profiled, tmp_path):
    paths = write_overlays(profiled, tmp_path / "me.json")
    assert len(paths) == 2  # delegation and latency
    config = me.config()
    for p in paths:
        config.add_node_data_from_path(str(p))
        data = json.loads(p.read_text())
        (graph,) = data.values()
        cpu = {k for k, v in graph["results"].items() if isinstance(v["value"], str) and v["value"].startswith("CPU")}
        if "latency" not in p.name:
            assert len(cpu) == profiled.recipes[0].summary()["cpu_nodes"]
