"""docs/kb.md: every cause, hazard, quantization cause and rewrite rule as `xnnfit explain` gives it, one anchor per id.

Code-scanning results link here (SARIF `helpUri`, `KB_DOC_URI#xnn001`). Generated from
`ids.IDS`; `python -m xnnfit.report.kb_doc --write` rewrites it and
tests/report/test_sarif.py fails while it is stale.
"""

from __future__ import annotations

import sys
from pathlib import Path

from xnnfit.ids import explanation

KB_DOC = "docs/kb.md"  # the page, relative to the repository root
KB_DOC_URI = "https://github.com/xnnfit/xnnfit/blob/main/" + KB_DOC  # what SARIF helpUri links to


def help_uri(stable_id: str) -> str:
    """The documentation of one id: its section of docs/kb.md."""
    return f"{KB_DOC_URI}#{stable_id.lower()}"


def _block(text: str) -> list[str]:
    return ["```", *text.rstrip().splitlines(), "```"]


def render() -> str:
    """The page's Markdown (no versions in it, so it changes only when the knowledge base does)."""
    e = explanation()
    lines = [
        "# The knowledge base: causes, hazards, quantization causes and rewrite rules",
        "",
        "Generated from `xnnfit.ids.IDS` by `python -m xnnfit.report.kb_doc --write`; `xnnfit explain ID` "
        "prints the same with the runtimes each cause is proven on.",
        "",
        "## Causes: why XNNPACK leaves a node on CPU kernels",
        "",
    ]
    for c in e.causes:
        lines += [f"### {c.id}", "", f"**{c.title}** ({', '.join(c.ops)})", "", c.why, "", "What to write instead:", ""]
        lines += [*_block(c.fix), ""]
        if c.example:
            lines += ["Example that falls back:", "", *_block(c.example), ""]
        if c.rewrites:
            lines += [f"Rewrites: {', '.join(f'[{r}](#{r.lower()})' for r in c.rewrites)}", ""]
    lines += ["## Hazards: nodes XNNPACK takes and computes wrong", ""]
    for h in e.hazards:
        lines += [f"### {h.id}", "", f"**{h.title}** ({h.severity})", "", h.why, "", h.fix, ""]
    lines += ["## Quantization causes: why a quantized tensor loses the float model's values", ""]
    for q in e.quantization:
        repair = "int8-repaired keeps the op in float" if q.keeps_float else "int8-repaired does not help"
        lines += [
            f"### {q.id}",
            "",
            f"**{q.title}**",
            "",
            f"When: {q.when}.",
            "",
            q.why,
            "",
            f"{q.fix} ({repair}).",
            "",
        ]
    lines += ["## Rewrite rules (`xnnfit fix`)", ""]
    for r in e.rules:
        bound = f", within {r.tolerance:g}" if r.tolerance is not None else ""
        fixes = ", ".join(f"[{i}](#{i.lower()})" for i in r.fixes)
        lines += [f"### {r.id}", "", f"**{r.title}** ({r.exactness}{bound}); removes {fixes}", ""]
    return "\n".join(lines).rstrip() + "\n"


def main(argv: list[str]) -> int:
    """`--write` rewrites docs/kb.md in the current folder; without it, print the page."""
    text = render()
    if "--write" in argv:
        Path(KB_DOC).write_text(text, encoding="utf-8")
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
