"""JSON for machines: every result's own to_dict() (schema-versioned, with versions), written atomically."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from xnnfit.errors import XnnfitError
from xnnfit.files import write_file
from xnnfit.record import Record


def write_json(result: Record | dict[str, Any], path: str | Path) -> Path:
    """Write `result` (a Record or its dict) to `path` atomically, replacing an older report."""
    path = Path(path)
    folder = path.parent if str(path.parent) else Path(".")
    if not folder.is_dir():
        raise XnnfitError(f"cannot write {str(path)!r}: folder {str(folder)!r} does not exist. Create it or pick another path.")
    doc = result.to_dict() if isinstance(result, Record) else result
    return write_file(path, json.dumps(doc, indent=2) + "\n", force=True)
