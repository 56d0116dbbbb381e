"""Output error, defined once: how far a model's outputs are from a reference's, as a share of the reference's scale."""

from __future__ import annotations

import numpy as np


def xnnpack_error(content: bytes, seed: int = 0) -> float:
    """Max |XNNPACK - built-in| / max |built-in| of a probe's outputs on seeded random inputs."""
    from xnnfit.runtime.interpreter import outputs
    from xnnfit.tflite.graph import read_model

    rng = np.random.default_rng(seed)
    sub = read_model(content).primary
    sample = {sub.tensors[t].name: rng.uniform(-2, 2, sub.tensors[t].shape).astype(np.float32) for t in sub.inputs}
    ref = outputs(content, [sample], xnnpack=False)[0]
    got = outputs(content, [sample], xnnpack=True)[0]
    scale = max(float(np.max(np.abs(r))) for r in ref) or 1.0
    return max(float(np.max(np.abs(r - g))) for r, g in zip(ref, got)) / scale
