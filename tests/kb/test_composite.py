"""The attention composite builder and its attributes: the decomposition is attention, widths read and rewrite right."""

from __future__ import annotations

import numpy as np
import pytest

from xnnfit.kb import composite
from xnnfit.runtime.interpreter import outputs


def _reference(q, k, v, scale, mask=None):
    b, t, n, h = q.shape
    group = n // k.shape[2]
    out = np.zeros_like(q)
    for i in range(b):
        for j in range(n):
            s = q[i, :, j, :] @ k[i, :, j // group, :].T * scale + (mask[0, 0] if mask is not None else 0)
            p = np.exp(s - s.max(-1, keepdims=True))
            out[i, :, j, :] = (p / p.sum(-1, keepdims=True)) @ v[i, :, j // group, :]
    return out


@pytest.mark.parametrize(
    ("heads", "kv_heads", "mask", "scale"), [(2, 2, False, None), (4, 2, True, 0.3), (4, 1, False, 0.125)]
)
def test_decomposition_is_scaled_dot_product_attention(heads, kv_heads, mask, scale):
    content = composite.attention_model(
        batch=2, t=6, s=10, heads=heads, kv_heads=kv_heads, head_dim=4, scale=scale, byte_width=4, mask=mask
    )
    rng = np.random.default_rng(0)
    sample = {
        "q": rng.normal(size=(2, 6, heads, 4)),
        "k": rng.normal(size=(2, 10, kv_heads, 4)),
        "v": rng.normal(size=(2, 10, kv_heads, 4)),
    }
    if mask:
        sample["mask"] = np.where(rng.uniform(size=(1, 1, 6, 10)) < 0.3, -1e9, 0.0)
    sample = {k: v.astype(np.float32) for k, v in sample.items()}
    (got,) = outputs(content, [sample], xnnpack=False)[0]
    want = _reference(sample["q"], sample["k"], sample["v"], scale if scale is not None else 0.5, sample.get("mask"))
    np.testing.assert_allclose(got, want, atol=1e-5)


@pytest.mark.parametrize(("value", "width"), [(0.125, 4), (0.1, 8), (1.0, 4)])
def test_python_flexbuffers_widens_floats_float32_cannot_hold(value, width):
    data = composite.attributes({"scale": value})
    assert composite.slot_width(data) == width
    assert composite.read_attributes(data) == {"scale": value}


def test_four_byte_keeps_every_key_and_rounds_floats_to_float32():
    data = composite.attributes({"scale": 0.1, "logit_cap": 30.0})
    fixed = composite.four_byte(data)
    assert composite.slot_width(fixed) == 4
    assert composite.read_attributes(fixed) == {"scale": float(np.float32(0.1)), "logit_cap": 30.0}
    assert composite.four_byte(composite.attributes({"scale": 0.1, "big": 2**40})) is None
    assert composite.read_attributes(b"not a flexbuffer") == {} and composite.slot_width(b"") == 0
