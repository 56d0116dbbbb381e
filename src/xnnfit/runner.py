"""The pipeline: one place turns a model source into an Artifact, one runner runs a stage per recipe.

    source --materialize(recipe)--> Artifact --stage (in a TensorFlow-free child)--> frozen result

materialize() converts Keras sources in a child process (a converter crash costs one
recipe, never the caller), applies a recipe's post-conversion rewrites (XR009 for
dynamic-int8+float-dw), and pins the input specs; a .tflite is used as given with its
specs pinned the same way. per_recipe() applies the failure rule once for every
command: an unusable source or input data is raised, a recipe that fails is recorded.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any, TypeVar

from xnnfit.core.errors import InputDataError, SourceError, XnnfitError
from xnnfit.core.isolate import USER_CODE, phase, run_isolated
from xnnfit.core.policy import DEFAULT_TIMEOUT
from xnnfit.model.artifact import AS_GIVEN, Artifact
from xnnfit.model.convert import ConvertOptions, convert_model
from xnnfit.model.footprint import refuse_if_too_large
from xnnfit.model.inputs import positional_notes
from xnnfit.model.recipes import ALL, ConversionRecipe
from xnnfit.model.source import ModelSource
from xnnfit.model.specs import tflite_declared_inputs, with_table_bounds
from xnnfit.rewrite.engine import rewrite_only
from xnnfit.rewrite.rule import RewriteContext
from xnnfit.tflite.graph import read_model

T = TypeVar("T")
CALIBRATED = tuple(r.name for r in ALL.values() if r.calibrate)
Progress = Callable[[str], None]


def _convert_child(source: ModelSource, recipe: ConversionRecipe, options: ConvertOptions) -> Artifact:
    if source.kind == "python":
        with phase(f"{USER_CODE}: your builder {source.display}"):
            model = source.load()
    else:
        with phase(f"loading {source.display} with Keras"):
            model = source.load()
    with phase("converting with the TFLite converter"):
        return convert_model(model, recipe, options, display=source.display)


def materialize(
    source: ModelSource,
    recipe: ConversionRecipe,
    options: ConvertOptions = ConvertOptions(),
    *,
    timeout: float = DEFAULT_TIMEOUT,
    runs: bool = True,
) -> Artifact:
    """The Artifact to measure: converted with `recipe` for Keras sources, the model itself for a .tflite.

    `runs` (the model will be run) refuses, before anything is allocated, a model whose tensors at the pinned
    shapes cannot fit in memory (footprint.py); `check --predict` never runs it.
    """
    if source.is_tflite:
        content = source.read_bytes()
        what = repr(source.display) if source.path is not None else source.display
        graph = read_model(content, what)
        specs, warnings = options.shapes.pin_all(tflite_declared_inputs(graph))
        if options.calibration:
            warnings = (*warnings, "--calibration is not used: a .tflite is measured as given, not converted")
        if runs:
            refuse_if_too_large(graph.primary, specs, source.display)
        return Artifact(AS_GIVEN, content, specs, warnings=warnings, what=source.display)
    if source.model is not None:  # a Keras object in the caller's process: TensorFlow is loaded already
        artifact = convert_model(source.model, recipe, options, display=source.display)
    else:
        artifact = run_isolated(
            _convert_child,
            source,
            recipe,
            options,
            what=f"converting {source.display} ({recipe.name})",
            timeout=timeout,
        )
    # token-id ranges from the tables the converted graph really indexes (conversion only knew the smallest Embedding)
    graph = read_model(artifact.content, artifact.what)
    artifact = replace(artifact, specs=with_table_bounds(artifact.specs, graph))
    if runs:
        refuse_if_too_large(graph.primary, artifact.specs, f"{source.display} ({recipe.name})")
    if recipe.rewrites:
        artifact = replace(
            artifact, content=rewrite_only(artifact.content, recipe.rewrites, RewriteContext(artifact.specs))
        )
    if options.calibration and not recipe.calibrate:
        unused = (
            f"--calibration is not used by {recipe.name}: "
            f"only the full-integer recipes ({', '.join(CALIBRATED)}) calibrate"
        )
        artifact = replace(artifact, warnings=(*artifact.warnings, unused))
    return artifact


def recipes_for(source: ModelSource, recipes: Sequence[ConversionRecipe]) -> tuple[ConversionRecipe, ...]:
    """The recipes a command runs: all of them for Keras sources, one pass for a .tflite (measured as given)."""
    return tuple(recipes[:1]) if source.is_tflite else tuple(recipes)


def recipe_name(source: ModelSource, recipe: ConversionRecipe) -> str:
    """The name results carry: the recipe's, or 'as-given' for a .tflite."""
    return AS_GIVEN if source.is_tflite else recipe.name


def per_recipe(
    source: ModelSource,
    recipes: Sequence[ConversionRecipe],
    stage: Callable[..., T],
    failed: Callable[[str, XnnfitError], T],
    *,
    options: ConvertOptions = ConvertOptions(),
    timeout: float = DEFAULT_TIMEOUT,
    label: str = "running",
    on_progress: Progress | None = None,
    run_model: bool = True,
    **stage_kwargs: Any,
) -> tuple[T, ...]:
    """`stage(artifact, **stage_kwargs)` for every recipe, each in its own TensorFlow-free child.

    A SourceError or InputDataError (the model or the data is unusable) is raised; any
    other failure of a recipe becomes `failed(recipe_name, error)` and the rest go on.
    """
    out = []
    for recipe in recipes_for(source, recipes):
        name = recipe_name(source, recipe)
        try:
            if on_progress:
                on_progress(f"{name}: {'reading' if source.is_tflite else 'converting'}")
            artifact = materialize(source, recipe, options, timeout=timeout, runs=run_model)
            if stage_kwargs.get("data"):
                notes = positional_notes(stage_kwargs["data"], artifact.specs)
                artifact = replace(artifact, warnings=(*artifact.warnings, *notes))
            if on_progress:
                on_progress(f"{name}: {label}")
            out.append(run_isolated(stage, artifact, what=f"{label} {artifact.what}", timeout=timeout, **stage_kwargs))
        except (SourceError, InputDataError):
            raise
        except XnnfitError as exc:
            out.append(failed(name, exc))
    return tuple(out)
