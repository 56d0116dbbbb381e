"""Node-data overlays for Google's Model Explorer (ai-edge-model-explorer): delegation and latency per TFLite node.

The format is Model Explorer's node data: {graph_id: {"results": {node_id: {"value": v,
"bgColor": c}}}}. Its TFLite adapter names graphs after the subgraph (else the signature
key, else "main") and nodes by operator index as a string; the diagnosis carries only
subgraph 0, whose id is `Diagnosis.graph_name` (tflite.graph.ModelGraph.primary_name).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from xnnfit.core.errors import XnnfitError
from xnnfit.core.files import write_file
from xnnfit.explain.diagnosis import CheckResult, Diagnosis
from xnnfit.report.svg import XNNPACK, cause_colors, node_ms
from xnnfit.rewrite.fix import FixResult

LOW, HIGH = (255, 255, 255), (217, 83, 79)  # latency gradient: white (fast) to the report's CPU red (slowest node)


def delegation(d: Diagnosis) -> dict[str, Any]:
    """XNNPACK/CPU per node, coloured; a CPU node's value names its cause."""
    colors = cause_colors([d])
    results = {}
    for n in d.observed:
        if n.delegated:
            results[str(n.index)] = {"value": "XNNPACK", "bgColor": XNNPACK}
        else:
            cause = n.causes[0] if n.causes else "unexplained"
            results[str(n.index)] = {"value": f"CPU {', '.join(n.causes) or 'unexplained'}", "bgColor": colors[cause]}
    return {d.graph_name: {"results": results}}


def latency(d: Diagnosis) -> dict[str, Any]:
    """Each node's measured ms (its partition's time split over its nodes) with a white-to-red gradient."""
    times = node_ms(d)
    if times is None:
        raise XnnfitError(
            "no profile for a latency overlay. Use xnnfit profile (or check --profile) with --model-explorer."
        )
    top = max(times.values(), default=0.0) or 1.0
    gradient = [
        {"stop": 0, "bgColor": _hex(LOW)},
        {"stop": 1, "bgColor": _hex(HIGH)},
    ]  # stops from the smallest to the largest value
    results = {
        str(n.index): {"value": round(times.get(n.index, 0.0), 6), "bgColor": _mix(times.get(n.index, 0.0) / top)}
        for n in d.observed
    }
    return {d.graph_name: {"results": results, "gradient": gradient}}


def _mix(t: float) -> str:
    return _hex(tuple(round(a + (b - a) * max(0.0, min(t, 1.0))) for a, b in zip(LOW, HIGH)))


def _hex(rgb) -> str:
    return "#" + "".join(f"{v:02x}" for v in rgb)


def overlays(result: Any) -> dict[str, dict[str, Any]]:
    """Named overlays of a check/profile (first recipe that ran) or a fix (after, when it has profiles)."""
    if isinstance(result, FixResult):
        if not result.sides:
            raise XnnfitError("this fix result has no before/after diagnoses. Run xnnfit fix with --model-explorer.")
        sides = {"before": result.sides[0], "after": result.sides[1]}
    elif isinstance(result, CheckResult):
        sides = {d.recipe: d for d in result.recipes if d.ok}
    else:
        raise XnnfitError(f"no Model Explorer overlay for a {type(result).__name__}; use check, profile or fix.")
    out = {}
    for name, d in sides.items():
        out[f"delegation ({name})"] = delegation(d)
        if d.profile is not None:
            out[f"latency ms ({name})"] = latency(d)
    return out


def write_overlays(result: Any, path: str | Path, *, force: bool = False) -> list[Path]:
    """One node-data file per overlay: PATH for the first, PATH's stem + '.<overlay>.json' for the others.

    Each file loads on its own.
    """
    path = Path(path)
    written = []
    for k, (name, data) in enumerate(overlays(result).items()):
        slug = name.replace(" ", "_").replace("(", "").replace(")", "")
        target = path if k == 0 else path.with_name(f"{path.stem}.{slug}{path.suffix or '.json'}")
        written.append(
            write_file(target, json.dumps(data, indent=1).encode("utf-8"), force=force, flag="--model-explorer")
        )
    return written
