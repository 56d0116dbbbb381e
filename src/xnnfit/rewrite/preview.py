"""The fix preview: what `xnnfit fix` would do, unverified; check's promise and fix --dry-run are this one run.

Every rule is applied to a fixpoint in turn, each on the model the rules before it left
(as fix applies them), so "fix handles it here (XR002, XR013)" in check and the rules
`fix --dry-run` lists are the same rules, with the same counts.
"""

from __future__ import annotations

import dataclasses

from xnnfit.core.record import NOT_IN_DICT, Record
from xnnfit.model.artifact import Artifact
from xnnfit.rewrite.engine import RewriteResult, RuleOutcome, apply_to_fixpoint
from xnnfit.rewrite.rule import RewriteContext, Rule
from xnnfit.rewrite.rules import RULES

NOT_VERIFIED = "dry run: not applied, not verified"  # to the model the user gets; applied in the preview


@dataclasses.dataclass(frozen=True)
class Preview(Record):
    """The rules that match, chained as fix chains them, and the model they would make (unverified)."""

    outcomes: tuple[RuleOutcome, ...]
    content: bytes = dataclasses.field(default=b"", repr=False, compare=False, metadata=NOT_IN_DICT)

    @property
    def matched(self) -> tuple[tuple[str, int], ...]:
        """(rule id, matches) of every rule that would apply, in order."""
        return tuple((o.rule, o.count) for o in self.outcomes if o.status == "matched")

    def as_dry_run(self, original: bytes) -> RewriteResult:
        """What `fix --dry-run` reports: these outcomes, the original model, nothing measured."""
        return RewriteResult(original, self.outcomes)


def preview(artifact: Artifact, rules: list[Rule] | None = None) -> Preview:
    """Apply `rules` (default: all) to a fixpoint one after another, unverified (call it in a TensorFlow-free child)."""
    ctx = RewriteContext(artifact.specs)
    content, outcomes = artifact.content, []
    for rule in rules if rules is not None else list(RULES.values()):
        done = apply_to_fixpoint(rule, content, ctx)
        if done.content is not None:
            content = done.content
            outcomes.append(RuleOutcome(rule.id, "matched", done.count, done.where, NOT_VERIFIED))
        else:
            status = "rolled-back" if done.failed else "no-match"
            outcomes.append(RuleOutcome(rule.id, status, done.count, done.where, done.reason))
    return Preview(tuple(outcomes), content)
