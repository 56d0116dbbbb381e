"""The Rule base: a stable id, the KB causes it removes, how exact it is, match and apply."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

from xnnfit.model.specs import InputSpec
from xnnfit.rewrite.graph import Graph


@dataclasses.dataclass(frozen=True)
class Match:
    """One place a rule applies: the anchor op and what apply() needs."""

    rule: str
    anchor: int  # op index in the graph at match time
    where: str  # a tensor name users can recognise
    detail: dict = dataclasses.field(default_factory=dict, compare=False, hash=False)


@dataclasses.dataclass(frozen=True)
class NoMatch:
    """Why a rule did not apply."""

    reason: str


@dataclasses.dataclass(frozen=True)
class RewriteContext:
    """What rules may use besides the graph: the input specs the model runs at."""

    specs: tuple[InputSpec, ...] = ()


class Rule:
    """A graph rewrite; subclasses set the class attributes and implement match/apply."""

    id: str = ""
    title: str = ""
    fixes: tuple[str, ...] = ()  # KB cause ids it removes
    exactness: str = "exact"  # 'exact': same math, judged at float rounding (VerifyPolicy); 'tolerance': approximates
    tolerance: float | None = None  # for 'tolerance' rules: max abs error / max |output| it may introduce
    leaves: frozenset[str] = frozenset()  # ops the rule itself leaves on CPU by design (XR013's one input cast)
    judged_against: str = (
        "current"  # 'cpu': the model before it, on the built-in kernels (rules repairing an XNNPACK miscompute)
    )

    def match(self, g: Graph, ctx: RewriteContext) -> list[Match] | NoMatch:
        """Every place the rule applies now, or why it applies nowhere."""
        raise NotImplementedError

    def apply(self, g: Graph, m: Match, ctx: RewriteContext) -> None:
        """Rewrite one match in place (dead ops are pruned later)."""
        raise NotImplementedError

    def scan(
        self, g: Graph, ops: tuple[str, ...], check: Callable[[Graph, int], dict | str], none: str = ""
    ) -> list[Match] | NoMatch:
        """Matches for every op named in `ops` that `check` accepts (it returns the match detail, or why not).

        `none` is the reason given when no such op exists.
        """
        found, reasons = [], []
        for i in range(len(g.ops)):
            if g.op(i) not in ops:
                continue
            detail = check(g, i)
            if isinstance(detail, str):
                reasons.append(detail)
            else:
                found.append(Match(self.id, i, g.name(g.outputs(i)[0]), detail))
        return found or NoMatch("; ".join(dict.fromkeys(reasons)) or none or f"no {' or '.join(ops)} node")

    example: Callable[[], Any] | None = None  # builds a Keras model that triggers the rule
    example_recipe: str = "fp32"

    def tag(self, name: str) -> str:
        """A tensor name marking what this rule created."""
        return f"xnnfit:{self.id}/{name}"
