"""The transformer target: after `fix`, every tiny keras-hub backbone is one XNNPACK partition.

Plus at most one CPU prologue.
"""

from __future__ import annotations

import dataclasses
import functools

import pytest

from fixtures_models import diagnose as analyze
from xnnfit.core.policy import DEFAULT_POLICY
from xnnfit.model.convert import ConvertOptions, convert_model
from xnnfit.model.recipes import RECIPES
from xnnfit.model.specs import ShapeRequest
from xnnfit.rewrite.engine import fix_content

keras_hub = pytest.importorskip("keras_hub")

pytestmark = pytest.mark.slow

TEXT = dict(vocabulary_size=1000, num_layers=2, hidden_dim=64, intermediate_dim=128)
BACKBONES = {
    "bert": lambda: keras_hub.models.BertBackbone(num_heads=2, max_sequence_length=32, **TEXT),
    "gpt2": lambda: keras_hub.models.GPT2Backbone(num_heads=2, max_sequence_length=32, **TEXT),
    "llama_gqa": lambda: keras_hub.models.LlamaBackbone(num_query_heads=4, num_key_value_heads=2, **TEXT),
    "gemma": lambda: keras_hub.models.GemmaBackbone(num_query_heads=2, num_key_value_heads=1, head_dim=32, **TEXT),
    "t5": lambda: keras_hub.models.T5Backbone(num_heads=2, key_value_dim=32, **TEXT),
    "whisper": lambda: keras_hub.models.WhisperBackbone(
        num_heads=2, num_mels=16, max_encoder_sequence_length=64, max_decoder_sequence_length=32, **TEXT
    ),
    "vit": lambda: keras_hub.models.ViTBackbone(
        image_shape=(32, 32, 3), patch_size=8, num_layers=2, num_heads=2, hidden_dim=64, mlp_dim=128
    ),
    "mit": lambda: keras_hub.models.MiTBackbone(
        layerwise_depths=[1, 1],
        num_layers=2,
        layerwise_num_heads=[1, 2],
        layerwise_sr_ratios=[2, 1],
        max_drop_path_rate=0.0,
        hidden_dims=[16, 32],
        layerwise_patch_sizes=[7, 3],
        layerwise_strides=[4, 2],
        image_shape=(64, 64, 3),
    ),
}
PINNED = {"bert_seq16": ("bert", 16)}  # a dynamic sequence length pinned by --input-shape
NO_TIMING = dataclasses.replace(
    DEFAULT_POLICY, slower_margin=float("inf")
)  # timing is asserted in benchmarks/, not here


@functools.cache
def model(name: str):
    import keras

    keras.utils.set_random_seed(0)
    return BACKBONES[name]()


@functools.cache
def converted(case: str, recipe: str):
    name, seq = PINNED.get(case, (case, None))
    m = model(name)
    shapes = ShapeRequest(input_shapes=tuple((k, (1, seq)) for k in m.input)) if seq else ShapeRequest()
    options = ConvertOptions(shapes)
    conv = convert_model(m, RECIPES[recipe], options)
    reference = convert_model(m, RECIPES["fp32"], options).content if recipe != "fp32" else None
    return conv, reference


@pytest.mark.parametrize("recipe", ["fp32", "dynamic-int8"])
@pytest.mark.parametrize("case", list(BACKBONES) + list(PINNED))
def test_backbone_runs_as_one_partition_plus_a_cpu_prologue(case, recipe):
    conv, reference = converted(case, recipe)
    result = fix_content(conv, reference=reference, reference_name="the fp32 conversion", runs=5, policy=NO_TIMING)
    rolled = [(o.rule, o.reason) for o in result.outcomes if o.status == "rolled-back"]
    assert not rolled, rolled
    after = analyze(result.content, recipe)
    assert after.summary()["partitions"] <= 2, after.summary()
    cpu = [n for n in after.observed if not n.delegated]
    assert all(n.partition == 0 for n in cpu), [(n.op, n.partition) for n in cpu]  # the CPU group runs first, once
    assert not {"SOFTMAX", "SELECT_V2", "PACK", "TILE"} & {n.op for n in cpu}  # nothing per layer is left on CPU
    if recipe == "fp32":
        assert result.numerics.max_rel_error <= 1e-5, result.numerics
    else:
        assert (
            result.reference_after.max_rel_error
            <= result.reference_before.max_rel_error * DEFAULT_POLICY.quantized_margin + 1e-6
        )
