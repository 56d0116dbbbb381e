"""Both conversion routes give the same model: the concrete function (small models) and SavedModel export (big ones).

Big models go through a SavedModel because the concrete-function route holds extra
copies of every weight; that route is only measured on big models (benchmarks/), so
this test proves it equal on small ones: same nodes on XNNPACK, same fallbacks, same
layers, same causes, same inputs.
"""

from __future__ import annotations

import pytest

import fixtures_models
from xnnfit.model.convert import ConvertOptions, _route, convert_model
from xnnfit.model.recipes import ALL
from xnnfit.model.specs import ShapeRequest


def _view(artifact):
    d = fixtures_models.diagnose(artifact)
    cpu = sorted((n.op, n.layer, n.causes) for n in d.observed if not n.delegated)
    return d.summary(), cpu, [(s.name, s.shape, s.high) for s in artifact.specs]


@pytest.mark.parametrize(
    ("name", "recipe"),
    [
        ("where_cnn", "fp32"),
        ("where_cnn", "int8"),
        ("transformer_block", "int8+float-ops"),
        ("sin_cos_lambda", "dynamic-int8"),
    ],
)
def test_routes_agree_on_examples(name, recipe):
    model = fixtures_models.load_example(name).build()
    by_function = convert_model(model, ALL[recipe], ConvertOptions(route="function"))
    by_savedmodel = convert_model(model, ALL[recipe], ConvertOptions(route="savedmodel"))
    assert _view(by_function) == _view(by_savedmodel)


@pytest.mark.slow
def test_routes_agree_on_a_keras_hub_backbone_with_dict_inputs():
    import keras_hub

    bert = keras_hub.models.BertBackbone(
        vocabulary_size=1000, num_layers=2, num_heads=2, hidden_dim=64, intermediate_dim=128, max_sequence_length=32
    )
    shapes = ShapeRequest(input_shapes=(("token_ids", (1, 16)),))
    a = convert_model(bert, ALL["int8"], ConvertOptions(shapes, route="function"))
    b = convert_model(bert, ALL["int8"], ConvertOptions(shapes, route="savedmodel"))
    assert _view(a) == _view(b)


def test_the_route_follows_the_weights():
    import keras

    small = keras.Sequential([keras.Input((8,)), keras.layers.Dense(4)])
    big = keras.Sequential([keras.Input((4096,)), keras.layers.Dense(4096)])  # 64 MB of float32 weights
    assert _route(small, "keras3") == "function" and _route(big, "keras3") == "savedmodel"
