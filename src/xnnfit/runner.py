"""The one runner: every command is materialize -> stage in a TensorFlow-free child -> frozen result.

    source --materialize(recipe)--> Artifact --stage (in a child)--> frozen Record

materialize() converts Keras sources in a child process (a converter crash costs one
recipe, never the caller), applies a recipe's post-conversion rewrites (XR009 for
dynamic-int8+float-dw), pins the input specs (shapes, and the value ranges of
model/ranges.py) and refuses a model too large to run; a .tflite is used as given with
its specs pinned the same way. A `Job` holds one model
source for one command: its artifacts (each recipe materialized once), its stages (each
in a child) and the one failure rule (`attempt`): an unusable source or input data is
raised, any other failure of a recipe becomes that recipe's entry and the rest go on.
check, profile, bench, compare, fix, quant, optimize and every batch job run through it.
"""

from __future__ import annotations

import dataclasses
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
from xnnfit.model.ranges import with_ranges
from xnnfit.model.recipes import ALL, ConversionRecipe
from xnnfit.model.source import ModelSource
from xnnfit.model.specs import tflite_declared_inputs, with_table_bounds
from xnnfit.rewrite.engine import rewrite_only
from xnnfit.rewrite.rule import RewriteContext
from xnnfit.tflite.graph import read_model

T = TypeVar("T")
F = TypeVar("F")
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
        specs = with_ranges(specs, options.input_ranges, graph=graph)
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
    artifact = replace(
        artifact, specs=with_ranges(with_table_bounds(artifact.specs, graph), options.input_ranges, graph=graph)
    )
    if runs:
        refuse_if_too_large(graph.primary, artifact.specs, f"{source.display} ({recipe.name})")
    if recipe.rewrites:
        artifact = replace(
            artifact, content=rewrite_only(artifact.content, recipe.rewrites, RewriteContext(artifact.specs))
        )
    if options.calibration and not recipe.calibrate:
        artifact = replace(artifact, warnings=(*artifact.warnings, unused_calibration((recipe,))))
    return artifact


def unused_calibration(recipes: Sequence[ConversionRecipe]) -> str:
    """The warning for --calibration given to recipes that do not calibrate."""
    names = ", ".join(r.name for r in recipes)
    return f"--calibration is not used by {names}: only the full-integer recipes ({', '.join(CALIBRATED)}) calibrate"


def sweep_warnings(artifacts: Sequence[Artifact]) -> list[str]:
    """The artifacts' warnings said once for a sweep: --calibration unused only when no recipe of it calibrates."""
    recipes = [ALL[a.recipe] for a in artifacts if a.recipe in ALL]
    per_recipe = {unused_calibration((r,)) for r in recipes}
    warnings = [w for a in artifacts for w in a.warnings if w not in per_recipe]
    if any(w in per_recipe for a in artifacts for w in a.warnings) and not any(r.calibrate for r in recipes):
        warnings.append(unused_calibration(recipes))
    return list(dict.fromkeys(warnings))


def recipes_for(source: ModelSource, recipes: Sequence[ConversionRecipe]) -> tuple[ConversionRecipe, ...]:
    """The recipes a command runs: all of them for Keras sources, one pass for a .tflite (measured as given)."""
    return tuple(recipes[:1]) if source.is_tflite else tuple(recipes)


def recipe_name(source: ModelSource, recipe: ConversionRecipe) -> str:
    """The name results carry: the recipe's, or 'as-given' for a .tflite."""
    return AS_GIVEN if source.is_tflite else recipe.name


def attempt(work: Callable[[], T], failed: Callable[[XnnfitError], F]) -> T | F:
    """The failure rule, applied once for every command.

    A SourceError or InputDataError (the model or the data is unusable) is raised: no
    recipe can do better. Any other XnnfitError (a converter refusal, a native crash, a
    timeout) is that recipe's failure: `failed(error)` stands for its result.
    """
    try:
        return work()
    except (SourceError, InputDataError):
        raise
    except XnnfitError as exc:
        return failed(exc)


@dataclasses.dataclass
class Job:
    """One model source for one command: its artifacts (one per recipe) and its stages (each in a child)."""

    source: ModelSource
    options: ConvertOptions = ConvertOptions()
    timeout: float = DEFAULT_TIMEOUT
    on_progress: Progress | None = None
    runs_model: bool = True  # False for check --predict: the model is never run, so never refused for its size
    _artifacts: dict[str, Artifact] = dataclasses.field(default_factory=dict, repr=False)

    def step(self, what: str) -> None:
        """Tell the progress display what happens now."""
        if self.on_progress is not None:
            self.on_progress(what)

    def artifact(self, recipe: ConversionRecipe) -> Artifact:
        """The artifact of `recipe` (converted on first use, then kept for the rest of the command)."""
        name = recipe_name(self.source, recipe)
        if name not in self._artifacts:
            self.step(f"{name}: {'reading' if self.source.is_tflite else 'converting'}")
            self._artifacts[name] = materialize(
                self.source, recipe, self.options, timeout=self.timeout, runs=self.runs_model
            )
        return self._artifacts[name]

    def stage(self, fn: Callable[..., T], *args: Any, what: str, **kwargs: Any) -> T:
        """`fn(*args, **kwargs)` in a TensorFlow-free child; its result is a frozen record."""
        self.step(what)
        return run_isolated(fn, *args, what=what, timeout=self.timeout, **kwargs)

    def each(
        self,
        recipes: Sequence[ConversionRecipe],
        work: Callable[[Artifact], T],
        failed: Callable[[str, XnnfitError], F],
    ) -> tuple[T | F, ...]:
        """`work(artifact)` for every recipe this source runs, the failure rule applied to each."""
        return tuple(
            attempt(
                lambda r=recipe: work(self.artifact(r)), lambda exc, r=recipe: failed(recipe_name(self.source, r), exc)
            )
            for recipe in recipes_for(self.source, recipes)
        )

    def per_recipe(
        self,
        recipes: Sequence[ConversionRecipe],
        stage: Callable[..., T],
        failed: Callable[[str, XnnfitError], F],
        *,
        label: str = "running",
        **stage_kwargs: Any,
    ) -> tuple[T | F, ...]:
        """`stage(artifact, **stage_kwargs)` in a child for every recipe (check, profile, bench)."""

        def run(artifact: Artifact) -> T:
            if stage_kwargs.get("data"):
                notes = positional_notes(stage_kwargs["data"], artifact.specs)
                artifact = replace(artifact, warnings=(*artifact.warnings, *notes))
            return self.stage(stage, artifact, what=f"{label} {artifact.what}", **stage_kwargs)

        return self.each(recipes, run, failed)
