"""Input specs are decided once: pinning rules, what the user is told, and errors for bad requests."""

from __future__ import annotations

import pytest

from xnnfit.core.errors import InputDataError
from xnnfit.core.policy import DEFAULT_DIM
from xnnfit.model.specs import DimLimit, Pin, ShapeRequest, dynamic_hint, parse_input_shapes

DECLARED = [("audio", (-1, -1), "float32", None), ("ids", (-1, 8), "int32", 100)]


def test_dynamic_dims_are_pinned_by_batch_then_default_with_one_warning_per_input():
    specs, warnings = ShapeRequest(batch=2).pin_all(DECLARED)
    audio, ids = specs
    assert audio.shape == (2, DEFAULT_DIM) and audio.signature == (-1, -1)
    assert audio.pins == (Pin(0, 2, "--batch"), Pin(1, DEFAULT_DIM, "default"))
    assert ids.shape == (2, 8) and ids.pins == (Pin(0, 2, "--batch"),) and ids.high == 100
    assert len(warnings) == 1 and "'audio'" in warnings[0] and "--input-shape audio=2,64" in warnings[0]


def test_input_shape_wins_and_static_models_are_untouched():
    specs, warnings = ShapeRequest(input_shapes=parse_input_shapes(["audio=1,1600"])).pin_all(DECLARED)
    assert specs[0].shape == (1, 1600) and {p.by for p in specs[0].pins} == {"--input-shape"}
    assert not warnings
    static, _ = ShapeRequest().pin_all([("x", (1, 4), "float32", None)])
    assert static[0].shape == (1, 4) and static[0].pins == () and static[0].describe() == "x float32 [1, 4]"


def test_dynamic_batch_is_kept_and_runs_as_one():
    (spec,), _ = ShapeRequest(dynamic_batch=True).pin_all([("x", (-1, 4), "float32", None)])
    assert spec.shape == (-1, 4) and spec.run_shape == (1, 4) and spec.pins == (Pin(0, -1, "--dynamic-batch"),)


@pytest.mark.parametrize(
    ("items", "needle"),
    [
        (["nothere=1,2"], "names no model input: nothere. The inputs are: audio, ids"),
        (["audio=1,2,3"], "has 3 dimensions; input 'audio' has 2"),
        (["ids=1,9"], "changes fixed dimension 1"),
    ],
)
def test_bad_requests_say_what_to_pass(items, needle):
    with pytest.raises(InputDataError, match=needle):
        ShapeRequest(input_shapes=parse_input_shapes(items)).pin_all(DECLARED)


@pytest.mark.parametrize("text", ["audio", "audio=", "audio=1,x", "=1,2", "audio=0,4"])
def test_malformed_input_shape(text):
    with pytest.raises(InputDataError, match="NAME=D1,D2"):
        parse_input_shapes([text])


def test_hint_names_the_pins_and_what_to_pass():
    specs, _ = ShapeRequest().pin_all(DECLARED)
    hint = dynamic_hint(specs)
    assert "audio float32 [-1, -1] -> [1, 64]" in hint and "--input-shape audio=1,N" in hint
    assert dynamic_hint(ShapeRequest().pin_all([("x", (1, 4), "float32", None)])[0]) == ""


# ----------------------------------------------------------------------------- same-shaped inputs, model limits

BACKBONE = [
    ("token_ids", (-1, -1), "int32", 1000),
    ("segment_ids", (-1, -1), "int32", 2),
    ("padding_mask", (-1, -1), "int32", 2),
]
SEQ_32 = (DimLimit(1, 32, "max_sequence_length", "bert_backbone"),)


def test_inputs_with_the_same_declared_shape_follow_the_one_the_user_pinned():
    # the pinned input comes last: followers are resolved after it, whatever the order
    declared = [*BACKBONE[1:], BACKBONE[0], ("image", (-1, -1, 3), "float32", None)]
    specs, warnings = ShapeRequest(input_shapes=(("token_ids", (1, 16)),)).pin_all(declared)
    by_name = {s.name: s for s in specs}
    assert [s.name for s in specs] == ["segment_ids", "padding_mask", "token_ids", "image"]  # declaration order kept
    for name in ("segment_ids", "padding_mask"):
        assert by_name[name].shape == (1, 16)
        assert by_name[name].pins == (Pin(0, 1, "same as token_ids"), Pin(1, 16, "same as token_ids"))
        assert by_name[name].high == dict((d[0], d[3]) for d in declared)[name]  # their own bound, not the leader's
    assert by_name["image"].shape == (1, DEFAULT_DIM, 3)  # another declared shape does not follow
    assert len(warnings) == 1 and "'image'" in warnings[0]


def test_each_input_the_user_pinned_keeps_its_own_shape():
    request = ShapeRequest(input_shapes=(("token_ids", (1, 16)), ("segment_ids", (1, 8))))
    specs, _ = request.pin_all(BACKBONE)
    assert [s.shape for s in specs] == [(1, 16), (1, 8), (1, 16)]  # padding_mask follows the first pinned one


def test_fixed_inputs_with_equal_shapes_are_not_a_group():
    specs, warnings = ShapeRequest().pin_all([("a", (1, 4), "float32", None), ("b", (1, 4), "float32", None)])
    assert [s.pins for s in specs] == [(), ()] and not warnings


def test_a_model_limit_below_the_default_pins_the_group_with_one_warning_saying_why():
    specs, warnings = ShapeRequest().pin_all(BACKBONE, limits=SEQ_32)
    assert [s.shape for s in specs] == [(1, 32)] * 3
    assert all(s.pins == (Pin(0, 1, "--batch"), Pin(1, 32, "max_sequence_length")) for s in specs)
    (warning,) = warnings
    assert "'token_ids', 'segment_ids', 'padding_mask'" in warning
    assert "pinned to 32, the max_sequence_length of 'bert_backbone'" in warning
    assert "--input-shape token_ids=1,32 to choose; the others follow" in warning


def test_the_strictest_limit_wins_and_a_limit_above_the_default_leaves_the_default():
    limits = (DimLimit(1, 48, "sequence_length", "position_embedding"), DimLimit(1, 40, "max_sequence_length", "m"))
    (spec,), _ = ShapeRequest().pin_all(BACKBONE[:1], limits=limits)
    assert spec.shape == (1, 40) and spec.pins[1].by == "max_sequence_length"
    (spec,), (warning,) = ShapeRequest().pin_all(BACKBONE[:1], limits=(DimLimit(1, 512, "max_sequence_length", "m"),))
    assert spec.shape == (1, DEFAULT_DIM) and spec.pins[1].by == "default"
    assert "the model accepts up to 512: max_sequence_length of 'm'" in warning
    (spec,), _ = ShapeRequest().pin_all([("x", (-1, 8, -1), "float32", None)], limits=SEQ_32)
    assert spec.shape == (1, 8, DEFAULT_DIM)  # a limit bounds its own axis only


def test_hint_names_one_input_per_group_and_says_the_others_follow():
    specs, _ = ShapeRequest(input_shapes=(("token_ids", (1, 64)),)).pin_all(BACKBONE, limits=SEQ_32)
    hint = dynamic_hint(specs)
    assert "segment_ids int32 [-1, -1] -> [1, 64] (axis 0 same as token_ids, axis 1 same as token_ids)" in hint
    assert "token_ids int32 [-1, -1] -> [1, 64] (axis 0 --input-shape, axis 1 --input-shape)" in hint
    assert hint.endswith(
        "Pass shapes the model accepts: --input-shape token_ids=1,N (segment_ids, padding_mask "
        "follow: same declared shape)"
    )
    guessed, _ = ShapeRequest().pin_all(BACKBONE, limits=SEQ_32)
    assert "axis 1 max_sequence_length" in dynamic_hint(guessed)
    assert dynamic_hint(guessed).count("--input-shape ") == 1


def test_a_layer_limit_bounds_only_the_inputs_that_reach_the_layer():
    from xnnfit.model.specs import DimLimit

    declared = [("tokens", (-1, -1), "int32", None), ("frames", (-1, -1, 16), "float32", None)]
    limits = (DimLimit(1, 16, "sequence_length", "decoder_embedding", ("tokens",)),)
    specs, _ = ShapeRequest().pin_all(declared, limits=limits)
    tokens, frames = specs
    assert tokens.shape == (1, 16) and tokens.pins[1].by == "sequence_length"
    assert frames.shape == (1, 64, 16) and frames.pins[1].by == "default"  # the decoder's limit is not the encoder's
