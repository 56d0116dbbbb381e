"""Artifact: a TFLite model ready to run, with the input specs it runs at and the Keras layers it came from."""

from __future__ import annotations

import dataclasses

from xnnfit.model.keras import LayerInfo
from xnnfit.model.specs import InputSpec

AS_GIVEN = "as-given"  # the recipe name of a .tflite measured as the user gave it


@dataclasses.dataclass(frozen=True)
class Artifact:
    """What every stage (check, bench, profile, fix, quant) starts from."""

    recipe: str  # the recipe that made it, or AS_GIVEN
    content: bytes = dataclasses.field(repr=False)
    specs: tuple[InputSpec, ...] = ()
    layers: tuple[LayerInfo, ...] = ()  # empty for a .tflite
    framework: str | None = None  # 'keras3', 'tf_keras', 'savedmodel', None for a .tflite
    warnings: tuple[str, ...] = ()
    what: str = "the model"  # for messages: 'model.keras (int8)'

    @property
    def size_bytes(self) -> int:
        """Size of the .tflite."""
        return len(self.content)
