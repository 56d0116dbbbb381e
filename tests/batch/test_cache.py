"""One cache root: $XNNFIT_CACHE_DIR (or --cache-dir) moves the result cache and the runtime venvs together."""

from __future__ import annotations

from xnnfit.batch.cache import ResultCache, code_digest, default_dir, key
from xnnfit.core.files import CACHE_ENV, cache_root
from xnnfit.runtime import targets


def test_one_setting_moves_every_cache(tmp_path, monkeypatch):
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "root"))
    assert cache_root() == tmp_path / "root"
    assert default_dir() == tmp_path / "root" / "results"
    assert targets.venv_dir(targets.parse("tflite-runtime==2.14.0")).parent == tmp_path / "root" / "runtimes"


def test_the_key_covers_xnnfits_own_code():
    """An edited checkout keeps its version number: its code digest keeps it from reading results of other code."""
    assert len(code_digest()) == 16
    assert key("model", "fp32") == key("model", "fp32") != key("model", "int8")


def test_a_cache_that_cannot_be_written_costs_nothing_but_time(tmp_path):
    blocked = tmp_path / "file"
    blocked.write_text("a file where the cache folder should be")
    cache = ResultCache(blocked)
    assert cache.put("ab" * 32, {"x": 1}) is None
    assert cache.get("ab" * 32) is None
