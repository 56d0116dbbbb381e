"""Read a saved JSON result back into its frozen result (for `xnnfit report`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from xnnfit.choose.optimize import OptimizeResult
from xnnfit.choose.quant import QuantResult
from xnnfit.core.errors import XnnfitError
from xnnfit.core.files import read_json
from xnnfit.core.record import SCHEMA_VERSION
from xnnfit.explain.diagnosis import CheckResult
from xnnfit.measure.profile import ProfileResult
from xnnfit.rewrite.fix import FixResult

KINDS = {cls.RESULT: cls for cls in (CheckResult, ProfileResult, FixResult, QuantResult, OptimizeResult)}


def load_result(path: str | Path) -> Any:
    """The result a `--json` file holds; an error says what was read and what is expected."""
    p = Path(path)
    data = read_json(p, "Pass a file written with --json.")
    kind = data.get("result") if isinstance(data, dict) else None
    if kind not in KINDS:
        raise XnnfitError(
            f"{str(p)!r} is not an xnnfit result (result={kind!r}); expected one of "
            f"{', '.join(KINDS)}. Pass a file written with --json."
        )
    if data.get("schema_version") != SCHEMA_VERSION:
        raise XnnfitError(
            f"{str(p)!r} has schema version {data.get('schema_version')!r}; this xnnfit reads "
            f"{SCHEMA_VERSION}. Re-run the command with this version."
        )
    try:
        return KINDS[kind].from_dict(data)
    except (TypeError, KeyError, ValueError) as exc:
        raise XnnfitError(
            f"{str(p)!r} does not hold a complete {kind} result ({exc}). Re-run the command with --json."
        ) from None
