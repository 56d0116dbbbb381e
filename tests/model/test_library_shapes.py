"""Library models convert as is: unknown sequence lengths within the model's own limits, same-shaped inputs together.

keras-hub backbones declare (batch, sequence) inputs with both dimensions unknown and a
`max_sequence_length` their position table cannot exceed. Conversions run in this process
(convert_model); one CLI run per outcome shows the line a user reads.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from xnnfit.core.errors import ConversionError
from xnnfit.core.policy import DEFAULT_DIM
from xnnfit.model.convert import ConvertOptions, convert_model
from xnnfit.model.recipes import RECIPES
from xnnfit.model.specs import Pin, ShapeRequest
from xnnfit.runtime.interpreter import build_interpreter

keras_hub = pytest.importorskip("keras_hub")

MAX_LEN = 32  # below DEFAULT_DIM: pinning to the default would overrun the position table
TINY = dict(
    vocabulary_size=1000, num_layers=2, num_heads=2, hidden_dim=64, intermediate_dim=128, max_sequence_length=MAX_LEN
)
BUILD = f"""
import keras_hub

def build():
    return keras_hub.models.BertBackbone(**{TINY!r})
"""

assert MAX_LEN < DEFAULT_DIM


@pytest.fixture(scope="module")
def bert():
    return keras_hub.models.BertBackbone(**TINY)


@pytest.fixture(scope="module")
def gpt2():
    return keras_hub.models.GPT2Backbone(**TINY)


def _convert(model, **input_shapes):
    return convert_model(model, RECIPES["fp32"], ConvertOptions(ShapeRequest(input_shapes=tuple(input_shapes.items()))))


def _runs(artifact) -> bool:
    """The .tflite allocates and runs at the artifact's shapes."""
    interpreter = build_interpreter(artifact.content, specs=artifact.specs)
    for detail in interpreter.get_input_details():
        interpreter.set_tensor(detail["index"], np.ones(detail["shape"], detail["dtype"]))
    interpreter.invoke()
    return True


def test_bert_with_no_input_shape_is_pinned_to_its_max_sequence_length(bert):
    artifact = _convert(bert)
    assert {s.name: s.shape for s in artifact.specs} == {
        "token_ids": (1, MAX_LEN),
        "segment_ids": (1, MAX_LEN),
        "padding_mask": (1, MAX_LEN),
    }
    assert all(s.pins[1] == Pin(1, MAX_LEN, "max_sequence_length") for s in artifact.specs)
    (warning,) = artifact.warnings  # one for the three inputs that share the shape
    assert re.search(rf"pinned to {MAX_LEN}, the max_sequence_length of 'bert_backbone(_\d+)?'", warning), (
        warning
    )  # Keras numbers repeated names
    assert all(f"'{name}'" in warning for name in ("token_ids", "segment_ids", "padding_mask"))
    assert _runs(artifact)


def test_bert_pinning_token_ids_pins_the_inputs_that_share_its_shape(bert):
    artifact = _convert(bert, token_ids=(1, 16))
    assert {s.name: s.shape for s in artifact.specs} == {
        "token_ids": (1, 16),
        "segment_ids": (1, 16),
        "padding_mask": (1, 16),
    }
    assert {s.name: s.pins[1].by for s in artifact.specs} == {
        "token_ids": "--input-shape",
        "segment_ids": "same as token_ids",
        "padding_mask": "same as token_ids",
    }
    assert artifact.warnings == ()  # the user chose the size
    assert _runs(artifact)


def test_bert_conversion_failing_at_the_pinned_length_names_every_pin_and_what_to_pass(bert):
    with pytest.raises(ConversionError) as info:
        _convert(bert, token_ids=(1, 2 * MAX_LEN))
    message = str(info.value)
    assert "\n" not in message
    assert "'tf.Slice' op requires" in message  # the converter's own complaint
    assert "token_ids int32 [-1, -1] -> [1, 64] (axis 0 --input-shape, axis 1 --input-shape)" in message
    assert "padding_mask int32 [-1, -1] -> [1, 64] (axis 0 same as token_ids, axis 1 same as token_ids)" in message
    assert (
        "--input-shape token_ids=1,N (padding_mask, segment_ids follow: same declared shape)" in message
    )  # specs in tf.nest order


def test_bert_traced_at_inconsistent_pins_names_the_layer_and_the_pins(bert):
    with pytest.raises(ConversionError) as info:
        _convert(bert, token_ids=(1, 16), padding_mask=(1, 8), segment_ids=(1, 16))
    message = str(info.value)
    assert message.startswith("cannot trace the model at the pinned input shapes: ") and "\n" not in message
    assert re.search(r"layer 'softmax(_\d+)?' raised ValueError: The `mask` must be broadcastable", message), (
        message
    )  # where the 8 met the 16
    assert "padding_mask int32 [-1, -1] -> [1, 8] (axis 0 --input-shape, axis 1 --input-shape)" in message
    assert "--input-shape token_ids=1,N" in message and "--input-shape padding_mask=1,N" in message


def test_gpt2_converts_at_its_max_sequence_length_and_follows_a_pin(gpt2):
    artifact = _convert(gpt2)
    assert {s.name: s.shape for s in artifact.specs} == {"token_ids": (1, MAX_LEN), "padding_mask": (1, MAX_LEN)}
    # Keras names the layer gpt2_backbone_N when another backbone was built in this process first
    assert re.search(r"the max_sequence_length of 'gpt2_backbone(_\d+)?'", artifact.warnings[0]), artifact.warnings[0]
    artifact = _convert(gpt2, padding_mask=(1, 8))
    assert {s.name: s.shape for s in artifact.specs} == {"token_ids": (1, 8), "padding_mask": (1, 8)}
    assert _runs(artifact)


def _with_position_table(rows: int):
    """A token model whose position Embedding has `rows` rows: its input_dim is the longest sequence."""
    import keras
    from keras import ops

    tokens = keras.Input((None,), dtype="int32", name="tokens")
    positions = keras.layers.Lambda(
        lambda t: ops.zeros_like(t) + ops.arange(ops.shape(t)[1], dtype="int32")[None],
        output_shape=(None,),
        name="positions",
    )(tokens)
    x = keras.layers.Embedding(100, 8, name="token_embedding")(tokens) + keras.layers.Embedding(
        rows, 8, name="position_embedding"
    )(positions)
    return keras.Model(tokens, keras.layers.Dense(2, name="head")(x))


def test_a_position_embedding_table_bounds_the_sequence():
    artifact = _convert(_with_position_table(24))
    (spec,) = artifact.specs
    assert spec.shape == (1, 24) and spec.pins[1] == Pin(1, 24, "input_dim")
    assert "pinned to 24, the input_dim of 'position_embedding'" in artifact.warnings[0]


def test_conversion_failing_at_a_guessed_size_says_it_was_guessed():
    import keras
    import tensorflow as tf

    window = np.zeros((1, 40), np.float32)  # a hidden limit no attribute declares
    signal = keras.Input((None,), name="signal")
    out = keras.layers.Lambda(lambda x: x + tf.slice(window, [0, 0], tf.shape(x)), output_shape=(None,), name="window")(
        signal
    )
    with pytest.raises(ConversionError) as info:
        _convert(keras.Model(signal, out))
    message = str(info.value)
    assert f"signal float32 [-1, -1] -> [1, {DEFAULT_DIM}] (axis 0 --batch, axis 1 default)" in message
    assert "--input-shape signal=1,N" in message


def _cli(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    return subprocess.run(
        [sys.executable, "-m", "xnnfit", *args, "-q"], capture_output=True, text=True, env=env, timeout=600
    )


@pytest.fixture(scope="module")
def bert_source(tmp_path_factory) -> str:
    path = tmp_path_factory.mktemp("bert") / "bert.py"
    path.write_text(textwrap.dedent(BUILD))
    return f"{path}:build"


@pytest.mark.slow
def test_cli_checks_bert_with_no_input_shape_and_says_why(bert_source):
    res = _cli("check", bert_source)
    assert res.returncode == 0, res.stderr
    assert f"pinned to {MAX_LEN}, the max_sequence_length of 'bert_backbone'" in " ".join(res.stdout.split())
    assert (
        f"input token_ids int32 [-1, -1] -> [1, {MAX_LEN}] (axis 0 --batch, axis 1 max_sequence_length)" in res.stdout
    )


@pytest.mark.slow
def test_cli_failing_conversion_is_one_line_naming_the_pins(bert_source):
    res = _cli("check", bert_source, "--input-shape", "token_ids=1,64")
    assert res.returncode == 2
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: the TFLite converter refused"), res.stderr
    assert "token_ids int32 [-1, -1] -> [1, 64] (axis 0 --input-shape, axis 1 --input-shape)" in lines[0]
    assert "--input-shape token_ids=1,N" in lines[0]
