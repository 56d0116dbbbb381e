"""The result cache: a finished job's result as JSON, keyed by everything that could change it.

The key hashes the model's bytes, the recipe, the options and the versions of xnnfit,
TensorFlow and the runtime, so an unchanged model in a large zoo costs nothing on the next
run. Entries are written atomically; one that does not parse is ignored (and rewritten).
"""

from __future__ import annotations

import functools
import hashlib
import json
from pathlib import Path
from typing import Any

from xnnfit.core.errors import XnnfitError
from xnnfit.core.files import cache_root, write_file

KEY_VERSION = "2"  # bump when what a cached entry holds changes meaning (2: xnnfit's own code is part of the key)
RESULTS = "results"  # the result cache's folder under the cache root, beside runtimes/


def default_dir() -> Path:
    """Where results are cached: <cache root>/results (the root moves with $XNNFIT_CACHE_DIR or --cache-dir)."""
    return cache_root() / RESULTS


@functools.lru_cache(maxsize=1)
def code_digest() -> str:
    """A digest of xnnfit's own files: an edited checkout (same version, other code) never reads stale results."""
    package = Path(__file__).parent
    h = hashlib.sha256()
    for path in sorted(package.rglob("*")):
        if path.suffix in (".py", ".json") and path.is_file():
            h.update(str(path.relative_to(package)).encode())
            h.update(path.read_bytes())
    return h.hexdigest()[:16]


def key(*parts: Any) -> str:
    """A stable hex key for the parts (JSON-encoded, sorted) and xnnfit's code."""
    text = json.dumps([KEY_VERSION, code_digest(), *parts], sort_keys=True, default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


class ResultCache:
    """JSON results under `root`, one file per key (two-level fan-out)."""

    def __init__(self, root: str | Path):
        self.root = Path(root)

    def _path(self, k: str) -> Path:
        return self.root / k[:2] / f"{k}.json"

    def get(self, k: str) -> dict | None:
        """The stored result, or None when absent or unreadable (a corrupt entry is ignored)."""
        path = self._path(k)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError, UnicodeDecodeError):
            return None
        return data if isinstance(data, dict) else None

    def put(self, k: str, value: dict) -> Path | None:
        """Store `value` atomically (replacing a corrupt entry); None when the cache cannot be written (full disk).

        A cache that cannot store a result costs the next run time, never this run's result.
        """
        path = self._path(k)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            return write_file(path, json.dumps(value).encode("utf-8"), force=True, track=False)
        except (OSError, XnnfitError):
            return None
