"""Derive kb/versions.json: every KB probe and every one-op table probe, observed on each runtime of the matrix.

    python -m xnnfit.probe_matrix            # print what changed against the stored table
    python -m xnnfit.probe_matrix --write    # store it (make kb-versions)

A cause holds on a runtime when every one of its 'rejected' probes leaves a node of the
probe's op on CPU there (the refusal it claims is real); it differs when one is delegated,
and is unproven when none of them loaded or it has none. The 'delegated' probes are
controls of the installed runtime and say nothing about a cause on another one (SIN, the
control of XNN019, is itself refused before 1.3.0). One-op probes record, per 'OP/form',
the verdict of the op's nodes (the form from the node's own dtypes, as explanations look
it up). The probes are converted once, by the pinned converter, as users' models are.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable

from xnnfit.core.errors import XnnfitError
from xnnfit.core.files import write_file
from xnnfit.kb import CAUSES, oneop
from xnnfit.kb.probes import lam
from xnnfit.kb.shapes import GRAPH_DYNAMIC, GRAPH_PREPARE_TIME
from xnnfit.kb.tables import FLOAT_ONLY, IMPLEMENTED
from xnnfit.kb.versions import CPU, DELEGATED, DIFFERS, HOLDS, NO_LOAD, TABLE, form_of
from xnnfit.model.convert import ConvertOptions, convert_model
from xnnfit.model.recipes import RECIPES
from xnnfit.model.specs import ShapeRequest
from xnnfit.observe.delegation import from_details, observe
from xnnfit.runtime.interpreter import runtime_versions
from xnnfit.runtime.targets import MATRIX, Target, ensure, ops_details_many, parse
from xnnfit.tflite.graph import read_model

UNPROVEN = "unproven"  # no rejected probe of the cause loaded on that runtime (or it has none)
Progress = Callable[[str], None]


def cause_probes() -> list[tuple[str, str, bytes]]:
    """(cause id, op, .tflite) for every 'rejected' probe of the KB (conversion-error probes have no model)."""
    out = []
    for cause in CAUSES.values():
        for probe in cause.probes:
            if probe.expect != "rejected":
                continue
            built = probe.build()
            if isinstance(built, (bytes, bytearray)):
                content = bytes(built)
            else:
                options = ConvertOptions(ShapeRequest(1, probe.dynamic_batch))
                content = convert_model(built, RECIPES[probe.recipe], options).content
            out.append((cause.id, probe.op, content))
    return out


def table_probes() -> list[tuple[str, str, bytes]]:
    """(op, table key, .tflite) for every one-op probe of the delegate's tables and their variants, float and int8.

    Each comes with oneop's companion.
    """
    plain = [
        (op, op, oneop.one_op_model(op, form == oneop.INT8))
        for op in sorted(IMPLEMENTED | FLOAT_ONLY | set(oneop.OUTSIDE))
        for form in oneop.forms(op)
    ]
    variants = [
        (op, f"{op}:{v}", oneop.variant_model(op, v, form == oneop.INT8))
        for op, v in oneop.VARIANTS
        for form in oneop.forms(op)
    ]
    return [(op, key, oneop.with_companion(content)) for op, key, content in plain + variants]


def graph_probes() -> list[tuple[str, str, bytes]]:
    """(op, table key, .tflite) for properties of a whole graph some runtimes act on.

    A delegatable MUL beside a dynamic tensor or one known before allocation, and the
    reshape of the latter (oneop.VOIDED_CAUSES).
    """
    dynamic = lam(
        lambda tf, x: tf.reshape(x, (tf.shape(x)[0], -1)) * 2.0, shape=(4, 4)
    )  # GATHER of SHAPE: the output is dynamic
    known = lam(
        lambda tf, x: tf.reshape(x, tf.concat([tf.shape(x)[:1], [16]], 0)) * 2.0, shape=(4, 4)
    )  # static before allocation
    options = ConvertOptions(ShapeRequest(1, True))
    dynamic_content, known_content = (convert_model(b(), RECIPES["fp32"], options).content for b in (dynamic, known))
    voided = [
        (op, f"{op}:{variant}", known_content) for (op, variant) in oneop.VOIDED_CAUSES
    ]  # the reshape itself, in the same probe
    return [("MUL", GRAPH_DYNAMIC, dynamic_content), ("MUL", GRAPH_PREPARE_TIME, known_content), *voided]


def _verdicts(target: Target, contents: list[bytes]) -> list[dict[int, bool] | None]:
    """Per model: node index -> delegated on `target`, or None when it could not load the model."""
    if target.in_process:
        out: list[dict[int, bool] | None] = []
        for c in contents:
            try:
                out.append({n.index: bool(n.delegated) for n in observe(c).primary})
            except XnnfitError:
                out.append(None)
        return out
    answers = ops_details_many(target, contents)
    return [
        None if isinstance(a, str) else {n.index: bool(n.delegated) for n in from_details(read_model(c), a).primary}
        for c, a in zip(contents, answers)
    ]


def runtime_entry(target: Target, causes: list[tuple[str, str, bytes]], tables: list[tuple[str, str, bytes]]) -> dict:
    """The table entry of one runtime: per cause holds/differs/unproven, per 'OP/form' delegated/cpu/does-not-load."""
    seen: dict[str, list[str]] = {cid: [] for cid in CAUSES}
    for (cid, op, content), verdict in zip(causes, _verdicts(target, [c for _, _, c in causes])):
        if verdict is None:
            seen[cid].append(NO_LOAD)
            continue
        sub = read_model(content).primary
        refused = any(not verdict.get(o.index, False) for o in sub.ops if o.op == op)
        seen[cid].append(HOLDS if refused else DIFFERS)
    cause_status = {cid: DIFFERS if DIFFERS in s else HOLDS if HOLDS in s else UNPROVEN for cid, s in seen.items()}
    ops: dict[str, str] = {}
    for (op, name, content), verdict in zip(tables, _verdicts(target, [c for _, _, c in tables])):
        sub = read_model(content).primary
        for o in (o for o in sub.ops if o.op == op):
            key = f"{name}/{form_of(tuple(sub.tensors[t].dtype for t in (*o.inputs, *o.outputs) if t >= 0))}"
            value = NO_LOAD if verdict is None else DELEGATED if verdict.get(o.index) else CPU
            ops[key] = CPU if ops.get(key) == CPU else value  # two probes on one key: a refusal wins
    return {"version": target.version, "causes": dict(sorted(cause_status.items())), "ops": dict(sorted(ops.items()))}


def derive(specs: tuple[str, ...] = MATRIX, on_progress: Progress | None = None) -> dict:
    """The whole table: one entry per runtime of `specs`."""
    say = on_progress or (lambda _: None)
    say("converting the KB's probes")
    causes, tables = cause_probes(), table_probes() + graph_probes()
    runtimes = {}
    for spec in specs:
        target = ensure(parse(spec), on_progress=say)
        say(f"observing {len(causes) + len(tables)} probes on {target.label}")
        runtimes[spec] = runtime_entry(target, causes, tables)
    versions = runtime_versions()
    return {
        "generated_with": {k: versions[k] for k in ("tensorflow-cpu", "ai-edge-litert") if k in versions},
        "runtimes": runtimes,
    }


def changes(old: dict, new: dict) -> list[str]:
    """One line per value that differs between two tables."""
    out = []
    for spec in sorted(set(old.get("runtimes", {})) | set(new.get("runtimes", {}))):
        a, b = old.get("runtimes", {}).get(spec, {}), new.get("runtimes", {}).get(spec, {})
        for part in ("causes", "ops"):
            for key in sorted(set(a.get(part, {})) | set(b.get(part, {}))):
                x, y = a.get(part, {}).get(key), b.get(part, {}).get(key)
                if x != y:
                    out.append(f"{spec} {key}: {x} -> {y}")
    return out


def main(argv: list[str] | None = None) -> int:
    """Regenerate the table; print the changes; store it with --write."""
    parser = argparse.ArgumentParser(prog="python -m xnnfit.probe_matrix", description=__doc__.splitlines()[0])
    parser.add_argument("--write", action="store_true", help=f"store the table in {TABLE.name}")
    parser.add_argument(
        "--runtime",
        action="append",
        help="only these runtimes, e.g. a nightly (default: the matrix); other entries are kept",
    )
    args = parser.parse_args(argv)
    table = derive(tuple(args.runtime or MATRIX), on_progress=lambda m: print(m, file=sys.stderr))
    try:
        old = json.loads(TABLE.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        old = {}
    if args.runtime:  # only these runtimes were derived: keep the others' entries
        table["runtimes"] = {**old.get("runtimes", {}), **table["runtimes"]}
    for line in changes(old, table) or ["no change"]:
        print(line)
    if args.write:
        write_file(TABLE, (json.dumps(table, indent=1, sort_keys=True) + "\n").encode("utf-8"), force=True)
        print(f"wrote {TABLE}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
