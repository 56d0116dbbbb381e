"""Shared fixtures: converted models are built once per session."""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")
# Runtime-target venvs (--runtime) are built once per checkout and reused by every later run.
os.environ.setdefault(
    "XNNFIT_CACHE_DIR", os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), ".cache", "xnnfit")
)

# --- begin: tests/ on sys.path (fixtures_models, isolate_targets) ----------------------
# pytest's default "prepend" import mode already puts tests/ (this file's directory) on
# sys.path; --import-mode=importlib does not. Test modules import the helper modules by
# name, and run_isolated's child imports isolate_targets through the parent's sys.path.
import sys as _sys

_TESTS_DIR = os.path.dirname(os.path.abspath(__file__))
if _TESTS_DIR not in _sys.path:
    _sys.path.insert(0, _TESTS_DIR)
# --- end: tests/ on sys.path -----------------------------------------------------------
