"""Advice: what to write instead of a node that falls back, per cause and per pattern, as data with stable ids.

A cause says why XNNPACK refused a node; its advice depends on where the node came from:
the LESS/SELECT of an Embedding's index wrap wants other code than a tf.where activation.
Each `Advice` has a `when` (the ops, a graph pattern, the Keras layers it is for) and
`advise()` returns the most specific one that holds, else the cause's general advice
(`<cause>.general`, whose rendering is the cause's `fix`). Every advice with code carries
a `Demo`: tests/kb/test_advice.py converts the pattern and the advised code with the real
converter, checks the runtime falls back on the first and not on the second, and, when
the advice preserves semantics, that both give the same outputs.
"""

from __future__ import annotations

from xnnfit.core.errors import XnnfitError
from xnnfit.kb.advice.entries import ENTRIES
from xnnfit.kb.advice.patterns import PATTERNS
from xnnfit.kb.advice.schema import GENERAL, Advice, Demo, When
from xnnfit.kb.context import NodeContext

BY_ID: dict[str, Advice] = {a.id: a for a in ENTRIES}
BY_CAUSE: dict[str, tuple[Advice, ...]] = {}
for _a in ENTRIES:
    BY_CAUSE[_a.cause] = (*BY_CAUSE.get(_a.cause, ()), _a)
del _a


def general(cause_id: str) -> Advice:
    """The cause's advice for any node it explains; XnnfitError lists the known causes."""
    return _for(cause_id)[-1]


def _for(cause_id: str) -> tuple[Advice, ...]:
    key = cause_id.strip().upper()
    if key not in BY_CAUSE:
        raise XnnfitError(f"no advice for cause {cause_id!r}. Known causes: {', '.join(sorted(BY_CAUSE))}.")
    return BY_CAUSE[key]


def advise(cause_id: str, ctx: NodeContext, layer_class: str | None = None) -> Advice:
    """The most specific advice of `cause_id` whose `when` holds for the node, else the cause's general advice.

    `layer_class` is the node's Keras layer class as mapping reports it ('Embedding',
    'MultiHeadAttention'...); it ranks below a matching graph pattern. Ties go to the
    advice listed first.
    """
    best, best_score = None, 0
    for a in _for(cause_id):
        score = a.when.score(ctx, layer_class) if a.when is not None else 0
        if score > best_score:
            best, best_score = a, score
    return best or general(cause_id)


__all__ = ["BY_CAUSE", "BY_ID", "ENTRIES", "GENERAL", "PATTERNS", "Advice", "Demo", "When", "advise", "general"]
