"""Quantization failures explained and repaired, for quant and optimize: findings, then the int8-repaired candidate.

For every full-int8 candidate over the error budget (every one with `explain_quant`),
TensorFlow's quantization debugger measures each quantized tensor against its op in float
on the eval inputs (measure/quant_debug.py, in a child like a conversion: a crash costs
this analysis only, said in one line), and explain/quant_findings.py turns the tensors
whose error explodes into findings with a KB cause, a Keras layer and advice. When the
findings name nodes that keeping in float restores, one more recipe joins the candidates,
`int8-repaired` (model.recipes.repaired): int8+float-ops with those nodes, and the nodes
XNNPACK refuses quantized (XNN034), kept in float. It is converted, measured, fixed and
raced through the same code paths as every other recipe, and chosen when it wins.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import TypeVar

from xnnfit.core.errors import XnnfitError
from xnnfit.core.isolate import run_isolated
from xnnfit.core.policy import QUANT_DEBUG_SAMPLES
from xnnfit.explain.quant_findings import QuantAnalysis, QuantFinding, findings_stage, repair_nodes
from xnnfit.measure.quant_debug import DebugModels, analysable, debug_models, debug_models_child, layer_errors_stage
from xnnfit.model.artifact import Artifact
from xnnfit.model.recipes import REPAIRED, ConversionRecipe, repaired
from xnnfit.runner import Job, attempt

T = TypeVar("T")


@dataclasses.dataclass(frozen=True)
class Explained:
    """What the analysis of a command's candidates found: findings per recipe, the repair, and why some have none."""

    findings: dict[str, tuple[QuantFinding, ...]]
    repair: ConversionRecipe | None = None  # int8-repaired, when findings name nodes to keep in float
    notes: tuple[str, ...] = ()  # one line per candidate that could not be analysed


def wanted(
    names: Sequence[str], over: Callable[[str], bool], recipes: dict[str, ConversionRecipe], every: bool
) -> list[str]:
    """The candidates to analyse: full-int8 ones over the budget (`over`), or all full-int8 ones when asked."""
    return [n for n in names if n in recipes and analysable(recipes[n]) and (every or over(n))]


def explain(
    job: Job,
    artifacts: dict[str, Artifact],
    names: Sequence[str],
    recipes: dict[str, ConversionRecipe],
    samples: list[dict],
) -> Explained:
    """Findings for the candidates `names` (each converted in `artifacts` from `recipes[name]`), and the repair."""
    analyses: dict[str, QuantAnalysis] = {}
    notes = []
    for name in names:
        job.step(f"explaining the quantization error ({name})")
        done = attempt(lambda n=name: _analyse(job, artifacts[n], recipes[n], samples), lambda exc: exc)
        if isinstance(done, XnnfitError):
            notes.append(f"quantization findings for {name} could not be made: {' '.join(str(done).split())[:300]}")
        else:
            analyses[name] = done
    nodes, layers = repair_nodes([a for n, a in analyses.items() if n != REPAIRED])
    recipe = repaired(nodes, layers) if nodes and REPAIRED not in names else None
    return Explained({n: a.findings for n, a in analyses.items()}, recipe, tuple(notes))


def merged(first: Explained, then: Explained) -> Explained:
    """Two rounds of analysis as one: the candidates', then the repaired candidate's."""
    return Explained({**first.findings, **then.findings}, first.repair, (*first.notes, *then.notes))


def _analyse(job: Job, artifact: Artifact, recipe: ConversionRecipe, samples: list[dict]) -> QuantAnalysis:
    source, few = job.source, samples[:QUANT_DEBUG_SAMPLES]
    what = f"running the quantization debugger on {artifact.what}"
    if source.is_tflite:
        raise XnnfitError("the quantization debugger needs the Keras model the .tflite came from")
    models: DebugModels
    if source.model is not None:  # a Keras object in the caller's process: TensorFlow is loaded already
        models = debug_models(source.model, recipe, job.options, display=source.display)
    else:
        models = run_isolated(debug_models_child, source, recipe, job.options, what=what, timeout=job.timeout)
    return job.stage(analysis_stage, artifact, models, few, what=f"comparing each quantized tensor of {artifact.what}")


def analysis_stage(artifact: Artifact, models: DebugModels, samples: list[dict]) -> QuantAnalysis:
    """Each quantized tensor against its float twin on LiteRT, then the findings (run it in a TensorFlow-free child)."""
    errors = layer_errors_stage(models, samples)
    return findings_stage(artifact, errors.tensors, errors.samples)


def explain_and_repair(
    job: Job,
    artifacts: dict[str, Artifact],
    measured: dict[str, T],
    recipes: dict[str, ConversionRecipe],
    samples: list[dict],
    *,
    over: Callable[[str, T], bool],
    every: bool,
    measure: Callable[[Artifact], T],
) -> tuple[Explained, T | XnnfitError | None]:
    """Findings for the measured candidates, then int8-repaired if they call for it.

    `over(name, measured)` says whether a candidate is over the command's budget. The repaired recipe is
    converted into `artifacts` and measured with the command's own `measure` stage; it is analysed too when
    it is over the budget (or `every`). Returns the findings and what `measure` returned for the repair (its
    XnnfitError when it failed; None without a repair).
    """
    beyond = {n for n, m in measured.items() if over(n, m)}
    first = explain(job, artifacts, wanted(list(measured), beyond.__contains__, recipes, every), recipes, samples)
    unexplained = [
        f"{n} is over the budget but gets no quantization findings: TF's quantization debugger analyses "
        "full-integer int8 recipes only"
        for n in measured
        if n in beyond and n in recipes and recipes[n].optimize and not analysable(recipes[n])
    ]
    first = dataclasses.replace(first, notes=(*first.notes, *unexplained))
    recipe = first.repair
    if recipe is None:
        return first, None
    job.step(f"converting and measuring ({recipe.name})")
    done = attempt(lambda: measure(job.artifact(recipe)), lambda exc: exc)
    if isinstance(done, XnnfitError):
        return first, done
    artifacts[recipe.name] = job.artifact(recipe)
    mine = {recipe.name: recipe}
    second = explain(job, artifacts, wanted([recipe.name], lambda n: over(n, done), mine, every), mine, samples)
    return merged(first, second), done


def with_repair(
    explained: Explained,
    repair: T | XnnfitError | None,
    recipes: tuple[ConversionRecipe, ...],
    measured: dict[str, T],
    failed: dict[str, str],
) -> tuple[ConversionRecipe, ...]:
    """`recipes` with the repaired candidate added, its measurement (or its failure) recorded in place."""
    if explained.repair is None:
        return recipes
    if isinstance(repair, XnnfitError):
        failed[explained.repair.name] = str(repair)
    else:
        measured[explained.repair.name] = repair
    return (*recipes, explained.repair)
