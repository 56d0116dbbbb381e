"""runtime on real conversions the fuzzer damaged (benchmarks/fuzz.py): one clear error, no bare ValueError."""

from __future__ import annotations

import numpy as np
import pytest

import fixtures_models
from xnnfit.errors import RuntimeFailure
from xnnfit.runtime import outputs
from xnnfit.tflite.writer import parse, serialize


def test_an_output_no_op_writes_is_one_clear_error():
    """The last op removed: the runtime runs the model, but its output holds no data and get_tensor raised ValueError."""
    model = parse(fixtures_models.convert(fixtures_models.dense_reshape_model()).content)
    del model.subgraphs[0].operators[-1]  # the RESHAPE that writes the output
    with pytest.raises(RuntimeFailure) as info:
        outputs(serialize(model), [{"x": np.ones((1, 4), np.float32)}])
    message = str(info.value)
    assert message.startswith("tensor 4 ('Identity') of the model holds no data after a run: no op writes it")
    assert message.endswith("re-export the model.") and "\n" not in message
