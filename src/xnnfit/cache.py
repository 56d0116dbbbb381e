"""The result cache: a finished job's result as JSON, keyed by everything that could change it.

The key hashes the model's bytes, the recipe, the options and the versions of xnnfit,
TensorFlow and the runtime, so an unchanged model in a large zoo costs nothing on the next
run. Entries are written atomically; one that does not parse is ignored (and rewritten).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from xnnfit.files import write_file

KEY_VERSION = "1"  # bump when what a cached entry holds changes meaning


def default_dir() -> Path:
    """The user cache folder (platformdirs: ~/.cache/xnnfit on Linux)."""
    import platformdirs

    return Path(platformdirs.user_cache_dir("xnnfit", appauthor=False))


def key(*parts: Any) -> str:
    """A stable hex key for the parts (JSON-encoded, sorted)."""
    text = json.dumps([KEY_VERSION, *parts], sort_keys=True, default=str)
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

    def put(self, k: str, value: dict) -> Path:
        """Store `value` atomically (replacing an entry that was corrupt)."""
        path = self._path(k)
        path.parent.mkdir(parents=True, exist_ok=True)
        return write_file(path, json.dumps(value).encode("utf-8"), force=True)
