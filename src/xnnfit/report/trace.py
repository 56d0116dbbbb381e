"""Chrome trace-event JSON (for Perfetto UI and chrome://tracing) of a profiled diagnosis, or of a fix before and after.

One process per model (before/after for fix), one track per backend (XNNPACK, CPU
kernels); each profiled piece is a complete event ("ph": "X") laid end to end in
execution order, with its nodes nested inside it (a partition's time split evenly over
its nodes: the runtime times partitions, not the nodes inside them). Times in µs.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from xnnfit.core.errors import XnnfitError
from xnnfit.core.files import write_file
from xnnfit.explain.diagnosis import CheckResult, Diagnosis
from xnnfit.rewrite.fix import FixResult

TRACKS = {"xnnpack": (1, "XNNPACK"), "cpu": (2, "CPU kernels")}


def events(d: Diagnosis, pid: int, process: str) -> list[dict[str, Any]]:
    """The trace events of one profiled diagnosis as process `pid`."""
    if d.profile is None:
        raise XnnfitError(
            f"{process}: no profile to trace. Trace a profile (xnnfit profile --trace) or a fix (xnnfit fix --trace)."
        )
    nodes = {n.index: n for n in d.observed}
    out: list[dict[str, Any]] = [{"ph": "M", "pid": pid, "name": "process_name", "args": {"name": process}}]
    out += [
        {"ph": "M", "pid": pid, "tid": tid, "name": "thread_name", "args": {"name": name}}
        for tid, name in TRACKS.values()
    ]
    ts = 0.0
    for piece in d.profile.pieces:
        tid, backend = TRACKS.get(piece.kind, (2, piece.kind))
        dur = piece.stats.median_ms * 1000.0
        label = f"P{piece.partition} {backend}" if piece.kind == "xnnpack" else " + ".join(piece.ops)
        # Boundaries are rounded once (to ns) and every slice spans two of them, so node slices end exactly where
        # their piece does and pieces abut: rounding start and length separately could overshoot by 1.5 ns.
        start, end = round(ts, 3), round(ts + dur, 3)
        out.append(
            {
                "ph": "X",
                "pid": pid,
                "tid": tid,
                "ts": start,
                "dur": round(end - start, 3),
                "name": label,
                "cat": piece.kind,
                "args": {"partition": piece.partition, "nodes": list(piece.nodes), "median_ms": piece.stats.median_ms},
            }
        )
        count = max(len(piece.nodes), 1)
        bounds = [round(ts + dur * k / count, 3) for k in range(count)] + [end]
        for k, i in enumerate(piece.nodes):
            n = nodes.get(i)
            args = {
                "node": i,
                "op": n.op if n else "",
                "layer": (n.layer if n else None) or "",
                "causes": list(n.causes) if n else [],
            }
            if piece.kind == "xnnpack" and len(piece.nodes) > 1:
                args["estimated"] = "the partition's time split evenly over its nodes"
            out.append(
                {
                    "ph": "X",
                    "pid": pid,
                    "tid": tid,
                    "ts": bounds[k],
                    "dur": round(bounds[k + 1] - bounds[k], 3),
                    "name": n.op if n else str(i),
                    "cat": "node",
                    "args": args,
                }
            )
        ts += dur
    return out


def trace(result: Any) -> dict[str, Any]:
    """The whole trace document of a profile or a fix result."""
    if isinstance(result, FixResult):
        if len(result.sides) != 2:
            raise XnnfitError("this fix result has no before/after profiles. Run xnnfit fix with --trace (or --html).")
        evs = events(result.sides[0], 1, f"{result.model} (before)") + events(
            result.sides[1], 2, f"{result.model} (after fix)"
        )
    elif isinstance(result, CheckResult):
        evs = [
            e
            for k, d in enumerate((d for d in result.recipes if d.ok), 1)
            for e in events(d, k, f"{result.model} · {d.recipe}")
        ]
    else:
        raise XnnfitError(f"no trace for a {type(result).__name__}; trace a profile or a fix.")
    return {
        "traceEvents": evs,
        "displayTimeUnit": "ms",
        "otherData": {"model": result.model, **getattr(result, "versions", {})},
    }


def write_trace(result: Any, path: str | Path, *, force: bool = False) -> Path:
    """Write the trace atomically."""
    return write_file(Path(path), json.dumps(trace(result), indent=1).encode("utf-8"), force=force, flag="--trace")
