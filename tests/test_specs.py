"""Input specs are decided once: pinning rules, what the user is told, and errors for bad requests."""

from __future__ import annotations

import pytest

from xnnfit.errors import InputDataError
from xnnfit.policy import DEFAULT_DIM
from xnnfit.specs import Pin, ShapeRequest, dynamic_hint, parse_input_shapes

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
