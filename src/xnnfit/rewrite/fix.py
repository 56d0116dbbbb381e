"""The fix's result: the rewrite and its evidence, the Keras layers still falling back, a quantized model's reference.

A quantized Keras source is judged against its fp32 conversion (the float reference); a
quantized .tflite alone against the float model rebuilt from its own weights (float_twin).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import ClassVar

from xnnfit.core.errors import XnnfitError
from xnnfit.core.files import check_output_path, write_file
from xnnfit.core.record import Record
from xnnfit.explain.diagnosis import Diagnosis, diagnose
from xnnfit.model.artifact import Artifact
from xnnfit.model.specs import InputSpec
from xnnfit.rewrite.engine import RewriteResult
from xnnfit.rewrite.float_twin import float_twin, is_quantized


@dataclasses.dataclass(frozen=True)
class KerasHint(Record):
    """A Keras layer whose nodes fall back in the conversion, and the causes: worth fixing in the source too."""

    layer: str
    causes: tuple[str, ...]
    fixed: bool = False  # the rewrite removed these fallbacks from the fixed model
    advice: tuple[str, ...] = ()  # advice ids (kb/advice.py) for these nodes in their context


@dataclasses.dataclass(frozen=True)
class FixResult(Record):
    """fix() of one model: the rewrite and its evidence, where it was written, what to change in the Keras source."""

    RESULT: ClassVar[str] = "fix"

    model: str
    model_kind: str
    recipe: str
    rewrite: RewriteResult
    inputs: tuple[InputSpec, ...] = ()
    output: str | None = None  # where the fixed model was written
    dry_run: bool = False
    keras_hints: tuple[KerasHint, ...] = ()
    versions: dict[str, str] = dataclasses.field(default_factory=dict)
    sides: tuple[
        Diagnosis, ...
    ] = ()  # (before, after), profiled, when asked for (the HTML report and the trace draw them)
    warnings: tuple[str, ...] = ()  # the conversion's and the data's (an array fed by position)

    @property
    def content(self) -> bytes:
        """The fixed model (empty for a result read back from JSON)."""
        return self.rewrite.content

    @property
    def changed(self) -> bool:
        """True when at least one rule was kept."""
        return bool(self.rewrite.applied)

    def save(self, path: str | Path, *, force: bool = False) -> Path:
        """Write the fixed model atomically; an existing file only with `force`."""
        if not self.content:
            raise XnnfitError(
                "this fix result holds no model (it was read back from JSON or is a dry run). Run fix again to get one."
            )
        terms = {"flag": "save() path", "force_flag": "force=True"}  # the caller is Python: say it in its terms
        return write_file(check_output_path(path, force=force, **terms), self.content, force=force, **terms)

    def _extra(self) -> dict:
        return {
            "changed": self.changed,
            "applied": [{"rule": o.rule, "count": o.count, "where": list(o.where)} for o in self.rewrite.applied],
        }


TWIN_REFERENCE = "the float model rebuilt from the file's dequantized weights"
FP32_REFERENCE = "the fp32 conversion"
AS_GIVEN_REFERENCE = "the model as given"


def judged_against(content: bytes, fp32: bytes | None) -> tuple[bytes | None, str]:
    """The float model a fix of `content` is judged against, and its name: the one definition for fix and optimize.

    The fp32 conversion of its Keras source (`fp32`) when there is one and this is another
    recipe; else, for a quantized model, the float model rebuilt from its own weights;
    else nothing (a float model is judged against itself, before and after). Builds the
    twin with the runtime: call it in a TensorFlow-free child.
    """
    if fp32 is not None and fp32 != content:
        return fp32, FP32_REFERENCE
    if is_quantized(content):
        return float_twin(content), TWIN_REFERENCE
    return None, FP32_REFERENCE if fp32 is not None else AS_GIVEN_REFERENCE


def _fallback_layers(artifact: Artifact) -> dict[str, tuple[set[str], dict[str, None]]]:
    out: dict[str, tuple[set[str], dict[str, None]]] = {}
    for n in diagnose(artifact).observed:
        if not n.delegated and n.layer:
            causes, advice = out.setdefault(n.layer, (set(), {}))
            causes.update(n.causes)
            advice.update(dict.fromkeys(n.advice))
    return out


def keras_hints(artifact: Artifact, fixed: bytes | None) -> tuple[KerasHint, ...]:
    """The layers that fall back in the conversion, each marked fixed when the fixed model no longer has them on CPU."""
    before = _fallback_layers(artifact)
    after = _fallback_layers(dataclasses.replace(artifact, content=fixed)) if fixed is not None else before
    return tuple(KerasHint(layer, tuple(sorted(c)), layer not in after, tuple(a)) for layer, (c, a) in before.items())
