"""Models no one here wrote: per-node verdicts equal the runtime's, every fallback explained, every node mapped."""

from __future__ import annotations

import pytest

from fixtures_models import diagnose as analyze
from xnnfit.model.convert import ConvertOptions, convert_model
from xnnfit.model.recipes import RECIPES
from xnnfit.model.specs import ShapeRequest
from xnnfit.observe.delegation import observe_node_per_delegate

pytestmark = pytest.mark.slow


def _mobilenet():
    import keras

    return keras.applications.MobileNetV2(weights=None, input_shape=(128, 128, 3))


def _nasnet():
    import keras

    return keras.applications.NASNetMobile(weights=None)


def _bert():
    import keras_hub

    return keras_hub.models.BertBackbone(
        vocabulary_size=500, num_layers=2, num_heads=2, hidden_dim=32, intermediate_dim=64, max_sequence_length=32
    )


def _vit():
    import keras_hub

    return keras_hub.models.ViTBackbone(
        image_shape=(32, 32, 3), patch_size=8, num_layers=2, num_heads=2, hidden_dim=32, mlp_dim=64
    )


CASES = [
    ("mobilenet_v2", _mobilenet, "fp32", 0),
    ("mobilenet_v2", _mobilenet, "dynamic-int8", 1),
    ("nasnet_mobile", _nasnet, "fp32", 1),
    ("bert_backbone", _bert, "fp32", 1),
    ("bert_backbone", _bert, "int8", 1),
    ("vit_backbone", _vit, "fp32", 0),
]


@pytest.fixture(scope="module")
def built():
    cache = {}

    def get(name, factory):
        if name not in cache:
            cache[name] = factory()
        return cache[name]

    return get


@pytest.mark.parametrize(("name", "factory", "recipe", "min_cpu"), CASES, ids=[f"{c[0]}-{c[2]}" for c in CASES])
def test_real_model(built, name, factory, recipe, min_cpu):
    model = built(name, factory)
    conv = convert_model(
        model,
        RECIPES[recipe],
        ConvertOptions(
            ShapeRequest(
                input_shapes=(("token_ids", (1, 32)), ("segment_ids", (1, 32)), ("padding_mask", (1, 32)))
                if name == "bert_backbone"
                else ()
            )
        ),
    )
    diag = analyze(conv)
    primary = diag.observed
    assert {n.index for n in primary if n.delegated} == observe_node_per_delegate(conv.content)
    assert not any("approximate" in note for note in diag.notes)
    cpu = [n for n in primary if not n.delegated]
    assert len(cpu) >= min_cpu
    assert diag.summary()["unexplained"] == 0, [(n.op, n.input_dtypes) for n in cpu if not n.causes]
    unmapped = [(n.index, n.op) for n in diag.nodes if not n.layer]
    assert not unmapped
    layer_names = {li.qualname for li in conv.layers}
    assert all(n.layer in layer_names for n in diag.nodes)
