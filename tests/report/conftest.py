"""Results the report tests render: built once per session from the examples (real conversion, runtime and profile)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

import xnnfit
from xnnfit.kb.composite import attention_model

ROOT = Path(__file__).resolve().parents[2]
CNN = str(ROOT / "examples" / "where_cnn.py") + ":build"  # 20 CPU nodes (XR001 removes them all)


@pytest.fixture(scope="session")
def profiled():
    """xnnfit profile of where_cnn (fp32)."""
    return xnnfit.profile(CNN, runs=5)


@pytest.fixture(scope="session")
def fixed(tmp_path_factory):
    """xnnfit fix of where_cnn with the before/after profiles the report draws."""
    out = tmp_path_factory.mktemp("fix") / "fixed.tflite"
    return xnnfit.fix(CNN, out, runs=5, sides=True)


@pytest.fixture(scope="session")
def hazard_check(tmp_path_factory):
    """xnnfit check of an attention composite XNNPACK computes wrong (XNN040)."""
    path = tmp_path_factory.mktemp("hazard") / "sdpa.tflite"
    path.write_bytes(attention_model(scale=0.1))
    return xnnfit.check(str(path))


def chromium() -> str | None:
    """The system Chromium .ci/run installs (Playwright drives it; no browser download)."""
    return next(
        (
            p
            for p in (
                shutil.which("chromium"),
                shutil.which("chromium-headless-shell"),
                shutil.which("chromium-browser"),
            )
            if p
        ),
        None,
    )


@pytest.fixture(scope="session")
def browser():
    """A real headless Chromium."""
    exe = chromium()
    if exe is None:
        pytest.skip("no Chromium on this machine (.ci/run installs Debian's chromium)")
    sync = pytest.importorskip("playwright.sync_api")
    with sync.sync_playwright() as p:
        b = p.chromium.launch(executable_path=exe, args=["--no-sandbox", "--disable-gpu"])
        yield b
        b.close()
