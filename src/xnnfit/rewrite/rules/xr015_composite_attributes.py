"""XR015: the attention composite's attributes -> 4-byte flexbuffer slots (hazard XNN040).

XNNPACK's fused attention reads `scale`/`logit_cap` as 4-byte floats; written in 8-byte
slots they read as another number and the delegated attention is silently wrong. The
attributes are rewritten with the same keys, floats rounded to float32 (what the delegate
computes with anyway) in 4-byte slots. The built-in kernel runs the decomposition
subgraph, which never reads the attributes, so the fixed model's XNNPACK outputs are
judged against the original's built-in-kernel outputs, not its wrong XNNPACK ones.
"""

from __future__ import annotations

from xnnfit.kb import composite
from xnnfit.rewrite.graph import Graph
from xnnfit.rewrite.rule import Match, RewriteContext, Rule


def _example() -> bytes:
    return composite.attention_model(scale=0.1)


class CompositeAttributes(Rule, id="XR015", fixes=("XNN040",), ops=("STABLEHLO_COMPOSITE",)):
    title = "attention composite attributes -> 4-byte slots"
    judged_against = "cpu"
    example = staticmethod(_example)

    def check(self, g: Graph, i: int) -> dict | str:
        opts = g.ops[i].builtinOptions2
        name = getattr(opts, "name", b"") or b""
        if (name.decode() if isinstance(name, bytes) else str(name)) != composite.SDPA:
            return f"composite {name!r} is not {composite.SDPA}"
        raw = bytes(bytearray(opts.compositeAttributes)) if opts.compositeAttributes is not None else b""
        if composite.slot_width(raw) <= 4:
            return "attention attributes already sit in 4-byte slots"
        fixed = composite.four_byte(raw)
        if fixed is None:
            return "an attention attribute does not fit 4 bytes (an integer beyond int32 or a nested value)"
        return {"attributes": fixed}

    def apply(self, g: Graph, m: Match, ctx: RewriteContext) -> None:
        opts = g.ops[m.anchor].builtinOptions2
        opts.compositeAttributes = list(m.detail["attributes"])
