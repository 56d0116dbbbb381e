"""What one advice entry is: `Advice` (the text and code), `When` (which nodes it is for), `Demo` (its proof)."""

from __future__ import annotations

import dataclasses

from xnnfit.core.record import NOT_IN_DICT, Record
from xnnfit.kb.advice.patterns import PATTERNS
from xnnfit.kb.context import NodeContext

GENERAL = "general"  # the id suffix of a cause's advice for any node it explains

# How a `when` ranks. The graph is what converts and the layer name comes from mapping
# (which can name a neighbour), so a matching pattern outranks a matching layer; an
# advice with neither is for its ops as a whole and ranks like a pattern.
BY_PATTERN = 2
BY_LAYER = 1


@dataclasses.dataclass(frozen=True)
class When(Record):
    """Which nodes an advice is for: one of `ops`, where `pattern` holds or the Keras layer is one of `layers`.

    With neither a pattern nor layers, the op alone selects the advice.
    """

    ops: tuple[str, ...]
    pattern: str | None = None  # a PATTERNS key
    layers: tuple[str, ...] = ()  # Keras layer class names, as mapping reports them

    def __post_init__(self) -> None:
        if self.pattern is not None and self.pattern not in PATTERNS:
            raise ValueError(f"unknown pattern {self.pattern!r}; known: {', '.join(PATTERNS)}")

    def score(self, ctx: NodeContext, layer_class: str | None = None) -> int:
        """0 when the advice is not for this node, else how specifically it fits (BY_PATTERN, BY_LAYER, their sum)."""
        if ctx.op.op not in self.ops:
            return 0
        if self.pattern is None and not self.layers:
            return BY_PATTERN
        by_pattern = self.pattern is not None and PATTERNS[self.pattern](ctx)
        return BY_PATTERN * by_pattern + BY_LAYER * (layer_class in self.layers)

    def __call__(self, ctx: NodeContext, layer_class: str | None = None) -> bool:
        return self.score(ctx, layer_class) > 0

    def describe(self) -> str:
        """'SELECT, SELECT_V2 (<first line of the pattern's doc> or in layer Softmax)'."""
        parts = []
        if self.pattern is not None:
            doc = (PATTERNS[self.pattern].__doc__ or self.pattern).splitlines()[0].rstrip(".")
            parts.append(doc[0].lower() + doc[1:])
        if self.layers:
            parts.append(f"in layer {'/'.join(self.layers)}")
        return ", ".join(self.ops) + (f" ({' or '.join(parts)})" if parts else "")


Inputs = tuple[tuple[str, tuple[int, ...], str], ...]  # (name, shape without batch, dtype) per model input
X16: Inputs = (("x", (16,), "float32"),)


@dataclasses.dataclass(frozen=True)
class Demo:
    """Two tiny models that prove an advice on the installed runtime (tests/kb/test_advice.py).

    `fallback` is Keras code (run by kb.probes.snippet after `setup`, before `after`,
    assigning `y`) whose CPU nodes of `ops` carry the advice's cause and get this advice
    from advise(). The advice's `code` (or, for a recipe advice, `fallback` converted with
    `instead_recipe`) must leave none of `ops` on CPU. A demo of prose advice without a
    recipe only proves the selection.
    """

    fallback: str
    ops: tuple[str, ...]
    inputs: Inputs = X16
    setup: str = ""
    after: str = ""
    recipe: str = "fp32"
    instead_recipe: str | None = None
    instead_inputs: Inputs | None = None  # when the advised code takes other inputs (float ids)
    binary: tuple[str, ...] = ()  # inputs fed 0/1 values (masks)
    high: int | None = None  # integer inputs are drawn from [0, high)
    dynamic_batch: bool = False
    within: float | None = None  # the largest output change the text states (absolute, on the demo's inputs)
    conversion_error: bool = False  # the fallback does not convert at all (a Flex op named in `ops`)


@dataclasses.dataclass(frozen=True)
class Advice(Record):
    """What to write instead of a node that falls back: one entry with a stable id `<cause>.<slug>`."""

    id: str
    cause: str
    text: str  # what to do and, when semantics change, what changes
    code: str | None  # Keras code reading the inputs/variables of its demo and assigning `y`; None: prose
    preserves_semantics: bool
    rules: tuple[str, ...] = ()  # rewrite rules that do it automatically (xnnfit fix)
    when: When | None = None  # None: the cause's general advice
    demo: Demo | None = dataclasses.field(default=None, compare=False, metadata=NOT_IN_DICT)

    @property
    def general(self) -> bool:
        """True for the advice that holds for any node of its cause."""
        return self.when is None

    def render(self) -> str:
        """Code, then the text as comment lines: the cause's `fix` for a general advice."""
        lines = self.code.splitlines() if self.code else []
        return "\n".join([*lines, *(f"# {line}" for line in self.text.splitlines())])
