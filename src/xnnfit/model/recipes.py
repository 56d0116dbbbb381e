"""ConversionRecipe and the named recipes: fp32, fp16, dynamic-int8, int8, int16x8."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable

from xnnfit import kb
from xnnfit.core.errors import XnnfitError


@dataclasses.dataclass(frozen=True)
class ConversionRecipe:
    """How to turn a Keras model into a .tflite: converter flags, calibration, batch pinning."""

    name: str
    summary: str
    optimize: bool = False  # converter.optimizations = [DEFAULT]
    float16: bool = False  # target_spec.supported_types = [float16]
    calibrate: bool = False  # needs a representative dataset
    ops: str = "builtins"  # 'builtins' | 'int8' | 'int16x8'
    float_ops: tuple[str, ...] = ()  # TFLite ops kept in float (selective quantization denylist)
    float_nodes: tuple[str, ...] = ()  # output tensor names of single nodes kept in float (the same, per node)
    rewrites: tuple[str, ...] = ()  # xnnfit rewrite rules applied after conversion

    def describe(self) -> str:
        """One line for reports."""
        return f"{self.name}: {self.summary}"


FP32 = ConversionRecipe("fp32", "float32 weights and activations (the converter's default)")
FP16 = ConversionRecipe("fp16", "float16 weights, float32 activations", optimize=True, float16=True)
DYNAMIC_INT8 = ConversionRecipe(
    "dynamic-int8", "int8 weights, float activations (dynamic-range quantization)", optimize=True
)
INT8 = ConversionRecipe("int8", "full integer: int8 weights and activations", optimize=True, calibrate=True, ops="int8")
INT16X8 = ConversionRecipe("int16x8", "int16 activations, int8 weights", optimize=True, calibrate=True, ops="int16x8")

RECIPES: dict[str, ConversionRecipe] = {r.name: r for r in (FP32, FP16, DYNAMIC_INT8, INT8, INT16X8)}


# Ops XNNPACK runs in float but not quantized: the ops of the KB causes that say so.
FLOAT_ONLY_CAUSES = ("XNN028", "XNN033")


def _float_only_in_int8() -> tuple[str, ...]:
    return tuple(sorted({op for cid in FLOAT_ONLY_CAUSES for op in kb.CAUSES[cid].ops}))


# Mixed recipes: quantize what XNNPACK runs quantized, keep the rest in float.
INT8_FLOAT_OPS = ConversionRecipe(
    "int8+float-ops",
    "full int8, with the ops XNNPACK cannot run in int8 (softmax, attention matmuls, ...) kept in float",
    optimize=True,
    calibrate=True,
    ops="int8",
    float_ops=_float_only_in_int8(),
)
DYNAMIC_INT8_FLOAT_DW = ConversionRecipe(
    "dynamic-int8+float-dw",
    "dynamic-range int8, with depthwise convolutions kept in float (rewrite XR009)",
    optimize=True,
    rewrites=("XR009",),
)
MIXED: dict[str, ConversionRecipe] = {r.name: r for r in (INT8_FLOAT_OPS, DYNAMIC_INT8_FLOAT_DW)}
ALL: dict[str, ConversionRecipe] = {**RECIPES, **MIXED}
DEFAULT = tuple(ALL.values())  # what quant and optimize try without --recipe: every recipe, mixed ones included


REPAIRED = "int8-repaired"  # the candidate quant and optimize add to repair quantization findings (choose/repair.py)


def repaired(float_nodes: Iterable[str], layers: Iterable[str]) -> ConversionRecipe:
    """int8+float-ops with the nodes `float_nodes` (of the Keras `layers` named) kept in float too; the rest int8."""
    where = ", ".join(dict.fromkeys(layers)) or "the nodes the findings name"
    return dataclasses.replace(
        INT8_FLOAT_OPS,
        name=REPAIRED,
        summary=f"int8+float-ops with the nodes quantization broke kept in float ({where})",
        float_nodes=tuple(dict.fromkeys(float_nodes)),
    )


def with_reference(recipes: Iterable[ConversionRecipe]) -> tuple[ConversionRecipe, ...]:
    """`recipes` with fp32 first, asked for or not: quant and optimize always convert it.

    It is the float reference quantized candidates are judged against and speed-ups are
    measured from; the CLI counts its progress steps from this too.
    """
    return tuple(dict.fromkeys((FP32, *recipes)))


def parse_recipes(
    value: str | ConversionRecipe | Iterable[str | ConversionRecipe] | None,
    *,
    default: tuple[ConversionRecipe, ...] = (FP32,),
) -> tuple[ConversionRecipe, ...]:
    """Recipes from 'fp32,int8', ['fp32', 'int8'] or ConversionRecipe objects ('all': every recipe).

    An unknown name is an XnnfitError naming the valid ones.
    """
    if not value:
        return default
    items = [value] if isinstance(value, (str, ConversionRecipe)) else list(value)
    if all(isinstance(i, ConversionRecipe) for i in items):
        return tuple(dict.fromkeys(items))  # type: ignore[arg-type]
    names = [
        n.strip()
        for item in items
        for n in (item.name if isinstance(item, ConversionRecipe) else item).split(",")
        if n.strip()
    ]
    if "all" in names:
        return tuple(ALL.values())
    unknown = [n for n in names if n not in ALL]
    if unknown:
        raise XnnfitError(
            f"unknown recipe {unknown[0]!r}. Use one or several of: {', '.join(ALL)} (comma-separated), or 'all'."
        )
    return tuple(dict.fromkeys(ALL[n] for n in names))
