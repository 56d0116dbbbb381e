"""tflite.writer on real conversions with damage the runtime tolerates (found by benchmarks/fuzz.py)."""

from __future__ import annotations

import pytest
from ai_edge_litert.interpreter import Interpreter

import fixtures_models
from xnnfit.core.errors import SourceError
from xnnfit.rewrite.graph import Graph
from xnnfit.tflite import read_model
from xnnfit.tflite.schema import fb
from xnnfit.tflite.writer import cut, parse, serialize


def test_a_metadata_entry_without_a_buffer_is_parsed_as_empty():
    """The runtime ignores a metadata entry pointing past the buffers; parsing the model raised IndexError on it."""
    model = parse(fixtures_models.convert(fixtures_models.dense_reshape_model()).content)
    entry = fb.MetadataT()
    entry.name, entry.buffer = "dangling", 10**6
    model.metadata.append(entry)
    content = serialize(model)
    Interpreter(model_content=content).allocate_tensors()

    parsed = parse(content)
    assert [m.buffer for m in parsed.metadata if m.name == b"dangling"] == [0]
    assert len(cut(parsed, [1]).content) > 0  # a profile piece
    rewritten = Graph.from_bytes(content).to_bytes()  # a fix
    metadata = read_model(rewritten).metadata
    assert metadata["dangling"] == b""
    assert {"min_runtime_version", "debug_metadata"} <= set(metadata)
    Interpreter(model_content=rewritten).allocate_tensors()


@pytest.mark.parametrize("keep", [100, 0.5])
def test_a_damaged_model_is_a_source_error(keep):
    """parse unpacks every table: a damaged file is read_model's one-line SourceError, not a bare struct.error."""
    content = fixtures_models.convert(fixtures_models.dense_reshape_model()).content
    data = content[: keep if isinstance(keep, int) else int(len(content) * keep)]
    with pytest.raises(SourceError) as info:
        parse(data, "'cut.tflite'")
    message = str(info.value)
    assert message.startswith("cannot read 'cut.tflite': the TFLite flatbuffer is damaged or truncated (")
    assert message.endswith("Re-export the model.") and "\n" not in message
    assert "Traceback" in info.value.detail  # for --debug


@pytest.mark.parametrize("index", [99, -5])
def test_intermediates_outside_the_subgraph_are_dropped(index):
    """The runtime ignores intermediates of an op that uses none; cutting or rewriting raised IndexError/KeyError."""
    model = parse(fixtures_models.convert(fixtures_models.dense_reshape_model()).content)
    model.subgraphs[0].operators[0].intermediates = [index]
    content = serialize(model)
    interpreter = Interpreter(model_content=content)
    interpreter.allocate_tensors()
    interpreter.invoke()

    assert parse(content).subgraphs[0].operators[0].intermediates == []
    piece = cut(parse(content), [0])
    Interpreter(model_content=piece.content).allocate_tensors()
    rewritten = Graph.from_bytes(content).to_bytes()
    assert [o.op for o in read_model(rewritten).primary.ops] == ["FULLY_CONNECTED", "RESHAPE"]


def test_a_piece_keeps_an_omitted_output_in_place():
    model = parse(fixtures_models.convert(fixtures_models.dense_reshape_model()).content)
    model.subgraphs[0].operators[0].outputs = [3, -1]
    piece = cut(parse(serialize(model)), [0])
    assert [int(t) for t in parse(piece.content).subgraphs[0].operators[0].outputs][1:] == [-1]
