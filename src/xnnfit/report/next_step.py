"""What to run next after a check or profile, decided once for the terminal, the HTML report and Markdown."""

from __future__ import annotations

import dataclasses

from xnnfit.explain.diagnosis import Diagnosis, runtime_option
from xnnfit.kb.advice import BY_ID


@dataclasses.dataclass(frozen=True)
class NextStep:
    """A command to run, and why."""

    command: str
    why: str


def same_options(d: Diagnosis) -> str:
    """The options that reproduce this diagnosis's model: its recipe and how its inputs were pinned."""
    flags = [f" --recipe {d.recipe}"] if d.recipe not in ("as-given", "fp32") else []
    for spec in d.inputs:
        if any(p.by == "--dynamic-batch" for p in spec.pins):
            flags.append(" --dynamic-batch")
        if any(p.by == "--input-shape" for p in spec.pins):
            flags.append(f" --input-shape {spec.name}={','.join(map(str, spec.shape))}")
    return "".join(dict.fromkeys(flags))


def next_step(model: str, d: Diagnosis) -> NextStep:
    """The one next step for a diagnosis of `model`: the first rule below that applies."""
    on = runtime_option(d.runtime)
    cpu = d.summary()["cpu_nodes"] if d.ok else 0
    if d.not_loaded:
        return NextStep(
            f"xnnfit check {model} --runtime all",
            "which runtimes load it; else upgrade the runtime the app ships, or convert with its TensorFlow",
        )
    if d.load_failed:
        return NextStep(
            f"xnnfit check {model}",
            "after acting on the warning(s) above: observed verdicts need a model the runtime loads",
        )
    if d.predicted:
        return NextStep(f"xnnfit check {model}{on}", "observe the verdicts on the runtime")
    if any(f.severity == "error" for f in d.findings):
        rules = sorted({r for f in d.findings for r in f.rewrites})
        if rules:
            return NextStep(
                f"xnnfit fix {model}{same_options(d)} -o OUT.tflite",
                f"XNNPACK computes node(s) wrong; {', '.join(rules)} repairs it and fix verifies it",
            )
        return NextStep(
            f"xnnfit check {model} --all-nodes", "XNNPACK computes node(s) wrong; follow the finding's advice"
        )
    if not cpu:
        return NextStep(f"xnnfit bench {model}{on}", "XNNPACK runs it whole; time it with and without XNNPACK")
    p = d.fix_preview
    if p is not None and p.rules:
        rules = ", ".join(f"{r} ×{n}" for r, n in p.rules)
        where = " on this runtime" if on else ""
        return NextStep(
            f"xnnfit fix {model}{same_options(d)} -o OUT.tflite",
            f"its rules ({rules}) would take {cpu} -> {p.cpu_nodes_after} CPU nodes{where}; fix verifies each",
        )
    advised = sorted({r for n in d.observed if not n.delegated for a in n.advice for r in _rules_of(a)})
    if p is None and advised:  # a profile carries no fix preview: the advice names the rules
        return NextStep(
            f"xnnfit fix {model}{same_options(d)} -o OUT.tflite",
            f"{', '.join(advised)} handle(s) these fallbacks; fix verifies each",
        )
    if on and any("XNN050" in n.causes for n in d.observed):
        return NextStep(f"xnnfit check {model} --runtime all", "which runtime versions take the XNN050 nodes")
    if d.profile is None:
        return NextStep(f"xnnfit profile {model}{on}", "what these fallbacks cost; no fix rule matches them")
    return NextStep(f"xnnfit quant {model}", "no fix rule matches these fallbacks; see if another recipe avoids them")


def _rules_of(advice_id: str) -> tuple[str, ...]:
    return BY_ID[advice_id].rules if advice_id in BY_ID else ()
