"""Trained models for the accuracy tests of quant and optimize (built once per session)."""

from __future__ import annotations

import pytest

import trained


@pytest.fixture(scope="session")
def digits(tmp_path_factory) -> trained.Saved:
    """The ReLU digits CNN, trained on scikit-learn's digits: builder, eval .npz with 450 labels, calibration."""
    return trained.save("digits_relu", tmp_path_factory.mktemp("digits"))
