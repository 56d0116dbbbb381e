"""inputs: sample data for .tflite inputs of every tensor type the schema defines (found by benchmarks/fuzz.py)."""

from __future__ import annotations

import numpy as np
import pytest

import fixtures_models
from xnnfit.core.errors import InputDataError
from xnnfit.model.inputs import samples_for
from xnnfit.model.specs import ShapeRequest, tflite_declared_inputs
from xnnfit.tflite import read_model
from xnnfit.tflite.schema import fb
from xnnfit.tflite.writer import parse, serialize


def _specs_with_input_type(code: int):
    """The pinned specs of Dense -> Reshape with its input tensor declared as TensorType `code`."""
    model = parse(fixtures_models.convert(fixtures_models.dense_reshape_model()).content)
    model.subgraphs[0].tensors[0].type = code
    specs, _ = ShapeRequest().pin_all(tflite_declared_inputs(read_model(serialize(model))))
    return specs


@pytest.mark.parametrize("kind", ["STRING", "RESOURCE", "VARIANT"])
def test_an_input_numpy_cannot_hold_is_one_clear_error(kind, tmp_path):
    """profile made its random sample with numpy and raised TypeError: data type 'string' not understood."""
    specs = _specs_with_input_type(getattr(fb.TensorType, kind))
    with pytest.raises(InputDataError) as info:
        samples_for(specs, None)
    message = str(info.value)
    assert message.startswith(f"input 'x' is {kind.lower()}, a type numpy cannot hold")
    assert "xnnfit check needs no data" in message
    np.savez(tmp_path / "data.npz", x=np.zeros((2, 4), np.float32))
    with pytest.raises(InputDataError):  # an --data file cannot be read into it either
        samples_for(specs, str(tmp_path / "data.npz"))


@pytest.mark.parametrize(
    "kind", ["FLOAT16", "FLOAT64", "COMPLEX64", "UINT16", "UINT64", "BOOL", "INT4", "BFLOAT16", "FLOAT8_E4M3FN"]
)
def test_every_type_an_array_can_hold_gets_samples(kind):
    """numpy's types and ml_dtypes' (int4, bfloat16, float8 raised 'data type not understood' in profile's child)."""
    import ml_dtypes

    (sample,) = samples_for(_specs_with_input_type(getattr(fb.TensorType, kind)), None)
    name = kind.lower()
    assert sample["x"].dtype == np.dtype(getattr(ml_dtypes, name, None) or name) and sample["x"].shape == (1, 4)
