"""Models from libraries (keras-hub, keras.applications) at small configs: every node on the layer whose call made it.

Each model is built and converted once per module. Sources are checked against the library's
own files, found through `inspect`, so a new keras-hub release moves the expected lines with it.
"""

from __future__ import annotations

import inspect
import os

import pytest

from fixtures_models import diagnose
from xnnfit.model.convert import ConvertOptions, convert_model
from xnnfit.model.recipes import RECIPES
from xnnfit.model.specs import ShapeRequest
from xnnfit.tflite.graph import read_model

pytestmark = pytest.mark.slow

BERT_INPUTS = ShapeRequest(input_shapes=(("token_ids", (1, 32)), ("segment_ids", (1, 32)), ("padding_mask", (1, 32))))
DECODER_INPUTS = ShapeRequest(input_shapes=(("token_ids", (1, 32)), ("padding_mask", (1, 32))))


def _convert(model, recipe: str, shapes: ShapeRequest = ShapeRequest()):
    conv = convert_model(model, RECIPES[recipe], ConvertOptions(shapes))
    return conv, diagnose(conv)


def _lines(fn, needle: str) -> set[int]:
    """Absolute line numbers of the lines of `fn`'s source that contain `needle`."""
    lines, start = inspect.getsourcelines(fn)
    found = {start + i for i, line in enumerate(lines) if needle in line}
    assert found, (fn, needle)
    return found


def _where(source: str) -> tuple[str, int]:
    file, line = source.rsplit(":", 1)
    return os.path.realpath(file), int(line)


def _file(obj) -> str:
    return os.path.realpath(inspect.getsourcefile(obj))


def _output_names(conv) -> dict[int, str]:
    sub = read_model(conv.content).primary
    return {op.index: ";".join(sub.tensors[t].name for t in op.outputs) for op in sub.ops}


def _assert_every_node_on_a_known_layer(conv, diag) -> None:
    known = {layer.qualname: layer.class_name for layer in conv.layers}
    wrong = [(n.index, n.op, n.layer, n.layer_class) for n in diag.nodes if known.get(n.layer, "?") != n.layer_class]
    assert not wrong, wrong


# ----------------------------------------------------------------------------- keras-hub BERT


@pytest.fixture(scope="module")
def bert_model():
    import keras_hub

    return (
        keras_hub.models.BertBackbone(  # named: Keras numbers auto names per process, and other tests build BERTs too
            vocabulary_size=1000,
            num_layers=2,
            num_heads=2,
            hidden_dim=64,
            intermediate_dim=128,
            max_sequence_length=32,
            name="bert_backbone",
        )
    )


@pytest.fixture(scope="module")
def bert(bert_model):
    """(Artifact, Diagnosis) of the BERT backbone in fp32."""
    return _convert(bert_model, "fp32", BERT_INPUTS)


def _class_token_slice(conv) -> int:
    """Index of the STRIDED_SLICE that drops the sequence axis: x[:, 0] in BertBackbone.__init__."""
    (index,) = [
        op.index
        for op in read_model(conv.content).primary.ops
        if op.op == "STRIDED_SLICE" and op.options.get("shrinkAxisMask")
    ]
    return index


def test_bert_class_token_slice_maps_to_the_backbone(bert):
    from keras_hub.models import BertBackbone

    conv, diag = bert
    node = diag.nodes[_class_token_slice(conv)]
    assert (node.op, node.layer, node.layer_class) == ("STRIDED_SLICE", "bert_backbone", "BertBackbone")
    # the op of the backbone's own graph comes from the __init__ that builds it (Keras keeps no finer line)
    assert _where(node.source) == (_file(BertBackbone), inspect.getsourcelines(BertBackbone.__init__)[1])


def test_bert_residual_adds_show_the_encoders_line(bert):
    from keras_hub.layers import TransformerEncoder

    _, diag = bert
    adds = [n for n in diag.nodes if n.op == "ADD" and n.layer_class == "TransformerEncoder"]
    assert sorted(n.layer for n in adds) == ["transformer_layer_0"] * 2 + ["transformer_layer_1"] * 2
    residual = {(_file(TransformerEncoder), line) for line in _lines(TransformerEncoder.call, "x = x + residual")}
    assert {_where(n.source) for n in adds} == residual


def test_bert_every_node_on_a_layer_of_its_scope(bert):
    conv, diag = bert
    _assert_every_node_on_a_known_layer(conv, diag)
    names = _output_names(conv)
    for n in diag.nodes:
        for k in (0, 1):
            if f"/transformer_layer_{k}_1/" in names[n.index]:
                assert n.layer.startswith(f"transformer_layer_{k}"), (n, names[n.index])


def test_bert_sources_are_keras_hub_lines(bert):
    import keras_hub

    root = os.path.realpath(os.path.dirname(keras_hub.__file__)) + os.sep
    assert all(n.source and _where(n.source)[0].startswith(root) for n in bert[1].nodes), [
        (n.op, n.layer, n.source) for n in bert[1].nodes if not (n.source and _where(n.source)[0].startswith(root))
    ]


def test_bert_int8_maps_without_debug_metadata(bert_model):
    # the int8 converter drops the debug metadata and renames the model outputs 'Identity...'
    conv, diag = _convert(bert_model, "int8", BERT_INPUTS)
    assert "debug_metadata" not in read_model(conv.content).metadata
    _assert_every_node_on_a_known_layer(conv, diag)
    node = diag.nodes[_class_token_slice(conv)]
    assert (node.layer, node.layer_class) == ("bert_backbone", "BertBackbone")
    (tanh,) = [n for n in diag.nodes if n.op == "TANH"]
    assert (tanh.layer, tanh.layer_class) == ("pooled_dense", "Dense")


# ----------------------------------------------------------------------------- keras.applications


@pytest.fixture(scope="module")
def mobilenet_v3():
    import keras

    model = keras.applications.MobileNetV3Small(
        weights=None, input_shape=(32, 32, 3), alpha=0.75, include_preprocessing=False, classes=10
    )
    return _convert(model, "int8")


def test_mobilenet_v3_int8_softmax_maps_to_predictions(mobilenet_v3):
    conv, diag = mobilenet_v3
    _assert_every_node_on_a_known_layer(conv, diag)
    (softmax,) = [n for n in diag.nodes if n.op == "SOFTMAX"]
    assert (softmax.layer, softmax.layer_class) == ("predictions", "Activation")


def test_mobilenet_v3_hard_sigmoid_arithmetic_maps_to_the_model(mobilenet_v3):
    # hard_sigmoid is relu6(x + 3) * (1 / 6) written in the functional graph: its MUL belongs to no layer
    conv, diag = mobilenet_v3
    names = _output_names(conv)
    own = [n for n in diag.nodes if n.op == "MUL" and names[n.index].startswith("MobileNetV3Small_1/Mul")]
    assert own and {(n.layer, n.layer_class) for n in own} == {("MobileNetV3Small", "Functional")}


@pytest.fixture(scope="module")
def convnext():
    """keras.applications' ConvNeXt at one block per stage and narrow widths (ConvNeXtTiny's code, ~1/1000 the size)."""
    from keras.src.applications.convnext import ConvNeXt

    model = ConvNeXt(
        depths=[1, 1, 1, 1],
        projection_dims=[8, 16, 32, 64],
        weights=None,
        input_shape=(32, 32, 3),
        classes=10,
        name="convnext_mini",
    )
    return _convert(model, "fp32")


def test_convnext_residual_adds_map_to_the_model(convnext):
    conv, diag = convnext
    _assert_every_node_on_a_known_layer(conv, diag)
    names = _output_names(conv)
    # named in the model's own scope only; the last block's (1x1 spatial) add became 'convnext_mini_1/BiasAdd'
    residual = [n for n in diag.nodes if n.op == "ADD" and names[n.index].count("/") == 1]
    assert len(residual) == 4  # one per block
    assert {(n.layer, n.layer_class) for n in residual} == {("convnext_mini", "Functional")}


def test_convnext_convolutions_map_to_their_conv_layers(convnext):
    _, diag = convnext
    layers = [n.layer for n in diag.nodes if n.op == "CONV_2D"]
    assert sorted(layers) == sorted(
        ["convnext_mini_stem/convnext_mini_stem_conv"]
        + [f"convnext_mini_stage_{s}_block_0_depthwise_conv" for s in range(4)]  # grouped: inlined XLA functions
        + [f"convnext_mini_downsampling_block_{s}/convnext_mini_downsampling_conv_{s}" for s in range(3)]
    )


# ----------------------------------------------------------------------------- keras-hub Llama


@pytest.fixture(scope="module")
def llama():
    import keras_hub

    model = keras_hub.models.LlamaBackbone(
        vocabulary_size=1000,
        num_layers=2,
        num_query_heads=2,
        num_key_value_heads=1,
        hidden_dim=64,
        intermediate_dim=128,
    )
    return _convert(model, "fp32", DECODER_INPUTS)


def test_llama_every_node_on_a_layer_of_its_scope(llama):
    conv, diag = llama
    _assert_every_node_on_a_known_layer(conv, diag)
    names = _output_names(conv)
    for n in diag.nodes:
        for k in (0, 1):
            if f"/transformer_layer_{k}_1/" in names[n.index]:
                assert n.layer.startswith(f"transformer_layer_{k}"), (n, names[n.index])
            if f"/transformer_layer_{k}_1/self_attention_1/" in names[n.index]:
                assert n.layer.startswith(f"transformer_layer_{k}/self_attention"), (n, names[n.index])


def test_llama_ops_map_to_the_classes_that_make_them(llama):
    _, diag = llama
    by_op: dict[str, set[str]] = {}
    for n in diag.nodes:
        by_op.setdefault(n.op, set()).add(n.layer_class)
    assert by_op["SOFTMAX"] == {"Softmax"}
    assert by_op["FULLY_CONNECTED"] == {"Dense", "EinsumDense"}
    assert by_op["SPLIT"] == {"LlamaRotaryEmbedding"}  # rotate_half in the rotary embedding's call


def test_llama_silu_maps_to_the_decoders_own_call(llama):
    from keras_hub.src.models.llama.llama_decoder import LlamaTransformerDecoder

    _, diag = llama
    silu = [n for n in diag.nodes if n.op == "LOGISTIC"]
    assert [(n.layer, n.layer_class) for n in silu] == [
        (f"transformer_layer_{k}", "LlamaTransformerDecoder") for k in (0, 1)
    ]
    lines = _lines(LlamaTransformerDecoder.call, "self.activation(gate_output)")
    assert {_where(n.source) for n in silu} == {(_file(LlamaTransformerDecoder), line) for line in lines}


def test_llama_sources_lie_in_the_file_of_the_class_that_made_the_op(llama):
    from keras_hub.src.layers.modeling.rotary_embedding import RotaryEmbedding
    from keras_hub.src.models.llama.llama_attention import LlamaAttention
    from keras_hub.src.models.llama.llama_layernorm import LlamaLayerNorm

    _, diag = llama
    files = {
        "LlamaRotaryEmbedding": _file(RotaryEmbedding),
        "LlamaAttention": _file(LlamaAttention),
        "LlamaLayerNorm": _file(LlamaLayerNorm),
    }
    for n in diag.nodes:
        if n.layer_class in files:
            assert _where(n.source)[0] == files[n.layer_class], n
