"""JSON for machines: every result's own to_dict() (schema-versioned, with versions), written atomically."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from xnnfit.core.files import write_file
from xnnfit.core.record import Record


def write_json(result: Record | dict[str, Any], path: str | Path, *, force: bool = False, flag: str = "--json") -> Path:
    """Write `result` (a Record or its dict) to `path` atomically; overwrite only with `force` (files.py's policy)."""
    doc = result.to_dict() if isinstance(result, Record) else result
    return write_file(Path(path), json.dumps(doc, indent=2) + "\n", force=force, flag=flag)
