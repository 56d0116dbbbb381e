"""accuracy.judge: the one judgement of whether errors against a reference's outputs mean something."""

from __future__ import annotations

import numpy as np

import fixtures_models
from xnnfit.measure.accuracy import JUDGED, judge, output_steps


def _outputs(*per_sample):
    return [[np.asarray(o, dtype=np.float32) for o in sample] for sample in per_sample]


def test_outputs_that_move_with_the_input_are_judged():
    assert judge(_outputs([[1.0, -2.0]], [[0.5, 3.0]])) == JUDGED


def test_constant_outputs_are_not_judged():
    j = judge(_outputs(*[[[0.1] * 10]] * 4))
    assert not j.judged and j.kind == "constant"
    assert j.reason == "the reference outputs are the same for every one of the 4 inputs"
    moving = judge(_outputs([[1.0, 2.0]], [[1.0, 2.0 + 1e-6]]))  # float32 rounding, no signal
    assert moving.kind == "constant" and moving.reason.startswith("the reference outputs move by only 4.8e-07 of their")


def test_one_sample_cannot_show_constant_outputs():
    assert judge(_outputs([[0.1, 0.1]])) == JUDGED


def test_zero_outputs_are_not_judged():
    assert judge(_outputs([[0.0, 0.0]], [[0.0, 0.0]])).kind == "zero"


def test_outputs_below_the_quantized_step_are_not_judged():
    ref = _outputs([[1e-11, -3e-12]], [[2e-12, 7e-12]])
    j = judge(ref, output_step=7.8e-9)
    assert j.kind == "below-step" and "scale (1e-11) is below the quantized output's step (7.8e-09)" in j.reason
    assert judge(ref, output_step=1e-13) == JUDGED
    two = [[np.array([5.0, -1.0]), np.array([1e-5])], [np.array([4.0, 2.0]), np.array([2e-5])]]
    assert judge(two, output_step=(None, 0.01)).reason.startswith("output 1's scale (2e-05)")
    assert judge(two, output_step=(0.01, None)) == JUDGED


def test_the_message_names_the_reason_and_the_remedy():
    import dataclasses

    j = dataclasses.replace(judge(_outputs([[0.0]], [[0.0]])), remedy="pass --data FILE")
    assert (
        j.message == "accuracy cannot be judged: the reference outputs are zero (largest |value| 0); pass --data FILE"
    )
    assert JUDGED.message == ""


def test_output_steps_read_the_quantized_output():
    fp32 = fixtures_models.convert(fixtures_models.dense_model()).content
    int8 = fixtures_models.convert(fixtures_models.dense_model(), "int8").content
    assert output_steps(fp32) == (None,)
    (step,) = output_steps(int8)  # the float output is DEQUANTIZE of an int8 tensor: its scale
    assert step is not None and 0 < step < 1
