"""The schema-versioned JSON document for machines, written atomically."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

from xnnfit.check import CheckReport, Diagnosis
from xnnfit.errors import XnnfitError

SCHEMA_VERSION = 1


def diagnosis_dict(d: Diagnosis) -> dict[str, Any]:
    """One recipe's result as plain data."""
    out: dict[str, Any] = {"recipe": d.recipe, "status": "ok" if d.ok else "error"}
    if not d.ok:
        out["error"] = d.error
        return out
    out["summary"] = d.summary()
    out["size_bytes"] = d.size_bytes
    out["needs_xnnpack"] = d.needs_xnnpack
    out["warnings"] = list(d.warnings)
    out["notes"] = list(d.notes)
    out["partitions"] = [{"index": p.index, "xnnpack": p.delegated, "nodes": list(p.nodes)} for p in d.partitions]
    out["nodes"] = [
        {
            "subgraph": n.subgraph,
            "index": n.index,
            "op": n.op,
            "delegated": n.delegated,
            "partition": n.partition,
            "layer": n.layer,
            "layer_class": n.layer_class,
            "source": n.source,
            "causes": list(n.causes),
        }
        for n in d.nodes
    ]
    if d.profile is not None:
        out["profile"] = profile_dict(d.profile)
    return out


def profile_dict(p) -> dict[str, Any]:
    """A ProfileResult as plain data."""
    return {
        "threads": p.threads,
        "total_ms": p.total.median_ms,
        "sum_ms": p.sum_ms,
        "sum_ratio": p.sum_ratio,
        "invoke_overhead_ms": p.invoke_overhead_ms,
        "adjusted_sum_ratio": p.adjusted_sum_ratio,
        "cpu_ms": p.cpu_ms,
        "cpu_share": p.cpu_share,
        "pieces": [{"kind": x.kind, "partition": x.partition, "nodes": list(x.nodes), "ops": list(x.ops), "ms": x.ms} for x in p.pieces],
        "layers": [{"layer": c.layer, "cpu_ms": c.cpu_ms, "ops": list(c.ops), "causes": list(c.causes)} for c in p.layers],
        "warnings": list(p.warnings),
    }


def bench_dict(model: str, kind: str, versions: dict, results) -> dict[str, Any]:
    """bench results for every recipe as plain data."""
    from xnnfit.bench import Failed

    recipes = []
    for r in results:
        if isinstance(r, Failed):
            recipes.append({"recipe": r.recipe, "status": "error", "error": r.error})
            continue
        recipes.append(
            {
                "recipe": r.recipe,
                "status": "ok",
                "size_bytes": r.size_bytes,
                "configs": [
                    {
                        "xnnpack": c.xnnpack,
                        "threads": c.threads,
                        "median_ms": c.stats.median_ms,
                        "p10_ms": c.stats.p10_ms,
                        "p90_ms": c.stats.p90_ms,
                        "min_ms": c.stats.min_ms,
                        "runs": c.stats.runs,
                        "rss_delta_bytes": c.rss_delta_bytes,
                    }
                    for c in r.configs
                ],
                "warnings": list(r.warnings),
            }
        )
    return {"schema_version": SCHEMA_VERSION, "versions": dict(versions), "model": model, "model_kind": kind, "recipes": recipes}


def report_dict(report: CheckReport) -> dict[str, Any]:
    """The whole check report as plain data."""
    return {
        "schema_version": SCHEMA_VERSION,
        "versions": dict(report.versions),
        "model": report.model,
        "model_kind": report.kind,
        "recipes": [diagnosis_dict(d) for d in report.results],
    }


def write_json(doc: dict[str, Any], path: str | Path) -> None:
    """Write `doc` to `path` atomically (temp file in the same folder, then rename)."""
    path = Path(path)
    folder = path.parent if str(path.parent) else Path(".")
    if not folder.is_dir():
        raise XnnfitError(f"cannot write {str(path)!r}: folder {str(folder)!r} does not exist. Create it or pick another path.")
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=folder)
    except OSError as exc:
        raise XnnfitError(f"cannot write {str(path)!r}: {exc.strerror}. Pick a writable folder.") from exc
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(doc, f, indent=2)
            f.write("\n")
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def fix_dict(report) -> dict[str, Any]:
    """A FixReport as plain data."""
    r = report.result
    return {
        "schema_version": SCHEMA_VERSION,
        "model": report.model,
        "recipe": report.recipe,
        "output": report.output,
        "applied": [{"rule": o.rule, "count": o.count, "where": list(o.where)} for o in r.applied],
        "rules": [{"rule": o.rule, "status": o.status, "count": o.count, "reason": o.reason} for o in r.outcomes],
        "before": {"cpu_nodes": r.before.cpu_nodes, "partitions": r.before.partitions, "median_ms": r.before.median_ms},
        "after": {"cpu_nodes": r.after.cpu_nodes, "partitions": r.after.partitions, "median_ms": r.after.median_ms},
        "max_abs_error": r.numerics.max_abs_error,
        "max_rel_error": r.numerics.max_rel_error,
        "keras_hints": [{"layer": layer, "causes": list(c)} for layer, c in report.keras_hints],
    }


def quant_dict(report) -> dict[str, Any]:
    """A QuantReport as plain data."""
    import dataclasses

    return {
        "schema_version": SCHEMA_VERSION,
        "model": report.model,
        "max_error": report.max_error,
        "recommended": report.recommended,
        "reason": report.reason,
        "warnings": list(report.warnings),
        "rows": [{**dataclasses.asdict(r), "warnings": list(r.warnings)} for r in report.rows],
    }
