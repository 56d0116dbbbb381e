"""ConversionRecipe and the named recipes: fp32, fp16, dynamic-int8, int8, int16x8."""

from __future__ import annotations

import dataclasses

from xnnfit.errors import XnnfitError


@dataclasses.dataclass(frozen=True)
class ConversionRecipe:
    """How to turn a Keras model into a .tflite: converter flags, calibration, batch pinning."""

    name: str
    summary: str
    optimize: bool = False  # converter.optimizations = [DEFAULT]
    float16: bool = False  # target_spec.supported_types = [float16]
    calibrate: bool = False  # needs a representative dataset
    ops: str = "builtins"  # 'builtins' | 'int8' | 'int16x8'

    def describe(self) -> str:
        """One line for reports."""
        return f"{self.name}: {self.summary}"


FP32 = ConversionRecipe("fp32", "float32 weights and activations (the converter's default)")
FP16 = ConversionRecipe("fp16", "float16 weights, float32 activations", optimize=True, float16=True)
DYNAMIC_INT8 = ConversionRecipe(
    "dynamic-int8", "int8 weights, float activations (dynamic-range quantization)", optimize=True
)
INT8 = ConversionRecipe("int8", "full integer: int8 weights and activations", optimize=True, calibrate=True, ops="int8")
INT16X8 = ConversionRecipe(
    "int16x8", "int16 activations, int8 weights", optimize=True, calibrate=True, ops="int16x8"
)

RECIPES: dict[str, ConversionRecipe] = {r.name: r for r in (FP32, FP16, DYNAMIC_INT8, INT8, INT16X8)}


def parse_recipes(text: str | list[str] | None) -> tuple[ConversionRecipe, ...]:
    """Recipes from 'fp32,int8' or ['fp32', 'int8']; XnnfitError names the valid ones."""
    if not text:
        return (FP32,)
    items = text if isinstance(text, list) else [text]
    names = [n.strip() for item in items for n in item.split(",") if n.strip()]
    if "all" in names:
        return tuple(RECIPES.values())
    unknown = [n for n in names if n not in RECIPES]
    if unknown:
        raise XnnfitError(
            f"unknown recipe {unknown[0]!r}. Use one or several of: {', '.join(RECIPES)} (comma-separated), or 'all'."
        )
    return tuple(dict.fromkeys(RECIPES[n] for n in names))
